//! The result table `cargo janus test` prints at the end.

use crate::judge::{Expectation, Report};
use crate::matrix::RowResult;

const HEADERS: [&str; 8] = ["model", "emulator", "vendor", "features", "result", "seconds", "checks", "exits"];

/// `pass`, `refused (expected)` or `FAIL: reason`.
pub fn result_text(r: &RowResult) -> String {
    match (&r.verdict, &r.row.expect) {
        (Ok(()), Expectation::Refused { .. }) => "refused (expected)".into(),
        (Ok(()), Expectation::Pass { .. }) => "pass".into(),
        (Err(reason), _) => format!("FAIL: {reason}"),
    }
}

/// The cpu line's features that matter, e.g. `NPT nrip=no` or `EPT unrestricted`.
pub fn features_text(report: &Report) -> String {
    let Some(cpu) = &report.cpu else { return "-".into() };
    let mut parts = Vec::new();
    for key in ["npt", "ept", "nrip", "unrestricted"] {
        match cpu.feature(key) {
            Some("yes") if key == "npt" || key == "ept" => parts.push(key.to_uppercase()),
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
    let vendor = r.report.cpu.as_ref().map(|c| c.vendor.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| "-".into());
    let count = |n: u64| if n == 0 { "-".to_string() } else { n.to_string() };
    [
        r.row.model.to_string(),
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
    use crate::matrix::{rows, Row};
    use std::path::PathBuf;

    fn result(model: &str, log: &str, verdict: Result<(), String>) -> RowResult {
        let row: Row = rows().into_iter().find(|r| r.model == model).unwrap();
        RowResult { row, report: judge::parse(log), seconds: 1.25, verdict, log: PathBuf::from("x.log") }
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
        assert!(lines[0].starts_with("model             emulator  vendor"), "{text}");
        assert!(lines[2].starts_with("EPYC              qemu      AMD     NPT nrip=no"), "{text}");
        assert!(lines[2].ends_with("1.2      12     42"), "{text}");
        assert!(lines[4].contains("qemu64") && lines[4].contains("refused (expected)"), "{text}");
        // The result column starts at the same place in every line.
        let col = lines[0].find("result").unwrap();
        assert_eq!(&lines[2][col..col + 4], "pass");
        assert_eq!(&lines[3][col..col + 5], "FAIL:");
    }
}
