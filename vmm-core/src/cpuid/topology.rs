//! The processor topology a vCPU reports through CPUID: a guest's N vCPUs are N cores of
//! one package, one thread per core, APIC IDs 0 to N-1, so that an OS counts N CPUs and
//! finds each vCPU's APIC ID where it looks for it.
//!
//! - Leaf 1: EBX[31:24] the initial APIC ID, EBX[23:16] the addressable logical
//!   processors of the package, valid with EDX[28] HTT (SDM Vol 2A, CPUID, leaf 01H;
//!   APM Vol 3, E.3.2: LogicalProcessorCount).
//! - Leaf 4: EAX[31:26] addressable core IDs minus 1; EAX[25:14] the logical processors
//!   sharing the cache minus 1: one for L1 and L2, the package for L3 (SDM Vol 2A, leaf
//!   04H).
//! - Leaf 0xB: subleaf 0 the SMT level (shift 0, one thread), subleaf 1 the core level
//!   (shift ceil(log2 N), N processors), subleaf 2 invalid; EDX the x2APIC ID on every
//!   subleaf (SDM Vol 2A, leaf 0BH; SDM Vol 3A 8.9 "Programming considerations for
//!   hardware multi-threading capable processors"). Leaf 0x1F is hidden: without it an OS
//!   reads 0xB.
//! - AMD: 0x8000_0001 ECX[1] CmpLegacy (the leaf 1 count is of cores), 0x8000_0008
//!   ECX[7:0] NC = N-1 and ECX[15:12] ApicIdCoreIdSize, 0x8000_001E EAX the extended
//!   APIC ID, EBX the core ID with one thread per core, ECX node 0 of one (APM Vol 3,
//!   Appendix E.4, functions 8000_0001h, 8000_0008h and 8000_001Eh, and E.5, the legacy
//!   core count). TOPOEXT stays hidden, so a guest takes the legacy method;
//!   0x8000_001E answers consistently all the same. The host's 0x8000_0026 (extended
//!   topology) is hidden like 0x1F.
//!
//! One vCPU ([`Topology::single`]) reports what Janus reported before guests had
//! several: APIC ID 0, no HTT, no leaf 0xB, all counts one.

use super::bit::{CMP_LEGACY, HTT};

/// Where a vCPU sits in its guest's topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Its APIC ID (x2APIC ID; the initial APIC ID is its low 8 bits).
    pub apic_id: u32,
    /// The guest's vCPUs, 1 to [`crate::vm::MAX_GUEST_VCPUS`] (0 counts as 1).
    pub vcpus: u8,
}

impl Topology {
    /// The one vCPU of a one-vCPU guest: APIC ID 0.
    pub const fn single() -> Topology {
        Topology {
            apic_id: 0,
            vcpus: 1,
        }
    }

    /// Whether the package holds more than one logical processor.
    fn multi(self) -> bool {
        self.vcpus > 1
    }

    /// The APIC ID bits that number the cores: ceil(log2 N).
    fn core_bits(self) -> u32 {
        u32::from(self.vcpus.max(1))
            .next_power_of_two()
            .trailing_zeros()
    }

    /// Addressable core IDs of the package (a power of two >= N), minus 1.
    fn core_mask(self) -> u32 {
        (1 << self.core_bits()) - 1
    }

    /// Leaf 1 EBX and EDX from the host's with the topology fields cleared.
    pub(super) fn leaf1(self, ebx: u32, edx: u32) -> (u32, u32) {
        let ebx = ebx | (self.apic_id & 0xff) << 24;
        if !self.multi() {
            return (ebx, edx);
        }
        (ebx | (self.core_mask() + 1) << 16, edx | HTT)
    }

    /// Leaf 4 EAX from the host's: its cache's type, level and geometry (EAX[13:0]) with
    /// this package's sharing and core count. A null subleaf (type 0) stays as it is.
    pub(super) fn leaf4(self, eax: u32) -> u32 {
        let eax = eax & 0x3fff;
        if eax & 0x1f == 0 {
            return eax;
        }
        let level = (eax >> 5) & 7;
        let sharing = if level >= 3 { self.core_mask() } else { 0 };
        eax | sharing << 14 | self.core_mask() << 26
    }

