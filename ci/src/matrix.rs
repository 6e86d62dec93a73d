//! The test matrix: which CPU models to boot, what each must show, and the parallel runner.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::emulator::{self, Emulator};
use crate::iso::GuestSpec;
use crate::judge::{self, Expectation, Report};
use crate::linux;

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

/// Where the bad module files are written at run time.
pub const HOSTILE_DIR: &str = "build/hostile";

/// The suite that runs as the good guest next to the bad modules.
const HOSTILE_GOOD: &str = "smoke";

/// One module of the hostile ISO, in boot order, and how Janus must answer it.
struct BadModule {
    /// A file in [`HOSTILE_DIR`], or the built-in `smoke`.
    file: &'static str,
    keys: &'static [(&'static str, &'static str)],
    /// The guest as Janus names it: `name=`, or `module<index>` when there is no usable name.
    label: &'static str,
    /// A distinctive part of Janus' reason.
    reason: &'static str,
}

const BAD_MODULES: &[BadModule] = &[
    BadModule {
        file: "junk.bin",
        keys: &[("name", "junk")],
        label: "junk",
        reason: "not a multiboot1 kernel",
    },
    BadModule {
        file: HOSTILE_GOOD,
        keys: &[("name", "badline"), ("colour", "blue")],
        label: "module1",
        reason: "unknown key 'colour'",
    },
    BadModule {
        file: HOSTILE_GOOD,
        keys: &[("name", "huge"), ("mem", "64G")],
        label: "huge",
        reason: "needs 65536 MiB",
    },
    BadModule {
        file: HOSTILE_GOOD,
        keys: &[("name", "tiny"), ("mem", "1M")],
        label: "tiny",
        reason: "too little",
    },
    BadModule {
        file: "orphan.cpio",
        keys: &[("initrd-of", "nobody")],
        label: "module4",
        reason: "no guest has that name",
    },
    BadModule {
        file: "truncated.elf",
        keys: &[("name", "truncated")],
        label: "truncated",
        reason: "image is truncated",
    },
];

/// Guest memory of a suite guest.
const SUITE_MEM: &str = "16M";
const HELLO_MEM: &str = "8M";

/// Machine memory for the Linux rows: the 256 MiB guest plus Janus.
pub const LINUX_MACHINE_MIB: u32 = 512;
const LINUX_QEMU_TIMEOUT: u64 = 300;
/// Bochs took 130 s to reach the marker with no VMM in between.
const LINUX_BOCHS_TIMEOUT: u64 = 900;

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
    /// The bad-modules rows (a separate ISO; `bad`).
    pub hostile: bool,
}

