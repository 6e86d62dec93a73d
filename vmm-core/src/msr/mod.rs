//! The MSRs a guest may read and write, the same on both vendors.
//!
//! Every RDMSR/WRMSR exits (both backends intercept all of them for now). MSRs whose
//! values live in the VMCS/VMCB guest state go through [`StateMsr`]; a few read-only
//! ones get fixed answers; the platform's own (APIC base, x2APIC, TSC deadline) are
//! answered by [`crate::platform::Platform`] before these; anything else raises #GP(0),
//! as a CPU without that MSR does. An MSR that belongs to a CPUID feature exists exactly
//! when the guest's CPUID shows that feature: IA32_TSC_AUX with RDTSCP ([`tsc_aux`]), the
//! MTRRs with MTRR ([`mtrr`]). The cpuid guest suite checks both directions.

pub mod mtrr;
pub mod tsc;
pub mod tsc_aux;

use crate::vcpu::{ArchVcpu, Event, StateMsr};
use mtrr::Mtrrs;
pub use tsc::{GuestTsc, IA32_TSC_ADJUST};
pub use tsc_aux::IA32_TSC_AUX;

pub const IA32_TSC: u32 = 0x10;
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
pub const IA32_BIOS_SIGN_ID: u32 = 0x8b;
pub const IA32_MISC_ENABLE: u32 = 0x1a0;
/// IA32_MISC_ENABLE as the guest reads it: fast strings on, branch trace and PEBS
/// unavailable, XD not disabled (SDM Vol 4, Table 2-2). Linux's early boot code reads it
/// (with a plain RDMSR) on Intel CPUs.
pub const MISC_ENABLE_VALUE: u64 = (1 << 0) | (1 << 11) | (1 << 12);
/// The IA32_MISC_ENABLE bits a guest may change, kept per guest: fast strings (0),
/// automatic thermal control (3) and xTPR disable (23), which change nothing Janus shows
/// (SDM Vol 4, Table 2-2). A write that changes any other bit raises #GP(0): those would
/// change what CPUID shows (limit CPUID maxval, XD disable, MONITOR FSM), which Janus
/// does not follow.
pub const MISC_ENABLE_WRITABLE: u64 = (1 << 0) | (1 << 3) | (1 << 23);
/// AMD's legacy performance-event MSRs, PERF_CTL0-3 and PERF_CTR0-3 (APM Vol 2 13.2.1),
/// which every AMD CPU since the K7 has whatever CPUID says: Janus shows no PMU, so on an
/// AMD guest they read 0 and ignore writes, as KVM does without a PMU.
pub const AMD_PERF_LEGACY: core::ops::RangeInclusive<u32> = 0xc001_0000..=0xc001_0007;
/// AMD's SYSCFG (APM Vol 2 7.9.1, 3.2.1): every AMD CPU since the K8 has it. It reads 0
/// (no MtrrFixDramModEn, no TOM2, no memory encryption) and ignores writes, as under KVM:
/// Linux reads it with a plain RDMSR before the fixed-range MTRRs on AMD family 0Fh and up.
pub const AMD_SYSCFG: u32 = 0xc001_0010;
/// AMD's NB_CFG (family 10h-16h BKDG, MSRC001_001F): reads 0 and ignores writes, as under
/// KVM. Linux reads it and sets EnableCf8ExtCfg (bit 46) on AMD to reach extended PCI
/// configuration space through port 0xCF8, which Janus' guests do not have.
pub const AMD_NB_CFG: u32 = 0xc001_001f;
/// AMD's HWCR (APM Vol 2 Appendix A; family 10h-17h BKDG/PPR, MSRC001_0015): reads with
/// TscFreqSel (bit 24, "the TSC counts at the P0 frequency", read-only 1 since family 10h)
/// and nothing else set, and ignores writes, as under KVM. Linux reads it on AMD CPUs with
/// an invariant TSC and warns of a firmware bug when bit 24 is clear.
pub const AMD_HWCR: u32 = 0xc001_0015;
/// AMD's interrupt-pending message register (family 0Fh-10h BKDG, MSRC001_0055): reads 0
/// (no C1E on an interrupt-pending message) and ignores writes, as under KVM. Linux reads
/// it to decide the AMD E400 erratum's idle routine.
pub const AMD_INT_PENDING_MSG: u32 = 0xc001_0055;
pub const HWCR_VALUE: u64 = 1 << 24;

