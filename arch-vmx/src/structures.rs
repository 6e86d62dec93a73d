//! The frames a vCPU owns besides guest RAM: its VMCS page, its EPT and its MSR bitmap,
//! and its VPID. Taken together when the vCPU is made, given back together when it ends.

use crate::ept::{eptp, Ept};
use crate::msr_bitmap;
use crate::vpid::Vpid;
use vmm_core::addr::HostPhys;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::VcpuError;

/// Where one vCPU's structures are.
#[derive(Debug)]
pub struct Structures {
    /// The VMCS page, holding the revision ID (SDM Vol 3C 25.2).
    pub vmcs: HostPhys,
    pub ept_root: HostPhys,
    pub msr_bitmap: HostPhys,
    pub vpid: Option<Vpid>,
    /// The pages of virtual-interrupt delivery, where the CPU has it.
    pub apic: Option<ApicFrames>,
}

/// The virtual-APIC page (the local APIC's IRR, ISR, TMR and TPR while the guest runs,
/// SDM Vol 3C 30.1) and the APIC-access page, which the EPT maps at the local APIC's
/// default address so that the guest's accesses there are virtualized or exit as
/// APIC-access exits (SDM Vol 3C 30.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicFrames {
    pub virtual_apic: HostPhys,
    pub access: HostPhys,
}

/// Where the EPT maps the APIC-access page: the xAPIC page after reset.
pub const APIC_ACCESS_GPA: u64 = vmm_core::devices::lapic::DEFAULT_BASE;

const OOM: VcpuError = VcpuError {
    what: "out of memory for the VMCS",
    code: 0,
};

impl Structures {
    /// Takes the frames for a vCPU over `mem`: a VMCS page with `revision`, the EPT, and
    /// the MSR bitmap (the pages of virtual-interrupt delivery come later, when the vCPU
    /// uses it: [`ApicFrames::allocate`]). On failure every frame taken is given back.
    pub fn allocate<A: FrameAllocator>(
        mem: &GuestMemory,
        revision: u32,
        vpid: Option<Vpid>,
        frames: &mut A,
    ) -> Result<Structures, VcpuError> {
        let vmcs = frames.alloc_table().ok_or(OOM)?;
        frames.table(vmcs)[0] = revision as u64;
        let ept_root = match nested::build(mem, &Ept, frames) {
            Ok((root, _)) => root,
            Err(_) => {
                frames.free(vmcs, 1);
                return Err(VcpuError {
                    what: "cannot build the EPT",
                    code: 0,
                });
            }
        };
        let Some(msr_bitmap) = frames.alloc_table() else {
            nested::free_tables(ept_root, &Ept, frames);
            frames.free(vmcs, 1);
            return Err(OOM);
        };
        msr_bitmap::fill(frames.table(msr_bitmap));
        Ok(Structures {
            vmcs,
            ept_root,
            msr_bitmap,
            vpid,
            apic: None,
        })
    }

    /// The EPT pointer for the VMCS.
    pub fn eptp(&self) -> u64 {
        eptp(self.ept_root)
    }

    /// Gives every frame back, and the VPID; the VMCS page only if `vmcs_cleared` (a VMCS
    /// the CPU may still write back to must not be reused, SDM Vol 3C 25.11.1).
    pub fn free<A: FrameAllocator>(self, vmcs_cleared: bool, frames: &mut A) {
        if let Some(a) = self.apic {
            frames.free(a.virtual_apic, 1);
            frames.free(a.access, 1);
        }
        frames.free(self.msr_bitmap, 1);
        nested::free_tables(self.ept_root, &Ept, frames);
        if vmcs_cleared {
            frames.free(self.vmcs, 1);
        }
    }
}

impl ApicFrames {
    /// Two zeroed pages, the APIC-access page mapped in the EPT at `root` (before the
    /// vCPU's first entry: no translation of it can be cached yet); `None` (with nothing
    /// kept) when memory runs out.
    pub fn allocate<A: FrameAllocator>(root: HostPhys, frames: &mut A) -> Option<ApicFrames> {
        let virtual_apic = frames.alloc_table()?;
        let Some(access) = frames.alloc_table() else {
            frames.free(virtual_apic, 1);
            return None;
        };
        let gpa = vmm_core::addr::GuestPhys(APIC_ACCESS_GPA);
        if nested::map_page(root, gpa, access, &Ept, frames).is_err() {
            frames.free(virtual_apic, 1);
            frames.free(access, 1);
            return None;
        }
        Some(ApicFrames {
            virtual_apic,
            access,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_frames::{memory, Frames};

    #[test]
    fn every_frame_taken_is_given_back_once() {
        let mut frames = Frames::new(64);
        let s = Structures::allocate(&memory(), 0x2b, None, &mut frames).unwrap();
        assert_eq!(frames.table(s.vmcs)[0], 0x2b, "revision ID");
        assert!(frames.live() > 3, "VMCS, MSR bitmap and EPT tables");
        s.free(true, &mut frames);
        assert_eq!(frames.live(), 0);
    }

    #[test]
    fn the_apic_access_page_is_mapped_at_the_apic_and_given_back_with_the_rest() {
        let mut frames = Frames::new(64);
        let mut s = Structures::allocate(&memory(), 0x2b, None, &mut frames).unwrap();
        let before = frames.live();
        let a = ApicFrames::allocate(s.ept_root, &mut frames).unwrap();
        s.apic = Some(a);
        let gpa = vmm_core::addr::GuestPhys(APIC_ACCESS_GPA + 0xb0);
        let hpa = nested::translate(s.ept_root, gpa, &Ept, &mut frames);
        assert_eq!(hpa, Some(HostPhys(a.access.0 + 0xb0)));
        assert!(frames.live() >= before + 2);
        s.free(true, &mut frames);
        assert_eq!(frames.live(), 0);
    }

    #[test]
    fn a_vmcs_not_cleared_is_kept() {
        let mut frames = Frames::new(64);
        let s = Structures::allocate(&memory(), 0x2b, None, &mut frames).unwrap();
        let vmcs = s.vmcs;
        s.free(false, &mut frames);
        assert_eq!(frames.live_frames(), vec![vmcs]);
    }

    #[test]
    fn a_failed_allocation_gives_back_what_it_took() {
        // The VMCS page, then the MSR bitmap after the EPT's three tables (a failure inside
        // `nested::build` is the core's to clean up).
        for limit in [1, 4] {
            let mut frames = Frames::new(limit);
            assert!(Structures::allocate(&memory(), 0x2b, None, &mut frames).is_err());
            assert_eq!(frames.live(), 0, "limit {limit}");
        }
    }
}
