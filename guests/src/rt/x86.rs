//! More CPU helpers: WRMSR, RDTSC, control registers, interrupt flag, cache control.

use core::arch::asm;

/// Writes MSR `msr`. An MSR the CPU does not have raises #GP.
pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: WRMSR touches no memory; what the MSR does is the caller's business.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32,
             options(nostack, nomem, preserves_flags))
    };
}

/// Bochs' magic breakpoint, `xchg bx, bx`: with `magic_break: enabled=1` Bochs' debugger
/// stops there (`cargo janus profile` starts its trace); everywhere else an exchange of
/// BX with itself, which changes nothing.
#[inline(always)]
pub fn magic_break() {
    // SAFETY: exchanging BX with itself changes no register, flag or memory.
    unsafe { asm!("xchg bx, bx", options(nostack, nomem, preserves_flags)) };
}

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC touches no memory.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nostack, nomem, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

macro_rules! cr {
    ($read:ident, $write:ident, $cr:literal) => {
        #[doc = concat!("Reads ", $cr, ".")]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading a control register has no side effects.
            unsafe { asm!(concat!("mov {}, ", $cr), out(reg) v, options(nostack, nomem, preserves_flags)) };
            v
        }
        #[doc = concat!("Writes ", $cr, " (may raise #GP for reserved bits).")]
        pub fn $write(v: u64) {
            // SAFETY: the caller keeps the paging and protection state valid.
            unsafe { asm!(concat!("mov ", $cr, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

cr!(read_cr0, write_cr0, "cr0");
cr!(read_cr2, write_cr2, "cr2");
cr!(read_cr3, write_cr3, "cr3");
cr!(read_cr4, write_cr4, "cr4");
cr!(read_cr8, write_cr8, "cr8");

/// Enables interrupts (STI).
#[inline(always)]
pub fn sti() {
    // SAFETY: handlers are installed by the caller.
    unsafe { asm!("sti", options(nostack, nomem)) };
}

/// Disables interrupts (CLI).
#[inline(always)]
pub fn cli() {
    // SAFETY: masking interrupts is always safe.
    unsafe { asm!("cli", options(nostack, nomem)) };
}

/// `sti; hlt` (the interrupt shadow makes this race-free), then `cli`: waits for one
/// interrupt with interrupts otherwise off.
#[inline(always)]
pub fn sti_hlt_cli() {
    // SAFETY: as for `sti`; the handler runs between HLT and CLI.
    unsafe { asm!("sti", "hlt", "cli", options(nostack, nomem)) };
}

/// Enables interrupts, lets pending ones in with a few NOPs, and disables them again.
#[inline(always)]
pub fn open_window() {
    // SAFETY: as for `sti`.
    unsafe {
        asm!(
            "sti",
            "nop",
            "nop",
            "nop",
            "nop",
            "cli",
            options(nostack, nomem)
        )
    };
}

/// RFLAGS.
pub fn rflags() -> u64 {
    let v: u64;
    // SAFETY: pushes and pops one word on our own stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem, preserves_flags)) };
    v
}

/// WBINVD.
pub fn wbinvd() {
    // SAFETY: writes back and invalidates caches; memory is unchanged.
    unsafe { asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// WBINVD, then INVD (so no dirty line is lost).
pub fn invd() {
    // SAFETY: the WBINVD before it leaves no dirty line for INVD to drop.
    unsafe { asm!("wbinvd", "invd", options(nostack, preserves_flags)) };
}

/// Reads the GS base (IA32_GS_BASE).
pub fn gs_base() -> u64 {
    super::cpu::rdmsr(MSR_GS_BASE)
}

/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_FEATURE_CONTROL.
pub const MSR_FEATURE_CONTROL: u32 = 0x3a;
/// IA32_TSC.
pub const MSR_TSC: u32 = 0x10;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// IA32_PAT.
pub const MSR_PAT: u32 = 0x277;
/// IA32_SYSENTER_CS/ESP/EIP.
pub const MSR_SYSENTER_CS: u32 = 0x174;
pub const MSR_SYSENTER_ESP: u32 = 0x175;
pub const MSR_SYSENTER_EIP: u32 = 0x176;
/// IA32_EFER.
pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_CSTAR: u32 = 0xc000_0083;
pub const MSR_FMASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
