//! Boots an ISO in QEMU (TCG) or Bochs, with a time limit, and collects the serial log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::setup::Need;
use vmm_core::machine_end::EndCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    Qemu,
    Bochs,
}

/// Bochs' CPU model names (`bochs-bin` 2.7, `cpu: model=`). Everything else goes to QEMU.
const BOCHS_MODELS: &[&str] = &[
    "bx_generic",
    "pentium",
    "pentium_mmx",
    "amd_k6_2_chomper",
    "p2_klamath",
    "p3_katmai",
    "p4_willamette",
    "core_duo_t2400_yonah",
    "atom_n270",
    "p4_prescott_celeron_336",
    "athlon64_clawhammer",
    "athlon64_venice",
    "turion64_tyler",
    "phenom_8650_toliman",
    "core2_penryn_t9600",
    "corei5_lynnfield_750",
    "corei5_arrandale_m520",
    "corei7_sandy_bridge_2600k",
    "zambezi",
    "trinity_apu",
    "ryzen",
    "corei7_ivy_bridge_3770k",
    "corei7_haswell_4770",
    "broadwell_ult",
    "corei7_skylake_x",
    "corei3_cnl",
    "corei7_icelake_u",
    "tigerlake",
    "sapphire_rapids",
];

impl Emulator {
    pub fn for_model(model: &str) -> Emulator {
        if BOCHS_MODELS.contains(&model) {
            Emulator::Bochs
        } else {
            Emulator::Qemu
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Emulator::Qemu => "qemu",
            Emulator::Bochs => "bochs",
        }
    }

    pub fn need(self) -> Need {
        match self {
            Emulator::Qemu => Need::Qemu,
            Emulator::Bochs => Need::Bochs,
        }
    }

    pub fn default_timeout_secs(self) -> u64 {
        match self {
            Emulator::Qemu => 120,
            Emulator::Bochs => 240,
        }
    }
}

/// A model name fit for a file name: `qemu64,-svm` → `qemu64_-svm`.
pub fn sanitize(model: &str) -> String {
    model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    /// The serial log (lossily decoded).
    pub serial: String,
    pub seconds: f64,
    pub timed_out: bool,
    /// The emulator's exit code (None when killed by a signal).
    pub exit_code: Option<i32>,
    /// Where the emulator's own stdout/stderr went.
    pub output_file: PathBuf,
}

/// Machine memory (MiB) when nothing asks for more: enough for Janus and the test guests.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

/// QEMU's deterministic clock: one emulated instruction per nanosecond of virtual time
/// and no sleeping when idle, so the guest's TSC counts instructions, exactly and
/// repeatably (`cargo janus bench exits`). Use it with a CPU model without RDRAND
/// (`EPYC,-rdrand`): RDRAND breaks icount's determinism.
pub const QEMU_ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// One emulator run: what it boots, on which CPU, for how long.
#[derive(Clone, Copy)]
pub struct Boot<'a> {
    pub emulator: Emulator,
    pub model: &'a str,
    pub memory_mib: u32,
    /// Host CPUs of the emulated machine (QEMU `-smp`, Bochs `cpu: count=`).
    pub cpus: u32,
    /// Bochs' emulated clock, instructions per emulated second (`cpu: ips=`; usually
    /// [`BOCHS_IPS`]).
    pub ips: u64,
    pub iso: &'a Path,
    /// The serial log; its file stem also names the Bochs configuration files, so
    /// parallel runs need distinct logs.
    pub log: &'a Path,
    pub timeout: Duration,
    /// Copy the log to stdout as it grows.
    pub stream: bool,
    /// QEMU runs with [`QEMU_ICOUNT`] (Bochs' clock already counts instructions:
    /// `clock: sync=none`).
    pub icount: bool,
    /// More QEMU arguments (`-kernel ...`: QEMU then boots that kernel, not the ISO).
    pub qemu_args: &'a [String],
}

