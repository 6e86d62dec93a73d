//! VMX root operation: VMXON, and the hardware half of making a vCPU (its VMCS page, EPT
//! and MSR bitmap); `VmxVcpu::setup` writes the VMCS.

use crate::caps::{ept_cap, VmxCaps};
use crate::ept::{eptp, Ept};
use crate::host_state::HostState;
use crate::msr_bitmap;
use crate::setup::Structures;
use crate::vcpu::VmxVcpu;
use crate::vmcs::hw::{invept_all, HwVmcs};
use vmm_core::cpu_rules::CpuRules;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::{ArchBackend, StartMode, VcpuError};
use x86::controlregs::{cr0, cr0_write, cr4, cr4_write, Cr0, Cr4};

/// VT-x, switched on: VMX root operation has been entered with VMXON.
pub struct Vmx {
    caps: VmxCaps,
    next_vpid: u16,
}

impl Vmx {
    /// Sets CR0/CR4 as VMX requires and executes VMXON (SDM Vol 3C 24.7, 24.8).
    pub fn enable<A: FrameAllocator>(caps: VmxCaps, frames: &mut A) -> Result<Vmx, &'static str> {
        let region = frames
            .alloc_table()
            .ok_or("no memory for the VMXON region")?;
        frames.table(region)[0] = caps.revision as u64;
        // SAFETY: setting the bits the FIXED0 MSRs require (NE, and VMXE) and clearing none
        // that Janus relies on; VMXON gets a 4 KiB-aligned page holding the revision ID.
        unsafe {
            let c0 = (cr0().bits() as u64 | caps.cr0_fixed0) & caps.cr0_fixed1;
            cr0_write(Cr0::from_bits_truncate(c0 as usize));
            let c4 = (cr4().bits() as u64 | caps.cr4_fixed0) & caps.cr4_fixed1;
            cr4_write(Cr4::from_bits_truncate(c4 as usize));
            x86::bits64::vmx::vmxon(region.0).map_err(|_| "VMXON failed")?;
        }
        if caps.ept_vpid & (ept_cap::INVEPT | ept_cap::INVEPT_ALL)
            == ept_cap::INVEPT | ept_cap::INVEPT_ALL
        {
            invept_all();
        }
        Ok(Vmx { caps, next_vpid: 1 })
    }

    fn take_vpid(&mut self) -> Option<u16> {
        if !self.caps.vpid() {
            return None;
        }
        let v = self.next_vpid;
        self.next_vpid = self.next_vpid.wrapping_add(1).max(1);
        Some(v)
    }
}

impl ArchBackend for Vmx {
    type Vcpu = VmxVcpu;

    fn create_vcpu<A: FrameAllocator>(
        &mut self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
    ) -> Result<VmxVcpu, VcpuError> {
        let oom = VcpuError {
            what: "out of memory for the VMCS",
            code: 0,
        };
        let vmcs = frames.alloc_table().ok_or(oom)?;
        frames.table(vmcs)[0] = self.caps.revision as u64;
        let (root, _) = nested::build(mem, &Ept, frames).map_err(|_| VcpuError {
            what: "cannot build the EPT",
            code: 0,
        })?;
        let msr_bitmap = frames.alloc_table().ok_or(oom)?;
        msr_bitmap::fill(frames.table(msr_bitmap));
        let vmcs = HwVmcs::load_fresh(vmcs)?;
        let structures = Structures {
            eptp: eptp(root),
            vpid: self.take_vpid(),
            msr_bitmap: msr_bitmap.0,
        };
        VmxVcpu::setup(
            vmcs,
            self.caps,
            rules,
            start,
            structures,
            &HostState::current(),
        )
    }
}
