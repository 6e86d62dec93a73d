//! Exit decoding, with the raw numbers of SDM Vol 3C Appendix C and chapter 28 written
//! out (not the decoder's constants), so that a wrong constant fails here.

use super::*;

const MODE: ModeInfo = ModeInfo {
    long64: true,
    cs_big: false,
    ins_outs_info: true,
};

fn regs(r: Gpr) -> u64 {
    0x1000 + r as u64
}

fn exit(reason: u32, qualification: u64) -> RawExit {
    RawExit {
        reason,
        qualification,
        ..Default::default()
    }
}

fn d(raw: RawExit) -> VmExit {
    decode(&raw, MODE, regs, 0)
}

#[test]
fn simple_reasons_map_one_to_one() {
    for (reason, want) in [
        (1, VmExit::ExternalInterrupt),
        (2, VmExit::TripleFault),
        (7, VmExit::InterruptWindow),
        (10, VmExit::Cpuid),
        (12, VmExit::Hlt),
        (40, VmExit::Pause),
        (13, VmExit::Invd),
        (18, VmExit::Hypercall),
        (31, VmExit::RdMsr),
        (32, VmExit::WrMsr),
        (36, VmExit::MonitorMwait),
        (39, VmExit::MonitorMwait),
        (54, VmExit::Wbinvd),
        (55, VmExit::Xsetbv),
    ] {
        assert_eq!(d(exit(reason, 0)), want, "reason {reason}");
    }
}

#[test]
fn vmx_instructions_are_virt_instructions() {
    // VMCLEAR, VMLAUNCH, VMPTRLD, VMPTRST, VMREAD, VMRESUME, VMWRITE, VMXOFF, VMXON,
    // INVEPT, INVVPID, VMFUNC.
    for reason in [19, 20, 21, 22, 23, 24, 25, 26, 27, 50, 53, 59] {
        assert_eq!(
            d(exit(reason, 0)),
            VmExit::VirtInstruction,
            "reason {reason}"
        );
    }
}

#[test]
fn unknown_reasons_keep_their_raw_values() {
    for reason in [3, 9, 17, 37, 62] {
        let raw = RawExit {
            guest_physical: 0x1234,
            ..exit(reason, 5)
        };
        assert_eq!(
            d(raw),
            VmExit::Raw {
                reason: reason as u64,
                info1: 5,
                info2: 0x1234
            }
        );
    }
}

#[test]
fn exceptions_with_and_without_error_code_and_nmi() {
    // #GP(0x18): vector 13, type 3 (hardware exception), error code valid, valid.
    let gp = RawExit {
        interruption_info: (1 << 31) | (1 << 11) | (3 << 8) | 13,
        interruption_error: 0x18,
        ..exit(0, 0)
    };
    assert_eq!(
        d(gp),
        VmExit::Exception {
            vector: 13,
            error_code: Some(0x18)
        }
    );
    // #UD: no error code; the error-code field is ignored.
    let ud = RawExit {
        interruption_info: (1 << 31) | (3 << 8) | 6,
        interruption_error: 0x55,
        ..exit(0, 0)
    };
    assert_eq!(
        d(ud),
        VmExit::Exception {
            vector: 6,
            error_code: None
        }
    );
    // NMI: type 2.
    let nmi = RawExit {
        interruption_info: (1 << 31) | (2 << 8) | 2,
        ..exit(0, 0)
    };
    assert_eq!(d(nmi), VmExit::Nmi);
    // #AC: vector 17, its error code (always 0) delivered.
    let ac = RawExit {
        interruption_info: (1 << 31) | (1 << 11) | (3 << 8) | 17,
        ..exit(0, 0)
    };
    assert_eq!(
        d(ac),
        VmExit::Exception {
            vector: 17,
            error_code: Some(0)
        }
    );
}

#[test]
fn decodes_debug_register_accesses() {
    // Reason 29; qualification (SDM Vol 3C Table 28-4): DR number in bits 2:0, bit 4 set
    // for MOV from DR, the GPR in bits 11:8.
    assert_eq!(
        d(exit(29, (3 << 8) | (1 << 4) | 7)),
        VmExit::DrRead {
            dr: 7,
            dest: Gpr::Rbx
        }
    );
    assert_eq!(
        d(exit(29, (15 << 8) | 4)),
        VmExit::DrWrite {
            dr: 4,
            value: regs(Gpr::R15)
        }
    );
    assert_eq!(
        d(exit(29, (1 << 8) | 2)),
        VmExit::DrWrite {
            dr: 2,
            value: regs(Gpr::Rcx)
        }
    );
}

