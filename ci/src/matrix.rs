//! The test matrix: which CPU models to boot, what each must show, and the parallel runner.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::emulator::{self, Emulator};
use crate::iso::GuestSpec;
use crate::judge::{self, Expectation, Report};
use crate::together::{AttackSet, Spinner};
use crate::{bad_modules, bare, hostile, linux, together};

/// The guests `cargo janus test` boots when no `--guests` is given. `None` means all of
/// them: every suite in guests/src/bin, `hello`, and `linux` (the Linux rows). A list such
/// as `Some(&["smoke", "hello"])` restricts the matrix the way `--guests smoke,hello` does.
pub const DEFAULT_MATRIX_GUESTS: Option<&[&str]> = None;

/// Whether a failing Linux row fails `cargo janus test`. When false the Linux rows still
/// run and show in the table, marked "not required", but do not change the exit status.
pub const LINUX_ROWS_REQUIRED: bool = true;

/// The multiboot1 kernel every guest matrix run also boots.
pub const HELLO: &str = "hello";

/// The `--guests` name of the bad-modules rows (ISO build/hostile.iso).
pub const BAD: &str = "bad";

/// The `--guests` name of the many-guests rows (every suite and hello at once, with
/// hostile guests).
pub const MANY: &str = "many";

/// The `--guests` name of the attack rows (hostile.rs' attacks beside a victim).
pub const ATTACKS: &str = "attacks";

/// The CPU models of the rows whose guests run at once: one per emulator and vendor.
const MANY_MODELS: [&str; 3] = ["EPYC", "corei7_skylake_x", "ryzen"];
/// The hostile suite runs on one model of each emulator and vendor. On Bochs' AMD model
/// without two attacks the emulator cannot take ([`together::BOCHS_AMD_LEFT_OUT`]).
const ATTACK_MODELS: [&str; 3] = ["EPYC", "corei7_skylake_x", "ryzen"];
const BAD_MODELS: [&str; 2] = ["EPYC", "corei7_skylake_x"];
/// The host-SMP rows (issue #11): model and host CPU count, booting [`SMP_GUESTS`].
const SMP_ROWS: [(&str, u32); 6] = [
    ("EPYC", 2),
    ("EPYC", 4),
    ("corei7_skylake_x", 2),
    ("corei7_skylake_x", 4),
    ("ryzen", 2),
    ("ryzen", 4),
];
/// The suites of the host-SMP rows, and the `cpus=` of each: smoke and lapic are spread
/// round robin (CPUs 0 and 1), pic is pinned to CPU 1, and the smp suite, a guest of
/// [`SMP_SUITE_VCPUS`] vCPUs, to CPUs 0 and 1: its vCPUs run on both at once. Janus says
/// where each runs (`janus: guest NAME: runs on cpu N`, `... runs on cpus 0,1` for a
/// guest whose vCPUs spread), and the row checks it ([`smp_verdict`]).
const SMP_GUESTS: [(&str, Option<&str>, &str); 4] = [
    ("smoke", None, "cpu 0"),
    ("pic", Some("1"), "cpu 1"),
    ("lapic", None, "cpu 1"),
    (bare::SMP_SUITE, Some("0-1"), "cpus 0,1"),
];
/// vCPUs of the smp suite in the host-SMP rows (guest SMP, issue #11), and its
/// command line saying so.
const SMP_SUITE_VCPUS: &str = "2";
const SMP_SUITE_CMDLINE: &str = "cpus=2";
/// The models of the Linux rows.
const LINUX_MODELS: [&str; 4] = ["EPYC", "corei7_skylake_x", "ryzen", "phenom_8650_toliman"];
/// The models of the rows with a Linux guest of [`linux::SMP_VCPUS`] vCPUs (issue #11):
/// one per backend and emulator (AMD-V without NRIP save under QEMU, VT-x and AMD-V with
/// NRIP save under Bochs).
const LINUX_SMP_MODELS: [&str; 3] = ["EPYC", "corei7_skylake_x", "ryzen"];
/// The models of the rows where that guest's vCPUs run on 2 host CPUs at once.
const LINUX_PARALLEL_MODELS: [&str; 1] = ["EPYC"];

/// Emulator seconds per guest of a row whose guests run at once: about twice what one
/// guest takes alone (Bochs: the longest such row, corei7_skylake_x's attacks 4/4, took
/// 71 s for 22 guests, a fifth of this).
const QEMU_SECS_PER_GUEST: u64 = 5;
const BOCHS_SECS_PER_GUEST: u64 = 15;

/// Machine memory beyond the guests' own: Janus, GRUB's modules, 2 MiB alignment.
const HEADROOM_MIB: u32 = 128;

/// Guest memory of a suite guest.
pub const SUITE_MEM: &str = "16M";
pub const HELLO_MEM: &str = "8M";

/// Machine memory for the Linux rows: the 256 MiB guest plus Janus.
pub const LINUX_MACHINE_MIB: u32 = 512;
const LINUX_QEMU_TIMEOUT: u64 = 300;
/// Bochs took 130 s to reach the marker with no VMM in between; under Janus the rows take
/// 95 to 135 s (one vCPU or two).
const LINUX_BOCHS_TIMEOUT: u64 = 600;

/// The command line and multiboot modules of the suites that check them (guests/src/rt/
/// fixtures.rs, compiled here too so that the suites and their module lines agree).
// The suites read the fixtures' `bytes`; only the tests here do.
#[allow(dead_code)]
#[path = "../../guests/src/rt/fixtures.rs"]
pub mod fixtures;

/// The multiboot2 suite, and the multiboot1 suite linked below 1 MiB that reads fw_cfg.
pub const MB2: &str = "mb2";
pub const QEMUKERNEL: &str = "qemukernel";
/// The suites booted with [`fixtures`] (issue #10).
pub const FIXTURE_SUITES: [&str; 2] = [MB2, QEMUKERNEL];

/// The smp suite's command line as a guest of one vCPU (the guest ISO, the many-guests
/// rows): it then checks that the tables list that one CPU and its self-IPIs. Its rows
/// with several CPUs say `cpus=N` themselves ([`bare::Loader::Smp`]).
pub const SMP_ONE_CPU_CMDLINE: &str = "cpus=1";

/// Where the fixtures' module files are.
pub fn fixture_file(root: &Path, file: &str) -> PathBuf {
    root.join("guests/modules").join(file)
}

/// Suite `name` as a guest of its own name (`after` the guest before it, if any); a
/// fixture suite also gets the fixtures' command line and, after it, one
/// `module2 /guests/FILE module-of=NAME ARGS` line per module (the ARGS words are
/// `key=value`, written as keys). The smp suite gets [`SMP_ONE_CPU_CMDLINE`].
pub fn suite_specs(name: &str, after: Option<&str>) -> Vec<GuestSpec> {
    let mut keys = vec![("name", name), ("mem", SUITE_MEM)];
    keys.extend(after.map(|p| ("after", p)));
    if name == bare::SMP_SUITE {
        keys.push(("cmdline", SMP_ONE_CPU_CMDLINE));
    }
    if !FIXTURE_SUITES.contains(&name) {
        return vec![GuestSpec::with_keys(PathBuf::from(name), &keys)];
    }
    keys.push(("cmdline", fixtures::CMDLINE));
    let mut v = vec![GuestSpec::with_keys(PathBuf::from(name), &keys)];
    let root = crate::workspace_root();
    for m in fixtures::MODULES {
        let mut keys = vec![("module-of", name)];
        keys.extend(m.args.split_whitespace().filter_map(|w| w.split_once('=')));
        v.push(GuestSpec::with_keys(fixture_file(&root, m.file), &keys));
    }
    v
}

/// The test suites: the binaries of the guests crate, i.e. the stems of
/// guests/src/bin/*.rs (and guests/src/bin/NAME/main.rs), sorted, `smoke` first.
pub fn discover_suites(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("guests/src/bin");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = if path.is_dir() && path.join("main.rs").is_file() {
            path.file_name().map(|s| s.to_string_lossy().into_owned())
        } else if path.extension().is_some_and(|e| e == "rs") && path.is_file() {
            path.file_stem().map(|s| s.to_string_lossy().into_owned())
        } else {
            None
        };
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            names.push(name);
        }
    }
    sort_suites(&mut names);
    if names.is_empty() {
        return Err(format!("no test suites in {}", dir.display()));
    }
    Ok(names)
}

fn sort_suites(names: &mut [String]) {
    names.sort_by(|a, b| (a != "smoke", a).cmp(&(b != "smoke", b)));
}

