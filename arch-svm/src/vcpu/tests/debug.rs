//! Debug registers and put/load: DR6 and DR7 live in the VMCB save area (APM Vol 2
//! Appendix B, Table B-2: offsets 0x160 and 0x168), DR0-DR3 in the vCPU's copy and, while
//! it is loaded, in the (stand-in) hardware registers.

use super::{vcpu, LONG, PROTECTED};
use crate::debug_regs::fake::hardware;
use vmm_core::vcpu::{ArchVcpu, DebugReg, StateMsr};

const ADDRESSES: [DebugReg; 4] = [DebugReg::Dr0, DebugReg::Dr1, DebugReg::Dr2, DebugReg::Dr3];

#[test]
fn reset_values() {
    let v = vcpu(PROTECTED);
    for r in ADDRESSES {
        assert_eq!(v.debug_reg(r), 0, "{r:?}");
    }
    assert_eq!(v.debug_reg(DebugReg::Dr6), 0xffff_0ff0);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x400);
}

#[test]
fn dr6_and_dr7_are_the_vmcbs() {
    let mut v = vcpu(PROTECTED);
    v.set_debug_reg(DebugReg::Dr7, 0x1_2403);
    v.set_debug_reg(DebugReg::Dr6, 0xffff_4ff1);
    assert_eq!(v.vmcb.save.dr7, 0x1_2403, "the guest state VMRUN loads");
    assert_eq!(v.vmcb.save.dr6, 0xffff_4ff1);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x1_2403);
    assert_eq!(v.debug_reg(DebugReg::Dr6), 0xffff_4ff1);
    assert_eq!(hardware(), None, "DR6/DR7 never go to the host's registers");
}

#[test]
fn addresses_reach_the_hardware_only_while_loaded() {
    let mut v = vcpu(PROTECTED);
    v.set_debug_reg(DebugReg::Dr2, 0x1000);
    assert_eq!(hardware(), None, "not loaded: the hardware is left alone");
    assert_eq!(v.debug_reg(DebugReg::Dr2), 0x1000);
    v.load();
    assert_eq!(hardware(), Some([0, 0, 0x1000, 0]), "load puts the copy in");
    v.set_debug_reg(DebugReg::Dr3, 0x2000);
    assert_eq!(
        hardware(),
        Some([0, 0, 0x1000, 0x2000]),
        "loaded: written through"
    );
    assert_eq!(v.debug_reg(DebugReg::Dr3), 0x2000);
}

#[test]
fn two_guests_on_one_cpu_keep_their_own_registers() {
    let mut a = vcpu(PROTECTED);
    let mut b = vcpu(LONG);
    a.load();
    for (i, r) in ADDRESSES.into_iter().enumerate() {
        a.set_debug_reg(r, 0xa000 + i as u64);
    }
    a.set_debug_reg(DebugReg::Dr7, 0x403);
    a.set_state_msr(StateMsr::Lstar, 0xaaaa).unwrap();
    a.put();
    b.load();
    assert_eq!(hardware(), Some([0; 4]), "b starts from its reset values");
    b.set_debug_reg(DebugReg::Dr0, 0xb000);
    b.set_state_msr(StateMsr::Lstar, 0xbbbb).unwrap();
    a.set_debug_reg(DebugReg::Dr1, 0xa111);
    assert_eq!(
        hardware(),
        Some([0xb000, 0, 0, 0]),
        "a, put, no longer writes b's hardware"
    );
    b.put();
    a.load();
    assert_eq!(hardware(), Some([0xa000, 0xa111, 0xa002, 0xa003]));
    assert_eq!(a.debug_reg(DebugReg::Dr0), 0xa000);
    assert_eq!(a.debug_reg(DebugReg::Dr7), 0x403);
    assert_eq!(b.debug_reg(DebugReg::Dr0), 0xb000, "put or not");
    assert_eq!(b.debug_reg(DebugReg::Dr7), 0x400);
    assert_eq!(a.state_msr(StateMsr::Lstar), 0xaaaa);
    assert_eq!(b.state_msr(StateMsr::Lstar), 0xbbbb);
}

#[test]
fn a_vcpu_runs_only_while_loaded() {
    let mut v = vcpu(PROTECTED);
    let not_loaded =
        |r: Result<_, vmm_core::vcpu::VcpuError>| r.is_err_and(|e| e.what == "vCPU not loaded");
    assert!(not_loaded(v.run()), "never loaded");
    v.load();
    v.put();
    assert!(not_loaded(v.run()), "put");
}

/// TSC_AUX, which no VMCB field holds: the loaded guest's in the register (its RDTSCP
/// reads it without an exit), the host's 0 once it is put.
#[test]
fn tsc_aux_is_in_the_register_only_while_loaded() {
    use crate::tsc_aux::fake::hardware as tsc_aux;
    let (mut a, mut b) = (vcpu(PROTECTED), vcpu(PROTECTED));
    a.set_state_msr(StateMsr::TscAux, 7).unwrap();
    assert_eq!(tsc_aux(), 0, "not loaded: the register is left alone");
    a.load();
    assert_eq!(tsc_aux(), 7);
    a.set_state_msr(StateMsr::TscAux, 0x77).unwrap();
    assert_eq!((tsc_aux(), a.state_msr(StateMsr::TscAux)), (0x77, 0x77));
    a.put();
    assert_eq!(tsc_aux(), 0, "the host's value back");
    b.load();
    assert_eq!(tsc_aux(), 0, "b sees none of a's");
    b.put();
    a.load();
    assert_eq!(tsc_aux(), 0x77);
}
