//! Janus' AMD-V backend: SVM capabilities, EFER.SVME, the VMCB, NPT with an ASID per
//! guest, and the VMRUN path. Turns each #VMEXIT into the core's
//! [`vmm_core::exit::VmExit`], and finds the next RIP itself on CPUs without NRIP save.
//!
//! Manual: AMD64 Architecture Programmer's Manual Volume 2: System Programming,
//! Publication 24593 Revision 3.42 (March 2024), chapter 15 (cited as "APM Vol 2 15.5.1"),
//! and Appendix B (VMCB layout) and C (SVM intercept exit codes).
//!
//! Where to look: `caps.rs` decides whether this CPU can run Janus; `vmcb.rs` is the
//! layout; `vcpu.rs` sets it up; `entry.rs` is the world switch (VMLOAD/VMRUN/VMSAVE);
//! `exit.rs` turns exit codes into `VmExit`s; `npt.rs` is the nested page-table format.
#![cfg_attr(not(test), no_std)]

mod caps;
mod entry;
mod exit;
mod npt;
mod vcpu;
mod vmcb;

pub use caps::{probe, Refusal, SvmCaps};
pub use vcpu::{Svm, SvmVcpu};