/// What an AMD guest reads from an MSR every AMD CPU has and whose writes change nothing
/// here; `None` for other MSRs.
fn amd_inert(msr: u32) -> Option<u64> {
    match msr {
        AMD_HWCR => Some(HWCR_VALUE),
        AMD_SYSCFG | AMD_NB_CFG | AMD_INT_PENDING_MSG => Some(0),
        m if AMD_PERF_LEGACY.contains(&m) => Some(0),
        _ => None,
    }
}

/// The MSR values a guest owns that live in no VMCS/VMCB field, and which of the MSRs
/// that belong to a CPUID feature it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsrs {
    pub misc_enable: u64,
    /// The guest's CPU is AMD's (or Hygon's): the legacy PMU MSRs, SYSCFG, NB_CFG, HWCR
    /// and the interrupt-pending message register exist.
    pub amd: bool,
    /// CPUID shows RDTSCP (0x8000_0001 EDX bit 27): IA32_TSC_AUX exists. Its value is the
    /// vCPU's ([`StateMsr::TscAux`]), resident in the CPU while the guest runs.
    pub tsc_aux: bool,
    /// The MTRRs, when CPUID shows MTRR (leaf 1 EDX bit 12).
    pub mtrr: Option<Mtrrs>,
    /// CPUID shows IA32_TSC_ADJUST (leaf 7.0 EBX bit 1).
    pub tsc_adjust: bool,
    /// The guest's TSC: IA32_TSC and IA32_TSC_ADJUST, one for all of its vCPUs.
    pub tsc: GuestTsc,
}

impl GuestMsrs {
    /// The MSRs of a guest whose CPUID (the policy's answers) is `cpuid`.
    pub fn for_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> GuestMsrs {
        let max_ext = cpuid(0x8000_0000, 0)[0];
        let ext = |leaf: u32| {
            if max_ext >= leaf {
                cpuid(leaf, 0)
            } else {
                [0; 4]
            }
        };
        // MAXPHYADDR is 36 without leaf 0x8000_0008 (SDM Vol 3A 4.1.4).
        let max_phys = match ext(0x8000_0008)[0] as u8 {
            0 => 36,
            n => n,
        };
        GuestMsrs {
            misc_enable: MISC_ENABLE_VALUE,
            amd: crate::vendor::of_leaf0(cpuid(0, 0)) == Some(crate::vendor::Vendor::AmdCompatible),
            tsc_aux: ext(0x8000_0001)[3] & (1 << 27) != 0,
            mtrr: (cpuid(1, 0)[3] & (1 << 12) != 0).then(|| Mtrrs::bios_default(max_phys)),
            tsc_adjust: cpuid(0, 0)[0] >= 7 && cpuid(7, 0)[1] & (1 << 1) != 0,
            tsc: GuestTsc::default(),
        }
    }

    /// The MSRs of a guest on a host whose CPUID is `host`, as Janus' CPUID policy
    /// ([`crate::cpuid::guest_cpuid`]) shows it.
    pub fn for_guest(host: impl Fn(u32, u32) -> [u32; 4]) -> GuestMsrs {
        GuestMsrs::for_cpuid(|leaf, sub| crate::cpuid::guest_cpuid(leaf, sub, 0, &host))
    }
}

