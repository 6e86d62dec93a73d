//! `cargo janus bench`: how much slower Linux boots under Janus than on bare QEMU, then
//! the exit-cost table of bench_exits.rs (`cargo janus bench linux` / `bench exits` run
//! one half).
//!
//! Both halves run QEMU (TCG, `-cpu EPYC`) from a GRUB ISO with the same kernel,
//! initramfs, command line and 256 MiB of guest memory: GRUB boots Janus with Linux as
//! its only guest (`-m 512` for Janus plus the guest), or boots the kernel itself. Three
//! times are compared: the kernel's own uptime when its /init prints `JANUS-LINUX-MARKER`
//! (the guest's clock: the same work, with no BIOS or loader before it), the wall time
//! from launching QEMU to that line (the serial file is polled every 10 ms), and their
//! difference, the time before the kernel started (BIOS and GRUB in both halves, plus
//! Janus' own boot and its loading of the guest). Two command lines are measured: the
//! full boot log on the serial console and `quiet`. The runs alternate (Janus, bare,
//! Janus, ...), RUNS of each, and the report gives each time, the medians and their
//! ratio, plus the exits Janus counted (its `janus: summary:` lines) for Linux and for
//! the smoke guest, and what one exit costs in real time under TCG (the exitcost suite
//! without `-icount`): the figure that decides whether Linux can calibrate its TSC.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::emulator::{self, Emulator};
use crate::judge;
use crate::linux;
use crate::setup::Need;

/// Runs of each half.
pub const RUNS: usize = 3;
/// Limit of one run.
const TIMEOUT: Duration = Duration::from_secs(300);
/// How often the serial file is read.
const POLL: Duration = Duration::from_millis(10);
/// Machine memory of the Janus half.
const JANUS_MACHINE_MIB: u32 = 512;
const CPU: &str = "EPYC";

/// One timed emulator run.
#[derive(Debug)]
pub struct Timed {
    /// Seconds from launch to the first line containing the marker.
    pub to_marker: Option<f64>,
    /// Seconds until the emulator exited (or was killed).
    pub total: f64,
    pub timed_out: bool,
    pub serial: String,
}

/// Runs `cmd` (its own process group) until it exits or `limit` passes, reading `log`
/// every 10 ms and noting when a line containing `marker` is complete.
pub fn timed_run(
    mut cmd: Command,
    log: &Path,
    marker: &str,
    limit: Duration,
) -> Result<Timed, String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let out = log.with_extension("out");
    let out_file =
        File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let err_file = out_file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let mut seen: Vec<u8> = Vec::new();
    let mut pos = 0u64;
    let mut to_marker = None;
    let mut timed_out = false;
    loop {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        read_new(log, &mut pos, &mut seen);
        if to_marker.is_none() && marker_line_complete(&seen, marker) {
            to_marker = Some(start.elapsed().as_secs_f64());
        }
        if exited {
            break;
        }
        if start.elapsed() >= limit {
            timed_out = true;
            emulator::kill_group(&mut child);
            let _ = child.wait();
            break;
        }
        std::thread::sleep(POLL);
    }
    let total = start.elapsed().as_secs_f64();
    read_new(log, &mut pos, &mut seen);
    Ok(Timed {
        to_marker,
        total,
        timed_out,
        serial: String::from_utf8_lossy(&seen).into_owned(),
    })
}

fn read_new(path: &Path, pos: &mut u64, into: &mut Vec<u8>) {
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(*pos)).is_ok() {
            if let Ok(n) = f.read_to_end(into) {
                *pos += n as u64;
            }
        }
    }
}

/// Whether a complete line (ended by `\n`) of `bytes` contains `marker`.
fn marker_line_complete(bytes: &[u8], marker: &str) -> bool {
    let end = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i,
        None => return false,
    };
    bytes[..end]
        .windows(marker.len())
        .any(|w| w == marker.as_bytes())
}

