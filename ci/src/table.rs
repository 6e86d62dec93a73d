//! The result table `cargo janus test` prints at the end.

use crate::judge::{self, Expectation, Report};
use crate::matrix::RowResult;

const HEADERS: [&str; 8] = [
    "model", "emulator", "vendor", "features", "result", "seconds", "checks", "exits",
];

/// `pass`, `refused (expected)`, `pass (ended: reset)` for Linux, `pass (rejected 32)`
/// for bad modules, `pass (attacks 22/22 ok)` for rows with attackers, or `FAIL: reason`
/// (`FAIL (not required): reason` for a row that does not count; the counts too:
/// `FAIL (attacks 21/22 ok): reason`); a row booted twice says why its first boot failed
/// (`pass (2nd boot, the 1st: ...)`, [`crate::matrix::boots_again`]).
pub fn result_text(r: &RowResult) -> String {
    let counts = judge::attacks_ok(&r.row.expect, &r.report)
        .map(|(ok, n)| format!("attacks {ok}/{n} ok"))
        .or_else(|| {
            judge::rejections_ok(&r.row.expect, &r.report).map(|(ok, n)| match &r.verdict {
                Ok(()) => format!("rejected {ok}"),
                Err(_) => format!("rejected {ok}/{n}"),
            })
        });
    let second = r
        .first_boot
        .as_ref()
        .map(|why| format!("2nd boot, the 1st: {why}"));
    let note = |extra: Option<&str>| {
        let parts: Vec<&str> = extra
            .into_iter()
            .chain(second.as_deref())
            .chain(counts.as_deref())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    };
    match (&r.verdict, &r.row.expect) {
        (Ok(()), Expectation::Refused { .. }) => "refused (expected)".into(),
        (Ok(()), Expectation::Linux { guest, .. }) => {
            format!("pass (ended: {})", r.report.ended(guest).unwrap_or("?"))
        }
        (Ok(()), _) => format!("pass{}", note(None)),
        (Err(reason), _) if !r.row.required => {
            format!("FAIL{}: {reason}", note(Some("not required")))
        }
        (Err(reason), _) => format!("FAIL{}: {reason}", note(None)),
    }
}

/// The per-suite lines after the table: the checks of each suite on the first passing
/// guest row, and which suites failed on each failing row.
pub fn suites_summary(results: &[RowResult]) -> String {
    let mut out = String::new();
    let statuses = |r: &RowResult| judge::suite_status(&r.row.expect, &r.report);
    if let Some(r) = results
        .iter()
        .find(|r| r.verdict.is_ok() && matches!(r.row.expect, Expectation::Pass { .. }))
    {
        let parts: Vec<String> = statuses(r)
            .into_iter()
            .map(|(s, st)| match st {
                Ok(n) => format!("{s} {n}"),
                Err(e) => format!("{s} ({e})"),
            })
            .collect();
        out.push_str(&format!(
            "suites: {} ({}, {} checks)\n",
            parts.join(", "),
            r.row.label,
            r.report.checks()
        ));
    }
    for r in results.iter().filter(|r| r.verdict.is_err()) {
        let failed: Vec<String> = statuses(r)
            .into_iter()
            .filter_map(|(s, st)| st.err().map(|e| format!("{s} ({e})")))
            .collect();
        if !failed.is_empty() {
            out.push_str(&format!(
                "suites failed on {}: {}\n",
                r.row.label,
                failed.join(", ")
            ));
        }
    }
    out
}

