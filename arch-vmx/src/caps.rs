//! What this CPU's VMX offers, read from CPUID and the capability MSRs (SDM Vol 3C
//! Appendix A), and whether it is enough for Janus.

use crate::controls::{entry_ctl, exit_ctl, pin, proc1, proc2};
use core::fmt;
use x86::msr::{self, rdmsr};

/// The allowed settings of a control field: bits that must be 1 (`must1`, from the low
/// half of the capability MSR) and bits that may be 1 (`may1`, the high half)
/// (SDM Vol 3C A.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub must1: u32,
    pub may1: u32,
}

impl Allowed {
    pub const fn from_msr(v: u64) -> Self {
        Allowed {
            must1: v as u32,
            may1: (v >> 32) as u32,
        }
    }
    /// `want` with the mandatory bits added and the unsupported ones removed.
    pub const fn adjust(self, want: u32) -> u32 {
        (want | self.must1) & self.may1
    }
    pub const fn allows(self, bits: u32) -> bool {
        self.may1 & bits == bits
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxCaps {
    pub revision: u32,
    pub pin: Allowed,
    pub proc1: Allowed,
    pub proc2: Allowed,
    pub exit: Allowed,
    pub entry: Allowed,
    pub cr0_fixed0: u64,
    pub cr0_fixed1: u64,
    pub cr4_fixed0: u64,
    pub cr4_fixed1: u64,
    pub ept_vpid: u64,
    /// VM-exit instruction information is reported for INS/OUTS (IA32_VMX_BASIC bit 54).
    pub ins_outs_info: bool,
    /// IA32_VMX_MISC[4:0]: the VMX-preemption timer counts once every 2^this TSC ticks
    /// (SDM Vol 3C A.6).
    pub preemption_timer_shift: u8,
}

/// IA32_VMX_EPT_VPID_CAP bits (SDM Vol 3C A.10).
pub mod ept_cap {
    pub const WALK_4: u64 = 1 << 6;
    pub const WB: u64 = 1 << 14;
    pub const PDE_2M: u64 = 1 << 16;
    pub const INVEPT: u64 = 1 << 20;
    pub const INVEPT_ALL: u64 = 1 << 26;
    pub const INVVPID: u64 = 1 << 32;
    pub const INVVPID_SINGLE: u64 = 1 << 41;
    pub const INVVPID_ALL: u64 = 1 << 42;
}

/// Why VT-x cannot run guests here: one line for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl VmxCaps {
    pub fn ept(&self) -> bool {
        self.proc2.allows(proc2::EPT)
    }
    pub fn unrestricted(&self) -> bool {
        self.proc2.allows(proc2::UNRESTRICTED)
    }
    pub fn vpid(&self) -> bool {
        self.proc2.allows(proc2::VPID)
    }
    /// Virtual-interrupt delivery with the controls it needs: the TPR shadow, virtualized
    /// APIC accesses and external-interrupt exiting (SDM Vol 3C 26.2.1.1, 30.1).
    pub fn virtual_interrupts(&self) -> bool {
        self.proc1.allows(proc1::USE_TPR_SHADOW | proc1::SECONDARY)
            && self
                .proc2
                .allows(proc2::VIRTUALIZE_APIC_ACCESSES | proc2::VIRTUAL_INTERRUPT_DELIVERY)
            && self.pin.allows(pin::EXT_INT_EXITING)
    }

    /// APIC-register virtualization, with virtual-interrupt delivery: the page mirrors
    /// what the guest reads (`LocalApic`'s register page), and register writes exit
    /// trap-like, with nothing to decode.
    pub fn apic_register_virtualization(&self) -> bool {
        self.virtual_interrupts() && self.proc2.allows(proc2::APIC_REGISTER_VIRTUALIZATION)
    }

    /// INVEPT all-context is there (SDM Vol 3C A.10).
    pub fn invept_all(&self) -> bool {
        let all = ept_cap::INVEPT | ept_cap::INVEPT_ALL;
        self.ept_vpid & all == all
    }
    /// VPIDs are there and INVVPID can flush one (single-context) or all of them
    /// (SDM Vol 3C A.10): a reused VPID must not keep its last owner's translations.
    pub fn flushable_vpid(&self) -> bool {
        self.vpid()
            && self.ept_vpid & ept_cap::INVVPID != 0
            && self.ept_vpid & (ept_cap::INVVPID_SINGLE | ept_cap::INVVPID_ALL) != 0
    }

    /// Everything Janus needs, or the first thing missing (checked in the order a user
    /// would fix them).
    pub fn check(&self) -> Result<(), Refusal> {
        if !self.proc1.allows(proc1::SECONDARY) || !self.ept() {
            return Err(Refusal(
                "VT-x without EPT (extended page tables): Janus needs nested paging",
            ));
        }
        if self.ept_vpid & (ept_cap::WALK_4 | ept_cap::WB) != ept_cap::WALK_4 | ept_cap::WB {
            return Err(Refusal(
                "EPT without 4-level walks or write-back paging structures",
            ));
        }
        if !self.unrestricted() {
            return Err(Refusal(
                "VT-x without unrestricted guest: Janus needs it to start guests in protected mode without paging",
            ));
        }
        if !self.proc1.allows(proc1::MOV_DR_EXITING) {
            return Err(Refusal(
                "VT-x cannot make MOV DR exit: guests would share the debug registers",
            ));
        }
        if !self
            .exit
            .allows(exit_ctl::HOST_64 | exit_ctl::SAVE_EFER | exit_ctl::LOAD_EFER)
            || !self
                .entry
                .allows(entry_ctl::IA32E_GUEST | entry_ctl::LOAD_EFER)
        {
            return Err(Refusal(
                "VT-x cannot save and load IA32_EFER across VM entries and exits",
            ));
        }
        Ok(())
    }
}

/// `ept=yes unrestricted=yes vpid=yes vid=yes ...`, the features part of the `janus: cpu:`
/// line (`vid`: virtual-interrupt delivery, which guests on one host CPU then use).
impl fmt::Display for VmxCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "ept={} unrestricted={} vpid={} vid={} ept-2m={} vmcs-revision={:#x}",
            yn(self.ept()),
            yn(self.unrestricted()),
            yn(self.vpid()),
            yn(self.virtual_interrupts()),
            yn(self.ept_vpid & ept_cap::PDE_2M != 0),
            self.revision
        )
    }
}

