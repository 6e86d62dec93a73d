//! An in-memory VMCS for host tests: a map from field encoding to value. Reading a field
//! nobody wrote fails, like a field the CPU lacks, so a test sees every unexpected read;
//! `fail` makes every access to one field fail.

use super::access::{AccessError, VmcsAccess};
use crate::regs::GuestRegs;
use crate::resident::fake::FakeCpu;
use std::collections::{BTreeMap, VecDeque};

/// The exit reason field (SDM Vol 3C Appendix B.3.2).
const EXIT_REASON: u32 = 0x4402;
use vmm_core::vcpu::VcpuError;

#[derive(Debug, Default)]
pub struct FakeVmcs {
    pub fields: BTreeMap<u32, u64>,
    pub fail: Option<u32>,
    /// How many times the "guest" was entered.
    pub entries: u32,
    /// VMCLEAR fails (as with a bad address).
    pub clear_fails: bool,
    /// Pinned current (`VmcsAccess::pin`).
    pub pinned: bool,
    /// `pin` fails (as VMPTRLD of a bad page would).
    pub pin_fails: bool,
    /// The exit reasons of the next entries, one per entry (written to the exit reason
    /// field); with none left the field stays as it is.
    pub reasons: VecDeque<u32>,
}

impl VmcsAccess for FakeVmcs {
    type Cpu = FakeCpu;

    fn read_raw(&self, encoding: u32) -> Result<u64, AccessError> {
        match self.fields.get(&encoding) {
            Some(&v) if self.fail != Some(encoding) => Ok(v),
            _ => Err(AccessError::Read(encoding)),
        }
    }

    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), AccessError> {
        if self.fail == Some(encoding) {
            return Err(AccessError::Write(encoding));
        }
        self.fields.insert(encoding, value);
        Ok(())
    }

    /// Nothing runs: the exit is whatever the test wrote into the exit-information fields.
    fn enter(&mut self, _regs: &mut GuestRegs, _launched: bool) -> Result<(), VcpuError> {
        self.entries += 1;
        if let Some(r) = self.reasons.pop_front() {
            self.fields.insert(EXIT_REASON, r.into());
        }
        Ok(())
    }

    fn pin(&mut self) -> Result<(), AccessError> {
        if self.pin_fails {
            return Err(AccessError::Current);
        }
        self.pinned = true;
        Ok(())
    }

    fn unpin(&mut self) {
        self.pinned = false;
    }

    fn clear(&mut self) -> Result<(), VcpuError> {
        if self.clear_fails {
            return Err(VcpuError {
                what: "VMCLEAR failed",
                code: 0,
            });
        }
        Ok(())
    }
}