/// Which guests a matrix run boots.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Suite guests (each runs suite NAME as guest NAME).
    pub suites: Vec<String>,
    pub hello: bool,
    /// The Linux rows (a separate ISO).
    pub linux: bool,
    /// With `linux`, when its suites exist: the Linux + suites row.
    pub linux_suites: bool,
    /// The bad-modules rows (a separate ISO; `bad`).
    pub bad: bool,
    /// The suites of the many-guests rows (`many`: every suite); empty: no such rows.
    pub many: Vec<String>,
    /// The attack rows (`attacks`).
    pub attacks: bool,
}

impl Plan {
    /// `selection`: guest names (`--guests`); None means everything. `all` names every
    /// guest too. `bad` is the bad-modules rows; they need the smoke suite. `many` and
    /// `attacks` need the hostile guest (and `attacks` the victim).
    pub fn new(available: &[String], selection: Option<&[String]>) -> Result<Plan, String> {
        let has = |n: &str| available.iter().any(|a| a == n);
        let has_many = has(together::HOSTILE);
        let has_attacks = has(together::HOSTILE) && has(hostile::VICTIM);
        let has_neighbours =
            has(hostile::VICTIM) && together::LINUX_NEIGHBOURS.iter().all(|n| has(n));
        let Some(selection) = selection.filter(|s| !s.iter().any(|n| n == "all")) else {
            return Ok(Plan {
                suites: available.to_vec(),
                hello: true,
                linux: true,
                linux_suites: has_neighbours,
                bad: has(bad_modules::GOOD),
                many: if has_many {
                    available.to_vec()
                } else {
                    Vec::new()
                },
                attacks: has_attacks,
            });
        };
        let mut plan = Plan {
            suites: Vec::new(),
            hello: false,
            linux: false,
            linux_suites: false,
            bad: false,
            many: Vec::new(),
            attacks: false,
        };
        let needs = |what: &str, bins: &str| format!("`{what}` needs {bins} in guests/src/bin");
        for name in selection {
            match name.as_str() {
                HELLO => plan.hello = true,
                linux::GUEST => plan.linux = true,
                BAD if has(bad_modules::GOOD) => plan.bad = true,
                BAD => return Err(needs(BAD, bad_modules::GOOD)),
                MANY if has_many => plan.many = available.to_vec(),
                MANY => return Err(needs(MANY, together::HOSTILE)),
                ATTACKS if has_attacks => plan.attacks = true,
                ATTACKS => return Err(needs(ATTACKS, "hostile and victim")),
                n if available.iter().any(|a| a == n) => {
                    if !plan.suites.iter().any(|s| s == n) {
                        plan.suites.push(n.to_string());
                    }
                }
                n => {
                    return Err(format!(
                    "unknown guest `{n}` (known: {}, {HELLO}, {}, {BAD}, {MANY}, {ATTACKS}, all)",
                    available.join(", "),
                    linux::GUEST
                ))
                }
            }
        }
        sort_suites(&mut plan.suites);
        plan.linux_suites = plan.linux && has_neighbours;
        let together = !plan.many.is_empty() || plan.attacks;
        if plan.suites.is_empty() && !plan.hello && !plan.linux && !plan.bad && !together {
            return Err("no guests selected".into());
        }
        Ok(plan)
    }

    /// The default plan: [`DEFAULT_MATRIX_GUESTS`].
    pub fn default_selection() -> Option<Vec<String>> {
        DEFAULT_MATRIX_GUESTS.map(|l| l.iter().map(|s| s.to_string()).collect())
    }

    /// The guests of the guest ISO, in boot order (suites, then hello).
    pub fn guest_names(&self) -> Vec<String> {
        let mut v = self.suites.clone();
        if self.hello {
            v.push(HELLO.into());
        }
        v
    }

    /// Whether there is anything for the guest ISO.
    pub fn has_guest_rows(&self) -> bool {
        !self.guest_names().is_empty()
    }

    /// The specs of the guest ISO (built-in names; `prepare` resolves them to files):
    /// `module2 /guests/NAME name=NAME mem=16M` per suite ([`suite_specs`]: with their
    /// modules for the fixture suites), then hello.
    /// The suites one after another (`after=` the previous one): each suite is a
    /// functional test of the platform that times itself, so it runs alone; the rows
    /// where guests run at once are the many-guests and attack rows.
    pub fn guest_specs(&self) -> Vec<GuestSpec> {
        let mut v: Vec<GuestSpec> = Vec::new();
        let mut previous: Option<&str> = None;
        for n in &self.suites {
            v.extend(suite_specs(n, previous));
            previous = Some(n);
        }
        if self.hello {
            v.push(GuestSpec::with_keys(
                PathBuf::from(HELLO),
                &[("name", HELLO), ("mem", HELLO_MEM)],
            ));
        }
        v
    }

    fn pass(
        &self,
        vendor: &'static str,
        backend: &'static str,
        features: &'static [(&'static str, &'static str)],
    ) -> Expectation {
        Expectation::Pass {
            vendor,
            backend,
            features,
            guests: self.guest_names(),
            suites: judge::own_suites(&self.suites),
        }
    }
}

/// Which ISO a row boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoKind {
    /// build/matrix.iso: the suites and hello, one after another.
    Guests,
    /// build/linux.iso: only the Linux guest.
    Linux,
    /// build/linux-suites.iso: the Linux guest beside smoke, pic, lapic and a victim.
    LinuxSuites,
    /// build/linux-smp.iso: only the Linux guest, with [`linux::SMP_VCPUS`] vCPUs.
    LinuxSmp,
    /// build/hostile.iso: the smoke guest, then bad modules ([`bad_modules::specs`]).
    Bad,
    /// build/many.iso (build/many-sti.iso with the spinner that keeps interrupts on):
    /// every suite, hello and hostile guests at once.
    Many(Spinner),
    /// build/attacksN.iso: attack group N-1 of [`hostile::groups`] beside a victim
    /// (build/attacksN-bochs-amd.iso without [`together::BOCHS_AMD_LEFT_OUT`]).
    Attacks(usize, AttackSet),
    /// build/smp.iso: [`SMP_GUESTS`], for the rows with several host CPUs.
    Smp,
    /// build/bare.iso: a suite without Janus ([`bare`]; QEMU's -kernel boots its kernel
    /// and not the ISO's).
    Bare(bare::Loader),
}

impl IsoKind {
    /// The file name's stem of the ISO and the prefix of its rows' logs.
    pub fn stem(self) -> String {
        match self {
            IsoKind::Guests => "matrix".into(),
            IsoKind::Linux => "linux".into(),
            IsoKind::LinuxSuites => "linux-suites".into(),
            IsoKind::LinuxSmp => "linux-smp".into(),
            IsoKind::Bad => "bad".into(),
            IsoKind::Many(Spinner::InterruptsOff) => "many".into(),
            IsoKind::Many(Spinner::InterruptsOn) => "many-sti".into(),
            IsoKind::Attacks(g, AttackSet::All) => format!("attacks{}", g + 1),
            IsoKind::Attacks(g, AttackSet::BochsAmd) => format!("attacks{}-bochs-amd", g + 1),
            IsoKind::Smp => "smp".into(),
            IsoKind::Bare(l) => l.stem(),
        }
    }

    /// Whether the ISO holds the Linux guest.
    pub fn has_linux(self) -> bool {
        matches!(
            self,
            IsoKind::Linux | IsoKind::LinuxSuites | IsoKind::LinuxSmp
        )
    }

    /// The ISO's path: build/STEM.iso (build/hostile.iso for the bad modules, one
    /// build/bare.iso for the bare rows).
    pub fn path(self, root: &Path) -> PathBuf {
        match self {
            IsoKind::Bad => root.join("build/hostile.iso"),
            IsoKind::Bare(_) => root.join("build/bare.iso"),
            k => root.join(format!("build/{}.iso", k.stem())),
        }
    }
}

/// The ISOs of a run; a row whose ISO is missing fails with a reason.
#[derive(Debug, Clone, Default)]
pub struct Isos(Vec<(IsoKind, PathBuf)>);

impl Isos {
    fn get(&self, kind: IsoKind) -> Option<&Path> {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.as_path())
    }
}

/// The modules of `kind`'s ISO (built-in names; `prepare` resolves them to files). May
/// fetch Linux or write the bad files.
fn iso_specs(root: &Path, plan: &Plan, kind: IsoKind) -> Result<Vec<GuestSpec>, String> {
    Ok(match kind {
        IsoKind::Guests => {
            eprintln!("cargo janus: guests: {}", plan.guest_names().join(", "));
            plan.guest_specs()
        }
        IsoKind::Linux | IsoKind::LinuxSuites | IsoKind::LinuxSmp => {
            let assets = linux::assets(root)?;
            eprintln!(
                "cargo janus: Linux guest: {} + build/linux/initramfs.cpio",
                assets.kernel_name
            );
            match kind {
                IsoKind::LinuxSmp => assets.smp_guest_specs(linux::SMP_VCPUS),
                IsoKind::LinuxSuites => {
                    let mut v = assets.guest_specs();
                    v.extend(together::linux_neighbour_specs());
                    v
                }
                _ => assets.guest_specs(),
            }
        }
        IsoKind::Bad => {
            eprintln!(
                "cargo janus: bad modules: {} and a smoke guest",
                bad_modules::HOSTILE_DIR
            );
            bad_modules::guests(root)?
        }
        IsoKind::Many(s) => together::many_specs(&plan.many, s),
        IsoKind::Attacks(g, set) => together::attack_specs(g, set),
        IsoKind::Smp => smp_specs(),
        IsoKind::Bare(_) => Vec::new(),
    })
}