/// The median of some numbers (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// What one Janus run said about why it did not reach the marker.
fn janus_failure(t: &Timed) -> String {
    let r = judge::parse(&t.serial);
    let why = match judge::judge(
        &judge::Expectation::Linux {
            guest: linux::GUEST,
            cpus: 1,
            tsc_clock: false,
        },
        &r,
    ) {
        Err(e) => e,
        Ok(()) => "no marker".into(),
    };
    if t.timed_out {
        format!("timeout ({} s): {why}", TIMEOUT.as_secs())
    } else {
        why
    }
}

/// The kernel's uptime when /init printed the marker (its `JANUS-LINUX-UPTIME:` line).
fn uptime_at_marker(serial: &str) -> Option<f64> {
    after(serial, linux::UPTIME)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The clocksource the kernel used at the marker (its `JANUS-LINUX-CLOCK:` line).
fn clock_at_marker(serial: &str) -> Option<String> {
    Some(after(serial, linux::CLOCK)?.trim().to_string()).filter(|c| !c.is_empty())
}

/// What follows `marker` on the first line holding it, in a Janus log (`[linux] ` before
/// it) or a bare one alike.
fn after<'a>(serial: &'a str, marker: &str) -> Option<&'a str> {
    let line = serial.lines().find(|l| l.contains(marker))?;
    Some(&line[line.find(marker)? + marker.len()..])
}

/// What one half (Janus or bare) of one configuration measured.
#[derive(Default)]
struct Half {
    launch: Vec<Option<f64>>,
    uptime: Vec<Option<f64>>,
    /// The clocksources the runs ended with, each once.
    clocks: Vec<String>,
    failed: Option<String>,
}

impl Half {
    fn record(&mut self, t: &Timed) {
        self.launch.push(t.to_marker);
        self.uptime.push(uptime_at_marker(&t.serial));
        if let Some(c) = clock_at_marker(&t.serial) {
            if !self.clocks.contains(&c) {
                self.clocks.push(c);
            }
        }
    }
    fn clocks_text(&self) -> String {
        if self.clocks.is_empty() {
            "-".into()
        } else {
            self.clocks.join(", ")
        }
    }
    fn median_launch(&self) -> Option<f64> {
        if self.failed.is_some() {
            None
        } else {
            median(&self.launch.iter().flatten().copied().collect::<Vec<_>>())
        }
    }
    /// The median time before the kernel started: launch to the marker less the
    /// kernel's uptime then.
    fn median_before_kernel(&self) -> Option<f64> {
        if self.failed.is_some() {
            return None;
        }
        let before: Vec<f64> = self
            .launch
            .iter()
            .zip(&self.uptime)
            .filter_map(|(l, u)| Some((*l)? - (*u)?))
            .collect();
        median(&before)
    }
    fn median_uptime(&self) -> Option<f64> {
        if self.failed.is_some() {
            None
        } else {
            median(&self.uptime.iter().flatten().copied().collect::<Vec<_>>())
        }
    }
}

fn ratio_text(j: Option<f64>, b: Option<f64>) -> String {
    match (j, b) {
        (Some(j), Some(b)) if b > 0.0 => format!("{:.2} ({j:.2} s / {b:.2} s)", j / b),
        _ => "- (both halves must reach the marker)".into(),
    }
}

