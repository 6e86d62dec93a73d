//! `cargo janus profile --cpu MODEL LOOP [--steps N]`: where the instructions of one exit
//! go, function by function (docs/testing.md, "Profiling an exit").
//!
//! The exitcost guest, given `profile=LOOP`, runs one of the exit-cost table's loops for
//! good: after a warm-up it executes Bochs' magic breakpoint (`xchg bx, bx`), where
//! Bochs' debugger (`bochs-bin`, `magic_break: enabled=1`) stops and traces N
//! instructions (`trace on`, `s N`), each with its address, into a file
//! (`debugger_log:`). The trace is cut at the world switch into exits (VT-x: from
//! `janus_vmx_exit` to VMRESUME/VMLAUNCH; AMD-V: from the instruction after VMRUN to the
//! next VMRUN), and each host address is given the function of Janus' ELF that holds it
//! (one `nm` call). Counts are instructions, as in the exit-cost table, so an exit costs
//! the same in every trace of the same build.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bench_exits;
use crate::emulator::{self, Machine};
use crate::judge;
use crate::setup::Need;

mod trace;
use trace::{parse_trace, split_exits, Profile, Symbols, Vendor, VMX_EXIT_SYMBOL};

/// Instructions traced when `--steps` is not given: a few exits of the longest loop
/// (irq_oneshot_hlt, about 1,800 to 2,800 host instructions a round trip).
pub const DEFAULT_STEPS: u64 = 4000;
/// The most `--steps` takes: Bochs prints each traced instruction, about 100 bytes.
pub const MAX_STEPS: u64 = 10_000_000;
/// The whole run: boot to the profiling line (GRUB, Janus, the guest) and the trace.
const TIMEOUT: Duration = Duration::from_secs(300);
/// How often the serial log and Bochs are looked at.
const POLL: Duration = Duration::from_millis(100);
/// The loops the exitcost guest's `profile=` runs: the rows of the exit-cost table but the
/// timing loop alone (no exit) and Janus' guest switch (no loop of the guest).
pub fn loops() -> impl Iterator<Item = &'static str> {
    bench_exits::exit_names().filter(|n| *n != "no_exit" && *n != bench_exits::GUEST_SWITCH)
}

/// Whether `name` is one of [`loops`].
pub fn is_loop(name: &str) -> bool {
    loops().any(|n| n == name)
}

/// Whether the guest's `exitcost: profiling NAME (runs for good)` line is in `line`.
fn says_profiling(line: &str, name: &str) -> bool {
    const KEY: &str = "exitcost: profiling ";
    line.find(KEY)
        .and_then(|i| line[i + KEY.len()..].split_whitespace().next())
        .is_some_and(|word| word == name)
}

/// Whether the serial log shows the guest profiling `name` yet; an error when it shows
/// that it never will (Janus failed or refused the CPU, the guest did not start, knows no
/// such loop or ended).
pub fn profiling_started(serial: &str, name: &str) -> Result<bool, String> {
    if serial.lines().any(|l| says_profiling(l, name)) {
        return Ok(true);
    }
    if let Some(l) = serial
        .lines()
        .find(|l| l.contains("exitcost: no loop named"))
    {
        return Err(format!("the guest says `{}`", l.trim()));
    }
    let r = judge::parse(serial);
    if let Some(p) = r.panic {
        return Err(format!("Janus failed: {p}"));
    }
    if let Some(why) = r.refused {
        return Err(format!("Janus refused the CPU: {why}"));
    }
    if let Some((guest, why)) = r.not_started.first() {
        return Err(format!("guest {guest} not started: {why}"));
    }
    if let Some((guest, how)) = r.ended.first() {
        return Err(format!("guest {guest} ended ({how}) before profiling"));
    }
    Ok(false)
}

/// The debugger's commands, read from a `-rc` file: run; once stopped (at the guest's
/// magic breakpoint, after its loop's warm-up), trace `steps` instructions and quit. A
/// file (as the matrix gives Bochs its `c`) rather than lines written to its stdin: once
/// stopped, the debugger reads the next command itself, so none has to be written at the
/// right moment.
pub fn debugger_commands(steps: u64) -> String {
    format!("c\ntrace on\ns {steps}\nq\n")
}