/// Builds the ISO of every kind `rows` boot.
pub fn build_isos(
    root: &Path,
    plan: &Plan,
    rows: &[Row],
    needs: &[crate::setup::Need],
) -> Result<Isos, String> {
    let mut isos = Isos::default();
    for row in rows {
        if isos.get(row.iso).is_some() {
            continue;
        }
        let iso = row.iso.path(root);
        let built = isos.0.iter().any(|(_, p)| *p == iso);
        match row.iso {
            IsoKind::Bare(_) if built => {}
            IsoKind::Bare(_) => {
                crate::setup::ensure(needs)?;
                bare::make_iso(root, &iso)?;
            }
            k => {
                crate::prepare(root, &iso_specs(root, plan, k)?, &iso, needs)?;
            }
        }
        isos.0.push((row.iso, iso));
    }
    Ok(isos)
}

/// One emulated CPU and what Janus must do on it.
#[derive(Debug, Clone)]
pub struct Row {
    /// What the table shows: the model, plus ` (linux)`, ` (many guests)`, ... for the
    /// rows that do not boot the guest ISO.
    pub label: String,
    pub model: &'static str,
    pub iso: IsoKind,
    pub expect: Expectation,
    pub memory_mib: u32,
    /// Host CPUs of the emulated machine; with more than one the log must report them
    /// all online ([`smp_verdict`]).
    pub cpus: u32,
    pub timeout: Duration,
    /// Whether a failure fails the matrix ([`LINUX_ROWS_REQUIRED`] for Linux rows).
    pub required: bool,
}

impl Row {
    pub fn emulator(&self) -> Emulator {
        Emulator::for_model(self.model)
    }

    /// The serial log's file name (also names the Bochs files): `EPYC.log`, `linux-EPYC.log`,
    /// `bad-EPYC.log`, `attacks2-EPYC.log`, ...
    pub fn log_name(&self) -> String {
        let model = emulator::sanitize(self.model);
        match self.iso {
            IsoKind::Guests => format!("{model}.log"),
            // One ISO, rows with 2 and 4 host CPUs.
            IsoKind::Smp => format!("smp{}-{model}.log", self.cpus),
            IsoKind::LinuxSmp if self.cpus > 1 => {
                format!("linux-smp-cpus{}-{model}.log", self.cpus)
            }
            k => format!("{}-{model}.log", k.stem()),
        }
    }

    /// A row of the guest ISO, whose guests (loaded at once, run one after another) need
    /// `memory_mib` ([`memory_for`] the plan's guest specs).
    fn guests(model: &'static str, expect: Expectation, memory_mib: u32) -> Row {
        let emulator = Emulator::for_model(model);
        Row {
            label: model.to_string(),
            model,
            iso: IsoKind::Guests,
            expect,
            memory_mib,
            cpus: 1,
            timeout: Duration::from_secs(emulator.default_timeout_secs()),
            required: true,
        }
    }

    /// [`SMP_SUITE`] on a machine with `cpus` host CPUs.
    fn smp(model: &'static str, cpus: u32, expect: Expectation) -> Row {
        let emulator = Emulator::for_model(model);
        Row {
            label: format!("{model} ({cpus} CPUs)"),
            model,
            iso: IsoKind::Smp,
            expect,
            memory_mib: memory_for(&smp_specs()),
            cpus,
            // Bochs runs its CPUs in turn: more CPUs, slower each, but the guests of these
            // rows run on two of them (`SMP_GUESTS`).
            timeout: Duration::from_secs(emulator.default_timeout_secs() * cpus.min(2) as u64),
            required: true,
        }
    }

    fn bad(model: &'static str) -> Row {
        let emulator = Emulator::for_model(model);
        Row {
            label: format!("{model} (bad modules)"),
            model,
            iso: IsoKind::Bad,
            expect: bad_modules::expectation(),
            memory_mib: emulator::DEFAULT_MEMORY_MIB,
            cpus: 1,
            timeout: Duration::from_secs(emulator.default_timeout_secs()),
            required: true,
        }
    }

    /// A row whose guests (`specs`) run at once: memory for all of them, and time for
    /// each.
    fn together(
        model: &'static str,
        what: &str,
        iso: IsoKind,
        specs: &[GuestSpec],
        expect: Expectation,
    ) -> Row {
        let emulator = Emulator::for_model(model);
        let per_guest = match emulator {
            Emulator::Qemu => QEMU_SECS_PER_GUEST,
            Emulator::Bochs => BOCHS_SECS_PER_GUEST,
        };
        let secs = (per_guest * specs.len() as u64).max(emulator.default_timeout_secs());
        Row {
            label: format!("{model} ({what})"),
            model,
            iso,
            expect,
            memory_mib: memory_for(specs),
            cpus: 1,
            timeout: Duration::from_secs(secs),
            required: true,
        }
    }

    fn many(model: &'static str, suites: &[String]) -> Row {
        let spinner = Spinner::for_model(model);
        let specs = together::many_specs(suites, spinner);
        let expect = together::many_expectation(suites, spinner);
        Row::together(model, "many guests", IsoKind::Many(spinner), &specs, expect)
    }

    fn attacks(model: &'static str, group: usize, groups: usize) -> Row {
        let what = format!("attacks {}/{groups}", group + 1);
        let set = AttackSet::for_model(model);
        let specs = together::attack_specs(group, set);
        let qemu = Emulator::for_model(model) == Emulator::Qemu;
        let expect = together::attack_expectation(group, set, qemu);
        Row::together(model, &what, IsoKind::Attacks(group, set), &specs, expect)
    }

    /// Linux beside suites: the Linux row's time, and memory for the others too.
    fn linux_suites(model: &'static str) -> Row {
        let mut row = Row::linux(model);
        let others = together::guest_mib(&together::linux_neighbour_specs());
        row.label = format!("{model} (linux + suites)");
        row.iso = IsoKind::LinuxSuites;
        row.expect = together::linux_expectation(linux::GUEST);
        row.memory_mib = LINUX_MACHINE_MIB + others;
        row
    }

    /// Linux with [`linux::SMP_VCPUS`] vCPUs: it must see them all and tick on each.
    fn linux_smp(model: &'static str) -> Row {
        // Its vCPUs share one host CPU: 133 s against 107 s for the one-vCPU row on
        // corei7_skylake_x (503 s against 118 s before Linux kept the TSC), well within
        // the one-vCPU row's timeout.
        let mut row = Row::linux(model);
        row.label = format!("{model} (linux, {} vCPUs)", linux::SMP_VCPUS);
        row.iso = IsoKind::LinuxSmp;
        row.expect = Expectation::Linux {
            guest: linux::GUEST,
            cpus: linux::SMP_VCPUS,
            tsc_clock: linux::keeps_tsc(model),
        };
        row
    }

    /// Linux with [`linux::SMP_VCPUS`] vCPUs on as many host CPUs: they run at once.
    fn linux_parallel(model: &'static str) -> Row {
        let mut row = Row::linux_smp(model);
        row.cpus = linux::SMP_VCPUS as u32;
        row.label = format!(
            "{model} (linux, {} vCPUs on {} CPUs)",
            linux::SMP_VCPUS,
            linux::SMP_VCPUS
        );
        row
    }

    /// A suite without Janus on QEMU EPYC ([`bare`]).
    fn bare(loader: bare::Loader) -> Row {
        let model = "EPYC";
        let emulator = Emulator::for_model(model);
        Row {
            label: format!("{model} ({})", loader.what()),
            model,
            iso: IsoKind::Bare(loader),
            expect: Expectation::Bare {
                suite: loader.suite().into(),
            },
            memory_mib: emulator::DEFAULT_MEMORY_MIB,
            cpus: loader.cpus(),
            timeout: Duration::from_secs(emulator.default_timeout_secs()),
            required: true,
        }
    }

