//! RDMSR and WRMSR: the platform's MSRs (local APIC, TSC deadline) first, then the
//! vCPU's policy ([`crate::msr`]); the guest TSC is the VM's. The platform's timers count
//! in the host's TSC: a TSC deadline goes in and out through the guest's offset.

use super::{advance, inject};
use crate::devices::lapic::MSR_TSC_DEADLINE;
use crate::msr;
use crate::vcpu::{ArchVcpu, Event, Gpr};
use crate::vm::{GuestEnd, Vm};

/// RDMSR: the MSR in ECX into EDX:EAX, or #GP.
pub(super) fn rdmsr(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let m = vcpu.gpr(Gpr::Rcx) as u32;
    let now = vm.now();
    let r = match vm.platform.read_msr(m, now) {
        Some(r) if m == MSR_TSC_DEADLINE => r.map(|h| vm.msrs.tsc.deadline_to_guest(h)),
        Some(r) => r,
        None => msr::read(vcpu, &vm.msrs, m, now.tsc),
    };
    match r {
        Ok(v) => {
            vcpu.set_gpr(Gpr::Rax, v & 0xffff_ffff);
            vcpu.set_gpr(Gpr::Rdx, v >> 32);
            advance(vcpu, vm)
        }
        Err(ev) => inject(vcpu, ev),
    }
}

/// WRMSR: EDX:EAX into the MSR in ECX, or #GP.
pub(super) fn wrmsr(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let m = vcpu.gpr(Gpr::Rcx) as u32;
    let v = (vcpu.gpr(Gpr::Rdx) << 32) | (vcpu.gpr(Gpr::Rax) & 0xffff_ffff);
    match write(vcpu, vm, m, v) {
        Ok(()) => advance(vcpu, vm),
        Err(ev) => inject(vcpu, ev),
    }
}

fn write(vcpu: &mut impl ArchVcpu, vm: &mut Vm, m: u32, v: u64) -> Result<(), Event> {
    let now = vm.now();
    let v = match m {
        MSR_TSC_DEADLINE => vm.msrs.tsc.deadline_to_host(v, now.tsc),
        _ => v,
    };
    match vm.platform.write_msr(m, v, now) {
        Some(r) => r,
        None => msr::write(vcpu, &mut vm.msrs, m, v, now.tsc),
    }
}
