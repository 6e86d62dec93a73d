//! The VMCS: its fields (`fields`), how the vCPU reaches them (`access`), which VMCS is
//! current on each CPU (`current`), and the hardware VMCS with the instructions that
//! manage it (`hw`).

pub mod access;
pub mod current;
#[cfg(test)]
pub mod fake;
pub mod fields;
pub mod hw;

pub use access::{AccessError, VmcsAccess};
pub use hw::HwVmcs;
