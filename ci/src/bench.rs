//! `cargo janus bench`: how much slower Linux boots under Janus than on bare QEMU.
//!
//! Both halves run QEMU (TCG, `-cpu EPYC`) with the same kernel, initramfs and 256 MiB of
//! guest memory; the time measured is from launching QEMU to the serial line containing
//! `JANUS-LINUX-MARKER` (the serial file is polled every 10 ms). Janus runs from a GRUB
//! ISO holding only the Linux guest, with `-m 512` for Janus plus the guest; bare QEMU
//! boots the kernel with `-kernel/-initrd`. The runs alternate (Janus, bare, Janus, ...),
//! RUNS of each, and the report gives each time, the medians and their ratio, plus the
//! exits Janus counted (its `janus: summary:` lines) for Linux and for the smoke guest.

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
/// The kernel's first console line.
const KERNEL_FIRST_LINE: &str = "Linux version";

/// Seconds of the kernel phase (first kernel line to the marker).
fn kernel_phase(t: &Timed) -> Option<f64> {
    Some(t.to_marker? - t.to_kernel?)
}

/// One timed emulator run.
#[derive(Debug)]
pub struct Timed {
    /// Seconds from launch to the first line containing the marker.
    pub to_marker: Option<f64>,
    /// Seconds from launch to the kernel's first line (`Linux version`), where the
    /// kernel phase starts: the part of the run both halves share (no BIOS, GRUB or
    /// decompression before it).
    pub to_kernel: Option<f64>,
    /// Seconds until the emulator exited (or was killed).
    pub total: f64,
    pub timed_out: bool,
    pub serial: String,
}

/// Runs `cmd` (its own process group) until it exits or `limit` passes, reading `log`
/// every 10 ms and noting when a line containing `marker` is complete.
pub fn timed_run(mut cmd: Command, log: &Path, marker: &str, limit: Duration) -> Result<Timed, String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let out = log.with_extension("out");
    let out_file = File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let err_file = out_file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(out_file).stderr(err_file).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let mut seen: Vec<u8> = Vec::new();
    let mut pos = 0u64;
    let mut to_marker = None;
    let mut to_kernel = None;
    let mut timed_out = false;
    loop {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        read_new(log, &mut pos, &mut seen);
        if to_kernel.is_none() && marker_line_complete(&seen, KERNEL_FIRST_LINE) {
            to_kernel = Some(start.elapsed().as_secs_f64());
        }
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
    Ok(Timed { to_marker, to_kernel, total, timed_out, serial: String::from_utf8_lossy(&seen).into_owned() })
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
    bytes[..end].windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// The median of some numbers (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn times_text(times: &[Option<f64>]) -> String {
    times.iter().map(|t| t.map_or("-".to_string(), |t| format!("{t:.2} s"))).collect::<Vec<_>>().join(", ")
}

/// What one Janus run said about why it did not reach the marker.
fn janus_failure(t: &Timed) -> String {
    let r = judge::parse(&t.serial);
    let why = match judge::judge(&judge::Expectation::Linux { guest: linux::GUEST }, &r) {
        Err(e) => e,
        Ok(()) => "no marker".into(),
    };
    if t.timed_out {
        format!("timeout ({} s): {why}", TIMEOUT.as_secs())
    } else {
        why
    }
}

