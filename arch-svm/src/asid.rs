//! Guest ASIDs: each live vCPU has its own, so that no guest ever hits another's TLB
//! entries (APM Vol 2 15.16). ASID 0 is the host's; guests get 1 to the CPU's count - 1
//! (CPUID 0x8000_000A EBX), handed out round robin so that an ASID is reused only after
//! the others, and given back when a vCPU is released.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

/// The most ASIDs Janus tracks; a CPU offering more gets this many (far more guests than
/// Janus runs at once).
pub const MAX_ASIDS: u32 = 4096;
const WORDS: usize = MAX_ASIDS as usize / 64;

/// Which ASIDs are live, and where the next search starts.
pub struct AsidPool {
    live: [AtomicU64; WORDS],
    next: AtomicU32,
    /// How many vCPUs hold each ASID beyond the first (more guests than the CPU has ASIDs:
    /// they share, and every holder of a shared ASID flushes its TLB entries when it is
    /// loaded, APM Vol 2 15.16).
    extra: [AtomicU16; MAX_ASIDS as usize],
    /// Round robin over the ASIDs handed out a second time.
    next_shared: AtomicU32,
}

impl AsidPool {
    pub const fn new() -> AsidPool {
        AsidPool {
            live: [const { AtomicU64::new(0) }; WORDS],
            next: AtomicU32::new(1),
            extra: [const { AtomicU16::new(0) }; MAX_ASIDS as usize],
            next_shared: AtomicU32::new(0),
        }
    }

    /// An ASID no live vCPU holds, from 1 to `count - 1`, searched from just after the
    /// last one taken; `None` when all are live.
    pub fn take(&self, count: u32) -> Option<u32> {
        let guests = count.min(MAX_ASIDS).checked_sub(1).filter(|&n| n > 0)?;
        let start = self.next.load(Ordering::Relaxed).max(1) - 1;
        (0..guests)
            .map(|i| (start + i) % guests + 1)
            .find(|&asid| self.claim(asid))
            .inspect(|&asid| self.next.store(asid % guests + 1, Ordering::Relaxed))
    }

    /// Gives back an ASID [`AsidPool::take`] returned.
    /// An ASID for a vCPU when every one is taken: one of them again, shared (see
    /// [`AsidPool::shared`]). `None` only when the CPU has no guest ASID at all.
    pub fn share(&self, count: u32) -> Option<u32> {
        let guests = count.min(MAX_ASIDS).checked_sub(1).filter(|&n| n > 0)?;
        let asid = self.next_shared.fetch_add(1, Ordering::Relaxed) % guests + 1;
        self.extra[asid as usize].fetch_add(1, Ordering::AcqRel);
        Some(asid)
    }

    /// Whether more than one live vCPU holds `asid`: then each must flush its TLB entries
    /// before it runs after another.
    pub fn shared(&self, asid: u32) -> bool {
        self.extra
            .get(asid as usize)
            .is_some_and(|e| e.load(Ordering::Acquire) > 0)
    }

    pub fn give(&self, asid: u32) {
        let Some(extra) = self.extra.get(asid as usize) else {
            return;
        };
        if extra
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| e.checked_sub(1))
            .is_ok()
        {
            return;
        }
        let (word, bit) = Self::slot(asid);
        self.live[word].fetch_and(!bit, Ordering::AcqRel);
    }

    /// Marks `asid` live; false if it was already.
    fn claim(&self, asid: u32) -> bool {
        let (word, bit) = Self::slot(asid);
        self.live[word].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    fn slot(asid: u32) -> (usize, u64) {
        ((asid / 64) as usize, 1 << (asid % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_never_shared_and_wraps_only_past_the_count() {
        let pool = AsidPool::new();
        let first: Vec<u32> = (0..15).map(|_| pool.take(16).unwrap()).collect();
        assert_eq!(first, (1..16).collect::<Vec<_>>(), "1-15, in order");
        assert_eq!(pool.take(16), None, "all 15 guest ASIDs live");
        pool.give(7);
        pool.give(3);
        assert_eq!(pool.take(16), Some(3), "wrapped: the first free from 1");
        assert_eq!(pool.take(16), Some(7));
        assert_eq!(pool.take(16), None);
    }

    #[test]
    fn when_every_asid_is_taken_they_are_shared_and_given_back_in_turn() {
        let pool = AsidPool::new();
        for _ in 0..3 {
            pool.take(4).unwrap();
        }
        assert_eq!(pool.take(4), None);
        let a = pool.share(4).unwrap();
        let b = pool.share(4).unwrap();
        assert_ne!(a, b, "spread over the ASIDs");
        assert!(pool.shared(a) && pool.shared(b) && !pool.shared(6 - a - b));
        pool.give(a);
        assert!(!pool.shared(a), "one holder left");
        assert_eq!(pool.take(4), None, "and that one still holds it");
        pool.give(a);
        assert_eq!(pool.take(4), Some(a), "free once both gave it back");
        assert_eq!(AsidPool::new().share(1), None);
    }

    #[test]
    fn a_given_back_asid_waits_for_the_others() {
        let pool = AsidPool::new();
        let a = pool.take(16).unwrap();
        pool.give(a);
        assert_eq!(pool.take(16), Some(a + 1), "not reused at once");
    }

    #[test]
    fn huge_counts_are_capped_and_tiny_ones_give_nothing() {
        let pool = AsidPool::new();
        for _ in 0..MAX_ASIDS - 1 {
            let a = pool.take(u32::MAX).unwrap();
            assert!((1..MAX_ASIDS).contains(&a));
        }
        assert_eq!(pool.take(u32::MAX), None);
        assert_eq!(AsidPool::new().take(1), None, "ASID 0 is the host's");
    }
}
