//! A small SVG writer for the bar charts of `cargo janus bench exits`: one horizontal
//! bar chart per CPU model, each row a pair of bars (the previous run's figure and this
//! run's).
//!
//! Written by hand rather than with a plotting crate: the chart is one fixed layout of a
//! few rectangles and labels, the test tool stays free of new dependencies (and of the
//! font and image libraries plotting crates pull in), and plain text output is easy to
//! check in unit tests and to diff between runs.

use std::fmt::Write as _;

/// One row of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub previous: Option<u64>,
    pub now: Option<u64>,
}

/// Colours of the two bars of a row, and of the text.
const PREVIOUS_FILL: &str = "#b8b8b8";
const NOW_FILL: &str = "#2f6db5";
const TEXT_FILL: &str = "#222222";

/// Layout (pixels).
const WIDTH: u32 = 760;
const LABEL_W: u32 = 170;
/// Room right of the longest bar for its value.
const VALUE_W: u32 = 90;
const TOP: u32 = 64;
const BAR_H: u32 = 12;
/// Height of one row: two bars and a gap.
const ROW_H: u32 = 2 * BAR_H + 12;
const BOTTOM: u32 = 16;

/// Escapes text for SVG character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A number with thousands separators: 12345 → `12,345`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The length in pixels of a bar of `value` when `max` fills `span` (at least 1 px for
/// a non-zero value, so it stays visible).
fn bar_len(value: u64, max: u64, span: u32) -> u32 {
    if max == 0 || value == 0 {
        return 0;
    }
    let len = (u128::from(value) * u128::from(span) / u128::from(max)) as u32;
    len.max(1)
}

/// A horizontal bar chart: a title, a subtitle, a legend, and per row the previous
/// figure (grey, upper bar) and this run's (blue, lower bar), each labelled with its
/// value; a missing figure is drawn as no bar and the label `-`. Bars share one linear
/// scale, the largest figure of the chart.
pub fn bar_chart(title: &str, subtitle: &str, bars: &[Bar]) -> String {
    let height = TOP + ROW_H * bars.len() as u32 + BOTTOM;
    let span = WIDTH - LABEL_W - VALUE_W;
    let max = bars
        .iter()
        .flat_map(|b| [b.previous, b.now])
        .flatten()
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="15" font-weight="bold" fill="{TEXT_FILL}">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="38" fill="{TEXT_FILL}">{}</text>"#,
        escape(subtitle)
    );
    // Legend.
    for (i, (fill, what)) in [(PREVIOUS_FILL, "previous run"), (NOW_FILL, "this run")]
        .iter()
        .enumerate()
    {
        let x = LABEL_W + 130 * i as u32;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="46" width="{BAR_H}" height="{BAR_H}" fill="{fill}"/><text x="{}" y="56" fill="{TEXT_FILL}">{what}</text>"#,
            x + BAR_H + 4
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW_H * i as u32;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" fill="{TEXT_FILL}">{}</text>"#,
            LABEL_W - 8,
            y + BAR_H + 4,
            escape(&b.label)
        );
        for (j, (fill, value)) in [(PREVIOUS_FILL, b.previous), (NOW_FILL, b.now)]
            .into_iter()
            .enumerate()
        {
            let by = y + BAR_H * j as u32;
            let len = value.map_or(0, |v| bar_len(v, max, span));
            if len > 0 {
                let _ = writeln!(
                    s,
                    r#"<rect x="{LABEL_W}" y="{by}" width="{len}" height="{}" fill="{fill}"/>"#,
                    BAR_H - 1
                );
            }
            let text = value.map_or("-".to_string(), grouped);
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" font-size="10" fill="{TEXT_FILL}">{text}</text>"#,
                LABEL_W + len + 4,
                by + BAR_H - 2
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, previous: Option<u64>, now: Option<u64>) -> Bar {
        Bar {
            label: label.into(),
            previous,
            now,
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("a<b & \"c\">'d'"),
            "a&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;"
        );
        assert_eq!(escape("x\u{7}y"), "xy");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(2585), "2,585");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn bars_share_one_scale() {
        assert_eq!(bar_len(0, 100, 500), 0);
        assert_eq!(bar_len(100, 100, 500), 500);
        assert_eq!(bar_len(50, 100, 500), 250);
        assert_eq!(bar_len(1, 1_000_000, 500), 1, "non-zero stays visible");
        assert_eq!(bar_len(7, 0, 500), 0);
    }

    #[test]
    fn chart_has_both_bars_and_labels() {
        let svg = bar_chart(
            "EPYC <QEMU>",
            "instructions per round trip",
            &[
                bar("cpuid", Some(1304), Some(652)),
                bar("hypercall", None, Some(1274)),
            ],
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">EPYC &lt;QEMU&gt;</text>"));
        // The largest figure fills the span, the others scale with it.
        let span = WIDTH - LABEL_W - VALUE_W;
        assert!(svg.contains(&format!(
            r#"width="{span}" height="11" fill="{PREVIOUS_FILL}""#
        )));
        assert!(svg.contains(&format!(
            r#"width="{}" height="11" fill="{NOW_FILL}""#,
            652 * span / 1304
        )));
        assert!(svg.contains(">1,304</text>"));
        assert!(svg.contains(">652</text>"));
        assert!(svg.contains(">1,274</text>"));
        // No previous figure: no grey bar, a dash.
        assert!(svg.contains(">-</text>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 3);
        // Every element is closed (a crude well-formedness check).
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn empty_chart_is_valid() {
        let svg = bar_chart("t", "s", &[]);
        assert!(svg.contains("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 3);
    }
}
