//! The CPUID a guest sees: the host's, filtered, plus Janus' own leaves.
//!
//! Same answers on both vendors. Anything Janus does not virtualize is hidden so that an
//! unmodified guest never tries to use it: VMX/SVM (no nested virtualization), XSAVE and
//! AVX (XCR0 is not switched yet) and what needs their state (AMD's XOP, FMA4, LWP),
//! machine-check architecture, performance monitoring, debug and power-management MSRs
//! (silicon debug, DCA, OSVW, node ID, AMD's data-breakpoint masks and extra counters),
//! and EFER.TCE, which the EFER rules refuse. The local APIC (xAPIC and x2APIC, with the
//! TSC-deadline timer) is Janus' own model ([`crate::devices::lapic`]); the MTRRs are
//! shown and kept per guest ([`crate::msr::mtrr`]); RDTSCP is shown when the host has it,
//! with a per-guest IA32_TSC_AUX ([`crate::msr::tsc_aux`]). The cpuid guest suite runs
//! every feature shown (docs/testing.md). The topology leaves tell each vCPU its place
//! among its guest's vCPUs ([`topology`]).

mod cache;
mod topology;
pub use cache::CpuidCache;
pub use topology::Topology;

/// `"JanusJanusHV"` as EBX, ECX, EDX (docs/hypercalls.md).
pub const SIGNATURE: [u32; 3] = [
    u32::from_le_bytes(*b"Janu"),
    u32::from_le_bytes(*b"sJan"),
    u32::from_le_bytes(*b"usHV"),
];
pub const HV_BASE: u32 = 0x4000_0000;
pub const HV_MAX: u32 = 0x4000_0010;
/// Timing leaf (the layout VMware and KVM use): EAX = TSC kHz, EBX = APIC timer kHz.
pub const HV_TIMING: u32 = 0x4000_0010;
pub const ABI_VERSION: u32 = 1;

mod bit {
    // Leaf 1 ECX (SDM Vol 2A, CPUID, Table 3-10).
    pub const MONITOR: u32 = 1 << 3;
    pub const VMX: u32 = 1 << 5;
    pub const SMX: u32 = 1 << 6;
    pub const EST: u32 = 1 << 7;
    pub const TM2: u32 = 1 << 8;
    pub const FMA: u32 = 1 << 12;
    pub const PDCM: u32 = 1 << 15;
    pub const PCID: u32 = 1 << 17;
    pub const X2APIC: u32 = 1 << 21;
    pub const TSC_DEADLINE: u32 = 1 << 24;
    pub const XSAVE: u32 = 1 << 26;
    pub const OSXSAVE: u32 = 1 << 27;
    pub const AVX: u32 = 1 << 28;
    pub const F16C: u32 = 1 << 29;
    pub const HYPERVISOR: u32 = 1 << 31;
    pub const DTES64: u32 = 1 << 2;
    pub const DS_CPL: u32 = 1 << 4;
    pub const SDBG: u32 = 1 << 11;
    pub const DCA: u32 = 1 << 18;
    // Leaf 1 EDX (Table 3-11).
    pub const MCE: u32 = 1 << 7;
    pub const APIC: u32 = 1 << 9;
    pub const MTRR: u32 = 1 << 12;
    pub const MCA: u32 = 1 << 14;
    pub const DS: u32 = 1 << 21;
    pub const ACPI: u32 = 1 << 22;
    pub const HTT: u32 = 1 << 28;
    pub const TM: u32 = 1 << 29;
    pub const PBE: u32 = 1 << 31;
    // Leaf 0x8000_0001 ECX (APM Vol 3, E.4.2).
    pub const CMP_LEGACY: u32 = 1 << 1;
    pub const SVM: u32 = 1 << 2;
    pub const EXTAPIC: u32 = 1 << 3;
    pub const SKINIT: u32 = 1 << 12;
    pub const WDT: u32 = 1 << 13;
    pub const TOPOEXT: u32 = 1 << 22;
    pub const PERFCTR_CORE: u32 = 1 << 23;
    pub const MONITORX: u32 = 1 << 29;
    pub const IBS: u32 = 1 << 10;
    pub const OSVW: u32 = 1 << 9;
    pub const XOP: u32 = 1 << 11;
    pub const LWP: u32 = 1 << 15;
    pub const FMA4: u32 = 1 << 16;
    pub const TCE: u32 = 1 << 17;
    pub const NODEID: u32 = 1 << 19;
    pub const PERFCTR_NB: u32 = 1 << 24;
    pub const DBKPT_EXT: u32 = 1 << 26;
    pub const PERF_TSC: u32 = 1 << 27;
    pub const PERFCTR_LLC: u32 = 1 << 28;
    /// Leaf 0x8000_0001 ECX bits hidden: SVM and its companions, and features Janus does
    /// not honour (see the module doc).
    pub const EXT1_ECX_HIDDEN: u32 = SVM
        | EXTAPIC
        | OSVW
        | IBS
        | XOP
        | SKINIT
        | WDT
        | LWP
        | FMA4
        | TCE
        | NODEID
        | TOPOEXT
        | PERFCTR_CORE
        | PERFCTR_NB
        | DBKPT_EXT
        | PERF_TSC
        | PERFCTR_LLC
        | MONITORX;
}

