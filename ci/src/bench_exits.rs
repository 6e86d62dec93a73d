//! `cargo janus bench exits` (and the second half of `cargo janus bench`): the exit-cost
//! table, instructions per round trip through Janus for the common exits, on four CPU
//! models, beside the previous run's figures.
//!
//! Under Bochs (`clock: sync=none`) and QEMU with `-icount shift=0,sleep=off` (and
//! `-cpu EPYC,-rdrand`: RDRAND breaks icount's determinism) the guest's TSC counts
//! emulated instructions, so a guest timing N exits with RDTSC measures Janus' exit path
//! in instructions, exactly and repeatably however loaded the host is.
//!
//! Two boots per model: the `exitcost` suite alone (it prints `exit cost NAME: N TSC
//! ticks per round trip (...)` per exit), and two spinning `hostile` guests sharing the
//! CPU until their time limit, for Janus' own `janus: scheduler: N guest switches, X TSC
//! ticks each on average` line (the guest switch). The figures go to
//! `build/bench/exits.tsv` (the one already there becomes `exits-previous.tsv` and is
//! shown beside them), a table on stdout and one SVG bar chart per model,
//! `build/bench/exits-MODEL.svg`. Figures are printed, not judged: the command fails only
//! when a boot did not give its figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::emulator::{self, Emulator};
use crate::iso::GuestSpec;
use crate::judge;
use crate::setup::Need;
use crate::svg;

/// One CPU model of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// The column's name (and the SVG's file name).
    pub label: &'static str,
    /// What the emulator is given.
    pub cpu: &'static str,
    /// QEMU with `-icount` (Bochs always counts instructions).
    pub icount: bool,
    /// What it offers Janus.
    pub what: &'static str,
}

pub const MODELS: [Model; 4] = [
    Model {
        label: "EPYC",
        cpu: "EPYC,-rdrand",
        icount: true,
        what: "QEMU -icount, AMD-V without NRIP save",
    },
    Model {
        label: "ryzen",
        cpu: "ryzen",
        icount: false,
        what: "Bochs, AMD-V with NRIP save",
    },
    Model {
        label: "phenom_8650_toliman",
        cpu: "phenom_8650_toliman",
        icount: false,
        what: "Bochs, AMD-V without NRIP save",
    },
    Model {
        label: "corei7_skylake_x",
        cpu: "corei7_skylake_x",
        icount: false,
        what: "Bochs, VT-x with EPT",
    },
];

/// The rows of the table, in order, and what one round trip is. All but the last come
/// from the exitcost guest (guests/src/bin/exitcost.rs); `guest_switch` from Janus.
pub const EXITS: &[(&str, &str)] = &[
    ("no_exit", "the timing loop around a NOP: no exit (subtract it for the exit alone)"),
    ("cpuid", "CPUID leaf 0"),
    ("out_com1_scr", "OUT to COM1's scratch register (0x3ff)"),
    ("in_com1_scr", "IN from COM1's scratch register (0x3ff)"),
    ("in_unclaimed", "IN from a port nothing decodes (0x300)"),
    ("rdmsr_apic_base", "RDMSR IA32_APIC_BASE (emulated by the platform's LAPIC)"),
    ("wrmsr_apic_base", "WRMSR IA32_APIC_BASE, the same value"),
    ("hypercall", "the VERSION hypercall (VMCALL/VMMCALL)"),
    (
        "mmio_apic_read",
        "MMIO read of the LAPIC's timer current count (0x390)",
    ),
    (
        "mmio_apic_write",
        "MMIO write of the LAPIC's error LVT entry (0x370), masked",
    ),
    (
        "irq_oneshot_hlt",
        "LAPIC one-shot timer (count 1 = 1 ns) armed by MMIO, sti;hlt, injection, handler with MMIO EOI, IRET: 3 exits",
    ),
    (
        "guest_switch",
        "Janus' scheduler: end of one guest's slice to the start of the other's (two spinning guests)",
    ),
];

/// The names of the rows, in order.
pub fn exit_names() -> impl Iterator<Item = &'static str> {
    EXITS.iter().map(|(n, _)| *n)
}

