//! Janus' Intel VT-x backend: VMX capability MSRs, VMXON, the VMCS, EPT, and the VM
//! entry/exit path. Turns each VM exit into the core's [`vmm_core::exit::VmExit`].
//!
//! Manual: Intel SDM, Order Number 325462-083US (March 2024), Volume 3C chapters 25-30
//! (cited as "SDM Vol 3C 27.3.1.1" etc.) and Appendix A (capability MSRs).
//!
//! Where to look: `caps.rs` decides whether this CPU can run Janus; `vcpu.rs` sets up the
//! VMCS; `entry.rs` is the world switch (VMLAUNCH/VMRESUME and the exit landing);
//! `exit.rs` turns exit reasons into `VmExit`s; `ept.rs` is the nested page-table format.
#![cfg_attr(not(test), no_std)]

mod caps;
mod entry;
mod ept;
mod exit;
mod vcpu;
mod vmcs;

pub use caps::{probe, Refusal, VmxCaps};
pub use vcpu::{Vmx, VmxVcpu};
