//! VMX root operation: VMXON, and the hardware half of making a vCPU (its VMCS page, EPT
//! and MSR bitmap); `VmxVcpu::setup` writes the VMCS.

use crate::caps::VmxCaps;
use crate::host_state::HostState;
use crate::structures::Structures;
use crate::vcpu::VmxVcpu;
use crate::vmcs::hw::{flush_new_vcpu, invept_all, CurrentSlot, HwVmcs};
use crate::vpid::VpidPool;
use vmm_core::cpu_rules::CpuRules;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::FrameAllocator;
use vmm_core::vcpu::{ArchBackend, StartMode, VcpuError};
use x86::controlregs::{cr0, cr0_write, cr4, cr4_write, Cr0, Cr4};

/// The VPIDs of this host CPU's vCPUs.
static VPIDS: VpidPool = VpidPool::new();

/// VT-x, switched on: VMX root operation has been entered with VMXON.
pub struct Vmx {
    caps: VmxCaps,
    /// This CPU's record of its current VMCS.
    current: CurrentSlot,
}

impl Vmx {
    /// Sets CR0/CR4 as VMX requires and executes VMXON (SDM Vol 3C 24.7, 24.8).
    pub fn enable<A: FrameAllocator>(caps: VmxCaps, frames: &mut A) -> Result<Vmx, &'static str> {
        let current = CurrentSlot::take().ok_or("more host CPUs than Janus' VT-x supports")?;
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
        if caps.invept_all() {
            invept_all();
        }
        Ok(Vmx { caps, current })
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
        // Without VPIDs (or all 65535 taken) the guest runs with VPID 0: every entry and
        // exit flushes its linear mappings (SDM Vol 3C 29.1).
        let vpid = self.caps.flushable_vpid().then(|| VPIDS.take()).flatten();
        let s = Structures::allocate(mem, self.caps.revision, vpid, frames)?;
        let vmcs = match HwVmcs::fresh(s.vmcs, self.current) {
            Ok(v) => v,
            Err(e) => {
                s.free(false, frames);
                return Err(e);
            }
        };
        flush_new_vcpu(&self.caps, s.vpid.as_ref().map(|v| v.get()));
        VmxVcpu::setup(
            vmcs,
            self.caps,
            rules,
            start,
            s,
            &HostState::current(),
            frames,
        )
    }
}