/// A process group led by a child (Bochs), killed with its group when dropped: whatever
/// error or timeout ends the profile, the emulator does not outlive it.
struct Group(Child);

impl Group {
    fn start(mut cmd: Command) -> Result<Group, String> {
        cmd.process_group(0);
        cmd.spawn()
            .map(Group)
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
    }

    /// Polls until `ready` says so (None), the child exits (its status), or `deadline`
    /// passes (an error saying what was awaited).
    fn wait_for(
        &mut self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut() -> Result<bool, String>,
    ) -> Result<Option<ExitStatus>, String> {
        loop {
            if ready()? {
                return Ok(None);
            }
            if let Some(status) = self.0.try_wait().map_err(|e| format!("cannot wait: {e}"))? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {} s waiting for {what}",
                    TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(Some(_))) {
            emulator::kill_group(&mut self.0);
            let _ = self.0.wait();
        }
    }
}

/// The files of one profile: build/profile/MODEL-LOOP.*.
struct Files {
    iso: PathBuf,
    serial: PathBuf,
    /// The debugger's log: the trace.
    trace: PathBuf,
    /// Bochs' own stdout and stderr.
    output: PathBuf,
    report: PathBuf,
}

impl Files {
    fn new(root: &Path, model: &str, name: &str) -> Files {
        let dir = emulator::absolute(&root.join("build/profile"));
        let stem = format!("{}-{name}", emulator::sanitize(model));
        let file = |ext: &str| dir.join(format!("{stem}.{ext}"));
        Files {
            iso: dir.join(format!("{name}.iso")),
            serial: file("log"),
            trace: file("trace"),
            output: file("out"),
            report: file("txt"),
        }
    }
}

/// Whether the debugger's log shows the simulation stopped after `c`: its second
/// `Next at t=` (the first is at t=0, before `c`).
pub fn debugger_stopped(log: &str) -> bool {
    log.matches("Next at t=").count() >= 2
}

/// Starts `bochs-bin` on build/profile's ISO for model `model`, its debugger reading
/// [`debugger_commands`] and logging to `files.trace`.
fn start_bochs(root: &Path, model: &str, steps: u64, files: &Files) -> Result<Group, String> {
    let machine = Machine {
        model,
        memory_mib: emulator::DEFAULT_MEMORY_MIB,
        cpus: 1,
        ips: emulator::BOCHS_IPS,
    };
    // The guest stops the simulation itself (`x86::magic_break` after its warm-up): a
    // SIGINT sent once its profiling line showed was lost again and again in loops of
    // exits finished in place (ryzen's port I/O, corei7_skylake_x's CPUID).
    let debugger_log = format!(
        "debugger_log: {}\nmagic_break: enabled=1\n",
        files.trace.display()
    );
    let rc = emulator::write_bxrc(root, &machine, &files.iso, &files.serial, &debugger_log)?;
    let commands = emulator::bochs_file(root, &files.serial, "profile.rc");
    emulator::write_file(&commands, &debugger_commands(steps))?;
    // Start from empty files so that a stale log or trace is never read.
    emulator::write_file(&files.serial, "")?;
    emulator::write_file(&files.trace, "")?;
    let output = std::fs::File::create(&files.output)
        .map_err(|e| format!("cannot create {}: {e}", files.output.display()))?;
    let output_err = output.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("bochs-bin");
    cmd.arg("-q")
        .arg("-f")
        .arg(&rc)
        .arg("-rc")
        .arg(&commands)
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err);
    Group::start(cmd)
}

/// Boots `files.iso` on Bochs model `model` under the debugger, which stops where the
/// guest profiling `name` breaks and traces `steps` instructions. Returns the debugger's
/// log.
fn trace(
    root: &Path,
    model: &str,
    name: &str,
    steps: u64,
    files: &Files,
) -> Result<String, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut bochs = start_bochs(root, model, steps, files)?;
    let what = format!("the guest profiling {name} to stop at its breakpoint");
    let (serial, trace) = (&files.serial, &files.trace);
    let stopped = || {
        let log = std::fs::read_to_string(trace).unwrap_or_default();
        if debugger_stopped(&log) {
            return Ok(true);
        }
        // Not there yet, or never: Janus refused or failed, the guest ended.
        profiling_started(&std::fs::read_to_string(serial).unwrap_or_default(), name).map(|_| false)
    };
    if let Some(status) = bochs.wait_for(deadline, &what, stopped)? {
        return Err(format!(
            "Bochs ended ({status}) before {what} (serial log {}, output {})",
            serial.display(),
            files.output.display()
        ));
    }
    let what = format!("Bochs to trace {steps} instructions and quit");
    bochs.wait_for(deadline, &what, || Ok(false))?;
    std::fs::read_to_string(&files.trace)
        .map_err(|e| format!("cannot read {}: {e}", files.trace.display()))
}