/// The cpu line's features that matter, e.g. `NPT nrip=no` or `EPT unrestricted`.
pub fn features_text(report: &Report) -> String {
    let Some(cpu) = &report.cpu else {
        return "-".into();
    };
    let mut parts = Vec::new();
    for key in ["npt", "ept", "nrip", "unrestricted", "vid"] {
        match cpu.feature(key) {
            Some("yes") if key == "npt" || key == "ept" || key == "vid" => {
                parts.push(key.to_uppercase())
            }
            Some("no") if key == "vid" => {}
            Some("yes") => parts.push(key.to_string()),
            Some(v) => parts.push(format!("{key}={v}")),
            None => {}
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

fn row_cells(r: &RowResult) -> [String; 8] {
    let vendor = r
        .report
        .cpu
        .as_ref()
        .map(|c| c.vendor.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into());
    let count = |n: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            n.to_string()
        }
    };
    [
        r.row.label.clone(),
        r.row.emulator().name().to_string(),
        vendor,
        features_text(&r.report),
        result_text(r),
        format!("{:.1}", r.seconds),
        count(r.report.checks()),
        count(r.report.exits()),
    ]
}

/// Renders the results as aligned plain text, one row per model.
pub fn render(results: &[RowResult]) -> String {
    let rows: Vec<[String; 8]> = results.iter().map(row_cells).collect();
    render_cells(&rows)
}

fn render_cells(rows: &[[String; 8]]) -> String {
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |i: usize| i >= 5;
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w - cell.chars().count();
            if numeric(i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if i + 1 < cells.len() {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(String::from));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge;
    use crate::matrix::{rows, Plan, Row};
    use std::path::PathBuf;

    fn plan() -> Plan {
        Plan::new(&["smoke".to_string(), "pic".to_string()], None).unwrap()
    }

    fn result(label: &str, log: &str, verdict: Result<(), String>) -> RowResult {
        let row: Row = rows(&plan())
            .into_iter()
            .find(|r| r.label == label)
            .unwrap();
        RowResult {
            row,
            report: judge::parse(log),
            seconds: 1.25,
            verdict,
            log: PathBuf::from("x.log"),
            first_boot: None,
        }
    }

    #[test]
    fn a_row_booted_twice_says_why_its_first_boot_failed() {
        let mut r = result("EPYC", "", Ok(()));
        r.first_boot = Some("guest smoke did not end; QEMU: triple fault".into());
        assert_eq!(
            result_text(&r),
            "pass (2nd boot, the 1st: guest smoke did not end; QEMU: triple fault)"
        );
        r.verdict = Err("guest smoke did not end".into());
        assert!(result_text(&r).starts_with("FAIL (2nd boot, the 1st: "));
    }

    #[test]
    fn cells_and_alignment() {
        let amd = result(
            "EPYC",
            "janus: cpu: vendor=AMD backend=svm npt=yes nrip=no asids=16\n[smoke] smoke: PASS (12 checks)\n\
             janus: summary: smoke status=0 exits=40 (io=40)\njanus: summary: hello status=0 exits=2 (io=2)\n",
            Ok(()),
        );
        let intel = result(
            "corei7_skylake_x",
            "janus: cpu: vendor=Intel backend=vmx ept=yes unrestricted=yes vpid=yes\n",
            Err("guest hello did not end".into()),
        );
        let refused = result("qemu64", "janus: refused: no nested paging\n", Ok(()));
        assert_eq!(features_text(&amd.report), "NPT nrip=no");
        assert_eq!(features_text(&intel.report), "EPT unrestricted");
        assert_eq!(result_text(&refused), "refused (expected)");
        assert_eq!(result_text(&intel), "FAIL: guest hello did not end");
        let text = render(&[amd, intel, refused]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(
            lines[0].starts_with("model             emulator  vendor"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("EPYC              qemu      AMD     NPT nrip=no"),
            "{text}"
        );
        assert!(lines[2].ends_with("1.2      12     42"), "{text}");
        assert!(
            lines[4].contains("qemu64") && lines[4].contains("refused (expected)"),
            "{text}"
        );
        // The result column starts at the same place in every line.
        let col = lines[0].find("result").unwrap();
        assert_eq!(&lines[2][col..col + 4], "pass");
        assert_eq!(&lines[3][col..col + 5], "FAIL:");
    }

    #[test]
    fn linux_rows() {
        let log = "janus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n[linux] JANUS-LINUX-MARKER: userspace reached\n\
                   [linux] JANUS-LINUX-DONE\njanus: guest linux ended: reset\n";
        let mut ok = result("EPYC (linux)", log, Ok(()));
        assert_eq!(result_text(&ok), "pass (ended: reset)");
        ok.verdict = Err("no userspace marker".into());
        ok.row.required = false;
        assert_eq!(result_text(&ok), "FAIL (not required): no userspace marker");
        let text = render(&[ok]);
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .starts_with("EPYC (linux)  qemu"),
            "{text}"
        );
    }

    #[test]
    fn bad_modules_rows() {
        let Expectation::Rejects { rejected, .. } = crate::bad_modules::expectation() else {
            panic!()
        };
        let lines: String = rejected
            .iter()
            .map(|(g, why)| format!("janus: guest {g}: not started: {why}\n"))
            .collect();
        let log = format!(
            "janus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n{lines}[smoke] smoke: PASS (28 checks)\n"
        );
        let mut ok = result("EPYC (bad modules)", &log, Ok(()));
        assert_eq!(
            result_text(&ok),
            format!("pass (rejected {})", rejected.len())
        );
        let first = lines.lines().next().unwrap();
        ok.report = judge::parse(&log.replace(first, ""));
        ok.verdict = Err("no rejection of junk".into());
        assert_eq!(
            result_text(&ok),
            format!(
                "FAIL (rejected {}/{}): no rejection of junk",
                rejected.len() - 1,
                rejected.len()
            )
        );
        assert_eq!(
            suites_summary(&[ok]),
            "suites failed on EPYC (bad modules): smoke (did not end)\n"
        );
    }

    #[test]
    fn attack_rows_count_attackers() {
        let label = "corei7_skylake_x (attacks 1/4)";
        let suites = ["smoke", "hostile", "victim"].map(String::from);
        let row = rows(&Plan::new(&suites, None).unwrap())
            .into_iter()
            .find(|r| r.label == label)
            .unwrap();
        let Expectation::Together { guests, .. } = &row.expect else {
            panic!()
        };
        let mut log = String::from("janus: Janus 0.1.0 (multiboot2)\n");
        for w in guests.iter().filter(|w| w.attack.is_some()) {
            let a = w.attack.unwrap();
            log.push_str(&format!("[{}] {}\n", w.guest, a.start_line()));
            if let Some(p) = a.survived_prefix() {
                log.push_str(&format!("[{}] {p}{})\n", w.guest, a.saw.unwrap_or("")));
            }
            log.push_str(&format!(
                "janus: guest {} ended: {}\njanus: summary: {} status={} exits=1 (io=1)\n",
                w.guest,
                a.end.janus_text(),
                w.guest,
                a.end.summary_status()
            ));
        }
        let n = guests.len() - 1;
        let r = RowResult {
            row,
            report: judge::parse(&log),
            seconds: 3.0,
            verdict: Ok(()),
            log: PathBuf::from("x.log"),
            first_boot: None,
        };
        assert_eq!(result_text(&r), format!("pass (attacks {n}/{n} ok)"));
        // One attacker ends another way; another leaks.
        let log = log
            .replacen("ended: reset", "ended: triple fault", 1)
            .replacen(
                ": survived (",
                ": LEAK DR0 = 0x1\n[x] hostile: attack x: survived (",
                1,
            );
        let r = RowResult {
            report: judge::parse(&log),
            verdict: Err("guest cf9 ended: triple fault, want reset".into()),
            ..r
        };
        assert_eq!(
            result_text(&r),
            format!(
                "FAIL (attacks {}/{n} ok): guest cf9 ended: triple fault, want reset",
                n - 2
            )
        );
    }

    #[test]
    fn suite_lines() {
        let pass = "janus: cpu: vendor=AMD backend=svm npt=yes nrip=no\n[smoke] smoke: PASS (28 checks)\n\
                    janus: guest smoke ended: exit status 0\n[pic] pic: PASS (7 checks)\n\
                    janus: guest pic ended: exit status 0\njanus: guest hello ended: exit status 0\n\
                    janus: done: 3 guests, 0 failed\n";
        let fail = "janus: cpu: vendor=AMD backend=svm npt=yes nrip=yes\n[smoke] smoke: PASS (28 checks)\n\
                    janus: guest smoke ended: exit status 0\njanus: guest pic ended: triple fault\n";
        let a = result("EPYC", pass, Ok(()));
        let b = result("ryzen", fail, Err("guest pic ended: triple fault".into()));
        let refused = result("qemu64", "janus: refused: no nested paging\n", Ok(()));
        let text = suites_summary(&[refused, a, b]);
        assert_eq!(
            text,
            "suites: smoke 28, pic 7 (EPYC, 35 checks)\nsuites failed on ryzen: pic (ended: triple fault)\n"
        );
    }
}
