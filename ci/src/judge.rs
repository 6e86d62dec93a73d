//! Reads a serial log (docs/console.md) into a [`Report`] and judges it against an
//! [`Expectation`].

use crate::hostile::{Attack, End};

/// The `janus: cpu: ...` line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cpu {
    pub vendor: String,
    pub backend: String,
    /// Every other `key=value` of the line, in order (npt=yes, nrip=no, ept=yes, ...).
    pub features: Vec<(String, String)>,
}

impl Cpu {
    pub fn feature(&self, key: &str) -> Option<&str> {
        self.features
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A `janus: summary: NAME status=S exits=T (...)` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub guest: String,
    pub status: String,
    pub exits: u64,
    /// The exits by reason, from the parenthesized part: (io, 30), (cpuid, 5), ...
    pub reasons: Vec<(String, u64)>,
}

impl Summary {
    /// `exits=40 (io=30 cpuid=5 ...)`, reasons with 0 left out.
    pub fn exits_text(&self) -> String {
        let nonzero: Vec<String> = self
            .reasons
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!("exits={} ({})", self.exits, nonzero.join(" "))
    }
}

/// A `[NAME] SUITE: PASS (N checks)` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub guest: String,
    pub suite: String,
    pub checks: u64,
}

/// Everything the log says, as far as the judge cares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// `janus: Janus 0.1.0 (multiboot2)`
    pub banner: Option<String>,
    pub cpu: Option<Cpu>,
    pub refused: Option<String>,
    /// (guest, what follows `ended: `), in order.
    pub ended: Vec<(String, String)>,
    /// (guest, reason) from `janus: guest NAME: not started: REASON`.
    pub not_started: Vec<(String, String)>,
    pub summaries: Vec<Summary>,
    pub suites: Vec<Suite>,
    /// Guest lines that report a failure (`[NAME] ...: FAIL...`), whole.
    pub failures: Vec<String>,
    /// (guest, text from the marker on) of guest lines containing `JANUS-LINUX-` (the
    /// Linux guest's markers: `JANUS-LINUX-MARKER: ...`, `JANUS-LINUX-DONE`).
    pub markers: Vec<(String, String)>,
    /// (guest, K) from `janus: guest NAME reset: starting it again (K of 3)`, in order.
    pub restarts: Vec<(String, u32)>,
    /// (guest, text) of guest lines starting with `hostile: attack ` (attackers' lines).
    pub attack_lines: Vec<(String, String)>,
    /// Guest lines that report a leak (`[NAME] ...: LEAK ...`), whole.
    pub leaks: Vec<String>,
    /// (guest, text from the report on) of a kernel's reports that a CPU got too little
    /// time ([`STALL_REPORTS`]: a soft lockup, an RCU stall, a hung task).
    pub stalls: Vec<(String, String)>,
    /// (guests, failed) from `janus: done: G guests, F failed`.
    pub done: Option<(u64, u64)>,
    /// (exits, iterations) of the exit-cost suite's timer-interrupt loop
    /// (`exit cost irq_oneshot_hlt: T TSC ticks per round trip (E exits for N iterations)`).
    pub irq_round_trips: Option<(u64, u64)>,
    /// `janus: PANIC: ...` or `janus: EXCEPTION ...`, the first one.
    pub panic: Option<String>,
    pub last_janus_line: Option<String>,
    /// The last line of the log that had any text (Janus' or a guest's).
    pub last_line: Option<String>,
}

impl Report {
    /// Sum of the checks of all passed suites.
    pub fn checks(&self) -> u64 {
        self.suites.iter().map(|s| s.checks).sum()
    }

    /// Sum of the exits over all guests' summaries.
    pub fn exits(&self) -> u64 {
        self.summaries.iter().map(|s| s.exits).sum()
    }

    pub fn ended(&self, guest: &str) -> Option<&str> {
        self.ended
            .iter()
            .find(|(g, _)| g == guest)
            .map(|(_, e)| e.as_str())
    }

    /// Every `ended:` text of `guest`, in order (one, unless Janus misbehaves).
    pub fn ends_of(&self, guest: &str) -> Vec<&str> {
        self.ended
            .iter()
            .filter(|(g, _)| g == guest)
            .map(|(_, e)| e.as_str())
            .collect()
    }

    pub fn summary(&self, guest: &str) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.guest == guest)
    }

    /// Whether guest `guest` printed a line starting with `marker`.
    pub fn has_marker(&self, guest: &str, marker: &str) -> bool {
        self.markers
            .iter()
            .any(|(g, t)| g == guest && t.starts_with(marker))
    }
}

