//! CPUID, and the exits that end the guest or report what Janus does not handle.

use super::complete;
use crate::cpuid::{vcpu_cpuid, Topology};
use crate::exit::ALWAYS_INTERCEPTED_EXCEPTIONS;
use crate::in_place::{keep_site, write_answer};
use crate::vcpu::{ArchVcpu, ControlReg, Event, Gpr, SegReg, StateMsr};
use crate::vm::{GuestEnd, Vm};

/// CPUID: the policy's answer for the leaf in EAX and subleaf in ECX, for this vCPU,
/// remembered in it: the next time its backend answers in place ([`crate::in_place`]).
pub(super) fn cpuid(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let leaf = vcpu.gpr(Gpr::Rax) as u32;
    let sub = vcpu.gpr(Gpr::Rcx) as u32;
    let me = vm.platform.current();
    let vcpus = vm.platform.cpus.len() as u8;
    let (host, tsc_hz) = (vm.host.cpuid, vm.host.tsc_hz);
    let r = vcpu.in_place().answers.get_or(leaf, sub, || {
        // vCPU n has APIC ID n (`platform::cpus`).
        let topo = Topology {
            apic_id: me as u32,
            vcpus,
        };
        vcpu_cpuid(topo, leaf, sub, (tsc_hz() / 1000) as u32, host)
    });
    write_answer(vcpu, r);
    let next = vcpu.next_rip(&vm.memory, &mut vm.insn);
    // Where the backend's CPU does not say where CPUID ends, its length was read at an
    // exit site: kept, the next CPUID there can be answered in place too.
    // SAFETY: `vm.memory` is the memory `vcpu` runs in, which lives while it runs: a
    // vCPU runs only while its VM lives, Janus gives a guest's RAM back only after the
    // guest ended and never runs an ended guest's vCPUs (boot's scheduler; a shared
    // guest's RAM goes back when its last part is done).
    unsafe { keep_site(vcpu, &vm.memory, &vm.insn) };
    complete(vcpu, next)
}

/// A triple fault ends the guest, with what an OS developer needs to find the fault:
/// where, and in which mode.
pub(super) fn triple_fault(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let cs = vcpu.segment(SegReg::Cs);
    vm.say(format_args!(
        "triple fault at rip {:#x} (cs {:#x} attr {:#x}) rsp {:#x} rflags {:#x} cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}",
        vcpu.rip(),
        cs.selector,
        cs.attr,
        vcpu.gpr(Gpr::Rsp),
        vcpu.rflags(),
        vcpu.cr(ControlReg::Cr0),
        vcpu.cr(ControlReg::Cr2),
        vcpu.cr(ControlReg::Cr3),
        vcpu.cr(ControlReg::Cr4),
        vcpu.state_msr(StateMsr::Efer)
    ));
    Some(GuestEnd::TripleFault)
}

/// An intercepted exception: #DB and #AC go back to the guest; any other ends it, since
/// the core never asks for one.
pub(super) fn exception(
    vcpu: &mut impl ArchVcpu,
    vector: u8,
    error_code: Option<u32>,
) -> Option<GuestEnd> {
    // #DB and #AC are always intercepted so that a guest cannot make the CPU deliver
    // them to itself forever inside microcode, where no timer reaches it (CVE-2015-8104,
    // CVE-2015-5307): each delivery is an exit, and the guest gets it as the CPU would
    // have given it (the backend has updated DR6 for #DB).
    if ALWAYS_INTERCEPTED_EXCEPTIONS.contains(&vector) {
        return super::inject(vcpu, Event::Exception { vector, error_code });
    }
    Some(GuestEnd::error(format_args!(
        "unexpected intercepted exception {vector} (error code {error_code:?}) at rip {:#x}",
        vcpu.rip()
    )))
}

/// An exit the backend could not map: it ends the guest, named.
pub(super) fn unsupported(
    vcpu: &impl ArchVcpu,
    reason: u64,
    info1: u64,
    info2: u64,
) -> Option<GuestEnd> {
    Some(GuestEnd::error(format_args!(
        "unsupported exit: reason {reason:#x}, info {info1:#x} {info2:#x}, at rip {:#x}",
        vcpu.rip()
    )))
}
