//! What keeps guests apart on one host CPU: debug registers and their exits, `put` and
//! `load` of what lives only in the CPU, the intercepts every guest has, and `release`.
//! The pretend CPU (`resident::fake`) is this test thread's own.

use super::tests::*;
use super::*;
use crate::resident::fake::FakeCpu;
use crate::resident::CpuRegs;
use crate::test_frames::Frames;
use crate::vmcs::fake::FakeVmcs;
use vmm_core::cpu_rules::dr::DR6_RESET;

const EXCEPTION_BITMAP: u32 = 0x4004;
const TSC_OFFSET: u32 = 0x2010;
const GUEST_DR7: u32 = 0x681a;
const PENDING_DEBUG_EXCEPTIONS: u32 = 0x6822;
const EXIT_INTERRUPTION_INFO: u32 = 0x4404;

fn unloaded() -> VmxVcpu<FakeVmcs> {
    vcpu_from(PROT, FakeVmcs::default(), None, pool()).unwrap()
}

fn hw(r: Resident) -> u64 {
    FakeCpu::read(r)
}

#[test]
fn setup_intercepts_db_ac_and_mov_dr_and_zeroes_the_tsc_offset() {
    let v = vcpu(PROT);
    assert_eq!(
        raw(&v, EXCEPTION_BITMAP),
        (1 << 1) | (1 << 17),
        "#DB and #AC"
    );
    assert_ne!(raw(&v, PRIMARY_PROC_BASED) & (1 << 23), 0, "MOV-DR exiting");
    assert_eq!(raw(&v, TSC_OFFSET), 0);
    assert_eq!(raw(&v, GUEST_DR7), 0x400);
}

#[test]
fn debug_registers_start_at_their_reset_values() {
    let v = unloaded();
    for r in DebugReg::ADDRESSES {
        assert_eq!(v.debug_reg(r), 0, "{r:?}");
    }
    assert_eq!(v.debug_reg(DebugReg::Dr6), 0xffff_0ff0);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x400);
}

#[test]
fn dr7_is_the_vmcs_field_and_the_others_reach_the_cpu_while_loaded() {
    let mut v = unloaded();
    v.set_debug_reg(DebugReg::Dr7, 0x0001_0403);
    assert_eq!(raw(&v, GUEST_DR7), 0x0001_0403);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x0001_0403);
    FakeCpu::write(Resident::Dr1, 0x77);
    v.set_debug_reg(DebugReg::Dr1, 0x1000);
    assert_eq!(
        hw(Resident::Dr1),
        0x77,
        "not loaded: the CPU is not this vCPU's"
    );
    v.load();
    assert_eq!(hw(Resident::Dr1), 0x1000);
    v.set_debug_reg(DebugReg::Dr2, 0x2000);
    v.set_debug_reg(DebugReg::Dr6, DR6_RESET | 1);
    assert_eq!(
        (hw(Resident::Dr2), hw(Resident::Dr6)),
        (0x2000, DR6_RESET | 1)
    );
    assert_eq!(v.debug_reg(DebugReg::Dr2), 0x2000);
}

