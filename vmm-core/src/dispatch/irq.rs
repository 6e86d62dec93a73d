//! Interrupts for the guest and the host timer that makes a running guest exit.

use crate::platform::Now;
use crate::vcpu::{ArchVcpu, Event};
use crate::vm::{GuestEnd, Vm, NEVER_NS};

/// Injects the interrupt the platform has for the vCPU if the guest can take it now,
/// or asks for an exit as soon as it can.
pub(super) fn offer_interrupt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) {
    if vm.platform.nmi_pending() {
        offer_nmi(vcpu, vm);
        return;
    }
    let Some(next) = vm.platform.next_interrupt() else {
        vcpu.request_interrupt_window(false);
        return;
    };
    if vcpu.interrupts_open() {
        if let Some(v) = vm.platform.acknowledge(next) {
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
pub(super) fn arm_host_timer(vm: &mut Vm, until_ns: u64) {
    let now = vm.now();
    if let Some(next) = next_deadline(vm, now, until_ns) {
        (vm.host.arm_timer)(next.map(|t| t.saturating_sub(now.ns)));
    }
}

/// The platform's next event or `until_ns`, whichever is first, when it is not the
/// deadline armed already (`vm.armed`, which it becomes). No deadline at all is
/// [`NEVER_NS`], not `None`: `None` says the timers' state is not known, and with no
/// deadline they must still be turned off (a deadline left from an earlier slice made
/// the guest exit at once on every entry).
fn next_deadline(vm: &mut Vm, now: Now, until_ns: u64) -> Option<Option<u64>> {
    let slice_end = (until_ns != u64::MAX).then_some(until_ns);
    let next = match (vm.platform.next_event_ns(now), slice_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let armed = Some(next.unwrap_or(NEVER_NS));
    if armed == vm.armed {
        return None;
    }
    vm.armed = armed;
    Some(next)
}

/// The vCPU's own exit timer for the next deadline where it has one, with the host timer
/// off; else the host timer ([`arm_host_timer`]).
pub(super) fn arm_exit_timers(vcpu: &mut impl ArchVcpu, vm: &mut Vm, until_ns: u64) {
    let now = vm.now();
    if let Some(next) = next_deadline(vm, now, until_ns) {
        let own = vcpu.set_exit_deadline(next.map(|t| vm.tsc_at(now, t)));
        let host = if own { None } else { next };
        (vm.host.arm_timer)(host.map(|t| t.saturating_sub(now.ns)));
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
