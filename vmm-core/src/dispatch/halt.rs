//! HLT: the end of a guest with interrupts off, or a sleep until a device interrupts.

use super::advance;
use super::irq::arm_host_timer;
use crate::cpu_rules::rflags;
use crate::vcpu::ArchVcpu;
use crate::vm::{GuestEnd, Vm};

/// HLT with RFLAGS.IF clear ends the guest (nothing can wake it); with IF set the vCPU
/// sleeps until a device has an interrupt for it.
pub(super) fn hlt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    if vcpu.rflags() & rflags::IF == 0 {
        return Some(GuestEnd::Halted);
    }
    advance(vcpu, vm).or_else(|| sleep(vcpu, vm))
}

/// Idles the host until the platform has an interrupt (or NMI) for the vCPU.
fn sleep(vcpu: &impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    loop {
        let now = vm.now();
        vm.platform.update(now);
        if vm.platform.interrupt_pending() || vm.platform.nmi_pending {
            return None;
        }
        if vm.platform.next_event_ns(now).is_none() {
            return Some(GuestEnd::error(format_args!(
                "HLT at rip {:#x} with no timer armed and no interrupt pending: it would sleep forever",
                vcpu.rip().wrapping_sub(1)
            )));
        }
        arm_host_timer(vm);
        (vm.host.idle)();
        vm.armed = None;
    }
}
