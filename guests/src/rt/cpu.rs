//! CPU helpers: CPUID, port I/O, RDMSR and the debug-exit port.

use core::arch::asm;

/// The debug-exit port: writing `v` ends the guest's VM with exit status `v`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// CPUID with EAX = `leaf`, ECX = `sub`; returns `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: CPUID has no side effects on memory. RBX is reserved by LLVM, so it is
    // saved in a scratch register around the instruction.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") sub => ecx,
            out("edx") edx,
            options(nostack, preserves_flags, nomem),
        );
    }
    [eax, ebx, ecx, edx]
}

/// The 12-byte vendor string of CPUID leaf 0 (EBX, EDX, ECX).
pub fn vendor() -> [u8; 12] {
    let r = cpuid(0, 0);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r[1].to_le_bytes());
    v[4..8].copy_from_slice(&r[3].to_le_bytes());
    v[8..12].copy_from_slice(&r[2].to_le_bytes());
    v
}

/// Reads a byte from `port`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O at CPL 0 touches no memory.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nostack, nomem, preserves_flags))
    };
    v
}

/// Reads a word from `port`.
pub fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in ax, dx", out("ax") v, in("dx") port, options(nostack, nomem, preserves_flags))
    };
    v
}

/// Reads a dword from `port`.
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nostack, nomem, preserves_flags))
    };
    v
}

/// Writes a byte to `port`.
pub fn outb(port: u16, v: u8) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nostack, nomem, preserves_flags))
    };
}

/// Writes a word to `port`.
pub fn outw(port: u16, v: u16) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nostack, nomem, preserves_flags))
    };
}

/// Writes a dword to `port`.
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, nomem, preserves_flags))
    };
}

/// Reads MSR `msr`. An MSR the CPU does not have raises #GP, which the runtime's IDT
/// reports as an exception.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR reads a register and touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack, nomem, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Halts forever with interrupts off.
pub fn halt() -> ! {
    loop {
        // SAFETY: stops the CPU; nothing after this runs.
        unsafe { asm!("cli", "hlt", options(nostack, nomem)) };
    }
}

/// Ends the guest with `status` through the debug-exit port, then halts.
pub fn exit(status: u32) -> ! {
    outl(DEBUG_EXIT_PORT, status);
    halt()
}