/// Boots `b.iso` as `b` says and waits for the emulator to end or time out.
pub fn boot(root: &Path, b: &Boot<'_>) -> Result<Outcome, String> {
    let Boot {
        emulator,
        model,
        memory_mib,
        cpus,
        ips,
        iso,
        log,
        timeout,
        stream,
        icount,
        qemu_args,
    } = *b;
    let dir = log.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Start from an empty log so a stale one is never judged.
    File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let output_file = log.with_extension("out");
    let output = File::create(&output_file)
        .map_err(|e| format!("cannot create {}: {e}", output_file.display()))?;
    let output_err = output.try_clone().map_err(|e| e.to_string())?;

    let iso = absolute(iso);
    let log_abs = absolute(log);
    let mut cmd = match emulator {
        Emulator::Qemu => {
            let mut cmd = qemu_command(model, memory_mib, &iso, &log_abs);
            cmd.args(qemu_smp_args(cpus));
            if icount {
                cmd.args(QEMU_ICOUNT);
            }
            cmd.args(qemu_args);
            cmd
        }
        Emulator::Bochs => {
            let machine = Machine {
                model,
                memory_mib,
                cpus,
                ips,
            };
            bochs_command(root, &machine, &iso, &log_abs, timeout)?
        }
    };
    cmd.stdin(Stdio::null()).stdout(output).stderr(output_err);
    // Bochs runs under `timeout -k 10`; give that a chance before killing it ourselves.
    let hard_limit = match emulator {
        Emulator::Qemu => timeout,
        Emulator::Bochs => timeout + Duration::from_secs(20),
    };
    let mut stdout = std::io::stdout();
    let mut sink = |bytes: &[u8]| {
        let _ = stdout.write_all(bytes);
        let _ = stdout.flush();
    };
    let sink: Option<Sink> = if stream { Some(&mut sink) } else { None };
    let (status, timed_out, seconds) =
        supervise(cmd, log, hard_limit, sink).map_err(|e| format!("{}: {e}", emulator.name()))?;
    let exit_code = status.and_then(|s| s.code());
    // `timeout` exits 124 when it had to stop Bochs (137 when it had to SIGKILL it).
    let timed_out =
        timed_out || (emulator == Emulator::Bochs && matches!(exit_code, Some(124) | Some(137)));
    let bytes = std::fs::read(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    Ok(Outcome {
        serial: String::from_utf8_lossy(&bytes).into_owned(),
        seconds,
        timed_out,
        exit_code,
        output_file,
    })
}

/// Where streamed serial output goes.
type Sink<'a> = &'a mut dyn FnMut(&[u8]);

/// Starts `cmd` in its own process group, copies what is appended to `log` into `sink`
/// while it runs, and SIGKILLs the group after `limit`. Returns the exit status (None when
/// it could not be collected), whether the limit was hit, and the wall time.
fn supervise(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    mut sink: Option<Sink>,
) -> Result<(Option<ExitStatus>, bool, f64), String> {
    // Its own process group, so a timeout can end the emulator and anything it started.
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let mut tail = Tail::new(log);
    let (status, timed_out) = loop {
        if let Some(sink) = sink.as_mut() {
            let new = tail.read_new();
            if !new.is_empty() {
                sink(&new);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break (Some(status), false),
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("cannot wait: {e}"));
            }
        }
        if start.elapsed() >= limit {
            kill_group(&mut child);
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(sink) = sink.as_mut() {
        sink(&tail.read_new());
    }
    Ok((status, timed_out, seconds))
}

pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn qemu_command(model: &str, memory_mib: u32, iso: &Path, log: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        model,
        "-m",
        &memory_mib.to_string(),
        "-display",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .args([
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        // CPU resets and a triple fault, which ends the run under `-no-reboot` without a
        // word on the serial line: `ending` names it.
        "-d",
        "cpu_reset",
        "-D",
    ])
    .arg(qemu_debug_log(log))
    .arg("-cdrom")
    .arg(iso);
    cmd
}

/// Where QEMU's `-d cpu_reset` log of a run with serial log `log` goes.
pub fn qemu_debug_log(log: &Path) -> PathBuf {
    log.with_extension("qemu")
}

/// How an emulator run that ended on its own came to its end, in words for a failed row
/// whose serial log stopped early.
pub fn ending(emulator: Emulator, exit_code: Option<i32>, log: &Path, output: &Path) -> String {
    let name = emulator.name();
    let Some(code) = exit_code else {
        return format!("{name} was killed by a signal");
    };
    if emulator == Emulator::Bochs {
        return format!("{name} exited {code}, see {}", output.display());
    }
    let debug = std::fs::read_to_string(qemu_debug_log(log)).unwrap_or_default();
    let stderr = std::fs::read_to_string(output).unwrap_or_default();
    qemu_ending(code, &debug, &stderr)
}

/// Whether QEMU's `-d cpu_reset` log of the run with serial log `log` records a triple
/// fault.
pub fn qemu_triple_fault(log: &Path) -> bool {
    let debug = std::fs::read_to_string(qemu_debug_log(log)).unwrap_or_default();
    says_triple_fault(&debug)
}

fn says_triple_fault(debug: &str) -> bool {
    debug.lines().any(|l| l.trim() == "Triple fault")
}

/// [`ending`] for QEMU from its exit code, its `-d cpu_reset` log and its stderr.
fn qemu_ending(code: i32, debug: &str, stderr: &str) -> String {
    if says_triple_fault(debug) {
        return "QEMU: triple fault (a CPU of Janus; no exception line can reach the log)".into();
    }
    // Janus' end code, which QEMU's debug-exit turns into 2c+1.
    let janus = u8::try_from(code >> 1).ok().filter(|_| code % 2 == 1);
    if let Some(end) = janus.and_then(EndCode::from_code) {
        return format!(
            "Janus ended the machine: {} (QEMU exited {code})",
            end.words()
        );
    }
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.contains("TCG doesn't support"))
        .unwrap_or("no message");
    format!("QEMU exited {code}: {last}")
}

/// QEMU's arguments for `cpus` host CPUs: none for one (QEMU's default), `-smp N` else.
pub fn qemu_smp_args(cpus: u32) -> Vec<String> {
    if cpus <= 1 {
        return Vec::new();
    }
    vec!["-smp".to_string(), cpus.to_string()]
}

/// The emulated machine of a Bochs run: CPU model, memory, CPU count, clock.
pub struct Machine<'a> {
    pub model: &'a str,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Instructions per emulated second (`cpu: ips=`).
    pub ips: u64,
}

