//! The intercept vectors at VMCB offsets 0x00-0x14 (APM Vol 2 Appendix B, Table B-1).

/// The CR intercept vector (offset 0x00, APM Vol 2 15.9): bit `n` intercepts reads of
/// CRn, bit `16 + n` writes of CRn (n = 0-15). Janus intercepts only writes.
pub const fn cr_write(n: u32) -> u32 {
    1 << (16 + n)
}

/// The DR intercept vector (offset 0x04, APM Vol 2 15.9 and Table B-1): bit `n` intercepts
/// reads of DRn, bit `16 + n` writes of DRn (n = 0-15). DR0-DR7 both ways: DR8-DR15 do
/// not exist, and their MOVs raise #UD before any intercept check (APM Vol 2 15.7).
pub const DR0_7_READ_WRITE: u32 = 0x00ff_00ff;

/// The exception intercept vector (offset 0x08, APM Vol 2 15.12): bit `v` intercepts
/// exception vector `v`.
pub const fn exceptions(vectors: &[u8]) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < vectors.len() {
        bits |= 1 << vectors[i];
        i += 1;
    }
    bits
}

/// Intercept vector 3 (offset 0x0C).
pub mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const SMI: u32 = 1 << 2;
    pub const INIT: u32 = 1 << 3;
    pub const VINTR: u32 = 1 << 4;
    pub const RDPMC: u32 = 1 << 15;
    pub const CPUID: u32 = 1 << 18;
    pub const INVD: u32 = 1 << 22;
    pub const PAUSE: u32 = 1 << 23;
    pub const HLT: u32 = 1 << 24;
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept vector 4 (offset 0x10).
pub mod misc2 {
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const MONITOR: u32 = 1 << 10;
    pub const MWAIT: u32 = 1 << 11;
    pub const XSETBV: u32 = 1 << 13;
}
