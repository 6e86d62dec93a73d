//! The current VMCS and the instructions that touch it, in thin wrappers.
//!
//! Every VMREAD/VMWRITE in this crate goes through `read`/`write` here. They require a
//! current VMCS; `VmxVcpu` makes its own VMCS current (`make_current`) before any access,
//! and Janus runs one vCPU at a time on one CPU.

use core::sync::atomic::{AtomicU64, Ordering};
use vmm_core::addr::HostPhys;
use vmm_core::vcpu::VcpuError;
use x86::bits64::vmx;

/// The physical address of the VMCS last made current on this CPU (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

pub fn read(field: u32) -> u64 {
    // SAFETY: a VMCS is current (module contract); VMREAD of a field this CPU lacks
    // fails with VMfail, which we read as 0 rather than faulting.
    unsafe { vmx::vmread(field) }.unwrap_or(0)
}

pub fn write(field: u32, v: u64) -> Result<(), VcpuError> {
    // SAFETY: a VMCS is current; VMWRITE only changes that VMCS.
    unsafe { vmx::vmwrite(field, v) }.map_err(|_| VcpuError {
        what: "VMWRITE failed",
        code: field as u64,
    })
}

/// Writes a field whose value Janus computed from the capability MSRs; failure would be
/// a bug in this crate, so it is logged rather than returned.
pub fn set(field: u32, v: u64) {
    if write(field, v).is_err() {
        log::error!("VMWRITE of field {field:#x} with {v:#x} failed");
    }
}

/// VMCLEAR then VMPTRLD: `vmcs` becomes the current, clear VMCS (SDM Vol 3C 25.11.3).
pub fn load_fresh(vmcs: HostPhys) -> Result<(), VcpuError> {
    // SAFETY: `vmcs` is a 4 KiB page owned by the caller holding the VMCS revision ID;
    // VMX root operation is on (the `Vmx` object exists only after VMXON).
    unsafe {
        vmx::vmclear(vmcs.0).map_err(|_| VcpuError {
            what: "VMCLEAR failed",
            code: vmcs.0,
        })?;
        vmx::vmptrld(vmcs.0).map_err(|_| VcpuError {
            what: "VMPTRLD failed",
            code: vmcs.0,
        })?;
    }
    CURRENT.store(vmcs.0, Ordering::Relaxed);
    Ok(())
}

/// Makes `vmcs` current if it is not already.
pub fn make_current(vmcs: HostPhys) -> Result<(), VcpuError> {
    if CURRENT.load(Ordering::Relaxed) == vmcs.0 {
        return Ok(());
    }
    // SAFETY: as in `load_fresh`; this VMCS was initialised by `load_fresh` before.
    unsafe { vmx::vmptrld(vmcs.0) }.map_err(|_| VcpuError {
        what: "VMPTRLD failed",
        code: vmcs.0,
    })?;
    CURRENT.store(vmcs.0, Ordering::Relaxed);
    Ok(())
}

/// INVEPT all-context (type 2): drops every cached EPT translation (SDM Vol 3C 30.3.3.1).
pub fn invept_all() {
    let descriptor = [0u64; 2];
    // SAFETY: INVEPT with a valid descriptor in VMX root operation only flushes TLBs.
    unsafe {
        core::arch::asm!("invept {0}, [{1}]", in(reg) 2u64, in(reg) descriptor.as_ptr(), options(nostack));
    }
}
