//! Every exit code the decoder maps, with the codes and EXITINFO1 bits written as the
//! manual gives them (APM Vol 2 Appendix C, 15.10.2, 15.25.6, 15.33.1), not through the
//! crate's constants, so that a wrong constant fails here.

use super::decode;
use vmm_core::addr::GuestPhys;
use vmm_core::exit::{IoAccess, IoDir, NestedAccess, StringIo, VmExit};
use vmm_core::vcpu::{ControlReg, CrTarget, Gpr, SegReg};

/// EXITINFO1[63]: a MOV CRn or DRn with decode assists.
const MOV_CR: u64 = 1 << 63;
const MOV_DR: u64 = MOV_CR;

fn regs(r: Gpr) -> u64 {
    0x1000 + r as u64
}

fn exit(code: u64, info1: u64) -> VmExit {
    decode(code, info1, 0, true, regs)
}

fn raw(code: u64, info1: u64) -> VmExit {
    VmExit::Raw {
        reason: code,
        info1,
        info2: 0,
    }
}

const CR0: CrTarget = CrTarget::Reg(ControlReg::Cr0);
const CR3: CrTarget = CrTarget::Reg(ControlReg::Cr3);
const CR4: CrTarget = CrTarget::Reg(ControlReg::Cr4);

#[test]
fn cr_reads_need_decode_assists() {
    assert_eq!(
        exit(0x00, MOV_CR | 3),
        VmExit::CrRead {
            cr: CR0,
            dest: Gpr::Rbx
        }
    );
    assert_eq!(
        exit(0x03, MOV_CR | 15),
        VmExit::CrRead {
            cr: CR3,
            dest: Gpr::R15
        }
    );
    assert_eq!(
        exit(0x08, MOV_CR),
        VmExit::CrRead {
            cr: CrTarget::Cr8,
            dest: Gpr::Rax
        }
    );
    assert_eq!(exit(0x04, 3), raw(0x04, 3), "no decode assists");
    assert_eq!(exit(0x02, MOV_CR), raw(0x02, MOV_CR), "CR2 never exits");
}

#[test]
fn cr_writes_with_decode_assists_carry_the_value() {
    for (code, cr) in [(0x10, CR0), (0x13, CR3), (0x14, CR4), (0x18, CrTarget::Cr8)] {
        assert_eq!(
            exit(code, MOV_CR | 6),
            VmExit::CrWrite { cr, value: 0x1006 },
            "{code:#x}"
        );
    }
}

#[test]
fn cr_writes_without_decode_assists_are_undecoded() {
    for (code, cr) in [(0x10, CR0), (0x13, CR3), (0x14, CR4), (0x18, CrTarget::Cr8)] {
        assert_eq!(exit(code, 3), VmExit::CrWriteUndecoded { cr }, "{code:#x}");
    }
    assert_eq!(exit(0x15, 0), raw(0x15, 0), "CR5 does not exist");
}

#[test]
fn dr_reads_and_writes_with_decode_assists() {
    // Reads of DRn: 0x20 + n; writes: 0x30 + n (APM Vol 2 Table C-1).
    for dr in 0u8..8 {
        assert_eq!(
            exit(0x20 + dr as u64, MOV_DR | 2),
            VmExit::DrRead { dr, dest: Gpr::Rdx },
            "read DR{dr}"
        );
        assert_eq!(
            exit(0x30 + dr as u64, MOV_DR | 12),
            VmExit::DrWrite { dr, value: 0x100c },
            "write DR{dr}"
        );
    }
    assert_eq!(
        exit(0x37, MOV_DR | 4),
        VmExit::DrWrite {
            dr: 7,
            value: 0x1004
        },
        "RSP as the source"
    );
}

#[test]
fn dr_accesses_without_decode_assists_are_undecoded() {
    assert_eq!(
        exit(0x21, 0),
        VmExit::DrAccessUndecoded {
            dr: 1,
            write: false
        }
    );
    assert_eq!(
        exit(0x36, 5),
        VmExit::DrAccessUndecoded { dr: 6, write: true }
    );
}

#[test]
fn smi_and_init_are_the_hosts() {
    assert_eq!(exit(0x62, 0), VmExit::HostSignal, "SMI");
    assert_eq!(exit(0x63, 0), VmExit::HostSignal, "INIT");
}

#[test]
fn exceptions_carry_their_error_code_where_they_push_one() {
    let with_code = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];
    for vector in 0u8..32 {
        let expected = with_code.contains(&vector).then_some(0xbeef);
        assert_eq!(
            exit(0x40 + vector as u64, 0xbeef),
            VmExit::Exception {
                vector,
                error_code: expected
            },
            "vector {vector}"
        );
    }
}

#[test]
fn interrupts_and_simple_instructions() {
    assert_eq!(exit(0x60, 0), VmExit::ExternalInterrupt);
    assert_eq!(exit(0x61, 0), VmExit::Nmi);
    assert_eq!(exit(0x64, 0), VmExit::InterruptWindow);
    assert_eq!(exit(0x72, 0), VmExit::Cpuid);
    assert_eq!(exit(0x76, 0), VmExit::Invd);
    assert_eq!(exit(0x77, 0), VmExit::Pause);
    assert_eq!(exit(0x78, 0), VmExit::Hlt);
    assert_eq!(exit(0x7f, 0), VmExit::TripleFault, "shutdown");
    assert_eq!(exit(0x81, 0), VmExit::Hypercall, "VMMCALL");
    assert_eq!(exit(0x89, 0), VmExit::Wbinvd);
    assert_eq!(exit(0x8d, 0), VmExit::Xsetbv);
}

