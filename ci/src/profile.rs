//! `cargo janus profile --cpu MODEL LOOP [--steps N]`: where the instructions of one exit
//! go, function by function (docs/testing.md, "Profiling an exit").
//!
//! The exitcost guest, given `profile=LOOP`, runs one of the exit-cost table's loops for
//! good. Bochs' debugger (`bochs-bin`) boots it; once the guest's `exitcost: profiling
//! LOOP` line is on the serial log, a SIGINT stops the simulation and the debugger traces
//! N instructions (`trace on`, `s N`), each with its address, into a file
//! (`debugger_log:`). The trace is cut at the world switch into exits (VT-x: from
//! `janus_vmx_exit` to VMRESUME/VMLAUNCH; AMD-V: from the instruction after VMRUN to the
//! next VMRUN), and each host address is given the function of Janus' ELF that holds it
//! (one `nm` call). Counts are instructions, as in the exit-cost table, so an exit costs
//! the same in every trace of the same build (which exits a trace holds whole depends on
//! where the SIGINT lands).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bench_exits;
use crate::emulator::{self, Machine};
use crate::judge;
use crate::setup::Need;

/// Instructions traced when `--steps` is not given: a few exits of the longest loop
/// (irq_oneshot_hlt, about 1,800 to 2,800 host instructions a round trip).
pub const DEFAULT_STEPS: u64 = 4000;
/// The most `--steps` takes: Bochs prints each traced instruction, about 100 bytes.
pub const MAX_STEPS: u64 = 10_000_000;
/// The whole run: boot to the profiling line (GRUB, Janus, the guest) and the trace.
const TIMEOUT: Duration = Duration::from_secs(300);
/// How often the serial log and Bochs are looked at.
const POLL: Duration = Duration::from_millis(100);
/// How long a SIGINT has to stop Bochs before it is sent again (it stops in
/// milliseconds).
const RESEND: Duration = Duration::from_secs(2);

/// The loops the exitcost guest's `profile=` runs: the rows of the exit-cost table but the
/// timing loop alone (no exit) and Janus' guest switch (no loop of the guest).
pub fn loops() -> impl Iterator<Item = &'static str> {
    bench_exits::exit_names().filter(|n| *n != "no_exit" && *n != bench_exits::GUEST_SWITCH)
}

/// Whether `name` is one of [`loops`].
pub fn is_loop(name: &str) -> bool {
    loops().any(|n| n == name)
}

/// One executed instruction of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn {
    /// Its address (CS:RIP's offset; CS' base is 0 in long mode and in Janus' guests);
    /// None where the debugger cannot translate it (the guest's code under AMD-V's nested
    /// paging: `??? (physical address not available)`).
    pub addr: Option<u64>,
    /// Its length in bytes (0 without an address).
    pub len: u64,
    /// The first word of its disassembly (`vmrun`, `mov`, ...; empty without an address).
    pub mnemonic: String,
}

/// One line of Bochs 2.7's instruction trace:
/// `(0).[TICK] [0xPHYS] CS:ADDR (SYMBOL): DISASSEMBLY ; BYTES`, or
/// `(0).[TICK] ??? (physical address not available)`, possibly behind the debugger's
/// prompt. Only lines with the tick stamp `.[TICK]` are traced instructions: where it
/// stops, the debugger shows the next one without it (`(0) [0x...] ...`; but a guest's
/// `???` has it: [`parse_trace`] drops that one).
pub fn parse_line(line: &str) -> Option<Insn> {
    let (_, rest) = line.split_once(").[")?;
    let (tick, rest) = rest.split_once("] ")?;
    tick.parse::<u64>().ok()?;
    if rest.starts_with("??? (physical address not available)") {
        return Some(Insn {
            addr: None,
            len: 0,
            mnemonic: String::new(),
        });
    }
    let rest = rest.strip_prefix("[0x")?;
    let (_phys, rest) = rest.split_once("] ")?;
    let (at, rest) = rest.split_once(' ')?;
    let (_selector, addr) = at.split_once(':')?;
    let addr = u64::from_str_radix(addr, 16).ok()?;
    let (_symbol, rest) = rest.split_once("): ")?;
    let (disassembly, bytes) = rest.rsplit_once(" ; ")?;
    let bytes = bytes.trim();
    if bytes.is_empty() || bytes.len() % 2 != 0 || !bytes.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(Insn {
        addr: Some(addr),
        len: bytes.len() as u64 / 2,
        mnemonic: disassembly.split_whitespace().next()?.to_string(),
    })
}

