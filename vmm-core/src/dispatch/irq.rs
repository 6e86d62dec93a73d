//! Interrupts for the guest and the host timer that makes a running guest exit.

use crate::vcpu::{ArchVcpu, Event};
use crate::vm::{GuestEnd, Vm};

/// Injects the interrupt the platform has for the vCPU if the guest can take it now,
/// or asks for an exit as soon as it can.
pub(super) fn offer_interrupt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) {
    if vm.platform.nmi_pending() {
        offer_nmi(vcpu, vm);
        return;
    }
    if !vm.platform.interrupt_pending() {
        vcpu.request_interrupt_window(false);
        return;
    }
    if vcpu.interrupts_open() {
        if let Some(v) = vm.platform.acknowledge_interrupt() {
            vcpu.inject(Event::Interrupt(v));
        }
        vcpu.request_interrupt_window(false);
    } else {
        vcpu.request_interrupt_window(true);
    }
}

fn offer_nmi(vcpu: &mut impl ArchVcpu, vm: &mut Vm) {
    if vcpu.nmi_open() {
        vm.platform.take_nmi();
        vcpu.inject(Event::Nmi);
        vcpu.request_interrupt_window(vm.platform.interrupt_pending());
    } else {
        vcpu.request_interrupt_window(true);
    }
}

/// Arms the host timer for the platform's next event or `until_ns` (the end of the time
/// slice), whichever is first, so that a guest that never exits on its own still gets its
/// timer interrupts and gives the CPU back. Returns the new deadline (guest ns) when it
/// changed.
pub(super) fn arm_host_timer(vm: &mut Vm, until_ns: u64) -> Option<Option<u64>> {
    let now = vm.now();
    let slice_end = (until_ns != u64::MAX).then_some(until_ns);
    let next = match (vm.platform.next_event_ns(now), slice_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if next == vm.armed {
        return None;
    }
    vm.armed = next;
    (vm.host.arm_timer)(next.map(|t| t.saturating_sub(now.ns)));
    Some(next)
}

/// [`arm_host_timer`], and the vCPU's own exit timer (where it has one) for the same
/// moment.
pub(super) fn arm_exit_timers(vcpu: &mut impl ArchVcpu, vm: &mut Vm, until_ns: u64) {
    if let Some(next) = arm_host_timer(vm, until_ns) {
        let now = vm.now();
        vcpu.set_exit_deadline(next.map(|t| vm.tsc_at(now, t)));
    }
}

/// A host interrupt (Janus' timer) made the guest exit: take it and go on; the loop
/// then updates the devices and offers their interrupts.
pub(super) fn external_interrupt(vm: &mut Vm) -> Option<GuestEnd> {
    (vm.host.take_interrupts)();
    // The one-shot host timer may have fired (a little early, with rounding): arm it
    // again for whatever is due next.
    vm.armed = None;
    None
}
