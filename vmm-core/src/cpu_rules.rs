//! The architectural rules for CR0, CR4, EFER and XCR0: which values a guest may load and
//! what loading them does to long mode. One place for both backends: each keeps a
//! [`CpuRules`] and asks it before it changes its VMCS or VMCB, then applies the
//! [`CrState`] it gets back in its own way (VMX: read shadows, fixed bits and the
//! "IA-32e mode guest" entry control; SVM: the save area).
//!
//! Manuals: Intel SDM, Order Number 325462-083US (March 2024), Vol 3A 2.5 (control
//! registers), 2.2.1 (EFER), 10.8.5 (IA-32e mode activation), Vol 1 13.3 (XCR0); AMD APM
//! Vol 2 rev 3.42, 3.1 (system control registers), 14.6 (long mode activation). Where they
//! differ the stricter rule is taken, so a guest sees the same CPU on either vendor.
//!
//! Which bits exist comes from the CPUID the guest sees ([`CpuRules::from_cpuid`]), so a
//! feature the policy hides (VMX, PCID, XSAVE, PKE, ...) cannot be enabled either.

use crate::vcpu::{DebugReg, Event};

/// CR0 bits (SDM Vol 3A 2.5).
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
    /// Every bit a CR0 write may set; the others are reserved (#GP if set in bits 63:32).
    pub const DEFINED: u64 = PE | MP | EM | TS | ET | NE | WP | AM | NW | CD | PG;
}

/// CR4 bits (SDM Vol 3A 2.5).
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const LA57: u64 = 1 << 12;
    pub const VMXE: u64 = 1 << 13;
    pub const SMXE: u64 = 1 << 14;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const KL: u64 = 1 << 19;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const CET: u64 = 1 << 23;
    pub const PKS: u64 = 1 << 24;
}

/// EFER bits (SDM Vol 3A 2.2.1, APM Vol 2 3.1.7).
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
    /// AMD's SVM enable: the host's business, never the guest's.
    pub const SVME: u64 = 1 << 12;
    pub const FFXSR: u64 = 1 << 14;
}

/// XCR0 bits (SDM Vol 1 13.3).
pub mod xcr0 {
    pub const X87: u64 = 1 << 0;
    pub const SSE: u64 = 1 << 1;
    pub const AVX: u64 = 1 << 2;
}

/// RFLAGS bits the core looks at (SDM Vol 1 3.4.3).
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    /// Single-step: a #DB after each instruction (SDM Vol 1 3.4.3.3).
    pub const TF: u64 = 1 << 8;
    /// The status flags an arithmetic or logical instruction sets.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

    /// Whether RFLAGS `v` lets maskable interrupts in (IF).
    pub fn interrupts_on(v: u64) -> bool {
        v & IF != 0
    }
}

/// The registers the rules look at, as the guest sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// CS.L: the guest runs 64-bit code now.
    pub cs_long: bool,
}

impl CrState {
    /// Whether IA-32e mode is active (EFER.LMA).
    pub const fn long_mode_active(&self) -> bool {
        self.efer & efer::LMA != 0
    }
}

/// Which CR4, EFER and XCR0 bits this guest's CPU has, from the CPUID it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuRules {
    cr4_allowed: u64,
    efer_allowed: u64,
    xcr0_allowed: u64,
}

/// A CPUID bit: (leaf, register index EAX=0..EDX=3, bit).
type CpuidBit = (u32, usize, u32);

/// CR4 bits and the CPUID feature that makes each exist (SDM Vol 3A 2.5; APM
/// Vol 2 3.1.3). Bits without an entry here are reserved. PCE exists on every CPU.
const CR4_FEATURES: [(u64, CpuidBit); 22] = [
    (cr4::VME, (1, 3, 1)),
    (cr4::PVI, (1, 3, 1)),
    (cr4::TSD, (1, 3, 4)),
    (cr4::DE, (1, 3, 2)),
    (cr4::PSE, (1, 3, 3)),
    (cr4::PAE, (1, 3, 6)),
    (cr4::MCE, (1, 3, 7)),
    (cr4::PGE, (1, 3, 13)),
    (cr4::OSFXSR, (1, 3, 24)),
    (cr4::OSXMMEXCPT, (1, 3, 25)),
    (cr4::UMIP, (7, 2, 2)),
    (cr4::LA57, (7, 2, 16)),
    (cr4::VMXE, (1, 2, 5)),
    (cr4::SMXE, (1, 2, 6)),
    (cr4::FSGSBASE, (7, 1, 0)),
    (cr4::PCIDE, (1, 2, 17)),
    (cr4::OSXSAVE, (1, 2, 26)),
    (cr4::KL, (7, 2, 23)),
    (cr4::SMEP, (7, 1, 7)),
    (cr4::SMAP, (7, 1, 20)),
    (cr4::PKE, (7, 2, 3)),
    (cr4::CET, (7, 2, 7)),
];

