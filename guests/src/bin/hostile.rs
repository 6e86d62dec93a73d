//! The hostile guest: one attack on the hypervisor (or on the guests beside it) per boot,
//! chosen by `attack=NAME` on the command line. It prints `hostile: attack NAME: start`,
//! attacks, and when still alive prints `hostile: attack NAME: survived (WHAT IT SAW)` and
//! exits with status 0. Expected exceptions (#UD, #GP, #PF, ...) are caught and reported
//! as what it saw. Some attacks end the guest by design (reset, power-off, triple fault,
//! HLT with interrupts off) and some spin until Janus' time limit ends them.
//!
//! Without `attack=` it runs as a suite that checks its own catalogue, so that it can
//! also boot as a plain test guest. ci/src/hostile.rs lists the attacks and the end
//! Janus must report for each.
#![no_std]
#![no_main]

#[path = "hostile/hypercalls.rs"]
mod hypercalls;
#[path = "hostile/ipi.rs"]
mod ipi;
#[path = "hostile/loops.rs"]
mod loops;
#[path = "hostile/memory.rs"]
mod memory;
#[path = "hostile/platform.rs"]
mod platform;
#[path = "hostile/state.rs"]
mod state;
#[path = "hostile/virt.rs"]
mod virt;

use core::fmt;
use janus_guests::rt::hypercall::{EFAULT, EINVAL, ENOSYS, EPERM};
use janus_guests::rt::{args, idt, ram};
use janus_guests::{entry, exit, println, BootInfo, Suite};

entry!(main);

/// What an attack needs to know about its guest.
pub struct Ctx {
    /// The first address above RAM.
    pub ram_end: u64,
    /// The end of the guest image: free RAM starts here.
    pub image_end: u64,
}

/// What the attacker saw, printed in its `survived (...)` line.
pub enum Saw {
    /// An exception (printed as its mnemonic, "#UD").
    Fault(u8),
    /// Nothing went wrong.
    NoFault,
    /// A value it read back.
    Value(&'static str, u64),
    /// A hypercall's RAX.
    Errno(i64),
    /// How many times something happened.
    Count(u64, &'static str),
    Text(&'static str),
}

impl fmt::Display for Saw {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Saw::Fault(v) => write!(f, "{}", idt::mnemonic(v.into())),
            Saw::NoFault => write!(f, "no fault"),
            Saw::Value(what, v) => write!(f, "{what} {v:#x}"),
            Saw::Errno(e) => write!(f, "rax {e} {}", errno_name(e)),
            Saw::Count(n, what) => write!(f, "{n} {what}"),
            Saw::Text(t) => write!(f, "{t}"),
        }
    }
}

fn errno_name(e: i64) -> &'static str {
    match e {
        ENOSYS => "ENOSYS",
        EPERM => "EPERM",
        EFAULT => "EFAULT",
        EINVAL => "EINVAL",
        e if e >= 0 => "ok",
        _ => "?",
    }
}

/// Runs `f`: the exception it raised, or [`Saw::NoFault`].
pub fn attempt(f: impl FnOnce()) -> Saw {
    idt::catch_exception(f).map_or(Saw::NoFault, |e| Saw::Fault(e.vector))
}

