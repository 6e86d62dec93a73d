//! Rows whose guests run at once (issue #8): their ISOs' modules and what each guest
//! must do ([`Expectation::Together`]).
//!
//! - many guests: every suite, hello, and six hostile guests beside them: one spinning
//!   until its time limit, two more spinning on exits Janus finishes in its backend's
//!   entry loop (CPUID, port accesses) until theirs, the FPU/DR `plant`/`snoop` pair, and
//!   one that resets and is started again three times;
//! - attacks: the attacks of hostile.rs in groups, each attacker its own guest, beside a
//!   `victim` that must pass;
//! - Linux + suites: the Linux guest beside smoke, pic, lapic and a victim.

use std::path::PathBuf;

use crate::hostile::{self, Attack, ATTACKER_MEM, VICTIM, VICTIM_MEM};
use crate::iso::GuestSpec;
use crate::judge::{Expectation, GuestWant};
use crate::matrix::{HELLO, HELLO_MEM, SUITE_MEM};

/// The hostile guest's binary.
pub const HOSTILE: &str = "hostile";

/// Times Janus starts a resetting guest again (`on-reset=restart`) before it ends.
pub const MAX_RESTARTS: u32 = 3;

/// How long the victim beside the attackers checks its secret (ms of its TSC time):
/// longer than the attackers' time limits.
const VICTIM_DURATION_MS: u32 = 5000;

/// The suites next to Linux in the Linux + suites row (and a victim).
pub const LINUX_NEIGHBOURS: [&str; 3] = ["smoke", "pic", "lapic"];

/// The spinning guest of a many-guests row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spinner {
    /// `cli; jmp $`: only a timer that ignores the guest's RFLAGS.IF takes the CPU back.
    InterruptsOff,
    /// `sti; jmp $`, for Bochs' AMD models: their SVM holds the host's timer interrupt
    /// while the guest runs with IF=0 (seen: `cli; jmp $` alone keeps Janus from ever
    /// running again there), where QEMU's AMD-V and real CPUs take the INTR intercept,
    /// and AMD-V has no timer of its own that Janus could use instead.
    InterruptsOn,
}

impl Spinner {
    pub fn for_model(model: &str) -> Spinner {
        if crate::emulator::Emulator::for_model(model) == crate::emulator::Emulator::Bochs
            && BOCHS_AMD_MODELS.contains(&model)
        {
            Spinner::InterruptsOn
        } else {
            Spinner::InterruptsOff
        }
    }

    fn attack(self) -> &'static str {
        match self {
            Spinner::InterruptsOff => "cli_spin",
            Spinner::InterruptsOn => "spin",
        }
    }
}

/// Which attacks of a group an attack row boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackSet {
    /// Every attack of the table.
    All,
    /// All but [`BOCHS_AMD_LEFT_OUT`], for Bochs' AMD models.
    BochsAmd,
}

/// The attacks Bochs' AMD-V cannot take, each for a fault of the emulator and not of
/// Janus (QEMU's AMD-V and Bochs' VT-x take them in the EPYC and corei7_skylake_x rows):
/// `triple_fault`, because Bochs ends itself on a guest's third exception ("3rd (13)
/// exception with no resolution", its panic) before it looks at the SHUTDOWN intercept,
/// which its VT-x checks first (seen on ryzen: the whole machine stopped); `cli_spin`,
/// because its SVM holds the host's timer interrupt while the guest's IF is clear
/// ([`Spinner::InterruptsOn`]).
pub const BOCHS_AMD_LEFT_OUT: [&str; 2] = ["triple_fault", "cli_spin"];

impl AttackSet {
    pub fn for_model(model: &str) -> AttackSet {
        match Spinner::for_model(model) {
            Spinner::InterruptsOn => AttackSet::BochsAmd,
            Spinner::InterruptsOff => AttackSet::All,
        }
    }

    /// The attacks of group `group` ([`hostile::groups`]) in this set.
    pub fn attacks(self, group: usize) -> impl Iterator<Item = &'static hostile::Attack> {
        hostile::groups()[group]
            .iter()
            .filter(move |a| self == AttackSet::All || !BOCHS_AMD_LEFT_OUT.contains(&a.name()))
    }
}

/// Bochs' CPU models with AMD-V.
pub const BOCHS_AMD_MODELS: [&str; 4] = ["ryzen", "zambezi", "trinity_apu", "phenom_8650_toliman"];

/// The hostile guests of the many-guests rows beside the spinner (`limit=2s`): attack,
/// `limit=`, `on-reset=`. The CPUID and port-access spinners (interrupts off) never come
/// back to Janus' dispatcher on their own (issue #9's exits finished in place; on AMD-V
/// with GIF clear between them): their slices and time limits must still end beside
/// every other guest, by the host's timer, or on Bochs' AMD-V, which holds it while the
/// guest's IF is clear, by the dispatcher's pass after `in_place::WHILE_HOST_IDLE` exits.
const MANY_HOSTILE: [(&str, Option<&str>, Option<&str>); 5] = [
    ("cpuid_spin", Some("2s"), None),
    ("port_spin", Some("2s"), None),
    ("plant", Some("3s"), None),
    ("snoop", None, None),
    ("cf9", None, Some("restart")),
];