/// The executed instructions of a debugger log, and how many lines had a tick stamp
/// but did not parse (an instruction the profile would silently miss otherwise). Each
/// stop prints `Next at t=...` and then the instruction the CPU stopped at, which has
/// not run yet (a guest's is stamped: `(0).[T] ??? ...`): that line is left out. The log
/// ends with the step's stop, then `q`, at which the debugger prints that instruction
/// once more: what follows the last `Next at` is left out.
pub fn parse_trace(text: &str) -> (Vec<Insn>, usize) {
    const STOP: &str = "Next at t=";
    let end = text.rfind(STOP).unwrap_or(text.len());
    let mut insns = Vec::new();
    let mut unread = 0;
    let mut after_stop = false;
    for line in text[..end].lines() {
        if std::mem::replace(&mut after_stop, line.starts_with(STOP)) {
            continue;
        }
        match parse_line(line) {
            Some(i) => insns.push(i),
            None if line.contains(").[") => unread += 1,
            None => {}
        }
    }
    (insns, unread)
}

/// How host and guest trade places on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// VT-x: an exit starts at the VMCS' host RIP, Janus' `janus_vmx_exit`, and ends at
    /// VMRESUME or VMLAUNCH.
    Vmx { exit_handler: u64 },
    /// AMD-V: an exit resumes at the instruction after VMRUN and ends at the next VMRUN.
    Svm,
}

/// The symbol of Janus' VT-x exit handler (arch-vmx/src/entry.rs).
pub const VMX_EXIT_SYMBOL: &str = "janus_vmx_exit";

impl Vendor {
    /// The vendor whose world switch the trace shows; `vmx_exit_handler` gives the VT-x
    /// exit handler's address when one is needed.
    pub fn of_trace(
        trace: &[Insn],
        vmx_exit_handler: impl FnOnce() -> Option<u64>,
    ) -> Result<Vendor, String> {
        let has = |names: &[&str]| trace.iter().any(|i| names.contains(&i.mnemonic.as_str()));
        match (has(&["vmresume", "vmlaunch"]), has(&["vmrun"])) {
            (true, false) => vmx_exit_handler()
                .map(|exit_handler| Vendor::Vmx { exit_handler })
                .ok_or_else(|| format!("Janus' ELF has no symbol {VMX_EXIT_SYMBOL}")),
            (false, true) => Ok(Vendor::Svm),
            (true, true) => Err("the trace has both VMRUN and VMRESUME/VMLAUNCH".into()),
            (false, false) => Err(
                "no VMRUN, VMRESUME or VMLAUNCH in the trace: no exit ended in it (more --steps?)"
                    .into(),
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Vmx { .. } => "VT-x",
            Vendor::Svm => "AMD-V",
        }
    }

    /// Whether `i` hands the CPU back to the guest: the last host instruction of an exit.
    fn enters_guest(self, i: &Insn) -> bool {
        match self {
            Vendor::Vmx { .. } => i.mnemonic == "vmresume" || i.mnemonic == "vmlaunch",
            Vendor::Svm => i.mnemonic == "vmrun",
        }
    }

    /// The addresses where host code resumes after an exit: the exit handler (VT-x), or
    /// the instruction after each VMRUN of the trace (AMD-V: #VMEXIT continues there).
    fn resume_points(self, trace: &[Insn]) -> Vec<u64> {
        match self {
            Vendor::Vmx { exit_handler } => vec![exit_handler],
            Vendor::Svm => {
                let mut points: Vec<u64> = trace
                    .iter()
                    .filter(|i| self.enters_guest(i))
                    .filter_map(|i| Some(i.addr? + i.len))
                    .collect();
                points.sort_unstable();
                points.dedup();
                points
            }
        }
    }
}

/// The host instructions' addresses of each complete exit of `trace`, in order: from a
/// resume point to the instruction that enters the guest, both included. The exit the
/// trace starts in and the one it ends in are partial and left out. A resume point starts
/// the exit afresh: the guest's own code may sit at the same address (Janus and the
/// guest are both linked at 1 MiB), but host code reaches it only after a world switch,
/// so whatever was gathered before it was not host code of this exit. Likewise an
/// instruction without an address: Janus' code is mapped one to one and always has one.
pub fn split_exits(trace: &[Insn], vendor: Vendor) -> Vec<Vec<u64>> {
    let resume = vendor.resume_points(trace);
    let mut exits = Vec::new();
    let mut current: Option<Vec<u64>> = None;
    for i in trace {
        let Some(addr) = i.addr else {
            current = None;
            continue;
        };
        if resume.contains(&addr) {
            current = Some(Vec::new());
        }
        if let Some(c) = current.as_mut() {
            c.push(addr);
        }
        if vendor.enters_guest(i) {
            if let Some(c) = current.take() {
                exits.push(c);
            }
        }
    }
    exits
}

/// Janus' functions by address, from `nm -C -S --defined-only`.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    /// Code symbols sorted by address: (address, size if nm knows it, name).
    list: Vec<(u64, Option<u64>, String)>,
}

