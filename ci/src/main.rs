//! `cargo janus`: build Janus and its test guests, boot them in emulated CPUs, judge the
//! serial console (see docs/console.md).
//!
//! This file holds the command line (hand-parsed) and the three commands `run`, `iso`
//! and `test`. The work itself lives in the modules below.

mod build;
mod emulator;
mod iso;
mod judge;
mod matrix;
mod setup;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use emulator::Emulator;
use iso::GuestSpec;

const USAGE: &str = "\
cargo janus: build, boot and test Janus in emulated CPUs

USAGE:
    cargo janus run  [--cpu MODEL] [--guest FILE[:KEY=VALUE,...]]... [--timeout SECS]
    cargo janus iso  [--guest FILE[:KEY=VALUE,...]]... -o FILE.iso
    cargo janus test [--only SUBSTRING] [--jobs N]
    cargo janus bench
    cargo janus help

COMMANDS:
    run     Build Janus and the guests, make a GRUB ISO with the given guests (default: the
            built-in `smoke` guest), boot it in the emulator that provides MODEL (QEMU or
            Bochs; default EPYC) and stream the serial console. Exits 0 when Janus' last
            line is `janus: done: N guests, 0 failed`, 2 when Janus refused the CPU, else 1.
    iso     Build only the ISO.
    test    Run the host unit tests, then boot the test guests on every CPU model of the
            matrix (in parallel), print a table and exit non-zero if any row failed.
            Serial logs go to build/logs/MODEL.log.
    bench   Not yet.

OPTIONS:
    --cpu MODEL        CPU model. QEMU names (EPYC, EPYC-Rome, Opteron_G5, phenom, qemu64,
                       max, 'qemu64,-svm', ...) run in QEMU; Bochs names (corei7_skylake_x,
                       tigerlake, ryzen, zambezi, trinity_apu, phenom_8650_toliman, ...) in
                       Bochs.
    --guest SPEC       FILE[:KEY=VALUE,...], e.g. `--guest my.elf:name=foo,mem=32M,cmdline=a b`.
                       Becomes `module2 /guests/BASENAME name=foo mem=32M cmdline=\"a b\"`.
                       The name defaults to the file's stem. FILE may also be the name of a
                       built-in guest (smoke, hello). Repeat for more guests.
    --timeout SECS     Kill the emulator after SECS seconds (default 120 QEMU, 240 Bochs).
    -o FILE            Where `iso` writes the ISO.
    --only SUBSTRING   `test`: run only the matrix rows whose model contains SUBSTRING.
    --jobs N           `test`: emulator runs in parallel (default: number of CPUs).
";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Run { cpu: String, guests: Vec<GuestSpec>, timeout: Option<u64> },
    Iso { guests: Vec<GuestSpec>, out: PathBuf },
    Test { only: Option<String>, jobs: Option<usize> },
    Bench,
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
        Command::Bench => {
            println!("cargo janus bench: not yet");
            Ok(2)
        }
        Command::Run { cpu, guests, timeout } => cmd_run(&cpu, guests, timeout),
        Command::Iso { guests, out } => cmd_iso(guests, &out),
        Command::Test { only, jobs } => cmd_test(only.as_deref(), jobs),
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
    let Some(first) = args.first() else { return Ok(Command::Help) };
    let rest = &args[1..];
    let mut cpu: Option<String> = None;
    let mut guests = Vec::new();
    let mut timeout = None;
    let mut out = None;
    let mut only = None;
    let mut jobs = None;
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
            rest.get(i).cloned().ok_or_else(|| format!("{name} needs a value"))
        };
        match (first.as_str(), name.as_str()) {
            ("run", "--cpu") => cpu = Some(value()?),
            ("run" | "iso", "--guest") => guests.push(GuestSpec::parse(&value()?)?),
            ("run", "--timeout") => {
                let v = value()?;
                let secs: u64 = v.parse().map_err(|_| format!("--timeout: `{v}` is not a number of seconds"))?;
                if secs == 0 {
                    return Err("--timeout must be at least 1".into());
                }
                timeout = Some(secs);
            }
            ("iso", "-o" | "--output") => out = Some(PathBuf::from(value()?)),
            ("test", "--only") => only = Some(value()?),
            ("test", "--jobs" | "-j") => {
                let v = value()?;
                let n: usize = v.parse().map_err(|_| format!("--jobs: `{v}` is not a number"))?;
                jobs = Some(n.max(1));
            }
            _ => return Err(format!("unexpected argument `{arg}` for `{first}`")),
        }
        i += 1;
    }
    match first.as_str() {
        "help" | "-h" | "--help" => Ok(Command::Help),
        "bench" => Ok(Command::Bench),
        "run" => Ok(Command::Run { cpu: cpu.unwrap_or_else(|| "EPYC".into()), guests, timeout }),
        "iso" => {
            let out = out.ok_or("iso needs -o FILE.iso")?;
            Ok(Command::Iso { guests, out })
        }
        "test" => Ok(Command::Test { only, jobs }),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ci/ has a parent").to_path_buf()
}