/// Removes ANSI escape sequences and other control characters (GRUB draws its menu with
/// them) from one line.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~
                Some('[') => {
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                // Two-character sequences such as ESC 7, ESC (B
                Some('(') | Some(')') => {
                    chars.next();
                }
                _ => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Parses `key=value` words; words without `=` are skipped.
fn key_values(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Parses a serial log.
pub fn parse(log: &str) -> Report {
    let mut r = Report::default();
    let mut seen_janus = false;
    for raw in log.split('\n') {
        let line = clean(raw);
        let mut line = line.trim_end();
        if !seen_janus {
            // Before Janus' first line the log holds GRUB's screen; Janus' first line may
            // share a line with GRUB's leftovers.
            match line.find("janus: ") {
                Some(i) => line = &line[i..],
                None => {
                    if !line.trim().is_empty() {
                        r.last_line = Some(line.trim().to_string());
                    }
                    continue;
                }
            }
        }
        if line.trim().is_empty() {
            continue;
        }
        r.last_line = Some(line.to_string());
        if let Some(text) = line.strip_prefix("janus: ") {
            seen_janus = true;
            r.last_janus_line = Some(line.to_string());
            janus_line(&mut r, text);
        } else if let Some(rest) = line.strip_prefix('[') {
            if let Some((guest, text)) = rest.split_once("] ") {
                guest_line(&mut r, guest, text, line);
            }
        }
    }
    r
}

/// The report of a log that is one suite's own output, without Janus: every line is
/// read as a line of guest `suite`.
pub fn parse_bare(log: &str, suite: &str) -> Report {
    let mut r = Report::default();
    for raw in log.split('\n') {
        let line = clean(raw);
        let line = line.trim();
        if !line.is_empty() {
            r.last_line = Some(line.to_string());
            guest_line(&mut r, suite, line, &format!("[{suite}] {line}"));
        }
    }
    r
}

/// Parses a row's log the way its expectation reads it.
pub fn parse_for(expect: &Expectation, log: &str) -> Report {
    match expect {
        Expectation::Bare { suite } => parse_bare(log, suite),
        _ => parse(log),
    }
}

fn janus_line(r: &mut Report, text: &str) {
    if text.starts_with("Janus ") {
        r.banner.get_or_insert_with(|| text.to_string());
    } else if let Some(rest) = text.strip_prefix("cpu: ") {
        let mut cpu = Cpu::default();
        for (k, v) in key_values(rest) {
            match k.as_str() {
                "vendor" => cpu.vendor = v,
                "backend" => cpu.backend = v,
                _ => cpu.features.push((k, v)),
            }
        }
        r.cpu = Some(cpu);
    } else if let Some(reason) = text.strip_prefix("refused: ") {
        r.refused.get_or_insert_with(|| reason.trim().to_string());
    } else if text.starts_with("PANIC") || text.starts_with("EXCEPTION") {
        r.panic.get_or_insert_with(|| text.to_string());
    } else if let Some(rest) = text.strip_prefix("summary: ") {
        let guest = rest.split_whitespace().next().unwrap_or("").to_string();
        let (head, reasons) = match rest.split_once('(') {
            Some((h, tail)) => (h, tail.split(')').next().unwrap_or("")),
            None => (rest, ""),
        };
        let kv = key_values(head);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        r.summaries.push(Summary {
            guest,
            status: get("status").unwrap_or_default(),
            exits: get("exits").and_then(|v| v.parse().ok()).unwrap_or(0),
            reasons: key_values(reasons)
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect(),
        });
    } else if let Some(rest) = text.strip_prefix("done: ") {
        // "G guests, F failed"
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [g, f, ..] = nums[..] {
            r.done = Some((g, f));
        }
    } else if let Some(rest) = text.strip_prefix("guest ") {
        if let Some((guest, end)) = rest.split_once(" ended: ") {
            r.ended.push((guest.to_string(), end.trim().to_string()));
        } else if let Some((guest, k)) = rest.split_once(" reset: starting it again (") {
            if let Some(k) = k.split(' ').next().and_then(|k| k.parse().ok()) {
                r.restarts.push((guest.to_string(), k));
            }
        } else if let Some((guest, why)) = rest.split_once(": not started: ") {
            r.not_started
                .push((guest.to_string(), why.trim().to_string()));
        }
    }
}

/// How Linux reports that a CPU got too little time: its soft-lockup watchdog, RCU's stall
/// detector, the hung-task detector. Under Janus they say a guest's time went to the
/// VMM (issue #9 wants none on Bochs).
pub const STALL_REPORTS: [&str; 4] = [
    "watchdog: BUG: soft lockup",
    "rcu: INFO: rcu_sched self-detected stall",
    "rcu: INFO: rcu_sched detected stalls",
    "blocked for more than",
];

/// `(E exits for N iterations)` at the end of an exit-cost line: (E, N).
fn exits_for_iterations(line: &str) -> Option<(u64, u64)> {
    let (_, tail) = line.rsplit_once('(')?;
    let (exits, rest) = tail.split_once(" exits for ")?;
    let n = rest.strip_suffix(" iterations)")?;
    Some((exits.trim().parse().ok()?, n.trim().parse().ok()?))
}

/// With virtual-interrupt delivery (`vid=yes` on the cpu line, expected by the row), the
/// exit-cost suite's timer interrupt takes two exits per round trip (the initial count's
/// write and HLT; the CPU delivers it and carries out the EOI), not three: a guest that
/// did not get it fails the row.
fn interrupts_delivered_virtually(r: &Report) -> Result<(), String> {
    match r.irq_round_trips {
        Some((exits, n)) if exits >= 3 * n => Err(format!(
            "vid=yes, but the timer interrupt took {exits} exits for {n} round trips (want 2 each: no exit for the EOI)"
        )),
        _ => Ok(()),
    }
}

fn guest_line(r: &mut Report, guest: &str, text: &str, whole: &str) {
    if let Some(i) = STALL_REPORTS.iter().find_map(|s| text.find(s)) {
        r.stalls.push((guest.to_string(), text[i..].to_string()));
        return;
    }
    // Anywhere in the line: a kernel message may share the line with the echo.
    if let Some(i) = text.find("JANUS-LINUX-") {
        r.markers.push((guest.to_string(), text[i..].to_string()));
        return;
    }
    if text.contains(": LEAK") {
        r.leaks.push(whole.to_string());
    }
    // Not `hostile: PASS (N checks)`: the hostile guest without an attack is a suite.
    if text.starts_with("hostile: attack ") {
        r.attack_lines.push((guest.to_string(), text.to_string()));
        return;
    }
    if let Some(rest) = text.strip_prefix("exit cost irq_oneshot_hlt: ") {
        r.irq_round_trips = exits_for_iterations(rest);
        return;
    }
    // `SUITE: PASS (N checks)`
    if let Some((suite, verdict)) = text.rsplit_once(": ") {
        if let Some(n) = verdict
            .strip_prefix("PASS (")
            .and_then(|v| v.strip_suffix(" checks)").or(v.strip_suffix(" check)")))
        {
            if let Ok(checks) = n.trim().parse() {
                r.suites.push(Suite {
                    guest: guest.to_string(),
                    suite: suite.to_string(),
                    checks,
                });
                return;
            }
        }
    }
    if text.contains(": FAIL") {
        r.failures.push(whole.to_string());
    }
}

/// What a matrix row expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    Pass {
        vendor: &'static str,
        backend: &'static str,
        /// Features the cpu line must show with these values.
        features: &'static [(&'static str, &'static str)],
        /// Guests that must end with exit status 0; the done line must count them all.
        guests: Vec<String>,
        /// (guest, suite) pairs that must print `PASS (N checks)`.
        suites: Vec<(String, String)>,
    },
    Refused {
        reason_contains: &'static str,
    },
    /// A Linux guest that must reach userspace: `[GUEST] JANUS-LINUX-MARKER...`, then
    /// `[GUEST] JANUS-LINUX-DONE`, then `janus: guest GUEST ended: ...` (any end: the
    /// guest reboots, which Janus reports as a reset). With `cpus`, /proc/cpuinfo must
    /// list that many processors, and with more than one /proc/interrupts must count
    /// local timer interrupts on every one. With `tsc_clock`, the kernel must keep time
    /// with the TSC at the end (clocksource `tsc` or `tsc-early`): it trusted the TSC
    /// Janus gives it and never marked it unstable.
    Linux {
        guest: &'static str,
        cpus: u8,
        tsc_clock: bool,
    },
    /// Bad modules next to good guests: each bad module must be answered with one
    /// `janus: guest LABEL: not started: REASON` line, the good guests must still run, and
    /// Janus must end with exactly `done`.
    Rejects {
        /// (guest label as printed, substring of the reason). The label is the module's
        /// `name=`, or `module<index>` when its command line could not be parsed.
        rejected: Vec<(String, &'static str)>,
        /// Guests that must print `[NAME] NAME: PASS (N checks)` and end with exit status 0.
        good: Vec<String>,
        /// The exact last Janus line, e.g. `janus: done: 7 guests, 6 failed`.
        done: String,
    },
    /// Guests that run at once (and, with `linux`, the Linux guest of the Linux ISO beside
    /// them, judged as [`Expectation::Linux`]): every guest ends as wanted, no guest line
    /// reports a FAIL or a LEAK, nothing is refused, and Janus lives to its last line
    /// `janus: done: G guests, F failed` with F the guests whose end is not a success.
    Together {
        guests: Vec<GuestWant>,
        linux: Option<&'static str>,
    },
    /// A suite booted without Janus (by GRUB or QEMU's own loader, [`crate::bare`]): the
    /// log is the suite's own output, parsed by [`parse_bare`]; it must print
    /// `SUITE: PASS (N checks)` and no FAIL line.
    Bare {
        suite: String,
    },
}

/// One guest of a row whose guests run at once ([`Expectation::Together`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GuestWant {
    pub guest: String,
    /// The suite it must pass: `[GUEST] SUITE: PASS (N checks)`.
    pub suite: Option<String>,
    /// The attack it runs: it must print the attack's start line, and when it survives,
    /// its survived line with what it saw.
    pub attack: Option<Attack>,
    /// Its one `janus: guest GUEST ended: ...` line, and its summary's status.
    pub end: End,
    /// It must be started again exactly this often: `reset: starting it again (K of 3)`
    /// for K = 1, 2, ... before its end.
    pub restarts: u32,
}

impl GuestWant {
    /// A suite guest of its own name that must pass and exit 0.
    pub fn suite(name: &str) -> GuestWant {
        GuestWant {
            guest: name.to_string(),
            suite: Some(name.to_string()),
            attack: None,
            end: End::Survived,
            restarts: 0,
        }
    }

    /// A guest that must only exit 0 (hello).
    pub fn exits_0(name: &str) -> GuestWant {
        GuestWant {
            suite: None,
            ..GuestWant::suite(name)
        }
    }

    /// An attacker named after its attack, ending as the table says.
    pub fn attacker(a: &Attack) -> GuestWant {
        GuestWant {
            guest: a.name().to_string(),
            suite: None,
            attack: Some(*a),
            end: a.end,
            restarts: 0,
        }
    }
}

/// Suites that run as guests of their own name: `[NAME] NAME: PASS (N checks)` and
/// `janus: guest NAME ended: exit status 0`.
pub fn own_suites(names: &[String]) -> Vec<(String, String)> {
    names.iter().map(|n| (n.clone(), n.clone())).collect()
}

/// Each expected suite and how it went: Ok(checks), or Err(short reason).
pub fn suite_status(expect: &Expectation, r: &Report) -> Vec<(String, Result<u64, String>)> {
    let owned;
    let suites = match expect {
        Expectation::Bare { suite } => {
            let status = bare_checks(suite, r).ok_or_else(|| "no PASS line".to_string());
            return vec![(
                suite.clone(),
                status.and_then(|n| judge_bare(suite, r).map(|()| n)),
            )];
        }
        Expectation::Pass { suites, .. } => suites,
        Expectation::Rejects { good, .. } => {
            owned = own_suites(good);
            &owned
        }
        Expectation::Together { guests, .. } => {
            owned = guests
                .iter()
                .filter_map(|w| Some((w.guest.clone(), w.suite.clone()?)))
                .collect();
            &owned
        }
        _ => return Vec::new(),
    };
    // A bad module may carry a good guest's name (a duplicate): its line is wanted.
    let wanted_rejection = |g: &str| matches!(expect, Expectation::Rejects { rejected, .. } if rejected.iter().any(|(l, _)| l == g));
    suites
        .iter()
        .map(|(g, s)| {
            let pass = r.suites.iter().find(|x| x.guest == *g && x.suite == *s);
            let status = match (pass, r.ended(g)) {
                (Some(p), Some("exit status 0")) => Ok(p.checks),
                (_, Some(other)) if other != "exit status 0" => Err(format!("ended: {other}")),
                _ if r.not_started.iter().any(|(n, _)| n == g) && !wanted_rejection(g) => {
                    Err("not started".into())
                }
                _ if r.failures.iter().any(|f| f.starts_with(&format!("[{g}] "))) => {
                    Err("FAIL".into())
                }
                (_, Some(_)) => Err("no PASS line".into()),
                (_, None) => Err("did not end".into()),
            };
            (s.clone(), status)
        })
        .collect()
}

fn shorten(s: &str) -> String {
    const MAX: usize = 70;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}

/// A suite without Janus: its PASS line and no failure.
fn judge_bare(suite: &str, r: &Report) -> Result<(), String> {
    if let Some(f) = r.failures.first() {
        return Err(shorten(f));
    }
    match bare_checks(suite, r) {
        Some(_) => Ok(()),
        None => Err(shorten(&format!(
            "no `{suite}: PASS` line (log ends: {})",
            r.last_line.as_deref().unwrap_or("")
        ))),
    }
}

/// The checks of `suite`'s PASS line in a bare log.
fn bare_checks(suite: &str, r: &Report) -> Option<u64> {
    r.suites
        .iter()
        .find(|s| s.guest == suite && s.suite == suite)
        .map(|s| s.checks)
}