    /// Leaf 0xB subleaf `subleaf` (EAX shift to the next level, EBX processors at this
    /// level, ECX level type and number, EDX x2APIC ID); `None` for one vCPU, which
    /// reports no such leaf.
    pub(super) fn leaf_b(self, subleaf: u32) -> Option<[u32; 4]> {
        const SMT: u32 = 1 << 8;
        const CORE: u32 = 2 << 8;
        if !self.multi() {
            return None;
        }
        let id = self.apic_id;
        Some(match subleaf {
            0 => [0, 1, SMT, id],
            1 => [self.core_bits(), u32::from(self.vcpus), CORE | 1, id],
            _ => [0, 0, subleaf & 0xff, id],
        })
    }

    /// Leaf 0x8000_0001 ECX: CmpLegacy set for several vCPUs on an AMD-like host (bit 1
    /// is reserved on Intel, and Linux then drops the leaf 1 count), clear otherwise.
    pub(super) fn ext1_ecx(self, ecx: u32, intel: bool) -> u32 {
        let ecx = ecx & !CMP_LEGACY;
        if self.multi() && !intel {
            ecx | CMP_LEGACY
        } else {
            ecx
        }
    }

    /// Leaf 0x8000_0008 ECX: NC (7:0) and ApicIdCoreIdSize (15:12) for this package; the
    /// other fields the host's.
    pub(super) fn ext8_ecx(self, ecx: u32) -> u32 {
        let size = if self.multi() { self.core_bits() } else { 0 };
        ecx & !0xf0ff | (u32::from(self.vcpus.max(1)) - 1) | size << 12
    }