#[test]
fn dr6_takes_the_breakpoints_of_this_debug_exception() {
    // Old DR6: B0 and BD; this #DB: B2 and BS, and bit 16 (RTM) which DR6 does not take.
    let old = 0xffff_0ff0 | 0x1 | (1 << 13);
    let q = 0x4 | (1 << 14) | (1 << 16);
    assert_eq!(
        dr6_after_debug_exception(old, q),
        0xffff_0ff0 | 0x4 | (1 << 13) | (1 << 14)
    );
}

#[test]
fn decodes_io_including_string_forms() {
    // OUT DX, AL to 0x3f8: size 0 (1 byte), direction out, port in bits 31:16.
    assert_eq!(
        d(exit(30, 0x03f8_0000)),
        VmExit::Io(IoAccess {
            port: 0x3f8,
            size: 1,
            dir: IoDir::Out,
            string: None
        })
    );
    // IN AX, DX from 0x60: size 1 (2 bytes), direction in.
    assert_eq!(
        d(exit(30, 0x0060_0000 | (1 << 3) | 1)),
        VmExit::Io(IoAccess {
            port: 0x60,
            size: 2,
            dir: IoDir::In,
            string: None
        })
    );
    // REP INSD from 0x510 with a 64-bit address (info bits 9:7 = 2) and ES (bits 17:15 = 0).
    let raw = RawExit {
        instruction_info: 2 << 7,
        ..exit(30, 0x0510_0000 | (1 << 5) | (1 << 4) | (1 << 3) | 3)
    };
    assert_eq!(
        d(raw),
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
    // OUTSB with a 16-bit address (bits 9:7 = 0) and an FS override (bits 17:15 = 4).
    let raw = RawExit {
        instruction_info: 4 << 15,
        ..exit(30, 0x0080_0000 | (1 << 4))
    };
    assert_eq!(
        d(raw),
        VmExit::Io(IoAccess {
            port: 0x80,
            size: 1,
            dir: IoDir::Out,
            string: Some(StringIo {
                rep: false,
                addr_size: 2,
                seg: SegReg::Fs
            })
        })
    );
}

#[test]
fn string_io_without_ins_outs_info_takes_the_address_size_from_the_mode() {
    let raw = RawExit {
        instruction_info: (1 << 7) | (4 << 15), // ignored
        ..exit(30, 0x0080_0000 | (1 << 4) | (1 << 5))
    };
    let size = |long64, cs_big| {
        let mode = ModeInfo {
            long64,
            cs_big,
            ins_outs_info: false,
        };
        match decode(&raw, mode, regs, 0) {
            VmExit::Io(IoAccess {
                string: Some(s), ..
            }) => {
                assert_eq!(s.seg, SegReg::Ds);
                assert!(s.rep);
                s.addr_size
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(size(true, false), 8);
    assert_eq!(size(false, true), 4);
    assert_eq!(size(false, false), 2);
}

#[test]
fn decodes_control_register_accesses() {
    // MOV CR4, RBX (CR 4, type 0, register 3).
    assert_eq!(
        d(exit(28, 4 | (3 << 8))),
        VmExit::CrWrite {
            cr: CrTarget::Reg(ControlReg::Cr4),
            value: 0x1003
        }
    );
    // MOV CR8, R12.
    assert_eq!(
        d(exit(28, 8 | (12 << 8))),
        VmExit::CrWrite {
            cr: CrTarget::Cr8,
            value: 0x100c
        }
    );
    // MOV R9, CR8.
    assert_eq!(
        d(exit(28, 8 | (1 << 4) | (9 << 8))),
        VmExit::CrRead {
            cr: CrTarget::Cr8,
            dest: Gpr::R9
        }
    );
    // MOV to CR2 or CR5 does not exist as an exit: raw.
    assert!(matches!(d(exit(28, 5)), VmExit::Raw { reason: 28, .. }));
}

#[test]
fn clts_clears_ts_and_lmsw_cannot_clear_pe() {
    let cr0_write = |value| VmExit::CrWrite {
        cr: CrTarget::Reg(ControlReg::Cr0),
        value,
    };
    // CLTS: type 2.
    assert_eq!(
        decode(&exit(28, 2 << 4), MODE, regs, 0x8000_0019),
        cr0_write(0x8000_0011)
    );
    // LMSW with source 0 (type 3, source data in bits 31:16): PE stays.
    assert_eq!(decode(&exit(28, 3 << 4), MODE, regs, 0x1f), cr0_write(0x11));
    // LMSW 0xb sets PE, EM, TS and clears MP.
    assert_eq!(
        decode(&exit(28, (3 << 4) | (0xb << 16)), MODE, regs, 0x12),
        cr0_write(0x1b)
    );
}

#[test]
fn ept_violations_carry_the_access_bits() {
    for (q, read, write, fetch) in [
        (1, true, false, false),
        (2, false, true, false),
        (4, false, false, true),
        (3, true, true, false),
    ] {
        let raw = RawExit {
            guest_physical: 0xfee0_0000,
            ..exit(48, q)
        };
        assert_eq!(
            d(raw),
            VmExit::NestedPageFault {
                gpa: GuestPhys(0xfee0_0000),
                access: NestedAccess { read, write, fetch }
            },
            "qualification {q}"
        );
    }
}

#[test]
fn entry_failures_are_errors() {
    let fail = |basic: u32| entry_failure(&exit((1 << 31) | basic, 7));
    for (basic, what) in [
        (33, "VM entry failed: invalid guest state"),
        (34, "VM entry failed: MSR loading"),
        (41, "VM entry failed: machine-check event"),
        (35, "VM entry failed"),
    ] {
        assert_eq!(fail(basic), Some(VcpuError { what, code: 7 }));
    }
    assert_eq!(
        entry_failure(&exit(33, 0)),
        None,
        "no bit 31: not a failure"
    );
    assert_eq!(entry_failure(&exit(12, 0)), None);
}

#[test]
fn the_exits_read_without_qualification_are_decoded_without_it() {
    let mut skipped = 0;
    for basic in 0..=70u32 {
        if needs_qualification(basic) {
            continue;
        }
        skipped += 1;
        let a = d(exit(basic, 0));
        let b = d(exit(basic, u64::MAX));
        assert_eq!(a, b, "reason {basic} depends on the qualification");
        assert!(
            !matches!(a, VmExit::Raw { .. }),
            "reason {basic} is left raw"
        );
    }
    // CPUID (10), RDMSR (31), WRMSR (32) among them; CR access (28), I/O (30) and EPT
    // violations (48) not.
    assert!(skipped >= 20);
    assert!([10, 31, 32].iter().all(|&r| !needs_qualification(r)));
    assert!([0, 28, 29, 30, 48].iter().all(|&r| needs_qualification(r)));
}

#[test]
fn apic_exits_of_virtual_interrupt_delivery() {
    // APIC access (44): offset in bits 11:0, type in 15:12 (0 read, 1 write), at the
    // APIC-access page, which the EPT maps at 0xFEE00000 only.
    let npf = |gpa: u64, write: bool| VmExit::NestedPageFault {
        gpa: GuestPhys(gpa),
        access: NestedAccess {
            read: !write,
            write,
            fetch: false,
        },
    };
    assert_eq!(d(exit(44, 0x0390)), npf(0xfee0_0390, false));
    assert_eq!(d(exit(44, 0x1380)), npf(0xfee0_0380, true));
    // A fetch (2) or an access during event delivery (3) stays raw.
    for q in [0x2000, 0x3000] {
        assert!(
            matches!(d(exit(44, q)), VmExit::Raw { reason: 44, .. }),
            "{q:#x}"
        );
    }
    // EOI-induced (45): the vector; APIC write (56): the offset.
    assert_eq!(d(exit(45, 0x39)), VmExit::ApicEoi { vector: 0x39 });
    assert_eq!(d(exit(56, 0x300)), VmExit::ApicWrite { offset: 0x300 });
}

#[test]
fn only_exits_that_can_interrupt_an_events_delivery_read_its_vectoring_information() {
    use super::may_interrupt_delivery;
    use super::reason as r;
    for basic in [
        r::CPUID,
        r::HLT,
        r::IO,
        r::RDMSR,
        r::VIRTUALIZED_EOI,
        r::APIC_WRITE,
    ] {
        assert!(
            !may_interrupt_delivery(basic),
            "{basic}: after an instruction"
        );
    }
    for basic in [
        r::EXCEPTION_OR_NMI,
        r::EPT_VIOLATION,
        r::APIC_ACCESS,
        r::TRIPLE_FAULT,
    ] {
        assert!(
            may_interrupt_delivery(basic),
            "{basic}: during delivery too"
        );
    }
}
