//! The MSRs a CPUID bit announces: PAT (SDM Vol 3A 11.12), the MTRRs (11.11), IA32_TSC_AUX
//! and RDTSCP (SDM Vol 2B, RDTSCP), IA32_MISC_ENABLE and its xTPR bit (SDM Vol 4 Table
//! 2-2), the TSC deadline (Vol 3A 10.5.4.1), IA32_TSC_ADJUST (Vol 3B 18.17.3) and the
//! x2APIC MSRs (10.12). x2APIC runs last:
//! it leaves the local APIC in x2APIC mode.

use super::{e1d, expect, faults, gives, l1c, l1d, l7b, runs, shows, Feature, Outcome};
use core::arch::asm;
use janus_guests::rdmsr;
use janus_guests::rt::apic;
use janus_guests::rt::x86::{rdtsc, wrmsr, MSR_APIC_BASE, MSR_PAT, MSR_TSC_DEADLINE};

pub const FEATURES: &[Feature] = &[
    shows("cpuid.apic", l1d(9), apic_base),
    shows("cpuid.mtrr", l1d(12), mtrr),
    shows("cpuid.pat", l1d(16), pat),
    shows("cpuid.misc_enable", l1d(5), misc_enable),
    shows("cpuid.xtpr", l1c(14), xtpr),
    shows("cpuid.tsc_deadline", l1c(24), tsc_deadline),
    shows("cpuid.rdtscp", e1d(27), rdtscp),
    shows("cpuid.tsc_adjust", l7b(1), tsc_adjust),
    shows("cpuid.x2apic", l1c(21), x2apic),
];

const MTRRCAP: u32 = 0xfe;
const MTRR_DEF_TYPE: u32 = 0x2ff;
const MTRR_PHYSBASE0: u32 = 0x200;
const MTRR_FIX4K_F8000: u32 = 0x26f;
const MISC_ENABLE: u32 = 0x1a0;
const TSC_AUX: u32 = 0xc000_0103;
const TSC: u32 = 0x10;
const TSC_ADJUST: u32 = 0x3b;

/// Writes `v` to `msr`, reads it back and restores the old value.
fn round_trip(msr: u32, v: u64) -> Outcome {
    let mut old = 0;
    let r = gives(v, || {
        old = rdmsr(msr);
        wrmsr(msr, v);
        rdmsr(msr)
    });
    wrmsr(msr, old);
    r
}

/// IA32_APIC_BASE: enabled (bit 11) at the xAPIC address.
fn apic_base() -> Outcome {
    gives(0xfee0_0800, || rdmsr(MSR_APIC_BASE) & 0xffff_f800)
}

/// MTRRCAP names at least one variable pair and the fixed ranges; DEF_TYPE, a variable
/// pair and a fixed range read back what was written; a reserved memory type raises
/// #GP (SDM Vol 3A 11.11.2.1).
fn mtrr() -> Outcome {
    let mut cap = 0;
    let r = runs(|| cap = rdmsr(MTRRCAP));
    let last = MTRR_PHYSBASE0 + 2 * (cap as u32 & 0xff).saturating_sub(1);
    r.and(|| expect(u64::from(cap & 0xff != 0 && cap & 1 << 8 != 0), 1))
        .and(|| round_trip(MTRR_DEF_TYPE, 0xc00))
        .and(|| round_trip(last, 0x8000_0006))
        .and(|| round_trip(last + 1, 0xf_f000_0800))
        .and(|| round_trip(MTRR_FIX4K_F8000, 0x0606_0505_0404_0101))
        .and(|| faults(13, || wrmsr(MTRR_DEF_TYPE, 0xc02)))
}

/// PAT: the reset value, and a write reads back.
fn pat() -> Outcome {
    gives(0x0007_0406_0007_0406, || rdmsr(MSR_PAT))
        .and(|| round_trip(MSR_PAT, 0x0007_0106_0007_0406))
}

/// IA32_MISC_ENABLE reads, and its fast-strings bit (0) takes a write.
fn misc_enable() -> Outcome {
    let mut v = 0;
    runs(|| v = rdmsr(MISC_ENABLE)).and(|| round_trip(MISC_ENABLE, v ^ 1))
}

/// xTPR update control: IA32_MISC_ENABLE bit 23 is writable.
fn xtpr() -> Outcome {
    let mut v = 0;
    runs(|| v = rdmsr(MISC_ENABLE)).and(|| round_trip(MISC_ENABLE, v ^ 1 << 23))
}

fn tsc_deadline() -> Outcome {
    gives(0, || rdmsr(MSR_TSC_DEADLINE))
}

/// IA32_TSC_AUX keeps its low 32 bits (the upper ones raise #GP) and RDTSCP returns it
/// in ECX, with a TSC between two RDTSCs.
fn rdtscp() -> Outcome {
    const AUX: u64 = 0x8765_4321;
    let r = round_trip(TSC_AUX, AUX)
        .and(|| faults(13, || wrmsr(TSC_AUX, 1 << 32)))
        .and(|| runs(|| wrmsr(TSC_AUX, AUX)));
    let (mut lo, mut hi, mut aux) = (0u32, 0u32, 0u32);
    let before = rdtsc();
    let r = r.and(|| {
        // SAFETY: RDTSCP writes EAX, EDX and ECX only.
        runs(|| unsafe {
            asm!("rdtscp", out("eax") lo, out("edx") hi, out("ecx") aux, options(nostack, nomem))
        })
    });
    let after = rdtsc();
    wrmsr(TSC_AUX, 0);
    let t = u64::from(hi) << 32 | u64::from(lo);
    r.and(|| expect(u64::from(aux), AUX))
        .and(|| expect(u64::from(before <= t && t <= after), 1))
}

/// IA32_TSC_ADJUST reads 0 at reset; a write moves the TSC by the difference, and a
/// write of IA32_TSC moves it by as much as the TSC moved (SDM Vol 3B 18.17.3).
fn tsc_adjust() -> Outcome {
    const STEP: u64 = 1 << 40;
    let r = gives(0, || rdmsr(TSC_ADJUST)).and(|| {
        let before = rdtsc();
        wrmsr(TSC_ADJUST, STEP);
        let after = rdtsc();
        expect(u64::from(after.wrapping_sub(before) >= STEP), 1)
    });
    let r = r.and(|| gives(STEP, || rdmsr(TSC_ADJUST))).and(|| {
        // The TSC back by STEP (less the time the write takes): the adjustment is
        // about 0 again, a little below.
        wrmsr(TSC, rdtsc().wrapping_sub(STEP));
        let left = rdmsr(TSC_ADJUST) as i64;
        expect(u64::from((-(1 << 32)..=0).contains(&left)), 1)
    });
    wrmsr(TSC_ADJUST, 0);
    r
}

const X2APIC_ID: u32 = 0x802;
const X2APIC_VERSION: u32 = 0x803;

/// x2APIC mode (IA32_APIC_BASE bits 10 and 11): the ID and version MSRs read what the
/// xAPIC registers showed (SDM Vol 3A 10.12.1, 10.12.5.1).
fn x2apic() -> Outcome {
    let version = u64::from(apic::read(apic::VERSION));
    let base = rdmsr(MSR_APIC_BASE);
    runs(|| wrmsr(MSR_APIC_BASE, base | 3 << 10))
        .and(|| gives(0, || rdmsr(X2APIC_ID)))
        .and(|| gives(version, || rdmsr(X2APIC_VERSION)))
}