/// Runs one kernel command line: RUNS of each half, alternating.
fn bench_config(
    root: &Path,
    assets: &linux::Assets,
    tag: &str,
    cmdline: &str,
) -> Result<(Half, Half, Option<judge::Summary>), String> {
    let linux_iso = root.join(format!("build/bench-linux-{tag}.iso"));
    crate::prepare(root, &assets.guest_specs_with(cmdline), &linux_iso, &[])?;
    let bare_iso = root.join(format!("build/bench-bare-{tag}.iso"));
    linux::bare_iso(root, assets, cmdline, &bare_iso)?;
    let logs = root.join("build/logs");
    let (mut janus, mut bare) = (Half::default(), Half::default());
    let mut summary = None;
    for i in 1..=RUNS {
        if janus.failed.is_none() {
            let log = logs.join(format!("bench-{tag}-janus-{i}.log"));
            let cmd = emulator::qemu_command(
                CPU,
                JANUS_MACHINE_MIB,
                &emulator::absolute(&linux_iso),
                &emulator::absolute(&log),
            );
            let t = timed_run(cmd, &log, linux::MARKER, TIMEOUT)?;
            match t.to_marker {
                Some(s) => println!(
                    "  janus run {i}: marker after {s:.2} s, kernel uptime {} (log {})",
                    opt(uptime_at_marker(&t.serial)),
                    log.display()
                ),
                None => {
                    let why = janus_failure(&t);
                    println!(
                        "  janus run {i}: no marker after {:.1} s: {why} (log {})",
                        t.total,
                        log.display()
                    );
                    janus.failed = Some(why);
                }
            }
            if let Some(s) = judge::parse(&t.serial).summary(linux::GUEST) {
                summary = Some(s.clone());
            }
            janus.record(&t);
        }
        if bare.failed.is_none() {
            let log = logs.join(format!("bench-{tag}-bare-{i}.log"));
            let cmd =
                linux::bare_qemu_command(&emulator::absolute(&bare_iso), &emulator::absolute(&log));
            let t = timed_run(cmd, &log, linux::MARKER, TIMEOUT)?;
            match t.to_marker {
                Some(s) => println!(
                    "  bare  run {i}: marker after {s:.2} s, kernel uptime {} (log {})",
                    opt(uptime_at_marker(&t.serial)),
                    log.display()
                ),
                None => {
                    let why = if t.timed_out {
                        format!("timeout ({} s)", TIMEOUT.as_secs())
                    } else {
                        "QEMU exited".into()
                    };
                    println!(
                        "  bare  run {i}: no marker after {:.1} s: {why} (log {})",
                        t.total,
                        log.display()
                    );
                    bare.failed = Some(why);
                }
            }
            bare.record(&t);
        }
    }
    Ok((janus, bare, summary))
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2} s"))
}

/// Which parts `cargo janus bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Linux's boot under Janus vs bare QEMU, then the exit-cost table.
    All,
    /// `cargo janus bench linux`: only Linux's boot.
    Linux,
    /// `cargo janus bench exits`: only the exit-cost table (bench_exits.rs).
    Exits,
}

impl Part {
    /// The word after `bench`.
    pub fn parse(word: &str) -> Option<Part> {
        match word {
            "linux" => Some(Part::Linux),
            "exits" => Some(Part::Exits),
            _ => None,
        }
    }
}

/// `cargo janus bench [linux|exits]`: exits 0 when every part it ran got all its figures.
pub fn cmd_bench(root: &Path, part: Part) -> Result<u8, String> {
    let _lock = crate::workspace_lock(root)?;
    let linux = match part {
        Part::Exits => 0,
        Part::Linux => bench_linux(root)?,
        // A Linux half that cannot run (no network for Debian's kernel) does not keep the
        // exit table from running; the command still fails.
        Part::All => bench_linux(root).unwrap_or_else(|e| {
            eprintln!("cargo janus: bench: Linux half: error: {e}");
            1
        }),
    };
    let exits = match part {
        Part::Linux => 0,
        Part::All | Part::Exits => {
            if part == Part::All {
                println!();
            }
            crate::bench_exits::run(root)?
        }
    };
    Ok(linux.max(exits))
}