/// Judges a report; `Err` holds a short reason.
pub fn judge(expect: &Expectation, r: &Report) -> Result<(), String> {
    if let Expectation::Bare { suite } = expect {
        // No Janus in the log: none of the checks below apply.
        return judge_bare(suite, r);
    }
    if let Some(p) = &r.panic {
        return Err(shorten(p));
    }
    if r.last_janus_line.is_none() {
        return Err(match &r.last_line {
            Some(l) => format!("no output from Janus (log ends: {})", shorten(l)),
            None => "no output from Janus".into(),
        });
    }
    match expect {
        Expectation::Refused { reason_contains } => match &r.refused {
            Some(reason) if reason.contains(reason_contains) => Ok(()),
            Some(reason) => Err(shorten(&format!(
                "refused for another reason: {reason} (want \"{reason_contains}\")"
            ))),
            None => Err(format!("not refused (want refused: \"{reason_contains}\")")),
        },
        Expectation::Pass {
            vendor,
            backend,
            features,
            guests,
            suites,
        } => {
            if let Some(reason) = &r.refused {
                return Err(shorten(&format!("refused: {reason}")));
            }
            let Some(cpu) = &r.cpu else {
                return Err(stopped("no cpu line", r));
            };
            if cpu.vendor != *vendor || cpu.backend != *backend {
                return Err(format!(
                    "cpu is {} {}, want {vendor} {backend}",
                    cpu.vendor, cpu.backend
                ));
            }
            for (k, want) in *features {
                let got = cpu.feature(k).unwrap_or("missing");
                if got != *want {
                    return Err(format!("cpu {k}={got}, want {k}={want}"));
                }
            }
            if features.contains(&("vid", "yes")) {
                interrupts_delivered_virtually(r)?;
            }
            if let Some(f) = r.failures.first() {
                return Err(shorten(f));
            }
            if let Some((g, why)) = r.not_started.first() {
                return Err(shorten(&format!("guest {g} not started: {why}")));
            }
            for g in guests {
                match r.ended(g) {
                    Some("exit status 0") => {}
                    Some(other) => return Err(shorten(&format!("guest {g} ended: {other}"))),
                    None => return Err(stopped(&format!("guest {g} did not end"), r)),
                }
            }
            for (g, s) in suites {
                if !r.suites.iter().any(|x| x.guest == *g && x.suite == *s) {
                    return Err(format!("no \"[{g}] {s}: PASS\" line"));
                }
            }
            let want_done = format!("janus: done: {} guests, 0 failed", guests.len());
            match r.last_janus_line.as_deref() {
                Some(l) if l == want_done => Ok(()),
                Some(l) if r.done.is_some() => Err(shorten(&format!(
                    "last Janus line: {}",
                    &l["janus: ".len()..]
                ))),
                _ => Err(stopped("no done line", r)),
            }
        }
        Expectation::Linux {
            guest,
            cpus,
            tsc_clock,
        } => {
            if let Some(reason) = &r.refused {
                return Err(shorten(&format!("refused: {reason}")));
            }
            judge_linux(guest, r)
                .and_then(|()| judge_linux_stalls(guest, r))
                .and_then(|()| judge_linux_cpus(guest, *cpus, r))
                .and_then(|()| match tsc_clock {
                    true => judge_linux_clock(guest, r),
                    false => Ok(()),
                })
        }
        Expectation::Together { guests, linux } => judge_together(guests, *linux, r),
        Expectation::Rejects {
            rejected,
            good,
            done,
        } => judge_rejects(rejected, good, done, r),
        Expectation::Bare { suite } => judge_bare(suite, r),
    }
}