    /// Leaf 0x8000_001E: extended APIC ID; core ID with one thread per core; node 0 of
    /// one node per processor.
    pub(super) fn ext1e(self) -> [u32; 4] {
        [self.apic_id, self.apic_id & 0xff, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::super::{guest_cpuid, vcpu_cpuid};
    use super::Topology;

    const GENU: u32 = u32::from_le_bytes(*b"Genu");
    const AUTH: u32 = u32::from_le_bytes(*b"Auth");

    /// An Intel host of 8 cores with 2 threads each: leaf 4 L1d, L1i, L2, L3, then null.
    fn intel(leaf: u32, sub: u32) -> [u32; 4] {
        let cache = |ty: u32, level: u32, sharing: u32| ty | level << 5 | sharing << 14 | 7 << 26;
        match (leaf, sub) {
            (0, _) => [0x16, GENU, 0x6c65_746e, 0x4965_6e69],
            (1, _) => [0x5_0654, 0x0010_0800, 0x7ffa_fbff, 0xbfeb_fbff],
            (4, 0) => [cache(1, 1, 1), 0x01c0_003f, 0x3f, 0],
            (4, 1) => [cache(2, 1, 1), 0x01c0_003f, 0x3f, 0],
            (4, 2) => [cache(3, 2, 1), 0x03c0_003f, 0x3ff, 0],
            (4, 3) => [cache(3, 3, 15), 0x0280_003f, 0x3fff, 4],
            (4, _) => [0; 4],
            (0xb, s) => [1 + 3 * s.min(1), 2 + 14 * s.min(1), s | (s + 1) << 8, 9],
            (0x8000_0000, _) => [0x8000_0008, 0, 0, 0],
            (0x8000_0001, _) => [0, 0, 0x121, 0x2c10_0800],
            (0x8000_0008, _) => [0x3030, 0, 0, 0],
            _ => [0x11, 0x22, 0x33, 0x44],
        }
    }

    /// An AMD host of 16 cores (NC 15, ApicIdCoreIdSize 4, CmpLegacy and TOPOEXT set).
    fn amd(leaf: u32, _sub: u32) -> [u32; 4] {
        match leaf {
            0 => [0xd, AUTH, 0x444d_4163, 0x6974_6e65],
            1 => [0x80_0f12, 0x1010_0800, 0x7ed8_320b, 0x178b_fbff],
            4 | 0xb => [0; 4],
            0x8000_0000 => [0x8000_001f, 0, 0, 0],
            0x8000_0001 => [0, 0, 0x0040_03f3, 0x2fd3_fbff],
            0x8000_0008 => [0x3030, 0, 0x0003_400f, 0],
            0x8000_001e => [0x21, 0x0101, 0x0100, 0],
            _ => [0x11, 0x22, 0x33, 0x44],
        }
    }

    type Host = fn(u32, u32) -> [u32; 4];
    const HOSTS: [(&str, Host); 2] = [("intel", intel), ("amd", amd)];

    /// Every topology of N vCPUs tested: each vCPU of each N.
    fn topologies() -> impl Iterator<Item = Topology> {
        [1u8, 2, 3, 4, 8].into_iter().flat_map(|n| {
            (0..u32::from(n)).map(move |id| Topology {
                apic_id: id,
                vcpus: n,
            })
        })
    }

    fn q(t: Topology, host: Host, leaf: u32, sub: u32) -> [u32; 4] {
        vcpu_cpuid(t, leaf, sub, 1000, host)
    }

    /// The core-level shift of leaf 0xB (the core bits of the APIC ID).
    fn shift_b(t: Topology, host: Host) -> u32 {
        q(t, host, 0xb, 1)[0]
    }

    #[test]
    fn the_apic_id_is_where_each_leaf_keeps_it() {
        for t in topologies() {
            for (what, host) in HOSTS {
                let l1 = q(t, host, 1, 0);
                assert_eq!(l1[1] >> 24, t.apic_id, "{what} {t:?} leaf 1");
                assert_eq!(
                    l1[1] & 0xffff,
                    host(1, 0)[1] & 0xffff,
                    "brand, CLFLUSH kept"
                );
                assert_eq!(q(t, host, 0x8000_001e, 0)[0], t.apic_id, "{what} {t:?}");
                assert_eq!(q(t, host, 0x8000_001e, 0)[1] & 0xff, t.apic_id);
                if t.vcpus > 1 {
                    for sub in 0..4 {
                        assert_eq!(q(t, host, 0xb, sub)[3], t.apic_id, "{what} {t:?} 0xB.{sub}");
                    }
                }
            }
        }
    }

    #[test]
    fn leaf_b_has_a_thread_level_a_core_level_then_none() {
        for t in topologies().filter(|t| t.vcpus > 1) {
            for (what, host) in HOSTS {
                let [a0, b0, c0, _] = q(t, host, 0xb, 0);
                assert_eq!((a0, b0 & 0xffff, c0), (0, 1, 1 << 8), "{what} {t:?} SMT");
                let [a1, b1, c1, _] = q(t, host, 0xb, 1);
                let n = u32::from(t.vcpus);
                assert!(1 << a1 >= n && 1 << a1 < 2 * n, "{t:?} shift {a1}");
                assert_eq!((b1 & 0xffff, c1), (n, 2 << 8 | 1), "{what} {t:?} core");
                let [a2, b2, c2, _] = q(t, host, 0xb, 2);
                assert_eq!((a2, b2, c2), (0, 0, 2), "{what} {t:?} invalid level");
                assert_eq!(q(t, host, 0xb, 7)[2], 7, "the subleaf echoed");
            }
        }
    }

    #[test]
    fn the_counts_agree_between_leaves() {
        for t in topologies().filter(|t| t.vcpus > 1) {
            for (what, host) in HOSTS {
                let n = u32::from(t.vcpus);
                let addressable = 1 << shift_b(t, host);
                let l1 = q(t, host, 1, 0);
                assert_ne!(l1[3] & 1 << 28, 0, "{what} {t:?} HTT");
                assert_eq!((l1[1] >> 16) & 0xff, addressable, "{what} {t:?} leaf 1");
                let e8 = q(t, host, 0x8000_0008, 0)[2];
                assert_eq!((e8 & 0xff) + 1, n, "{what} {t:?} NC");
                assert_eq!(1 << ((e8 >> 12) & 0xf), addressable, "ApicIdCoreIdSize");
                assert_eq!(e8 & !0xf0ff, host(0x8000_0008, 0)[2] & !0xf0ff);
                let e1e = q(t, host, 0x8000_001e, 0);
                assert_eq!((e1e[1] >> 8 & 0xff, e1e[2]), (0, 0), "1 thread, node 0");
            }
            // Intel's leaf 4: cores per package and the L3 shared by all of them.
            let mut sub = 0;
            while q(t, intel, 4, sub)[0] & 0x1f != 0 {
                let a = q(t, intel, 4, sub)[0];
                let level = (a >> 5) & 7;
                assert_eq!((a >> 26) + 1, 1 << shift_b(t, intel), "{t:?} leaf 4.{sub}");
                let share = if level == 3 {
                    1 << shift_b(t, intel)
                } else {
                    1
                };
                assert_eq!(
                    ((a >> 14) & 0xfff) + 1,
                    share,
                    "{t:?} leaf 4.{sub} L{level}"
                );
                assert_eq!(a & 0x3fff, intel(4, sub)[0] & 0x3fff, "the cache kept");
                sub += 1;
            }
            assert_eq!(sub, 4, "four caches, then the null subleaf");
            assert_eq!(q(t, intel, 4, 4), [0; 4]);
        }
    }

    #[test]
    fn cmp_legacy_only_for_several_vcpus_of_an_amd_like_host() {
        let cmp = |t, host| q(t, host, 0x8000_0001, 0)[2] & 1 << 1 != 0;
        let two = Topology {
            apic_id: 1,
            vcpus: 2,
        };
        assert!(cmp(two, amd as Host));
        assert!(
            !cmp(Topology::single(), amd as Host),
            "one core: no CmpLegacy"
        );
        let intel_with_bit = |leaf, sub| match leaf {
            0x8000_0001 => [0, 0, 0x123, 0],
            _ => intel(leaf, sub),
        };
        assert!(!cmp(two, intel_with_bit), "reserved on Intel");
        assert_eq!(
            q(two, amd, 0x8000_0001, 0)[2] & 1 << 22,
            0,
            "TOPOEXT hidden"
        );
    }

    #[test]
    fn one_vcpu_reports_as_before() {
        for (what, host) in HOSTS {
            let t = Topology::single();
            let l1 = q(t, host, 1, 0);
            assert_eq!(l1[1] >> 16, 0, "{what}: APIC ID 0, no count");
            assert_eq!(l1[3] & 1 << 28, 0, "{what}: no HTT");
            for sub in 0..3 {
                assert_eq!(q(t, host, 0xb, sub), [0; 4], "{what}: no leaf 0xB");
            }
            assert_eq!(
                q(t, host, 0x8000_0008, 0)[2] & 0xf0ff,
                0,
                "{what}: one core"
            );
            assert_eq!(q(t, host, 0x8000_001e, 0), [0; 4], "{what}");
            for leaf in [1, 4, 0xb, 0x8000_0001, 0x8000_0008, 0x8000_001e] {
                for sub in 0..5 {
                    assert_eq!(
                        q(t, host, leaf, sub),
                        guest_cpuid(leaf, sub, 1000, host),
                        "{what} {leaf:#x}.{sub}: guest_cpuid is one vCPU's"
                    );
                }
            }
        }
        let mut sub = 0;
        while intel(4, sub)[0] & 0x1f != 0 {
            let a = q(Topology::single(), intel, 4, sub)[0];
            assert_eq!(a >> 14, 0, "leaf 4.{sub}: one core, one thread per cache");
            sub += 1;
        }
    }

    #[test]
    fn the_host_topology_never_shows() {
        let four = Topology {
            apic_id: 3,
            vcpus: 4,
        };
        for (what, host) in HOSTS {
            for leaf in [0x1f, 0x8000_0026] {
                assert_eq!(q(four, host, leaf, 0), [0; 4], "{what} {leaf:#x} hidden");
            }
        }
        // A host whose highest basic leaf is below 0xB: no leaf 0xB for the guest either
        // (leaf 0, passed through, says so); leaf 1 and 0x8000_0008 still count.
        let old = |leaf, sub| match leaf {
            0 => [0xa, GENU, 0, 0],
            _ => intel(leaf, sub),
        };
        assert_eq!(q(four, old, 0xb, 1), [0; 4]);
        assert_eq!((q(four, old, 1, 0)[1] >> 16) & 0xff, 4);
    }
}