#[test]
fn msr_exits_tell_reads_from_writes() {
    assert_eq!(exit(0x7c, 0), VmExit::RdMsr);
    assert_eq!(exit(0x7c, 1), VmExit::WrMsr);
}

#[test]
fn svm_instructions_and_monitor_mwait() {
    // VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA.
    for code in [0x80, 0x82, 0x83, 0x84, 0x85, 0x86, 0x7a] {
        assert_eq!(exit(code, 0), VmExit::VirtInstruction, "{code:#x}");
    }
    // MONITOR, MWAIT, MWAIT conditional.
    for code in [0x8a, 0x8b, 0x8c] {
        assert_eq!(exit(code, 0), VmExit::MonitorMwait, "{code:#x}");
    }
}

#[test]
fn unmapped_codes_stay_raw() {
    // RDPMC, the one past XSETBV, DR8 and DR15 (they do not exist), selective CR0 write
    // (not intercepted), past NPF, and garbage.
    for code in [0x6f, 0x8e, 0x28, 0x3f, 0x65, 0x401, 0x4242] {
        assert_eq!(
            decode(code, 1, 2, true, regs),
            VmExit::Raw {
                reason: code,
                info1: 1,
                info2: 2
            }
        );
    }
}

fn io(info1: u64) -> IoAccess {
    match exit(0x7b, info1) {
        VmExit::Io(a) => a,
        other => panic!("not an IOIO exit: {other:?}"),
    }
}

// EXITINFO1 of IOIO (APM Vol 2 15.10.2): TYPE 0, STR 2, REP 3, SZ8/16/32 4-6,
// A16/32/64 7-9, SEG 12:10, PORT 31:16.
const IN: u64 = 1;
const STR: u64 = 1 << 2;
const REP: u64 = 1 << 3;
const SZ8: u64 = 1 << 4;
const SZ16: u64 = 1 << 5;
const SZ32: u64 = 1 << 6;
const A16: u64 = 1 << 7;
const A32: u64 = 1 << 8;
const A64: u64 = 1 << 9;

#[test]
fn ioio_port_direction_and_size() {
    assert_eq!(
        io(0x03f8_0000 | SZ8),
        IoAccess {
            port: 0x3f8,
            size: 1,
            dir: IoDir::Out,
            string: None
        }
    );
    assert_eq!(
        io(0x0510_0000 | SZ32 | IN),
        IoAccess {
            port: 0x510,
            size: 4,
            dir: IoDir::In,
            string: None
        }
    );
    let word = io(0xcfc_0000 | SZ16 | IN);
    assert_eq!((word.port, word.size, word.dir), (0xcfc, 2, IoDir::In));
}

#[test]
fn ioio_string_rep_address_size_and_segment() {
    let s = |info1| io(info1).string;
    assert_eq!(
        s(0x03f8_0000 | STR | REP | SZ8 | A64),
        Some(StringIo {
            rep: true,
            addr_size: 8,
            seg: SegReg::Es
        })
    );
    assert_eq!(
        s(STR | SZ8 | A32 | (3 << 10)),
        Some(StringIo {
            rep: false,
            addr_size: 4,
            seg: SegReg::Ds
        })
    );
    assert_eq!(
        s(STR | SZ16 | A16 | (5 << 10)),
        Some(StringIo {
            rep: false,
            addr_size: 2,
            seg: SegReg::Gs
        })
    );
    for (seg, reg) in [(1, SegReg::Cs), (2, SegReg::Ss), (4, SegReg::Fs)] {
        assert_eq!(s(STR | A64 | (seg << 10)).unwrap().seg, reg);
    }
    assert_eq!(
        s(STR | A64 | (7 << 10)).unwrap().seg,
        SegReg::Ds,
        "no segment"
    );
    assert_eq!(s(REP | SZ8), None, "REP alone is not a string instruction");
}

#[test]
fn without_decode_assists_outs_reads_ds() {
    // Bits 12:10 read 0 there: an OUTS must not be taken as ES:rSI (QEMU's AMD-V has no
    // decode assists).
    let VmExit::Io(io) = decode(0x7b, 0x03f8_0000 | STR | REP | SZ8 | A64, 0, false, regs) else {
        panic!("an IOIO exit");
    };
    assert_eq!(io.string.unwrap().seg, SegReg::Ds);
}

#[test]
fn nested_page_faults_say_read_write_or_fetch() {
    let npf = |info1, read, write, fetch| {
        assert_eq!(
            decode(0x400, info1, 0xfee0_0000, true, regs),
            VmExit::NestedPageFault {
                gpa: GuestPhys(0xfee0_0000),
                access: NestedAccess { read, write, fetch }
            },
            "{info1:#x}"
        );
    };
    // Page-fault error code: P 0, RW 1, US 2, ID 4.
    npf(0x4, true, false, false);
    npf(0x7, false, true, false);
    npf(0x15, false, false, true);
}