/// The Linux half: RUNS boots of each setup and command line, then the smoke guest's
/// exits. The caller holds the workspace lock.
fn bench_linux(root: &Path) -> Result<u8, String> {
    crate::setup::ensure(&[Need::Iso, Need::Qemu, Need::Linux])?;
    let assets = linux::assets(root)?;
    eprintln!(
        "cargo janus: bench: {} + initramfs ({} bytes), -cpu {CPU}, guest memory {} MiB, {RUNS} runs each",
        assets.kernel_name,
        std::fs::metadata(&assets.initramfs).map(|m| m.len()).unwrap_or(0),
        linux::GUEST_MEM_MIB
    );
    // The same kernel, initramfs, memory and CPU in both halves; two command lines: the
    // kernel's full boot log on the serial console (every byte costs Janus two exits, an
    // LSR poll and a THR write), and `quiet`, which leaves the console to warnings.
    let quiet = format!("{} quiet", linux::BARE_CMDLINE);
    let configs = [("verbose", linux::BARE_CMDLINE), ("quiet", quiet.as_str())];
    let mut all_ok = true;
    let mut report = Vec::new();
    for (tag, cmdline) in configs {
        println!("{tag}: kernel command line `{cmdline}`");
        let (janus, bare, summary) = bench_config(root, &assets, tag, cmdline)?;
        all_ok &= janus.failed.is_none() && bare.failed.is_none();
        report.push((tag, cmdline.to_string(), janus, bare, summary));
    }
    println!();
    println!("Linux under Janus vs bare QEMU TCG -cpu {CPU}, medians of {RUNS} runs:");
    for (tag, cmdline, janus, bare, summary) in &report {
        println!("{tag} (`{cmdline}`):");
        println!("  kernel uptime at the marker (the guest's own clock; the same work in both halves): janus/bare = {}", ratio_text(janus.median_uptime(), bare.median_uptime()));
        println!(
            "  launch to the marker (both through BIOS and GRUB): janus/bare = {}",
            ratio_text(janus.median_launch(), bare.median_launch())
        );
        println!(
            "  before the kernel starts (BIOS, GRUB; for Janus also its boot and the guest's loading): janus/bare = {}",
            ratio_text(janus.median_before_kernel(), bare.median_before_kernel())
        );
        println!(
            "  clocksource at the marker: janus {}, bare {}",
            janus.clocks_text(),
            bare.clocks_text()
        );
        for (who, h) in [("janus", janus), ("bare", bare)] {
            if let Some(why) = &h.failed {
                println!("  {who}: FAILED: {why}");
            }
        }
        match summary {
            Some(s) => println!("  janus exits for linux: {}", s.exits_text()),
            None => println!("  janus exits for linux: - (no `janus: summary: linux` line)"),
        }
    }

    // The smoke guest's exits: one run of the default guest.
    let smoke_iso = root.join("build/bench-smoke.iso");
    let smoke = crate::default_guests();
    crate::prepare(root, &smoke, &smoke_iso, &[])?;
    let log = root.join("build/logs/bench-smoke.log");
    let cmd = emulator::qemu_command(
        CPU,
        emulator::DEFAULT_MEMORY_MIB,
        &emulator::absolute(&smoke_iso),
        &emulator::absolute(&log),
    );
    let t = timed_run(
        cmd,
        &log,
        "janus: done:",
        Duration::from_secs(Emulator::Qemu.default_timeout_secs()),
    )?;
    let r = judge::parse(&t.serial);
    match r.summary("smoke") {
        Some(s) => println!(
            "janus exits for smoke: {} (status {}, {:.1} s)",
            s.exits_text(),
            s.status,
            t.total
        ),
        None => println!(
            "janus exits for smoke: - (no summary line; last Janus line: {})",
            r.last_janus_line.as_deref().unwrap_or("none")
        ),
    }

    all_ok &= print_real_time_costs(root);
    Ok(if all_ok { 0 } else { 1 })
}

/// Linux reads the ACPI PM timer three times per reference (`acpi_pm_read_verified`) and
/// rejects the reading when it took more than this many TSC ticks (`tsc_read_refs`,
/// TSC_DEFAULT_THRESHOLD, before it knows the TSC's rate): with the PIT loop too slow as
/// well, it cannot calibrate the TSC and keeps time with the PM timer, an exit per read.
const LINUX_PM_REFERENCE_LIMIT: u64 = 0x20000;

