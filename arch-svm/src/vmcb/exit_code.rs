//! The SVM exit codes Janus decodes (APM Vol 2 Appendix C, Table C-1) and the layout of
//! the EXITINFO1 values that come with them. Codes not named here reach the core as
//! `VmExit::Raw`.

/// MOV from CR0-15: code `CR_READ + n` (bits 3:0 name the register).
pub const CR_READ: u64 = 0x00;
pub const CR_READ_LAST: u64 = 0x0f;
/// MOV to CR0-15: code `CR_WRITE + n`.
pub const CR_WRITE: u64 = 0x10;
pub const CR_WRITE_LAST: u64 = 0x1f;
/// MOV from DR0-15: code `DR_READ + n`; MOV to DR0-15: code `DR_WRITE + n`.
pub const DR_READ: u64 = 0x20;
pub const DR_WRITE: u64 = 0x30;
pub const DR_WRITE_LAST: u64 = 0x3f;
/// Exception vector `v`: code `EXCP_BASE + v`.
pub const EXCP_BASE: u64 = 0x40;
pub const EXCP_LAST: u64 = 0x5f;
pub const INTR: u64 = 0x60;
pub const NMI: u64 = 0x61;
pub const SMI: u64 = 0x62;
pub const INIT: u64 = 0x63;
pub const VINTR: u64 = 0x64;
pub const CPUID: u64 = 0x72;
pub const INVD: u64 = 0x76;
pub const PAUSE: u64 = 0x77;
pub const HLT: u64 = 0x78;
pub const INVLPGA: u64 = 0x7a;
pub const IOIO: u64 = 0x7b;
pub const MSR: u64 = 0x7c;
pub const SHUTDOWN: u64 = 0x7f;
pub const VMRUN: u64 = 0x80;
pub const VMMCALL: u64 = 0x81;
pub const VMLOAD: u64 = 0x82;
pub const SKINIT: u64 = 0x86;
pub const WBINVD: u64 = 0x89;
pub const MONITOR: u64 = 0x8a;
pub const MWAIT_CONDITIONAL: u64 = 0x8c;
pub const XSETBV: u64 = 0x8d;
pub const NPF: u64 = 0x400;
/// VMRUN refused the guest state (-1).
pub const INVALID: u64 = u64::MAX;

/// EXITINFO1 of a CR or DR access with decode assists (APM Vol 2 15.33.1).
pub mod mov_info {
    /// The exit was a MOV CRn or MOV DRn (not LMSW/CLTS); the GPR field is valid.
    pub const MOV: u64 = 1 << 63;
    /// The GPR operand's number.
    pub const GPR: u64 = 0xf;
}

/// EXITINFO1 of an IOIO exit (APM Vol 2 15.10.2, Figure 15-2).
pub mod ioio {
    /// 1: IN, 0: OUT.
    pub const TYPE_IN: u64 = 1 << 0;
    pub const STR: u64 = 1 << 2;
    pub const REP: u64 = 1 << 3;
    pub const SZ8: u64 = 1 << 4;
    pub const SZ16: u64 = 1 << 5;
    pub const A16: u64 = 1 << 7;
    pub const A32: u64 = 1 << 8;
    /// The segment of a string instruction (with decode assists), bits 12:10.
    pub const SEG_SHIFT: u32 = 10;
    pub const SEG_MASK: u64 = 7;
    pub const PORT_SHIFT: u32 = 16;
}

/// EXITINFO1 of an MSR exit (APM Vol 2 15.11).
pub mod msr {
    pub const READ: u64 = 0;
}

/// EXITINFO1 of a nested page fault: a page-fault error code (APM Vol 2 15.25.6, 8.4.2).
pub mod npf {
    pub const WRITE: u64 = 1 << 1;
    pub const FETCH: u64 = 1 << 4;
}
