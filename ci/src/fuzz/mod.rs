//! `cargo janus fuzz`: host-side fuzzing of the code that reads untrusted bytes (the
//! instruction decoder, the multiboot1 and Linux loaders, the module command lines).
//!
//! Why not cargo-fuzz or bolero's fuzzing engines: they need a nightly toolchain (libFuzzer
//! and sanitizer coverage). This is a seeded random driver on stable: each execution's
//! input comes from a 64-bit seed derived from the run's seed, the target and the
//! execution number, so a failure is replayed with `--seed`. `arbitrary` turns the
//! random bytes into structured inputs (see gen.rs), which matters more than coverage
//! feedback for these targets: random bytes alone never pass a loader's first check.
//!
//! A failure is a panic (caught per execution), which includes arithmetic overflow: the
//! runs are built with `overflow-checks = true` (`cargo janus` re-runs itself so, in
//! target/fuzz), and a hang: an execution that takes longer than [`HANG`].

mod gen;
mod targets;

use std::panic;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use targets::{Target, TARGETS};

/// Default executions per target of `cargo janus fuzz`: 10^7 in total.
pub const DEFAULT_EXECS: u64 = 2_500_000;
/// `cargo janus test`'s budget per target.
const SHORT: Duration = Duration::from_secs(3);
/// An execution running longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);
/// Set in the re-run process: it fuzzes instead of re-running itself.
const CHILD_ENV: &str = "JANUS_FUZZ_CHILD";

/// How long each target runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    Execs(u64),
    Time(Duration),
}

/// What one target's run found.
struct Outcome {
    execs: u64,
    elapsed: Duration,
    failure: Option<String>,
}

/// SplitMix64 (Steele, Lea, Flood 2014): the seed of each execution and its bytes.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The input of execution `i` of target `t`: a length skewed to short, random bytes.
fn input(seed: u64, t: usize, i: u64, max_len: usize, buf: &mut Vec<u8>) {
    let mut s = seed ^ ((t as u64) << 56) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let r = splitmix(&mut s);
    let len = (r >> 8) as usize % (max_len >> (r & 3)).max(1);
    buf.clear();
    while buf.len() < len {
        buf.extend_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    buf.truncate(len);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last panic's message and place, recorded by the hook [`run_target`] installs.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs target `t` in a thread for `budget`, watching for hangs.
fn run_target(t: usize, target: &Target, seed: u64, budget: Budget) -> Outcome {
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let failure = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let (d, f, fail) = (done.clone(), finished.clone(), failure.clone());
    let (run, max_len) = (target.run, target.max_len);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut i = 0u64;
        while match budget {
            Budget::Execs(n) => i < n,
            Budget::Time(t) => !i.is_multiple_of(256) || start.elapsed() < t,
        } {
            input(seed, t, i, max_len, &mut buf);
            if panic::catch_unwind(|| run(&buf)).is_err() {
                let why = PANIC.lock().map_or(None, |mut p| p.take());
                *fail.lock().expect("not poisoned") = Some(format!(
                    "execution {i} panicked: {}; input ({} bytes): {}",
                    why.unwrap_or_default(),
                    buf.len(),
                    hex(&buf)
                ));
                break;
            }
            i += 1;
            d.store(i, Ordering::Relaxed);
        }
        f.store(true, Ordering::Release);
    });
    let (mut last, mut since) = (0, Instant::now());
    while !finished.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        let now = done.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > HANG {
            let mut buf = Vec::new();
            input(seed, t, now, max_len, &mut buf);
            return Outcome {
                execs: now,
                elapsed: start.elapsed(),
                failure: Some(format!(
                    "execution {now} hangs (over {} s); input ({} bytes): {}",
                    HANG.as_secs(),
                    buf.len(),
                    hex(&buf)
                )),
            };
        }
    }
    let failure = failure.lock().expect("not poisoned").take();
    Outcome {
        execs: done.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        failure,
    }
}