/// `cargo janus profile --cpu MODEL LOOP [--steps N]`: builds, traces, prints the
/// profile and writes it to build/profile/MODEL-LOOP.txt.
pub fn run(root: &Path, model: &str, name: &str, steps: u64) -> Result<u8, String> {
    crate::setup::ensure(&[Need::Iso, Need::Bochs])?;
    let files = Files::new(root, model, name);
    bench_exits::exitcost_iso(root, &files.iso, Some(&format!("profile={name}")))?;
    let symbols = Symbols::load(&crate::build::janus_elf(root))?;
    eprintln!(
        "cargo janus: profiling {name} on {model}: booting {} in Bochs' debugger, timeout {} s",
        files.iso.display(),
        TIMEOUT.as_secs()
    );
    let text = trace(root, model, name, steps, &files)?;
    let (insns, unread) = parse_trace(&text);
    let context = format!("trace {}", files.trace.display());
    if insns.is_empty() {
        return Err(format!(
            "no traced instruction in the debugger's log ({context})"
        ));
    }
    let vendor = Vendor::of_trace(&insns, || symbols.address(VMX_EXIT_SYMBOL))
        .map_err(|e| format!("{e} ({context})"))?;
    let exits = split_exits(&insns, vendor);
    if exits.is_empty() {
        return Err(format!(
            "no complete exit in {} traced instructions: try more --steps ({context})",
            insns.len()
        ));
    }
    let profile = Profile::count(&exits, |a| symbols.function_of(a));
    let mut report = profile.render(&format!(
        "profile of {name} on {model} ({}): {} traced instructions, {} in complete exits ({})",
        vendor.name(),
        insns.len(),
        profile.total(),
        files.trace.display()
    ));
    if unread > 0 {
        let _ = writeln!(report, "({unread} trace lines not understood)");
    }
    print!("{report}");
    emulator::write_file(&files.report, &report)?;
    eprintln!("cargo janus: wrote {}", files.report.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profiling_line_or_why_it_will_not_come() {
        let booting = "janus: Janus 0.1.0 (multiboot2)\n";
        assert_eq!(profiling_started(booting, "cpuid"), Ok(false));
        let going = format!("{booting}[exitcost] exitcost: profiling cpuid (runs for good)\n");
        assert_eq!(profiling_started(&going, "cpuid"), Ok(true));
        // Another loop's line is not this one's.
        assert_eq!(profiling_started(&going, "cpu"), Ok(false));
        let unknown = format!("{booting}[exitcost] exitcost: no loop named frob\n");
        assert!(profiling_started(&unknown, "frob").is_err());
        let refused = format!("{booting}janus: refused: no hardware virtualization\n");
        assert!(profiling_started(&refused, "cpuid").is_err());
    }

    #[test]
    fn loops_are_the_guests() {
        assert!(is_loop("cpuid") && is_loop("irq_oneshot_hlt") && is_loop("in_unclaimed"));
        assert!(!is_loop("no_exit") && !is_loop("guest_switch") && !is_loop("frob"));
        // Each is a `profile` arm of the guest.
        let src = include_str!("../../../guests/src/bin/exitcost.rs");
        let profile = &src[src.find("fn profile(").unwrap()..];
        for n in loops() {
            assert!(profile.contains(&format!("\"{n}\"")), "{n}");
        }
        assert_eq!(debugger_commands(9), "c\ntrace on\ns 9\nq\n");
    }

    #[test]
    fn the_debugger_stops_at_its_second_next_at() {
        let start = "Next at t=0\n(0) [0x0000fffffff0] f000:fff0 (unk. ctxt): jmpf 0xf000:e05b ; ea5be000f0\nc\n";
        assert!(!debugger_stopped(start));
        assert!(debugger_stopped(&format!("{start}Next at t=155415317\n")));
    }
}