/// Bochs' emulated clock: instructions per emulated second. 10 M rather than the 4 M that
/// boots fastest: guests that take a 1 kHz timer interrupt spend three exits per tick
/// (host timer, interrupt window, EOI), which at the exit costs of the time (about 900 to
/// 2,500 instructions each, `cargo janus bench`) would fill a whole millisecond at 4 M and
/// leave the guest no time between ticks.
pub const BOCHS_IPS: u64 = 10_000_000;

/// The Bochs configuration for one run (see /work/shared/testbench.md).
pub fn bxrc(m: &Machine<'_>, iso: &Path, serial: &Path, bochs_log: &Path) -> String {
    let Machine {
        model,
        memory_mib,
        cpus,
        ips,
    } = *m;
    let cpus = cpus.max(1);
    format!(
        "\
memory: guest={memory_mib}, host={memory_mib}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
cpu: model={model}, count={cpus}, ips={ips}, reset_on_triple_fault=0
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev={serial}
display_library: term
log: {log}
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
clock: sync=none, time0=local
mouse: enabled=0
",
        iso = iso.display(),
        serial = serial.display(),
        log = bochs_log.display(),
    )
}

/// Where a Bochs run keeps its files: build/bochs/NAME.EXT, NAME the serial log's stem
/// (unique per run: two rows may share a model).
pub fn bochs_file(root: &Path, log: &Path, ext: &str) -> PathBuf {
    let name = log
        .file_stem()
        .map(|s| sanitize(&s.to_string_lossy()))
        .unwrap_or_else(|| "bochs".into());
    root.join("build/bochs").join(format!("{name}.{ext}"))
}

