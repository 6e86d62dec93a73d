//! The VM-execution, VM-exit and VM-entry control bits Janus uses (SDM Vol 3C 25.6.1,
//! 25.6.2, 25.7.1, 25.8.1), and the control values it asks for on a given CPU.

use crate::caps::VmxCaps;
use vmm_core::cpu_rules::cr0::{PE as CR0_PE, PG as CR0_PG};
use vmm_core::cpu_rules::CpuRules;
use vmm_core::exit::ALWAYS_INTERCEPTED_EXCEPTIONS;

/// Pin-based VM-execution controls (SDM Vol 3C Table 25-5).
pub mod pin {
    pub const EXT_INT_EXITING: u32 = 1 << 0;
    pub const NMI_EXITING: u32 = 1 << 3;
    /// The VMX-preemption timer: counts down in VMX non-root operation at the TSC rate
    /// divided by 2^IA32_VMX_MISC[4:0] and makes the guest exit at zero (SDM Vol 3C
    /// 26.5.1), whatever its RFLAGS.IF.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
}

/// Primary processor-based VM-execution controls (SDM Vol 3C Table 25-6).
pub mod proc1 {
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    pub const USE_TSC_OFFSETTING: u32 = 1 << 3;
    pub const HLT_EXITING: u32 = 1 << 7;
    pub const MWAIT_EXITING: u32 = 1 << 10;
    pub const RDPMC_EXITING: u32 = 1 << 11;
    pub const CR3_LOAD_EXITING: u32 = 1 << 15;
    pub const CR3_STORE_EXITING: u32 = 1 << 16;
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    /// TPR accesses use the virtual-APIC page (SDM Vol 3C 30.1.1).
    pub const USE_TPR_SHADOW: u32 = 1 << 21;
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    pub const UNCOND_IO_EXITING: u32 = 1 << 24;
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const MONITOR_EXITING: u32 = 1 << 29;
    pub const PAUSE_EXITING: u32 = 1 << 30;
    pub const SECONDARY: u32 = 1 << 31;
}

/// Secondary processor-based VM-execution controls (SDM Vol 3C Table 25-7).
pub mod proc2 {
    /// Accesses to the APIC-access page are virtualized or exit (SDM Vol 3C 30.4).
    pub const VIRTUALIZE_APIC_ACCESSES: u32 = 1 << 0;
    pub const EPT: u32 = 1 << 1;
    pub const RDTSCP: u32 = 1 << 3;
    pub const VPID: u32 = 1 << 5;
    pub const UNRESTRICTED: u32 = 1 << 7;
    /// Reads of the APIC-access page come from the virtual-APIC page, and writes to the
    /// registers of SDM Vol 3C 30.4.3.1 land there and exit trap-like (APIC write).
    pub const APIC_REGISTER_VIRTUALIZATION: u32 = 1 << 8;
    /// The CPU delivers the virtual-APIC page's requested interrupts and virtualizes EOI
    /// (SDM Vol 3C 30.1.2, 30.2).
    pub const VIRTUAL_INTERRUPT_DELIVERY: u32 = 1 << 9;
}

/// Primary VM-exit controls (SDM Vol 3C Table 25-13).
pub mod exit_ctl {
    pub const SAVE_DEBUG: u32 = 1 << 2;
    pub const HOST_64: u32 = 1 << 9;
    pub const SAVE_PAT: u32 = 1 << 18;
    pub const LOAD_PAT: u32 = 1 << 19;
    pub const SAVE_EFER: u32 = 1 << 20;
    pub const LOAD_EFER: u32 = 1 << 21;
}

