//! The hostile-guest suite (issue #8): each attack boots as its own guest, the
//! `hostile` kernel with `cmdline=attack=NAME`, beside a `victim` guest that must still
//! pass. This table says how Janus must report each attacker's end, and for attackers
//! that survive, a distinctive part of their own line
//! `hostile: attack NAME: survived (WHAT IT SAW)`. The attacks themselves are in
//! guests/src/bin/hostile.rs (and guests/src/bin/hostile/); a test below keeps the two
//! lists equal.

/// How Janus must report the attacker's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `exit status 0`, after the guest's `survived (...)` line.
    Survived,
    /// `reset`: it pulled the machine's reset line.
    Reset,
    /// `powered off`: ACPI S5.
    PoweredOff,
    /// `triple fault`.
    TripleFault,
    /// `halted with interrupts off`.
    Halted,
    /// Janus' per-guest time limit ended it: the attack never ends on its own.
    TimeLimit,
    /// The attacker caught an exception of its own and ended (the guest runtime's
    /// `EXCEPTION ...` line and exit status 254).
    GuestFault,
}

impl End {
    /// What Janus prints after `ended: ` (vmm-core `GuestEnd`'s Display), or for
    /// [`End::TimeLimit`] the words of its time-limit report.
    pub fn janus_text(self) -> &'static str {
        match self {
            End::Survived => "exit status 0",
            End::Reset => "reset",
            End::PoweredOff => "powered off",
            End::TripleFault => "triple fault",
            End::Halted => "halted with interrupts off",
            End::TimeLimit => "time limit",
            End::GuestFault => "exit status 254",
        }
    }

    /// Whether Janus' `ended: TEXT` is this end (`time limit reached` for
    /// [`End::TimeLimit`]).
    pub fn matches(self, ended: &str) -> bool {
        match self {
            End::TimeLimit => ended.starts_with(self.janus_text()),
            _ => ended == self.janus_text(),
        }
    }

    /// The status word of Janus' `summary: NAME status=S` line for this end.
    pub fn summary_status(self) -> &'static str {
        match self {
            End::Survived => "0",
            End::Reset => "reset",
            End::PoweredOff => "powered-off",
            End::TripleFault => "triple-fault",
            End::Halted => "halted",
            End::TimeLimit => "time-limit",
            End::GuestFault => "254",
        }
    }

    /// Whether Janus counts this end as a success in its `done: G guests, F failed`
    /// line (vmm-core `GuestEnd::succeeded`: exit status 0 or powered off).
    pub fn succeeded(self) -> bool {
        matches!(self, End::Survived | End::PoweredOff)
    }
}

/// One attack of the hostile guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attack {
    /// The module's command line (`cmdline=` in the module line).
    pub cmdline: &'static str,
    pub end: End,
    /// For [`End::Survived`]: a distinctive part of what the attacker saw, when it does
    /// not depend on the CPU model.
    pub saw: Option<&'static str>,
}

impl Attack {
    /// NAME of `attack=NAME`.
    pub fn name(&self) -> &'static str {
        self.cmdline.strip_prefix("attack=").unwrap_or(self.cmdline)
    }

    /// The line the attacker prints when it starts.
    pub fn start_line(&self) -> String {
        format!("hostile: attack {}: start", self.name())
    }

    /// The start of the line a surviving attacker prints: `hostile: attack NAME:
    /// survived (`.
    pub fn survived_prefix(&self) -> Option<String> {
        (self.end == End::Survived).then(|| format!("hostile: attack {}: survived (", self.name()))
    }

    /// Whether `text` is this attacker's survived line with its distinctive part
    /// (`survived (0 functions answered)` for `functions answered`).
    pub fn is_survived_line(&self, text: &str) -> bool {
        self.survived_prefix()
            .and_then(|p| {
                text.strip_prefix(&p)
                    .map(|rest| rest.contains(self.saw.unwrap_or("")))
            })
            .unwrap_or(false)
    }
}