pub const GUEST_SWITCH: &str = "guest_switch";
const SUITE: &str = "exitcost";
/// The spinners of the guest-switch boot (`hostile attack=spin`: `sti; jmp $`, which
/// every model preempts, Bochs' AMD models included) and how long each lives.
const SPINNERS: [&str; 2] = ["spin1", "spin2"];
const SPIN_LIMIT: &str = "500ms";

/// Figures: model label → exit name → TSC ticks (instructions) per round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub by_model: BTreeMap<String, BTreeMap<String, u64>>,
    /// The `# ` comment lines of the file they were read from (commit, date).
    pub notes: Vec<String>,
}

impl Figures {
    pub fn get(&self, model: &str, exit: &str) -> Option<u64> {
        self.by_model.get(model)?.get(exit).copied()
    }

    pub fn set(&mut self, model: &str, exit: &str, ticks: u64) {
        self.by_model
            .entry(model.to_string())
            .or_default()
            .insert(exit.to_string(), ticks);
    }

    pub fn is_empty(&self) -> bool {
        self.by_model.values().all(|m| m.is_empty())
    }

    /// Tab-separated: `# ` comment lines, a header `model\texit\tticks`, one line per
    /// figure.
    pub fn to_tsv(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "# {n}");
        }
        s.push_str("model\texit\tticks\n");
        for (model, exits) in &self.by_model {
            for (exit, ticks) in exits {
                let _ = writeln!(s, "{model}\t{exit}\t{ticks}");
            }
        }
        s
    }

    /// Reads [`Figures::to_tsv`]'s format; lines that do not parse are skipped.
    pub fn from_tsv(text: &str) -> Figures {
        let mut f = Figures::default();
        for line in text.lines() {
            if let Some(note) = line.strip_prefix('#') {
                f.notes.push(note.trim().to_string());
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if let [model, exit, ticks] = cols[..] {
                if let Ok(t) = ticks.trim().parse() {
                    f.set(model, exit, t);
                }
            }
        }
        f
    }
}

/// The `exit cost NAME: N TSC ticks per round trip` lines of a serial log, in order.
pub fn parse_exit_costs(serial: &str) -> Vec<(String, u64)> {
    const KEY: &str = "exit cost ";
    let mut out = Vec::new();
    for line in serial.lines() {
        let Some(i) = line.find(KEY) else { continue };
        let rest = &line[i + KEY.len()..];
        let Some((name, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Some(n) = before(rest, " TSC ticks") else {
            continue;
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        if let Ok(n) = n.trim().parse() {
            out.push((name.to_string(), n));
        }
    }
    out
}

/// The text of `s` before `marker`, if `marker` occurs.
fn before<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    s.find(marker).map(|i| &s[..i])
}

/// X of Janus' `janus: scheduler: N guest switches, X TSC ticks each on average` line
/// (the last one), with N.
pub fn parse_switch(serial: &str) -> Option<(u64, u64)> {
    const KEY: &str = "janus: scheduler: ";
    let line = serial.lines().rev().find(|l| l.contains(KEY))?;
    let rest = &line[line.find(KEY)? + KEY.len()..];
    let (n, rest) = rest.split_once(" guest switches, ")?;
    let x = before(rest, " TSC ticks")?;
    Some((n.trim().parse().ok()?, x.trim().parse().ok()?))
}

/// One cell: this run's figure and, in parentheses, the previous run's; `-` where this
/// run has none.
pub fn cell(now: Option<u64>, previous: Option<u64>) -> String {
    match (now, previous) {
        (Some(n), Some(p)) => format!("{} ({})", svg::grouped(n), svg::grouped(p)),
        (Some(n), None) => svg::grouped(n),
        (None, Some(p)) => format!("- ({})", svg::grouped(p)),
        (None, None) => "-".into(),
    }
}

/// The plain-text table: rows = exits, columns = models, cells = instructions per round
/// trip with the previous run's figure in parentheses. Numbers are right-aligned.
pub fn render_table(models: &[&str], now: &Figures, previous: &Figures) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["exit".to_string()];
    header.extend(models.iter().map(|m| m.to_string()));
    rows.push(header);
    for exit in exit_names() {
        let mut r = vec![exit.to_string()];
        for m in models {
            r.push(cell(now.get(m, exit), previous.get(m, exit)));
        }
        rows.push(r);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, text) in r.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{text:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {text:>w$}", w = widths[c]);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (cols - 1);
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}

/// The SVG chart of one model.
pub fn model_svg(model: &Model, now: &Figures, previous: &Figures, when: &str) -> String {
    let bars: Vec<svg::Bar> = exit_names()
        .map(|exit| svg::Bar {
            label: exit.to_string(),
            previous: previous.get(model.label, exit),
            now: now.get(model.label, exit),
        })
        .collect();
    svg::bar_chart(
        &format!("Janus exit cost on {} ({})", model.label, model.what),
        &format!("instructions (TSC ticks) per round trip; {when}"),
        &bars,
    )
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (the proleptic Gregorian calendar).
pub fn utc_text(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs / 60) % 60
    )
}

/// `git describe`-like: the short commit of the workspace, `+dirty` when it has changes.
fn commit(root: &Path) -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(hash) = out(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown commit".into();
    };
    match out(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{hash}+dirty"),
        _ => hash,
    }
}

