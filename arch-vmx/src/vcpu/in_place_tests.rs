//! CPUID exits finished without the dispatcher (`vmm_core::in_place`): the answer the
//! vCPU had before, RIP moved past the exit's instruction length (SDM Vol 3C 28.2.5), the
//! STI shadow ended, and the guest entered again.

use super::tests::*;
use super::*;
use crate::vmcs::fake::FakeVmcs;

const CPUID: u32 = 10;
const HLT: u32 = 12;
const GUEST_RIP: u32 = 0x681e;
const GUEST_RFLAGS: u32 = 0x6820;
const INTERRUPTIBILITY: u32 = 0x4824;
/// Leaf 6's answer, remembered: its EAX asks leaf 6 again at the next CPUID.
const ANSWER: [u32; 4] = [6, 0x22, 0, 0x44];

/// A vCPU whose next entries exit with `reasons`, each CPUID asking leaf 6 (2 bytes,
/// in an STI shadow), the answer remembered.
fn exiting(reasons: &[u32]) -> VmxVcpu<FakeVmcs> {
    let mut v = vcpu(PROT);
    exit_with(&mut v, CPUID, 0, 2);
    v.vmcs.reasons = reasons.iter().copied().collect();
    v.in_place().answers.get_or(6, 0, || ANSWER);
    (
        v.regs.gprs.r[Gpr::Rax as usize],
        v.regs.gprs.r[Gpr::Rcx as usize],
    ) = (6, 0);
    set_raw(&mut v, INTERRUPTIBILITY, 1);
    v
}

#[test]
fn a_cpuid_answered_before_is_finished_without_the_dispatcher() {
    let mut v = exiting(&[CPUID, CPUID, HLT]);
    let rip = raw(&v, GUEST_RIP);
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    assert_eq!(v.vmcs.entries, 3, "entered again after each CPUID");
    assert_eq!(raw(&v, GUEST_RIP), rip + 4);
    assert_eq!(v.gpr(Gpr::Rbx), 0x22);
    assert_eq!(v.gpr(Gpr::Rdx), 0x44);
    assert_eq!(raw(&v, INTERRUPTIBILITY), 0, "the STI shadow ended");
    assert_eq!(v.in_place().take_done(), 2, "counted for the dispatcher");
}

#[test]
fn a_new_leaf_or_a_single_step_goes_to_the_dispatcher() {
    let mut v = exiting(&[CPUID, HLT]);
    v.regs.gprs.r[Gpr::Rax as usize] = 7;
    let rip = raw(&v, GUEST_RIP);
    assert_eq!(v.run(), Ok(VmExit::Cpuid), "leaf 7 not answered yet");
    assert_eq!((raw(&v, GUEST_RIP), v.gpr(Gpr::Rax)), (rip, 7), "untouched");
    assert_eq!(raw(&v, INTERRUPTIBILITY), 1);
    let mut v = exiting(&[CPUID, HLT]);
    set_raw(&mut v, GUEST_RFLAGS, 2 | 1 << 8);
    assert_eq!(v.run(), Ok(VmExit::Cpuid), "single-step");
    assert_eq!(v.in_place().take_done(), 0);
}