pub fn cmd_bench(root: &Path) -> Result<u8, String> {
    let _lock = crate::workspace_lock(root)?;
    crate::setup::ensure(&[Need::Iso, Need::Qemu, Need::Linux])?;
    let assets = linux::assets(root)?;
    eprintln!(
        "cargo janus: bench: {} + initramfs ({} bytes), -cpu {CPU}, guest memory {} MiB, {RUNS} runs each",
        assets.kernel_name,
        std::fs::metadata(&assets.initramfs).map(|m| m.len()).unwrap_or(0),
        linux::GUEST_MEM_MIB
    );
    let linux_iso = root.join("build/bench-linux.iso");
    crate::prepare(root, &assets.guest_specs(), &linux_iso, &[])?;
    let logs = root.join("build/logs");

    let mut janus_times: Vec<Option<f64>> = Vec::new();
    let mut bare_times: Vec<Option<f64>> = Vec::new();
    let mut janus_kernel: Vec<Option<f64>> = Vec::new();
    let mut bare_kernel: Vec<Option<f64>> = Vec::new();
    let mut janus_summary: Option<judge::Summary> = None;
    let mut janus_failed: Option<String> = None;
    let mut bare_failed: Option<String> = None;
    for i in 1..=RUNS {
        if janus_failed.is_none() {
            let log = logs.join(format!("bench-janus-{i}.log"));
            let cmd = emulator::qemu_command(CPU, JANUS_MACHINE_MIB, &emulator::absolute(&linux_iso), &emulator::absolute(&log));
            let t = timed_run(cmd, &log, linux::MARKER, TIMEOUT)?;
            let r = judge::parse(&t.serial);
            match t.to_marker {
                Some(s) => println!("janus run {i}: marker after {s:.2} s (QEMU ran {:.1} s; log {})", t.total, log.display()),
                None => {
                    let why = janus_failure(&t);
                    println!("janus run {i}: no marker after {:.1} s: {why} (log {})", t.total, log.display());
                    janus_failed = Some(why);
                }
            }
            if let Some(s) = r.summary(linux::GUEST) {
                janus_summary = Some(s.clone());
            }
            janus_times.push(t.to_marker);
            janus_kernel.push(kernel_phase(&t));
        }
        if bare_failed.is_none() {
            let log = logs.join(format!("bench-bare-{i}.log"));
            let cmd = linux::bare_qemu_command(&assets, &emulator::absolute(&log));
            let t = timed_run(cmd, &log, linux::MARKER, TIMEOUT)?;
            match t.to_marker {
                Some(s) => {
                    let done = if t.serial.contains(linux::DONE) { "done line seen" } else { "NO done line" };
                    println!("bare  run {i}: marker after {s:.2} s (QEMU ran {:.1} s, {done}; log {})", t.total, log.display())
                }
                None => {
                    let why = if t.timed_out { format!("timeout ({} s)", TIMEOUT.as_secs()) } else { "QEMU exited".into() };
                    let last = t.serial.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                    println!("bare  run {i}: no marker after {:.1} s: {why}; last line: {last} (log {})", t.total, log.display());
                    bare_failed = Some(why);
                }
            }
            bare_times.push(t.to_marker);
            bare_kernel.push(kernel_phase(&t));
        }
    }

    println!();
    println!("time from launch to {} (QEMU TCG -cpu {CPU}):", linux::MARKER);
    let janus_ok: Vec<f64> = janus_times.iter().flatten().copied().collect();
    let bare_ok: Vec<f64> = bare_times.iter().flatten().copied().collect();
    let janus_median = if janus_failed.is_none() { median(&janus_ok) } else { None };
    let bare_median = if bare_failed.is_none() { median(&bare_ok) } else { None };
    match (janus_median, &janus_failed) {
        (Some(m), _) => println!("  janus: {}; median {m:.2} s", times_text(&janus_times)),
        (None, Some(why)) => println!("  janus: FAILED: {why}"),
        (None, None) => println!("  janus: no runs"),
    }
    match (bare_median, &bare_failed) {
        (Some(m), _) => println!("  bare:  {}; median {m:.2} s", times_text(&bare_times)),
        (None, Some(why)) => println!("  bare:  FAILED: {why}"),
        (None, None) => println!("  bare:  no runs"),
    }
    match (janus_median, bare_median) {
        (Some(j), Some(b)) if b > 0.0 => println!("  ratio janus/bare: {:.2}", j / b),
        _ => println!("  ratio janus/bare: - (both halves must reach the marker)"),
    }
    let jk: Vec<f64> = janus_kernel.iter().flatten().copied().collect();
    let bk: Vec<f64> = bare_kernel.iter().flatten().copied().collect();
    println!("kernel phase, `{KERNEL_FIRST_LINE}` to the marker (the same work in both halves):");
    println!("  janus: {}", times_text(&janus_kernel));
    println!("  bare:  {}", times_text(&bare_kernel));
    match (median(&jk), median(&bk)) {
        (Some(j), Some(b)) if b > 0.0 => println!("  ratio janus/bare: {:.2} (medians {j:.2} s / {b:.2} s)", j / b),
        _ => println!("  ratio janus/bare: -"),
    }
    match &janus_summary {
        Some(s) => println!("janus exits for linux: {}", s.exits_text()),
        None => println!("janus exits for linux: - (no `janus: summary: linux` line)"),
    }

    // The smoke guest's exits: one run of the default guest.
    let smoke_iso = root.join("build/bench-smoke.iso");
    let smoke = crate::default_guests();
    crate::prepare(root, &smoke, &smoke_iso, &[])?;
    let log = logs.join("bench-smoke.log");
    let cmd = emulator::qemu_command(CPU, emulator::DEFAULT_MEMORY_MIB, &emulator::absolute(&smoke_iso), &emulator::absolute(&log));
    let t = timed_run(cmd, &log, "janus: done:", Duration::from_secs(Emulator::Qemu.default_timeout_secs()))?;
    let r = judge::parse(&t.serial);
    match r.summary("smoke") {
        Some(s) => println!("janus exits for smoke: {} (status {}, {:.1} s)", s.exits_text(), s.status, t.total),
        None => println!(
            "janus exits for smoke: - (no summary line; last Janus line: {})",
            r.last_janus_line.as_deref().unwrap_or("none")
        ),
    }

    Ok(if janus_median.is_some() && bare_median.is_some() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
    }

    #[test]
    fn marker_needs_a_whole_line() {
        assert!(!marker_line_complete(b"boot\nJANUS-LINUX-MAR", "JANUS-LINUX-MARKER"));
        assert!(!marker_line_complete(b"boot\nJANUS-LINUX-MARKER: userspace", "JANUS-LINUX-MARKER"));
        assert!(marker_line_complete(b"boot\n[linux] JANUS-LINUX-MARKER: userspace reached\r\n", "JANUS-LINUX-MARKER"));
    }

    #[test]
    fn timed_run_sees_the_marker() {
        let dir = std::env::temp_dir().join(format!("janus-ci-bench-{}", std::process::id()));
        let log = dir.join("serial.log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("sleep 0.2; echo 'x MARK y' >> {}; sleep 0.2", log.display()));
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