impl Plan {
    /// `selection`: guest names (`--guests`); None means everything. `all` names every
    /// guest too. `bad` is the bad-modules rows; they need the smoke suite.
    pub fn new(available: &[String], selection: Option<&[String]>) -> Result<Plan, String> {
        let has_good = available.iter().any(|a| a == HOSTILE_GOOD);
        let Some(selection) = selection.filter(|s| !s.iter().any(|n| n == "all")) else {
            return Ok(Plan {
                suites: available.to_vec(),
                hello: true,
                linux: true,
                hostile: has_good,
            });
        };
        let mut plan = Plan {
            suites: Vec::new(),
            hello: false,
            linux: false,
            hostile: false,
        };
        for name in selection {
            match name.as_str() {
                HELLO => plan.hello = true,
                linux::GUEST => plan.linux = true,
                BAD if has_good => plan.hostile = true,
                BAD => {
                    return Err(format!(
                        "`{BAD}` needs the {HOSTILE_GOOD} suite (guests/src/bin/{HOSTILE_GOOD}.rs)"
                    ))
                }
                n if available.iter().any(|a| a == n) => {
                    if !plan.suites.iter().any(|s| s == n) {
                        plan.suites.push(n.to_string());
                    }
                }
                n => {
                    return Err(format!(
                        "unknown guest `{n}` (known: {}, {HELLO}, {}, {BAD}, all)",
                        available.join(", "),
                        linux::GUEST
                    ))
                }
            }
        }
        sort_suites(&mut plan.suites);
        if plan.suites.is_empty() && !plan.hello && !plan.linux && !plan.hostile {
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
    /// `module2 /guests/NAME name=NAME mem=16M` per suite, then hello.
    pub fn guest_specs(&self) -> Vec<GuestSpec> {
        let mut v: Vec<GuestSpec> = self
            .suites
            .iter()
            .map(|n| GuestSpec::with_keys(PathBuf::from(n), &[("name", n), ("mem", SUITE_MEM)]))
            .collect();
        if self.hello {
            v.push(GuestSpec::with_keys(
                PathBuf::from(HELLO),
                &[("name", HELLO), ("mem", HELLO_MEM)],
            ));
        }
        v
    }

    /// What a bad-modules row expects: each bad module rejected with its reason, smoke
    /// passing, and `janus: done: 7 guests, 6 failed`.
    pub fn hostile_expectation() -> Expectation {
        let rejected: Vec<(String, &'static str)> = BAD_MODULES
            .iter()
            .map(|b| (b.label.to_string(), b.reason))
            .collect();
        let done = format!(
            "janus: done: {} guests, {} failed",
            rejected.len() + 1,
            rejected.len()
        );
        Expectation::Rejects {
            rejected,
            good: vec![HOSTILE_GOOD.to_string()],
            done,
        }
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
    /// build/matrix.iso: the suites and hello.
    Guests,
    /// build/linux.iso: only the Linux guest.
    Linux,
    /// build/hostile.iso: bad modules, then the smoke guest ([`hostile_specs`]).
    Hostile,
}

/// The ISOs of a run; a row whose ISO is missing fails with a reason.
#[derive(Debug, Clone, Default)]
pub struct Isos {
    pub guests: Option<PathBuf>,
    pub linux: Option<PathBuf>,
    pub hostile: Option<PathBuf>,
}

impl Isos {
    fn get(&self, kind: IsoKind) -> Option<&Path> {
        match kind {
            IsoKind::Guests => self.guests.as_deref(),
            IsoKind::Linux => self.linux.as_deref(),
            IsoKind::Hostile => self.hostile.as_deref(),
        }
    }
}

/// One emulated CPU and what Janus must do on it.
#[derive(Debug, Clone)]
pub struct Row {
    /// What the table shows: the model, plus ` (linux)` for a Linux row.
    pub label: String,
    pub model: &'static str,
    pub iso: IsoKind,
    pub expect: Expectation,
    pub memory_mib: u32,
    pub timeout: Duration,
    /// Whether a failure fails the matrix ([`LINUX_ROWS_REQUIRED`] for Linux rows).
    pub required: bool,
}

impl Row {
    pub fn emulator(&self) -> Emulator {
        Emulator::for_model(self.model)
    }

    /// The serial log's file name (also names the Bochs files): `EPYC.log`, `linux-EPYC.log`,
    /// `bad-EPYC.log`.
    pub fn log_name(&self) -> String {
        match self.iso {
            IsoKind::Guests => format!("{}.log", emulator::sanitize(self.model)),
            IsoKind::Linux => format!("linux-{}.log", emulator::sanitize(self.model)),
            IsoKind::Hostile => format!("bad-{}.log", emulator::sanitize(self.model)),
        }
    }

    fn guests(model: &'static str, expect: Expectation) -> Row {
        let emulator = Emulator::for_model(model);
        Row {
            label: model.to_string(),
            model,
            iso: IsoKind::Guests,
            expect,
            memory_mib: emulator::DEFAULT_MEMORY_MIB,
            timeout: Duration::from_secs(emulator.default_timeout_secs()),
            required: true,
        }
    }

    fn hostile(model: &'static str) -> Row {
        let emulator = Emulator::for_model(model);
        Row {
            label: format!("{model} (bad modules)"),
            model,
            iso: IsoKind::Hostile,
            expect: Plan::hostile_expectation(),
            memory_mib: emulator::DEFAULT_MEMORY_MIB,
            timeout: Duration::from_secs(emulator.default_timeout_secs()),
            required: true,
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
            },
            memory_mib: LINUX_MACHINE_MIB,
            timeout: Duration::from_secs(timeout),
            required: LINUX_ROWS_REQUIRED,
        }
    }
}

/// The rows of a plan, longest first: the Linux rows, the bad-modules rows, then the
/// guest rows.
pub fn rows(plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    if plan.linux {
        rows.push(Row::linux("EPYC"));
        rows.push(Row::linux("corei7_skylake_x"));
        // Not here yet: Linux under Bochs' AMD models (ryzen, phenom_8650_toliman) reaches
        // the marker and powers off, but takes 150-250 s and its clock runs off (lost timer
        // ticks while exits are slow); `cargo janus run --cpu ryzen --guests linux`.
    }
    if plan.hostile {
        rows.push(Row::hostile("EPYC"));
        rows.push(Row::hostile("corei7_skylake_x"));
    }
    if !plan.has_guest_rows() {
        return rows;
    }
    let amd_qemu = plan.pass("AMD", "svm", &[("npt", "yes"), ("nrip", "no")]);
    let amd_nrip = plan.pass("AMD", "svm", &[("npt", "yes"), ("nrip", "yes")]);
    let intel = plan.pass("Intel", "vmx", &[("ept", "yes"), ("unrestricted", "yes")]);
    for m in ["EPYC", "EPYC-Rome", "Opteron_G5", "phenom"] {
        rows.push(Row::guests(m, amd_qemu.clone()));
    }
    rows.push(Row::guests(
        "qemu64",
        Expectation::Refused {
            reason_contains: "nested paging",
        },
    ));
    rows.push(Row::guests(
        "qemu64,-svm",
        Expectation::Refused {
            reason_contains: "no hardware virtualization",
        },
    ));
    for m in [
        "corei7_sandy_bridge_2600k",
        "corei7_haswell_4770",
        "corei7_skylake_x",
        "corei7_icelake_u",
        "tigerlake",
    ] {
        rows.push(Row::guests(m, intel.clone()));
    }
    for m in ["ryzen", "zambezi", "trinity_apu"] {
        rows.push(Row::guests(m, amd_nrip.clone()));
    }
    rows.push(Row::guests("phenom_8650_toliman", amd_qemu));
    rows
}

/// The modules of build/hostile.iso, in boot order: the bad modules (files in `dir`, or
/// the built-in smoke), then `smoke name=smoke mem=16M`.
pub fn hostile_specs(dir: &Path) -> Vec<GuestSpec> {
    let mut v: Vec<GuestSpec> = BAD_MODULES
        .iter()
        .map(|b| {
            let file = if b.file == HOSTILE_GOOD {
                PathBuf::from(b.file)
            } else {
                dir.join(b.file)
            };
            GuestSpec::with_keys(file, b.keys)
        })
        .collect();
    v.push(GuestSpec::with_keys(
        PathBuf::from(HOSTILE_GOOD),
        &[("name", HOSTILE_GOOD), ("mem", SUITE_MEM)],
    ));
    v
}

/// Writes the bad files into `dir`: `junk.bin` (4 KiB of text), `orphan.cpio` (a small
/// file) and `truncated.elf` (the first 8 KiB of `smoke_elf`, whose multiboot header lies
/// within them but whose load addresses point past them).
pub fn write_hostile_files(dir: &Path, smoke_elf: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    let line = b"This is not a kernel: Janus must refuse it and run the other guests.\n";
    let junk: Vec<u8> = line.iter().copied().cycle().take(4096).collect();
    write("junk.bin", &junk)?;
    write(
        "orphan.cpio",
        b"an initrd for a guest that does not exist\n",
    )?;
    const CUT: usize = 8192;
    let elf = std::fs::read(smoke_elf)
        .map_err(|e| format!("cannot read {}: {e}", smoke_elf.display()))?;
    // The multiboot1 magic 0x1BADB002, 4-byte aligned, little-endian.
    let has_header = elf.len() > CUT
        && elf[..CUT]
            .chunks_exact(4)
            .any(|w| w == [0x02, 0xb0, 0xad, 0x1b]);
    if !has_header {
        return Err(format!(
            "{} has no multiboot header in its first 8 KiB (or is not longer): truncated.elf would not test truncation",
            smoke_elf.display()
        ));
    }
    write("truncated.elf", &elf[..CUT])
}

/// Builds the smoke guest and writes the bad files into build/hostile; returns the specs
/// of build/hostile.iso.
pub fn hostile_guests(root: &Path) -> Result<Vec<GuestSpec>, String> {
    crate::build::guests(root)?;
    let dir = root.join(HOSTILE_DIR);
    write_hostile_files(&dir, &crate::build::guest_bin(root, HOSTILE_GOOD))?;
    Ok(hostile_specs(&dir))
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
}

/// Runs one row: boots its ISO, judges the log.
pub fn run_row(root: &Path, isos: &Isos, row: Row) -> RowResult {
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
        };
    };
    match emulator::boot(
        root,
        emulator,
        row.model,
        row.memory_mib,
        iso,
        &log,
        timeout,
        false,
    ) {
        Ok(outcome) => {
            let report = judge::parse(&outcome.serial);
            let verdict = judge::judge(&row.expect, &report).map_err(|reason| {
                if outcome.timed_out {
                    format!("timeout ({} s): {reason}", timeout.as_secs())
                } else if report.last_janus_line.is_none() {
                    // Nothing from Janus: the emulator itself is the likely culprit.
                    let code = outcome
                        .exit_code
                        .map_or("signal".to_string(), |c| c.to_string());
                    format!(
                        "{reason}; {} exited {code}, see {}",
                        emulator.name(),
                        outcome.output_file.display()
                    )
                } else {
                    reason
                }
            });
            RowResult {
                row,
                report,
                seconds: outcome.seconds,
                verdict,
                log,
            }
        }
        Err(e) => RowResult {
            row,
            report: Report::default(),
            seconds: 0.0,
            verdict: Err(e),
            log,
        },
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
            "ioapic",
            "lapic",
            "mmio",
            "pic",
            "pit",
            "policy",
            "uart",
        ])
    }

    #[test]
    fn matrix_shape() {
        let plan = Plan::new(&all_suites(), None).unwrap();
        let rows = rows(&plan);
        assert_eq!(rows.len(), 19);
        // The Linux rows come first: they take longest. Then the bad modules.
        assert_eq!(rows[0].label, "EPYC (linux)");
        assert_eq!(rows[1].label, "corei7_skylake_x (linux)");
        assert_eq!(rows[2].label, "EPYC (bad modules)");
        assert_eq!(rows[3].label, "corei7_skylake_x (bad modules)");
        assert_eq!(rows[3].emulator(), Emulator::Bochs);
        assert!(rows[2..4]
            .iter()
            .all(|r| r.iso == IsoKind::Hostile && r.required));
        assert_eq!(rows[2].log_name(), "bad-EPYC.log");
        match &rows[2].expect {
            Expectation::Rejects {
                rejected,
                good,
                done,
            } => {
                assert_eq!(rejected.len(), 6);
                assert_eq!(rejected[1], ("module1".to_string(), "unknown key 'colour'"));
                assert_eq!(good, &names(&["smoke"]));
                assert_eq!(done, "janus: done: 7 guests, 6 failed");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(rows[0].timeout, Duration::from_secs(300));
        assert_eq!(rows[1].timeout, Duration::from_secs(900));
        assert!(rows[..2]
            .iter()
            .all(|r| r.iso == IsoKind::Linux && r.memory_mib == 512));
        assert!(rows[..2].iter().all(|r| r.required == LINUX_ROWS_REQUIRED));
        let bochs = rows
            .iter()
            .filter(|r| r.emulator() == Emulator::Bochs)
            .count();
        assert_eq!(bochs, 11);
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
        match &rows[4].expect {
            Expectation::Pass { guests, suites, .. } => {
                assert_eq!(guests.len(), 10);
                assert_eq!(guests[0], "smoke");
                assert_eq!(guests[9], "hello");
                assert_eq!(suites.len(), 9);
                assert!(suites.contains(&("pic".to_string(), "pic".to_string())));
            }
            e => panic!("{e:?}"),
        }
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
                hostile: false
            }
        );
        let rows = rows(&plan);
        assert_eq!(rows.len(), 15, "no Linux rows");
        assert_eq!(rows[0].label, "EPYC");
        let plan = Plan::new(&all, Some(&names(&["linux"]))).unwrap();
        assert!(!plan.has_guest_rows());
        assert_eq!(rows_of(&plan), ["EPYC (linux)", "corei7_skylake_x (linux)"]);
        let plan = Plan::new(&all, Some(&names(&["bad"]))).unwrap();
        assert!(plan.hostile && !plan.has_guest_rows() && !plan.linux);
        assert_eq!(
            rows_of(&plan),
            ["EPYC (bad modules)", "corei7_skylake_x (bad modules)"]
        );
        let plan = Plan::new(&all, Some(&names(&["linux", "bad", "hello"]))).unwrap();
        assert_eq!(rows_of(&plan).len(), 4 + 15);
        // Without a smoke suite there is no good guest for the bad-modules rows.
        let no_smoke = names(&["pic"]);
        assert!(!Plan::new(&no_smoke, None).unwrap().hostile);
        assert!(Plan::new(&no_smoke, Some(&names(&["bad"]))).is_err());
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

    fn rows_of(plan: &Plan) -> Vec<String> {
        rows(plan).into_iter().map(|r| r.label).collect()
    }

    #[test]
    fn matrix_guests() {
        let plan = Plan::new(&names(&["smoke", "pic"]), None).unwrap();
        let lines: Vec<_> = plan.guest_specs().iter().map(|g| g.module_line()).collect();
        // Before the build, `hello` is the built-in name; the ISO uses the built file's name.
        assert_eq!(lines[0], "module2 /guests/smoke name=smoke mem=16M");
        assert_eq!(lines[1], "module2 /guests/pic name=pic mem=16M");
        let hello = plan.guest_specs()[2].with_file(PathBuf::from("build/hello-mb1/hello.elf"));
        assert_eq!(
            hello.module_line(),
            "module2 /guests/hello.elf name=hello mem=8M"
        );
    }

    #[test]
    fn hostile_iso() {
        let dir = std::env::temp_dir().join(format!("janus-ci-hostile-{}", std::process::id()));
        let lines: Vec<_> = hostile_specs(&dir)
            .iter()
            .map(|g| g.module_line())
            .collect();
        assert_eq!(
            lines,
            [
                "module2 /guests/junk.bin name=junk",
                "module2 /guests/smoke name=badline colour=blue",
                "module2 /guests/smoke name=huge mem=64G",
                "module2 /guests/smoke name=tiny mem=1M",
                "module2 /guests/orphan.cpio initrd-of=nobody",
                "module2 /guests/truncated.elf name=truncated",
                "module2 /guests/smoke name=smoke mem=16M",
            ]
        );
        // A fake smoke ELF: the multiboot magic at 0x1000, 12 KiB long.
        let mut elf = vec![0u8; 12288];
        elf[0x1000..0x1004].copy_from_slice(&0x1BADB002u32.to_le_bytes());
        let fake = dir.join("fake-smoke");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&fake, &elf).unwrap();
        write_hostile_files(&dir, &fake).unwrap();
        let junk = std::fs::read(dir.join("junk.bin")).unwrap();
        assert_eq!(junk.len(), 4096);
        assert!(junk.iter().all(|b| b.is_ascii()));
        assert_eq!(
            std::fs::read(dir.join("truncated.elf")).unwrap(),
            &elf[..8192]
        );
        assert!(!std::fs::read(dir.join("orphan.cpio")).unwrap().is_empty());
        // Without a header in the first 8 KiB the truncated module would test nothing.
        std::fs::write(&fake, vec![0u8; 12288]).unwrap();
        assert!(write_hostile_files(&dir, &fake)
            .unwrap_err()
            .contains("no multiboot header"));
        let _ = std::fs::remove_dir_all(&dir);
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