fn judge_rejects(
    rejected: &[(String, &'static str)],
    good: &[String],
    done: &str,
    r: &Report,
) -> Result<(), String> {
    if let Some(reason) = &r.refused {
        return Err(shorten(&format!("refused: {reason}")));
    }
    for (label, want) in rejected {
        let mine: Vec<&str> = r
            .not_started
            .iter()
            .filter(|(g, _)| g == label)
            .map(|(_, w)| w.as_str())
            .collect();
        match mine[..] {
            [why] if why.contains(want) => {}
            [] => {
                return Err(stopped(
                    &format!("no rejection of {label} (want \"{want}\")"),
                    r,
                ))
            }
            [why] => {
                return Err(shorten(&format!(
                    "{label} rejected for another reason: {why} (want \"{want}\")"
                )))
            }
            _ => {
                return Err(format!(
                    "{label} rejected {} times, want one line",
                    mine.len()
                ))
            }
        }
    }
    if let Some((g, why)) = r
        .not_started
        .iter()
        .find(|(g, _)| !rejected.iter().any(|(l, _)| l == g))
    {
        return Err(shorten(&format!("guest {g} not started: {why}")));
    }
    if let Some(f) = r.failures.first() {
        return Err(shorten(f));
    }
    for g in good {
        match r.ended(g) {
            Some("exit status 0") => {}
            Some(other) => return Err(shorten(&format!("guest {g} ended: {other}"))),
            None => return Err(stopped(&format!("guest {g} did not end"), r)),
        }
        if !r.suites.iter().any(|x| x.guest == *g && x.suite == *g) {
            return Err(format!("no \"[{g}] {g}: PASS\" line"));
        }
    }
    match r.last_janus_line.as_deref() {
        Some(l) if l == done => Ok(()),
        Some(l) if l.starts_with("janus: done: ") => {
            let want = done.strip_prefix("janus: done: ").unwrap_or(done);
            Err(shorten(&format!("{}, want {want}", &l["janus: ".len()..])))
        }
        Some(l) if r.done.is_some() => Err(shorten(&format!(
            "last Janus line: {}",
            &l["janus: ".len()..]
        ))),
        _ => Err(stopped("no done line", r)),
    }
}

/// A Linux guest must reach userspace, print its done marker and end (any end).
fn judge_linux(guest: &str, r: &Report) -> Result<(), String> {
    if let Some((_, why)) = r.not_started.iter().find(|(g, _)| g == guest) {
        return Err(shorten(&format!("guest {guest}: not started: {why}")));
    }
    let marker = r.has_marker(guest, crate::linux::MARKER);
    let done = r.has_marker(guest, crate::linux::DONE);
    match (marker, done, r.ended(guest)) {
        (true, true, Some(_)) => Ok(()),
        (true, true, None) => Err(stopped(
            &format!("guest {guest} did not end after {}", crate::linux::DONE),
            r,
        )),
        (true, false, Some(end)) => Err(shorten(&format!(
            "no {}; guest {guest} ended: {end}",
            crate::linux::DONE
        ))),
        (true, false, None) => Err(stopped(&format!("no {}", crate::linux::DONE), r)),
        (false, _, Some(end)) => Err(shorten(&format!(
            "no userspace marker; guest {guest} ended: {end}"
        ))),
        (false, _, None) => Err(stopped("no userspace marker", r)),
    }
}

/// The Linux guest never reported that a CPU of it got too little time.
fn judge_linux_stalls(guest: &str, r: &Report) -> Result<(), String> {
    match r.stalls.iter().find(|(g, _)| g == guest) {
        Some((_, text)) => Err(shorten(&format!("the kernel reported: {text}"))),
        None => Ok(()),
    }
}

/// The text after `prefix` of guest `guest`'s first marker line that starts with it.
fn marker_text(r: &Report, guest: &str, prefix: &str) -> Option<String> {
    r.markers
        .iter()
        .find(|(g, t)| g == guest && t.starts_with(prefix))
        .map(|(_, t)| t[prefix.len()..].trim().to_string())
}

/// The Linux guest keeps time with the TSC (`JANUS-LINUX-CLOCK: tsc`, or `tsc-early`
/// before the kernel's refined calibration is done).
fn judge_linux_clock(guest: &str, r: &Report) -> Result<(), String> {
    let seen = marker_text(r, guest, crate::linux::CLOCK).ok_or("no clocksource line")?;
    if !matches!(seen.as_str(), "tsc" | "tsc-early") {
        return Err(shorten(&format!(
            "the kernel keeps time with clocksource {seen}, not the TSC"
        )));
    }
    Ok(())
}

/// The Linux guest saw `cpus` processors and, with several, took local timer interrupts
/// on each (`JANUS-LINUX-CPUS: N`, `JANUS-LINUX-LOC: LOC: c0 c1 ... Local timer ...`).
fn judge_linux_cpus(guest: &str, cpus: u8, r: &Report) -> Result<(), String> {
    let line = |prefix: &str| marker_text(r, guest, prefix);
    let seen = line(crate::linux::CPUS).ok_or("no processor count line")?;
    if seen != cpus.to_string() {
        return Err(format!(
            "/proc/cpuinfo lists {seen} processors, want {cpus}"
        ));
    }
    if cpus < 2 {
        return Ok(());
    }
    let loc = line(crate::linux::LOC).unwrap_or_default();
    let counts: Vec<u64> = loc
        .split_whitespace()
        .skip(1)
        .take(cpus as usize)
        .map_while(|w| w.parse().ok())
        .collect();
    if counts.len() != cpus as usize || counts.contains(&0) {
        return Err(shorten(&format!(
            "local timer interrupts not counted on every CPU: {loc}"
        )));
    }
    Ok(())
}

/// How guest `w.guest` went: Ok, or a short reason.
pub fn check_guest(w: &GuestWant, r: &Report) -> Result<(), String> {
    check_run(w, r).and_then(|()| check_summary(w, r))
}

/// The guest's end, restarts, PASS line and attack lines.
fn check_run(w: &GuestWant, r: &Report) -> Result<(), String> {
    let g = &w.guest;
    match r.ends_of(g)[..] {
        [] => return Err(stopped(&format!("guest {g} did not end"), r)),
        [end] if w.end.matches(end) => {}
        [end] => {
            return Err(shorten(&format!(
                "guest {g} ended: {end}, want {}",
                w.end.janus_text()
            )))
        }
        ref ends => return Err(format!("guest {g} ended {} times", ends.len())),
    }
    let restarts: Vec<u32> = r
        .restarts
        .iter()
        .filter(|(n, _)| n == g)
        .map(|(_, k)| *k)
        .collect();
    if restarts != (1..=w.restarts).collect::<Vec<_>>() {
        return Err(format!(
            "guest {g} started again {} times, want {}",
            restarts.len(),
            w.restarts
        ));
    }
    if let Some(s) = &w.suite {
        if !r.suites.iter().any(|x| x.guest == *g && x.suite == *s) {
            return Err(format!("no \"[{g}] {s}: PASS\" line"));
        }
    }
    if let Some(a) = &w.attack {
        let says = |prefix: &str| {
            r.attack_lines
                .iter()
                .any(|(n, t)| n == g && t.starts_with(prefix))
        };
        if !says(&a.start_line()) {
            return Err(format!("{g} did not say \"start\""));
        }
        let survived = || {
            r.attack_lines
                .iter()
                .any(|(n, t)| n == g && a.is_survived_line(t))
        };
        if a.end == End::Survived && !survived() {
            return Err(shorten(&format!(
                "{g} did not say \"survived ({}...)\"",
                a.saw.unwrap_or("")
            )));
        }
    }
    Ok(())
}

/// The guest's summary line says its end.
fn check_summary(w: &GuestWant, r: &Report) -> Result<(), String> {
    let g = &w.guest;
    match r.summary(g) {
        Some(s) if s.status == w.end.summary_status() => Ok(()),
        Some(s) => Err(format!(
            "summary of {g}: status={}, want status={}",
            s.status,
            w.end.summary_status()
        )),
        None => Err(stopped(&format!("no summary of {g}"), r)),
    }
}

fn judge_together(guests: &[GuestWant], linux: Option<&str>, r: &Report) -> Result<(), String> {
    if let Some(reason) = &r.refused {
        return Err(shorten(&format!("refused: {reason}")));
    }
    if let Some((g, why)) = r.not_started.first() {
        return Err(shorten(&format!("guest {g} not started: {why}")));
    }
    if let Some(leak) = r.leaks.first() {
        return Err(shorten(&format!("LEAK: {leak}")));
    }
    let ours = |line: &&String| {
        guests
            .iter()
            .any(|w| line.starts_with(&format!("[{}] ", w.guest)))
    };
    if let Some(f) = r.failures.iter().find(ours) {
        return Err(shorten(f));
    }
    for w in guests {
        check_run(w, r)?;
    }
    for w in guests {
        check_summary(w, r)?;
    }
    let mut failed = guests.iter().filter(|w| !w.end.succeeded()).count();
    if let Some(l) = linux {
        judge_linux(l, r)?;
        let ok = r
            .ended(l)
            .is_some_and(|e| End::Survived.matches(e) || End::PoweredOff.matches(e));
        failed += usize::from(!ok);
    }
    let want = format!(
        "{} guests, {failed} failed",
        guests.len() + usize::from(linux.is_some())
    );
    match r.last_janus_line.as_deref() {
        Some(l) if l.strip_prefix("janus: done: ") == Some(&want) => Ok(()),
        Some(l) if r.done.is_some() => Err(shorten(&format!(
            "last Janus line: {}, want {want}",
            &l["janus: ".len()..],
        ))),
        _ => Err(stopped("no done line", r)),
    }
}

/// For a row with attackers: (attackers that ended as the table says and leaked
/// nothing, attackers).
pub fn attacks_ok(expect: &Expectation, r: &Report) -> Option<(usize, usize)> {
    let Expectation::Together { guests, .. } = expect else {
        return None;
    };
    let attackers: Vec<&GuestWant> = guests.iter().filter(|w| w.attack.is_some()).collect();
    let ok = attackers
        .iter()
        .filter(|w| {
            let prefix = format!("[{}] ", w.guest);
            check_guest(w, r).is_ok() && !r.leaks.iter().any(|l| l.starts_with(&prefix))
        })
        .count();
    (!attackers.is_empty()).then_some((ok, attackers.len()))
}

/// For a bad-modules row: (modules rejected once with the wanted reason, bad modules).
pub fn rejections_ok(expect: &Expectation, r: &Report) -> Option<(usize, usize)> {
    let Expectation::Rejects { rejected, .. } = expect else {
        return None;
    };
    let ok = rejected
        .iter()
        .filter(|(label, want)| {
            let mine: Vec<&String> = r
                .not_started
                .iter()
                .filter(|(g, _)| g == label)
                .map(|(_, w)| w)
                .collect();
            matches!(mine[..], [why] if why.contains(want))
        })
        .count();
    Some((ok, rejected.len()))
}

/// A reason for a log that stopped early: what is missing and where it stopped.
fn stopped(what: &str, r: &Report) -> String {
    match &r.last_line {
        Some(l) => format!("{what}; stopped after: {}", shorten(l)),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn amd() -> Expectation {
        Expectation::Pass {
            vendor: "AMD",
            backend: "svm",
            features: &[("npt", "yes"), ("nrip", "no")],
            guests: names(&["smoke", "hello"]),
            suites: own_suites(&names(&["smoke"])),
        }
    }
    fn intel() -> Expectation {
        Expectation::Pass {
            vendor: "Intel",
            backend: "vmx",
            features: &[("ept", "yes"), ("unrestricted", "yes")],
            guests: names(&["smoke", "hello"]),
            suites: own_suites(&names(&["smoke"])),
        }
    }
    const NO_NPT: Expectation = Expectation::Refused {
        reason_contains: "nested paging",
    };

    /// GRUB's screen noise, then a passing AMD run.
    const AMD_PASS: &str = "\x1b[2J\x1b[1;1H\x1b[0mBooting `Janus'\r\n\r\n\x1b[0mjanus: Janus 0.1.0 (multiboot2)\r\n\
janus: cpu: vendor=AMD backend=svm npt=yes nrip=no asids=16\r\n\
janus: guest smoke: loaded ELF64, entry 0x200000, memory 16 MiB\r\n\
janus: guest hello: loaded multiboot1, entry 0x100000, memory 8 MiB\r\n\
[smoke] check cpuid: ok\r\n\
[smoke] smoke: PASS (12 checks)\r\n\
janus: guest smoke ended: exit status 0\r\n\
[hello] Hello from a multiboot1 guest\r\n\
janus: guest hello ended: exit status 0\r\n\
janus: summary: smoke status=0 exits=40 (io=30 cpuid=5 hypercall=5 msr=0 cr=0 hlt=0 npf=0 other=0)\r\n\
janus: summary: hello status=0 exits=25 (io=25 cpuid=0 hypercall=0 msr=0 cr=0 hlt=0 npf=0 other=0)\r\n\
janus: done: 2 guests, 0 failed\r\n";

    const INTEL_PASS: &str = "janus: Janus 0.1.0 (multiboot2)\n\
janus: cpu: vendor=Intel backend=vmx ept=yes unrestricted=yes vpid=yes\n\
[smoke] smoke: PASS (9 checks)\n\
janus: guest smoke ended: exit status 0\n\
janus: guest hello ended: exit status 0\n\
janus: summary: smoke status=0 exits=7 (io=7)\n\
janus: summary: hello status=0 exits=3 (io=3)\n\
janus: done: 2 guests, 0 failed\n";

    const REFUSED: &str = "GRUB loading...\njanus: Janus 0.1.0 (multiboot2)\n\
janus: refused: AMD-V without nested paging (NPT)\n";

    #[test]
    fn amd_pass() {
        let r = parse(AMD_PASS);
        assert_eq!(r.banner.as_deref(), Some("Janus 0.1.0 (multiboot2)"));
        let cpu = r.cpu.as_ref().unwrap();
        assert_eq!((cpu.vendor.as_str(), cpu.backend.as_str()), ("AMD", "svm"));
        assert_eq!(cpu.feature("nrip"), Some("no"));
        assert_eq!(cpu.feature("asids"), Some("16"));
        assert_eq!(r.checks(), 12);
        assert_eq!(r.exits(), 65);
        assert_eq!(r.done, Some((2, 0)));
        assert_eq!(judge(&amd(), &r), Ok(()));
        // The same log fails an Intel expectation and one with different features.
        assert!(judge(&intel(), &r).unwrap_err().contains("want Intel vmx"));
        let nrip = Expectation::Pass {
            vendor: "AMD",
            backend: "svm",
            features: &[("npt", "yes"), ("nrip", "yes")],
            guests: names(&["smoke", "hello"]),
            suites: vec![],
        };
        assert_eq!(judge(&nrip, &r), Err("cpu nrip=no, want nrip=yes".into()));
    }

    #[test]
    fn intel_pass() {
        let r = parse(INTEL_PASS);
        assert_eq!(judge(&intel(), &r), Ok(()));
        assert_eq!(r.checks(), 9);
        assert_eq!(r.exits(), 10);
        assert!(judge(&amd(), &r).is_err());
    }

    #[test]
    fn with_virtual_interrupt_delivery_a_timer_interrupt_takes_two_exits() {
        let vid = Expectation::Pass {
            vendor: "Intel",
            backend: "vmx",
            features: &[("ept", "yes"), ("vid", "yes")],
            guests: names(&["smoke", "hello"]),
            suites: own_suites(&names(&["smoke"])),
        };
        let log = |exits: u32| {
            INTEL_PASS.replace("vpid=yes", "vpid=yes vid=yes").replace(
                "[smoke] smoke: PASS",
                &format!("[exitcost] exit cost irq_oneshot_hlt: 2182 TSC ticks per round trip ({exits} exits for 200 iterations)\n[smoke] smoke: PASS"),
            )
        };
        let r = parse(&log(401));
        assert_eq!(r.irq_round_trips, Some((401, 200)));
        assert_eq!(judge(&vid, &r), Ok(()));
        let r = parse(&log(601));
        assert!(
            judge(&vid, &r)
                .unwrap_err()
                .contains("took 601 exits for 200 round trips"),
            "three exits each: the EOI exited"
        );
        assert_eq!(
            judge(&intel(), &r),
            Ok(()),
            "without vid expected, three are fine"
        );
    }

    #[test]
    fn refusal() {
        let r = parse(REFUSED);
        assert_eq!(
            r.refused.as_deref(),
            Some("AMD-V without nested paging (NPT)")
        );
        assert_eq!(judge(&NO_NPT, &r), Ok(()));
        let other = Expectation::Refused {
            reason_contains: "no hardware virtualization",
        };
        assert!(judge(&other, &r).unwrap_err().contains("another reason"));
        // A passing run is not a refusal.
        assert!(judge(&NO_NPT, &parse(AMD_PASS))
            .unwrap_err()
            .starts_with("not refused"));
    }

    #[test]
    fn refusal_where_pass_expected() {
        let r = parse(REFUSED);
        assert_eq!(
            judge(&amd(), &r),
            Err("refused: AMD-V without nested paging (NPT)".into())
        );
    }

    #[test]
    fn hang_mid_way() {
        let log = AMD_PASS.split("[hello]").next().unwrap();
        let r = parse(log);
        assert_eq!(r.done, None);
        let err = judge(&amd(), &r).unwrap_err();
        assert!(err.starts_with("guest hello did not end"), "{err}");
        assert!(
            err.contains("stopped after: janus: guest smoke ended: exit status 0"),
            "{err}"
        );
        // Only GRUB's screen: no Janus at all.
        let err = judge(
            &amd(),
            &parse("\x1b[2JGRUB loading.\r\nWelcome to GRUB!\r\n"),
        )
        .unwrap_err();
        assert!(err.starts_with("no output from Janus"), "{err}");
        assert!(err.contains("Welcome to GRUB!"), "{err}");
    }

    #[test]
    fn failing_check() {
        let log = AMD_PASS
            .replace(
                "[smoke] check cpuid: ok",
                "[smoke] check cpuid leaf 1: FAIL (got 0, want 1)",
            )
            .replace(
                "[smoke] smoke: PASS (12 checks)",
                "[smoke] smoke: FAIL (1 of 12 checks failed)",
            )
            .replace("smoke ended: exit status 0", "smoke ended: exit status 1")
            .replace("2 guests, 0 failed", "2 guests, 1 failed");
        let r = parse(&log);
        assert_eq!(r.failures.len(), 2);
        assert_eq!(
            judge(&amd(), &r),
            Err("[smoke] check cpuid leaf 1: FAIL (got 0, want 1)".into())
        );
        // A failed guest without a FAIL line is caught by its end.
        let log = AMD_PASS.replace("hello ended: exit status 0", "hello ended: triple fault");
        assert_eq!(
            judge(&amd(), &parse(&log)),
            Err("guest hello ended: triple fault".into())
        );
        // A missing suite verdict.
        let log = AMD_PASS.replace("[smoke] smoke: PASS (12 checks)\r\n", "");
        assert_eq!(
            judge(&amd(), &parse(&log)),
            Err("no \"[smoke] smoke: PASS\" line".into())
        );
    }

    #[test]
    fn panic() {
        let log = AMD_PASS.replace(
            "[hello] Hello from a multiboot1 guest",
            "janus: PANIC: at boot/src/run.rs:42: VMRUN failed",
        );
        let r = parse(&log);
        assert_eq!(
            r.panic.as_deref(),
            Some("PANIC: at boot/src/run.rs:42: VMRUN failed")
        );
        assert_eq!(
            judge(&amd(), &r),
            Err("PANIC: at boot/src/run.rs:42: VMRUN failed".into())
        );
        let r = parse(&format!("{REFUSED}janus: EXCEPTION #GP at 0x1234\n"));
        assert!(judge(&NO_NPT, &r).unwrap_err().starts_with("EXCEPTION"));
    }

    #[test]
    fn done_must_be_last_and_clean() {
        let r = parse(&AMD_PASS.replace("2 guests, 0 failed", "2 guests, 1 failed"));
        assert_eq!(
            judge(&amd(), &r),
            Err("last Janus line: done: 2 guests, 1 failed".into())
        );
        let r = parse(&format!(
            "{AMD_PASS}janus: guest smoke ended: error: late\n"
        ));
        assert!(judge(&amd(), &r).is_err());
    }

    #[test]
    fn summary_reasons() {
        let r = parse(AMD_PASS);
        let s = r.summary("smoke").unwrap();
        assert_eq!(s.exits, 40);
        assert_eq!(s.reasons[0], ("io".to_string(), 30));
        assert_eq!(s.reasons.len(), 8);
        assert_eq!(s.exits_text(), "exits=40 (io=30 cpuid=5 hypercall=5)");
    }

    /// Every suite as a guest of its own: all must pass and end, the done line counts all.
    #[test]
    fn many_suites() {
        let all = names(&["smoke", "pic", "pit"]);
        let expect = Expectation::Pass {
            vendor: "AMD",
            backend: "svm",
            features: &[],
            guests: names(&["smoke", "pic", "pit", "hello"]),
            suites: own_suites(&all),
        };
        let good = "janus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n\
[smoke] smoke: PASS (28 checks)\njanus: guest smoke ended: exit status 0\n\
[pic] pic: PASS (7 checks)\njanus: guest pic ended: exit status 0\n\
[pit] pit: PASS (1 check)\njanus: guest pit ended: exit status 0\n\
janus: guest hello ended: exit status 0\njanus: done: 4 guests, 0 failed\n";
        let r = parse(good);
        assert_eq!(judge(&expect, &r), Ok(()));
        assert_eq!(r.checks(), 36);
        let st = suite_status(&expect, &r);
        assert_eq!(
            st,
            vec![
                ("smoke".into(), Ok(28)),
                ("pic".into(), Ok(7)),
                ("pit".into(), Ok(1))
            ]
        );
        // The done line must count every guest.
        let r = parse(&good.replace("4 guests", "3 guests"));
        assert_eq!(
            judge(&expect, &r),
            Err("last Janus line: done: 3 guests, 0 failed".into())
        );
        // A suite that prints PASS for another suite's name does not count.
        let r = parse(&good.replace("[pic] pic: PASS", "[pic] pit: PASS"));
        assert_eq!(
            judge(&expect, &r),
            Err("no \"[pic] pic: PASS\" line".into())
        );
        assert_eq!(
            suite_status(&expect, &r)[1],
            ("pic".into(), Err("no PASS line".into()))
        );
        // Failures by suite.
        let bad = good
            .replace(
                "[pic] pic: PASS (7 checks)",
                "[pic] pic: FAIL (1 of 7 checks failed)",
            )
            .replace("pic ended: exit status 0", "pic ended: exit status 1")
            .replace("pit ended: exit status 0", "pit ended: triple fault");
        let r = parse(&bad);
        assert_eq!(
            judge(&expect, &r),
            Err("[pic] pic: FAIL (1 of 7 checks failed)".into())
        );
        let st = suite_status(&expect, &r);
        assert_eq!(st[1].1, Err("ended: exit status 1".into()));
        assert_eq!(st[2].1, Err("ended: triple fault".into()));
        let r = parse(good.split("[pit]").next().unwrap());
        assert_eq!(suite_status(&expect, &r)[2].1, Err("did not end".into()));
        let r = parse(&format!(
            "janus: guest pit: not started: mem=1 KiB is too little\n{good}"
        ));
        assert!(judge(&expect, &r)
            .unwrap_err()
            .starts_with("guest pit not started"));
    }

    #[test]
    fn linux_with_several_cpus_must_see_them_and_tick_on_each() {
        let log = |cpus: &str, loc: &str| {
            parse(&format!(
                "janus: Janus 0.1.0 (multiboot2)\n[linux] JANUS-LINUX-MARKER: userspace reached\n\
                 [linux] JANUS-LINUX-CPUS: {cpus}\n[linux] JANUS-LINUX-LOC: {loc}\n\
                 [linux] JANUS-LINUX-DONE\njanus: guest linux ended: reset\n"
            ))
        };
        let two = Expectation::Linux {
            guest: "linux",
            cpus: 2,
            tsc_clock: false,
        };
        let good = log("2", "LOC:  812  640  Local timer interrupts");
        assert_eq!(judge(&two, &good), Ok(()));
        assert_eq!(
            judge(&two, &log("1", "LOC: 812 Local timer interrupts")),
            Err("/proc/cpuinfo lists 1 processors, want 2".into())
        );
        assert!(
            judge(&two, &log("2", "LOC:  812  0  Local timer interrupts"))
                .unwrap_err()
                .starts_with("local timer interrupts not counted on every CPU")
        );
        let one = Expectation::Linux {
            guest: "linux",
            cpus: 1,
            tsc_clock: false,
        };
        assert_eq!(
            judge(&one, &good),
            Err("/proc/cpuinfo lists 2 processors, want 1".into())
        );
    }

    #[test]
    fn linux_must_not_report_a_cpu_starved() {
        // Linux with 2 vCPUs on Bochs corei7_skylake_x printed two soft lockups and
        // passed.
        let log = |extra: &str| {
            parse(&format!(
                "janus: Janus 0.1.0 (multiboot2)\n{extra}[linux] JANUS-LINUX-MARKER: userspace reached\n\
                 [linux] JANUS-LINUX-CPUS: 1\n[linux] JANUS-LINUX-DONE\n\
                 janus: guest linux ended: reset\n"
            ))
        };
        let want = Expectation::Linux {
            guest: "linux",
            cpus: 1,
            tsc_clock: false,
        };
        assert_eq!(judge(&want, &log("")), Ok(()));
        let lockup = "[linux] [  218.037334] watchdog: BUG: soft lockup - CPU#1 stuck for 27s! [swapper/0:1]\n";
        assert!(judge(&want, &log(lockup))
            .unwrap_err()
            .starts_with("the kernel reported: watchdog: BUG: soft lockup - CPU#1"));
        let rcu = "[linux] [   60.1] rcu: INFO: rcu_sched self-detected stall on CPU\n";
        assert!(judge(&want, &log(rcu))
            .unwrap_err()
            .contains("self-detected stall"));
        let hung =
            "[linux] [  242.9] INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n";
        assert!(judge(&want, &log(hung))
            .unwrap_err()
            .contains("blocked for more than 120"));
        // Another guest's lines are its own business.
        let other = "[victim] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\n";
        assert_eq!(judge(&want, &log(other)), Ok(()));
    }

    #[test]
    fn linux_must_keep_time_with_the_expected_clocksource() {
        let log = |clock: &str| {
            parse(&format!(
                "janus: Janus 0.1.0 (multiboot2)\n[linux] JANUS-LINUX-MARKER: userspace reached\n\
                 [linux] JANUS-LINUX-CPUS: 1\n{clock}[linux] JANUS-LINUX-DONE\n\
                 janus: guest linux ended: reset\n"
            ))
        };
        let tsc = Expectation::Linux {
            guest: "linux",
            cpus: 1,
            tsc_clock: true,
        };
        let good = log("[linux] JANUS-LINUX-CLOCK: tsc\n");
        assert_eq!(judge(&tsc, &good), Ok(()));
        let early = log("[linux] JANUS-LINUX-CLOCK: tsc-early\n");
        assert_eq!(judge(&tsc, &early), Ok(()));
        assert_eq!(
            judge(&tsc, &log("[linux] JANUS-LINUX-CLOCK: acpi_pm\n")),
            Err("the kernel keeps time with clocksource acpi_pm, not the TSC".into())
        );
        assert_eq!(judge(&tsc, &log("")), Err("no clocksource line".into()));
        let any = Expectation::Linux {
            guest: "linux",
            cpus: 1,
            tsc_clock: false,
        };
        assert_eq!(judge(&any, &log("")), Ok(()));
    }

    #[test]
    fn linux_expectation() {
        let linux = Expectation::Linux {
            guest: "linux",
            cpus: 1,
            tsc_clock: false,
        };
        let booted = "janus: Janus 0.1.0 (multiboot2)\njanus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n\
janus: guest linux: loaded Linux, entry 0x1000000, memory 256 MiB\n[linux] [    0.000000] Linux version 6.1.0\n\
[linux] JANUS-LINUX-MARKER: userspace reached\n[linux] flags\t\t: fpu vme de\n\
[linux] JANUS-LINUX-CPUS: 1\n[linux] JANUS-LINUX-LOC: LOC:   1234   Local timer interrupts\n\
[linux]            CPU0\n[linux] JANUS-LINUX-DONE\n[linux] [    9.1] reboot: Restarting system\n\
janus: guest linux ended: reset\n\
janus: summary: linux status=reset exits=12345 (io=12000 cpuid=300 msr=45 hlt=0)\n\
janus: done: 1 guests, 0 failed\n";
        let r = parse(booted);
        assert!(r.has_marker("linux", "JANUS-LINUX-MARKER"));
        assert_eq!(judge(&linux, &r), Ok(()));
        assert_eq!(r.ended("linux"), Some("reset"));
        assert_eq!(
            r.summary("linux").unwrap().exits_text(),
            "exits=12345 (io=12000 cpuid=300 msr=45)"
        );
        // Today's Janus.
        let r = parse(
            "janus: Janus 0.1.0 (multiboot2)\njanus: guest linux: not started: Linux guests are not supported yet\n\
             janus: guest initramfs: not started: initrd for 'linux': Linux guests are not supported yet\n\
             janus: done: 0 guests, 2 failed\n",
        );
        assert_eq!(
            judge(&linux, &r),
            Err("guest linux: not started: Linux guests are not supported yet".into())
        );
        // Stuck in the kernel; userspace but no end; an end without userspace.
        let r = parse(booted.split("[linux] JANUS-LINUX-MARKER").next().unwrap());
        assert!(judge(&linux, &r)
            .unwrap_err()
            .starts_with("no userspace marker; stopped after: [linux] [    0.000000]"));
        let r = parse(booted.split("[linux] JANUS-LINUX-DONE").next().unwrap());
        assert!(judge(&linux, &r)
            .unwrap_err()
            .starts_with("no JANUS-LINUX-DONE; stopped after"));
        let r = parse(&booted.replace("JANUS-LINUX-DONE", "x"));
        assert_eq!(
            judge(&linux, &r),
            Err("no JANUS-LINUX-DONE; guest linux ended: reset".into())
        );
        let r = parse("janus: Janus 0.1.0\n[linux] oops\njanus: guest linux ended: triple fault\n");
        assert_eq!(
            judge(&linux, &r),
            Err("no userspace marker; guest linux ended: triple fault".into())
        );
        // A marker behind a kernel message on the same line counts.
        let r = parse(&booted.replace(
            "[linux] JANUS-LINUX-DONE",
            "[linux] [    9.0] random: crng initJANUS-LINUX-DONE",
        ));
        assert_eq!(judge(&linux, &r), Ok(()));
        // A marker from another guest does not count.
        let r = parse(&booted.replace("[linux] JANUS-LINUX-MARKER", "[other] JANUS-LINUX-MARKER"));
        assert!(judge(&linux, &r).is_err());
    }

    fn rejects() -> Expectation {
        Expectation::Rejects {
            rejected: vec![
                ("junk".into(), "not a multiboot1 kernel"),
                ("module1".into(), "unknown key 'colour'"),
                ("huge".into(), "needs 65536 MiB"),
                ("tiny".into(), "too little"),
                ("module4".into(), "no guest has that name"),
                ("truncated".into(), "truncated"),
            ],
            good: names(&["smoke"]),
            done: "janus: done: 7 guests, 6 failed".into(),
        }
    }

    /// Janus answering the hostile ISO: six rejections, then smoke passes.
    const HOSTILE: &str = "janus: Janus 0.1.0 (multiboot2)\n\
janus: cpu: vendor=AMD backend=svm npt=yes nrip=no asids=16\n\
janus: guest junk: not started: not a multiboot1 kernel (no multiboot header in the first 8 KiB) nor a Linux bzImage (4096 bytes)\n\
janus: guest module1: not started: bad module command line \"name=badline colour=blue\": unknown key 'colour' (known: name, mem, kind, cmdline, initrd-of)\n\
janus: guest huge: not started: needs 65536 MiB of RAM but at most 247 MiB are free\n\
janus: guest tiny: not started: mem=1024 KiB is too little: a guest needs at least 2 MiB\n\
janus: guest module4: not started: initrd for 'nobody', but no guest has that name\n\
janus: guest truncated: not started: image is truncated: its headers point past its end\n\
janus: guest smoke: loaded multiboot1, entry 0x100020, memory 16 MiB\n\
[smoke] smoke: PASS (28 checks)\n\
janus: guest smoke ended: exit status 0\n\
janus: summary: smoke status=0 exits=2262 (io=2200 cpuid=62)\n\
janus: done: 7 guests, 6 failed\n";

    #[test]
    fn rejects_pass() {
        let r = parse(HOSTILE);
        assert_eq!(r.not_started.len(), 6);
        assert_eq!(r.not_started[1].0, "module1");
        assert_eq!(judge(&rejects(), &r), Ok(()));
        assert_eq!(suite_status(&rejects(), &r), vec![("smoke".into(), Ok(28))]);
        // A Pass expectation fails on the same log: it wants no rejected module.
        assert!(judge(&amd(), &r)
            .unwrap_err()
            .starts_with("guest junk not started"));
    }

    #[test]
    fn rejects_missing_line() {
        let log = HOSTILE.replace("janus: guest tiny: not started: mem=1024 KiB is too little: a guest needs at least 2 MiB\n", "");
        let err = judge(&rejects(), &parse(&log)).unwrap_err();
        assert!(
            err.starts_with(
                "no rejection of tiny (want \"too little\"); stopped after: janus: done:"
            ),
            "{err}"
        );
        // Rejected, but for another reason.
        let log = HOSTILE.replace("needs 65536 MiB of RAM", "needs 1 MiB of RAM");
        let err = judge(&rejects(), &parse(&log)).unwrap_err();
        assert!(
            err.starts_with("huge rejected for another reason: needs 1 MiB"),
            "{err}"
        );
        // A rejection nobody expected.
        let log = HOSTILE.replace(
            "janus: guest smoke: loaded",
            "janus: guest smoke: not started: oops\njanus: guest smoke: loaded",
        );
        assert_eq!(
            judge(&rejects(), &parse(&log)),
            Err("guest smoke not started: oops".into())
        );
        // The same module answered twice.
        let log = HOSTILE.replace(
            "janus: guest junk:",
            "janus: guest junk: not started: not a multiboot1 kernel\njanus: guest junk:",
        );
        assert_eq!(
            judge(&rejects(), &parse(&log)),
            Err("junk rejected 2 times, want one line".into())
        );
    }

    #[test]
    fn rejects_panic_after_first() {
        let first = HOSTILE.split("janus: guest module1").next().unwrap();
        let log = format!(
            "{first}janus: PANIC: at vmm-core/src/loader/cmdline.rs:80: index out of bounds\n"
        );
        let r = parse(&log);
        assert_eq!(r.not_started.len(), 1);
        assert_eq!(
            judge(&rejects(), &r),
            Err("PANIC: at vmm-core/src/loader/cmdline.rs:80: index out of bounds".into())
        );
        // Stopped without a panic: the first missing rejection and where the log stopped.
        let err = judge(&rejects(), &parse(first)).unwrap_err();
        assert!(err.starts_with("no rejection of module1"), "{err}");
        assert!(
            err.contains("stopped after: janus: guest junk: not started"),
            "{err}"
        );
    }

    #[test]
    fn rejects_smoke_failed() {
        let log = HOSTILE
            .replace("[smoke] smoke: PASS (28 checks)", "[smoke] check cpuid: FAIL (got 0, want 1)\n[smoke] smoke: FAIL (1 of 28 checks failed)")
            .replace("smoke ended: exit status 0", "smoke ended: exit status 1")
            .replace("7 guests, 6 failed", "7 guests, 7 failed");
        let r = parse(&log);
        assert_eq!(
            judge(&rejects(), &r),
            Err("[smoke] check cpuid: FAIL (got 0, want 1)".into())
        );
        assert_eq!(
            suite_status(&rejects(), &r),
            vec![("smoke".into(), Err("ended: exit status 1".into()))]
        );
        // Smoke ends badly without a FAIL line; smoke never ends; smoke passes but the count is off.
        let log = HOSTILE.replace("smoke ended: exit status 0", "smoke ended: triple fault");
        assert_eq!(
            judge(&rejects(), &parse(&log)),
            Err("guest smoke ended: triple fault".into())
        );
        let log = HOSTILE.split("janus: guest smoke ended").next().unwrap();
        assert!(judge(&rejects(), &parse(log))
            .unwrap_err()
            .starts_with("guest smoke did not end; stopped after: [smoke] smoke: PASS"));
        let log = HOSTILE.replace("[smoke] smoke: PASS (28 checks)\n", "");
        assert_eq!(
            judge(&rejects(), &parse(&log)),
            Err("no \"[smoke] smoke: PASS\" line".into())
        );
        let log = HOSTILE.replace("7 guests, 6 failed", "1 guests, 0 failed");
        assert_eq!(
            judge(&rejects(), &parse(&log)),
            Err("done: 1 guests, 0 failed, want 7 guests, 6 failed".into())
        );
    }

    /// A log in which every guest of `want` does what it should: Janus' banner, each
    /// guest's lines, restarts, end and summary, then the done line.
    fn together_log(want: &Expectation) -> String {
        let Expectation::Together { guests, linux } = want else {
            panic!("{want:?}")
        };
        let mut log = String::from(
            "janus: Janus 0.1.0 (multiboot2)\njanus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n",
        );
        let mut failed = 0;
        if let Some(l) = linux {
            log.push_str(&format!(
                "[{l}] JANUS-LINUX-MARKER: userspace reached\n[{l}] JANUS-LINUX-DONE\n\
                 janus: guest {l} ended: reset\n"
            ));
            failed += 1;
        }
        for w in guests {
            let g = &w.guest;
            for k in 1..=w.restarts {
                if let Some(a) = &w.attack {
                    log.push_str(&format!("[{g}] {}\n", a.start_line()));
                }
                log.push_str(&format!(
                    "janus: guest {g} reset: starting it again ({k} of 3)\n"
                ));
            }
            if let Some(a) = &w.attack {
                log.push_str(&format!("[{g}] {}\n", a.start_line()));
                if let Some(p) = a.survived_prefix() {
                    log.push_str(&format!("[{g}] {p}{})\n", a.saw.unwrap_or("")));
                }
            }
            if let Some(suite) = &w.suite {
                log.push_str(&format!(
                    "[{g}] check x: ok\n[{g}] {suite}: PASS (5 checks)\n"
                ));
            }
            let end = match w.end {
                End::TimeLimit => "time limit reached",
                e => e.janus_text(),
            };
            log.push_str(&format!("janus: guest {g} ended: {end}\n"));
            failed += usize::from(!w.end.succeeded());
        }
        for w in guests {
            log.push_str(&format!(
                "janus: summary: {} status={} exits=9 (io=5 cpuid=1 msr=0 hypercall=1 hlt=0 cr=1 dr=1 npf=0 exception=0 intr=0 timer=0 window=0 other=0)\n",
                w.guest,
                w.end.summary_status()
            ));
        }
        let n = guests.len() + usize::from(linux.is_some());
        log.push_str(&format!("janus: done: {n} guests, {failed} failed\n"));
        log
    }

    fn many() -> Expectation {
        crate::together::many_expectation(
            &names(&["smoke", "pic", "victim"]),
            crate::together::Spinner::InterruptsOff,
        )
    }

    #[test]
    fn many_guests_pass() {
        let log = together_log(&many());
        let r = parse(&log);
        assert_eq!(judge(&many(), &r), Ok(()), "{log}");
        assert_eq!(r.restarts.len(), 3);
        assert_eq!(r.summary("cf9").unwrap().reasons[6], ("dr".to_string(), 1));
        assert!(log.contains("janus: done: 10 guests, 5 failed"), "{log}");
        assert_eq!(attacks_ok(&many(), &r), Some((6, 6)));
        assert_eq!(
            suite_status(&many(), &r),
            vec![
                ("smoke".into(), Ok(5)),
                ("pic".into(), Ok(5)),
                ("victim".into(), Ok(5))
            ]
        );
    }

    /// Each way a many-guests row can go wrong fails it, with a reason that says which.
    #[test]
    fn many_guests_failures() {
        let good = together_log(&many());
        let fails = |log: &str| judge(&many(), &parse(log)).unwrap_err();
        // The spinner is not stopped by its time limit.
        let log = good.replace(
            "cli_spin ended: time limit reached",
            "cli_spin ended: exit status 0",
        );
        assert_eq!(
            fails(&log),
            "guest cli_spin ended: exit status 0, want time limit"
        );
        // A restart too few, or too many.
        let log = good.replace("janus: guest cf9 reset: starting it again (3 of 3)\n", "");
        assert_eq!(fails(&log), "guest cf9 started again 2 times, want 3");
        let log = good.replace(
            "janus: guest cf9 ended",
            "janus: guest cf9 reset: starting it again (4 of 3)\njanus: guest cf9 ended",
        );
        assert_eq!(fails(&log), "guest cf9 started again 4 times, want 3");
        // snoop saw plant's values.
        let log = good.replace("snoop: survived (clean)", "snoop: survived (2 values LEAK)");
        assert_eq!(fails(&log), "snoop did not say \"survived (clean...)\"");
        let log = good.replace(
            "[snoop] hostile: attack snoop: start\n",
            "[snoop] hostile: attack snoop: start\n[snoop] hostile: attack snoop: LEAK after HLT: DR0 = 0x1234\n",
        );
        assert_eq!(
            fails(&log),
            "LEAK: [snoop] hostile: attack snoop: LEAK after HLT: DR0 = 0x1234"
        );
        // A suite fails.
        let log = good.replace(
            "[victim] check x: ok",
            "[victim] check victim.xmm: FAIL (xmm3 changed)",
        );
        assert_eq!(
            fails(&log),
            "[victim] check victim.xmm: FAIL (xmm3 changed)"
        );
        // A suite's PASS line is missing.
        let log = good.replace("[pic] pic: PASS (5 checks)\n", "");
        assert_eq!(fails(&log), "no \"[pic] pic: PASS\" line");
        // An attacker that never started its attack.
        let log = good.replace("[plant] hostile: attack plant: start\n", "");
        assert_eq!(fails(&log), "plant did not say \"start\"");
        // Janus crashes after the first guests ended.
        let cut = good.split("janus: guest victim ended").next().unwrap();
        let log = format!("{cut}janus: PANIC: at boot/src/sched.rs:99: slot taken\n");
        assert_eq!(fails(&log), "PANIC: at boot/src/sched.rs:99: slot taken");
        // Janus hangs: no end for the rest.
        assert!(
            fails(cut).starts_with("guest victim did not end; stopped after:"),
            "{}",
            fails(cut)
        );
        // Everything ended, but Janus never said done; or counted wrong.
        let log = good.split("janus: done").next().unwrap();
        assert!(fails(log).starts_with("no done line"), "{}", fails(log));
        let log = good.replace("10 guests, 5 failed", "10 guests, 6 failed");
        assert_eq!(
            fails(&log),
            "last Janus line: done: 10 guests, 6 failed, want 10 guests, 5 failed"
        );
        // A spinner on exits finished in place that its time limit did not stop.
        let log = good.replace(
            "port_spin ended: time limit reached",
            "port_spin ended: exit status 0",
        );
        assert_eq!(
            fails(&log),
            "guest port_spin ended: exit status 0, want time limit"
        );
        // The summary says another end than the ended line.
        let log = good.replace(
            "summary: cli_spin status=time-limit",
            "summary: cli_spin status=error",
        );
        assert_eq!(
            fails(&log),
            "summary of cli_spin: status=error, want status=time-limit"
        );
        // A guest that ends twice; a guest that is not started.
        let log = good.replace(
            "janus: guest hello ended: exit status 0\n",
            "janus: guest hello ended: exit status 0\njanus: guest hello ended: reset\n",
        );
        assert_eq!(fails(&log), "guest hello ended 2 times");
        let log = good.replace(
            "janus: cpu:",
            "janus: guest plant: not started: bad limit '3s'\njanus: cpu:",
        );
        assert_eq!(fails(&log), "guest plant not started: bad limit '3s'");
        // A refused CPU.
        assert!(fails(REFUSED).starts_with("refused: "));
    }

    #[test]
    fn attack_rows() {
        let want = crate::together::attack_expectation(3, crate::together::AttackSet::All, false);
        let good = together_log(&want);
        let r = parse(&good);
        assert_eq!(judge(&want, &r), Ok(()), "{good}");
        let Expectation::Together { guests, .. } = &want else {
            panic!()
        };
        let n = guests.len() - 1;
        assert_eq!(attacks_ok(&want, &r), Some((n, n)));
        // An attacker that should have triple-faulted was halted instead.
        let tf = guests.iter().find(|w| w.end == End::TripleFault);
        if let Some(tf) = tf {
            let g = &tf.guest;
            let log = good.replace(
                &format!("guest {g} ended: triple fault"),
                &format!("guest {g} ended: halted with interrupts off"),
            );
            let r = parse(&log);
            assert!(judge(&want, &r)
                .unwrap_err()
                .starts_with(&format!("guest {g} ended: halted")));
            assert_eq!(attacks_ok(&want, &r), Some((n - 1, n)));
        }
        // A survivor that saw something else than the table says.
        let saw = guests
            .iter()
            .find_map(|w| Some((w.guest.clone(), w.attack?.saw?)))
            .unwrap();
        let log = good.replace(&format!("survived ({}", saw.1), "survived (nothing");
        assert_eq!(
            judge(&want, &parse(&log)),
            Err(format!("{} did not say \"survived ({}...)\"", saw.0, saw.1))
        );
        // A LEAK line from any attacker fails the row and its count.
        let log = good.replace(
            &format!("[{}] hostile: attack {}: start", saw.0, saw.0),
            &format!(
                "[{0}] hostile: attack {0}: start\n[{0}] hostile: attack {0}: LEAK x",
                saw.0
            ),
        );
        let r = parse(&log);
        assert!(judge(&want, &r).unwrap_err().starts_with("LEAK: "));
        assert_eq!(attacks_ok(&want, &r), Some((n - 1, n)));
        // The victim fails.
        let log = good.replace(
            "[victim] victim: PASS (5 checks)",
            "[victim] victim: FAIL (1 of 5 checks failed)",
        );
        assert_eq!(
            judge(&want, &parse(&log)),
            Err("[victim] victim: FAIL (1 of 5 checks failed)".into())
        );
    }

    #[test]
    fn linux_beside_suites() {
        let want = crate::together::linux_expectation("linux");
        let good = together_log(&want);
        assert!(good.contains("janus: done: 5 guests, 1 failed"), "{good}");
        let r = parse(&good);
        assert_eq!(judge(&want, &r), Ok(()));
        assert_eq!(attacks_ok(&want, &r), None);
        // Linux powering off is a success: one failure fewer.
        let log = good
            .replace("linux ended: reset", "linux ended: powered off")
            .replace("1 failed", "0 failed");
        assert_eq!(judge(&want, &parse(&log)), Ok(()));
        // Linux never reaches userspace.
        let log = good.replace("[linux] JANUS-LINUX-MARKER: userspace reached\n", "");
        assert_eq!(
            judge(&want, &parse(&log)),
            Err("no userspace marker; guest linux ended: reset".into())
        );
        // A kernel line with ": FAIL" is Linux' business; a suite's is ours.
        let log = good.replace(
            "[linux] JANUS-LINUX-DONE",
            "[linux] [ 1.0] x: FAILED\n[linux] JANUS-LINUX-DONE",
        );
        assert_eq!(judge(&want, &parse(&log)), Ok(()));
        let log = good.replace(
            "[lapic] check x: ok",
            "[lapic] check timer: FAIL (no interrupt)",
        );
        assert_eq!(
            judge(&want, &parse(&log)),
            Err("[lapic] check timer: FAIL (no interrupt)".into())
        );
        // The victim beside Linux did not end.
        let log = good.replace("janus: guest victim ended: exit status 0\n", "");
        assert!(judge(&want, &parse(&log))
            .unwrap_err()
            .starts_with("guest victim did not end"));
    }

    /// The real bad-modules expectation against a log of Janus answering each module.
    #[test]
    fn bad_modules_rows() {
        let want = crate::bad_modules::expectation();
        let Expectation::Rejects { rejected, done, .. } = &want else {
            panic!()
        };
        let lines: String = rejected
            .iter()
            .map(|(g, why)| format!("janus: guest {g}: not started: because {why} (details)\n"))
            .collect();
        let good = format!(
            "janus: Janus 0.1.0 (multiboot2)\n{lines}[smoke] smoke: PASS (28 checks)\n\
             janus: guest smoke ended: exit status 0\n{done}\n"
        );
        let r = parse(&good);
        assert_eq!(judge(&want, &r), Ok(()));
        assert_eq!(
            rejections_ok(&want, &r),
            Some((rejected.len(), rejected.len()))
        );
        // The initrd of the refused guest must stay silent.
        let log = good.replace(
            "janus: guest lxfail:",
            "janus: guest module17: not started: initrd for 'lxfail'\njanus: guest lxfail:",
        );
        assert_eq!(
            judge(&want, &parse(&log)),
            Err("guest module17 not started: initrd for 'lxfail'".into())
        );
        // A module past the 32 is not answered.
        let log = good.replace(
            "janus: guest module33: not started",
            "janus: guest other: not started",
        );
        let r = parse(&log);
        assert!(judge(&want, &r)
            .unwrap_err()
            .starts_with("no rejection of module33"));
        assert_eq!(
            rejections_ok(&want, &r),
            Some((rejected.len() - 1, rejected.len()))
        );
        // Janus says "unknown key" where the scheduler's keys are known.
        let log = good.replace("because bad weight '0'", "unknown key 'weight'");
        assert!(judge(&want, &parse(&log))
            .unwrap_err()
            .starts_with("module18 rejected for another reason: unknown key 'weight'"));
    }

    /// A suite without Janus: GRUB's screen, then the suite's own lines.
    #[test]
    fn bare_suites() {
        let want = Expectation::Bare {
            suite: "mb2".into(),
        };
        let good = "\x1b[2J\x1b[1;1H\x1b[0mBooting `mb2'\r\n\r\ncheck mb2.magic: ok\r\n\
                    module 0: 0x121000-0x1210b1 \"index=0\"\r\nmb2: PASS (20 checks)\r\n";
        let r = parse_for(&want, good);
        assert_eq!(judge(&want, &r), Ok(()));
        assert_eq!(suite_status(&want, &r), [("mb2".to_string(), Ok(20))]);
        assert_eq!(parse(good).suites.len(), 0, "not a Janus log");
        let failed = good.replace("mb2.magic: ok", "mb2.magic: FAIL (eax=0x2badb002)");
        let r = parse_for(&want, &failed);
        assert_eq!(
            judge(&want, &r),
            Err("[mb2] check mb2.magic: FAIL (eax=0x2badb002)".into())
        );
        assert!(suite_status(&want, &r)[0].1.is_err());
        let other = good.replace("mb2: PASS", "qemukernel: PASS");
        let err = judge(&want, &parse_for(&want, &other)).unwrap_err();
        assert!(
            err.starts_with("no `mb2: PASS` line (log ends: qemukernel: PASS"),
            "{err}"
        );
        let err = judge(&want, &parse_for(&want, "")).unwrap_err();
        assert_eq!(err, "no `mb2: PASS` line (log ends: )");
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("\x1b[1;37m\x1b[44mjanus: x\r"), "janus: x");
        assert_eq!(clean("a\x1b(Bb\x07c"), "abc");
    }
}