pub const IA32_SYSENTER_CS: u32 = 0x174;
pub const IA32_SYSENTER_ESP: u32 = 0x175;
pub const IA32_SYSENTER_EIP: u32 = 0x176;
pub const IA32_PAT: u32 = 0x277;
pub const IA32_EFER: u32 = 0xc000_0080;
pub const IA32_STAR: u32 = 0xc000_0081;
pub const IA32_LSTAR: u32 = 0xc000_0082;
pub const IA32_CSTAR: u32 = 0xc000_0083;
pub const IA32_FMASK: u32 = 0xc000_0084;
pub const IA32_FS_BASE: u32 = 0xc000_0100;
pub const IA32_GS_BASE: u32 = 0xc000_0101;
pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// MSRs the guest reads and writes without an exit: their guest values are live in the
/// hardware while the guest runs (VMCS/VMCB guest state, or loaded around VM entry), the
/// hardware checks writes itself (#GP for a non-canonical base or an invalid PAT type),
/// and no VMM state depends on them. Both backends build their MSR bitmaps from this
/// list; every other MSR access exits to this module.
///
/// IA32_TSC is not here although hardware would apply the TSC offset to RDMSR too: QEMU's
/// AMD-V returns 0 for it (the policy suite caught that), guests read the TSC with RDTSC
/// (which does not exit) anyway, and a write becomes a TSC offset.
pub const PASSTHROUGH: &[u32] = &[
    IA32_SYSENTER_CS,
    IA32_SYSENTER_ESP,
    IA32_SYSENTER_EIP,
    IA32_PAT,
    IA32_STAR,
    IA32_LSTAR,
    IA32_CSTAR,
    IA32_FMASK,
    IA32_FS_BASE,
    IA32_GS_BASE,
    IA32_KERNEL_GS_BASE,
];

fn state_msr(msr: u32) -> Option<StateMsr> {
    Some(match msr {
        IA32_EFER => StateMsr::Efer,
        IA32_PAT => StateMsr::Pat,
        IA32_FS_BASE => StateMsr::FsBase,
        IA32_GS_BASE => StateMsr::GsBase,
        IA32_KERNEL_GS_BASE => StateMsr::KernelGsBase,
        IA32_SYSENTER_CS => StateMsr::SysenterCs,
        IA32_SYSENTER_ESP => StateMsr::SysenterEsp,
        IA32_SYSENTER_EIP => StateMsr::SysenterEip,
        IA32_STAR => StateMsr::Star,
        IA32_LSTAR => StateMsr::Lstar,
        IA32_CSTAR => StateMsr::Cstar,
        IA32_FMASK => StateMsr::Fmask,
        _ => return None,
    })
}

/// A guest RDMSR (the host's TSC reads `host_tsc`): the value, or the exception to inject.
pub fn read(vcpu: &impl ArchVcpu, own: &GuestMsrs, msr: u32, host_tsc: u64) -> Result<u64, Event> {
    if let Some(m) = state_msr(msr) {
        return Ok(vcpu.state_msr(m));
    }
    match msr {
        IA32_TSC => Ok(own.tsc.read(host_tsc)),
        IA32_TSC_ADJUST if own.tsc_adjust => Ok(own.tsc.adjust()),
        // Locked with VMX disabled: a guest that looks sees no way to enable it.
        IA32_FEATURE_CONTROL => Ok(1),
        IA32_BIOS_SIGN_ID => Ok(0),
        IA32_MISC_ENABLE => Ok(own.misc_enable),
        IA32_TSC_AUX if own.tsc_aux => Ok(vcpu.state_msr(StateMsr::TscAux)),
        m if Mtrrs::owns(m) => own.mtrr.map(|t| t.read(m)).ok_or(Event::gp(0)),
        m => amd_inert(m).filter(|_| own.amd).ok_or(Event::gp(0)),
    }
}

