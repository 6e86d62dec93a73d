//! Janus' GDT and TSS. The TSS gives the double-fault handler its own stack (IST1), and
//! VMX needs a valid host TR (SDM Vol 3C 27.2.3).

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::sync::atomic::AtomicU64;
use spin::Once;
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

/// The boot CPU's double-fault stack. Rust code never touches it; only the CPU whose TSS points at
/// it writes it, on a #DF (IST1).
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; 16 * 1024]>);
// SAFETY: no Rust code reads or writes the stack's bytes; its address is all that is shared.
unsafe impl Sync for Stack {}
static DOUBLE_FAULT_STACK: Stack = Stack(UnsafeCell::new([0; 16 * 1024]));

/// One CPU's TSS and GDT, built once and never changed by Rust code afterwards: every host
/// CPU has its own pair (the boot CPU's below, the others' in `crate::percpu`). The GDT's
/// words are atomics because the CPU itself writes one: LTR sets the busy bit of the TSS
/// descriptor (SDM Vol 3A 8.2.2).
pub struct CpuTables {
    tss: Once<Tss>,
    gdt: Once<[AtomicU64; 5]>,
}

impl CpuTables {
    pub const fn new() -> CpuTables {
        CpuTables {
            tss: Once::new(),
            gdt: Once::new(),
        }
    }
}

static BOOT_CPU: CpuTables = CpuTables::new();

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

/// Loads the boot CPU's GDT and TSS.
pub fn init() {
    load(
        &BOOT_CPU,
        DOUBLE_FAULT_STACK.0.get() as u64 + size_of::<Stack>() as u64,
    );
}

/// Builds `t` (once) with its double-fault stack ending at `df_top` (IST1), and loads it
/// on this CPU.
pub fn load(t: &'static CpuTables, df_top: u64) {
    let tss = t.tss.call_once(|| {
        let mut ist = [0; 7];
        ist[0] = df_top;
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist,
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: size_of::<Tss>() as u16,
        }
    });
    let [lo, hi] = tss_descriptor(tss as *const Tss as u64);
    // Null, 64-bit code (0x08), data (0x10), and the 16-byte TSS descriptor (0x18).
    let gdt = t.gdt.call_once(|| {
        [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, lo, hi].map(AtomicU64::new)
    });
    // SAFETY: the GDT and TSS live forever in statics and are not changed by Rust code
    // after being built; the selectors loaded match the descriptors written, and each
    // CPU loads its own pair (LTR of a busy descriptor would #GP).
    unsafe {
        lgdt(&DescriptorTablePointer::new(gdt));
        x86::task::load_tr(SegmentSelector::new(TSS >> 3, Ring::Ring0));
    }
}