/// What one exit costs in real time under TCG; whether the figures came.
fn print_real_time_costs(root: &Path) -> bool {
    let costs = crate::bench_exits::exit_iso(root)
        .and_then(|iso| crate::bench_exits::real_time_costs(root, &iso));
    let (mhz, costs) = match costs {
        Ok(c) => c,
        Err(e) => {
            println!("exits in real time under QEMU TCG -cpu {CPU}: - ({e})");
            return false;
        }
    };
    println!("exits in real time under QEMU TCG -cpu {CPU} (exitcost suite, no -icount, TSC {mhz:.0} MHz), per round trip:");
    for (exit, ticks) in &costs {
        println!("  {exit}: {ticks} TSC ticks, {:.1} us", *ticks as f64 / mhz);
    }
    if let Some((_, t)) = costs.iter().find(|(e, _)| e == "in_unclaimed") {
        println!(
            "  Linux's PM-timer reference (3 port reads) takes about {} ticks; it takes the reading under {LINUX_PM_REFERENCE_LIMIT}",
            3 * t
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_line() {
        let log = "[linux] JANUS-LINUX-CLOCK: acpi_pm\n";
        assert_eq!(clock_at_marker(log).as_deref(), Some("acpi_pm"));
        assert_eq!(
            clock_at_marker("JANUS-LINUX-CLOCK: tsc-early\n").as_deref(),
            Some("tsc-early")
        );
        assert_eq!(clock_at_marker("JANUS-LINUX-CLOCK:\n"), None);
    }

    #[test]
    fn before_the_kernel_is_launch_less_uptime() {
        let h = Half {
            launch: vec![Some(9.0), Some(8.0), None],
            uptime: vec![Some(2.5), Some(2.0), Some(1.0)],
            ..Half::default()
        };
        assert_eq!(h.median_before_kernel(), Some(6.25));
    }

    #[test]
    fn uptime_line() {
        let log = "[linux] JANUS-LINUX-MARKER: userspace reached\n[linux] JANUS-LINUX-UPTIME: 2.71 1.93\n";
        assert_eq!(uptime_at_marker(log), Some(2.71));
        assert_eq!(uptime_at_marker("[linux] JANUS-LINUX-MARKER\n"), None);
    }

    #[test]
    fn parts() {
        assert_eq!(Part::parse("exits"), Some(Part::Exits));
        assert_eq!(Part::parse("linux"), Some(Part::Linux));
        assert_eq!(Part::parse("all"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
    }

    #[test]
    fn marker_needs_a_whole_line() {
        assert!(!marker_line_complete(
            b"boot\nJANUS-LINUX-MAR",
            "JANUS-LINUX-MARKER"
        ));
        assert!(!marker_line_complete(
            b"boot\nJANUS-LINUX-MARKER: userspace",
            "JANUS-LINUX-MARKER"
        ));
        assert!(marker_line_complete(
            b"boot\n[linux] JANUS-LINUX-MARKER: userspace reached\r\n",
            "JANUS-LINUX-MARKER"
        ));
    }

    #[test]
    fn timed_run_sees_the_marker() {
        let dir = std::env::temp_dir().join(format!("janus-ci-bench-{}", std::process::id()));
        let log = dir.join("serial.log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 0.2; echo 'x MARK y' >> {}; sleep 0.2",
            log.display()
        ));
        let t = timed_run(cmd, &log, "MARK", Duration::from_secs(20)).unwrap();
        let m = t.to_marker.unwrap();
        assert!((0.15..2.0).contains(&m), "{m}");
        assert!(t.total >= m && !t.timed_out);
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("sleep 30");
        let t = timed_run(cmd, &log, "MARK", Duration::from_millis(300)).unwrap();
        assert!(t.timed_out && t.to_marker.is_none() && t.total < 5.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
