//! The CPUID answers a vCPU already got. The policy's answer for a leaf, a subleaf and a
//! vCPU never changes while the VM lives (the host's CPUID and TSC rate are fixed at
//! boot, the vCPU's APIC ID with it), and a CPUID exit is frequent (OSes probe leaves
//! again and again; CPUID serializes, so guests time with it): each answer is worked out
//! once and the exit then costs a table look-up (issue #9). Each vCPU keeps its own
//! ([`crate::in_place::InPlace`]): its backend answers from it without the dispatcher.

/// Entries: a direct-mapped table, indexed by a hash of the key. A guest uses a few
/// dozen (leaf, subleaf) pairs at most; a collision only costs the policy's answer again.
const ENTRIES: usize = 32;

/// One answer: the key is the leaf in the low half, the subleaf in the high one. 32
/// bytes, so that an index is a shift (a CPUID exit finished in place looks one up,
/// `crate::in_place`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
struct Entry {
    key: u64,
    value: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<Entry>() == 32);

#[derive(Clone, Debug)]
pub struct CpuidCache {
    entries: [Entry; ENTRIES],
}

impl Default for CpuidCache {
    /// Empty: each entry holds a key that indexes another entry (leaf `i + 1` in entry
    /// `i`), which a look-up there can never ask. So a look-up compares the key alone,
    /// without a flag for "used" (2 instructions fewer on each CPUID in place).
    fn default() -> Self {
        CpuidCache {
            entries: core::array::from_fn(|i| Entry {
                key: key(i as u32 + 1, 0),
                value: [0; 4],
            }),
        }
    }
}

impl CpuidCache {
    /// The answer for `(leaf, sub)`: the one remembered, or `answer()`'s, which is
    /// remembered.
    pub fn get_or(&mut self, leaf: u32, sub: u32, answer: impl FnOnce() -> [u32; 4]) -> [u32; 4] {
        if let Some(value) = self.get(leaf, sub) {
            return value;
        }
        let value = answer();
        self.entries[index(leaf, sub)] = Entry {
            key: key(leaf, sub),
            value,
        };
        value
    }

    /// The answer remembered for `(leaf, sub)`, if any.
    #[inline(always)]
    pub fn get(&self, leaf: u32, sub: u32) -> Option<[u32; 4]> {
        let k = key(leaf, sub);
        let e = &self.entries[index_of(k)];
        (e.key == k).then_some(e.value)
    }
}

#[inline(always)]
fn key(leaf: u32, sub: u32) -> u64 {
    u64::from(leaf) | u64::from(sub) << 32
}

/// The table index of a key: the leaf's low bits (basic leaves, and the extended and
/// hypervisor ones by their low bits too, their top three bits folded in), mixed with
/// the subleaf: one shift of the key does both (the subleaf's low bits land at bit 3).
#[inline(always)]
fn index_of(key: u64) -> usize {
    (key ^ (key >> 29)) as usize % ENTRIES
}

#[inline(always)]
fn index(leaf: u32, sub: u32) -> usize {
    index_of(key(leaf, sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn an_empty_cache_answers_nothing() {
        let c = CpuidCache::default();
        for (i, e) in c.entries.iter().enumerate() {
            let (leaf, sub) = (e.key as u32, (e.key >> 32) as u32);
            assert_ne!(index(leaf, sub), i, "entry {i}'s key indexes it");
        }
        let bases = [0, 0x4000_0000, 0x8000_0000, 0xc000_0000];
        for (base, leaf, sub) in keys(bases) {
            assert_eq!(c.get(base + leaf, sub), None, "{:#x}.{sub}", base + leaf);
        }
    }

    /// Every leaf 0-63 above each base, with subleaves 0-3.
    fn keys(bases: [u32; 4]) -> impl Iterator<Item = (u32, u32, u32)> {
        bases
            .into_iter()
            .flat_map(|b| (0..64).flat_map(move |l| (0..4).map(move |s| (b, l, s))))
    }

    #[test]
    fn each_answer_is_worked_out_once_per_leaf_and_subleaf() {
        let mut c = CpuidCache::default();
        let calls = Cell::new(0);
        let answer = |v: u32| {
            calls.set(calls.get() + 1);
            [v, 0, 0, 0]
        };
        assert_eq!(c.get(1, 0), None, "nothing before the policy answered");
        assert_eq!(c.get_or(1, 0, || answer(10)), [10, 0, 0, 0]);
        assert_eq!(c.get_or(1, 0, || answer(99)), [10, 0, 0, 0], "remembered");
        assert_eq!(c.get(1, 0), Some([10, 0, 0, 0]));
        assert_eq!(calls.get(), 1);
        assert_eq!(c.get(0xb, 1), None);
        assert_eq!(c.get_or(0xb, 1, || answer(12))[0], 12, "another subleaf");
        assert_eq!(c.get_or(0x8000_0001, 0, || answer(13))[0], 13);
        assert_eq!(calls.get(), 3);
        // Every key of a busy guest still gets its own answer, collisions or not.
        for leaf in 0..64 {
            assert_eq!(c.get_or(leaf, 5, || [leaf, 1, 2, 3])[0], leaf);
        }
        for leaf in 0..64 {
            assert_eq!(c.get_or(leaf, 5, || [leaf, 1, 2, 3])[0], leaf);
            assert_eq!(c.get(leaf, 6), None, "only the subleaf asked");
        }
    }
}
