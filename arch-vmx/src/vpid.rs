//! Virtual-processor identifiers (SDM Vol 3C 29.1): each live vCPU tags its TLB entries
//! with its own VPID, never 0 (the host's, SDM Vol 3C 26.2.1.1) and never one another live
//! vCPU has. A VPID goes back to its pool when its vCPU ends (`Vpid` is dropped); the pool
//! hands out the next free one after the last it gave, so a number is reused only after
//! all others have been (and the new owner flushes it first, `hw::flush_new_vcpu`).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// VPIDs 1 to 65535 (the field is 16 bits): slot `i` is VPID `i + 1`.
const SLOTS: usize = u16::MAX as usize;
const WORDS: usize = SLOTS.div_ceil(64);

/// Which VPIDs are taken. Atomic so that it can be a `static`.
#[derive(Debug)]
pub struct VpidPool {
    taken: [AtomicU64; WORDS],
    /// The slot to try first.
    next: AtomicUsize,
}

impl VpidPool {
    pub const fn new() -> Self {
        VpidPool {
            taken: [const { AtomicU64::new(0) }; WORDS],
            next: AtomicUsize::new(0),
        }
    }

    /// A VPID no live vCPU has, or `None` when all 65535 are taken.
    pub fn take(&'static self) -> Option<Vpid> {
        let start = self.next.load(Ordering::Relaxed);
        (0..SLOTS)
            .map(|i| (start + i) % SLOTS)
            .find(|&slot| self.claim(slot))
            .map(|slot| {
                self.next.store((slot + 1) % SLOTS, Ordering::Relaxed);
                Vpid {
                    slot: slot as u16,
                    pool: self,
                }
            })
    }

    fn claim(&self, slot: usize) -> bool {
        let bit = 1u64 << (slot % 64);
        self.taken[slot / 64].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    fn give_back(&self, slot: usize) {
        self.taken[slot / 64].fetch_and(!(1u64 << (slot % 64)), Ordering::AcqRel);
    }
}

impl Default for VpidPool {
    fn default() -> Self {
        Self::new()
    }
}

/// One vCPU's VPID, taken from a pool until dropped.
#[derive(Debug)]
pub struct Vpid {
    slot: u16,
    pool: &'static VpidPool,
}

impl Vpid {
    pub fn get(&self) -> u16 {
        self.slot + 1
    }
}

impl Drop for Vpid {
    fn drop(&mut self) {
        self.pool.give_back(self.slot as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static VpidPool {
        Box::leak(Box::new(VpidPool::new()))
    }

    #[test]
    fn live_vpids_are_distinct_and_never_0() {
        let p = pool();
        let vpids: Vec<Vpid> = (0..200).map(|_| p.take().unwrap()).collect();
        let mut nums: Vec<u16> = vpids.iter().map(Vpid::get).collect();
        assert!(!nums.contains(&0));
        nums.sort();
        nums.dedup();
        assert_eq!(nums.len(), 200, "no VPID given twice");
    }

    #[test]
    fn a_vpid_comes_back_only_after_the_others_when_all_are_taken() {
        let p = pool();
        let first = p.take().unwrap();
        assert_eq!(first.get(), 1);
        drop(first);
        let second = p.take().unwrap();
        assert_eq!(second.get(), 2, "next-fit: 1 is not reused at once");
        let all: Vec<Vpid> = (0..SLOTS).map_while(|_| p.take()).collect();
        assert_eq!(
            all.len(),
            SLOTS - 1,
            "every VPID but the live one, 1 included"
        );
        assert_eq!(
            all.iter().map(|v| v.get() as usize).sum::<usize>(),
            (1..=SLOTS).sum::<usize>() - 2
        );
        assert!(p.take().is_none(), "all 65535 taken");
        drop(all);
        assert!(p.take().is_some(), "dropped VPIDs come back");
    }
}