/// The guest name and memory of an attacker, and of the victim beside it.
pub const ATTACKER_MEM: &str = "16M";
pub const VICTIM: &str = "victim";
pub const VICTIM_MEM: &str = "16M";

/// Attackers per hostile ISO: Janus takes 32 modules, one is the victim.
pub const MAX_ATTACKERS: usize = 28;

/// How the attacker ends on this emulator: as the table says, but for the #DB loop under
/// QEMU, whose TCG does not deliver data breakpoints to an AMD-V guest as the CPU does:
/// the watched read raises #GP(0) in the guest, without a single #DB exit (seen: the
/// summary counts `exception=0`), so the loop never forms. Bochs forms it and Janus ends
/// it at its time limit.
pub fn end_on(a: &Attack, qemu: bool) -> End {
    match (a.name(), qemu) {
        ("db_loop", true) => End::GuestFault,
        _ => a.end,
    }
}

/// The `limit=` of an attacker that never ends on its own; `plant` lives longer so that
/// `snoop` beside it has its values to look for, and so does the #DB loop, which under
/// QEMU must instead fault and print its line first (seen: 500 ms of wall time gave it
/// 30 ms of CPU beside 21 guests on a loaded machine, and it was cut off mid-line).
pub fn limit_of(a: &Attack) -> Option<&'static str> {
    match (a.end, a.name()) {
        (End::TimeLimit, "plant" | "db_loop") => Some("3s"),
        (End::TimeLimit, _) => Some("500ms"),
        _ => None,
    }
}

/// The attack named `name`.
pub fn by_name(name: &str) -> Option<&'static Attack> {
    ATTACKS.iter().find(|a| a.name() == name)
}

/// The attacks in table order, cut into as few groups of at most [`MAX_ATTACKERS`] as
/// possible, of nearly equal sizes (87 attacks: 22, 22, 22, 21).
pub fn groups() -> Vec<&'static [Attack]> {
    let n = ATTACKS.len().div_ceil(MAX_ATTACKERS);
    let (base, extra) = (ATTACKS.len() / n, ATTACKS.len() % n);
    let mut out = Vec::new();
    let mut rest = ATTACKS;
    for i in 0..n {
        let (group, tail) = rest.split_at(base + usize::from(i < extra));
        out.push(group);
        rest = tail;
    }
    out
}

