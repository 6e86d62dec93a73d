//! HLT: the end of a guest with interrupts off, or a sleep until a device interrupts.

use super::advance;
use super::irq::arm_host_timer;
use crate::cpu_rules::rflags;
use crate::vcpu::ArchVcpu;
use crate::vm::{GuestEnd, Vm};

/// HLT: the vCPU halts until a device has an interrupt for it ([`super::run_slice`]
/// gives the CPU back). With RFLAGS.IF clear only an NMI, INIT or SIPI wakes it: the
/// guest's only vCPU so halted ends the guest (nothing can wake it); one of several waits,
/// as an AP an OS stopped does (the guest ends when all its vCPUs do).
pub(super) fn hlt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let interrupts_on = rflags::interrupts_on(vcpu.rflags());
    if !interrupts_on && vm.platform.cpus.len() == 1 {
        return Some(GuestEnd::Halted);
    }
    if let Some(end) = advance(vcpu, vm) {
        return Some(end);
    }
    // An interrupt already waiting wakes it at once (the timer interrupt a guest armed
    // just before STI;HLT); else a timer may have run out since the devices were last
    // brought up to date.
    let me = vm.platform.current();
    if vm.platform.wakes(me, interrupts_on) {
        return None;
    }
    let now = vm.now();
    vm.platform.update(now);
    if vm.platform.wakes(me, interrupts_on) {
        return None;
    }
    vm.halted = true;
    None
}

/// PAUSE: the vCPU spins. One of several gives its turn to its guest's other vCPUs
/// ([`super::run_slice`] returns at once); a guest's only vCPU goes on (the exit let the
/// dispatcher see whether its slice is over).
pub(super) fn pause(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    // Only to a vCPU of this host CPU: one on another CPU runs meanwhile anyway.
    vm.yielded = vm.platform.local_vcpus() > 1;
    advance(vcpu, vm)
}

/// The end of a guest halted with interrupts on but with no timer armed and nothing
/// pending, where nothing else (a time limit) will end it: it would sleep forever.
pub fn sleeps_forever(vcpu: &impl ArchVcpu) -> GuestEnd {
    GuestEnd::error(format_args!(
        "HLT at rip {:#x} with no timer armed and no interrupt pending: it would sleep forever",
        vcpu.rip().wrapping_sub(1)
    ))
}

/// Brings `vm`'s devices up to now, so that [`crate::platform::Platform::wakes`] tells
/// which of its halted vCPUs have something to take.
pub fn refresh(vm: &mut Vm) {
    // Console room frees the UART's transmitter, which may interrupt.
    vm.drain_console();
    let now = vm.now();
    vm.platform.update(now);
}

/// Whether vCPU `i` of `vm` (halted, its interrupts on or not) has something to take now.
fn has_interrupt(vm: &mut Vm, i: usize, interrupts_on: bool) -> bool {
    refresh(vm);
    vm.platform.wakes(i, interrupts_on)
}

/// Idles the host until the platform has an interrupt (or NMI) for the halted vCPU.
pub(super) fn wait_for_interrupt(vm: &mut Vm) {
    vm.armed = None;
    while !has_interrupt(vm, vm.platform.current(), true) {
        arm_host_timer(vm, u64::MAX);
        (vm.host.idle)();
        vm.armed = None;
    }
}