/// EFER bits and their CPUID features (extended leaf 0x80000001 EDX).
const EFER_FEATURES: [(u64, CpuidBit); 4] = [
    (efer::SCE, (0x8000_0001, 3, 11)),
    (efer::LME, (0x8000_0001, 3, 29)),
    (efer::NXE, (0x8000_0001, 3, 20)),
    (efer::FFXSR, (0x8000_0001, 3, 25)),
];

impl CpuRules {
    /// The rules for a guest whose CPUID is `cpuid(leaf, subleaf)` (the policy's view,
    /// not the host's).
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> CpuRules {
        let has = |(leaf, reg, bit): CpuidBit| cpuid(leaf, 0)[reg] & (1 << bit) != 0;
        let max = cpuid(0, 0)[0];
        let max_ext = cpuid(0x8000_0000, 0)[0];
        let mut cr4_allowed = cr4::PCE;
        for (b, f) in CR4_FEATURES {
            let present = if f.0 > max { false } else { has(f) };
            if present {
                cr4_allowed |= b;
            }
        }
        let mut efer_allowed = 0;
        if max_ext >= 0x8000_0001 {
            for (b, f) in EFER_FEATURES {
                if has(f) {
                    efer_allowed |= b;
                }
            }
        }
        if efer_allowed & efer::LME != 0 {
            efer_allowed |= efer::LMA;
        }
        let xsave = has((1, 2, 26));
        let xcr0_allowed = match (xsave, max >= 0xd) {
            (true, true) => {
                let [a, _, _, d] = cpuid(0xd, 0);
                (a as u64) | ((d as u64) << 32)
            }
            _ => 0,
        };
        CpuRules {
            cr4_allowed,
            efer_allowed,
            xcr0_allowed,
        }
    }

    /// The rules for a guest on a host whose CPUID is `host`, as Janus' CPUID policy
    /// ([`crate::cpuid::guest_cpuid`]) shows it to the guest.
    pub fn for_guest(host: impl Fn(u32, u32) -> [u32; 4]) -> CpuRules {
        CpuRules::from_cpuid(|leaf, sub| crate::cpuid::guest_cpuid(leaf, sub, 0, &host))
    }

    /// Keeps only the CR4 bits `supported` also has (VT-x: what IA32_VMX_CR4_FIXED1 lets
    /// a guest run with).
    pub fn restrict_cr4(mut self, supported: u64) -> CpuRules {
        self.cr4_allowed &= supported;
        self
    }

    pub const fn cr4_allowed(&self) -> u64 {
        self.cr4_allowed
    }

    pub const fn efer_allowed(&self) -> u64 {
        self.efer_allowed
    }

    pub const fn xcr0_allowed(&self) -> u64 {
        self.xcr0_allowed
    }

    /// MOV to CR0 (also CLTS and LMSW, once turned into a CR0 value): the state after
    /// it, or #GP(0). Turning paging on with EFER.LME set activates long mode (which
    /// needs CR4.PAE); turning it off leaves it (not from 64-bit code).
    pub fn write_cr0(&self, st: CrState, new: u64) -> Result<CrState, Event> {
        let reserved = new >> 32 != 0;
        let pg_without_pe = new & cr0::PG != 0 && new & cr0::PE == 0;
        let nw_without_cd = new & cr0::NW != 0 && new & cr0::CD == 0;
        if reserved || pg_without_pe || nw_without_cd {
            return Err(Event::gp(0));
        }
        let mut next = CrState { cr0: new, ..st };
        let paging_on = st.cr0 & cr0::PG == 0 && new & cr0::PG != 0;
        let paging_off = st.cr0 & cr0::PG != 0 && new & cr0::PG == 0;
        if paging_on && st.efer & efer::LME != 0 {
            if st.cr4 & cr4::PAE == 0 {
                return Err(Event::gp(0));
            }
            next.efer |= efer::LMA;
        } else if paging_off && st.long_mode_active() {
            if st.cs_long {
                return Err(Event::gp(0));
            }
            next.efer &= !efer::LMA;
        }
        Ok(next)
    }

