//! The guest state VT-x keeps neither in the VMCS nor in the CPU between entries: the
//! general registers (but RSP, SDM Vol 3C 27.3), saved and loaded around each entry. The
//! registers that stay in the CPU while the vCPU is loaded (CR2 among them) are in
//! `crate::resident`.

use vmm_core::vcpu::GprFile;

/// The guest's registers outside the VMCS, saved and loaded around each entry.
#[derive(Debug, Default)]
pub struct GuestRegs {
    pub gprs: GprFile,
}