/// Leaf 7.0 EBX features a guest may use where the host has them: FSGSBASE, BMI1, SMEP,
/// BMI2, ERMS, RDSEED, ADX, SMAP, CLFLUSHOPT, CLWB, SHA (SDM Vol 2A, CPUID, Table 3-8).
/// Everything else (AVX2, AVX-512, TSX, MPX, SGX, INVPCID, ...) is hidden, but for
/// IA32_TSC_ADJUST ([`LEAF7_EBX_EMULATED`]).
const LEAF7_EBX_ALLOWED: u32 = (1 << 0)
    | (1 << 3)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20)
    | (1 << 23)
    | (1 << 24)
    | (1 << 29);

/// Leaf 7.0 EBX features Janus emulates, shown on every host: IA32_TSC_ADJUST (bit 1,
/// [`crate::msr::tsc`]).
const LEAF7_EBX_EMULATED: u32 = 1 << 1;

/// The guest's CPUID as its features go, for what asks only about them (the FPU, MSR
/// and CPU rules): the answer to the one vCPU of a one-vCPU guest.
pub fn guest_cpuid(
    leaf: u32,
    subleaf: u32,
    tsc_khz: u32,
    host: impl Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    vcpu_cpuid(Topology::single(), leaf, subleaf, tsc_khz, host)
}

/// Whether the host's vendor (leaf 0 EBX, the first four bytes) is Intel's.
fn intel_host(host: &impl Fn(u32, u32) -> [u32; 4]) -> bool {
    host(0, 0)[1] == u32::from_le_bytes(*b"Genu")
}

