//! `cargo janus`: build Janus and its test guests, boot them in emulated CPUs, judge the
//! serial console (see docs/console.md).
//!
//! This file holds the command line (hand-parsed) and the commands `run`, `iso` and
//! `test`; `bench` lives in bench.rs, `profile` in profile/ (reading the trace in
//! profile/trace.rs). The work itself lives in the modules below.

mod bad_modules;
mod bare;
mod bench;
mod bench_exits;
mod build;
mod emulator;
pub mod fuzz;
#[cfg(test)]
mod guest_rt;
mod hostile;
mod iso;
mod judge;
mod layout;
mod linux;
mod matrix;
mod profile;
mod setup;
mod svg;
mod table;
mod together;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use emulator::Emulator;
use iso::GuestSpec;

const USAGE: &str = "\
cargo janus: build, boot and test Janus in emulated CPUs

USAGE:
    cargo janus run  [--cpu MODEL] [--cpus N] [--guests LIST] [--guest FILE[:KEY=VALUE,...]]... [--timeout SECS]
    cargo janus iso  [--guests LIST] [--guest FILE[:KEY=VALUE,...]]... -o FILE.iso
    cargo janus test [--guests LIST] [--only SUBSTRING] [--jobs N]
    cargo janus bench [exits | linux]
    cargo janus profile --cpu MODEL LOOP [--steps N]
    cargo janus fuzz [--execs N | --seconds S] [--seed S]
    cargo janus help

COMMANDS:
    run     Build Janus and the guests, make a GRUB ISO with the given guests (default: the
            built-in `smoke` guest), boot it in the emulator that provides MODEL (QEMU or
            Bochs; default EPYC) and stream the serial console. Exits 0 when Janus' last
            line is `janus: done: N guests, 0 failed`, 2 when Janus refused the CPU, else 1.
    iso     Build only the ISO.
    test    Run the host unit tests, then boot the test guests on every CPU model of the
            matrix (in parallel), print a table and exit non-zero if any row failed.
            The guests are every suite in guests/src/bin plus `hello` (one ISO), and
            Debian's Linux (its own ISO; rows `EPYC (linux)` and
            `corei7_skylake_x (linux)`), and bad modules next to the smoke guest (its own
            ISO; rows `EPYC (bad modules)` and `corei7_skylake_x (bad modules)`). Serial
            logs go to build/logs/MODEL.log, build/logs/linux-MODEL.log and
            build/logs/bad-MODEL.log.
    bench   Time Linux from QEMU's launch to its userspace marker under Janus and on bare
            QEMU (3 runs each), print the times, medians, their ratio and Janus' exits;
            then the exit-cost table: instructions per round trip through Janus for
            common exits (CPUID, port I/O, MSRs, hypercall, LAPIC MMIO, a timer
            interrupt, a guest switch) on QEMU EPYC (-icount), Bochs ryzen,
            phenom_8650_toliman and corei7_skylake_x, beside the previous run's figures
            (build/bench/exits.tsv; charts build/bench/exits-MODEL.svg).
            `bench exits`: only the exit-cost table; `bench linux`: only Linux.
            See docs/testing.md.
    profile Where one exit's instructions go: boot the exitcost guest looping LOOP (a row
            of the exit-cost table: cpuid, out_com1_scr, in_com1_scr, in_unclaimed,
            rdmsr_apic_base, wrmsr_apic_base, hypercall, mmio_apic_read,
            mmio_apic_write, irq_oneshot_hlt) on Bochs model MODEL under Bochs'
            debugger, trace N instructions, cut the trace into exits at the world switch
            and print the complete exits, host instructions per exit (min/avg/max) and
            the instructions per exit in each of Janus' functions; also written to
            build/profile/MODEL-LOOP.txt (the trace: build/profile/MODEL-LOOP.trace).
            See docs/testing.md, \"Profiling an exit\".
    fuzz    Fuzz the instruction decoder, the multiboot1, multiboot2 and Linux loaders
            and the module command lines on the host, built with overflow checks (in
            target/fuzz): N
            executions per target (default 2500000) or S seconds each; --seed replays a
            run. Prints executions per target and `fuzz: N passed, N failed`.

