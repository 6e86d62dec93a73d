//! Janus' GDT and TSS. The TSS gives the double-fault handler its own stack (IST1), and
//! VMX needs a valid host TR (SDM Vol 3C 27.2.3).

use core::mem::size_of;
use core::ptr::addr_of;
use x86::dtables::{lgdt, DescriptorTablePointer};
use x86::segmentation::SegmentSelector;
use x86::Ring;

pub const CODE: u16 = 0x08;
pub const TSS: u16 = 0x18;

/// The 64-bit TSS (SDM Vol 3A 8.7, Figure 8-11).
#[repr(C, packed(4))]
pub struct Tss {
    _reserved0: u32,
    pub rsp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    pub iomap_base: u16,
}
const _: () = assert!(size_of::<Tss>() == 104);
const _: () = assert!(core::mem::offset_of!(Tss, ist) == 0x24);

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; 16 * 1024]);

static mut TSS_AREA: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

/// Null, 64-bit code (0x08), data (0x10), and the 16-byte TSS descriptor (0x18).
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];

/// A 64-bit available-TSS descriptor (type 9) for `base` (SDM Vol 3A 8.2.3).
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

pub fn init() {
    // SAFETY: runs once on the boot CPU before anything else uses the GDT or TSS; the
    // statics live forever, and the selectors loaded match the descriptors written.
    unsafe {
        let stack_top = addr_of!(DOUBLE_FAULT_STACK) as u64 + size_of::<Stack>() as u64;
        TSS_AREA.ist[0] = stack_top;
        let [lo, hi] = tss_descriptor(addr_of!(TSS_AREA) as u64);
        GDT[3] = lo;
        GDT[4] = hi;
        let ptr = DescriptorTablePointer::new(&*addr_of!(GDT));
        lgdt(&ptr);
        x86::task::load_tr(SegmentSelector::new(TSS >> 3, Ring::Ring0));
    }
}
