//! The hardware VMCS and the instructions that touch it, in thin wrappers.
//!
//! VMREAD and VMWRITE act on the current VMCS (SDM Vol 3C 25.11.2). A loaded vCPU's VMCS
//! is pinned current on its CPU (`current.rs`), so its accesses go straight to the
//! instruction: the check that used to come before each of them cost about 43
//! instructions per exit. A VMCS that is not pinned is made current for each access and
//! the pinned one made current again after it.

use super::access::{AccessError, VmcsAccess};
use super::current::CpuVmcs;
use super::fields::exit_info;
use crate::caps::{ept_cap, VmxCaps};
use crate::entry::vmx_run;
use crate::regs::GuestRegs;
use crate::resident::HwCpu;
use core::sync::atomic::{AtomicUsize, Ordering};
use vmm_core::addr::HostPhys;
use vmm_core::vcpu::VcpuError;
use x86::bits64::vmx;

/// Host CPUs Janus can run VT-x on.
const MAX_CPUS: usize = 64;

/// Per host CPU, its current and pinned VMCS. Each CPU has its own: a VMCS is current on
/// one CPU only, and each CPU has one current VMCS.
static CPUS: [CpuVmcs; MAX_CPUS] = [const { CpuVmcs::new() }; MAX_CPUS];
/// The next free slot of [`CPUS`].
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// This host CPU's slot of [`CPUS`], taken once when the CPU enters VMX operation.
#[derive(Clone, Copy, Debug)]
pub struct CurrentSlot(&'static CpuVmcs);

impl CurrentSlot {
    /// A slot of its own for the calling CPU, or `None` past [`MAX_CPUS`].
    pub fn take() -> Option<CurrentSlot> {
        CPUS.get(NEXT_SLOT.fetch_add(1, Ordering::Relaxed))
            .map(CurrentSlot)
    }
}

/// A VMCS in host memory, reached with VMREAD/VMWRITE on the CPU that owns `cpu`.
#[derive(Debug)]
pub struct HwVmcs {
    phys: HostPhys,
    cpu: CurrentSlot,
    /// Pinned current on `cpu` (its vCPU is loaded): accesses need no VMPTRLD.
    pinned: bool,
}

/// VMPTRLD of the VMCS at `phys`; whether it succeeded.
fn ptrld(phys: u64) -> bool {
    // SAFETY: only called with the page of a `HwVmcs` (made by `HwVmcs::fresh`, holding
    // the revision ID, VMCLEARed) in VMX root operation; VMPTRLD changes which VMCS is
    // current and nothing else, and fails with VMfail (reported) on a bad one.
    unsafe { vmx::vmptrld(phys) }.is_ok()
}

impl HwVmcs {
    /// VMCLEAR: the 4 KiB page at `phys`, holding the VMCS revision ID, becomes a clear
    /// VMCS (SDM Vol 3C 25.11.3); it is made current at its first access.
    pub fn fresh(phys: HostPhys, cpu: CurrentSlot) -> Result<HwVmcs, VcpuError> {
        vmclear_on(phys, cpu)?;
        Ok(HwVmcs {
            phys,
            cpu,
            pinned: false,
        })
    }

    /// VMREAD of a VMCS that is not pinned: made current for it (`CpuVmcs::borrow`).
    /// Out of line, so that the pinned path of every access stays a test and the
    /// instruction.
    #[cold]
    #[inline(never)]
    fn read_unpinned(&self, encoding: u32) -> Option<u64> {
        // SAFETY: VMREAD only reads the current VMCS, this one for the access.
        let read = move || unsafe { vmread(encoding) };
        self.cpu.0.borrow(self.phys.0, ptrld, read).flatten()
    }

    /// VMWRITE to a VMCS that is not pinned, as `read_unpinned`.
    #[cold]
    #[inline(never)]
    fn write_unpinned(&self, encoding: u32, value: u64) -> bool {
        // SAFETY: VMWRITE only changes the current VMCS, this one for the access.
        let write = move || unsafe { vmwrite(encoding, value) };
        self.cpu.0.borrow(self.phys.0, ptrld, write) == Some(true)
    }
}

impl VmcsAccess for HwVmcs {
    type Cpu = HwCpu;

    #[inline(always)]
    fn read_raw(&self, encoding: u32) -> Result<u64, AccessError> {
        let value = if self.pinned {
            // SAFETY: pinned, this VMCS is current (`super::current`); VMREAD only reads
            // it, and for a field this CPU lacks fails with VMfail (reported here).
            unsafe { vmread(encoding) }
        } else {
            self.read_unpinned(encoding)
        };
        value.ok_or(AccessError::Read(encoding))
    }

    #[inline(always)]
    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), AccessError> {
        let done = if self.pinned {
            // SAFETY: pinned, this VMCS is current (`super::current`); VMWRITE only
            // changes it, and a bad field or value fails with VMfail (reported here).
            unsafe { vmwrite(encoding, value) }
        } else {
            self.write_unpinned(encoding, value)
        };
        if done {
            Ok(())
        } else {
            Err(AccessError::Write(encoding))
        }
    }

    fn pin(&mut self) -> Result<(), AccessError> {
        if !self.cpu.0.pin(self.phys.0, ptrld) {
            return Err(AccessError::Current);
        }
        self.pinned = true;
        Ok(())
    }

    fn unpin(&mut self) {
        self.cpu.0.unpin(self.phys.0);
        self.pinned = false;
    }

    #[inline(always)]
    fn pinned(&self) -> bool {
        self.pinned
    }

    fn clear(&mut self) -> Result<(), VcpuError> {
        vmclear_on(self.phys, self.cpu)?;
        self.pinned = false;
        Ok(())
    }

    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<(), VcpuError> {
        if !self.pinned {
            return Err(VcpuError {
                what: "VM entry with a VMCS that is not pinned current",
                code: self.phys.0,
            });
        }
        // SAFETY: this VMCS is current (pinned) and its host state lands at
        // janus_vmx_exit (set up by `VmxVcpu::setup`); `regs.gprs` is valid for the whole
        // call.
        let failed = unsafe { vmx_run(&mut regs.gprs, launched as u64) };
        if failed == 0 {
            return Ok(());
        }
        Err(VcpuError {
            what: if launched {
                "VMRESUME failed"
            } else {
                "VMLAUNCH failed"
            },
            code: self.read(exit_info::VM_INSTRUCTION_ERROR)? as u64,
        })
    }
}