/// The figures of one model's two boots, or why there are none.
fn measure_model(
    root: &Path,
    model: &Model,
    exit_iso: &Path,
    switch_iso: &Path,
    figures: &mut Figures,
) -> Vec<String> {
    let name = emulator::sanitize(model.label);
    let mut problems = Vec::new();

    let run = |iso, log| bench_boot(model.cpu, model.icount, iso, log);
    let log = root.join(format!("build/logs/bench-exits-{name}.log"));
    match emulator::boot(root, &run(exit_iso, &log)) {
        Err(e) => problems.push(format!("exitcost boot: {e}")),
        Ok(o) => {
            let costs = parse_exit_costs(&o.serial);
            for (exit, ticks) in &costs {
                figures.set(model.label, exit, *ticks);
            }
            let r = judge::parse(&o.serial);
            let passed = r.suites.iter().any(|s| s.suite == SUITE);
            println!(
                "  {}: exitcost {} with {} figures in {:.1} s (log {})",
                model.label,
                if passed { "passed" } else { "did NOT pass" },
                costs.len(),
                o.seconds,
                log.display()
            );
            if !passed || costs.is_empty() {
                problems.push(format!(
                    "exitcost: {} (log {}; last line: {})",
                    if o.timed_out { "timed out" } else { "no PASS" },
                    log.display(),
                    r.last_line.as_deref().unwrap_or("none")
                ));
            }
        }
    }

    let log = root.join(format!("build/logs/bench-switch-{name}.log"));
    match emulator::boot(root, &run(switch_iso, &log)) {
        Err(e) => problems.push(format!("guest-switch boot: {e}")),
        Ok(o) => match parse_switch(&o.serial) {
            Some((n, ticks)) => {
                figures.set(model.label, GUEST_SWITCH, ticks);
                println!(
                    "  {}: {n} guest switches, {ticks} ticks each, in {:.1} s (log {})",
                    model.label,
                    o.seconds,
                    log.display()
                );
            }
            None => {
                let r = judge::parse(&o.serial);
                problems.push(format!(
                    "guest switch: no `janus: scheduler:` line{} (log {}; last Janus line: {})",
                    if o.timed_out { ", timed out" } else { "" },
                    log.display(),
                    r.last_janus_line.as_deref().unwrap_or("none")
                ));
            }
        },
    }
    problems
}

/// One boot of the bench on one CPU `cpu` (its emulator's default timeout, one host
/// CPU, default memory), with or without QEMU's `-icount`.
fn bench_boot<'a>(cpu: &'a str, icount: bool, iso: &'a Path, log: &'a Path) -> emulator::Boot<'a> {
    let emulator = Emulator::for_model(cpu);
    emulator::Boot {
        emulator,
        model: cpu,
        memory_mib: emulator::DEFAULT_MEMORY_MIB,
        cpus: 1,
        ips: emulator::BOCHS_IPS,
        iso,
        log,
        timeout: Duration::from_secs(emulator.default_timeout_secs()),
        stream: false,
        icount,
        qemu_args: &[],
    }
}

