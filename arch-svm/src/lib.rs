//! Janus' AMD-V backend: SVM capabilities, EFER.SVME, the VMCB, NPT with an ASID per
//! guest, and the VMRUN path. Turns each #VMEXIT into the core's
//! [`vmm_core::exit::VmExit`], and finds the next RIP itself on CPUs without NRIP save.
//!
//! Manual: AMD64 Architecture Programmer's Manual Volume 2: System Programming,
//! Publication 24593 Revision 3.42 (March 2024), chapter 15 (cited as "APM Vol 2 15.5.1"),
//! and Appendix B (VMCB layout) and C (SVM intercept exit codes).
//!
//! Where to look: `caps.rs` decides whether this CPU can run Janus; `svm.rs` enables SVM
//! and allocates a vCPU's frames; `asid.rs` hands out ASIDs; `debug_regs.rs` loads the
//! guest's DR0-DR3; `cr2.rs` its CR2 (which Bochs' VMRUN does not); `vmcb/` is the layout (`layout.rs`), the control-field
//! values (`bits.rs`), the intercept vectors (`intercept.rs`), the exit codes
//! (`exit_code.rs`) and the page a VMCB lives in (`page.rs`); `setup.rs` fills a new
//! VMCB; `vcpu.rs` is the `ArchVcpu`; `inject.rs` encodes events; `entry.rs` is the
//! world switch (VMLOAD/VMRUN/VMSAVE); `exit.rs` turns exit codes into `VmExit`s;
//! `npt.rs` is the nested page-table format.
#![cfg_attr(not(test), no_std)]

mod asid;
mod caps;
mod cr2;
mod debug_regs;
mod entry;
mod exit;
mod inject;
mod npt;
mod setup;
mod svm;
mod tsc_aux;
mod vcpu;
mod vmcb;

pub use caps::{probe, Refusal, SvmCaps};
pub use svm::Svm;
pub use vcpu::SvmVcpu;