/// Two vCPUs take turns on one CPU; while one is loaded the CPU's registers are its own,
/// changed by the guest without an exit (WRMSR of a pass-through MSR, SWAPGS).
#[test]
fn put_keeps_and_load_restores_what_lives_in_the_cpu() {
    let (mut a, mut b) = (unloaded(), unloaded());
    a.load();
    for (i, r) in DebugReg::ADDRESSES.into_iter().enumerate() {
        a.set_debug_reg(r, 0x1000 * (i as u64 + 1));
    }
    a.set_state_msr(StateMsr::Star, 0x0023_0010_0000_0000)
        .unwrap();
    // The guest runs: its breakpoint hits and it changes two MSRs itself.
    FakeCpu::write(Resident::Dr6, DR6_RESET | 0x4002);
    FakeCpu::write(Resident::Dr3, 0x3333);
    FakeCpu::write(Resident::Lstar, 0xffff_8000_0000_1000);
    FakeCpu::write(Resident::KernelGsBase, 0xffff_8000_0000_2000);
    a.put();
    b.load();
    for r in Resident::ALL {
        let want = if r == Resident::Dr6 { DR6_RESET } else { 0 };
        assert_eq!(hw(r), want, "{r:?}: b sees none of a's");
    }
    assert_eq!(a.state_msr(StateMsr::Lstar), 0xffff_8000_0000_1000);
    assert_eq!(a.debug_reg(DebugReg::Dr3), 0x3333);
    b.set_state_msr(StateMsr::Lstar, 0xb).unwrap();
    b.put();
    a.load();
    let want = [
        (Resident::Dr0, 0x1000),
        (Resident::Dr1, 0x2000),
        (Resident::Dr2, 0x3000),
        (Resident::Dr3, 0x3333),
        (Resident::Dr6, DR6_RESET | 0x4002),
        (Resident::KernelGsBase, 0xffff_8000_0000_2000),
        (Resident::Star, 0x0023_0010_0000_0000),
        (Resident::Lstar, 0xffff_8000_0000_1000),
        (Resident::Cstar, 0),
        (Resident::Fmask, 0),
    ];
    for (r, v) in want {
        assert_eq!(hw(r), v, "{r:?} back in the CPU");
    }
    assert_eq!(b.state_msr(StateMsr::Lstar), 0xb);
}

/// TSC_AUX is the loaded guest's while it runs (its RDTSCP reads the CPU's) and the
/// host's 0 between guests; the guest changes it only by an intercepted WRMSR.
#[test]
fn tsc_aux_is_the_loaded_guests_and_the_hosts_afterwards() {
    use crate::resident::fake::tsc_aux;
    let (mut a, mut b) = (unloaded(), unloaded());
    a.set_state_msr(StateMsr::TscAux, 0xa).unwrap();
    assert_eq!(tsc_aux(), 0, "not loaded: the CPU is not a's");
    a.load();
    assert_eq!(tsc_aux(), 0xa);
    a.set_state_msr(StateMsr::TscAux, 0xaa).unwrap();
    assert_eq!(tsc_aux(), 0xaa, "loaded: at once");
    a.put();
    assert_eq!(tsc_aux(), 0, "the host's value back");
    b.load();
    assert_eq!(tsc_aux(), 0, "b never set it: a's is gone");
    b.put();
    a.load();
    assert_eq!((tsc_aux(), a.state_msr(StateMsr::TscAux)), (0xaa, 0xaa));
    a.put();
}

#[test]
fn run_refuses_a_vcpu_that_is_not_loaded() {
    let mut v = unloaded();
    exit_with(&mut v, 12, 0, 1);
    let not_loaded = Err(VcpuError {
        what: "vCPU not loaded",
        code: 0,
    });
    assert_eq!(v.run(), not_loaded);
    v.load();
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    v.put();
    assert_eq!(v.run(), not_loaded);
    assert_eq!(v.vmcs.entries, 1, "the guest ran only while loaded");
}

#[test]
fn cr2_is_the_cpus_while_loaded_and_kept_across_put_and_load() {
    let (mut a, mut b) = (unloaded(), unloaded());
    a.set_cr(ControlReg::Cr2, 0xa000).unwrap();
    assert_eq!(hw(Resident::Cr2), 0, "not loaded: the CPU's CR2 untouched");
    a.load();
    assert_eq!(hw(Resident::Cr2), 0xa000);
    // The guest takes a page fault without an exit: the CPU's CR2 changes.
    FakeCpu::write(Resident::Cr2, 0xbad0);
    assert_eq!(a.cr(ControlReg::Cr2), 0xbad0);
    a.put();
    b.load();
    assert_eq!(hw(Resident::Cr2), 0, "b's own");
    b.put();
    a.load();
    assert_eq!(hw(Resident::Cr2), 0xbad0, "a's, as it left it");
    a.put();
}

#[test]
fn the_vmcs_is_pinned_current_exactly_while_loaded() {
    let mut v = unloaded();
    assert!(!v.vmcs.pinned);
    v.load();
    assert!(
        v.vmcs.pinned,
        "the exit path reaches it without a VMPTRLD check"
    );
    v.put();
    assert!(!v.vmcs.pinned, "another vCPU's VMCS may be current now");
}