OPTIONS:
    --cpu MODEL        CPU model (`profile`: a Bochs one). QEMU names (EPYC, EPYC-Rome, Opteron_G5, phenom, qemu64,
                       max, 'qemu64,-svm', ...) run in QEMU; Bochs names (corei7_skylake_x,
                       tigerlake, ryzen, zambezi, trinity_apu, phenom_8650_toliman, ...) in
                       Bochs.
    --cpus N           `run`: host CPUs of the emulated machine (QEMU -smp N, Bochs
                       `cpu: count=N`; default 1).
    --guest SPEC       FILE[:KEY=VALUE,...], e.g. `--guest my.elf:name=foo,mem=32M,cmdline=a b`.
                       Becomes `module2 /guests/BASENAME name=foo mem=32M cmdline=\"a b\"`.
                       The name defaults to the file's stem. FILE may also be the name of a
                       built-in guest (smoke, hello). Repeat for more guests.
    --guests LIST      Comma-separated built-in guests: suite names (smoke, pic, ...), hello,
                       linux, bad (the bad modules and a smoke guest), or all. `test`:
                       restrict the matrix to them (default: all; a list without `linux`
                       has no Linux rows, one without `bad` no bad-modules rows).
                       `run`/`iso`: boot them.
    --timeout SECS     Kill the emulator after SECS seconds (default 120 QEMU, 240 Bochs;
                       300/900 with the Linux guest).
    -o FILE            Where `iso` writes the ISO.
    --only SUBSTRING   `test`: run only the matrix rows whose label contains SUBSTRING
                       (`--only linux`: the Linux rows; `--only bad`: the bad-modules rows;
                       `--only EPYC`: EPYC, EPYC-Rome, EPYC (linux) and EPYC (bad modules)).
    --jobs N           `test`: emulator runs in parallel (default: number of CPUs).
    --steps N          `profile`: instructions to trace (default 4000).