/// Writes `text` to `path`, creating its directory.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes the bxrc of a run ([`bxrc`], then the lines `more`) to build/bochs; returns its
/// path.
pub fn write_bxrc(
    root: &Path,
    machine: &Machine<'_>,
    iso: &Path,
    log: &Path,
    more: &str,
) -> Result<PathBuf, String> {
    let rc = bochs_file(root, log, "bxrc");
    let bochs_log = absolute(&bochs_file(root, log, "bochs.log"));
    write_file(&rc, &(bxrc(machine, iso, log, &bochs_log) + more))?;
    Ok(rc)
}

fn bochs_command(
    root: &Path,
    machine: &Machine<'_>,
    iso: &Path,
    log: &Path,
    timeout: Duration,
) -> Result<Command, String> {
    let rc = write_bxrc(root, machine, iso, log, "")?;
    // One per run: parallel runs must not rewrite a file another Bochs is reading.
    let cont = bochs_file(root, log, "cont.rc");
    write_file(&cont, "c\n")?;
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("10")
        .arg(timeout.as_secs().max(1).to_string())
        .args(["bochs-bin", "-q", "-f"])
        .arg(&rc)
        .arg("-rc")
        .arg(&cont)
        .env("TERM", "dumb");
    Ok(cmd)
}

/// SIGKILLs the child's whole process group (it was started as the group's leader).
pub fn kill_group(child: &mut Child) {
    if !signal(&format!("-{}", child.id()), "KILL") {
        let _ = child.kill();
    }
}