impl Symbols {
    /// Reads `nm -C -S --defined-only` output: `ADDR [SIZE] TYPE NAME`, names with
    /// blanks (`<T as Trait>::f`). Only code symbols (types t, T, w, W) are kept.
    pub fn parse_nm(text: &str) -> Symbols {
        let mut list = Vec::new();
        for line in text.lines() {
            let Some((addr, rest)) = line.split_once(' ') else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let (size, rest) = match rest.split_once(' ') {
                Some((s, r)) if s.len() > 1 => (u64::from_str_radix(s, 16).ok(), r),
                _ => (None, rest),
            };
            let Some((kind, name)) = rest.split_once(' ') else {
                continue;
            };
            if matches!(kind, "t" | "T" | "w" | "W") && !name.is_empty() {
                list.push((addr, size, name.to_string()));
            }
        }
        list.sort_by_key(|(a, _, _)| *a);
        Symbols { list }
    }

    /// Runs `nm` on `elf` once.
    pub fn load(elf: &Path) -> Result<Symbols, String> {
        let out = Command::new("nm")
            .args(["-C", "-S", "--defined-only"])
            .arg(elf)
            .output()
            .map_err(|e| format!("cannot run nm: {e}"))?;
        if !out.status.success() {
            return Err(format!("nm {} failed ({})", elf.display(), out.status));
        }
        Ok(Symbols::parse_nm(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The address of symbol `name`.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.list
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(a, _, _)| *a)
    }

    /// The function holding `addr`: the sized symbol (a compiled function) that covers
    /// it, else the nearest label at or below it (assembly without a size: `_start`,
    /// the exception stubs); `?` when there is neither. Labels inside a sized function
    /// (`janus_vmx_exit` in `vmx_run`) name no function of their own: the function does.
    pub fn function_of(&self, addr: u64) -> &str {
        let below = self.list.partition_point(|(a, _, _)| *a <= addr);
        let mut label: Option<(u64, &str)> = None;
        for (start, size, name) in self.list[..below].iter().rev() {
            match size {
                Some(size) if addr < start + size => return name,
                Some(size) => {
                    label = label.filter(|(at, _)| *at >= start + size);
                    break;
                }
                None => {
                    label.get_or_insert((*start, name.as_str()));
                }
            }
        }
        label.map_or("?", |(_, name)| name)
    }
}

/// What a trace's complete exits cost, function by function.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Host instructions of each complete exit, in order.
    pub lengths: Vec<u64>,
    /// (function, instructions in it over all exits), the most first (ties by name).
    pub functions: Vec<(String, u64)>,
}