    /// MOV to CR4: reserved and hidden bits, PAE off in long mode and a LA57 change in
    /// long mode raise #GP(0); so does PCIDE set with CR3[11:0] not zero.
    pub fn write_cr4(&self, st: CrState, new: u64) -> Result<CrState, Event> {
        let lma = st.long_mode_active();
        if new & !self.cr4_allowed != 0
            || (lma && new & cr4::PAE == 0)
            || (lma && (new ^ st.cr4) & cr4::LA57 != 0)
            || (st.cr4 & cr4::PCIDE == 0 && new & cr4::PCIDE != 0 && (!lma || st.cr3 & 0xfff != 0))
        {
            return Err(Event::gp(0));
        }
        Ok(CrState { cr4: new, ..st })
    }

    /// WRMSR to EFER: bits the CPU does not have raise #GP(0), and so does changing LME
    /// while paging is on; LMA is read-only and keeps its value.
    pub fn write_efer(&self, st: CrState, new: u64) -> Result<CrState, Event> {
        if new & !self.efer_allowed != 0 {
            return Err(Event::gp(0));
        }
        if st.cr0 & cr0::PG != 0 && (new ^ st.efer) & efer::LME != 0 {
            return Err(Event::gp(0));
        }
        let efer = (new & !efer::LMA) | (st.efer & efer::LMA);
        Ok(CrState { efer, ..st })
    }

    /// XSETBV of XCR0: x87 must stay set, AVX needs SSE, and only bits CPUID 0xD offers
    /// may be set (SDM Vol 1 13.3); anything else is #GP(0).
    pub fn write_xcr0(&self, new: u64) -> Result<u64, Event> {
        if new & xcr0::X87 == 0
            || new & !self.xcr0_allowed != 0
            || (new & xcr0::AVX != 0 && new & xcr0::SSE == 0)
        {
            return Err(Event::gp(0));
        }
        Ok(new)
    }
}

/// DR6 and DR7 (SDM Vol 3B 18.2.3, 18.2.4; APM Vol 2 13.1.1).
pub mod dr {
    /// DR6 bits software can clear or the CPU sets: B0-B3, BD, BS, BT.
    pub const DR6_WRITABLE: u64 = 0xf | (1 << 13) | (1 << 14) | (1 << 15);
    /// DR6 bits that read as 1 (bits 4-11, 16-31; RTM's bit 16 reads 1 on CPUs without it).
    pub const DR6_FIXED1: u64 = 0xffff_0ff0;
    /// DR6 after reset.
    pub const DR6_RESET: u64 = DR6_FIXED1;
    /// DR7 bits software may set: L0-G3, LE, GE, GD and the R/W and LEN fields.
    pub const DR7_WRITABLE: u64 = 0x3ff | (1 << 13) | 0xffff_0000;
    /// DR7 bit 10 reads as 1.
    pub const DR7_FIXED1: u64 = 1 << 10;
    /// DR7 after reset.
    pub const DR7_RESET: u64 = DR7_FIXED1;
    /// DR7.GD: MOV DR raises #DB before it executes.
    pub const DR7_GD: u64 = 1 << 13;
    /// DR6.BD: the #DB came from DR7.GD.
    pub const DR6_BD: u64 = 1 << 13;
    /// DR6.BS: the #DB is a single-step trap (RFLAGS.TF; SDM Vol 3A 17.2.3).
    pub const DR6_BS: u64 = 1 << 14;
}

/// The register a MOV DR names by number `n` (0-7): DR4 and DR5 are DR6 and DR7 while
/// CR4.DE is clear and #UD when it is set (SDM Vol 3B 18.2.2).
pub fn debug_reg(n: u8, cr4_value: u64) -> Result<DebugReg, Event> {
    let de = cr4_value & cr4::DE != 0;
    Ok(match n {
        0 => DebugReg::Dr0,
        1 => DebugReg::Dr1,
        2 => DebugReg::Dr2,
        3 => DebugReg::Dr3,
        4 | 5 if de => return Err(Event::UD),
        4 | 6 => DebugReg::Dr6,
        5 | 7 => DebugReg::Dr7,
        _ => return Err(Event::UD),
    })
}