/// Fuzzes every target in this process; prints one line per target and a summary.
/// Returns the number of failed targets.
pub fn run_all(budget: Budget, seed: u64) -> usize {
    panic::set_hook(Box::new(|info| {
        if let Ok(mut p) = PANIC.lock() {
            *p = Some(info.to_string().replace('\n', " "));
        }
    }));
    let (mut failed, mut total) = (0, 0);
    for (t, target) in TARGETS.iter().enumerate() {
        let o = run_target(t, target, seed, budget);
        total += o.execs;
        let rate = o.execs as f64 / o.elapsed.as_secs_f64().max(1e-9);
        let verdict = match &o.failure {
            None => "ok".to_string(),
            Some(f) => {
                failed += 1;
                format!("FAILED: {f}")
            }
        };
        println!(
            "fuzz {:<10} {:>10} executions in {:>6.1} s ({:>8.0}/s): {verdict}",
            target.name,
            o.execs,
            o.elapsed.as_secs_f64(),
            rate
        );
    }
    let _ = panic::take_hook();
    println!(
        "fuzz: {} passed, {failed} failed ({total} executions, seed {seed:#x})",
        TARGETS.len() - failed
    );
    failed
}

/// Fuzzes with overflow checks: in this process when it is the re-run one, else by
/// re-running `cargo-janus fuzz` built with `overflow-checks` and `debug-assertions` in
/// target/fuzz (so the normal release build stays as it is).
fn fuzz(root: &Path, budget: Budget, seed: Option<u64>) -> Result<u8, String> {
    let seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64
    });
    if std::env::var_os(CHILD_ENV).is_some() {
        return Ok(u8::from(run_all(budget, seed) > 0));
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "janus-ci", "--bin"])
        .args(["cargo-janus", "--", "fuzz", "--seed", &seed.to_string()])
        .env(CHILD_ENV, "1")
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
        .env("CARGO_TARGET_DIR", root.join("target/fuzz"));
    match budget {
        Budget::Execs(n) => cmd.args(["--execs", &n.to_string()]),
        Budget::Time(t) => cmd.args(["--seconds", &t.as_secs().to_string()]),
    };
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the fuzz build: {e}"))?;
    Ok(if status.success() { 0 } else { 1 })
}

/// `cargo janus fuzz [--execs N] [--seconds S] [--seed S]`.
pub fn cmd_fuzz(
    root: &Path,
    execs: Option<u64>,
    seconds: Option<u64>,
    seed: Option<u64>,
) -> Result<u8, String> {
    let budget = match (execs, seconds) {
        (_, Some(s)) => Budget::Time(Duration::from_secs(s)),
        (n, None) => Budget::Execs(n.unwrap_or(DEFAULT_EXECS)),
    };
    fuzz(root, budget, seed)
}

/// `cargo janus test`'s fuzzing: a few seconds per target; an error when one failed.
pub fn short_budget(root: &Path) -> Result<(), String> {
    match fuzz(root, Budget::Time(SHORT), None)? {
        0 => Ok(()),
        _ => Err("fuzzing found a failure (see above)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each target's first executions (the test profile has overflow checks).
    #[test]
    fn every_target_survives_a_short_run() {
        assert_eq!(run_all(Budget::Execs(3000), 1), 0);
    }

    #[test]
    fn inputs_replay_from_the_seed() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        input(7, 1, 99, 1024, &mut a);
        input(7, 1, 99, 1024, &mut b);
        assert_eq!(a, b);
        input(7, 1, 100, 1024, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn a_panic_is_a_failure_with_its_input() {
        fn boom(d: &[u8]) {
            let _ = d.len().checked_sub(3).expect("short input");
        }
        let t = Target {
            name: "boom",
            max_len: 2,
            run: boom,
        };
        let o = run_target(0, &t, 1, Budget::Execs(100));
        let f = o.failure.expect("fails");
        assert!(
            f.contains("execution 0 panicked") && f.contains("input ("),
            "{f}"
        );
    }
}
