//! Nested page faults: guest-physical addresses with no RAM behind them, where the
//! device pages are. The instruction is emulated against the device ([`crate::mmio`]).

use super::{complete, page_fault};
use crate::addr::GuestPhys;
use crate::exit::NestedAccess;
use crate::mmio::{self, MmioOutcome};
use crate::platform::mmio::DeviceMemory;
use crate::vcpu::ArchVcpu;
use crate::vm::{GuestEnd, Vm};

/// A guest access to `gpa`, which is not RAM: emulated on device memory, or the end of
/// the guest when nothing answers there.
pub(super) fn nested_page_fault(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    gpa: GuestPhys,
    access: NestedAccess,
) -> Option<GuestEnd> {
    if access.fetch {
        return Some(GuestEnd::error(format_args!(
            "instruction fetch from guest-physical {:#x} at rip {:#x}: no RAM there",
            gpa.0,
            vcpu.rip()
        )));
    }
    let now = vm.now();
    let mut dev = DeviceMemory {
        platform: &mut vm.platform,
        now,
    };
    match mmio::emulate(vcpu, &mut vm.memory, gpa, &mut dev) {
        // The emulator decoded the instruction, so it knows where it ends; the backends'
        // exit information has no instruction length for EPT violations and NPFs (SDM
        // Vol 3C 28.2.5 lists the exits that report one; APM Vol 2 15.7.1 NRIP).
        Ok(MmioOutcome::Completed { len }) => {
            let next = vcpu.rip().wrapping_add(len as u64);
            complete(vcpu, Ok(next))
        }
        Ok(MmioOutcome::Again) => None,
        Ok(MmioOutcome::PageFault { gva, error_code }) => page_fault(vcpu, gva.0, error_code),
        Err(e) => Some(GuestEnd::error(format_args!(
            "{} of guest-physical {:#x} at rip {:#x}: {e}",
            if access.write { "write" } else { "read" },
            gpa.0,
            vcpu.rip()
        ))),
    }
}