#[test]
fn a_vmcs_that_cannot_be_made_current_fails_the_next_run() {
    let mut v = unloaded();
    exit_with(&mut v, 12, 0, 1);
    v.vmcs.pin_fails = true;
    v.load();
    assert_eq!(
        v.run(),
        Err(VcpuError {
            what: "VMPTRLD of the vCPU's VMCS failed",
            code: 0,
        })
    );
    assert_eq!(v.vmcs.entries, 0, "the guest did not run");
}

/// A #DB exit (vector 1, hardware exception) with the given qualification.
fn debug_exit(v: &mut VmxVcpu<FakeVmcs>, qualification: u64, info: u64) {
    exit_with(v, 0, qualification, 0);
    set_raw(v, EXIT_INTERRUPTION_INFO, info);
}

#[test]
fn a_debug_exception_sets_dr6_as_the_cpu_would() {
    let mut v = vcpu(PROT);
    v.set_debug_reg(DebugReg::Dr6, DR6_RESET | 0x1);
    // B1 and BS (SDM Vol 3C Table 28-1).
    debug_exit(&mut v, 0x4002, 0x8000_0301);
    let want = VmExit::Exception {
        vector: 1,
        error_code: None,
    };
    assert_eq!(v.run(), Ok(want));
    assert_eq!(v.debug_reg(DebugReg::Dr6), DR6_RESET | 0x4002, "B0 cleared");
    assert_eq!(hw(Resident::Dr6), DR6_RESET | 0x4002);
    assert_eq!(
        raw(&v, PENDING_DEBUG_EXCEPTIONS),
        0,
        "no shadow: nothing pending"
    );
}

#[test]
fn a_debug_exception_in_a_shadow_with_tf_leaves_a_single_step_pending() {
    let mut v = vcpu(PROT);
    set_raw(&mut v, GUEST_RFLAGS, 0x102);
    set_raw(&mut v, INTERRUPTIBILITY, 2); // MOV SS
    debug_exit(&mut v, 0x1, 0x8000_0301);
    assert!(v.run().is_ok());
    assert_eq!(raw(&v, PENDING_DEBUG_EXCEPTIONS), 1 << 14, "BS");
}

#[test]
fn an_icebp_is_stepped_over_and_leaves_dr6_alone() {
    let mut v = vcpu(PROT);
    // INT1: privileged software exception (type 5), one byte.
    debug_exit(&mut v, 0, 0x8000_0501);
    set_raw(&mut v, 0x440c, 1);
    assert!(matches!(v.run(), Ok(VmExit::Exception { vector: 1, .. })));
    assert_eq!(raw(&v, GUEST_RIP), 0x10_0001);
    assert_eq!(v.debug_reg(DebugReg::Dr6), DR6_RESET);
}

#[test]
fn release_gives_back_every_frame_after_vmclear() {
    let mut frames = Frames::new(64);
    let vpids = pool();
    let v = vcpu_from(PROT, FakeVmcs::default(), Some(&mut frames), vpids).unwrap();
    let w = vcpu_from(PROT, FakeVmcs::default(), Some(&mut frames), vpids).unwrap();
    assert!(frames.live() >= 10, "two VMCS, EPTs and MSR bitmaps");
    assert_ne!(
        raw(&v, 0x0000),
        raw(&w, 0x0000),
        "two live vCPUs, two VPIDs"
    );
    assert!(
        raw(&v, 0x0000) != 0 && raw(&w, 0x0000) != 0,
        "VPID 0 is the host's"
    );
    v.release(&mut frames);
    let left = frames.live();
    w.release(&mut frames);
    assert_eq!(frames.live(), 0, "{left} frames were w's");
}

#[test]
fn release_keeps_a_vmcs_whose_vmclear_failed() {
    let mut frames = Frames::new(64);
    let mut v = vcpu_from(PROT, FakeVmcs::default(), Some(&mut frames), pool()).unwrap();
    v.vmcs.clear_fails = true;
    let vmcs = v.structures.vmcs;
    v.release(&mut frames);
    assert_eq!(frames.live_frames(), vec![vmcs]);
}
