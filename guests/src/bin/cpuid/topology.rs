//! The topology leaves agree with each other and with the local APIC (SDM Vol 2A, CPUID
//! leaves 01H, 04H and 0BH; SDM Vol 3A 8.9 "Programming considerations for hardware
//! multi-threading capable processors"; APM Vol 3, Appendix E.4 and E.5): the APIC ID
//! that leaf 1, leaf 0xB and AMD's 0x8000_001E report is the local APIC's ID register;
//! with HTT the counts of leaf 1, leaf 4, leaf 0xB and AMD's 0x8000_0008 fit together,
//! without it each says one logical processor. Only the CPU the suite runs on is
//! checked; how many CPUs the machine has only its firmware tables say.

use super::{expect, hides, l1d, shows, Feature, Outcome};
use janus_guests::cpuid;
use janus_guests::rt::apic;

pub const FEATURES: &[Feature] = &[
    shows("cpuid.apic_id", l1d(9), apic_id),
    shows("cpuid.htt_counts", l1d(28), counts),
    hides("cpuid.one_logical_processor", l1d(28), one),
];

/// `Ok` when every APIC ID CPUID reports is the local APIC's.
fn apic_id() -> Outcome {
    let id = apic::id();
    let initial = cpuid(1, 0)[1] >> 24;
    let mut out = expect(initial.into(), (id & 0xff).into());
    // Every valid level and the first invalid one tell the x2APIC ID in EDX.
    let subleaves = match leaf_b_levels() {
        0 => 0,
        levels => levels + 1,
    };
    for sub in 0..subleaves {
        out = out.and(|| expect(cpuid(0xb, sub)[3].into(), id.into()));
    }
    if max_ext() >= 0x8000_001e {
        out = out.and(|| expect(cpuid(0x8000_001e, 0)[0].into(), id.into()));
    }
    out
}

/// With HTT: leaf 1 addresses at least the package's logical processors (leaf 0xB's
/// count), leaf 4's cores times leaf 0xB's threads cover them, and AMD's NC + 1 is them.
fn counts() -> Outcome {
    let (threads, n) = package();
    let addressable = (cpuid(1, 0)[1] >> 16) & 0xff;
    at_least(addressable, n)
        .and(|| leaf4_cores().map_or(Outcome::Ok, |cores| at_least(cores * threads, n)))
        .and(|| match amd_threads() {
            Some(t) => expect(t.into(), n.into()),
            None => Outcome::Ok,
        })
}

/// `Ok` when `have` is at least `need`, else a wrong result.
fn at_least(have: u32, need: u32) -> Outcome {
    if have >= need {
        Outcome::Ok
    } else {
        Outcome::Wrong {
            got: have.into(),
            want: need.into(),
        }
    }
}

/// Without HTT: one logical processor in leaf 0xB, leaf 4 and AMD's 0x8000_0008.
fn one() -> Outcome {
    expect(package().1.into(), 1)
        .and(|| expect(leaf4_cores().unwrap_or(1).into(), 1))
        .and(|| expect(amd_threads().unwrap_or(1).into(), 1))
}

/// The valid levels of leaf 0xB (0 when the guest's CPUID lacks the leaf).
fn leaf_b_levels() -> u32 {
    if cpuid(0, 0)[0] < 0xb {
        return 0;
    }
    (0..8)
        .take_while(|&sub| (cpuid(0xb, sub)[2] >> 8) & 0xff != 0)
        .count() as u32
}

/// Threads per core and logical processors of the package, from leaf 0xB's first and
/// last levels; (1, 1) without the leaf.
fn package() -> (u32, u32) {
    match leaf_b_levels() {
        0 => (1, 1),
        levels => (
            cpuid(0xb, 0)[1] & 0xffff,
            cpuid(0xb, levels - 1)[1] & 0xffff,
        ),
    }
}

/// Leaf 4's addressable core IDs of the package, when leaf 4 describes a cache.
fn leaf4_cores() -> Option<u32> {
    let eax = cpuid(4, 0)[0];
    (cpuid(0, 0)[0] >= 4 && eax & 0x1f != 0).then_some((eax >> 26) + 1)
}

/// AMD's threads of the package (0x8000_0008 ECX NC + 1), when the leaf exists.
fn amd_threads() -> Option<u32> {
    (max_ext() >= 0x8000_0008).then(|| (cpuid(0x8000_0008, 0)[2] & 0xff) + 1)
}

fn max_ext() -> u32 {
    cpuid(0x8000_0000, 0)[0]
}