/// MOV to a debug register: the value it holds afterwards, or #GP(0) for bits 63:32 set
/// in DR6 or DR7. DR0-DR3 take any address.
pub fn write_dr(r: DebugReg, v: u64) -> Result<u64, Event> {
    match r {
        DebugReg::Dr6 | DebugReg::Dr7 if v >> 32 != 0 => Err(Event::gp(0)),
        DebugReg::Dr6 => Ok((v & dr::DR6_WRITABLE) | dr::DR6_FIXED1),
        DebugReg::Dr7 => Ok((v & dr::DR7_WRITABLE) | dr::DR7_FIXED1),
        _ => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CPU with everything on: every CR4 and EFER feature, XSAVE with x87|SSE|AVX.
    fn full(leaf: u32, _sub: u32) -> [u32; 4] {
        match leaf {
            0 => [0xd, 0, 0, 0],
            1 => [0, 0, u32::MAX, u32::MAX],
            7 => [0, u32::MAX, u32::MAX, 0],
            0xd => [0x7, 0, 0, 0],
            0x8000_0000 => [0x8000_0008, 0, 0, 0],
            0x8000_0001 => [0, 0, 0, u32::MAX],
            _ => [0; 4],
        }
    }

    fn rules() -> CpuRules {
        CpuRules::from_cpuid(full)
    }

    const PROT: CrState = CrState {
        cr0: cr0::PE | cr0::ET,
        cr3: 0,
        cr4: 0,
        efer: 0,
        cs_long: false,
    };

    #[test]
    fn cr0_rejects_reserved_bits_pg_without_pe_and_nw_without_cd() {
        let r = rules();
        assert_eq!(r.write_cr0(PROT, 1 << 32), Err(Event::gp(0)));
        assert_eq!(
            r.write_cr0(PROT, cr0::PG),
            Err(Event::gp(0)),
            "PG without PE"
        );
        assert_eq!(
            r.write_cr0(PROT, cr0::PE | cr0::NW),
            Err(Event::gp(0)),
            "NW without CD"
        );
        let ok = r.write_cr0(PROT, cr0::PE | cr0::NW | cr0::CD).unwrap();
        assert_eq!(ok.cr0, cr0::PE | cr0::NW | cr0::CD);
    }

    #[test]
    fn paging_with_lme_activates_long_mode_only_with_pae() {
        let r = rules();
        let st = CrState {
            efer: efer::LME,
            ..PROT
        };
        assert_eq!(
            r.write_cr0(st, cr0::PE | cr0::PG),
            Err(Event::gp(0)),
            "needs PAE"
        );
        let st = CrState {
            cr4: cr4::PAE,
            ..st
        };
        let on = r.write_cr0(st, cr0::PE | cr0::PG).unwrap();
        assert!(on.long_mode_active());
        // Leaving long mode from compatibility mode works; from 64-bit code it does not.
        assert!(!r.write_cr0(on, cr0::PE).unwrap().long_mode_active());
        let in64 = CrState {
            cs_long: true,
            ..on
        };
        assert_eq!(r.write_cr0(in64, cr0::PE), Err(Event::gp(0)));
        // Without LME, paging is legacy paging.
        let legacy = r.write_cr0(PROT, cr0::PE | cr0::PG).unwrap();
        assert!(!legacy.long_mode_active());
    }

    #[test]
    fn cr4_bits_follow_cpuid() {
        let all = rules();
        let pol = CpuRules::for_guest(full);
        assert!(all.write_cr4(PROT, cr4::VMXE).is_ok());
        for hidden in [
            cr4::VMXE,
            cr4::SMXE,
            cr4::PCIDE,
            cr4::OSXSAVE,
            cr4::LA57,
            cr4::PKE,
            cr4::CET,
        ] {
            assert_eq!(
                pol.write_cr4(PROT, hidden),
                Err(Event::gp(0)),
                "{hidden:#x}"
            );
        }
        for reserved in [1u64 << 15, 1 << 25, 1 << 31, 1 << 32] {
            assert_eq!(
                all.write_cr4(PROT, reserved),
                Err(Event::gp(0)),
                "{reserved:#x}"
            );
        }
        let ok = cr4::PAE | cr4::PSE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT | cr4::FSGSBASE;
        assert_eq!(pol.write_cr4(PROT, ok).unwrap().cr4, ok);
        assert_eq!(
            pol.restrict_cr4(!cr4::PGE).write_cr4(PROT, cr4::PGE),
            Err(Event::gp(0))
        );
    }

    #[test]
    fn cr4_long_mode_rules() {
        let r = rules();
        let lm = CrState {
            cr0: cr0::PE | cr0::PG,
            cr4: cr4::PAE,
            efer: efer::LME | efer::LMA,
            ..PROT
        };
        assert_eq!(
            r.write_cr4(lm, 0),
            Err(Event::gp(0)),
            "PAE off in long mode"
        );
        assert_eq!(
            r.write_cr4(lm, cr4::PAE | cr4::LA57),
            Err(Event::gp(0)),
            "LA57 change"
        );
        assert!(r.write_cr4(lm, cr4::PAE | cr4::PCIDE).is_ok());
        let dirty_cr3 = CrState { cr3: 0x1001, ..lm };
        assert_eq!(
            r.write_cr4(dirty_cr3, cr4::PAE | cr4::PCIDE),
            Err(Event::gp(0))
        );
        assert_eq!(
            r.write_cr4(PROT, cr4::PCIDE),
            Err(Event::gp(0)),
            "PCIDE outside long mode"
        );
    }

    #[test]
    fn efer_bits_follow_cpuid_and_lme_is_frozen_while_paging() {
        let r = rules();
        assert_eq!(
            r.write_efer(PROT, efer::SVME),
            Err(Event::gp(0)),
            "SVME is never the guest's"
        );
        assert_eq!(r.write_efer(PROT, 1 << 1), Err(Event::gp(0)), "reserved");
        let st = r
            .write_efer(PROT, efer::LME | efer::NXE | efer::SCE)
            .unwrap();
        assert_eq!(st.efer, efer::LME | efer::NXE | efer::SCE);
        let paging = CrState {
            cr0: cr0::PE | cr0::PG,
            ..PROT
        };
        assert_eq!(r.write_efer(paging, efer::LME), Err(Event::gp(0)));
        // LMA is read-only: writing it neither sets nor clears it.
        assert_eq!(r.write_efer(PROT, efer::LMA).unwrap().efer, 0);
        let lm = CrState {
            efer: efer::LME | efer::LMA,
            cr0: cr0::PE | cr0::PG,
            ..PROT
        };
        assert_eq!(
            r.write_efer(lm, efer::LME).unwrap().efer,
            efer::LME | efer::LMA
        );
        let none = CpuRules::from_cpuid(|l, _| {
            if l == 0x8000_0000 {
                [0x8000_0000, 0, 0, 0]
            } else {
                [0; 4]
            }
        });
        assert_eq!(none.write_efer(PROT, efer::NXE), Err(Event::gp(0)));
    }

    #[test]
    fn debug_register_numbers_and_values() {
        assert_eq!(
            debug_reg(4, 0),
            Ok(DebugReg::Dr6),
            "DR4 aliases DR6 without CR4.DE"
        );
        assert_eq!(debug_reg(5, 0), Ok(DebugReg::Dr7));
        assert_eq!(debug_reg(4, cr4::DE), Err(Event::UD));
        assert_eq!(debug_reg(7, cr4::DE), Ok(DebugReg::Dr7));
        assert_eq!(debug_reg(2, 0), Ok(DebugReg::Dr2));
        assert_eq!(write_dr(DebugReg::Dr7, 1 << 32), Err(Event::gp(0)));
        assert_eq!(write_dr(DebugReg::Dr6, 1 << 40), Err(Event::gp(0)));
        assert_eq!(write_dr(DebugReg::Dr7, 0), Ok(0x400), "bit 10 reads 1");
        assert_eq!(write_dr(DebugReg::Dr7, 0x1_2403), Ok(0x1_2403));
        assert_eq!(
            write_dr(DebugReg::Dr7, 1 << 12),
            Ok(0x400),
            "reserved bit 12 stays 0"
        );
        assert_eq!(write_dr(DebugReg::Dr6, 0), Ok(0xffff_0ff0));
        assert_eq!(write_dr(DebugReg::Dr6, 0x4001), Ok(0xffff_4ff1));
        assert_eq!(write_dr(DebugReg::Dr0, u64::MAX), Ok(u64::MAX));
    }

    #[test]
    fn xcr0_rules() {
        let r = rules();
        assert_eq!(r.write_xcr0(0), Err(Event::gp(0)), "x87 must stay");
        assert_eq!(
            r.write_xcr0(xcr0::X87 | xcr0::AVX),
            Err(Event::gp(0)),
            "AVX needs SSE"
        );
        assert_eq!(
            r.write_xcr0(xcr0::X87 | 1 << 9),
            Err(Event::gp(0)),
            "not offered"
        );
        assert_eq!(r.write_xcr0(7), Ok(7));
        let pol = CpuRules::for_guest(full);
        assert_eq!(pol.xcr0_allowed(), 0, "XSAVE is hidden");
        assert_eq!(pol.write_xcr0(1), Err(Event::gp(0)));
    }
}