/// Builds Janus and whatever the guests need, then the ISO. Returns the ISO's path.
fn prepare(root: &Path, guests: &[GuestSpec], iso_path: &Path, needs: &[setup::Need]) -> Result<PathBuf, String> {
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

fn default_guests() -> Vec<GuestSpec> {
    vec![GuestSpec::parse("smoke:name=smoke,mem=16M").expect("built-in spec parses")]
}

fn cmd_iso(guests: Vec<GuestSpec>, out: &Path) -> Result<u8, String> {
    let root = workspace_root();
    let guests = if guests.is_empty() { default_guests() } else { guests };
    prepare(&root, &guests, out, &[setup::Need::Iso])?;
    eprintln!("cargo janus: wrote {}", out.display());
    Ok(0)
}

fn cmd_run(cpu: &str, guests: Vec<GuestSpec>, timeout: Option<u64>) -> Result<u8, String> {
    let root = workspace_root();
    let emulator = Emulator::for_model(cpu);
    let guests = if guests.is_empty() { default_guests() } else { guests };
    let iso = root.join("build/run.iso");
    prepare(&root, &guests, &iso, &[setup::Need::Iso, emulator.need()])?;
    let timeout = Duration::from_secs(timeout.unwrap_or(emulator.default_timeout_secs()));
    let name = emulator::sanitize(cpu);
    let log = root.join("build/logs").join(format!("run-{name}.log"));
    eprintln!("cargo janus: booting {} in {} (-cpu {cpu}), timeout {} s", iso.display(), emulator.name(), timeout.as_secs());
    let outcome = emulator::boot(&root, emulator, cpu, &iso, &log, timeout, true)?;
    let report = judge::parse(&outcome.serial);
    let (code, verdict) = run_verdict(&report);
    let mut how = format!("{} after {:.1} s", emulator.name(), outcome.seconds);
    if outcome.timed_out {
        how = format!("{} stopped at the {} s timeout", emulator.name(), timeout.as_secs());
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
        (Some(last), Some((_, 0))) if last.starts_with("janus: done:") => (0, format!("passed: {}", &last["janus: ".len()..])),
        (Some(last), _) => (1, format!("failed; last Janus line: {last}")),
        (None, _) => (1, "failed: no output from Janus".into()),
    }
}

fn cmd_test(only: Option<&str>, jobs: Option<usize>) -> Result<u8, String> {
    let root = workspace_root();
    let rows: Vec<matrix::Row> = matrix::rows().into_iter().filter(|r| only.is_none_or(|s| r.model.contains(s))).collect();
    if rows.is_empty() {
        return Err(format!("no matrix row matches `{}`", only.unwrap_or("")));
    }
    let mut needs = vec![setup::Need::Iso];
    for r in &rows {
        let n = Emulator::for_model(r.model).need();
        if !needs.contains(&n) {
            needs.push(n);
        }
    }
    setup::ensure(&needs)?;

    eprintln!("cargo janus: host unit tests (cargo test --workspace)");
    build::host_tests(&root)?;

    let guests = matrix::guests();
    let iso = root.join("build/matrix.iso");
    prepare(&root, &guests, &iso, &needs)?;

    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    eprintln!("cargo janus: running {} rows, {jobs} at a time", rows.len());
    let results = matrix::run_all(&root, &iso, rows, jobs);
    println!();
    print!("{}", table::render(&results));
    let passed = results.iter().filter(|r| r.verdict.is_ok()).count();
    let failed = results.len() - passed;
    for r in results.iter().filter(|r| r.verdict.is_err()) {
        println!("log of {}: {}", r.row.model, r.log.display());
    }
    println!("matrix: {passed} passed, {failed} failed");
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
        assert_eq!(parse_args(&args(&["run", "--help"])).unwrap(), Command::Help);
    }

    #[test]
    fn run_defaults_and_options() {
        match parse_args(&args(&["run"])).unwrap() {
            Command::Run { cpu, guests, timeout } => {
                assert_eq!(cpu, "EPYC");
                assert!(guests.is_empty());
                assert_eq!(timeout, None);
            }
            c => panic!("{c:?}"),
        }
        match parse_args(&args(&["run", "--cpu", "qemu64,-svm", "--guest", "a.elf:mem=8M", "--timeout=30"])).unwrap() {
            Command::Run { cpu, guests, timeout } => {
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
        assert!(parse_args(&args(&["iso"])).is_err(), "iso needs -o");
        assert!(parse_args(&args(&["test", "--cpu", "EPYC"])).is_err());
    }

    #[test]
    fn test_options() {
        assert_eq!(
            parse_args(&args(&["test", "--only", "EPYC", "--jobs", "3"])).unwrap(),
            Command::Test { only: Some("EPYC".into()), jobs: Some(3) }
        );
    }

    #[test]
    fn run_exit_status() {
        let ok = judge::parse("janus: Janus 0.1.0 (multiboot2)\njanus: done: 1 guests, 0 failed\n");
        assert_eq!(run_verdict(&ok).0, 0);
        let bad = judge::parse("janus: Janus 0.1.0 (multiboot2)\njanus: done: 1 guests, 1 failed\n");
        assert_eq!(run_verdict(&bad).0, 1);
        let refused = judge::parse("janus: Janus 0.1.0 (multiboot2)\njanus: refused: no hardware virtualization\n");
        assert_eq!(run_verdict(&refused).0, 2);
        let hang = judge::parse("janus: Janus 0.1.0 (multiboot2)\n");
        assert_eq!(run_verdict(&hang).0, 1);
        // `done` but something after it: the last line decides.
        let late = judge::parse("janus: done: 1 guests, 0 failed\njanus: PANIC: oops\n");
        assert_eq!(run_verdict(&late).0, 1);
    }
}