/// An attacker's module: `hostile name=ATTACK mem=16M [limit=..] [on-reset=..]
/// cmdline=attack=ATTACK` (cmdline last: unquoted, it takes the rest of the line).
fn attacker_spec(a: &Attack, limit: Option<&str>, on_reset: Option<&str>) -> GuestSpec {
    let mut keys = vec![("name", a.name()), ("mem", ATTACKER_MEM)];
    keys.extend(limit.map(|l| ("limit", l)));
    keys.extend(on_reset.map(|r| ("on-reset", r)));
    keys.push(("cmdline", a.cmdline));
    GuestSpec::with_keys(PathBuf::from(HOSTILE), &keys)
}

/// The victim's module, with its own secret.
fn victim_spec(secret: &str) -> GuestSpec {
    let cmdline = format!("secret={secret} duration={VICTIM_DURATION_MS}");
    GuestSpec::with_keys(
        PathBuf::from(VICTIM),
        &[("name", VICTIM), ("mem", VICTIM_MEM), ("cmdline", &cmdline)],
    )
}

fn suite_spec(name: &str) -> GuestSpec {
    GuestSpec::with_keys(PathBuf::from(name), &[("name", name), ("mem", SUITE_MEM)])
}

fn many_attack(name: &str) -> &'static Attack {
    hostile::by_name(name).expect("the many-guests attacks are in the table")
}

/// The many-guests ISO: `suites` (each as a guest of its own name), hello, then the
/// hostile guests.
pub fn many_specs(suites: &[String], spinner: Spinner) -> Vec<GuestSpec> {
    let mut v: Vec<GuestSpec> = suites
        .iter()
        .flat_map(|s| crate::matrix::suite_specs(s, None))
        .collect();
    v.push(GuestSpec::with_keys(
        PathBuf::from(HELLO),
        &[("name", HELLO), ("mem", HELLO_MEM)],
    ));
    v.push(attacker_spec(
        many_attack(spinner.attack()),
        Some("2s"),
        None,
    ));
    for (name, limit, on_reset) in MANY_HOSTILE {
        v.push(attacker_spec(many_attack(name), limit, on_reset));
    }
    v
}

/// Every suite passes, hello exits 0, the spinner reaches its time limit, snoop sees
/// nothing of plant's, and the resetting guest is started again 3 times, then ends
/// with its 4th reset.
pub fn many_expectation(suites: &[String], spinner: Spinner) -> Expectation {
    let mut guests: Vec<GuestWant> = suites.iter().map(|s| GuestWant::suite(s)).collect();
    guests.push(GuestWant::exits_0(HELLO));
    guests.push(GuestWant::attacker(many_attack(spinner.attack())));
    for (name, _, on_reset) in MANY_HOSTILE {
        let mut w = GuestWant::attacker(many_attack(name));
        if on_reset == Some("restart") {
            w.restarts = MAX_RESTARTS;
        }
        guests.push(w);
    }
    Expectation::Together {
        guests,
        linux: None,
    }
}

/// The ISO of attack group `group` (0-based, of [`hostile::groups`]): the victim first,
/// then each attacker with its time limit when it never ends on its own.
pub fn attack_specs(group: usize, set: AttackSet) -> Vec<GuestSpec> {
    let mut v = vec![victim_spec(&format!("janus-attacks-{}", group + 1))];
    for a in set.attacks(group) {
        v.push(attacker_spec(a, hostile::limit_of(a), None));
    }
    v
}

/// The victim passes; every attacker ends as the table says.
pub fn attack_expectation(group: usize, set: AttackSet, qemu: bool) -> Expectation {
    let mut guests = vec![GuestWant::suite(VICTIM)];
    guests.extend(set.attacks(group).map(|a| GuestWant {
        end: hostile::end_on(a, qemu),
        ..GuestWant::attacker(a)
    }));
    Expectation::Together {
        guests,
        linux: None,
    }
}

/// The guests beside Linux on the Linux + suites ISO (after the Linux guest and its
/// initrd).
pub fn linux_neighbour_specs() -> Vec<GuestSpec> {
    let mut v: Vec<GuestSpec> = LINUX_NEIGHBOURS.iter().map(|s| suite_spec(s)).collect();
    v.push(victim_spec("janus-beside-linux"));
    v
}

/// Linux reaches userspace and ends; smoke, pic, lapic and the victim pass.
pub fn linux_expectation(linux: &'static str) -> Expectation {
    let mut guests: Vec<GuestWant> = LINUX_NEIGHBOURS
        .iter()
        .map(|s| GuestWant::suite(s))
        .collect();
    guests.push(GuestWant::suite(VICTIM));
    Expectation::Together {
        guests,
        linux: Some(linux),
    }
}

/// MiB of RAM the guests of `specs` ask for (`mem=`; 16 MiB when not given); a
/// `module-of=` module is no guest.
pub fn guest_mib(specs: &[GuestSpec]) -> u32 {
    specs
        .iter()
        .filter(|g| !g.keys.iter().any(|(k, _)| k == "module-of"))
        .map(|g| {
            let mem = g
                .keys
                .iter()
                .find(|(k, _)| k == "mem")
                .map(|(_, v)| v.as_str());
            match mem.and_then(|m| m.strip_suffix('M')) {
                Some(n) => n.parse().expect("mem= in MiB"),
                None => 16,
            }
        })
        .sum()
}
