//! CPUID and port-I/O exits finished without the dispatcher (`vmm_core::in_place`): the
//! answer the vCPU had before, or the access made with the VM the dispatcher lent; RIP
//! moved past the exit's instruction length (SDM Vol 3C 28.2.5), the STI shadow ended,
//! and the guest entered again.

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
    assert_eq!(
        v.in_place().take_done().cpuid,
        2,
        "counted for the dispatcher"
    );
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
    assert_eq!(v.in_place().take_done().cpuid, 0);
}

const IO: u32 = 30;
/// A byte OUT to COM1's scratch register, and to QEMU's debug-exit port (a write ends
/// the guest): the exit qualification (SDM Vol 3C Table 28-5).
const OUT_SCR: u64 = 0x3ff << 16;
const OUT_DEBUG_EXIT: u64 = 0xf4 << 16;

/// A vCPU whose entries exit with `reasons`, each I/O exit the byte OUT of AL (0x5a)
/// `qualification` says (1 byte).
fn out_then(qualification: u64, reasons: &[u32]) -> VmxVcpu<FakeVmcs> {
    let mut v = vcpu(PROT);
    exit_with(&mut v, IO, qualification, 1);
    v.vmcs.reasons = reasons.iter().copied().collect();
    v.regs.gprs.r[Gpr::Rax as usize] = 0x5a;
    v
}

#[test]
fn port_accesses_are_finished_without_the_dispatcher_while_a_vm_is_lent() {
    let mut vm = vmm_core::vm::Vm::new(
        "t",
        vmm_core::memory::GuestMemory::new(),
        vmm_core::vm::HostHooks::NONE,
        1,
    );
    let mut v = out_then(OUT_SCR, &[IO, IO, HLT]);
    // SAFETY: `vm` outlives the runs below and nothing else uses it meanwhile.
    unsafe { vmm_core::in_place::lend(&mut v, &mut vm) };
    let rip = raw(&v, GUEST_RIP);
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    assert_eq!(v.vmcs.entries, 3, "entered again after each OUT");
    assert_eq!(raw(&v, GUEST_RIP), rip + 2, "each completed after its byte");
    assert_eq!(v.in_place().take_done().io, 2, "counted for the dispatcher");
    assert_eq!(
        vm.platform.port_read(0x3ff, 1, vm.now()),
        0x5a,
        "the scratch register took AL"
    );
    // The debug-exit port ends the guest: made, not completed, left to the dispatcher.
    let mut v = out_then(OUT_DEBUG_EXIT, &[IO, HLT]);
    // SAFETY: as above.
    unsafe { vmm_core::in_place::lend(&mut v, &mut vm) };
    let rip = raw(&v, GUEST_RIP);
    assert!(matches!(v.run(), Ok(VmExit::Io(_))));
    assert_eq!(raw(&v, GUEST_RIP), rip, "not completed");
    assert_eq!(
        v.in_place().take_left(),
        Some(vmm_core::platform::PlatformEffect::Exit(0x5a))
    );
    // Without a VM lent: the dispatcher's, untouched.
    let mut v = out_then(OUT_SCR, &[IO, HLT]);
    assert!(matches!(v.run(), Ok(VmExit::Io(_))));
    assert_eq!((raw(&v, GUEST_RIP), v.in_place().take_done().io), (rip, 0));
}