/// Every attack, in the order of the hostile guest's own table.
pub const ATTACKS: &[Attack] = &[
    Attack {
        cmdline: "attack=cf9",
        end: End::Reset,
        saw: None,
    },
    Attack {
        cmdline: "attack=kbc_reset",
        end: End::Reset,
        saw: None,
    },
    Attack {
        cmdline: "attack=port92_reset",
        end: End::Reset,
        saw: None,
    },
    Attack {
        cmdline: "attack=acpi_s5",
        end: End::PoweredOff,
        saw: None,
    },
    Attack {
        cmdline: "attack=pci_config",
        end: End::Survived,
        saw: Some("functions answered"),
    },
    Attack {
        cmdline: "attack=cmos_nvram",
        end: End::Survived,
        saw: Some("byte 0x40 reads"),
    },
    Attack {
        cmdline: "attack=cmos_shutdown",
        end: End::Survived,
        saw: Some("byte 0x0f reads"),
    },
    Attack {
        cmdline: "attack=ioapic_storm",
        end: End::Survived,
        saw: Some("interrupts"),
    },
    // INIT to the boot CPU resets a PC (it starts over in the firmware).
    Attack {
        cmdline: "attack=ipi_init_self_xapic",
        end: End::Reset,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_init_others_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_sipi_self_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_sipi_others_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_nmi_self_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_nmi_others_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_smi_self_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_smi_others_xapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_init_self_x2apic",
        end: End::Reset,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_init_others_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_sipi_self_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_sipi_others_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_nmi_self_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_nmi_others_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_smi_self_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=ipi_smi_others_x2apic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_above_ram",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_4g_minus_1",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_after_lapic",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_1tib",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_top_of_phys",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=mem_host_image",
        end: End::Survived,
        saw: Some("bytes of its own RAM written"),
    },
    Attack {
        cmdline: "attack=cr3_outside_ram",
        end: End::TripleFault,
        saw: None,
    },
    Attack {
        cmdline: "attack=vmxon",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmxoff",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmclear",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmptrld",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmptrst",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmread",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmwrite",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmlaunch",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmresume",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=invept",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=invvpid",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmfunc",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmrun",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmload",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=vmsave",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=stgi",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=clgi",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=skinit",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=invlpga",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=other_vendor_hypercall",
        end: End::Survived,
        saw: Some("#UD"),
    },
    Attack {
        cmdline: "attack=msr_efer_svme",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=msr_vm_hsave_pa",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=msr_feature_control",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=msr_vm_cr",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=msr_apic_base_in_ram",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=msr_apic_base_outside_ram",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=msr_smm",
        end: End::Survived,
        saw: Some("4 of 4 SMM MSR writes faulted"),
    },
    Attack {
        cmdline: "attack=cr4_vmxe",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=cr4_smxe",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=cr4_pcide",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=cr4_osxsave",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=cr4_la57",
        end: End::Survived,
        saw: Some("#GP"),
    },
    Attack {
        cmdline: "attack=cr4_pke",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=cr4_cet",
        end: End::Survived,
        saw: None,
    },
    Attack {
        cmdline: "attack=triple_fault",
        end: End::TripleFault,
        saw: None,
    },
    Attack {
        cmdline: "attack=cli_hlt",
        end: End::Halted,
        saw: None,
    },
    Attack {
        cmdline: "attack=cli_spin",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=spin",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=cpuid_spin",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=port_spin",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=ac_loop",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=db_loop",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=rep_outsb_com1",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=rep_insb_com1",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=rep_outsb_unclaimed",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=rep_insb_unclaimed",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=hc_console_outside_ram",
        end: End::Survived,
        saw: Some("EFAULT"),
    },
    Attack {
        cmdline: "attack=hc_console_high",
        end: End::Survived,
        saw: Some("EFAULT"),
    },
    Attack {
        cmdline: "attack=hc_console_wrap",
        end: End::Survived,
        saw: Some("EFAULT"),
    },
    Attack {
        cmdline: "attack=hc_console_len_4g",
        end: End::Survived,
        saw: Some("EINVAL"),
    },
    Attack {
        cmdline: "attack=hc_unknown",
        end: End::Survived,
        saw: Some("ENOSYS"),
    },
    Attack {
        cmdline: "attack=hc_cpl3_console",
        end: End::Survived,
        saw: Some("EPERM"),
    },
    Attack {
        cmdline: "attack=hc_cpl3_exit",
        end: End::Survived,
        saw: Some("EPERM"),
    },
    Attack {
        cmdline: "attack=flood_serial",
        end: End::Survived,
        saw: Some("2097152 bytes sent"),
    },
    Attack {
        cmdline: "attack=flood_hypercall",
        end: End::Survived,
        saw: Some("2097152 bytes sent"),
    },
    Attack {
        cmdline: "attack=plant",
        end: End::TimeLimit,
        saw: None,
    },
    Attack {
        cmdline: "attack=snoop",
        end: End::Survived,
        saw: Some("clean"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn at_least_30_distinct_attacks_with_unique_names() {
        let names: BTreeSet<&str> = ATTACKS.iter().map(|a| a.name()).collect();
        assert!(names.len() >= 30, "{} distinct attacks", names.len());
        assert_eq!(names.len(), ATTACKS.len(), "a name is listed twice");
    }

    #[test]
    fn every_command_line_names_one_attack() {
        for a in ATTACKS {
            assert!(a.cmdline.starts_with("attack="), "{}", a.cmdline);
            assert!(
                !a.name().is_empty() && !a.name().contains(char::is_whitespace),
                "{}",
                a.cmdline
            );
        }
    }

    #[test]
    fn only_survivors_say_what_they_saw() {
        for a in ATTACKS {
            assert!(a.saw.is_none() || a.end == End::Survived, "{}", a.name());
            assert_eq!(a.survived_prefix().is_some(), a.end == End::Survived);
        }
    }

    #[test]
    fn the_table_lists_exactly_the_guests_attacks() {
        let src = include_str!("../../guests/src/bin/hostile.rs");
        let guest: BTreeSet<&str> = src
            .lines()
            .filter_map(|l| l.trim().strip_prefix("(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        let table: BTreeSet<&str> = ATTACKS.iter().map(|a| a.name()).collect();
        assert_eq!(guest, table);
    }

    #[test]
    fn groups_cover_the_table_within_janus_module_limit() {
        let g = groups();
        let sizes: Vec<usize> = g.iter().map(|g| g.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), ATTACKS.len());
        assert!(sizes.iter().all(|&n| n <= MAX_ATTACKERS), "{sizes:?}");
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        assert_eq!(g.len(), ATTACKS.len().div_ceil(MAX_ATTACKERS));
        let flat: Vec<&str> = g.iter().flat_map(|g| g.iter().map(|a| a.name())).collect();
        let table: Vec<&str> = ATTACKS.iter().map(|a| a.name()).collect();
        assert_eq!(flat, table, "table order, each attack once");
        // The FPU/DR pair runs in one ISO: snoop looks for what plant leaves.
        let pair = |n: &str| g.iter().position(|g| g.iter().any(|a| a.name() == n));
        assert_eq!(pair("plant"), pair("snoop"));
    }

    #[test]
    fn only_endless_attacks_get_a_limit() {
        for a in ATTACKS {
            assert_eq!(
                limit_of(a).is_some(),
                a.end == End::TimeLimit,
                "{}",
                a.name()
            );
        }
        assert_eq!(limit_of(by_name("plant").unwrap()), Some("3s"));
        assert_eq!(limit_of(by_name("db_loop").unwrap()), Some("3s"));
        assert_eq!(limit_of(by_name("cli_spin").unwrap()), Some("500ms"));
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn ends_match_janus_lines() {
        assert!(End::TimeLimit.matches("time limit reached"));
        assert!(!End::TimeLimit.matches("reset"));
        assert!(End::Survived.matches("exit status 0"));
        assert!(!End::Survived.matches("exit status 01"));
        assert!(End::Halted.matches("halted with interrupts off"));
        assert_eq!(End::TimeLimit.summary_status(), "time-limit");
        assert_eq!(End::TripleFault.summary_status(), "triple-fault");
        assert!(End::PoweredOff.succeeded() && End::Survived.succeeded());
        assert!(!End::Reset.succeeded() && !End::TimeLimit.succeeded());
    }

    #[test]
    fn ends_read_as_janus_reports_them() {
        let a = ATTACKS.iter().find(|a| a.name() == "snoop").unwrap();
        assert_eq!(a.end.janus_text(), "exit status 0");
        assert_eq!(
            a.survived_prefix().as_deref(),
            Some("hostile: attack snoop: survived (")
        );
        assert!(a.is_survived_line("hostile: attack snoop: survived (clean)"));
        assert!(!a.is_survived_line("hostile: attack snoop: survived (2 values LEAK)"));
        let pci = by_name("pci_config").unwrap();
        assert!(pci.is_survived_line("hostile: attack pci_config: survived (0 functions answered)"));
        assert!(!pci.is_survived_line("hostile: attack snoop: survived (0 functions answered)"));
        assert!(!by_name("cf9")
            .unwrap()
            .is_survived_line("hostile: attack cf9: survived ()"));
        assert_eq!(a.start_line(), "hostile: attack snoop: start");
        let t = ATTACKS.iter().find(|a| a.name() == "triple_fault").unwrap();
        assert_eq!(t.end.janus_text(), "triple fault");
    }
}
