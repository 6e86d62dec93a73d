//! Janus' vendor-neutral core.
//!
//! Everything here is shared by the VT-x and AMD-V backends: the [`vcpu::ArchVcpu`] trait
//! each backend implements, the common [`exit::VmExit`] enum its exits are turned into,
//! the one exit dispatcher ([`dispatch`]), the guest's memory map, the loaders, the device
//! models and the hypercall ABI. It never names a VMCS field or a VMCB offset, and it is
//! unit-tested on the host (`cargo test -p vmm-core`).
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod cpu_rules;
pub mod cpuid;
pub mod decode;
pub mod devices;
pub mod dispatch;
pub mod exit;
pub mod fetch;
pub mod firmware;
pub mod fpu;
pub mod hostmem;
pub mod hypercall;
pub mod in_place;
pub mod loader;
pub mod machine_end;
pub mod memory;
pub mod mmio;
pub mod msr;
pub mod nested;
pub mod operand;
pub mod platform;
pub mod recent;
pub mod sched;
pub mod smp;
pub mod stats;
pub mod turns;
pub mod vcpu;
pub mod vendor;
pub mod vm;
pub mod walk;
pub mod world_switch;

#[cfg(test)]
pub(crate) mod mock;