    /// Bochs' emulated clock for this row: [`emulator::BOCHS_IPS`] per vCPU of the Linux
    /// guest that shares a host CPU with others. Linux's 2 vCPUs taking turns on one
    /// emulated CPU each get a part of it, and Linux's soft-lockup watchdog counts the
    /// other's turns against a busy one (as on any overcommitted host): at 10 M its W+X
    /// check, 186 M instructions that never yield, took 26 s on ryzen and tripped the
    /// 20 s watchdog. So each vCPU gets what the one-vCPU rows' vCPU gets.
    pub fn bochs_ips(&self) -> u64 {
        match self.expect {
            Expectation::Linux { cpus, .. } => {
                emulator::BOCHS_IPS * u64::from(cpus).div_ceil(u64::from(self.cpus.max(1)))
            }
            _ => emulator::BOCHS_IPS,
        }
    }

    /// Host CPUs Janus must report online ([`smp_verdict`]): none for a bare row, which
    /// runs no Janus.
    pub fn janus_cpus(&self) -> u32 {
        match self.iso {
            IsoKind::Bare(_) => 1,
            _ => self.cpus,
        }
    }

    fn linux(model: &'static str) -> Row {
        let timeout = match Emulator::for_model(model) {
            Emulator::Qemu => LINUX_QEMU_TIMEOUT,
            Emulator::Bochs => LINUX_BOCHS_TIMEOUT,
        };
        Row {
            label: format!("{model} (linux)"),
            model,
            iso: IsoKind::Linux,
            expect: Expectation::Linux {
                guest: linux::GUEST,
                cpus: 1,
                tsc_clock: linux::keeps_tsc(model),
            },
            memory_mib: LINUX_MACHINE_MIB,
            cpus: 1,
            timeout: Duration::from_secs(timeout),
            required: LINUX_ROWS_REQUIRED,
        }
    }
}

/// The rows of a plan, longest first: the Linux rows, the attack rows, the many-guests
/// rows, the bad-modules rows, the guest rows, then the bare rows (suites without Janus).
/// The emulated machine's memory for guests `specs` loaded at once: theirs, Janus'
/// headroom, in 64 MiB steps, never below the default.
fn memory_for(specs: &[GuestSpec]) -> u32 {
    (together::guest_mib(specs) + HEADROOM_MIB)
        .next_multiple_of(64)
        .max(emulator::DEFAULT_MEMORY_MIB)
}

pub fn rows(plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    if plan.linux {
        // The longest first: Linux with 2 vCPUs, then one per emulator and vendor, and
        // AMD-V without NRIP save under Bochs too (with the shorter exit path of issue #9,
        // 110-120 s each there).
        rows.extend(LINUX_SMP_MODELS.map(Row::linux_smp));
        rows.extend(LINUX_PARALLEL_MODELS.map(Row::linux_parallel));
        for m in LINUX_MODELS {
            rows.push(Row::linux(m));
        }
        if plan.linux_suites {
            rows.push(Row::linux_suites("EPYC"));
        }
    }
    if plan.attacks {
        let groups = hostile::groups().len();
        for m in ATTACK_MODELS {
            rows.extend((0..groups).map(|g| Row::attacks(m, g, groups)));
        }
    }
    if !plan.many.is_empty() {
        rows.extend(MANY_MODELS.map(|m| Row::many(m, &plan.many)));
    }
    if plan.bad {
        rows.extend(BAD_MODELS.map(Row::bad));
    }
    if !plan.has_guest_rows() {
        return rows;
    }
    let mib = memory_for(&plan.guest_specs());
    let amd_qemu = plan.pass("AMD", "svm", &[("npt", "yes"), ("nrip", "no")]);
    let amd_nrip = plan.pass("AMD", "svm", &[("npt", "yes"), ("nrip", "yes")]);
    // Virtual-interrupt delivery on Bochs' Haswell and later; Sandy Bridge keeps VT-x's
    // injected interrupts in the matrix.
    let intel = plan.pass(
        "Intel",
        "vmx",
        &[("ept", "yes"), ("unrestricted", "yes"), ("vid", "yes")],
    );
    let intel_injecting = plan.pass(
        "Intel",
        "vmx",
        &[("ept", "yes"), ("unrestricted", "yes"), ("vid", "no")],
    );
    for m in ["EPYC", "EPYC-Rome", "Opteron_G5", "phenom"] {
        rows.push(Row::guests(m, amd_qemu.clone(), mib));
    }
    rows.push(Row::guests(
        "qemu64",
        Expectation::Refused {
            reason_contains: "nested paging",
        },
        mib,
    ));
    rows.push(Row::guests(
        "qemu64,-svm",
        Expectation::Refused {
            reason_contains: "no hardware virtualization",
        },
        mib,
    ));
    for m in [
        "corei7_sandy_bridge_2600k",
        "corei7_haswell_4770",
        "corei7_skylake_x",
        "corei7_icelake_u",
        "tigerlake",
    ] {
        let expect = if m == "corei7_sandy_bridge_2600k" {
            &intel_injecting
        } else {
            &intel
        };
        rows.push(Row::guests(m, expect.clone(), mib));
    }
    for m in ["ryzen", "zambezi", "trinity_apu"] {
        rows.push(Row::guests(m, amd_nrip.clone(), mib));
    }
    rows.push(Row::guests("phenom_8650_toliman", amd_qemu.clone(), mib));
    let has = |n: &str| plan.suites.iter().any(|s| s == n);
    if SMP_GUESTS.iter().all(|(n, _, _)| has(n)) {
        let names: Vec<String> = SMP_GUESTS.iter().map(|(n, _, _)| n.to_string()).collect();
        for (m, cpus) in SMP_ROWS {
            let base = match Emulator::for_model(m) {
                Emulator::Qemu => &amd_qemu,
                Emulator::Bochs if together::BOCHS_AMD_MODELS.contains(&m) => &amd_nrip,
                Emulator::Bochs => &intel,
            };
            let Expectation::Pass {
                vendor,
                backend,
                features,
                ..
            } = base.clone()
            else {
                continue;
            };
            let expect = Expectation::Pass {
                vendor,
                backend,
                features,
                guests: names.clone(),
                suites: judge::own_suites(&names),
            };
            rows.push(Row::smp(m, cpus, expect));
        }
    }
    // The suites that test a protocol also run without Janus, under the loader they
    // were written for.
    for loader in bare::LOADERS {
        if plan.suites.iter().any(|s| s == loader.suite()) {
            rows.push(Row::bare(loader));
        }
    }
    rows
}

/// A finished row.
#[derive(Debug)]
pub struct RowResult {
    pub row: Row,
    pub report: Report,
    pub seconds: f64,
    /// Ok, or a short reason.
    pub verdict: Result<(), String>,
    pub log: PathBuf,
    /// Why the first boot failed, when the row was booted a second time
    /// ([`boots_again`]); its logs are kept beside the second's (`ROW.1st.log`).
    pub first_boot: Option<String>,
}

/// Runs one row: boots its ISO, judges the log; boots it once more after an emulator
/// fault that the architecture rules out ([`boots_again`]).
pub fn run_row(root: &Path, isos: &Isos, row: Row) -> RowResult {
    let first = run_row_once(root, isos, row);
    let Err(why) = &first.verdict else {
        return first;
    };
    if !boots_again(&first.row, emulator::qemu_triple_fault(&first.log)) {
        return first;
    }
    let why = why.clone();
    keep_first_boot_logs(&first.log);
    let mut second = run_row_once(root, isos, first.row);
    second.first_boot = Some(why);
    second
}

/// Whether a row that failed is booted a second time: a QEMU row with several host CPUs
/// whose boot ended in a triple fault (`triple_fault`). QEMU 7.2's TCG now and then
/// faults every host access of a CPU right after a #VMEXIT with `-smp` (about 1 boot in
/// 400 of the host-SMP row): read out at the fault, that CPU's control registers were the
/// other CPUs' and Janus' page tables intact and mapping what it faulted on
/// (docs/testing.md, "Host SMP rows"). A fault of Janus' own would come back on the
/// second boot; the table says the row needed one (`pass (2nd boot ...)`).
pub fn boots_again(row: &Row, triple_fault: bool) -> bool {
    row.emulator() == Emulator::Qemu && row.cpus > 1 && triple_fault
}

/// Renames the first boot's serial log and QEMU log to `ROW.1st.log` and `ROW.1st.qemu`.
fn keep_first_boot_logs(log: &Path) {
    for from in [log.to_path_buf(), emulator::qemu_debug_log(log)] {
        let ext = from.extension().map(|e| e.to_string_lossy().into_owned());
        let to = from.with_extension(format!("1st.{}", ext.unwrap_or_default()));
        let _ = std::fs::rename(&from, &to);
    }
}

