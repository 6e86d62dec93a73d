//! The same question gets the same answer, and another subleaf another one: Janus
//! answers a CPUID it has answered before without its dispatcher (`vmm_core::in_place`:
//! where the CPU gives the next RIP, or at the exit site the dispatcher kept), from a
//! table keyed by leaf and subleaf. Each key
//! is asked in three rounds, in changing order, and the answers checked against what
//! they must say (SDM Vol 2A, CPUID: leaf 7 subleaf 1 and the topology leaf's levels;
//! docs/hypercalls.md: the hypervisor leaves).

use super::{expect, l1c, shows, Feature, Outcome};
use janus_guests::cpuid;

pub const FEATURES: &[Feature] = &[shows("cpuid.answers_repeat", l1c(31), repeat)];

/// The keys asked: leaf and subleaf.
const KEYS: [(u32, u32); 7] = [
    (0, 0),
    (7, 0),
    (7, 1),
    (0x4000_0000, 0),
    (0x4000_0001, 0),
    (0xb, 0),
    (0xb, 1),
];

fn repeat() -> Outcome {
    let first = KEYS.map(|(leaf, sub)| cpuid(leaf, sub));
    let mut out = Outcome::Ok;
    for round in 0..3 {
        for n in 0..KEYS.len() {
            // Forwards, backwards, then every other one first.
            let i = match round {
                0 => n,
                1 => KEYS.len() - 1 - n,
                _ => (n * 2) % KEYS.len(),
            };
            let (leaf, sub) = KEYS[i];
            let again = cpuid(leaf, sub);
            for (got, want) in again.iter().zip(first[i]) {
                out = out.and(|| expect((*got).into(), want.into()));
            }
        }
    }
    let max = first[0][0];
    // Leaf 7.0 EBX shows IA32_TSC_ADJUST (bit 1) on every host; 7.1 is Janus' zeros.
    out = out.and(|| expect((first[1][1] >> 1 & 1).into(), 1));
    out = out.and(|| expect(first[2].iter().map(|&r| u64::from(r)).sum(), 0));
    out = out.and(|| expect(first[3][1].into(), u32::from_le_bytes(*b"Janu").into()));
    out = out.and(|| expect(first[4][0].into(), 1));
    // Each topology level says its own number in ECX[7:0].
    if max >= 0xb && first[5][1] != 0 {
        out = out.and(|| expect((first[5][2] & 0xff).into(), 0));
        out = out.and(|| expect((first[6][2] & 0xff).into(), 1));
    }
    out
}