// VMREAD and VMWRITE are written here rather than taken from `x86::bits64::vmx`: that
// crate reads the outcome through a call that pushes and pops RFLAGS, on every one of the
// several VMCS accesses of each exit; these test CF and ZF with one SETA (success is CF=0
// and ZF=0; VMfailInvalid sets CF, VMfailValid ZF: SDM Vol 3C 31.2).

/// VMREAD of `field` from the current VMCS; `None` on VMfail.
///
/// # Safety
/// VMX root operation, CPL 0.
#[inline(always)]
unsafe fn vmread(field: u32) -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: the caller's contract; VMREAD writes only its destination register and
    // RFLAGS. `nomem`: it reads no memory Rust reaches (the current VMCS lives in the
    // CPU; software must not touch its page while it is active, SDM Vol 3C 25.11.1),
    // and VMREAD and VMWRITE stay in program order (neither is `pure`). It lets the
    // compiler keep what it loaded from the vCPU across an access: with it, the
    // CPUID loop's accesses share one check that the VMCS is pinned.
    unsafe {
        core::arch::asm!(
            "vmread {v}, {f}",
            "seta {ok}",
            f = in(reg) u64::from(field),
            v = out(reg) value,
            ok = out(reg_byte) ok,
            options(nostack, nomem),
        )
    };
    (ok != 0).then_some(value)
}

/// VMWRITE of `value` to `field` of the current VMCS; whether it succeeded.
///
/// # Safety
/// VMX root operation, CPL 0; the field's value must be one the guest or host may have.
#[inline(always)]
unsafe fn vmwrite(field: u32, value: u64) -> bool {
    // SAFETY: the caller's contract; VMWRITE changes only the current VMCS and RFLAGS
    // (`nomem` as in `vmread`). VMfail (CF or ZF set) branches to `false` (JBE) instead
    // of being turned into a byte and tested again: two instructions fewer per write.
    unsafe {
        core::arch::asm!(
            "vmwrite {f}, {v}",
            "jbe {failed}",
            f = in(reg) u64::from(field),
            v = in(reg) value,
            failed = label { return false; },
            options(nostack, nomem),
        )
    };
    true
}

/// VMCLEAR of the VMCS at `phys` on the CPU that owns `cpu` (SDM Vol 3C 25.11.3, 31.3).
fn vmclear_on(phys: HostPhys, cpu: CurrentSlot) -> Result<(), VcpuError> {
    // SAFETY: `phys` is a 4 KiB page given to a VMCS, holding the revision ID; VMX root
    // operation is on (the `Vmx` object exists only after VMXON). VMCLEAR only writes
    // that page.
    unsafe { vmx::vmclear(phys.0) }.map_err(|_| VcpuError {
        what: "VMCLEAR failed",
        code: phys.0,
    })?;
    cpu.0.cleared(phys.0);
    Ok(())
}

/// Before a new vCPU first runs: drops the translations a freed vCPU may have left under
/// this vCPU's EPT root address or VPID (SDM Vol 3C 29.4.3.1 lists what INVEPT and INVVPID
/// invalidate).
pub fn flush_new_vcpu(caps: &VmxCaps, vpid: Option<u16>) {
    if caps.invept_all() {
        invept_all();
    }
    let Some(vpid) = vpid else { return };
    // INVVPID type 1 (single-context) or, without it, 2 (all-context); the descriptor's
    // bits 15:0 are the VPID (SDM Vol 3C 31.3, INVVPID).
    let kind: u64 = if caps.ept_vpid & ept_cap::INVVPID_SINGLE != 0 {
        1
    } else {
        2
    };
    let descriptor = [vpid as u64, 0];
    // SAFETY: INVVPID with a valid descriptor and a supported type (the caller took a VPID
    // only if `caps.flushable_vpid()`) in VMX root operation only flushes TLBs.
    unsafe {
        core::arch::asm!("invvpid {0}, [{1}]", in(reg) kind, in(reg) descriptor.as_ptr(), options(nostack));
    }
}

/// INVEPT all-context (type 2): drops every cached EPT translation (SDM Vol 3C 30.3.3.1).
pub fn invept_all() {
    let descriptor = [0u64; 2];
    // SAFETY: INVEPT with a valid descriptor in VMX root operation only flushes TLBs.
    unsafe {
        core::arch::asm!("invept {0}, [{1}]", in(reg) 2u64, in(reg) descriptor.as_ptr(), options(nostack));
    }
}
