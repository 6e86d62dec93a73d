//! The MSRs a guest may read and write, the same on both vendors.
//!
//! Every RDMSR/WRMSR exits (both backends intercept all of them for now). MSRs whose
//! values live in the VMCS/VMCB guest state go through [`StateMsr`]; a few read-only
//! ones get fixed answers; the platform's own (APIC base, x2APIC, TSC deadline) are
//! answered by [`crate::platform::Platform`] before these; anything else raises #GP(0),
//! as a CPU without that MSR does.

use crate::vcpu::{ArchVcpu, Event, StateMsr};

pub const IA32_TSC: u32 = 0x10;
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
pub const IA32_BIOS_SIGN_ID: u32 = 0x8b;
pub const IA32_MTRRCAP: u32 = 0xfe;
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

/// The MSR values a guest owns that live in no VMCS/VMCB field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsrs {
    pub misc_enable: u64,
    /// The guest's CPU is AMD's (or Hygon's): the legacy PMU MSRs exist.
    pub amd: bool,
}

impl GuestMsrs {
    pub fn new(amd: bool) -> GuestMsrs {
        GuestMsrs {
            misc_enable: MISC_ENABLE_VALUE,
            amd,
        }
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

/// A guest RDMSR: the value, or the exception to inject.
pub fn read(vcpu: &impl ArchVcpu, own: &GuestMsrs, msr: u32, tsc: u64) -> Result<u64, Event> {
    if let Some(m) = state_msr(msr) {
        return Ok(vcpu.state_msr(m));
    }
    match msr {
        IA32_TSC => Ok(tsc),
        // Locked with VMX disabled: a guest that looks sees no way to enable it.
        IA32_FEATURE_CONTROL => Ok(1),
        IA32_BIOS_SIGN_ID => Ok(0),
        IA32_MTRRCAP => Ok(0),
        IA32_MISC_ENABLE => Ok(own.misc_enable),
        m if own.amd && AMD_PERF_LEGACY.contains(&m) => Ok(0),
        _ => Err(Event::gp(0)),
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

/// A guest WRMSR of `v`: `Err` is the exception to inject.
pub fn write(vcpu: &mut impl ArchVcpu, own: &mut GuestMsrs, msr: u32, v: u64) -> Result<(), Event> {
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
        None if own.amd && AMD_PERF_LEGACY.contains(&msr) => Ok(()),
        None => Err(Event::gp(0)),
    }
}
