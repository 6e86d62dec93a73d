//! The CPUID answers a VM already gave. The policy's answer for a leaf, a subleaf and a
//! vCPU never changes while the VM lives (the host's CPUID and TSC rate are fixed at
//! boot, the vCPU's APIC ID with it), and a CPUID exit is frequent (OSes probe leaves
//! again and again; CPUID serializes, so guests time with it): each answer is worked out
//! once and the exit then costs a table look-up (issue #9).

/// Entries: a direct-mapped table, indexed by a hash of the key. A guest uses a few
/// dozen (leaf, subleaf) pairs at most; a collision only costs the policy's answer again.
const ENTRIES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    leaf: u32,
    sub: u32,
    vcpu: u8,
    value: [u32; 4],
}

#[derive(Clone, Debug, Default)]
pub struct CpuidCache {
    entries: [Option<Entry>; ENTRIES],
}

impl CpuidCache {
    /// The answer for `(leaf, sub)` on vCPU `vcpu`: the one remembered, or `answer()`'s,
    /// which is remembered.
    pub fn get_or(
        &mut self,
        leaf: u32,
        sub: u32,
        vcpu: u8,
        answer: impl FnOnce() -> [u32; 4],
    ) -> [u32; 4] {
        let slot = &mut self.entries[index(leaf, sub, vcpu)];
        match slot {
            Some(e) if e.leaf == leaf && e.sub == sub && e.vcpu == vcpu => e.value,
            _ => {
                let value = answer();
                *slot = Some(Entry {
                    leaf,
                    sub,
                    vcpu,
                    value,
                });
                value
            }
        }
    }
}

/// The table index of a key: the leaf's low bits (basic leaves, and the extended ones
/// by their low bits too), mixed with the subleaf and the vCPU.
fn index(leaf: u32, sub: u32, vcpu: u8) -> usize {
    let h = leaf ^ (leaf >> 27) ^ sub.wrapping_mul(7) ^ (vcpu as u32).wrapping_mul(13);
    h as usize % ENTRIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn each_answer_is_worked_out_once_per_leaf_subleaf_and_vcpu() {
        let mut c = CpuidCache::default();
        let calls = Cell::new(0);
        let answer = |v: u32| {
            calls.set(calls.get() + 1);
            [v, 0, 0, 0]
        };
        assert_eq!(c.get_or(1, 0, 0, || answer(10)), [10, 0, 0, 0]);
        assert_eq!(
            c.get_or(1, 0, 0, || answer(99)),
            [10, 0, 0, 0],
            "remembered"
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(c.get_or(1, 0, 1, || answer(11))[0], 11, "another vCPU");
        assert_eq!(c.get_or(0xb, 1, 0, || answer(12))[0], 12, "another subleaf");
        assert_eq!(c.get_or(0x8000_0001, 0, 0, || answer(13))[0], 13);
        assert_eq!(calls.get(), 4);
        // Every key of a busy guest still gets its own answer, collisions or not.
        for leaf in 0..64 {
            assert_eq!(c.get_or(leaf, 5, 0, || [leaf, 1, 2, 3])[0], leaf);
        }
        for leaf in 0..64 {
            assert_eq!(c.get_or(leaf, 5, 0, || [leaf, 1, 2, 3])[0], leaf);
        }
    }
}
