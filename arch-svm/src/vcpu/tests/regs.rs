//! Where GPRs, segments and state MSRs live (APM Vol 2 Appendix B, Table B-2).

use super::{vcpu, LONG, PROTECTED};
use vmm_core::vcpu::{ArchVcpu, Gpr, SegReg, StateMsr};

#[test]
fn rax_and_rsp_live_in_the_save_area_the_rest_in_the_gpr_file() {
    let mut v = vcpu(PROTECTED);
    assert_eq!(v.gpr(Gpr::Rax), 0x2bad_b002, "EAX from the start state");
    assert_eq!(v.gpr(Gpr::Rbx), 0x9000);
    for r in Gpr::ALL {
        v.set_gpr(r, 0x1000 + r as u64);
    }
    for r in Gpr::ALL {
        assert_eq!(v.gpr(r), 0x1000 + r as u64, "{r:?} reads back");
    }
    assert_eq!(v.vmcb.save.rax, 0x1000, "RAX is the VMCB's");
    assert_eq!(v.vmcb.save.rsp, 0x1004, "RSP is the VMCB's");
    for r in Gpr::ALL {
        if !matches!(r, Gpr::Rax | Gpr::Rsp) {
            assert_eq!(
                v.run.gprs.r[r as usize],
                0x1000 + r as u64,
                "{r:?} in the file"
            );
        }
    }
    assert_eq!(
        v.run.gprs.r[Gpr::Rax as usize],
        0x2bad_b002,
        "the file's RAX slot unused"
    );
    assert_eq!(
        v.run.gprs.r[Gpr::Rsp as usize],
        0,
        "the file's RSP slot unused"
    );
}

#[test]
fn segments_read_back_as_the_start_state_set_them() {
    let st = PROTECTED.initial_state();
    let v = vcpu(PROTECTED);
    assert_eq!(v.segment(SegReg::Cs), st.cs);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        assert_eq!(v.segment(s), st.data, "{s:?}");
    }
    assert_eq!(v.cpl(), 0);
    let long = vcpu(LONG);
    let cs = long.segment(SegReg::Cs);
    assert!(cs.long() && cs.present() && !cs.default_big());
    assert_eq!(cs.selector, 0x10);
}

#[test]
fn state_msrs_read_back_and_fs_gs_bases_are_the_segments() {
    let mut v = vcpu(LONG);
    let msrs = [
        StateMsr::Pat,
        StateMsr::FsBase,
        StateMsr::GsBase,
        StateMsr::KernelGsBase,
        StateMsr::SysenterCs,
        StateMsr::SysenterEsp,
        StateMsr::SysenterEip,
        StateMsr::Star,
        StateMsr::Lstar,
        StateMsr::Cstar,
        StateMsr::Fmask,
    ];
    for (i, &m) in msrs.iter().enumerate() {
        v.set_state_msr(m, 0x100 + i as u64).unwrap();
    }
    for (i, &m) in msrs.iter().enumerate() {
        assert_eq!(v.state_msr(m), 0x100 + i as u64, "{m:?}");
    }
    assert_eq!(v.segment(SegReg::Fs).base, 0x101);
    assert_eq!(v.segment(SegReg::Gs).base, 0x102);
}
