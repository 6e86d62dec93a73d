//! The hardware VMCS and the instructions that touch it, in thin wrappers.
//!
//! VMREAD and VMWRITE act on the current VMCS: every access and entry through a `HwVmcs`
//! first makes its own VMCS current (VMPTRLD, unless it already is), so a vCPU always
//! reaches its own VMCS.

use super::access::{AccessError, VmcsAccess};
use super::fields::exit_info;
use crate::caps::{ept_cap, VmxCaps};
use crate::entry::vmx_run;
use crate::regs::GuestRegs;
use crate::resident::HwCpu;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use vmm_core::addr::HostPhys;
use vmm_core::vcpu::VcpuError;
use x86::bits64::vmx;

/// Host CPUs Janus can run VT-x on.
const MAX_CPUS: usize = 64;

/// Per host CPU, the physical address of the VMCS last made current on it (0: none).
/// Each CPU has its own slot: with one shared word, two CPUs running guests would each
/// find the other's VMCS named there and reload their own on every VMREAD.
static CURRENT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// The next free slot of [`CURRENT`].
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// This host CPU's slot of [`CURRENT`], taken once when the CPU enters VMX operation.
#[derive(Clone, Copy, Debug)]
pub struct CurrentSlot(&'static AtomicU64);

impl CurrentSlot {
    /// A slot of its own for the calling CPU, or `None` past [`MAX_CPUS`].
    pub fn take() -> Option<CurrentSlot> {
        CURRENT
            .get(NEXT_SLOT.fetch_add(1, Ordering::Relaxed))
            .map(CurrentSlot)
    }
}

/// A VMCS in host memory, reached with VMREAD/VMWRITE on the CPU that owns `current`.
#[derive(Debug)]
pub struct HwVmcs {
    phys: HostPhys,
    current: CurrentSlot,
}

impl HwVmcs {
    /// VMCLEAR then VMPTRLD: the 4 KiB page at `phys`, holding the VMCS revision ID,
    /// becomes the current, clear VMCS (SDM Vol 3C 25.11.3).
    pub fn load_fresh(phys: HostPhys, current: CurrentSlot) -> Result<HwVmcs, VcpuError> {
        vmclear_on(phys, current)?;
        let v = HwVmcs { phys, current };
        v.load()?;
        Ok(v)
    }

    fn load(&self) -> Result<(), VcpuError> {
        // SAFETY: `phys` is this VMCS's page, holding the revision ID, cleared by
        // `load_fresh`; VMX root operation is on (a `Vmx` exists only after VMXON).
        unsafe { vmx::vmptrld(self.phys.0) }.map_err(|_| VcpuError {
            what: "VMPTRLD failed",
            code: self.phys.0,
        })?;
        self.current.0.store(self.phys.0, Ordering::Relaxed);
        Ok(())
    }

    /// Makes this VMCS current if it is not already.
    fn make_current(&self) -> Result<(), VcpuError> {
        if self.current.0.load(Ordering::Relaxed) == self.phys.0 {
            return Ok(());
        }
        self.load()
    }
}

impl VmcsAccess for HwVmcs {
    type Cpu = HwCpu;

    fn read_raw(&self, encoding: u32) -> Result<u64, AccessError> {
        self.make_current()
            .map_err(|_| AccessError::Read(encoding))?;
        // SAFETY: VMREAD only reads the current VMCS (this one, made current above); for a
        // field this CPU lacks it fails with VMfail (reported here), it does not fault.
        unsafe { vmread(encoding) }.ok_or(AccessError::Read(encoding))
    }

    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), AccessError> {
        self.make_current()
            .map_err(|_| AccessError::Write(encoding))?;
        // SAFETY: VMWRITE only changes the current VMCS, this one (made current above);
        // a bad field or value fails with VMfail, reported here.
        if unsafe { vmwrite(encoding, value) } {
            Ok(())
        } else {
            Err(AccessError::Write(encoding))
        }
    }

    fn clear(&mut self) -> Result<(), VcpuError> {
        vmclear_on(self.phys, self.current)
    }

    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<(), VcpuError> {
        self.make_current()?;
        // SAFETY: CR2 is not part of the VMCS (SDM Vol 3C 27.3): Janus keeps the guest's
        // and loads it here; Janus itself takes no page faults that would need it.
        unsafe { x86::controlregs::cr2_write(regs.cr2) };
        // SAFETY: this VMCS is current and its host state lands at janus_vmx_exit (set up
        // by `VmxVcpu::setup`); `regs.gprs` is valid for the whole call.
        let failed = unsafe { vmx_run(&mut regs.gprs, launched as u64) };
        // SAFETY: reading CR2 has no side effects.
        regs.cr2 = unsafe { x86::controlregs::cr2() } as u64;
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
    // RFLAGS.
    unsafe {
        core::arch::asm!(
            "vmread {v}, {f}",
            "seta {ok}",
            f = in(reg) u64::from(field),
            v = out(reg) value,
            ok = out(reg_byte) ok,
            options(nostack, readonly),
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
    let ok: u8;
    // SAFETY: the caller's contract; VMWRITE changes only the current VMCS and RFLAGS.
    unsafe {
        core::arch::asm!(
            "vmwrite {f}, {v}",
            "seta {ok}",
            f = in(reg) u64::from(field),
            v = in(reg) value,
            ok = out(reg_byte) ok,
            options(nostack),
        )
    };
    ok != 0
}

/// VMCLEAR of the VMCS at `phys` on the CPU that owns `current` (SDM Vol 3C 25.11.3,
/// 31.3).
fn vmclear_on(phys: HostPhys, current: CurrentSlot) -> Result<(), VcpuError> {
    // SAFETY: `phys` is a 4 KiB page given to a VMCS, holding the revision ID; VMX root
    // operation is on (the `Vmx` object exists only after VMXON). VMCLEAR only writes
    // that page.
    unsafe { vmx::vmclear(phys.0) }.map_err(|_| VcpuError {
        what: "VMCLEAR failed",
        code: phys.0,
    })?;
    // VMCLEAR of the current VMCS leaves no VMCS current.
    let _ = current
        .0
        .compare_exchange(phys.0, 0, Ordering::Relaxed, Ordering::Relaxed);
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