impl Profile {
    /// Counts the instructions of `exits` by the function `function_of` gives each
    /// address.
    pub fn count<'a>(exits: &[Vec<u64>], function_of: impl Fn(u64) -> &'a str) -> Profile {
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        for addr in exits.iter().flatten() {
            *by_name.entry(function_of(*addr)).or_default() += 1;
        }
        let mut functions: Vec<(String, u64)> = by_name
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        functions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Profile {
            lengths: exits.iter().map(|e| e.len() as u64).collect(),
            functions,
        }
    }

    /// Instructions of all exits together.
    pub fn total(&self) -> u64 {
        self.lengths.iter().sum()
    }

    /// The report: exits seen, instructions per exit (min/avg/max, then each in order),
    /// and one line per function with its instructions per exit (averaged) and share.
    pub fn render(&self, title: &str) -> String {
        let exits = self.lengths.len() as u64;
        let total = self.total();
        let mut s = format!("{title}\ncomplete exits: {exits}\n");
        let (Some(min), Some(max)) = (self.lengths.iter().min(), self.lengths.iter().max()) else {
            return s;
        };
        let avg = total as f64 / exits as f64;
        let _ = writeln!(
            s,
            "host instructions per exit: min {min}, avg {avg:.1}, max {max}"
        );
        let each: Vec<String> = self.lengths.iter().map(u64::to_string).collect();
        let _ = writeln!(s, "each exit, in order: {}", each.join(" "));
        let _ = writeln!(s, "\n{:>10}  {:>6}  function", "per exit", "share");
        for (name, count) in &self.functions {
            let per_exit = *count as f64 / exits as f64;
            let share = 100.0 * *count as f64 / total as f64;
            let _ = writeln!(s, "{per_exit:>10.1}  {share:>5.1}%  {name}");
        }
        let _ = writeln!(s, "{avg:>10.1}  {:>5.1}%  total", 100.0);
        s
    }
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

/// The debugger's commands, read from a `-rc` file: run; once stopped (by the SIGINT),
/// trace `steps` instructions and quit. A file (as the matrix gives Bochs its `c`) rather
/// than lines written to its stdin: once stopped, the debugger reads the next command
/// itself, so none has to be written at the right moment.
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
    let debugger_log = format!("debugger_log: {}\n", files.trace.display());
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

/// Stops the simulation with SIGINT (the debugger's Ctrl-C), which the debugger follows
/// with the rest of its commands. Now and then Bochs loses one (seen on ryzen: it ran on,
/// its log showing no stop), so it is sent again every [`RESEND`] until the debugger's
/// log shows the stop.
fn interrupt(bochs: &mut Group, deadline: Instant, files: &Files) -> Result<(), String> {
    let pid = bochs.0.id().to_string();
    let mut sent: Option<Instant> = None;
    let stopped = || {
        if debugger_stopped(&std::fs::read_to_string(&files.trace).unwrap_or_default()) {
            return Ok(true);
        }
        if sent.is_none_or(|t| t.elapsed() >= RESEND) {
            if sent.is_some() {
                eprintln!("cargo janus: Bochs did not stop at the SIGINT; sending it again");
            }
            if !emulator::signal(&pid, "INT") {
                return Err("cannot send SIGINT to Bochs".to_string());
            }
            sent = Some(Instant::now());
        }
        Ok(false)
    };
    match bochs.wait_for(deadline, "Bochs' debugger to stop at a SIGINT", stopped)? {
        None => Ok(()),
        Some(status) => Err(format!(
            "Bochs ended ({status}) instead of stopping at a SIGINT (output {})",
            files.output.display()
        )),
    }
}

