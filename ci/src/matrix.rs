//! The test matrix: which CPU models to boot, what each must show, and the parallel runner.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::emulator::{self, Emulator};
use crate::iso::GuestSpec;
use crate::judge::{self, Expectation, Report};

/// The guests every matrix run boots.
pub fn guests() -> Vec<GuestSpec> {
    ["smoke:name=smoke,mem=16M", "hello:name=hello,mem=8M"]
        .iter()
        .map(|s| GuestSpec::parse(s).expect("built-in spec parses"))
        .collect()
}

const GUESTS: &[&str] = &["smoke", "hello"];
const SUITES: &[(&str, &str)] = &[("smoke", "smoke")];

const AMD_QEMU: Expectation = Expectation::Pass {
    vendor: "AMD",
    backend: "svm",
    features: &[("npt", "yes"), ("nrip", "no")],
    guests: GUESTS,
    suites: SUITES,
};
const AMD_NRIP: Expectation = Expectation::Pass {
    vendor: "AMD",
    backend: "svm",
    features: &[("npt", "yes"), ("nrip", "yes")],
    guests: GUESTS,
    suites: SUITES,
};
const INTEL: Expectation = Expectation::Pass {
    vendor: "Intel",
    backend: "vmx",
    features: &[("ept", "yes"), ("unrestricted", "yes")],
    guests: GUESTS,
    suites: SUITES,
};

/// One emulated CPU and what Janus must do on it.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: &'static str,
    pub expect: Expectation,
}

impl Row {
    pub fn emulator(&self) -> Emulator {
        Emulator::for_model(self.model)
    }
}

pub fn rows() -> Vec<Row> {
    let row = |model, expect: &Expectation| Row { model, expect: expect.clone() };
    let mut rows = Vec::new();
    for m in ["EPYC", "EPYC-Rome", "Opteron_G5", "phenom"] {
        rows.push(row(m, &AMD_QEMU));
    }
    rows.push(row("qemu64", &Expectation::Refused { reason_contains: "nested paging" }));
    rows.push(row("qemu64,-svm", &Expectation::Refused { reason_contains: "no hardware virtualization" }));
    for m in ["corei7_sandy_bridge_2600k", "corei7_haswell_4770", "corei7_skylake_x", "corei7_icelake_u", "tigerlake"] {
        rows.push(row(m, &INTEL));
    }
    for m in ["ryzen", "zambezi", "trinity_apu"] {
        rows.push(row(m, &AMD_NRIP));
    }
    rows.push(row("phenom_8650_toliman", &AMD_QEMU));
    rows
}

/// A finished row.
#[derive(Debug)]
pub struct RowResult {
    pub row: Row,
    pub report: Report,
    pub seconds: f64,
    /// Ok, or a short reason.
    pub verdict: Result<(), String>,
    pub log: PathBuf,
}

/// Runs one row: boots the ISO, judges the log.
pub fn run_row(root: &Path, iso: &Path, row: Row) -> RowResult {
    let emulator = row.emulator();
    let log = root.join("build/logs").join(format!("{}.log", emulator::sanitize(row.model)));
    let timeout = Duration::from_secs(emulator.default_timeout_secs());
    match emulator::boot(root, emulator, row.model, iso, &log, timeout, false) {
        Ok(outcome) => {
            let report = judge::parse(&outcome.serial);
            let verdict = judge::judge(&row.expect, &report).map_err(|reason| {
                if outcome.timed_out {
                    format!("timeout ({} s): {reason}", timeout.as_secs())
                } else if report.last_janus_line.is_none() {
                    // Nothing from Janus: the emulator itself is the likely culprit.
                    let code = outcome.exit_code.map_or("signal".to_string(), |c| c.to_string());
                    format!("{reason}; {} exited {code}, see {}", emulator.name(), outcome.output_file.display())
                } else {
                    reason
                }
            });
            RowResult { row, report, seconds: outcome.seconds, verdict, log }
        }
        Err(e) => RowResult { row, report: Report::default(), seconds: 0.0, verdict: Err(e), log },
    }
}

/// Runs `rows` on `jobs` threads, printing a progress line as each finishes. Results come
/// back in matrix order.
pub fn run_all(root: &Path, iso: &Path, rows: Vec<Row>, jobs: usize) -> Vec<RowResult> {
    let total = rows.len();
    let queue = Arc::new(Mutex::new(rows.into_iter().enumerate().collect::<Vec<_>>().into_iter()));
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for _ in 0..jobs.clamp(1, total.max(1)) {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        let root = root.to_path_buf();
        let iso = iso.to_path_buf();
        workers.push(std::thread::spawn(move || loop {
            let next = queue.lock().unwrap().next();
            let Some((i, row)) = next else { break };
            if tx.send((i, run_row(&root, &iso, row))).is_err() {
                break;
            }
        }));
    }
    drop(tx);
    let mut results: Vec<Option<RowResult>> = (0..total).map(|_| None).collect();
    for (done, (i, result)) in rx.iter().enumerate() {
        eprintln!("{}", progress_line(done + 1, total, &result));
        results[i] = Some(result);
    }
    for w in workers {
        let _ = w.join();
    }
    results.into_iter().flatten().collect()
}

/// `[3/14] EPYC (qemu): pass 1.2 s`
pub fn progress_line(n: usize, total: usize, r: &RowResult) -> String {
    format!(
        "[{n}/{total}] {} ({}): {} {:.1} s",
        r.row.model,
        r.row.emulator().name(),
        crate::table::result_text(r),
        r.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_shape() {
        let rows = rows();
        assert_eq!(rows.len(), 15);
        let bochs = rows.iter().filter(|r| r.emulator() == Emulator::Bochs).count();
        assert_eq!(bochs, 9);
        let refused: Vec<_> =
            rows.iter().filter(|r| matches!(r.expect, Expectation::Refused { .. })).map(|r| r.model).collect();
        assert_eq!(refused, ["qemu64", "qemu64,-svm"]);
        let mut models: Vec<_> = rows.iter().map(|r| r.model).collect();
        models.sort();
        models.dedup();
        assert_eq!(models.len(), rows.len(), "models are unique (they name the logs)");
    }

    #[test]
    fn matrix_guests() {
        let lines: Vec<_> = guests().iter().map(|g| g.module_line()).collect();
        // Before the build, `hello` is the built-in name; the ISO uses the built file's name.
        assert_eq!(lines[0], "module2 /guests/smoke name=smoke mem=16M");
        let hello = guests()[1].with_file(PathBuf::from("build/hello-mb1/hello.elf"));
        assert_eq!(hello.module_line(), "module2 /guests/hello.elf name=hello mem=8M");
    }
}
