//! The page a VMCB lives in: the CPU finds it by its physical address, Janus reaches it
//! through a pointer.

use super::Vmcb;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use vmm_core::addr::HostPhys;

/// One VMCB, owned by one vCPU.
pub struct VmcbPage {
    ptr: NonNull<Vmcb>,
    pa: HostPhys,
}

impl VmcbPage {
    /// # Safety
    /// `ptr` must point at a `Vmcb` valid for reads and writes that nothing but this
    /// page (and the CPU, during VMRUN) uses for as long as the page lives; `pa` is its
    /// physical address, which only VMRUN uses.
    pub unsafe fn new(ptr: NonNull<Vmcb>, pa: HostPhys) -> VmcbPage {
        VmcbPage { ptr, pa }
    }

    pub fn pa(&self) -> HostPhys {
        self.pa
    }
}

impl Deref for VmcbPage {
    type Target = Vmcb;
    fn deref(&self) -> &Vmcb {
        // SAFETY: `new`'s contract: the VMCB is valid and ours alone while `self` lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl DerefMut for VmcbPage {
    fn deref_mut(&mut self) -> &mut Vmcb {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { self.ptr.as_mut() }
    }
}