fn run_row_once(root: &Path, isos: &Isos, row: Row) -> RowResult {
    let emulator = row.emulator();
    let log = root.join("build/logs").join(row.log_name());
    let timeout = row.timeout;
    let Some(iso) = isos.get(row.iso) else {
        let verdict = Err(format!("no {:?} ISO was built", row.iso));
        return RowResult {
            row,
            report: Report::default(),
            seconds: 0.0,
            verdict,
            log,
            first_boot: None,
        };
    };
    let qemu_args = match row.iso {
        IsoKind::Bare(loader) => loader.qemu_args(root),
        _ => Vec::new(),
    };
    let run = emulator::Boot {
        emulator,
        model: row.model,
        memory_mib: row.memory_mib,
        cpus: row.cpus,
        ips: row.bochs_ips(),
        iso,
        log: &log,
        timeout,
        stream: false,
        icount: false,
        qemu_args: &qemu_args,
    };
    match emulator::boot(root, &run) {
        Ok(outcome) => {
            let report = judge::parse_for(&row.expect, &outcome.serial);
            let verdict = judge::judge(&row.expect, &report);
            let verdict = verdict
                .and_then(|()| smp_verdict(row.janus_cpus(), &outcome.serial))
                .map_err(|reason| {
                    if outcome.timed_out {
                        format!("timeout ({} s): {reason}", timeout.as_secs())
                    } else {
                        // The emulator ended on its own: how (a triple fault, Janus' end
                        // code, a crash of the emulator) is what the serial log cannot say.
                        let how = emulator::ending(
                            emulator,
                            outcome.exit_code,
                            &log,
                            &outcome.output_file,
                        );
                        format!("{reason}; {how}")
                    }
                });
            RowResult {
                row,
                report,
                seconds: outcome.seconds,
                verdict,
                log,
                first_boot: None,
            }
        }
        Err(e) => RowResult {
            row,
            report: Report::default(),
            seconds: 0.0,
            verdict: Err(e),
            log,
            first_boot: None,
        },
    }
}

/// The guests of the host-SMP ISO ([`SMP_GUESTS`]).
fn smp_specs() -> Vec<GuestSpec> {
    SMP_GUESTS
        .iter()
        .map(|&(name, cpus, _)| {
            let mut keys = vec![("name", name), ("mem", SUITE_MEM)];
            keys.extend(cpus.map(|c| ("cpus", c)));
            if name == bare::SMP_SUITE {
                keys.extend([("vcpus", SMP_SUITE_VCPUS), ("cmdline", SMP_SUITE_CMDLINE)]);
            }
            GuestSpec::with_keys(PathBuf::from(name), &keys)
        })
        .collect()
}

/// With `cpus` host CPUs, the log must say `janus: smp: N of N CPUs online` (boot/src/
/// smp.rs) for N = `cpus`, and, for the host-SMP ISO's guests, where each ran.
pub fn smp_verdict(cpus: u32, log: &str) -> Result<(), String> {
    if cpus <= 1 {
        return Ok(());
    }
    for (name, _, cpu) in SMP_GUESTS {
        let want = format!("janus: guest {name}: runs on {cpu}");
        let said = log.lines().find_map(|l| {
            l.trim_end()
                .strip_prefix(&format!("janus: guest {name}: runs on "))
                .map(|c| c.to_string())
        });
        match said {
            Some(c) if c == *cpu => {}
            Some(c) => return Err(format!("{name} ran on {c}, not {cpu}")),
            // Rows of other ISOs do not boot these guests.
            None if !log.contains(&format!("janus: guest {name}: loaded")) => {}
            None => return Err(format!("no `{want}` line")),
        }
    }
    let line = log.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix("janus: smp: ")?
            .strip_suffix(" CPUs online")
    });
    let want = format!("{cpus} of {cpus}");
    match line {
        Some(l) if l == want => Ok(()),
        Some(l) => Err(format!("{l} CPUs online, not {want}")),
        None => Err("no `janus: smp: N of N CPUs online` line".into()),
    }
}

/// Runs `rows` on `jobs` threads, printing a progress line as each finishes. Results come
/// back in matrix order.
pub fn run_all(root: &Path, isos: &Isos, rows: Vec<Row>, jobs: usize) -> Vec<RowResult> {
    let total = rows.len();
    let queue = Arc::new(Mutex::new(
        rows.into_iter().enumerate().collect::<Vec<_>>().into_iter(),
    ));
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for _ in 0..jobs.clamp(1, total.max(1)) {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        let root = root.to_path_buf();
        let isos = isos.clone();
        workers.push(std::thread::spawn(move || loop {
            let next = queue.lock().unwrap().next();
            let Some((i, row)) = next else { break };
            if tx.send((i, run_row(&root, &isos, row))).is_err() {
                break;
            }
        }));
    }
    drop(tx);
    let mut results: Vec<Option<RowResult>> = (0..total).map(|_| None).collect();
    for (done, (i, result)) in rx.iter().enumerate() {
        eprintln!("{}", progress_line(done + 1, total, &result));
        results[i] = Some(result);
    }
    for w in workers {
        let _ = w.join();
    }
    results.into_iter().flatten().collect()
}

