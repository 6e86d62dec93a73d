//! The instruction cache against no cache: a fixed pseudo-random walk that rewrites code,
//! page-table entries and the vCPU's paging state, RIP, CPL and CS, and after each step
//! asks for the length and the decoded form of the instruction at RIP both through one
//! long-lived `InsnCache` and through a fresh one. Any answer of the caches (exit sites,
//! code pages, decoded instructions) that outlived what it was read from shows as a
//! difference.

use super::*;
use crate::addr::GuestPhys;
use crate::cpu_rules::cr4;
use crate::memory::testing::ram;
use crate::mock::MockVcpu;

const P_RW: u64 = 0b11;
const US: u64 = 0b100;

/// Instructions (and a few byte strings that are none) written at the code places.
const CODE: &[&[u8]] = &[
    &[0x0f, 0xa2],
    &[0x66, 0x0f, 0xa2],
    &[0xf3, 0x0f, 0xa2],
    &[0x48, 0x0f, 0xa2],
    &[0x0f, 0x01, 0xd9],
    &[0x8b, 0x07],
    &[0x66, 0x8b, 0x07],
    &[0x48, 0x8b, 0x87, 0x44, 0x33, 0x22, 0x11],
    &[0xc7, 0x07, 0x44, 0x33, 0x22, 0x11],
    &[0x48, 0xc7, 0x80, 0xf0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11],
    &[0x66; 15],
    &[0xff, 0xff],
];
/// Code frames, and offsets in a page: the start, inside, near the end, across it.
const FRAMES: [u64; 3] = [0x9000, 0xa000, 0xb000];
const OFFSETS: [u64; 5] = [0, 0x10, 0x7f0, 0xff8, 0xffe];
/// Linear pages 0x40_0000 and 0x40_1000 (PT entries 0 and 1).
const PAGES: [u64; 2] = [0x40_0000, 0x40_1000];
const CPUID: &[u8] = &[0x0f, 0xa2];
const VMMCALL: &[u8] = &[0x0f, 0x01, 0xd9];

/// Two roots: 0x1000 (PDPT 0x2000, PD 0x3000) and 0x6000 (PDPT 0x7000, PD 0x8000), each
/// PD's entry 2 pointing at one of two PTs (0x4000, 0x5000).
fn machine() -> (GuestMemory, MockVcpu) {
    let mut m = ram(0x10_0000);
    for (at, v) in [
        (0x1000, 0x2000 | P_RW | US),
        (0x6000, 0x7000 | P_RW | US),
        (0x2000, 0x3000 | P_RW | US),
        (0x7000, 0x8000 | P_RW | US),
        (0x3000 + 2 * 8, 0x4000 | P_RW | US),
        (0x8000 + 2 * 8, 0x5000 | P_RW | US),
        (0x4000, 0x9000 | P_RW),
        (0x4008, 0xa000 | P_RW),
        (0x5000, 0xb000 | P_RW),
        (0x5008, 0x9000 | P_RW),
    ] {
        m.write_u64(GuestPhys(at), v).unwrap();
    }
    let mut v = MockVcpu::new(&[]);
    v.cr0 = cr0::PG | cr0::PE;
    v.cr3 = 0x1000;
    v.cr4 = cr4::PAE;
    v.efer = efer::LME | efer::LMA;
    v.segs[SegReg::Cs as usize].attr = 0xa9b;
    v.rip = PAGES[0];
    (m, v)
}

struct Walk(u64);

impl Walk {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next(from.len())]
    }
}

/// One random change to the code, the tables or the vCPU.
fn step(w: &mut Walk, m: &mut GuestMemory, v: &mut MockVcpu) {
    match w.next(9) {
        8 => {
            // One byte inside or just after an instruction written below.
            let at = w.pick(&FRAMES) + w.pick(&OFFSETS) + w.next(16) as u64;
            let byte = w.pick(&[0x00, 0x0f, 0x66, 0xa2, 0xc3]);
            if at < 0x10_0000 {
                m.write(GuestPhys(at), &[byte]).unwrap();
            }
        }
        0 | 1 => {
            let at = w.pick(&FRAMES) + w.pick(&OFFSETS);
            let code = w.pick(CODE);
            let n = code.len().min((0x10_0000 - at) as usize);
            m.write(GuestPhys(at), &code[..n]).unwrap();
        }
        2 => {
            let pte = w.pick(&[0x4000, 0x4008, 0x5000, 0x5008]);
            let user = w.pick(&[0, US]);
            let present = w.pick(&[P_RW, P_RW, P_RW, 0]);
            m.write_u64(GuestPhys(pte), w.pick(&FRAMES) | present | user)
                .unwrap();
        }
        3 => {
            let pd = w.pick(&[0x3000, 0x8000]);
            let pt = w.pick(&[0x4000, 0x5000]);
            m.write_u64(GuestPhys(pd + 2 * 8), pt | P_RW | US).unwrap();
        }
        4 => v.rip = w.pick(&PAGES) + w.pick(&OFFSETS),
        5 => v.cr3 = w.pick(&[0x1000, 0x6000]),
        6 => v.segs[SegReg::Cs as usize].attr = w.pick(&[0xa9b, 0xc9b, 0x89b]),
        _ => {
            v.cpl = w.pick(&[0, 3]);
            v.cr4 = w.pick(&[cr4::PAE, cr4::PAE | cr4::PGE, cr4::PAE | cr4::LA57]);
            // Paging off now and then: linear is physical, and 0x40_0000 is past RAM.
            v.cr0 = w.pick(&[cr0::PG | cr0::PE, cr0::PG | cr0::PE, cr0::PE]);
            // Out of long mode now and then: PAE paging, other tables.
            v.efer = w.pick(&[efer::LME | efer::LMA, efer::LME | efer::LMA, 0]);
        }
    }
}

#[test]
fn the_caches_answer_as_a_fresh_fetch_would() {
    let (mut m, mut v) = machine();
    let mut cache = InsnCache::default();
    let mut w = Walk(0x9e37_79b9_7f4a_7c15);
    let mut hits = 0;
    for i in 0..20_000 {
        step(&mut w, &mut m, &mut v);
        for _ in 0..2 {
            let op = w.pick(&[None, Some(CPUID), Some(VMMCALL)]);
            let fresh = length_at_rip(&v, &m, &mut InsnCache::default(), op);
            let cached_before = cache.sites.find_map_newest(|s| match op {
                Some(op) => s.length(&m, &Place::of(&v), op),
                None => s.decoded(&m, &Place::of(&v)).map(|i| i.len),
            });
            hits += usize::from(cached_before.is_some());
            let cached = length_at_rip(&v, &m, &mut cache, op);
            assert_eq!(
                cached, fresh,
                "step {i}: length for {op:x?} at {:#x}",
                v.rip
            );
            let fresh = decode_at_rip(&v, &m, &mut InsnCache::default());
            let cached = decode_at_rip(&v, &m, &mut cache);
            assert_eq!(cached, fresh, "step {i}: instruction at {:#x}", v.rip);
        }
    }
    // The walk must exercise the sites, not only miss them.
    assert!(hits > 2_000, "only {hits} site hits");
}
