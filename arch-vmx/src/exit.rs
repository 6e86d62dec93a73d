//! VMX exit reasons (SDM Vol 3C Appendix C) turned into the core's `VmExit`.

use vmm_core::addr::GuestPhys;
use vmm_core::exit::{IoAccess, IoDir, NestedAccess, StringIo, VmExit};
use vmm_core::vcpu::{ControlReg, CrTarget, Gpr, SegReg};

/// What a VM exit left in the VMCS's read-only fields (SDM Vol 3C 25.9).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawExit {
    pub reason: u32,
    pub qualification: u64,
    pub instruction_info: u32,
    pub interruption_info: u32,
    pub interruption_error: u32,
    pub guest_physical: u64,
}

/// The guest's mode, which decides the address size of string I/O when the CPU does not
/// report it.
#[derive(Clone, Copy, Debug)]
pub struct ModeInfo {
    pub long64: bool,
    pub cs_big: bool,
    /// IA32_VMX_BASIC bit 54: instruction information is valid for INS/OUTS.
    pub ins_outs_info: bool,
}

const CR0_TS: u64 = 1 << 3;

/// Decodes one exit. `gpr` reads guest registers (for MOV to CR), `cr0` is the CR0 the
/// guest sees (for CLTS and LMSW).
pub fn decode(raw: &RawExit, mode: ModeInfo, gpr: impl Fn(Gpr) -> u64, cr0: u64) -> VmExit {
    let q = raw.qualification;
    let raw_exit = VmExit::Raw {
        reason: raw.reason as u64,
        info1: q,
        info2: raw.guest_physical,
    };
    match raw.reason & 0xffff {
        // Exception or NMI (SDM Vol 3C 25.9.2: interruption type in bits 10:8).
        0 => {
            let info = raw.interruption_info;
            if (info >> 8) & 7 == 2 {
                VmExit::Nmi
            } else {
                VmExit::Exception {
                    vector: info as u8,
                    error_code: (info & (1 << 11) != 0).then_some(raw.interruption_error),
                }
            }
        }
        1 => VmExit::ExternalInterrupt,
        2 => VmExit::TripleFault,
        7 => VmExit::InterruptWindow,
        10 => VmExit::Cpuid,
        12 => VmExit::Hlt,
        13 => VmExit::Invd,
        18 => VmExit::Hypercall,
        // VMCLEAR .. VMXON, INVEPT, INVVPID, VMFUNC.
        19..=27 | 50 | 53 | 59 => VmExit::VirtInstruction,
        // Control-register access (SDM Vol 3C Table 28-3).
        28 => {
            let Some(cr) = CrTarget::from_number(q & 0xf) else {
                return raw_exit;
            };
            let Some(reg) = Gpr::from_index(((q >> 8) & 0xf) as u8) else {
                return raw_exit;
            };
            match (q >> 4) & 3 {
                0 => VmExit::CrWrite {
                    cr,
                    value: gpr(reg),
                },
                1 => VmExit::CrRead { cr, dest: reg },
                2 => VmExit::CrWrite {
                    cr: CrTarget::Reg(ControlReg::Cr0),
                    value: cr0 & !CR0_TS,
                },
                // LMSW loads CR0 bits 3:0 but cannot clear PE (SDM Vol 2A, LMSW).
                _ => {
                    let src = (q >> 16) & 0xf;
                    VmExit::CrWrite {
                        cr: CrTarget::Reg(ControlReg::Cr0),
                        value: (cr0 & !0xe) | src,
                    }
                }
            }
        }
        // I/O instruction (SDM Vol 3C Table 28-5; instruction information Table 28-8).
        30 => {
            let string = (q & (1 << 4) != 0).then(|| {
                let info = raw.instruction_info;
                let (addr_size, seg) = if mode.ins_outs_info {
                    (
                        2u8 << ((info >> 7) & 3),
                        SegReg::from_index(((info >> 15) & 7) as u8).unwrap_or(SegReg::Ds),
                    )
                } else {
                    (
                        if mode.long64 {
                            8
                        } else if mode.cs_big {
                            4
                        } else {
                            2
                        },
                        SegReg::Ds,
                    )
                };
                StringIo {
                    rep: q & (1 << 5) != 0,
                    addr_size,
                    seg,
                }
            });
            VmExit::Io(IoAccess {
                port: (q >> 16) as u16,
                size: (q & 7) as u8 + 1,
                dir: if q & (1 << 3) != 0 {
                    IoDir::In
                } else {
                    IoDir::Out
                },
                string,
            })
        }
        // MWAIT (36) and MONITOR (39), SDM Vol 3D Appendix C.
        36 | 39 => VmExit::MonitorMwait,
        31 => VmExit::RdMsr,
        32 => VmExit::WrMsr,
        // EPT violation (SDM Vol 3C Table 28-7).
        48 => VmExit::NestedPageFault {
            gpa: GuestPhys(raw.guest_physical),
            access: NestedAccess {
                read: q & 1 != 0,
                write: q & 2 != 0,
                fetch: q & 4 != 0,
            },
        },
        54 => VmExit::Wbinvd,
        55 => VmExit::Xsetbv,
        _ => raw_exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODE: ModeInfo = ModeInfo {
        long64: true,
        cs_big: false,
        ins_outs_info: true,
    };

    fn regs(r: Gpr) -> u64 {
        0x1000 + r as u64
    }

    #[test]
    fn decodes_io_including_string_forms() {
        // OUT DX, AL to 0x3f8: size 0 (1 byte), direction out, port in bits 31:16.
        let raw = RawExit {
            reason: 30,
            qualification: 0x03f8_0000,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::Io(IoAccess {
                port: 0x3f8,
                size: 1,
                dir: IoDir::Out,
                string: None
            })
        );
        // REP INSD from 0x510 with a 64-bit address (info bits 9:7 = 2) and ES (bits 17:15 = 0).
        let raw = RawExit {
            reason: 30,
            qualification: 0x0510_0000 | (1 << 5) | (1 << 4) | (1 << 3) | 3,
            instruction_info: 2 << 7,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::Io(IoAccess {
                port: 0x510,
                size: 4,
                dir: IoDir::In,
                string: Some(StringIo {
                    rep: true,
                    addr_size: 8,
                    seg: SegReg::Es
                })
            })
        );
    }

    #[test]
    fn decodes_control_register_accesses() {
        // MOV CR4, RBX (CR 4, type 0, register 3).
        let raw = RawExit {
            reason: 28,
            qualification: 4 | (3 << 8),
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::CrWrite {
                cr: CrTarget::Reg(ControlReg::Cr4),
                value: 0x1003
            }
        );
        // MOV R9, CR8.
        let raw = RawExit {
            reason: 28,
            qualification: 8 | (1 << 4) | (9 << 8),
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::CrRead {
                cr: CrTarget::Cr8,
                dest: Gpr::R9
            }
        );
        // CLTS clears TS; LMSW cannot clear PE.
        let raw = RawExit {
            reason: 28,
            qualification: 2 << 4,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0x8000_0019),
            VmExit::CrWrite {
                cr: CrTarget::Reg(ControlReg::Cr0),
                value: 0x8000_0011
            }
        );
        let raw = RawExit {
            reason: 28,
            qualification: 3 << 4,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0x11),
            VmExit::CrWrite {
                cr: CrTarget::Reg(ControlReg::Cr0),
                value: 0x11
            }
        );
    }

    #[test]
    fn unknown_reasons_keep_their_raw_values() {
        let raw = RawExit {
            reason: 62,
            qualification: 5,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::Raw {
                reason: 62,
                info1: 5,
                info2: 0
            }
        );
        let raw = RawExit {
            reason: 48,
            qualification: 2,
            guest_physical: 0xfee0_0000,
            ..Default::default()
        };
        assert_eq!(
            decode(&raw, MODE, regs, 0),
            VmExit::NestedPageFault {
                gpa: GuestPhys(0xfee0_0000),
                access: NestedAccess {
                    read: false,
                    write: true,
                    fetch: false
                }
            }
        );
    }
}