/// The CPUID result for `(leaf, subleaf)` of the vCPU at `topo`, given the host's and
/// the guest's TSC frequency in kHz.
pub fn vcpu_cpuid(
    topo: Topology,
    leaf: u32,
    subleaf: u32,
    tsc_khz: u32,
    host: impl Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    use bit::*;
    match leaf {
        HV_BASE => [HV_MAX, SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]],
        0x4000_0001 => [ABI_VERSION, 0, 0, 0],
        HV_TIMING => [
            tsc_khz,
            (crate::platform::APIC_TIMER_HZ / 1000) as u32,
            0,
            0,
        ],
        0x4000_0002..=0x4fff_ffff => [0; 4],
        // The highest basic leaf: at least 7, where IA32_TSC_ADJUST shows
        // ([`LEAF7_EBX_EMULATED`]) even on a host whose own leaves end below it (AMD family
        // 10h ends at 5; the leaves between answer zeros, below).
        0 => {
            let [max, b, c, d] = host(0, 0);
            [max.max(7), b, c, d]
        }
        1 => {
            let [a, b, c, d] = host(1, 0);
            let c = (c & !(VMX
                | SMX
                | MONITOR
                | EST
                | TM2
                | FMA
                | PDCM
                | PCID
                | XSAVE
                | OSXSAVE
                | AVX
                | F16C
                | DTES64
                | DS_CPL
                | SDBG
                | DCA))
                | HYPERVISOR
                | X2APIC
                | TSC_DEADLINE;
            let d = (d & !(MCE | MCA | DS | ACPI | HTT | TM | PBE)) | APIC | MTRR;
            // The APIC ID and logical processor count (EBX 31:24, 23:16) and HTT.
            let (b, d) = topo.leaf1(b & 0xffff, d);
            [a, b, c, d]
        }
        // Only where the host's maximum basic leaf (passed through in leaf 0) has them.
        0x15 if host(0, 0)[0] >= 0x15 => tsc_leaf(host(0x15, 0), tsc_khz),
        0x16 if host(0, 0)[0] >= 0x16 => frequency_leaf(host(0x16, 0), tsc_khz),
        0xb if host(0, 0)[0] >= 0xb => topo.leaf_b(subleaf).unwrap_or([0; 4]),
        // MONITOR/MWAIT, thermal and power, performance monitoring, XSAVE state, the
        // V2 topology leaf: none of them is offered.
        5 | 6 | 0xa | 0xb | 0xd | 0x1f => [0; 4],
        4 => {
            let [a, b, c, d] = host(4, subleaf);
            // Cache parameters: the vCPUs sharing each cache, the cores of the package.
            [topo.leaf4(a), b, c, d]
        }
        7 => {
            if subleaf == 0 {
                // The host's bits only where the host has the leaf (past its last basic
                // leaf, a CPU answers that leaf's values instead).
                let b = match host(0, 0)[0] >= 7 {
                    true => host(7, 0)[1],
                    false => 0,
                };
                [0, (b & LEAF7_EBX_ALLOWED) | LEAF7_EBX_EMULATED, 0, 0]
            } else {
                [0; 4]
            }
        }
        0x8000_0001 => {
            let [a, b, c, d] = host(leaf, 0);
            let c = topo.ext1_ecx(c & !EXT1_ECX_HIDDEN, intel_host(&host));
            [a, b, c, d]
        }
        0x8000_0008 => {
            let [a, b, c, d] = host(leaf, 0);
            // AMD core count (ECX 7:0) and APIC-ID size (15:12).
            [a, b, topo.ext8_ecx(c), d]
        }
        0x8000_001e => topo.ext1e(),
        // SVM features: hidden along with SVM itself; the host's extended topology.
        // Memory encryption (SME/SEV, leaf 0x8000_001F) is not virtualized: a guest told
        // it exists reads SEV MSRs early in boot (Linux's decompressor does, with no
        // fault handler).
        0x8000_000a | 0x8000_001f | 0x8000_0026 => [0; 4],
        _ => host(leaf, subleaf),
    }
}

/// Leaf 0x15, the TSC's rate as crystal Hz (ECX) times EBX/EAX (SDM Vol 2A CPUID, leaf
/// 15H): the host's when it agrees with the rate Janus measured (within 1%), else one
/// that tells the measured rate, `tsc_khz`. An emulator's CPU model can claim a rate its
/// TSC does not run at (seen: Bochs corei7_skylake_x says 3.5 GHz for a 10 MHz TSC, and
/// Linux, trusting leaf 0x15, marked its TSC unstable).
fn tsc_leaf(host: [u32; 4], tsc_khz: u32) -> [u32; 4] {
    let [den, num, crystal_hz, _] = host;
    let host_khz = (den != 0 && crystal_hz != 0)
        .then(|| u64::from(crystal_hz) * u64::from(num) / u64::from(den) / 1000);
    if host_khz.is_some_and(|k| agrees(k, tsc_khz)) {
        return host;
    }
    // The smallest ratio whose crystal fits 32 bits: exact below 4.29 GHz.
    let hz = u64::from(tsc_khz) * 1000;
    let ratio = hz.div_ceil(u64::from(u32::MAX)).max(1);
    [1, ratio as u32, (hz / ratio) as u32, 0]
}

/// Leaf 0x16, base/maximum/bus frequency in MHz (SDM Vol 2A CPUID, leaf 16H): the
/// host's when its base frequency agrees with the measured TSC rate, else the measured
/// rate as base and maximum (guests take it for the processor's speed).
fn frequency_leaf(host: [u32; 4], tsc_khz: u32) -> [u32; 4] {
    if host[0] != 0 && agrees(u64::from(host[0] & 0xffff) * 1000, tsc_khz) {
        return host;
    }
    let mhz = (tsc_khz / 1000).max(1);
    [mhz, mhz, 0, 0]
}

