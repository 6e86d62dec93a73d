//! SSE and x87 state: enabling SSE, reading and writing XMM0-15, MXCSR and the x87
//! control word, and filling the x87 register stack. The guests are built soft-float
//! (x86_64-unknown-none), so compiled code never touches these registers: what a guest
//! puts there stays there, which is what the isolation tests rely on.

use super::x86::{read_cr0, read_cr4, write_cr0, write_cr4};
use core::arch::asm;

/// MXCSR after RESET (SDM Vol 1 10.2.3): all exceptions masked, round to nearest.
pub const MXCSR_RESET: u32 = 0x1f80;
/// The x87 control word after FNINIT and in the XSAVE init state (SDM Vol 1 8.1.5,
/// 13.6).
pub const FCW_INIT: u16 = 0x037f;
/// The x87 control word at power-up and RESET (SDM Vol 3A Table 9-1).
pub const FCW_POWER_UP: u16 = 0x0040;

/// CR0.MP (bit 1), CR0.EM (bit 2), CR0.TS (bit 3); CR4.OSFXSR (bit 9), CR4.OSXMMEXCPT
/// (bit 10).
const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;

/// Lets SSE and x87 instructions run (SDM Vol 3A 13.1.3): CR0.EM and TS clear, MP set,
/// CR4.OSFXSR and OSXMMEXCPT set. Changes no SSE or x87 register.
pub fn enable_sse() {
    write_cr0((read_cr0() & !(CR0_EM | CR0_TS)) | CR0_MP);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
}

/// Loads XMM0-15 from `v`. Needs [`enable_sse`].
pub fn write_xmm(v: &[u128; 16]) {
    // SAFETY: reads 256 bytes from `v`; only XMM registers change, and compiled code
    // (soft-float) keeps nothing in them.
    unsafe {
        asm!(
            "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 16]",
            "movdqu xmm2, [{p} + 32]", "movdqu xmm3, [{p} + 48]",
            "movdqu xmm4, [{p} + 64]", "movdqu xmm5, [{p} + 80]",
            "movdqu xmm6, [{p} + 96]", "movdqu xmm7, [{p} + 112]",
            "movdqu xmm8, [{p} + 128]", "movdqu xmm9, [{p} + 144]",
            "movdqu xmm10, [{p} + 160]", "movdqu xmm11, [{p} + 176]",
            "movdqu xmm12, [{p} + 192]", "movdqu xmm13, [{p} + 208]",
            "movdqu xmm14, [{p} + 224]", "movdqu xmm15, [{p} + 240]",
            p = in(reg) v.as_ptr(),
            options(nostack, readonly, preserves_flags),
        )
    };
}

/// XMM0-15. Needs [`enable_sse`].
pub fn read_xmm() -> [u128; 16] {
    let mut v = [0u128; 16];
    // SAFETY: writes 256 bytes into `v`; no register changes.
    unsafe {
        asm!(
            "movdqu [{p}], xmm0", "movdqu [{p} + 16], xmm1",
            "movdqu [{p} + 32], xmm2", "movdqu [{p} + 48], xmm3",
            "movdqu [{p} + 64], xmm4", "movdqu [{p} + 80], xmm5",
            "movdqu [{p} + 96], xmm6", "movdqu [{p} + 112], xmm7",
            "movdqu [{p} + 128], xmm8", "movdqu [{p} + 144], xmm9",
            "movdqu [{p} + 160], xmm10", "movdqu [{p} + 176], xmm11",
            "movdqu [{p} + 192], xmm12", "movdqu [{p} + 208], xmm13",
            "movdqu [{p} + 224], xmm14", "movdqu [{p} + 240], xmm15",
            p = in(reg) v.as_mut_ptr(),
            options(nostack, preserves_flags),
        )
    };
    v
}

/// MXCSR. Needs [`enable_sse`].
pub fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: STMXCSR writes 4 bytes into `v`.
    unsafe { asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags)) };
    v
}

/// Loads MXCSR (#GP for reserved bits). Needs [`enable_sse`].
pub fn set_mxcsr(v: u32) {
    // SAFETY: LDMXCSR reads 4 bytes from `v`; only MXCSR changes.
    unsafe { asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly, preserves_flags)) };
}

/// The x87 control word (FNSTCW). Needs CR0.EM clear ([`enable_sse`]).
pub fn fcw() -> u16 {
    let mut v = 0u16;
    // SAFETY: FNSTCW writes 2 bytes into `v`.
    unsafe { asm!("fnstcw [{}]", in(reg) &mut v, options(nostack, preserves_flags)) };
    v
}

/// Loads the x87 control word (FLDCW). Needs CR0.EM clear.
pub fn set_fcw(v: u16) {
    // SAFETY: FLDCW reads 2 bytes from `v`; only the x87 control word changes.
    unsafe { asm!("fldcw [{}]", in(reg) &v, options(nostack, readonly, preserves_flags)) };
}

/// Pushes the eight integers onto the x87 register stack (FILD), filling it.
pub fn fill_x87(v: &[i64; 8]) {
    // SAFETY: FILD reads 8 bytes from each element; only x87 registers change, and
    // compiled code (soft-float) keeps nothing in them.
    unsafe {
        asm!(
            "fild qword ptr [{p}]", "fild qword ptr [{p} + 8]",
            "fild qword ptr [{p} + 16]", "fild qword ptr [{p} + 24]",
            "fild qword ptr [{p} + 32]", "fild qword ptr [{p} + 40]",
            "fild qword ptr [{p} + 48]", "fild qword ptr [{p} + 56]",
            p = in(reg) v.as_ptr(),
            options(nostack, readonly),
        )
    };
}
