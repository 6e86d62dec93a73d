//! Janus' Intel VT-x backend: VMX capability MSRs, VMXON, the VMCS, EPT, and the VM
//! entry/exit path. Turns each VM exit into the core's [`vmm_core::exit::VmExit`].
//!
//! Manual: Intel SDM, Order Number 325462-083US (March 2024), Volume 3C chapters 25-30
//! (cited as "SDM Vol 3C 27.3.1.1" etc.), Appendix A (capability MSRs), Appendix B (VMCS
//! field encodings) and Appendix C (exit reasons).
//!
//! Where to look: `caps.rs` decides whether this CPU can run Janus; `backend.rs` enters VMX
//! root operation and makes vCPUs; `vmcs/` holds the typed VMCS fields (`fields.rs`), the
//! accessor trait with its hardware and test implementations; `setup.rs` writes a new
//! VMCS (controls from `controls.rs`, host state from `host_state.rs`); `vcpu.rs` is the
//! `ArchVcpu`; `entry.rs` is the world switch (VMLAUNCH/VMRESUME and the exit landing);
//! `exit.rs` turns exit reasons into `VmExit`s; `inject.rs` encodes events, `segment.rs`
//! access rights, `regs.rs` the guest state outside the VMCS, `resident.rs` the guest
//! registers that stay in the CPU while a vCPU is loaded (`put`/`load`); `structures.rs`
//! the frames a vCPU owns, `vpid.rs` the VPID allocator; `ept.rs` is the nested page-table
//! format, `msr_bitmap.rs` the MSR bitmap.
#![cfg_attr(not(test), no_std)]

mod backend;
mod caps;
mod controls;
mod entry;
mod ept;
mod exit;
mod host_state;
mod inject;
mod msr_bitmap;
mod regs;
mod resident;
mod segment;
mod setup;
mod structures;
#[cfg(test)]
mod test_frames;
mod vcpu;
mod vmcs;
mod vpid;

pub use backend::Vmx;
pub use caps::{probe, Refusal, VmxCaps};
pub use vcpu::VmxVcpu;