/// The TSC rate Janus measured at boot (its `janus: info: TSC N MHz` line).
pub fn parse_tsc_mhz(serial: &str) -> Option<f64> {
    let line = serial
        .lines()
        .find(|l| l.starts_with("janus: info: TSC "))?;
    line["janus: info: TSC ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What exits cost in real time under QEMU TCG: the exitcost suite booted on `-cpu EPYC`
/// without `-icount`, where the TSC follows the host's clock. Returns the TSC rate (MHz)
/// and the figures (TSC ticks per round trip), or why there are none. The ISO is
/// build/bench-exits.iso, made by the caller ([`exit_iso`]).
pub fn real_time_costs(root: &Path, iso: &Path) -> Result<(f64, Vec<(String, u64)>), String> {
    let log = root.join("build/logs/bench-exits-real-time.log");
    let o = emulator::boot(root, &bench_boot("EPYC", false, iso, &log))?;
    let costs = parse_exit_costs(&o.serial);
    match parse_tsc_mhz(&o.serial) {
        Some(mhz) if !costs.is_empty() => Ok((mhz, costs)),
        _ => Err(format!("no exit costs or TSC rate (log {})", log.display())),
    }
}

/// Builds build/bench-exits.iso: Janus with the exitcost suite alone.
pub fn exit_iso(root: &Path) -> Result<PathBuf, String> {
    exitcost_iso(root, &root.join("build/bench-exits.iso"), None)
}

/// Builds `iso`: Janus (release) with the exitcost suite (release) alone, its command
/// line `cmdline` when there is one (`profile=NAME` for `cargo janus profile`).
pub fn exitcost_iso(root: &Path, iso: &Path, cmdline: Option<&str>) -> Result<PathBuf, String> {
    let mut keys = vec![("name", SUITE), ("mem", crate::matrix::SUITE_MEM)];
    if let Some(c) = cmdline {
        keys.push(("cmdline", c));
    }
    let spec = GuestSpec::with_keys(PathBuf::from(SUITE), &keys);
    crate::prepare(root, &[spec], iso, &[])
}

/// The guests of the guest-switch boot: two `hostile attack=spin` guests with a time
/// limit.
fn spinner_specs() -> Vec<GuestSpec> {
    SPINNERS
        .iter()
        .map(|name| {
            GuestSpec::with_keys(
                PathBuf::from(crate::together::HOSTILE),
                &[
                    ("name", name),
                    ("mem", "16M"),
                    ("limit", SPIN_LIMIT),
                    ("cmdline", "attack=spin"),
                ],
            )
        })
        .collect()
}

/// Runs the exit-cost half: boots, table, TSV and SVGs. The caller holds the workspace
/// lock. Returns 0 when every model gave every figure, else 1.
pub fn run(root: &Path) -> Result<u8, String> {
    crate::setup::ensure(&[Need::Iso, Need::Qemu, Need::Bochs])?;
    let exit_iso = exit_iso(root)?;
    let switch_iso = root.join("build/bench-switch.iso");
    crate::prepare(root, &spinner_specs(), &switch_iso, &[])?;

    let when = format!(
        "{}, {}",
        commit(root),
        utc_text(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        )
    );
    println!(
        "exit cost: instructions per round trip on {} models ({when})",
        MODELS.len()
    );
    let mut now = Figures::default();
    let mut problems = Vec::new();
    for m in &MODELS {
        for p in measure_model(root, m, &exit_iso, &switch_iso, &mut now) {
            problems.push(format!("{}: {p}", m.label));
        }
    }
    now.notes = vec![
        format!("janus exit costs, TSC ticks (= instructions) per round trip: {when}"),
        "models: ".to_string()
            + &MODELS
                .iter()
                .map(|m| format!("{} ({}, -cpu {})", m.label, m.what, m.cpu))
                .collect::<Vec<_>>()
                .join("; "),
    ];

    let dir = root.join("build/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let current = dir.join("exits.tsv");
    let previous_file = dir.join("exits-previous.tsv");
    let previous = match std::fs::read_to_string(&current) {
        Ok(text) => {
            std::fs::write(&previous_file, &text)
                .map_err(|e| format!("cannot write {}: {e}", previous_file.display()))?;
            Figures::from_tsv(&text)
        }
        Err(_) => Figures::default(),
    };
    if !now.is_empty() {
        std::fs::write(&current, now.to_tsv())
            .map_err(|e| format!("cannot write {}: {e}", current.display()))?;
    }

    let labels: Vec<&str> = MODELS.iter().map(|m| m.label).collect();
    println!();
    println!("Exit cost in instructions per round trip through Janus (TSC ticks under Bochs");
    println!("and QEMU -icount), this run (previous run):");
    print!("{}", render_table(&labels, &now, &previous));
    match previous.notes.first() {
        Some(n) => println!("previous: {n} ({})", previous_file.display()),
        None => println!("previous: none ({} did not exist)", current.display()),
    }
    for (exit, what) in EXITS {
        println!("  {exit}: {what}");
    }
    for m in &MODELS {
        println!("  {}: {} (-cpu {})", m.label, m.what, m.cpu);
    }
    println!(
        "For scale: Linux KVM takes 2,393-2,585 instructions per CPUID exit under QEMU -cpu EPYC,-rdrand -icount (issue #9's aim: a tenth of that)."
    );
    for m in &MODELS {
        let path = dir.join(format!("exits-{}.svg", emulator::sanitize(m.label)));
        std::fs::write(&path, model_svg(m, &now, &previous, &when))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!(
        "figures: {}; charts: {}/exits-MODEL.svg",
        current.display(),
        dir.display()
    );
    for p in &problems {
        println!("FAILED: {p}");
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXITCOST_LOG: &str = "\
janus: guest exitcost: loaded multiboot1, entry 0x100020, memory 16 MiB
[exitcost] exit cost no_exit: 6 TSC ticks per round trip (1 exits for 200 iterations)
[exitcost] exit cost cpuid: 1304 TSC ticks per round trip (201 exits for 200 iterations)
[exitcost] check exitcost.cpuid: ok
[exitcost] exit cost irq_oneshot_hlt: 4120 TSC ticks per round trip (601 exits for 200 iterations)
[exitcost] exit cost broken: many TSC ticks per round trip
[exitcost] exitcost: PASS (11 checks)
";

    #[test]
    fn exit_cost_lines() {
        assert_eq!(
            parse_exit_costs(EXITCOST_LOG),
            vec![
                ("no_exit".to_string(), 6),
                ("cpuid".to_string(), 1304),
                ("irq_oneshot_hlt".to_string(), 4120)
            ]
        );
        assert!(parse_exit_costs("janus: done: 1 guests, 0 failed\n").is_empty());
    }

    #[test]
    fn every_guest_figure_has_a_row() {
        let names: Vec<&str> = exit_names().collect();
        for (n, _) in parse_exit_costs(EXITCOST_LOG) {
            assert!(names.contains(&n.as_str()), "{n}");
        }
        assert!(names.contains(&GUEST_SWITCH));
        // The guest's own list: every `measure`/`print` name of exitcost.rs is a row.
        let src = include_str!("../../guests/src/bin/exitcost.rs");
        for n in names.iter().filter(|n| **n != GUEST_SWITCH) {
            assert!(src.contains(&format!("\"{n}\"")), "{n} not in exitcost.rs");
        }
    }

    #[test]
    fn tsc_rate_line() {
        let log = "janus: Janus 0.1.0 (multiboot2)\njanus: info: TSC 2306.617 MHz (calibrated against the PIT)\n";
        assert_eq!(parse_tsc_mhz(log), Some(2306.617));
        assert_eq!(parse_tsc_mhz("janus: info: host APIC timer 1 MHz\n"), None);
    }

    #[test]
    fn switch_line() {
        let log = "janus: summary: spin2 status=time-limit cpu_ms=500 exits=60\n\
                   janus: scheduler: 101 guest switches, 2718 TSC ticks each on average (end of one slice to the start of the next)\n\
                   janus: done: 2 guests, 2 failed\n";
        assert_eq!(parse_switch(log), Some((101, 2718)));
        assert_eq!(parse_switch("janus: done: 1 guests, 0 failed\n"), None);
    }

    #[test]
    fn tsv_round_trip() {
        let mut f = Figures::default();
        f.set("EPYC", "cpuid", 1304);
        f.set("ryzen", "cpuid", 960);
        f.set("ryzen", GUEST_SWITCH, 5000);
        f.notes = vec!["run of abc1234, 2026-11-30 03:30 UTC".into()];
        let text = f.to_tsv();
        assert!(text.starts_with("# run of abc1234"));
        assert!(text.contains("model\texit\tticks\nEPYC\tcpuid\t1304\n"));
        assert_eq!(Figures::from_tsv(&text), f);
        // Junk lines are skipped.
        let g = Figures::from_tsv("model\texit\tticks\nEPYC\tcpuid\tlots\nx y z\nEPYC\tin\t5\n");
        assert_eq!(g.get("EPYC", "cpuid"), None);
        assert_eq!(g.get("EPYC", "in"), Some(5));
        assert!(Figures::default().is_empty());
    }

    #[test]
    fn cells_and_table() {
        assert_eq!(cell(Some(1304), Some(2585)), "1,304 (2,585)");
        assert_eq!(cell(Some(960), None), "960");
        assert_eq!(cell(None, Some(7)), "- (7)");
        assert_eq!(cell(None, None), "-");
        let mut now = Figures::default();
        now.set("EPYC", "cpuid", 1304);
        now.set("ryzen", "cpuid", 960);
        now.set("EPYC", GUEST_SWITCH, 12345);
        let mut prev = Figures::default();
        prev.set("EPYC", "cpuid", 1400);
        let t = render_table(&["EPYC", "ryzen"], &now, &prev);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2 + exit_names().count());
        assert!(lines[0].starts_with("exit"));
        assert!(lines[0].ends_with("ryzen"));
        assert!(lines[1].chars().all(|c| c == '-'));
        let cpuid = lines.iter().find(|l| l.starts_with("cpuid ")).unwrap();
        assert!(
            cpuid.contains("1,304 (1,400)") && cpuid.ends_with("  960"),
            "{cpuid}"
        );
        let sw = lines
            .iter()
            .find(|l| l.starts_with("guest_switch"))
            .unwrap();
        assert!(sw.contains("12,345") && sw.ends_with(" -"), "{sw}");
        // Columns line up: every line but the rule is as long as the header or shorter
        // only by trimmed blanks, and the numbers end in the same column.
        let end = lines[0].len();
        assert_eq!(cpuid.len(), end);
    }

    #[test]
    fn svg_per_model() {
        let mut now = Figures::default();
        now.set("ryzen", "cpuid", 960);
        let mut prev = Figures::default();
        prev.set("ryzen", "cpuid", 1000);
        let svg = model_svg(&MODELS[1], &now, &prev, "abc, 2026-11-30 03:30 UTC");
        assert!(svg.contains("Janus exit cost on ryzen (Bochs, AMD-V with NRIP save)"));
        assert!(svg.contains(">960</text>") && svg.contains(">1,000</text>"));
        assert!(svg.contains(">guest_switch</text>"));
    }

    #[test]
    fn dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_text(1_795_999_800), "2026-11-30 00:50 UTC");
    }

    #[test]
    fn models_are_the_four_of_the_issue() {
        let emus: Vec<Emulator> = MODELS.iter().map(|m| Emulator::for_model(m.cpu)).collect();
        assert_eq!(
            emus,
            [
                Emulator::Qemu,
                Emulator::Bochs,
                Emulator::Bochs,
                Emulator::Bochs
            ]
        );
        assert!(MODELS[0].icount && MODELS[0].cpu.contains("-rdrand"));
    }
}