/// `kill -SIG -- TARGET` (a pid, or `-PGID` for a process group); whether it was sent.
/// std has no kill(2) but SIGKILL, and the crate takes no libc for it.
pub fn signal(target: &str, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Reads what was appended to a file since the last call.
struct Tail {
    path: PathBuf,
    pos: u64,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            pos: 0,
        }
    }

    fn read_new(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.pos)).is_ok() {
                if let Ok(n) = f.read_to_end(&mut buf) {
                    self.pos += n as u64;
                }
            }
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_stopped_early_says_how_qemu_ended() {
        let warn = "qemu-system-x86_64: warning: TCG doesn't support requested feature: x\n";
        let reset = "CPU Reset (CPU 0)\nEAX=00000000\n";
        assert_eq!(
            qemu_ending(0, &format!("{reset}Triple fault\n"), warn),
            "QEMU: triple fault (a CPU of Janus; no exception line can reach the log)"
        );
        assert_eq!(
            qemu_ending(7, reset, warn),
            "Janus ended the machine: fatal (QEMU exited 7)"
        );
        assert_eq!(
            qemu_ending(1, reset, ""),
            "Janus ended the machine: all passed (QEMU exited 1)"
        );
        let crash = format!("{warn}qemu: fatal: Trying to execute code outside RAM\n{warn}");
        assert_eq!(
            qemu_ending(134, reset, &crash),
            "QEMU exited 134: qemu: fatal: Trying to execute code outside RAM"
        );
        assert_eq!(qemu_ending(0, reset, warn), "QEMU exited 0: no message");
    }

    #[test]
    fn qemu_logs_resets_beside_the_serial_log() {
        let cmd = qemu_command(
            "EPYC",
            256,
            Path::new("/b/j.iso"),
            Path::new("/b/logs/EPYC.log"),
        );
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into()).collect();
        let d = args.iter().position(|a| a == "-d").expect("-d");
        assert_eq!(args[d + 1], "cpu_reset");
        assert_eq!(args[d + 2..d + 4], ["-D", "/b/logs/EPYC.qemu"]);
        assert_eq!(args[args.len() - 2..], ["-cdrom", "/b/j.iso"]);
    }

    #[test]
    fn models_choose_emulators() {
        for m in [
            "EPYC",
            "EPYC-Rome",
            "Opteron_G5",
            "phenom",
            "qemu64",
            "qemu64,-svm",
            "max",
            "Skylake-Server",
        ] {
            assert_eq!(Emulator::for_model(m), Emulator::Qemu, "{m}");
        }
        for m in [
            "corei7_skylake_x",
            "tigerlake",
            "ryzen",
            "zambezi",
            "trinity_apu",
            "phenom_8650_toliman",
            "core2_penryn_t9600",
        ] {
            assert_eq!(Emulator::for_model(m), Emulator::Bochs, "{m}");
        }
    }

    #[test]
    fn sanitized_names() {
        assert_eq!(sanitize("qemu64,-svm"), "qemu64_-svm");
        assert_eq!(sanitize("EPYC-Rome"), "EPYC-Rome");
        assert_eq!(sanitize("max,+x2apic/../x"), "max__x2apic_.._x");
    }

    #[test]
    fn bxrc_has_the_essentials() {
        let rc = bxrc(
            &Machine {
                model: "ryzen",
                memory_mib: 256,
                cpus: 1,
                ips: BOCHS_IPS,
            },
            Path::new("/b/m.iso"),
            Path::new("/b/logs/ryzen.log"),
            Path::new("/b/r.log"),
        );
        for line in [
            "cpu: model=ryzen, count=1, ips=10000000, reset_on_triple_fault=0",
            "ata0-master: type=cdrom, path=/b/m.iso, status=inserted",
            "com1: enabled=1, mode=file, dev=/b/logs/ryzen.log",
            "display_library: term",
            "panic: action=fatal",
            "clock: sync=none, time0=local",
            "memory: guest=256, host=256",
        ] {
            assert!(rc.lines().any(|l| l == line), "missing `{line}`");
        }
        let rc = bxrc(
            &Machine {
                model: "corei7_skylake_x",
                memory_mib: 512,
                cpus: 2,
                ips: 20_000_000,
            },
            Path::new("/b/l.iso"),
            Path::new("/b/s.log"),
            Path::new("/b/r.log"),
        );
        assert!(rc.lines().any(|l| l == "memory: guest=512, host=512"));
        assert!(rc
            .lines()
            .any(|l| l
                == "cpu: model=corei7_skylake_x, count=2, ips=20000000, reset_on_triple_fault=0"));
    }

    #[test]
    fn smp_args_only_for_more_than_one_cpu() {
        assert!(qemu_smp_args(1).is_empty());
        assert!(qemu_smp_args(0).is_empty());
        assert_eq!(qemu_smp_args(4), ["-smp", "4"]);
    }
    #[test]
    fn timeout_kills_the_group() {
        let dir = std::env::temp_dir().join(format!("janus-ci-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("serial.log");
        // A shell that writes a line, then a child that would outlive it by far.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "echo janus: up >> {}; sleep 30 & wait",
            log.display()
        ));
        let mut seen = Vec::new();
        let mut sink = |b: &[u8]| seen.extend_from_slice(b);
        let (status, timed_out, secs) =
            supervise(cmd, &log, Duration::from_millis(500), Some(&mut sink)).unwrap();
        assert!(timed_out);
        assert!(secs < 5.0, "{secs}");
        assert!(status.is_none_or(|s| !s.success()));
        assert_eq!(String::from_utf8_lossy(&seen), "janus: up\n");
        // A quick command is not a timeout.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("exit 3");
        let (status, timed_out, _) = supervise(cmd, &log, Duration::from_secs(20), None).unwrap();
        assert!(!timed_out);
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