/// VM-entry controls (SDM Vol 3C Table 25-15).
pub mod entry_ctl {
    pub const LOAD_DEBUG: u32 = 1 << 2;
    pub const IA32E_GUEST: u32 = 1 << 9;
    pub const LOAD_PAT: u32 = 1 << 14;
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// The control fields' values for one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    pub pin: u32,
    pub proc1: u32,
    pub proc2: u32,
    pub exit: u32,
    pub entry: u32,
    /// The exception bitmap: a set bit makes that vector exit (SDM Vol 3C 25.6.3).
    pub exceptions: u32,
    /// CR0 and CR4 guest/host masks: the bits the host owns (SDM Vol 3C 25.6.6).
    pub cr0_mask: u64,
    pub cr4_mask: u64,
}

const CR3_EXITING: u32 = proc1::CR3_LOAD_EXITING | proc1::CR3_STORE_EXITING;

impl Controls {
    pub fn new(c: &VmxCaps, rules: &CpuRules, vpid: bool) -> Controls {
        // Port accesses, HLT, MWAIT/MONITOR, RDPMC, CR8 and debug-register accesses exit,
        // and so do MSR accesses but those in the MSR bitmap's pass-through list; CR3
        // accesses do not where the CPU lets them run (EPT, SDM Vol 3C 26.6.2).
        let want1 = proc1::HLT_EXITING
            | proc1::MOV_DR_EXITING
            | proc1::UNCOND_IO_EXITING
            | proc1::MWAIT_EXITING
            | proc1::MONITOR_EXITING
            | proc1::RDPMC_EXITING
            | proc1::USE_TSC_OFFSETTING
            | proc1::CR8_LOAD_EXITING
            | proc1::CR8_STORE_EXITING
            | proc1::USE_MSR_BITMAPS
            | proc1::SECONDARY;
        let proc1 = c.proc1.adjust(want1) & !CR3_EXITING | (c.proc1.must1 & CR3_EXITING);
        // RDTSCP runs without an exit, reading the guest's TSC_AUX that the vCPU keeps
        // resident (resident.rs); CPUID shows RDTSCP when the host has it, and a CPU with
        // RDTSCP but without this control would #UD it (none is known to Janus).
        let want2 =
            proc2::EPT | proc2::UNRESTRICTED | proc2::RDTSCP | if vpid { proc2::VPID } else { 0 };
        // DR7 (and IA32_DEBUGCTL) are the guest's, loaded at entry and saved at exit
        // (SDM Vol 3C 26.3.2.1, 28.3.1); the host's DR7 is 0x400 after exit (28.5.1).
        let exit = exit_ctl::HOST_64
            | exit_ctl::SAVE_DEBUG
            | exit_ctl::SAVE_EFER
            | exit_ctl::LOAD_EFER
            | exit_ctl::SAVE_PAT
            | exit_ctl::LOAD_PAT;
        // With unrestricted guest, PE and PG are the guest's own (SDM Vol 3C 26.3.1.1);
        // the other bits FIXED0 forces (NE) and those FIXED1 forbids are host-owned and
        // the guest sees its own value of them through the read shadow.
        let low = 0xffff_ffffu64;
        let cr0_mask = ((c.cr0_fixed0 & !(CR0_PE | CR0_PG)) | (!c.cr0_fixed1 & low)) & low;
        // CR4 bits the guest may not set are host-owned too, so that writing them exits
        // and the rules can refuse them.
        let cr4_mask = (c.cr4_fixed0 | (!c.cr4_fixed1 & low) | !rules.cr4_allowed()) & low;
        Controls {
            pin: c
                .pin
                .adjust(pin::EXT_INT_EXITING | pin::NMI_EXITING | pin::PREEMPTION_TIMER),
            proc1,
            proc2: c.proc2.adjust(want2),
            exit: c.exit.adjust(exit),
            entry: c
                .entry
                .adjust(entry_ctl::LOAD_DEBUG | entry_ctl::LOAD_EFER | entry_ctl::LOAD_PAT)
                & !entry_ctl::IA32E_GUEST,
            exceptions: ALWAYS_INTERCEPTED_EXCEPTIONS
                .iter()
                .fold(0, |bits, &v| bits | 1 << v),
            cr0_mask,
            cr4_mask,
        }
    }
}
