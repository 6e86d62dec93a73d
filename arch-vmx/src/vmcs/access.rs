//! How the vCPU reaches its VMCS: typed reads and writes that fail with an error (never a
//! silent 0), and the entry into the guest. `HwVmcs` is the hardware; host tests use an
//! in-memory `FakeVmcs`.

use super::fields::{Field, Width};
use crate::regs::GuestRegs;
use crate::resident::CpuRegs;
use vmm_core::vcpu::VcpuError;

/// A VMREAD or VMWRITE that failed (VMfailInvalid: no current VMCS; VMfailValid: a field
/// this CPU does not have or a read-only one, SDM Vol 3C 31.3), with the field encoding;
/// or the VMPTRLD that makes the VMCS current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    Read(u32),
    Write(u32),
    Current,
}

impl From<AccessError> for VcpuError {
    fn from(e: AccessError) -> VcpuError {
        match e {
            AccessError::Read(field) => VcpuError {
                what: "VMREAD of VMCS field failed",
                code: field as u64,
            },
            AccessError::Write(field) => VcpuError {
                what: "VMWRITE of VMCS field failed",
                code: field as u64,
            },
            AccessError::Current => VcpuError {
                what: "VMPTRLD of the vCPU's VMCS failed",
                code: 0,
            },
        }
    }
}

/// A VMCS. Implementors provide the untyped `*_raw` accessors; everyone else uses the
/// typed `read` and `write`.
pub trait VmcsAccess {
    /// The CPU this VMCS runs on, whose registers hold what the VMCS does not
    /// (`crate::resident`).
    type Cpu: CpuRegs;

    fn read_raw(&self, encoding: u32) -> Result<u64, AccessError>;
    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), AccessError>;

    /// Enters the guest with `regs` (VMLAUNCH, or VMRESUME once `launched`) and returns
    /// at its next VM exit, whose information is then in the exit-information fields.
    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<(), VcpuError>;

    /// The vCPU is loaded on this CPU: its VMCS is made current and kept current until
    /// `unpin` (`super::current`).
    fn pin(&mut self) -> Result<(), AccessError>;

    /// The vCPU is put: other VMCSs may be made current on this CPU.
    fn unpin(&mut self);

    /// Pinned current (`pin`): accesses need no VMPTRLD. Checked once where many accesses
    /// follow (the CPUID loop), it lets the compiler drop each access's own check.
    fn pinned(&self) -> bool {
        true
    }

    /// VMCLEAR: the CPU writes back whatever of this VMCS it caches and forgets it, so that
    /// its page can be freed (SDM Vol 3C 25.11.1, 25.11.3).
    fn clear(&mut self) -> Result<(), VcpuError>;

    fn read<W: Width>(&self, field: Field<W>) -> Result<W::Value, AccessError> {
        self.read_raw(field.encoding()).map(W::from_raw)
    }

    fn write<W: Width>(&mut self, field: Field<W>, value: W::Value) -> Result<(), AccessError> {
        self.write_raw(field.encoding(), W::to_raw(value))
    }
}
