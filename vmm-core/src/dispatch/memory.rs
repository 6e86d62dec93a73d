//! Nested page faults: guest-physical addresses with no RAM behind them, where the
//! device pages are. The instruction is emulated against the device ([`crate::mmio`]).
//! Where no device answers either, the address behaves as on a PC with nothing decoding
//! it (open bus): reads return all ones and writes are dropped; the guest's console
//! gets one line about it, the first time.

use super::{complete, page_fault};
use crate::addr::GuestPhys;
use crate::decode::DecodeError;
use crate::exit::NestedAccess;
use crate::mmio::{self, MmioBus, MmioError, MmioOutcome};
use crate::operand::size_mask;
use crate::platform::mmio::DeviceMemory;
use crate::vcpu::{ArchVcpu, ControlReg};
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
    let mut bus = OpenBus {
        devices: DeviceMemory {
            platform: &mut vm.platform,
            now,
        },
        unclaimed: None,
    };
    let outcome = mmio::emulate(vcpu, &mut vm.memory, gpa, &mut bus, &mut vm.insn);
    if let Some(addr) = bus.unclaimed {
        if !core::mem::replace(&mut vm.said_open_bus, true) {
            vm.say(format_args!(
                "access to guest-physical {:#x} at rip {:#x}: no RAM or device there; reads give all ones and writes are dropped, as on a PC (said once)",
                addr.0,
                vcpu.rip()
            ));
        }
    }
    match outcome {
        // The emulator decoded the instruction, so it knows where it ends; the backends'
        // exit information has no instruction length for EPT violations and NPFs (SDM
        // Vol 3C 28.2.5 lists the exits that report one; APM Vol 2 15.7.1 NRIP).
        Ok(MmioOutcome::Completed { len }) => {
            let next = vcpu.rip().wrapping_add(len as u64);
            complete(vcpu, Ok(next))
        }
        Ok(MmioOutcome::Again) => None,
        Ok(MmioOutcome::PageFault { gva, error_code }) => page_fault(vcpu, gva.0, error_code),
        // The instruction itself cannot be fetched: the guest's page tables (or its code)
        // lie outside its RAM. A PC reading all ones there would find every entry invalid
        // and end in a triple fault; so does the guest.
        Err(MmioError::Decode(DecodeError::Truncated)) => {
            vm.say(format_args!(
                "the instruction at rip {:#x} cannot be fetched: its page tables or its code are not in the guest's RAM (cr3 {:#x})",
                vcpu.rip(),
                vcpu.cr(ControlReg::Cr3)
            ));
            Some(GuestEnd::TripleFault)
        }
        Err(e) => Some(GuestEnd::error(format_args!(
            "{} of guest-physical {:#x} at rip {:#x}: {e}",
            if access.write { "write" } else { "read" },
            gpa.0,
            vcpu.rip()
        ))),
    }
}

/// A write the CPU stored in the local APIC's register page and left to Janus (VT-x's
/// APIC-write exit): made to the APIC as the guest's MMIO write of that value, the one
/// way a device write reaches the platform. The instruction has completed.
pub(super) fn apic_write(vcpu: &mut impl ArchVcpu, vm: &mut Vm, offset: u32) -> Option<GuestEnd> {
    let lapic = vm.platform.lapic();
    let Some(value) = lapic.page_reg(offset) else {
        return Some(GuestEnd::error(format_args!(
            "an APIC write at offset {offset:#x} (rip {:#x}) with no register page attached",
            vcpu.rip()
        )));
    };
    let now = vm.now();
    let mut apic = DeviceMemory {
        platform: &mut vm.platform,
        now,
    };
    apic.write_apic32(offset & 0xff0, value);
    None
}

/// The platform's device memory, and nothing (open bus) everywhere else.
struct OpenBus<'a> {
    devices: DeviceMemory<'a>,
    /// An address nothing answered at, if any.
    unclaimed: Option<GuestPhys>,
}

impl MmioBus for OpenBus<'_> {
    fn read(&mut self, gpa: GuestPhys, size: u8) -> Option<u64> {
        self.devices.read(gpa, size).or_else(|| {
            self.unclaimed = Some(gpa);
            Some(size_mask(size))
        })
    }

    fn write(&mut self, gpa: GuestPhys, size: u8, value: u64) -> bool {
        if !self.devices.write(gpa, size, value) {
            self.unclaimed = Some(gpa);
        }
        true
    }
}