/// `[3/14] EPYC (qemu): pass 1.2 s`
pub fn progress_line(n: usize, total: usize, r: &RowResult) -> String {
    format!(
        "[{n}/{total}] {} ({}): {} {:.1} s",
        r.row.label,
        r.row.emulator().name(),
        crate::table::result_text(r),
        r.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn all_suites() -> Vec<String> {
        names(&[
            "smoke",
            "exceptions",
            "exitcost",
            "hostile",
            "ioapic",
            "lapic",
            "mmio",
            "pic",
            "pit",
            "policy",
            "smp",
            "uart",
            "victim",
        ])
    }

    #[test]
    fn intel_rows_expect_virtual_interrupts_but_on_sandy_bridge() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let vid = |label: &str| {
            let row = rows(&plan).into_iter().find(|r| r.label == label).unwrap();
            match row.expect {
                Expectation::Pass { features, .. } => {
                    features.iter().find(|(k, _)| *k == "vid").map(|(_, v)| *v)
                }
                _ => None,
            }
        };
        assert_eq!(vid("corei7_sandy_bridge_2600k"), Some("no"));
        for m in ["corei7_haswell_4770", "corei7_skylake_x", "tigerlake"] {
            assert_eq!(vid(m), Some("yes"), "{m}");
        }
        assert_eq!(vid("EPYC"), None);
    }

    #[test]
    fn only_a_qemu_row_with_several_host_cpus_boots_again_and_only_after_a_triple_fault() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let rows = rows(&plan);
        let qemu_smp = rows
            .iter()
            .find(|r| r.emulator() == Emulator::Qemu && r.cpus > 1)
            .unwrap();
        let bochs_smp = rows
            .iter()
            .find(|r| r.emulator() == Emulator::Bochs && r.cpus > 1)
            .unwrap();
        let qemu_one = rows
            .iter()
            .find(|r| r.emulator() == Emulator::Qemu && r.cpus == 1)
            .unwrap();
        assert!(boots_again(qemu_smp, true), "{}", qemu_smp.label);
        assert!(
            !boots_again(qemu_smp, false),
            "another failure counts at once"
        );
        assert!(!boots_again(bochs_smp, true), "{}", bochs_smp.label);
        assert!(!boots_again(qemu_one, true), "{}", qemu_one.label);
    }

    #[test]
    fn the_first_boots_logs_are_kept_beside_the_second() {
        let dir = std::env::temp_dir().join(format!("janus-first-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("smp4-EPYC.log");
        std::fs::write(&log, "first serial").unwrap();
        std::fs::write(emulator::qemu_debug_log(&log), "Triple fault\n").unwrap();
        assert!(emulator::qemu_triple_fault(&log));
        keep_first_boot_logs(&log);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert_eq!(read("smp4-EPYC.1st.log"), "first serial");
        assert_eq!(read("smp4-EPYC.1st.qemu"), "Triple fault\n");
        assert!(!log.exists() && !emulator::qemu_triple_fault(&log));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn vcpus_that_share_a_bochs_cpu_get_its_clock_each() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let rows = rows(&plan);
        let ips = |label: &str| {
            rows.iter()
                .find(|r| r.label == label)
                .unwrap_or_else(|| panic!("no row {label}"))
                .bochs_ips()
        };
        assert_eq!(ips("ryzen (linux)"), emulator::BOCHS_IPS);
        assert_eq!(ips("ryzen (linux, 2 vCPUs)"), 2 * emulator::BOCHS_IPS);
        assert_eq!(
            ips("corei7_skylake_x (linux, 2 vCPUs)"),
            2 * emulator::BOCHS_IPS
        );
        assert_eq!(ips("EPYC (linux, 2 vCPUs on 2 CPUs)"), emulator::BOCHS_IPS);
        assert_eq!(ips("corei7_skylake_x"), emulator::BOCHS_IPS);
    }

    #[test]
    fn matrix_shape() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let rows = rows(&plan);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        // 15 guest rows, the 6 host-SMP rows and the smp suite's 2 bare rows.
        assert_eq!(rows.len(), 9 + 12 + 3 + 2 + 15 + 6 + 2, "{labels:#?}");
        // The Linux rows come first: they take longest. Then the guests at once, then the
        // bad modules.
        assert_eq!(
            labels[..12],
            [
                "EPYC (linux, 2 vCPUs)",
                "corei7_skylake_x (linux, 2 vCPUs)",
                "ryzen (linux, 2 vCPUs)",
                "EPYC (linux, 2 vCPUs on 2 CPUs)",
                "EPYC (linux)",
                "corei7_skylake_x (linux)",
                "ryzen (linux)",
                "phenom_8650_toliman (linux)",
                "EPYC (linux + suites)",
                "EPYC (attacks 1/4)",
                "EPYC (attacks 2/4)",
                "EPYC (attacks 3/4)"
            ]
        );
        assert_eq!(labels[13], "corei7_skylake_x (attacks 1/4)");
        assert_eq!(labels[16], "corei7_skylake_x (attacks 4/4)");
        assert_eq!(labels[17], "ryzen (attacks 1/4)");
        assert_eq!(labels[20], "ryzen (attacks 4/4)");
        assert_eq!(
            labels[21..26],
            [
                "EPYC (many guests)",
                "corei7_skylake_x (many guests)",
                "ryzen (many guests)",
                "EPYC (bad modules)",
                "corei7_skylake_x (bad modules)"
            ]
        );
        // Bochs' AMD-V cannot take a spinning guest with IF=0 back: its row spins with
        // interrupts on, in an ISO of its own.
        assert_eq!(rows[22].iso, IsoKind::Many(Spinner::InterruptsOff));
        assert_eq!(rows[23].iso, IsoKind::Many(Spinner::InterruptsOn));
        assert_eq!(rows[23].log_name(), "many-sti-ryzen.log");
        assert_eq!(
            rows[23].iso.path(Path::new("/r")),
            Path::new("/r/build/many-sti.iso")
        );
        assert_eq!(rows[25].emulator(), Emulator::Bochs);
        assert!(rows[24..26]
            .iter()
            .all(|r| r.iso == IsoKind::Bad && r.required));
        assert_eq!(rows[24].log_name(), "bad-EPYC.log");
        assert_eq!(rows[15].log_name(), "attacks3-corei7_skylake_x.log");
        // Bochs' AMD-V takes its attacks from ISOs of their own.
        assert_eq!(rows[19].log_name(), "attacks3-bochs-amd-ryzen.log");
        assert_eq!(
            rows[19].iso.path(Path::new("/r")),
            Path::new("/r/build/attacks3-bochs-amd.iso")
        );
        assert_eq!(rows[21].log_name(), "many-EPYC.log");
        assert_eq!(rows[8].log_name(), "linux-suites-EPYC.log");
        assert_eq!(
            rows[15].iso.path(Path::new("/r")),
            Path::new("/r/build/attacks3.iso")
        );
        assert_eq!(
            rows[24].iso.path(Path::new("/r")),
            Path::new("/r/build/hostile.iso")
        );
        match &rows[24].expect {
            Expectation::Rejects { rejected, good, .. } => {
                assert!(rejected.len() >= 20);
                assert_eq!(rejected[1], ("module2".to_string(), "unknown key 'colour'"));
                assert_eq!(good, &names(&["smoke"]));
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(rows[0].timeout, Duration::from_secs(300));
        assert_eq!(rows[1].timeout, Duration::from_secs(600));
        assert_eq!(rows[2].timeout, Duration::from_secs(600));
        assert!(rows[..4]
            .iter()
            .all(|r| r.iso == IsoKind::LinuxSmp && r.memory_mib == 512));
        assert_eq!(rows[4].timeout, Duration::from_secs(300));
        assert_eq!(rows[5].timeout, Duration::from_secs(600));
        assert!(rows[4..8]
            .iter()
            .all(|r| r.iso == IsoKind::Linux && r.memory_mib == 512));
        assert!(rows[..9].iter().all(|r| r.required == LINUX_ROWS_REQUIRED));
        assert!(rows
            .iter()
            .filter(|r| matches!(r.iso, IsoKind::Attacks(..) | IsoKind::Many(_)))
            .all(|r| r.required));
        assert!(rows[8].iso.has_linux() && rows[8].memory_mib == 512 + 4 * 16);
        assert_eq!(rows[8].timeout, rows[4].timeout);
        let bochs = rows
            .iter()
            .filter(|r| r.emulator() == Emulator::Bochs)
            .count();
        assert_eq!(bochs, 11 + 4 + 4 + 2 + 2 + 4 + 2);
        let refused: Vec<_> = rows
            .iter()
            .filter(|r| matches!(r.expect, Expectation::Refused { .. }))
            .map(|r| r.model)
            .collect();
        assert_eq!(refused, ["qemu64", "qemu64,-svm"]);
        let mut logs: Vec<_> = rows.iter().map(|r| r.log_name()).collect();
        logs.sort();
        logs.dedup();
        assert_eq!(
            logs.len(),
            rows.len(),
            "log names are unique (they also name the Bochs files)"
        );
        match &rows[26].expect {
            Expectation::Pass { guests, suites, .. } => {
                assert_eq!(guests.len(), 14);
                assert_eq!(guests[0], "smoke");
                assert_eq!(guests[13], "hello");
                assert_eq!(suites.len(), 13);
                assert!(suites.contains(&("pic".to_string(), "pic".to_string())));
            }
            e => panic!("{e:?}"),
        }
    }

    /// The guest ISO's rows have RAM for every guest on it (they are loaded at once):
    /// seen, a 13th suite left `hello` without memory on 256 MiB.
    #[test]
    fn guest_rows_are_sized_for_the_guest_iso() {
        let mut suites = all_suites();
        suites.extend(["cpuid", "mb2", "qemukernel"].map(String::from));
        let plan = Plan::new(&suites, None).unwrap();
        let need = together::guest_mib(&plan.guest_specs()) + HEADROOM_MIB;
        let guest_rows: Vec<_> = rows(&plan)
            .into_iter()
            .filter(|r| r.iso == IsoKind::Guests)
            .collect();
        assert!(guest_rows.len() >= 15);
        for r in guest_rows {
            assert!(
                need <= r.memory_mib,
                "{}: {} < {need}",
                r.label,
                r.memory_mib
            );
        }
    }

    /// Rows whose guests run at once get RAM for all of them and time for each.
    #[test]
    fn together_rows_are_sized_for_their_guests() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let rows = rows(&plan);
        let row = |label: &str| rows.iter().find(|r| r.label == label).unwrap().clone();
        // 12 suites, hello, 4 hostile guests: 12*16 + 8 + 4*16 = 264 MiB of guests.
        let many = row("EPYC (many guests)");
        assert_eq!(many.memory_mib, 448);
        assert_eq!(
            many.timeout,
            Duration::from_secs(120),
            "QEMU: at least its default"
        );
        // 22 attackers and the victim, 16 MiB each.
        let attacks = row("corei7_skylake_x (attacks 1/4)");
        assert_eq!(attacks.memory_mib, 512);
        assert_eq!(attacks.timeout, Duration::from_secs(23 * 15));
        // On Bochs' AMD model, without the two attacks it cannot take.
        let amd = row("ryzen (attacks 4/4)");
        assert_eq!(amd.iso, IsoKind::Attacks(3, AttackSet::BochsAmd));
        let names: Vec<String> = together::attack_specs(3, AttackSet::BochsAmd)
            .iter()
            .map(|g| g.module_line())
            .collect();
        assert!(
            !names.iter().any(|c| c.contains("attack=cli_spin")),
            "{names:?}"
        );
        assert!(names.iter().any(|c| c.contains("attack=spin")), "{names:?}");
        for r in rows
            .iter()
            .filter(|r| matches!(r.iso, IsoKind::Many(_) | IsoKind::Attacks(..)))
        {
            let specs = match r.iso {
                IsoKind::Many(s) => together::many_specs(&plan.many, s),
                IsoKind::Attacks(g, set) => together::attack_specs(g, set),
                _ => unreachable!(),
            };
            assert!(specs.len() <= 32, "{}: Janus takes 32 modules", r.label);
            assert!(
                together::guest_mib(&specs) + HEADROOM_MIB <= r.memory_mib,
                "{}",
                r.label
            );
            match &r.expect {
                Expectation::Together {
                    guests,
                    linux: None,
                } => {
                    assert_eq!(guests.len(), specs.len(), "{}", r.label)
                }
                e => panic!("{e:?}"),
            }
        }
        // Bochs rows budget: the whole matrix must stay well under an hour on 2 cores
        // even if every row took half its timeout.
        let secs: u64 = rows.iter().map(|r| r.timeout.as_secs()).sum();
        assert!(secs / 2 / 2 < 60 * 60, "{secs} s of timeouts");
    }

    #[test]
    fn selection() {
        let all = all_suites();
        let plan = Plan::new(&all, Some(&names(&["hello", "smoke"]))).unwrap();
        assert_eq!(
            plan,
            Plan {
                suites: names(&["smoke"]),
                hello: true,
                linux: false,
                linux_suites: false,
                bad: false,
                many: Vec::new(),
                attacks: false,
            }
        );
        let rows = rows(&plan);
        assert_eq!(
            rows.len(),
            15,
            "no Linux rows, no SMP rows (they need pic and lapic)"
        );
        assert_eq!(rows[0].label, "EPYC");
        let plan = Plan::new(&all, Some(&names(&["linux"]))).unwrap();
        assert!(!plan.has_guest_rows());
        assert_eq!(
            rows_of(&plan),
            [
                "EPYC (linux, 2 vCPUs)",
                "corei7_skylake_x (linux, 2 vCPUs)",
                "ryzen (linux, 2 vCPUs)",
                "EPYC (linux, 2 vCPUs on 2 CPUs)",
                "EPYC (linux)",
                "corei7_skylake_x (linux)",
                "ryzen (linux)",
                "phenom_8650_toliman (linux)",
                "EPYC (linux + suites)"
            ]
        );
        let plan = Plan::new(&all, Some(&names(&["bad"]))).unwrap();
        assert!(plan.bad && !plan.has_guest_rows() && !plan.linux);
        assert_eq!(
            rows_of(&plan),
            ["EPYC (bad modules)", "corei7_skylake_x (bad modules)"]
        );
        let plan = Plan::new(&all, Some(&names(&["many"]))).unwrap();
        assert_eq!(plan.many, all, "every suite, whatever else is selected");
        assert_eq!(rows_of(&plan).len(), 3, "one per emulator and vendor");
        let plan = Plan::new(&all, Some(&names(&["attacks"]))).unwrap();
        assert_eq!(
            rows_of(&plan).len(),
            12,
            "4 groups on EPYC, corei7_skylake_x, ryzen"
        );
        let plan = Plan::new(&all, Some(&names(&["linux", "bad", "hello"]))).unwrap();
        assert_eq!(rows_of(&plan).len(), 2 + 9 + 15);
        // Without a smoke suite there is no good guest for the bad-modules rows; without
        // the hostile guest no many-guests or attack rows, without the victim no attack
        // rows and no Linux + suites.
        let no_smoke = names(&["pic"]);
        assert!(!Plan::new(&no_smoke, None).unwrap().bad);
        assert!(Plan::new(&no_smoke, Some(&names(&["bad"]))).is_err());
        let no_victim = names(&["smoke", "pic", "lapic", "hostile"]);
        let plan = Plan::new(&no_victim, None).unwrap();
        assert!(!plan.attacks && !plan.many.is_empty() && !plan.linux_suites);
        assert!(Plan::new(&no_victim, Some(&names(&["attacks"]))).is_err());
        assert!(Plan::new(&names(&["smoke"]), Some(&names(&["many"]))).is_err());
        let plan = Plan::new(&all, Some(&names(&["pit", "smoke", "pit"]))).unwrap();
        assert_eq!(plan.suites, names(&["smoke", "pit"]));
        assert_eq!(
            Plan::new(&all, Some(&names(&["all"]))).unwrap(),
            Plan::new(&all, None).unwrap()
        );
        let err = Plan::new(&all, Some(&names(&["nope"]))).unwrap_err();
        assert!(err.contains("unknown guest `nope`"), "{err}");
        assert!(Plan::new(&all, Some(&[])).is_err());
    }

    #[test]
    fn together_isos() {
        let lines = |specs: Vec<GuestSpec>| -> Vec<String> {
            specs.iter().map(|g| g.module_line()).collect()
        };
        let many = lines(together::many_specs(
            &names(&["smoke", "victim"]),
            Spinner::InterruptsOff,
        ));
        assert_eq!(
            many,
            [
                "module2 /guests/smoke name=smoke mem=16M",
                "module2 /guests/victim name=victim mem=16M",
                "module2 /guests/hello name=hello mem=8M",
                "module2 /guests/hostile name=cli_spin mem=16M limit=2s cmdline=attack=cli_spin",
                "module2 /guests/hostile name=cpuid_spin mem=16M limit=2s cmdline=attack=cpuid_spin",
                "module2 /guests/hostile name=port_spin mem=16M limit=2s cmdline=attack=port_spin",
                "module2 /guests/hostile name=plant mem=16M limit=3s cmdline=attack=plant",
                "module2 /guests/hostile name=snoop mem=16M cmdline=attack=snoop",
                "module2 /guests/hostile name=cf9 mem=16M on-reset=restart cmdline=attack=cf9",
            ]
        );
        let first = lines(together::attack_specs(0, AttackSet::All));
        assert_eq!(first.len(), 23);
        assert_eq!(
            first[0],
            "module2 /guests/victim name=victim mem=16M cmdline=\"secret=janus-attacks-1 duration=5000\""
        );
        assert_eq!(
            first[1],
            "module2 /guests/hostile name=cf9 mem=16M cmdline=attack=cf9"
        );
        let last = lines(together::attack_specs(3, AttackSet::All));
        assert!(last.contains(
            &"module2 /guests/hostile name=ac_loop mem=16M limit=500ms cmdline=attack=ac_loop"
                .to_string()
        ));
        assert!(last[0].contains("secret=janus-attacks-4"));
        let linux = lines(together::linux_neighbour_specs());
        assert_eq!(linux[0], "module2 /guests/smoke name=smoke mem=16M");
        assert_eq!(linux.len(), 4);
        assert!(linux[3].starts_with("module2 /guests/victim name=victim mem=16M cmdline="));
    }

    #[test]
    fn smp_rows_boot_four_suites_on_several_cpus_and_want_all_online() {
        let all = names(&["smoke", "pic", "lapic", "smp"]);
        let plan = Plan::new(&all, None).unwrap();
        let smp: Vec<Row> = rows(&plan)
            .into_iter()
            .filter(|r| r.iso == IsoKind::Smp)
            .collect();
        let labels: Vec<_> = smp.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "EPYC (2 CPUs)",
                "EPYC (4 CPUs)",
                "corei7_skylake_x (2 CPUs)",
                "corei7_skylake_x (4 CPUs)",
                "ryzen (2 CPUs)",
                "ryzen (4 CPUs)"
            ]
        );
        for r in &smp {
            assert!(r.required);
            match &r.expect {
                Expectation::Pass { guests, .. } => assert_eq!(guests, &all),
                e => panic!("{e:?}"),
            }
        }
        assert_eq!(smp[1].cpus, 4);
        assert_eq!(smp[5].cpus, 4);
        match &smp[4].expect {
            Expectation::Pass { features, .. } => assert!(features.contains(&("nrip", "yes"))),
            e => panic!("{e:?}"),
        }
        assert_eq!(smp[0].log_name(), "smp2-EPYC.log");
        assert_eq!(smp[1].log_name(), "smp4-EPYC.log");
        let specs = iso_specs(Path::new("."), &plan, IsoKind::Smp).unwrap();
        let lines: Vec<_> = specs.iter().map(|g| g.module_line()).collect();
        assert_eq!(
            lines,
            [
                "module2 /guests/smoke name=smoke mem=16M",
                "module2 /guests/pic name=pic mem=16M cpus=1",
                "module2 /guests/lapic name=lapic mem=16M",
                "module2 /guests/smp name=smp mem=16M cpus=0-1 vcpus=2 cmdline=cpus=2",
            ]
        );
        let no_lapic = Plan::new(&all, Some(&names(&["smoke", "pic"]))).unwrap();
        assert!(rows(&no_lapic).iter().all(|r| r.iso != IsoKind::Smp));
    }

    #[test]
    fn smp_verdict_wants_every_cpu_online_and_each_guest_where_it_belongs() {
        let placed = "janus: guest smoke: loaded multiboot1\n\
                      janus: guest smoke: runs on cpu 0\n\
                      janus: guest pic: loaded multiboot1\n\
                      janus: guest pic: runs on cpu 1\n\
                      janus: guest lapic: loaded multiboot1\n\
                      janus: guest lapic: runs on cpu 1\n\
                      janus: guest smp: loaded multiboot1\n\
                      janus: guest smp: runs on cpus 0,1\n";
        let log = format!("janus: smp: 2 of 2 CPUs online\n{placed}");
        assert_eq!(smp_verdict(2, &log), Ok(()));
        assert_eq!(smp_verdict(1, ""), Ok(()));
        let short = log.replace("2 of 2", "1 of 2");
        assert!(smp_verdict(2, &short).unwrap_err().contains("1 of 2"));
        assert!(smp_verdict(2, "janus: done: 1 guests, 0 failed\n").is_err());
        assert!(smp_verdict(4, &log).is_err());
        let moved = log.replace("pic: runs on cpu 1", "pic: runs on cpu 0");
        assert!(smp_verdict(2, &moved)
            .unwrap_err()
            .contains("pic ran on cpu 0"));
        let unsaid = log.replace("janus: guest lapic: runs on cpu 1\n", "");
        assert!(smp_verdict(2, &unsaid).unwrap_err().contains("lapic"));
        // The smp suite's vCPUs must run on both CPUs, not on one.
        let one = log.replace("smp: runs on cpus 0,1", "smp: runs on cpu 0");
        assert!(smp_verdict(2, &one)
            .unwrap_err()
            .contains("smp ran on cpu 0, not cpus 0,1"));
    }

    fn rows_of(plan: &Plan) -> Vec<String> {
        rows(plan).into_iter().map(|r| r.label).collect()
    }

    #[test]
    fn matrix_guests() {
        let plan = Plan::new(&names(&["smoke", "pic"]), None).unwrap();
        let lines: Vec<_> = plan.guest_specs().iter().map(|g| g.module_line()).collect();
        // Before the build, `hello` is the built-in name; the ISO uses the built file's name.
        assert_eq!(lines[0], "module2 /guests/smoke name=smoke mem=16M");
        assert_eq!(lines[1], "module2 /guests/pic name=pic mem=16M after=smoke");
        let hello = plan.guest_specs()[2].with_file(PathBuf::from("build/hello-mb1/hello.elf"));
        assert_eq!(
            hello.module_line(),
            "module2 /guests/hello.elf name=hello mem=8M"
        );
    }

    /// The fixture suites get the fixtures' command line and their modules, in order,
    /// right after them; the others none; and the many-guests ISO has them too.
    #[test]
    fn fixture_suites_get_their_modules() {
        let plan = Plan::new(&names(&["smoke", "mb2", "qemukernel"]), None).unwrap();
        let specs = plan.guest_specs();
        let lines: Vec<_> = specs.iter().map(|g| g.module_line()).collect();
        assert_eq!(
            lines[..7],
            [
                "module2 /guests/smoke name=smoke mem=16M",
                "module2 /guests/mb2 name=mb2 mem=16M after=smoke cmdline=\"fixture=janus words=3\"",
                "module2 /guests/alpha.txt module-of=mb2 index=0 colour=blue",
                "module2 /guests/beta.bin module-of=mb2 index=1",
                "module2 /guests/qemukernel name=qemukernel mem=16M after=mb2 cmdline=\"fixture=janus words=3\"",
                "module2 /guests/alpha.txt module-of=qemukernel index=0 colour=blue",
                "module2 /guests/beta.bin module-of=qemukernel index=1",
            ]
        );
        assert!(specs[2].file.is_file() && specs[3].file.ends_with("guests/modules/beta.bin"));
        assert_eq!(
            specs[2].builtin(),
            None,
            "a module file, not a built-in guest"
        );
        let mut guest_rows = rows(&plan).into_iter().filter(|r| r.iso == IsoKind::Guests);
        match &guest_rows.next_back().unwrap().expect {
            Expectation::Pass { guests, suites, .. } => {
                assert_eq!(guests, &names(&["smoke", "mb2", "qemukernel", "hello"]));
                assert_eq!(suites.len(), 3);
            }
            e => panic!("{e:?}"),
        }
        let many = together::many_specs(&plan.suites, Spinner::InterruptsOff);
        assert_eq!(many.len(), 7 + 1 + 6);
        assert!(many[3].module_line().ends_with("module-of=mb2 index=1"));
        assert_eq!(
            together::guest_mib(&many),
            3 * 16 + 8 + 6 * 16,
            "modules take no guest memory"
        );
    }

    /// The suites that test a protocol get a row without Janus each, on QEMU EPYC, from
    /// one ISO; required like every row.
    #[test]
    fn bare_rows() {
        let plan = Plan::new(&names(&["smoke", "mb2", "qemukernel"]), None).unwrap();
        let all = rows(&plan);
        let bare: Vec<&Row> = all
            .iter()
            .filter(|r| matches!(r.iso, IsoKind::Bare(_)))
            .collect();
        let labels: Vec<&str> = bare.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["EPYC (grub mb2)", "EPYC (qemu -kernel)"]);
        assert_eq!(all.last().unwrap().label, "EPYC (qemu -kernel)");
        assert!(bare
            .iter()
            .all(|r| r.required && r.emulator() == Emulator::Qemu));
        assert_eq!(
            bare.iter().map(|r| r.log_name()).collect::<Vec<_>>(),
            ["grub-mb2-EPYC.log", "qemu-kernel-EPYC.log"]
        );
        assert_eq!(
            bare[0].iso.path(Path::new("/r")),
            Path::new("/r/build/bare.iso")
        );
        assert_eq!(
            bare[1].iso.path(Path::new("/r")),
            bare[0].iso.path(Path::new("/r"))
        );
        assert_eq!(
            bare[1].expect,
            Expectation::Bare {
                suite: "qemukernel".into()
            }
        );
        let plan = Plan::new(
            &names(&["smoke", "mb2", "qemukernel"]),
            Some(&names(&["mb2"])),
        );
        assert_eq!(rows_of(&plan.unwrap()).last().unwrap(), "EPYC (grub mb2)");
        let plan = Plan::new(&all_suites(), None).unwrap();
        let bare: Vec<_> = rows(&plan)
            .into_iter()
            .filter(|r| matches!(r.iso, IsoKind::Bare(_)))
            .map(|r| r.label)
            .collect();
        assert_eq!(
            bare.len(),
            2,
            "only the smp suite's among these suites: {bare:?}"
        );
    }

    /// The smp suite runs bare on QEMU with 2 and 4 CPUs (`-smp N`, `cpus=N`), after the
    /// other bare rows; no Janus line is wanted from those rows; as a guest of one vCPU
    /// it is told `cpus=1`.
    #[test]
    fn bare_smp_rows() {
        let plan = Plan::new(&names(&["smoke", "qemukernel", "smp"]), None).unwrap();
        let all = rows(&plan);
        let smp: Vec<&Row> = all
            .iter()
            .filter(|r| matches!(r.iso, IsoKind::Bare(bare::Loader::Smp(_))))
            .collect();
        let got: Vec<(&str, u32, u32, String)> = smp
            .iter()
            .map(|r| (r.label.as_str(), r.cpus, r.janus_cpus(), r.log_name()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "EPYC (qemu -kernel smp, 2 CPUs)",
                    2,
                    1,
                    "bare-smp2-EPYC.log".into()
                ),
                (
                    "EPYC (qemu -kernel smp, 4 CPUs)",
                    4,
                    1,
                    "bare-smp4-EPYC.log".into()
                ),
            ]
        );
        assert_eq!(
            smp[1].expect,
            Expectation::Bare {
                suite: "smp".into()
            }
        );
        assert_eq!(all.last().unwrap().label, "EPYC (qemu -kernel smp, 4 CPUs)");
        // Janus' own SMP rows still want every host CPU online.
        let janus_smp = all.iter().find(|r| r.iso == IsoKind::Smp);
        assert!(janus_smp.is_none_or(|r| r.janus_cpus() == r.cpus));
        let lines: Vec<_> = plan.guest_specs().iter().map(|g| g.module_line()).collect();
        let line = lines.iter().find(|l| l.starts_with("module2 /guests/smp "));
        assert_eq!(
            line.map(String::as_str),
            Some("module2 /guests/smp name=smp mem=16M after=qemukernel cmdline=cpus=1")
        );
        let plan = Plan::new(&names(&["smoke", "qemukernel"]), None).unwrap();
        assert!(!rows(&plan)
            .iter()
            .any(|r| matches!(r.iso, IsoKind::Bare(bare::Loader::Smp(_)))));
    }

    #[test]
    fn suites_are_discovered() {
        let root = std::env::temp_dir().join(format!("janus-ci-suites-{}", std::process::id()));
        let bin = root.join("guests/src/bin");
        std::fs::create_dir_all(bin.join("multi")).unwrap();
        for f in ["pit.rs", "smoke.rs", "apic.rs", "notes.txt"] {
            std::fs::write(bin.join(f), "").unwrap();
        }
        std::fs::write(bin.join("multi/main.rs"), "").unwrap();
        assert_eq!(
            discover_suites(&root).unwrap(),
            names(&["smoke", "apic", "multi", "pit"])
        );
        let _ = std::fs::remove_dir_all(&root);
        // The real workspace has at least the smoke suite.
        let real = discover_suites(&crate::workspace_root()).unwrap();
        assert_eq!(real[0], "smoke");
    }
}