/// Whether a rate of `khz` is within 1% of `measured_khz`.
fn agrees(khz: u64, measured_khz: u32) -> bool {
    khz.abs_diff(u64::from(measured_khz)) * 100 <= u64::from(measured_khz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _sub: u32) -> [u32; 4] {
        match leaf {
            1 => [0x000a_0f10, 0x0802_0800, 0xfffa_3223 | 1 << 5, 0x178b_fbff],
            7 => [0, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff],
            0x8000_0001 => [0, 0, 0xffff_ffff, 0x2fd3_fbff],
            0x8000_000a => [1, 16, 0, 0xff],
            _ => [0x11, 0x22, 0x33, 0x44],
        }
    }

    #[test]
    fn offers_tsc_adjust_on_every_host() {
        let bare = |leaf: u32, _| if leaf == 0 { [7, 0, 0, 0] } else { [0; 4] };
        assert_eq!(guest_cpuid(7, 0, 1000, bare)[1], 1 << 1);
        // A host whose basic leaves end at 5 (AMD family 10h): the guest's go on to 7,
        // with nothing in 6 but IA32_TSC_ADJUST in 7.
        let phenom = |leaf: u32, _| match leaf {
            0 => [5, 0x6874_7541, 0x444d_4163, 0x6974_6e65],
            5..=7 => [0xdead, 0xdead, 0xdead, 0xdead],
            _ => [0; 4],
        };
        assert_eq!(guest_cpuid(0, 0, 1000, phenom)[0], 7);
        assert_eq!(
            guest_cpuid(0, 0, 1000, phenom)[1],
            0x6874_7541,
            "vendor kept"
        );
        assert_eq!(guest_cpuid(6, 0, 1000, phenom), [0; 4]);
        assert_eq!(guest_cpuid(7, 0, 1000, phenom), [0, 1 << 1, 0, 0]);
        let big = |leaf: u32, _| if leaf == 0 { [0x16, 0, 0, 0] } else { [0; 4] };
        assert_eq!(guest_cpuid(0, 0, 1000, big)[0], 0x16, "a higher one stays");
        assert_ne!(guest_cpuid(7, 0, 1000, host)[1] & (1 << 1), 0);
        assert_eq!(guest_cpuid(7, 1, 1000, host), [0; 4], "only in subleaf 0");
    }

    #[test]
    fn offers_the_apic_timers_and_tells_the_tsc_rate() {
        let l1 = guest_cpuid(1, 0, 2_600_000, host);
        assert_ne!(l1[3] & (1 << 9), 0, "APIC");
        assert_ne!(l1[2] & (1 << 21), 0, "x2APIC");
        assert_ne!(l1[2] & (1 << 24), 0, "TSC-deadline");
        assert_eq!(guest_cpuid(0x4000_0000, 0, 2_600_000, host)[0], HV_TIMING);
        assert_eq!(
            guest_cpuid(HV_TIMING, 0, 2_600_000, host)[..2],
            [2_600_000, 1_000_000]
        );
    }

    #[test]
    fn the_tsc_and_frequency_leaves_tell_the_measured_rate() {
        // Bochs corei7_skylake_x: 3.5 GHz claimed (crystal 100 MHz x 35), 10 MHz measured.
        let bochs = |leaf: u32, _| match leaf {
            0x15 => [1, 35, 100_000_000, 0],
            0x16 => [3500, 3500, 100, 0],
            0 => [0x16, 0, 0, 0],
            _ => [0; 4],
        };
        let [den, num, hz, _] = guest_cpuid(0x15, 0, 9_999, bochs);
        assert_eq!(u64::from(hz) * u64::from(num) / u64::from(den), 9_999_000);
        assert_eq!(guest_cpuid(0x16, 0, 9_999, bochs)[..2], [9, 9]);
        // A host whose leaves agree with the measurement keeps them (its crystal is
        // exact; a calibration is not).
        assert_eq!(
            guest_cpuid(0x15, 0, 3_499_000, bochs),
            [1, 35, 100_000_000, 0]
        );
        assert_eq!(guest_cpuid(0x16, 0, 3_499_000, bochs), [3500, 3500, 100, 0]);
        // No crystal enumerated (ECX 0): the measured rate. Above 4.29 GHz: a ratio.
        let none = |leaf: u32, _| if leaf == 0 { [0x16, 0, 0, 0] } else { [0; 4] };
        let [den, num, hz, _] = guest_cpuid(0x15, 0, 5_000_000, none);
        assert_eq!(
            u64::from(hz) * u64::from(num) / u64::from(den),
            5_000_000_000
        );
        // A host without the leaves: passed through as it answers.
        let old = |leaf: u32, _| if leaf == 0 { [0xd, 0, 0, 0] } else { [7; 4] };
        assert_eq!(guest_cpuid(0x15, 0, 9_999, old), [7; 4]);
    }

    #[test]
    fn announces_janus() {
        let r = guest_cpuid(0x4000_0000, 0, 1000, host);
        assert!(r[0] >= 0x4000_0001);
        let mut sig = [0u8; 12];
        for (i, w) in r[1..].iter().enumerate() {
            sig[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&sig, b"JanusJanusHV");
        assert_eq!(guest_cpuid(0x4000_0001, 0, 1000, host)[0], ABI_VERSION);
    }

    #[test]
    fn sets_hypervisor_bit_and_hides_virtualization() {
        let l1 = guest_cpuid(1, 0, 1000, host);
        assert_ne!(l1[2] & (1 << 31), 0, "hypervisor bit");
        assert_eq!(l1[2] & (1 << 5), 0, "VMX hidden");
        assert_eq!(l1[2] & (1 << 26), 0, "XSAVE hidden");
        assert_eq!(l1[1] >> 16, 0, "one logical CPU, APIC ID 0");
        assert_eq!(
            guest_cpuid(0x8000_0001, 0, 1000, host)[2] & (1 << 2),
            0,
            "SVM hidden"
        );
        assert_eq!(guest_cpuid(0x8000_000a, 0, 1000, host), [0; 4]);
        assert_eq!(
            guest_cpuid(0x8000_001f, 0, 1000, host),
            [0; 4],
            "no SME/SEV"
        );
        assert_eq!(
            guest_cpuid(0x8000_0001, 0, 1000, host)[2] & (1 << 29),
            0,
            "MONITORX hidden"
        );
        assert_eq!(
            guest_cpuid(7, 0, 1000, host)[1] & (1 << 5),
            0,
            "AVX2 hidden"
        );
        assert_ne!(guest_cpuid(7, 0, 1000, host)[1] & 1, 0, "FSGSBASE kept");
    }

    #[test]
    fn shows_mtrr_and_hides_what_needs_unvirtualized_state() {
        assert_ne!(guest_cpuid(1, 0, 1000, host)[3] & (1 << 12), 0, "MTRR");
        let no_mtrr_host = |leaf, sub| match leaf {
            1 => [0, 0, 0, 0],
            _ => host(leaf, sub),
        };
        assert_ne!(
            guest_cpuid(1, 0, 1000, no_mtrr_host)[3] & (1 << 12),
            0,
            "Janus' own MTRRs"
        );
        let l1 = guest_cpuid(1, 0, 1000, host);
        assert_eq!(l1[2] & (1 << 11 | 1 << 18), 0, "SDBG and DCA hidden");
        let e1 = guest_cpuid(0x8000_0001, 0, 1000, host)[2];
        for (bit, what) in [(9, "OSVW"), (11, "XOP"), (16, "FMA4"), (17, "TCE")] {
            assert_eq!(e1 & (1 << bit), 0, "{what} hidden");
        }
        assert_ne!(e1 & (1 << 5 | 1 << 6), 0, "LZCNT and SSE4A kept");
    }

    #[test]
    fn shows_rdtscp_exactly_when_the_host_has_it() {
        let e1 = |h: &dyn Fn(u32, u32) -> [u32; 4]| guest_cpuid(0x8000_0001, 0, 1000, h)[3];
        assert_ne!(e1(&host) & (1 << 27), 0);
        let without = |leaf, sub| match leaf {
            0x8000_0001 => [0, 0, 0, 0x2fd3_fbff & !(1 << 27)],
            _ => host(leaf, sub),
        };
        assert_eq!(e1(&without) & (1 << 27), 0);
    }

    #[test]
    fn passes_other_leaves_through() {
        assert_eq!(guest_cpuid(0, 0, 1000, host), [0x11, 0x22, 0x33, 0x44]);
        assert_eq!(
            guest_cpuid(0x8000_0002, 0, 1000, host),
            [0x11, 0x22, 0x33, 0x44]
        );
    }
}
