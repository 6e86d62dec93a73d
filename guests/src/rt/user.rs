//! CPL 3 for guests that need it: a GDT with user segments and a 64-bit TSS, the user
//! bit on the boot code's identity map, running code at CPL 3 until it raises an
//! exception, and patching single IDT gates (selector, DPL, IST).
//!
//! Layout (SDM Vol 3A 3.4.5, 7.2.3): 0x08 kernel code, 0x10 kernel data, 0x18 user
//! data (selector 0x1b), 0x20 user code (0x23), 0x28 the TSS (16 bytes).

use super::idt::{catch_exception, ErrorInfo};
use super::x86::{read_cr3, write_cr3};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

pub const KERNEL_CS: u16 = 0x08;
pub const USER_DS: u16 = 0x1b;
pub const USER_CS: u16 = 0x23;
const TSS_SEL: u16 = 0x28;

/// The 64-bit TSS (SDM Vol 3A Figure 7-11).
#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    // Past the limit: no I/O bitmap, so CPL 3 port I/O raises #GP (IOPL is 0).
    iomap_base: core::mem::size_of::<Tss>() as u16,
};

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);

/// The stack CPL 3 code's exceptions arrive on (TSS.RSP0).
static mut KERNEL_STACK: Stack = Stack([0; 16 * 1024]);

static mut GDT: [u64; 7] = [
    0,
    0x00af_9a00_0000_ffff, // kernel code: 64-bit, DPL 0
    0x00cf_9200_0000_ffff, // kernel data
    0x00cf_f200_0000_ffff, // user data: DPL 3
    0x00af_fa00_0000_ffff, // user code: 64-bit, DPL 3
    0,                     // TSS, filled in by `install`
    0,
];

#[repr(C, packed)]
struct TablePtr {
    limit: u16,
    base: u64,
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Loads the GDT and TSS and sets the user bit on the first GiB's identity map.
/// Idempotent.
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: runs once, on the only CPU, before any CPL 3 code; the new GDT keeps the
    // boot code's selectors 0x08 and 0x10 with the same descriptors, so the loaded CS,
    // DS and SS stay valid.
    unsafe {
        let tss = core::ptr::addr_of_mut!(TSS);
        (*tss).rsp[0] = core::ptr::addr_of!(KERNEL_STACK) as u64 + 16 * 1024;
        let base = tss as u64;
        let limit = core::mem::size_of::<Tss>() as u64 - 1;
        let gdt = &mut *core::ptr::addr_of_mut!(GDT);
        // Present, DPL 0, type 9 (available 64-bit TSS).
        gdt[5] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | ((limit >> 16) << 48)
            | ((base >> 24 & 0xff) << 56);
        gdt[6] = base >> 32;
        let ptr = TablePtr {
            limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        asm!("lgdt [{}]", in(reg) &ptr, options(nostack, readonly, preserves_flags));
        asm!("ltr {:x}", in(reg) TSS_SEL, options(nostack, nomem, preserves_flags));
    }
    set_user_bit();
}

/// Sets U/S (bit 2) in PML4[0], PDPT[0] and every 2 MiB entry of the first GiB.
fn set_user_bit() {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    // SAFETY: the boot code's tables are identity-mapped in the first GiB; the U bit
    // only widens access (SMEP and SMAP are off).
    unsafe {
        let pml4 = (read_cr3() & ADDR) as *mut u64;
        pml4.write_volatile(pml4.read_volatile() | 4);
        let pdpt = (pml4.read_volatile() & ADDR) as *mut u64;
        pdpt.write_volatile(pdpt.read_volatile() | 4);
        let pd = (pdpt.read_volatile() & ADDR) as *mut u64;
        for i in 0..512 {
            pd.add(i).write_volatile(pd.add(i).read_volatile() | 4);
        }
    }
    write_cr3(read_cr3());
}

/// Sets interrupt stack table entry `n` (1-7) to `top`.
pub fn set_ist(n: usize, top: u64) {
    assert!((1..=7).contains(&n), "IST entries are 1-7");
    // SAFETY: a plain store into the TSS; the CPU reads it at the next delivery.
    unsafe { (*core::ptr::addr_of_mut!(TSS)).ist[n - 1] = top };
}

/// Runs the code at `entry` at CPL 3 on the stack `stack_top` with RFLAGS `rflags`
/// until it raises an exception (a CPL 3 guest has no other way back) and returns that
/// exception. Needs [`install`].
pub fn run(entry: u64, stack_top: u64, rflags: u64) -> Option<ErrorInfo> {
    install();
    catch_exception(|| {
        // SAFETY: IRETQ to the user code segment; the code's exception comes back through
        // the runtime's catcher, which restores this context and the kernel selectors.
        unsafe {
            asm!(
                "push {ds}",
                "push {rsp}",
                "push {fl}",
                "push {cs}",
                "push {rip}",
                "iretq",
                ds = in(reg) u64::from(USER_DS),
                rsp = in(reg) stack_top,
                fl = in(reg) rflags,
                cs = in(reg) u64::from(USER_CS),
                rip = in(reg) entry,
                options(noreturn),
            )
        }
    })
}

/// Points IDT gate `vector` at `handler` through `selector`, with gate DPL `dpl` and
/// IST index `ist` (0: none), as a 64-bit interrupt gate (SDM Vol 3A 6.14.1). Patches
/// the IDT the CPU is using (found with SIDT).
pub fn set_gate(vector: u8, handler: u64, selector: u16, dpl: u8, ist: u8) {
    let mut ptr = TablePtr { limit: 0, base: 0 };
    // SAFETY: SIDT writes 10 bytes into `ptr`.
    unsafe { asm!("sidt [{}]", in(reg) &mut ptr, options(nostack, preserves_flags)) };
    let gate = (ptr.base + 16 * u64::from(vector)) as *mut u64;
    let low = (handler & 0xffff)
        | (u64::from(selector) << 16)
        | (u64::from(ist & 7) << 32)
        | (u64::from(0x8e | ((dpl & 3) << 5)) << 40)
        | ((handler >> 16 & 0xffff) << 48);
    // SAFETY: the runtime's IDT lies in identity-mapped, writable .bss; each gate is 16
    // bytes; interrupts that arrive meanwhile see either gate, both valid.
    unsafe {
        gate.add(1).write_volatile(handler >> 32);
        gate.write_volatile(low);
    }
}