/// One attack: its `attack=` name and what it does.
pub type Attack = (&'static str, fn(&Ctx) -> Saw);

/// Every attack, in the order of ci/src/hostile.rs.
const ATTACKS: &[Attack] = &[
    ("cf9", platform::cf9_reset),
    ("kbc_reset", platform::kbc_reset),
    ("port92_reset", platform::port92_reset),
    ("acpi_s5", platform::acpi_s5),
    ("pci_config", platform::pci_config),
    ("cmos_nvram", platform::cmos_nvram),
    ("cmos_shutdown", platform::cmos_shutdown),
    ("ioapic_storm", platform::ioapic_storm),
    ("ipi_init_self_xapic", ipi::init_self_xapic),
    ("ipi_init_others_xapic", ipi::init_others_xapic),
    ("ipi_sipi_self_xapic", ipi::sipi_self_xapic),
    ("ipi_sipi_others_xapic", ipi::sipi_others_xapic),
    ("ipi_nmi_self_xapic", ipi::nmi_self_xapic),
    ("ipi_nmi_others_xapic", ipi::nmi_others_xapic),
    ("ipi_smi_self_xapic", ipi::smi_self_xapic),
    ("ipi_smi_others_xapic", ipi::smi_others_xapic),
    ("ipi_init_self_x2apic", ipi::init_self_x2apic),
    ("ipi_init_others_x2apic", ipi::init_others_x2apic),
    ("ipi_sipi_self_x2apic", ipi::sipi_self_x2apic),
    ("ipi_sipi_others_x2apic", ipi::sipi_others_x2apic),
    ("ipi_nmi_self_x2apic", ipi::nmi_self_x2apic),
    ("ipi_nmi_others_x2apic", ipi::nmi_others_x2apic),
    ("ipi_smi_self_x2apic", ipi::smi_self_x2apic),
    ("ipi_smi_others_x2apic", ipi::smi_others_x2apic),
    ("mem_above_ram", memory::above_ram),
    ("mem_4g_minus_1", memory::four_gib_minus_1),
    ("mem_after_lapic", memory::after_lapic),
    ("mem_1tib", memory::one_tib),
    ("mem_top_of_phys", memory::top_of_phys),
    ("mem_host_image", memory::host_image),
    ("cr3_outside_ram", memory::cr3_outside_ram),
    ("vmxon", virt::vmxon),
    ("vmxoff", virt::vmxoff),
    ("vmclear", virt::vmclear),
    ("vmptrld", virt::vmptrld),
    ("vmptrst", virt::vmptrst),
    ("vmread", virt::vmread),
    ("vmwrite", virt::vmwrite),
    ("vmlaunch", virt::vmlaunch),
    ("vmresume", virt::vmresume),
    ("invept", virt::invept),
    ("invvpid", virt::invvpid),
    ("vmfunc", virt::vmfunc),
    ("vmrun", virt::vmrun),
    ("vmload", virt::vmload),
    ("vmsave", virt::vmsave),
    ("stgi", virt::stgi),
    ("clgi", virt::clgi),
    ("skinit", virt::skinit),
    ("invlpga", virt::invlpga),
    ("other_vendor_hypercall", virt::other_vendor_hypercall),
    ("msr_efer_svme", virt::efer_svme),
    ("msr_vm_hsave_pa", virt::vm_hsave_pa),
    ("msr_feature_control", virt::feature_control),
    ("msr_vm_cr", virt::vm_cr),
    ("msr_apic_base_in_ram", virt::apic_base_in_ram),
    ("msr_apic_base_outside_ram", virt::apic_base_outside_ram),
    ("msr_smm", virt::smm_msrs),
    ("cr4_vmxe", virt::cr4_vmxe),
    ("cr4_smxe", virt::cr4_smxe),
    ("cr4_pcide", virt::cr4_pcide),
    ("cr4_osxsave", virt::cr4_osxsave),
    ("cr4_la57", virt::cr4_la57),
    ("cr4_pke", virt::cr4_pke),
    ("cr4_cet", virt::cr4_cet),
    ("triple_fault", loops::triple_fault),
    ("cli_hlt", loops::cli_hlt),
    ("cli_spin", loops::cli_spin),
    ("spin", loops::spin),
    ("cpuid_spin", loops::cpuid_spin),
    ("port_spin", loops::port_spin),
    ("ac_loop", loops::ac_loop),
    ("db_loop", loops::db_loop),
    ("rep_outsb_com1", loops::rep_outsb_com1),
    ("rep_insb_com1", loops::rep_insb_com1),
    ("rep_outsb_unclaimed", loops::rep_outsb_unclaimed),
    ("rep_insb_unclaimed", loops::rep_insb_unclaimed),
    ("hc_console_outside_ram", hypercalls::console_outside_ram),
    ("hc_console_high", hypercalls::console_high),
    ("hc_console_wrap", hypercalls::console_wrap),
    ("hc_console_len_4g", hypercalls::console_len_4g),
    ("hc_unknown", hypercalls::unknown),
    ("hc_cpl3_console", hypercalls::cpl3_console),
    ("hc_cpl3_exit", hypercalls::cpl3_exit),
    ("flood_serial", hypercalls::flood_serial),
    ("flood_hypercall", hypercalls::flood_hypercall),
    ("plant", state::plant),
    ("snoop", state::snoop),
];

fn main(boot: &BootInfo) -> ! {
    let line = boot.cmdline();
    let Some(name) = args::arg(line, "attack") else {
        catalogue()
    };
    let Some((name, run)) = ATTACKS.iter().find(|(n, _)| *n == name) else {
        println!("hostile: unknown attack {name:?}");
        exit(1)
    };
    let image_end = ram::image().end;
    let ctx = Ctx {
        ram_end: ram::ram_end(boot).unwrap_or(image_end),
        image_end,
    };
    println!("hostile: attack {name}: start");
    let saw = run(&ctx);
    println!("hostile: attack {name}: survived ({saw})");
    exit(0)
}

/// No attack chosen: checks the catalogue (at least 30 attacks, unique names) and lists it.
fn catalogue() -> ! {
    let mut s = Suite::new("hostile");
    for (name, _) in ATTACKS {
        println!("hostile: attack {name} (boot with cmdline=attack={name})");
    }
    s.check(
        "hostile.attack_count",
        ATTACKS.len() >= 30,
        format_args!("{} attacks, want at least 30", ATTACKS.len()),
    );
    let dup = ATTACKS
        .iter()
        .enumerate()
        .find(|(i, (n, _))| ATTACKS[..*i].iter().any(|(m, _)| m == n));
    s.check(
        "hostile.unique_names",
        dup.is_none(),
        format_args!("attack {:?} is listed twice", dup.map(|(_, (n, _))| n)),
    );
    s.finish()
}