";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Run {
        cpu: String,
        guests: Vec<GuestSpec>,
        named: Option<Vec<String>>,
        timeout: Option<u64>,
        /// Host CPUs of the emulated machine.
        cpus: u32,
    },
    Iso {
        guests: Vec<GuestSpec>,
        named: Option<Vec<String>>,
        out: PathBuf,
    },
    Test {
        only: Option<String>,
        jobs: Option<usize>,
        named: Option<Vec<String>>,
    },
    Bench(bench::Part),
    Profile {
        cpu: String,
        /// The exitcost guest's loop (`profile=NAME`).
        name: String,
        /// Instructions to trace.
        steps: u64,
    },
    Fuzz {
        execs: Option<u64>,
        seconds: Option<u64>,
        seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo janus` runs us as `cargo-janus ARGS`, but a cargo subcommand installed as
    // `cargo-janus` would get `janus ARGS`: accept both.
    let args: &[String] = match args.first() {
        Some(a) if a == "janus" => &args[1..],
        _ => &args,
    };
    let command = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cargo janus: {e}\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(0)
        }
        Command::Bench(part) => bench::cmd_bench(&workspace_root(), part),
        Command::Profile { cpu, name, steps } => {
            profile::run(&workspace_root(), &cpu, &name, steps)
        }
        Command::Fuzz {
            execs,
            seconds,
            seed,
        } => fuzz::cmd_fuzz(&workspace_root(), execs, seconds, seed),
        Command::Run {
            cpu,
            guests,
            named,
            timeout,
            cpus,
        } => cmd_run(&cpu, guests, named, timeout, cpus),
        Command::Iso { guests, named, out } => cmd_iso(guests, named, &out),
        Command::Test { only, jobs, named } => cmd_test(only.as_deref(), jobs, named),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cargo janus: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    let rest = &args[1..];
    let mut cpu: Option<String> = None;
    let mut guests = Vec::new();
    let mut timeout = None;
    let mut cpus = 1;
    let mut out = None;
    let mut only = None;
    let mut jobs = None;
    let mut named: Option<Vec<String>> = None;
    let (mut execs, mut seconds, mut seed) = (None, None, None);
    let mut bench_part = None;
    let mut profile_loop: Option<String> = None;
    let mut steps = profile::DEFAULT_STEPS;
    let mut i = 0;
    // Options take their value as the next argument or after `=`.
    while i < rest.len() {
        let arg = &rest[i];
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            rest.get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match (first.as_str(), name.as_str()) {
            ("run" | "profile", "--cpu") => cpu = Some(value()?),
            ("profile", "--steps") => {
                let v = value()?;
                steps = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=profile::MAX_STEPS).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--steps: `{v}` is not a count from 1 to {}",
                            profile::MAX_STEPS
                        )
                    })?;
            }
            ("profile", word) if profile_loop.is_none() && !word.starts_with('-') => {
                profile_loop = Some(word.to_string())
            }
            ("run" | "iso", "--guest") => guests.push(GuestSpec::parse(&value()?)?),
            ("run" | "iso" | "test", "--guests") => {
                let list: Vec<String> = value()?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if list.is_empty() {
                    return Err("--guests needs at least one name".into());
                }
                named.get_or_insert_with(Vec::new).extend(list);
            }
            ("run", "--timeout") => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: `{v}` is not a number of seconds"))?;
                if secs == 0 {
                    return Err("--timeout must be at least 1".into());
                }
                timeout = Some(secs);
            }
            ("run", "--cpus") => {
                let v = value()?;
                cpus = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("--cpus: `{v}` is not a CPU count from 1 to 64"))?;
            }
            ("bench", word) if bench_part.is_none() && bench::Part::parse(word).is_some() => {
                bench_part = bench::Part::parse(word)
            }
            ("iso", "-o" | "--output") => out = Some(PathBuf::from(value()?)),
            ("test", "--only") => only = Some(value()?),
            ("test", "--jobs" | "-j") => {
                let v = value()?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--jobs: `{v}` is not a number"))?;
                jobs = Some(n.max(1));
            }
            ("fuzz", "--execs" | "--seconds" | "--seed") => {
                let v = value()?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("{name}: `{v}` is not a number"))?;
                *match name.as_str() {
                    "--execs" => &mut execs,
                    "--seconds" => &mut seconds,
                    _ => &mut seed,
                } = Some(n);
            }
            _ => return Err(format!("unexpected argument `{arg}` for `{first}`")),
        }
        i += 1;
    }
    match first.as_str() {
        "help" | "-h" | "--help" => Ok(Command::Help),
        "bench" => Ok(Command::Bench(bench_part.unwrap_or(bench::Part::All))),
        "fuzz" => Ok(Command::Fuzz {
            execs,
            seconds,
            seed,
        }),
        "run" => Ok(Command::Run {
            cpu: cpu.unwrap_or_else(|| "EPYC".into()),
            guests,
            named,
            timeout,
            cpus,
        }),
        "iso" => {
            let out = out.ok_or("iso needs -o FILE.iso")?;
            Ok(Command::Iso { guests, named, out })
        }
        "test" => Ok(Command::Test { only, jobs, named }),
        "profile" => profile_command(cpu, profile_loop, steps),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// `profile`'s command: a Bochs model (the trace comes from Bochs' debugger) and a loop
/// the exitcost guest knows.
fn profile_command(
    cpu: Option<String>,
    name: Option<String>,
    steps: u64,
) -> Result<Command, String> {
    let loops = || profile::loops().collect::<Vec<_>>().join(", ");
    let cpu = cpu.ok_or("profile needs --cpu MODEL (a Bochs model)")?;
    if Emulator::for_model(&cpu) != Emulator::Bochs {
        return Err(format!(
            "profile: `{cpu}` is not a Bochs model (the trace comes from Bochs' debugger)"
        ));
    }
    let name = name.ok_or_else(|| format!("profile needs LOOP, one of: {}", loops()))?;
    if !profile::is_loop(&name) {
        return Err(format!(
            "profile: no loop `{name}`; the loops are: {}",
            loops()
        ));
    }
    Ok(Command::Profile { cpu, name, steps })
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ci/ has a parent")
        .to_path_buf()
}

/// Builds Janus and whatever the guests need, then the ISO. Returns the ISO's path.
pub(crate) fn prepare(
    root: &Path,
    guests: &[GuestSpec],
    iso_path: &Path,
    needs: &[setup::Need],
) -> Result<PathBuf, String> {
    setup::ensure(needs)?;
    let janus = build::janus(root)?;
    let mut resolved = Vec::new();
    let mut built_guests = false;
    for g in guests {
        let file = match g.builtin() {
            Some(build::Builtin::Hello) => build::hello(root)?,
            Some(build::Builtin::Bin(name)) => {
                if !built_guests {
                    build::guests(root)?;
                    built_guests = true;
                }
                build::guest_bin(root, &name)
            }
            None => g.file.clone(),
        };
        if !file.is_file() {
            return Err(format!("guest file {} does not exist", file.display()));
        }
        resolved.push(g.with_file(file));
    }
    iso::make(root, &janus, &resolved, iso_path)?;
    Ok(iso_path.to_path_buf())
}

pub(crate) fn default_guests() -> Vec<GuestSpec> {
    vec![GuestSpec::parse("smoke:name=smoke,mem=16M").expect("built-in spec parses")]
}

/// The guests of `run`/`iso`: `--guests` names (the matrix' specs; `linux` fetches and
/// adds the Linux guest and its initrd; `bad` adds the bad modules and a smoke guest, only
/// when named, not with `all`), then `--guest` specs; the smoke guest when neither is
/// given. Also says whether the Linux guest is among them. `cpu` picks the many-guests
/// spinner.
fn chosen_guests(
    root: &Path,
    specs: Vec<GuestSpec>,
    named: Option<Vec<String>>,
    cpu: &str,
) -> Result<(Vec<GuestSpec>, bool), String> {
    let Some(named) = named else {
        return Ok((
            if specs.is_empty() {
                default_guests()
            } else {
                specs
            },
            false,
        ));
    };
    let plan = matrix::Plan::new(&matrix::discover_suites(root)?, Some(&named))?;
    let mut guests = plan.guest_specs();
    if plan.linux {
        setup::ensure(&[setup::Need::Linux])?;
        guests.extend(linux::assets(root)?.guest_specs());
    }
    if named.iter().any(|n| n == matrix::BAD) {
        guests.extend(bad_modules::guests(root)?);
    }
    if named.iter().any(|n| n == matrix::MANY) {
        let spinner = together::Spinner::for_model(cpu);
        guests.extend(together::many_specs(&plan.many, spinner));
    }
    if plan.attacks {
        return Err(format!(
            "`{}` is several ISOs: use `cargo janus test --guests {0}`",
            matrix::ATTACKS
        ));
    }
    guests.extend(specs);
    Ok((guests, plan.linux))
}

fn cmd_iso(guests: Vec<GuestSpec>, named: Option<Vec<String>>, out: &Path) -> Result<u8, String> {
    let root = workspace_root();
    let (guests, _) = chosen_guests(&root, guests, named, "EPYC")?;
    prepare(&root, &guests, out, &[setup::Need::Iso])?;
    eprintln!("cargo janus: wrote {}", out.display());
    Ok(0)
}

fn cmd_run(
    cpu: &str,
    guests: Vec<GuestSpec>,
    named: Option<Vec<String>>,
    timeout: Option<u64>,
    cpus: u32,
) -> Result<u8, String> {
    let root = workspace_root();
    let emulator = Emulator::for_model(cpu);
    let (guests, with_linux) = chosen_guests(&root, guests, named, cpu)?;
    let iso = root.join("build/run.iso");
    prepare(&root, &guests, &iso, &[setup::Need::Iso, emulator.need()])?;
    let default_timeout = match (with_linux, emulator) {
        (false, _) => emulator.default_timeout_secs(),
        (true, Emulator::Qemu) => 300,
        (true, Emulator::Bochs) => 900,
    };
    let memory = if with_linux {
        matrix::LINUX_MACHINE_MIB
    } else {
        emulator::DEFAULT_MEMORY_MIB
    };
    let timeout = Duration::from_secs(timeout.unwrap_or(default_timeout));
    let name = emulator::sanitize(cpu);
    let log = root.join("build/logs").join(format!("run-{name}.log"));
    eprintln!(
        "cargo janus: booting {} in {} (-cpu {cpu}, {memory} MiB), timeout {} s",
        iso.display(),
        emulator.name(),
        timeout.as_secs()
    );
    let run = emulator::Boot {
        emulator,
        model: cpu,
        memory_mib: memory,
        cpus,
        ips: emulator::BOCHS_IPS,
        iso: &iso,
        log: &log,
        timeout,
        stream: true,
        icount: false,
        qemu_args: &[],
    };
    let outcome = emulator::boot(&root, &run)?;
    let report = judge::parse(&outcome.serial);
    let (code, verdict) = run_verdict(&report);
    let mut how = format!("{} after {:.1} s", emulator.name(), outcome.seconds);
    if outcome.timed_out {
        how = format!(
            "{} stopped at the {} s timeout",
            emulator.name(),
            timeout.as_secs()
        );
    }
    eprintln!("cargo janus: {verdict} ({how}; log {})", log.display());
    Ok(code)
}

/// The status of `cargo janus run`: 0 when the last Janus line says every guest passed,
/// 2 when Janus refused the CPU, else 1.
fn run_verdict(report: &judge::Report) -> (u8, String) {
    if let Some(p) = &report.panic {
        return (1, format!("Janus failed: {p}"));
    }
    if let Some(r) = &report.refused {
        return (2, format!("refused: {r}"));
    }
    match (report.last_janus_line.as_deref(), report.done) {
        (Some(last), Some((_, 0))) if last.starts_with("janus: done:") => {
            (0, format!("passed: {}", &last["janus: ".len()..]))
        }
        (Some(last), _) => (1, format!("failed; last Janus line: {last}")),
        (None, _) => (1, "failed: no output from Janus".into()),
    }
}

/// Holds build/cargo-janus.lock: `test` and `bench` share ISOs, logs, Bochs files and
/// build/linux, so a second one in the same workspace waits for the first.
pub(crate) fn workspace_lock(root: &Path) -> Result<std::fs::File, String> {
    let dir = root.join("build");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("cargo-janus.lock");
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "cargo janus: waiting for another `cargo janus test/bench` in this workspace ({})",
                path.display()
            );
            file.lock()
                .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

fn cmd_test(
    only: Option<&str>,
    jobs: Option<usize>,
    named: Option<Vec<String>>,
) -> Result<u8, String> {
    let root = workspace_root();
    let _lock = workspace_lock(&root)?;
    let suites = matrix::discover_suites(&root)?;
    let selection = named.or_else(matrix::Plan::default_selection);
    let plan = matrix::Plan::new(&suites, selection.as_deref())?;
    let rows: Vec<matrix::Row> = matrix::rows(&plan)
        .into_iter()
        .filter(|r| only.is_none_or(|s| r.label.contains(s)))
        .collect();
    if rows.is_empty() {
        return Err(format!("no matrix row matches `{}`", only.unwrap_or("")));
    }
    let mut needs = vec![setup::Need::Iso];
    if rows.iter().any(|r| r.iso.has_linux()) {
        needs.push(setup::Need::Linux);
    }
    for r in &rows {
        let n = r.emulator().need();
        if !needs.contains(&n) {
            needs.push(n);
        }
    }
    setup::ensure(&needs)?;

    eprintln!("cargo janus: lint (cargo fmt --check, cargo clippy)");
    build::lint(&root)?;
    eprintln!("cargo janus: host unit tests (cargo test)");
    build::host_tests(&root)?;
    fuzz::short_budget(&root)?;

    let isos = matrix::build_isos(&root, &plan, &rows, &needs)?;

    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    eprintln!("cargo janus: running {} rows, {jobs} at a time", rows.len());
    let results = matrix::run_all(&root, &isos, rows, jobs);
    println!();
    print!("{}", table::render(&results));
    print!("{}", table::suites_summary(&results));
    let passed = results.iter().filter(|r| r.verdict.is_ok()).count();
    let failed = results
        .iter()
        .filter(|r| r.verdict.is_err() && r.row.required)
        .count();
    let ignored = results.len() - passed - failed;
    for r in results.iter().filter(|r| r.verdict.is_err()) {
        println!("log of {}: {}", r.row.label, r.log.display());
    }
    if ignored > 0 {
        println!("matrix: {passed} passed, {failed} failed, {ignored} failed but not required");
    } else {
        println!("matrix: {passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn no_args_is_help() {
        assert_eq!(parse_args(&[]).unwrap(), Command::Help);
        assert_eq!(parse_args(&args(&["--help"])).unwrap(), Command::Help);
        assert_eq!(
            parse_args(&args(&["run", "--help"])).unwrap(),
            Command::Help
        );
    }

    #[test]
    fn run_defaults_and_options() {
        match parse_args(&args(&["run"])).unwrap() {
            Command::Run {
                cpu,
                guests,
                named,
                timeout,
                cpus,
            } => {
                assert_eq!(cpus, 1);
                assert_eq!(named, None);
                assert_eq!(cpu, "EPYC");
                assert!(guests.is_empty());
                assert_eq!(timeout, None);
            }
            c => panic!("{c:?}"),
        }
        match parse_args(&args(&[
            "run",
            "--cpu",
            "qemu64,-svm",
            "--guest",
            "a.elf:mem=8M",
            "--timeout=30",
            "--cpus",
            "2",
        ]))
        .unwrap()
        {
            Command::Run {
                cpu,
                guests,
                timeout,
                cpus,
                ..
            } => {
                assert_eq!(cpus, 2);
                assert_eq!(cpu, "qemu64,-svm");
                assert_eq!(guests.len(), 1);
                assert_eq!(timeout, Some(30));
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn bad_args_are_refused() {
        assert!(parse_args(&args(&["frobnicate"])).is_err());
        assert!(parse_args(&args(&["run", "--cpu"])).is_err());
        assert!(parse_args(&args(&["run", "--timeout", "soon"])).is_err());
        assert!(parse_args(&args(&["run", "--cpus", "0"])).is_err());
        assert!(parse_args(&args(&["run", "--cpus", "65"])).is_err());
        assert!(parse_args(&args(&["iso"])).is_err(), "iso needs -o");
        assert!(parse_args(&args(&["test", "--cpu", "EPYC"])).is_err());
    }

    #[test]
    fn test_options() {
        assert_eq!(
            parse_args(&args(&["test", "--only", "EPYC", "--jobs", "3"])).unwrap(),
            Command::Test {
                only: Some("EPYC".into()),
                jobs: Some(3),
                named: None
            }
        );
        assert_eq!(
            parse_args(&args(&["test", "--guests", "smoke,hello", "--only=linux"])).unwrap(),
            Command::Test {
                only: Some("linux".into()),
                jobs: None,
                named: Some(vec!["smoke".into(), "hello".into()])
            }
        );
        match parse_args(&args(&["run", "--guests=linux", "--guests", "pic"])).unwrap() {
            Command::Run { named, .. } => {
                assert_eq!(named, Some(vec!["linux".into(), "pic".into()]))
            }
            c => panic!("{c:?}"),
        }
        assert!(parse_args(&args(&["test", "--guests", ","])).is_err());
        assert!(parse_args(&args(&["bench", "--guests", "smoke"])).is_err());
        assert_eq!(
            parse_args(&args(&["bench"])).unwrap(),
            Command::Bench(bench::Part::All)
        );
        assert_eq!(
            parse_args(&args(&["bench", "exits"])).unwrap(),
            Command::Bench(bench::Part::Exits)
        );
        assert_eq!(
            parse_args(&args(&["bench", "linux"])).unwrap(),
            Command::Bench(bench::Part::Linux)
        );
        assert!(parse_args(&args(&["bench", "exits", "linux"])).is_err());
        assert!(parse_args(&args(&["bench", "frobs"])).is_err());
    }

    #[test]
    fn profile_options() {
        assert_eq!(
            parse_args(&args(&["profile", "--cpu", "ryzen", "out_com1_scr"])).unwrap(),
            Command::Profile {
                cpu: "ryzen".into(),
                name: "out_com1_scr".into(),
                steps: profile::DEFAULT_STEPS
            }
        );
        assert_eq!(
            parse_args(&args(&[
                "profile",
                "irq_oneshot_hlt",
                "--steps=9000",
                "--cpu=corei7_skylake_x"
            ]))
            .unwrap(),
            Command::Profile {
                cpu: "corei7_skylake_x".into(),
                name: "irq_oneshot_hlt".into(),
                steps: 9000
            }
        );
        for bad in [
            &["profile", "cpuid"][..],
            &["profile", "--cpu", "ryzen"],
            &["profile", "--cpu", "EPYC", "cpuid"],
            &["profile", "--cpu", "ryzen", "guest_switch"],
            &["profile", "--cpu", "ryzen", "cpuid", "hypercall"],
            &["profile", "--cpu", "ryzen", "cpuid", "--steps", "0"],
            &["profile", "--cpu", "ryzen", "cpuid", "--steps", "many"],
            &["profile", "--cpu", "ryzen", "cpuid", "--only", "x"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_exit_status() {
        let ok = judge::parse("janus: Janus 0.1.0 (multiboot2)\njanus: done: 1 guests, 0 failed\n");
        assert_eq!(run_verdict(&ok).0, 0);
        let bad =
            judge::parse("janus: Janus 0.1.0 (multiboot2)\njanus: done: 1 guests, 1 failed\n");
        assert_eq!(run_verdict(&bad).0, 1);
        let refused = judge::parse(
            "janus: Janus 0.1.0 (multiboot2)\njanus: refused: no hardware virtualization\n",
        );
        assert_eq!(run_verdict(&refused).0, 2);
        let hang = judge::parse("janus: Janus 0.1.0 (multiboot2)\n");
        assert_eq!(run_verdict(&hang).0, 1);
        // `done` but something after it: the last line decides.
        let late = judge::parse("janus: done: 1 guests, 0 failed\njanus: PANIC: oops\n");
        assert_eq!(run_verdict(&late).0, 1);
    }
}