/// Boots `files.iso` on Bochs model `model` under the debugger, waits for the guest to
/// profile `name`, stops it and traces `steps` instructions. Returns the debugger's log.
fn trace(
    root: &Path,
    model: &str,
    name: &str,
    steps: u64,
    files: &Files,
) -> Result<String, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut bochs = start_bochs(root, model, steps, files)?;
    let line = format!("the `exitcost: profiling {name}` line");
    let serial = &files.serial;
    let started = || profiling_started(&std::fs::read_to_string(serial).unwrap_or_default(), name);
    if let Some(status) = bochs.wait_for(deadline, &line, started)? {
        return Err(format!(
            "Bochs ended ({status}) before {line} (serial log {}, output {})",
            serial.display(),
            files.output.display()
        ));
    }
    interrupt(&mut bochs, deadline, files)?;
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

    /// A line as Bochs 2.7's debugger prints it (build/profile/ryzen-out_com1_scr.trace).
    const LINE: &str = "(0).[155415512] [0x00000010027a] 0008:000000000010027a (unk. ctxt): vmrun                     ; 0f01d8";

    fn insn(addr: u64, len: u64, mnemonic: &str) -> Insn {
        Insn {
            addr: Some(addr),
            len,
            mnemonic: mnemonic.into(),
        }
    }

    /// The guest's instruction under nested paging, without an address.
    fn unaddressed() -> Insn {
        Insn {
            addr: None,
            len: 0,
            mnemonic: String::new(),
        }
    }

    #[test]
    fn trace_lines() {
        assert_eq!(parse_line(LINE), Some(insn(0x10027a, 3, "vmrun")));
        // Behind a prompt, with operands (corei7_skylake_x-irq_oneshot_hlt.trace).
        assert_eq!(
            parse_line("<bochs:4> (0).[156700351] [0x00000012d5f1] 0008:000000000012d5f1 (unk. ctxt): mov rdx, qword ptr ss:[rsp+1184] ; 488b9424a0040000"),
            Some(insn(0x12d5f1, 8, "mov"))
        );
        assert_eq!(
            parse_line("(0).[155415513] ??? (physical address not available)"),
            Some(unaddressed())
        );
        // The next instruction after a step, without the tick stamp: not executed here.
        assert_eq!(
            parse_line("(0) [0x000000100394] 0008:0000000000100394 (unk. ctxt): mov rcx, qword ptr ds:[rdi+8] ; 488b4f08"),
            None
        );
        for junk in [
            "Next at t=156704331",
            "CPU 0: Interrupt 0x41 occurred (error_code=0x0000)",
            "(0).[5] [0x000000001234] 0010:zz (unk. ctxt): nop ; 90",
            "(0).[5] [0x000000001234] 0010:0000000000101abc (unk. ctxt): nop ; 9",
            "(0).[x] [0x000000001234] 0010:0000000000101abc (unk. ctxt): nop ; 90",
            "s 4000",
        ] {
            assert_eq!(parse_line(junk), None, "{junk}");
        }
        // The log of `c`, `trace on`, `s 3`, `q`, stopped in the guest (whose next
        // instruction is stamped though it did not run): after `q` the debugger prints
        // the instruction it stopped at again, which did not run either. A stamped line
        // that does not parse is counted.
        let unknown = "(0).[155415511] ??? (physical address not available)";
        let stop = "(0) [0x00000010027d] 0008:000000000010027d (unk. ctxt): vmsave ; 0f01db";
        let (insns, unread) = parse_trace(&format!(
            "Next at t=0\nc\nNext at t=155415511\n{unknown}\ntrace on\ns 3\n{unknown}\n\
             {LINE}\n(0).[155415513] junk\nNext at t=155415514\n{stop}\nq\n\
             (0).[155415514]{}\n",
            &stop[3..]
        ));
        assert_eq!(insns, vec![unaddressed(), insn(0x10027a, 3, "vmrun")]);
        assert_eq!(unread, 1);
    }

    const VMX_EXIT: u64 = 0x1003dd;

    /// A trace from `ADDR LEN MNEMONIC` lines (ADDR in hex; `???`: no address).
    fn trace(text: &str) -> Vec<Insn> {
        let line = |l: &str| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [addr, len, m] => insn(
                u64::from_str_radix(addr, 16).unwrap(),
                len.parse().unwrap(),
                m,
            ),
            _ => unaddressed(),
        };
        text.lines().map(line).collect()
    }

    #[test]
    fn vmx_exits_run_from_the_handler_to_vmresume() {
        // The end of an exit, the guest's CPUID, two whole exits, the start of one. One
        // of the guest's instructions sits at the handler's address (both are linked at
        // 1 MiB): what it starts is dropped when the real exit comes.
        let trace = trace(
            "100420 3 mov\n100425 3 vmresume\n1003dd 2 cpuid\n1003dd 1 push\n120000 5 call\n\
             100425 3 vmresume\n100200 2 cpuid\n1003dd 1 push\n100425 3 vmresume\n\
             100200 2 cpuid\n1003dd 1 push\n120000 5 call",
        );
        let vendor = Vendor::of_trace(&trace, || Some(VMX_EXIT)).unwrap();
        assert_eq!(
            vendor,
            Vendor::Vmx {
                exit_handler: VMX_EXIT
            }
        );
        assert_eq!(
            split_exits(&trace, vendor),
            vec![vec![VMX_EXIT, 0x120000, 0x100425], vec![VMX_EXIT, 0x100425]]
        );
        assert!(Vendor::of_trace(&trace, || None).is_err());
    }

    #[test]
    fn svm_exits_run_from_after_vmrun_to_vmrun() {
        // The second exit ends at the other VMRUN site, after which the third resumes.
        // The guest's instructions have no address under nested paging; one that has
        // one, at a resume point, starts nothing that counts (at the start, the trace's
        // first instruction is followed by unaddressed ones: it was no host code).
        let trace = trace(
            "100324 1 push\n???\n100400 3 mov\n100321 3 vmrun\n???\n100324 3 vmsave\n130000 1 ret\n\
             100321 3 vmrun\n100324 1 out\n???\n100324 3 vmsave\n10027a 3 vmrun\n???\n\
             10027d 3 vmsave\n130000 1 ret",
        );
        let vendor = Vendor::of_trace(&trace, || None).unwrap();
        assert_eq!(vendor, Vendor::Svm);
        assert_eq!(
            split_exits(&trace, vendor),
            vec![vec![0x100324, 0x130000, 0x100321], vec![0x100324, 0x10027a]]
        );
    }

    #[test]
    fn a_trace_without_a_world_switch_has_no_vendor() {
        let plain = vec![insn(1, 1, "nop")];
        assert!(Vendor::of_trace(&plain, || Some(1)).is_err());
        let both = vec![insn(1, 3, "vmrun"), insn(4, 3, "vmresume")];
        assert!(Vendor::of_trace(&both, || Some(1)).is_err());
    }

    const NM: &str = "\
0000000000100038 T _start
00000000001001c1 t exc_common
0000000000100378 00000000000000b8 t arch_vmx::entry::vmx_run
00000000001003dd T janus_vmx_exit
0000000000100470 00000000000000ad t <u64 as core::fmt::Debug>::fmt
0000000000180420 0000000000000010 d arch_svm::svm::ASIDS
";

    #[test]
    fn addresses_map_to_functions() {
        let s = Symbols::parse_nm(NM);
        assert_eq!(s.address(VMX_EXIT_SYMBOL), Some(0x1003dd));
        assert_eq!(s.address("arch_svm::svm::ASIDS"), None, "data is left out");
        assert_eq!(s.function_of(0x100378), "arch_vmx::entry::vmx_run");
        // The label inside vmx_run does not take its instructions.
        assert_eq!(s.function_of(0x1003e0), "arch_vmx::entry::vmx_run");
        assert_eq!(s.function_of(0x100471), "<u64 as core::fmt::Debug>::fmt");
        // Past a function's end, before the next: nothing.
        assert_eq!(s.function_of(0x100430), "?");
        // Assembly without a size: the nearest label.
        assert_eq!(s.function_of(0x100200), "exc_common");
        assert_eq!(s.function_of(0x100100), "_start");
        assert_eq!(s.function_of(0x10), "?");
    }

    #[test]
    fn functions_are_counted_per_exit() {
        let s = Symbols::parse_nm(NM);
        let exits = vec![
            vec![0x1003dd, 0x100470, 0x100478, 0x1003f0],
            vec![0x1003dd, 0x1003f0],
        ];
        let p = Profile::count(&exits, |a| s.function_of(a));
        assert_eq!(p.lengths, vec![4, 2]);
        assert_eq!(p.total(), 6);
        assert_eq!(
            p.functions,
            vec![
                ("arch_vmx::entry::vmx_run".to_string(), 4),
                ("<u64 as core::fmt::Debug>::fmt".to_string(), 2)
            ]
        );
        let text = p.render("profile of cpuid on corei7_skylake_x");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "complete exits: 2");
        assert_eq!(
            lines[2],
            "host instructions per exit: min 2, avg 3.0, max 4"
        );
        assert_eq!(lines[3], "each exit, in order: 4 2");
        assert_eq!(lines[6], "       2.0   66.7%  arch_vmx::entry::vmx_run");
        assert_eq!(
            lines[7],
            "       1.0   33.3%  <u64 as core::fmt::Debug>::fmt"
        );
        assert_eq!(lines[8], "       3.0  100.0%  total");
    }

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
        let src = include_str!("../../guests/src/bin/exitcost.rs");
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