fn valid_pat(v: u64) -> bool {
    // Each of the 8 entries must be UC, WC, WT, WP, WB or UC- (SDM Vol 3A 11.12.2).
    v.to_le_bytes()
        .iter()
        .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

/// A guest WRMSR of `v` (the host's TSC reads `host_tsc`): `Err` is the exception to
/// inject. A write that moves the TSC gives this vCPU its new offset; the others get it
/// before they next run (the scheduler's business).
pub fn write(
    vcpu: &mut impl ArchVcpu,
    own: &mut GuestMsrs,
    msr: u32,
    v: u64,
    host_tsc: u64,
) -> Result<(), Event> {
    match state_msr(msr) {
        Some(StateMsr::Pat) if !valid_pat(v) => Err(Event::gp(0)),
        Some(
            m @ (StateMsr::FsBase
            | StateMsr::GsBase
            | StateMsr::KernelGsBase
            | StateMsr::Lstar
            | StateMsr::Cstar
            | StateMsr::SysenterEsp
            | StateMsr::SysenterEip),
        ) if !canonical(v) => {
            let _ = m;
            Err(Event::gp(0))
        }
        Some(m) => vcpu.set_state_msr(m, v),
        // Only the writable bits may change (Linux clears XD-disable, already clear).
        None if msr == IA32_MISC_ENABLE => {
            if (v ^ own.misc_enable) & !MISC_ENABLE_WRITABLE != 0 {
                return Err(Event::gp(0));
            }
            own.misc_enable = v;
            Ok(())
        }
        None if msr == IA32_TSC || (msr == IA32_TSC_ADJUST && own.tsc_adjust) => {
            if msr == IA32_TSC {
                own.tsc.write(host_tsc, v);
            } else {
                own.tsc.write_adjust(v);
            }
            vcpu.set_tsc_offset(own.tsc.offset());
            Ok(())
        }
        None if own.amd && amd_inert(msr).is_some() => Ok(()),
        // Linux writes 0 to IA32_BIOS_SIGN_ID before the CPUID that latches the microcode
        // revision there (SDM Vol 3A 9.11.7.1); there is no microcode to report: it stays 0.
        None if msr == IA32_BIOS_SIGN_ID => Ok(()),
        // The low 32 bits are the value; the upper ones are reserved (SDM Vol 4, Table
        // 2-2, IA32_TSC_AUX).
        None if msr == IA32_TSC_AUX && own.tsc_aux && v >> 32 == 0 => {
            vcpu.set_state_msr(StateMsr::TscAux, v)
        }
        None => match own.mtrr.as_mut() {
            Some(t) if Mtrrs::owns(msr) => t.write(msr, v),
            _ => Err(Event::gp(0)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{host_cpuid, MockVcpu};

    /// A guest whose CPUID shows what `host_cpuid` has, less leaf 1 EDX and 0x8000_0001
    /// EDX bits `clear`.
    fn msrs_without(l1_edx: u32, e1_edx: u32) -> GuestMsrs {
        GuestMsrs::for_cpuid(|leaf, sub| {
            let mut r = host_cpuid(leaf, sub);
            match leaf {
                1 => r[3] &= !l1_edx,
                0x8000_0001 => r[3] &= !e1_edx,
                _ => {}
            }
            r
        })
    }

    #[test]
    fn tsc_adjust_moves_the_tsc_of_the_vcpu_and_follows_tsc_writes() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 0);
        assert!(own.tsc_adjust, "shown on every host");
        assert_eq!(read(&v, &own, IA32_TSC_ADJUST, 500), Ok(0));
        assert_eq!(write(&mut v, &mut own, IA32_TSC_ADJUST, 1000, 500), Ok(()));
        assert_eq!(v.tsc_offset, 1000, "the vCPU runs with the new offset");
        assert_eq!(read(&v, &own, IA32_TSC, 500), Ok(1500));
        // IA32_TSC written back by 1500 moves the adjustment by as much.
        assert_eq!(write(&mut v, &mut own, IA32_TSC, 0, 500), Ok(()));
        assert_eq!(read(&v, &own, IA32_TSC_ADJUST, 900), Ok(-500i64 as u64));
        assert_eq!(v.tsc_offset, -500i64 as u64);
        // A guest whose CPUID does not show it has no such MSR.
        own.tsc_adjust = false;
        assert_eq!(read(&v, &own, IA32_TSC_ADJUST, 0), Err(Event::gp(0)));
        assert_eq!(
            write(&mut v, &mut own, IA32_TSC_ADJUST, 0, 0),
            Err(Event::gp(0))
        );
        assert_eq!(v.tsc_offset, -500i64 as u64);
    }

    #[test]
    fn tsc_aux_keeps_32_bits_in_the_vcpu() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 0);
        assert!(own.tsc_aux);
        assert_eq!(read(&v, &own, IA32_TSC_AUX, 0), Ok(0), "reset value");
        assert_eq!(
            write(&mut v, &mut own, IA32_TSC_AUX, 0xfeed_f00d, 0),
            Ok(())
        );
        assert_eq!(v.state_msr(StateMsr::TscAux), 0xfeed_f00d);
        assert_eq!(read(&v, &own, IA32_TSC_AUX, 0), Ok(0xfeed_f00d));
        assert_eq!(
            write(&mut v, &mut own, IA32_TSC_AUX, 1 << 32, 0),
            Err(Event::gp(0)),
            "bits 63:32 reserved"
        );
        assert_eq!(read(&v, &own, IA32_TSC_AUX, 0), Ok(0xfeed_f00d));
    }

    #[test]
    fn no_rdtscp_no_tsc_aux() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 1 << 27);
        assert!(!own.tsc_aux);
        assert_eq!(read(&v, &own, IA32_TSC_AUX, 0), Err(Event::gp(0)));
        assert_eq!(
            write(&mut v, &mut own, IA32_TSC_AUX, 1, 0),
            Err(Event::gp(0))
        );
        assert_eq!(v.state_msr(StateMsr::TscAux), 0);
    }

    #[test]
    fn syscfg_nb_cfg_and_hwcr_are_inert_on_amd_and_absent_on_intel() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 0);
        for msr in [AMD_SYSCFG, AMD_NB_CFG, AMD_INT_PENDING_MSG] {
            own.amd = true;
            assert_eq!(write(&mut v, &mut own, msr, 1 << 46, 0), Ok(()));
            assert_eq!(read(&v, &own, msr, 0), Ok(0));
            own.amd = false;
            assert_eq!(read(&v, &own, msr, 0), Err(Event::gp(0)));
            assert_eq!(write(&mut v, &mut own, msr, 0, 0), Err(Event::gp(0)));
        }
        own.amd = true;
        assert_eq!(write(&mut v, &mut own, AMD_HWCR, 0, 0), Ok(()));
        assert_eq!(read(&v, &own, AMD_HWCR, 0), Ok(1 << 24), "TscFreqSel");
        own.amd = false;
        assert_eq!(read(&v, &own, AMD_HWCR, 0), Err(Event::gp(0)));
    }

    #[test]
    fn bios_sign_id_takes_the_microcode_probe_and_stays_0() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 0);
        assert_eq!(write(&mut v, &mut own, IA32_BIOS_SIGN_ID, 0, 0), Ok(()));
        assert_eq!(
            write(&mut v, &mut own, IA32_BIOS_SIGN_ID, 5 << 32, 0),
            Ok(())
        );
        assert_eq!(read(&v, &own, IA32_BIOS_SIGN_ID, 0), Ok(0));
    }

    #[test]
    fn mtrrs_exist_with_the_cpuid_bit() {
        let mut v = MockVcpu::new(&[]);
        let mut own = msrs_without(0, 0);
        assert_eq!(read(&v, &own, mtrr::IA32_MTRRCAP, 0), Ok(0x508));
        assert_eq!(write(&mut v, &mut own, 0x205, 0xf_ffff_f800, 0), Ok(()));
        assert_eq!(read(&v, &own, 0x205, 0), Ok(0xf_ffff_f800));
        assert_eq!(write(&mut v, &mut own, 0x2ff, 0x3, 0), Err(Event::gp(0)));
        let mut none = msrs_without(1 << 12, 0);
        for msr in [0xfe, 0x2ff, 0x200, 0x250, 0x26f] {
            assert_eq!(read(&v, &none, msr, 0), Err(Event::gp(0)), "{msr:#x}");
            assert_eq!(write(&mut v, &mut none, msr, 0, 0), Err(Event::gp(0)));
        }
    }
}
