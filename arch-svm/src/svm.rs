//! SVM enabling and vCPU creation: the hardware half (EFER.SVME, the host save area,
//! frames for the VMCB and the permission maps, nested page tables, ASIDs).

use crate::asid::AsidPool;
use crate::caps::SvmCaps;
use crate::npt::Npt;
use crate::setup::{msrpm_allow, Tables, IOPM_PAGES, MSRPM_PAGES};
use crate::vcpu::SvmVcpu;
use crate::vmcb::{Vmcb, VmcbPage};
use core::ptr::NonNull;
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::{efer, CpuRules};
use vmm_core::memory::GuestMemory;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::{ArchBackend, StartMode, VcpuError};
use x86::msr::{rdmsr, wrmsr, IA32_EFER};

/// The physical address of the host save area VMRUN uses (APM Vol 2 15.30.4).
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

const OOM: VcpuError = VcpuError {
    what: "out of memory for the VMCB",
    code: 0,
};

const NO_ASID: VcpuError = VcpuError {
    what: "every ASID is taken by a live vCPU",
    code: 0,
};

/// This host's guest ASIDs.
static ASIDS: AsidPool = AsidPool::new();

/// AMD-V, switched on: EFER.SVME is set and the host save area is programmed.
pub struct Svm {
    caps: SvmCaps,
    host_save: HostPhys,
    asids: &'static AsidPool,
}

impl Svm {
    /// Sets EFER.SVME and VM_HSAVE_PA (APM Vol 2 15.4, 15.30.4), and saves Janus' own
    /// VMLOAD/VMSAVE state for the return from each guest.
    pub fn enable<A: FrameAllocator>(caps: SvmCaps, frames: &mut A) -> Result<Svm, &'static str> {
        let hsave = frames
            .alloc_table()
            .ok_or("no memory for the host save area")?;
        let host_save = frames
            .alloc_table()
            .ok_or("no memory for the host state page")?;
        // SAFETY: the CPU has SVM (probe checked CPUID and VM_CR); setting EFER.SVME only
        // enables the SVM instructions, and both pages are 4 KiB-aligned and ours.
        unsafe {
            wrmsr(IA32_EFER, rdmsr(IA32_EFER) | efer::SVME);
            wrmsr(MSR_VM_HSAVE_PA, hsave.0);
            core::arch::asm!("vmsave rax", in("rax") host_save.0, options(nostack));
        }
        Ok(Svm {
            caps,
            host_save,
            asids: &ASIDS,
        })
    }

    /// The vCPU's frames and VMCB, with `asid` (taken for it).
    fn build_vcpu<A: FrameAllocator>(
        &self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
        asid: u32,
    ) -> Result<SvmVcpu, VcpuError> {
        let vmcb_pa = frames.alloc_table().ok_or(OOM)?;
        let iopm = intercept_all(frames, IOPM_PAGES)?;
        let msrpm = intercept_all(frames, MSRPM_PAGES)?;
        msrpm_allow(frames.table(msrpm));
        let (root, _) = nested::build(mem, &Npt, frames).map_err(|_| VcpuError {
            what: "cannot build the nested page tables",
            code: 0,
        })?;
        let tables = Tables {
            iopm,
            msrpm,
            n_cr3: root,
            asid,
        };
        let frame = NonNull::from(frames.table(vmcb_pa)).cast::<Vmcb>();
        // SAFETY: the frame is zeroed, 4 KiB-aligned, reachable at this address until
        // `release` gives it back, and belongs to this vCPU alone; `Vmcb` is exactly
        // 4 KiB with the hardware layout (vmcb/layout.rs asserts).
        let vmcb = unsafe { VmcbPage::new(frame, vmcb_pa) };
        Ok(SvmVcpu::new(
            vmcb,
            self.host_save,
            self.caps,
            rules,
            &tables,
            &start.initial_state(),
            self.asids,
        ))
    }
}

/// `pages` contiguous frames with every bit set: every port or MSR intercepted.
fn intercept_all<A: FrameAllocator>(frames: &mut A, pages: usize) -> Result<HostPhys, VcpuError> {
    let base = frames.alloc_contiguous(pages).ok_or(OOM)?;
    for p in 0..pages as u64 {
        frames.table(HostPhys(base.0 + p * 4096)).fill(u64::MAX);
    }
    Ok(base)
}

impl ArchBackend for Svm {
    type Vcpu = SvmVcpu;

    fn create_vcpu<A: FrameAllocator>(
        &mut self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
    ) -> Result<SvmVcpu, VcpuError> {
        // An ASID no live vCPU holds; back to the pool if the vCPU cannot be built.
        let asid = self
            .asids
            .take(self.caps.asids)
            .or_else(|| self.asids.share(self.caps.asids))
            .ok_or(NO_ASID)?;
        self.build_vcpu(mem, start, rules, frames, asid)
            .inspect_err(|_| self.asids.give(asid))
    }
}

#[cfg(test)]
mod tests;
