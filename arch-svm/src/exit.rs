//! SVM exit codes (APM Vol 2 Appendix C) turned into the core's `VmExit`.

use vmm_core::addr::GuestPhys;
use vmm_core::exit::{IoAccess, IoDir, NestedAccess, StringIo, VmExit};
use vmm_core::vcpu::{CrTarget, Gpr, SegReg};

pub const VMEXIT_IOIO: u64 = 0x7b;
pub const VMEXIT_INVALID: u64 = u64::MAX;

/// Decodes one #VMEXIT from EXITCODE, EXITINFO1 and EXITINFO2. `gpr` reads guest
/// registers (for CR writes reported with decode assists).
pub fn decode(code: u64, info1: u64, info2: u64, gpr: impl Fn(Gpr) -> u64) -> VmExit {
    let raw = VmExit::Raw {
        reason: code,
        info1,
        info2,
    };
    match code {
        // CR reads and writes; the GPR is known only with decode assists (APM Vol 2 15.33.1).
        0x00..=0x1f => {
            let Some(cr) = CrTarget::from_number(code & 0xf) else {
                return raw;
            };
            if info1 & (1 << 63) == 0 {
                return if code >= 0x10 {
                    VmExit::CrWriteUndecoded { cr }
                } else {
                    raw
                };
            }
            let Some(reg) = Gpr::from_index((info1 & 0xf) as u8) else {
                return raw;
            };
            if code < 0x10 {
                VmExit::CrRead { cr, dest: reg }
            } else {
                VmExit::CrWrite {
                    cr,
                    value: gpr(reg),
                }
            }
        }
        0x40..=0x5f => VmExit::Exception {
            vector: (code - 0x40) as u8,
            // For intercepted exceptions that push one, EXITINFO1 holds the error code.
            error_code: matches!(code - 0x40, 8 | 10..=14 | 17 | 21 | 29 | 30)
                .then_some(info1 as u32),
        },
        0x60 => VmExit::ExternalInterrupt,
        0x61 => VmExit::Nmi,
        0x64 => VmExit::InterruptWindow,
        0x72 => VmExit::Cpuid,
        0x76 => VmExit::Invd,
        0x78 => VmExit::Hlt,
        // IOIO: EXITINFO1 (APM Vol 2 15.10.2, Figure 15-2).
        VMEXIT_IOIO => {
            let size = if info1 & (1 << 4) != 0 {
                1
            } else if info1 & (1 << 5) != 0 {
                2
            } else {
                4
            };
            let string = (info1 & (1 << 2) != 0).then(|| StringIo {
                rep: info1 & (1 << 3) != 0,
                addr_size: if info1 & (1 << 7) != 0 {
                    2
                } else if info1 & (1 << 8) != 0 {
                    4
                } else {
                    8
                },
                // Bits 12:10 hold the segment only with decode assists; DS otherwise.
                seg: SegReg::from_index(((info1 >> 10) & 7) as u8).unwrap_or(SegReg::Ds),
            });
            VmExit::Io(IoAccess {
                port: (info1 >> 16) as u16,
                size,
                dir: if info1 & 1 != 0 {
                    IoDir::In
                } else {
                    IoDir::Out
                },
                string,
            })
        }
        0x7c => {
            if info1 == 0 {
                VmExit::RdMsr
            } else {
                VmExit::WrMsr
            }
        }
        0x7f => VmExit::TripleFault,
        // VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA.
        0x80 | 0x82..=0x86 | 0x7a => VmExit::VirtInstruction,
        0x81 => VmExit::Hypercall,
        0x89 => VmExit::Wbinvd,
        // MONITOR(X), MWAIT(X), MWAIT conditional (APM Vol 2 Appendix C).
        0x8a..=0x8c => VmExit::MonitorMwait,
        0x8d => VmExit::Xsetbv,
        // Nested page fault: EXITINFO1 is a page-fault error code, EXITINFO2 the GPA
        // (APM Vol 2 15.25.6).
        0x400 => VmExit::NestedPageFault {
            gpa: GuestPhys(info2),
            access: NestedAccess {
                read: info1 & 2 == 0 && info1 & 16 == 0,
                write: info1 & 2 != 0,
                fetch: info1 & 16 != 0,
            },
        },
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_core::vcpu::ControlReg;

    fn regs(r: Gpr) -> u64 {
        0x1000 + r as u64
    }

    #[test]
    fn decodes_ioio_including_rep_outsb() {
        // OUT 0x3f8, AL: type out, SZ8.
        assert_eq!(
            decode(0x7b, 0x03f8_0000 | (1 << 4), 0x10_0005, regs),
            VmExit::Io(IoAccess {
                port: 0x3f8,
                size: 1,
                dir: IoDir::Out,
                string: None
            })
        );
        // REP OUTSB in 64-bit code: STR, REP, SZ8, A64.
        assert_eq!(
            decode(
                0x7b,
                0x03f8_0000 | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 9),
                0,
                regs
            ),
            VmExit::Io(IoAccess {
                port: 0x3f8,
                size: 1,
                dir: IoDir::Out,
                string: Some(StringIo {
                    rep: true,
                    addr_size: 8,
                    seg: SegReg::Es
                })
            })
        );
        // IN EAX, 0x510: type in, SZ32.
        assert_eq!(
            decode(0x7b, 0x0510_0000 | (1 << 6) | 1, 0, regs),
            VmExit::Io(IoAccess {
                port: 0x510,
                size: 4,
                dir: IoDir::In,
                string: None
            })
        );
    }

    #[test]
    fn decodes_msr_npf_and_instruction_intercepts() {
        assert_eq!(decode(0x7c, 0, 0, regs), VmExit::RdMsr);
        assert_eq!(decode(0x7c, 1, 0, regs), VmExit::WrMsr);
        assert_eq!(decode(0x81, 0, 0, regs), VmExit::Hypercall);
        assert_eq!(decode(0x80, 0, 0, regs), VmExit::VirtInstruction);
        assert_eq!(decode(0x7f, 0, 0, regs), VmExit::TripleFault);
        assert_eq!(
            decode(0x400, 0x6, 0xfee0_0000, regs),
            VmExit::NestedPageFault {
                gpa: GuestPhys(0xfee0_0000),
                access: NestedAccess {
                    read: false,
                    write: true,
                    fetch: false
                }
            }
        );
        assert_eq!(
            decode(0x14, (1 << 63) | 3, 0, regs),
            VmExit::CrWrite {
                cr: CrTarget::Reg(ControlReg::Cr4),
                value: 0x1003
            }
        );
        assert_eq!(
            decode(0x14, 3, 0, regs),
            VmExit::CrWriteUndecoded {
                cr: CrTarget::Reg(ControlReg::Cr4)
            },
            "no decode assists: the core decodes"
        );
        assert_eq!(
            decode(0x04, 3, 0, regs),
            VmExit::Raw {
                reason: 0x04,
                info1: 3,
                info2: 0
            }
        );
        assert_eq!(
            decode(0x4242, 1, 2, regs),
            VmExit::Raw {
                reason: 0x4242,
                info1: 1,
                info2: 2
            }
        );
    }
}