/// CPUID.1:ECX.VMX (SDM Vol 3C 24.6).
const CPUID_1_ECX_VMX: u32 = 1 << 5;
/// IA32_VMX_BASIC bits (SDM Vol 3C A.1): the revision ID in bits 30:0, INS/OUTS
/// instruction information, and the TRUE_* control capability MSRs.
const BASIC_REVISION: u64 = 0x7fff_ffff;
const BASIC_INS_OUTS_INFO: u64 = 1 << 54;
const BASIC_TRUE_CTLS: u64 = 1 << 55;
/// IA32_VMX_MISC bits 4:0 (SDM Vol 3C A.6).
const MISC_PREEMPTION_SHIFT: u64 = 0x1f;

const IA32_FEATURE_CONTROL_LOCK: u64 = 1 << 0;
const IA32_FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// Reads VMX's capabilities, enabling VMX in IA32_FEATURE_CONTROL if the firmware left
/// it unlocked (SDM Vol 3C 24.7).
pub fn probe() -> Result<VmxCaps, Refusal> {
    let ecx = core::arch::x86_64::__cpuid(1).ecx;
    if ecx & CPUID_1_ECX_VMX == 0 {
        return Err(Refusal(
            "no hardware virtualization: CPUID reports no VMX (Intel VT-x)",
        ));
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX (SDM Vol 4 Table 2-2);
    // setting its VMX bit and locking it only enables VMXON.
    unsafe {
        let fc = rdmsr(msr::IA32_FEATURE_CONTROL);
        if fc & IA32_FEATURE_CONTROL_LOCK != 0 {
            if fc & IA32_FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
                return Err(Refusal(
                    "VT-x disabled by firmware: IA32_FEATURE_CONTROL is locked with VMX off (enable it in the firmware setup)",
                ));
            }
        } else {
            msr::wrmsr(
                msr::IA32_FEATURE_CONTROL,
                fc | IA32_FEATURE_CONTROL_LOCK | IA32_FEATURE_CONTROL_VMX_OUTSIDE_SMX,
            );
        }
    }
    // SAFETY: the VMX capability MSRs exist when CPUID reports VMX (SDM Vol 3C A.1);
    // the secondary and EPT ones are read only when the primary MSR says they exist.
    let caps = unsafe {
        let basic = rdmsr(msr::IA32_VMX_BASIC);
        let true_ctls = basic & BASIC_TRUE_CTLS != 0;
        let pick =
            |plain: u32, tru: u32| Allowed::from_msr(rdmsr(if true_ctls { tru } else { plain }));
        let proc1 = pick(
            msr::IA32_VMX_PROCBASED_CTLS,
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
        );
        let has2 = proc1.allows(proc1::SECONDARY);
        let proc2 = if has2 {
            Allowed::from_msr(rdmsr(msr::IA32_VMX_PROCBASED_CTLS2))
        } else {
            Allowed { must1: 0, may1: 0 }
        };
        VmxCaps {
            revision: (basic & BASIC_REVISION) as u32,
            pin: pick(
                msr::IA32_VMX_PINBASED_CTLS,
                msr::IA32_VMX_TRUE_PINBASED_CTLS,
            ),
            proc1,
            proc2,
            exit: pick(msr::IA32_VMX_EXIT_CTLS, msr::IA32_VMX_TRUE_EXIT_CTLS),
            entry: pick(msr::IA32_VMX_ENTRY_CTLS, msr::IA32_VMX_TRUE_ENTRY_CTLS),
            cr0_fixed0: rdmsr(msr::IA32_VMX_CR0_FIXED0),
            cr0_fixed1: rdmsr(msr::IA32_VMX_CR0_FIXED1),
            cr4_fixed0: rdmsr(msr::IA32_VMX_CR4_FIXED0),
            cr4_fixed1: rdmsr(msr::IA32_VMX_CR4_FIXED1),
            ept_vpid: if proc2.allows(proc2::EPT) {
                rdmsr(msr::IA32_VMX_EPT_VPID_CAP)
            } else {
                0
            },
            ins_outs_info: basic & BASIC_INS_OUTS_INFO != 0,
            preemption_timer_shift: (rdmsr(msr::IA32_VMX_MISC) & MISC_PREEMPTION_SHIFT) as u8,
        }
    };
    caps.check()?;
    Ok(caps)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The capabilities Bochs reports for a Sandy Bridge CPU, with the given secondary
    /// controls allowed.
    pub fn bochs_like(proc2_may1: u32) -> VmxCaps {
        VmxCaps {
            revision: 0x2b,
            pin: Allowed::from_msr(0x0000_007f_0000_0016),
            proc1: Allowed::from_msr(0xfff9_fffe_0401_e172),
            proc2: Allowed {
                must1: 0,
                may1: proc2_may1,
            },
            exit: Allowed::from_msr(0x003f_ffff_0003_6dff),
            entry: Allowed::from_msr(0x0000_f3ff_0000_11ff),
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_67ff,
            ept_vpid: ept_cap::WALK_4 | ept_cap::WB | ept_cap::PDE_2M,
            ins_outs_info: true,
            preemption_timer_shift: 5,
        }
    }

    #[test]
    fn adjust_adds_mandatory_and_drops_unsupported_bits() {
        let a = Allowed::from_msr(0x0000_00ff_0000_0016);
        assert_eq!(a.adjust(0x1), 0x17);
        assert_eq!(a.adjust(0x100), 0x16, "bit 8 is not allowed to be 1");
    }

    #[test]
    fn the_cpu_line_says_whether_interrupts_are_delivered_virtually() {
        let line = |proc2: u32| std::format!("{}", bochs_like(proc2));
        assert!(line(0xff).contains(" vid=no "), "{}", line(0xff));
        // Virtualize APIC accesses (bit 0) and virtual-interrupt delivery (bit 9).
        assert!(line(0xff | 1 << 9).contains(" vid=yes "));
        assert!(
            line(0xfe | 1 << 9).contains(" vid=no "),
            "without APIC accesses"
        );
    }

    #[test]
    fn sandy_bridge_secondary_controls_are_enough() {
        // Bochs corei7_sandy_bridge_2600k: secondary allowed-1 = 0xff (testbench.md).
        assert_eq!(bochs_like(0xff).check(), Ok(()));
    }

    #[test]
    fn missing_ept_or_unrestricted_guest_is_refused_with_a_reason() {
        let no_ept = bochs_like(0xff & !proc2::EPT).check().unwrap_err();
        assert!(no_ept.0.contains("EPT"), "{no_ept}");
        let no_ug = bochs_like(0xff & !proc2::UNRESTRICTED).check().unwrap_err();
        assert!(no_ug.0.contains("unrestricted"), "{no_ug}");
    }

    #[test]
    fn a_cpu_that_cannot_make_mov_dr_exit_is_refused() {
        let mut c = bochs_like(0xff);
        c.proc1.may1 &= !proc1::MOV_DR_EXITING;
        assert!(c.check().unwrap_err().0.contains("MOV DR"));
    }
}
