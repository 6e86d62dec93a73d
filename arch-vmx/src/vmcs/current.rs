//! Which VMCS is current on each host CPU, and which one is pinned there.
//!
//! VMREAD, VMWRITE, VMLAUNCH and VMRESUME act on the CPU's current VMCS, the one the last
//! VMPTRLD named (SDM Vol 3C 25.11.2, 31.3). The loaded vCPU's VMCS is *pinned*: it is
//! made current when the vCPU is loaded and stays current until it is put, so the exit
//! path reaches it without checking anything first. Any other VMCS accessed meanwhile on
//! that CPU (a vCPU that is not loaded: the scheduler asks whether its guest takes an
//! interrupt, a new vCPU is set up) is made current for that one access only, and the
//! pinned one is made current again right after it.
//!
//! The bookkeeping is here, over a `ptrld` closure (VMPTRLD on the hardware, a recorder
//! in the tests); `hw.rs` has the instructions.

use core::sync::atomic::{AtomicU64, Ordering};

/// One host CPU's record: the physical address of its current VMCS and of its pinned one
/// (0: none).
#[derive(Debug, Default)]
pub struct CpuVmcs {
    current: AtomicU64,
    pinned: AtomicU64,
}

impl CpuVmcs {
    pub const fn new() -> CpuVmcs {
        CpuVmcs {
            current: AtomicU64::new(0),
            pinned: AtomicU64::new(0),
        }
    }

    /// Makes `phys` current unless it is; false if VMPTRLD failed.
    pub fn make_current(&self, phys: u64, ptrld: impl Fn(u64) -> bool) -> bool {
        if self.current.load(Ordering::Relaxed) == phys {
            return true;
        }
        if !ptrld(phys) {
            return false;
        }
        self.current.store(phys, Ordering::Relaxed);
        true
    }

    /// Runs `access` with `phys` current, then gives the CPU back to the pinned VMCS (if
    /// another one is pinned). `None` if `phys` could not be made current.
    pub fn borrow<R>(
        &self,
        phys: u64,
        ptrld: impl Fn(u64) -> bool,
        access: impl FnOnce() -> R,
    ) -> Option<R> {
        if !self.make_current(phys, &ptrld) {
            return None;
        }
        let r = access();
        let pinned = self.pinned.load(Ordering::Relaxed);
        if pinned != 0 && pinned != phys {
            if ptrld(pinned) {
                self.current.store(pinned, Ordering::Relaxed);
            } else {
                // A VMCS that was current a moment ago cannot fail VMPTRLD (SDM Vol 3C
                // 31.3 lists an unaligned or foreign address, the VMXON region and a
                // wrong revision ID): say so, and let its vCPU's next entry fail.
                log::error!("VMPTRLD of the pinned VMCS {pinned:#x} failed");
                self.pinned.store(0, Ordering::Relaxed);
            }
        }
        Some(r)
    }

    /// Makes `phys` current and keeps it so (the vCPU is loaded); false if VMPTRLD
    /// failed.
    pub fn pin(&self, phys: u64, ptrld: impl Fn(u64) -> bool) -> bool {
        if !self.make_current(phys, ptrld) {
            return false;
        }
        self.pinned.store(phys, Ordering::Relaxed);
        true
    }

    /// The vCPU of `phys` is put: the CPU is free for other VMCSs.
    pub fn unpin(&self, phys: u64) {
        let _ = self
            .pinned
            .compare_exchange(phys, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// VMCLEAR of `phys` succeeded: it is neither current nor pinned any more (VMCLEAR of
    /// the current VMCS leaves none current, SDM Vol 3C 31.3).
    pub fn cleared(&self, phys: u64) {
        for word in [&self.current, &self.pinned] {
            let _ = word.compare_exchange(phys, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    impl CpuVmcs {
        /// Whether `phys` is pinned and current.
        fn holds(&self, phys: u64) -> bool {
            self.pinned.load(Ordering::Relaxed) == phys
                && self.current.load(Ordering::Relaxed) == phys
        }
    }

    /// A pretend VMPTRLD: records the addresses it loads, and fails for `bad`.
    struct Ptrld {
        loads: RefCell<Vec<u64>>,
        bad: u64,
    }

    impl Ptrld {
        fn new() -> Ptrld {
            Ptrld {
                loads: RefCell::new(Vec::new()),
                bad: 0xdead_0000,
            }
        }
        fn f(&self) -> impl Fn(u64) -> bool + '_ {
            |pa| {
                self.loads.borrow_mut().push(pa);
                pa != self.bad
            }
        }
        fn take(&self) -> Vec<u64> {
            self.loads.take()
        }
    }

    #[test]
    fn a_pinned_vmcs_is_current_and_another_access_gives_it_back() {
        let cpu = CpuVmcs::new();
        let p = Ptrld::new();
        assert!(cpu.pin(0x1000, p.f()));
        assert_eq!(p.take(), [0x1000]);
        assert!(cpu.holds(0x1000));
        // Another vCPU's VMCS, accessed while 0x1000 is pinned: loaded for the access,
        // and 0x1000 loaded again after it.
        let seen = cpu.borrow(0x2000, p.f(), || cpu.current.load(Ordering::Relaxed));
        assert_eq!(seen, Some(0x2000), "the access ran with 0x2000 current");
        assert_eq!(p.take(), [0x2000, 0x1000]);
        assert!(cpu.holds(0x1000));
        // The pinned VMCS itself, through the slow path: nothing to load.
        assert_eq!(cpu.borrow(0x1000, p.f(), || 7), Some(7));
        assert!(p.take().is_empty());
    }

    #[test]
    fn without_a_pinned_vmcs_the_last_one_accessed_stays_current() {
        let cpu = CpuVmcs::new();
        let p = Ptrld::new();
        assert_eq!(cpu.borrow(0x2000, p.f(), || ()), Some(()));
        assert_eq!(cpu.borrow(0x2000, p.f(), || ()), Some(()));
        assert_eq!(p.take(), [0x2000], "loaded once (a new vCPU's set-up)");
        assert!(cpu.pin(0x1000, p.f()));
        cpu.unpin(0x1000);
        assert!(!cpu.holds(0x1000));
        assert_eq!(cpu.borrow(0x2000, p.f(), || ()), Some(()));
        assert_eq!(p.take(), [0x1000, 0x2000], "nothing to give back once put");
    }

    #[test]
    fn unpin_and_clear_touch_only_their_own_vmcs() {
        let cpu = CpuVmcs::new();
        let p = Ptrld::new();
        assert!(cpu.pin(0x1000, p.f()));
        cpu.unpin(0x2000);
        cpu.cleared(0x2000);
        assert!(cpu.holds(0x1000), "another VMCS's put or VMCLEAR");
        cpu.cleared(0x1000);
        assert!(!cpu.holds(0x1000));
        assert_eq!(cpu.current.load(Ordering::Relaxed), 0, "none current");
        assert_eq!(cpu.pinned.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_failed_vmptrld_is_reported_and_changes_nothing() {
        let cpu = CpuVmcs::new();
        let p = Ptrld::new();
        assert!(!cpu.pin(0xdead_0000, p.f()));
        assert_eq!(cpu.borrow(0xdead_0000, p.f(), || ()), None);
        assert_eq!(cpu.current.load(Ordering::Relaxed), 0);
        assert_eq!(cpu.pinned.load(Ordering::Relaxed), 0);
    }
}
