//! Server-side SVG charts: no script and no chart library, readable without JavaScript. Every
//! chart carries a `<title>`/`<desc>` for screen readers; the page puts the same numbers in a
//! table beside it. Colours come from the stylesheet (`.series-N`), so both themes apply.

use std::fmt::Write;

/// One stacked series (e.g. one archive account), with one value per column.
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

/// Drawn at a fixed pixel height and the full width of its box: the plot scales sideways
/// (a nested SVG without aspect ratio), while texts and lines keep their size at any width.
const HEIGHT: f64 = 200.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 22.0;
const PLOT: f64 = HEIGHT - TOP - BOTTOM;
/// How many distinct series colours the stylesheet defines.
pub const PALETTE: usize = 6;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A round number at or above `max` for the top of the axis (2, 5 or 10 × 10ⁿ, so the
/// middle line is a whole number too).
fn nice_ceiling(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [2, 5, 10] {
            if let Some(v) = step.checked_mul(m)
                && v >= max
            {
                return v;
            }
        }
        match step.checked_mul(10) {
            Some(next) => step = next,
            None => return max,
        }
    }
}

fn open_svg(out: &mut String, id: &str, title: &str, desc: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" width="100%" height="{HEIGHT}" role="img" aria-labelledby="{id}-t {id}-d"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        escape(title),
        escape(desc)
    );
}

/// Grid lines with their values, and the first, middle and last column labels.
fn axis(out: &mut String, top: u64, labels: &[String], format: &dyn Fn(u64) -> String) {
    for i in 0..=2u64 {
        let y = TOP + PLOT - PLOT * i as f64 / 2.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="0" x2="100%" y1="{y:.1}" y2="{y:.1}"/>"#
        );
        if i > 0 {
            let _ = write!(
                out,
                r#"<text class="axis value" x="2" y="{:.1}">{}</text>"#,
                y - 3.0,
                escape(&format(top * i / 2))
            );
        }
    }
    let n = labels.len();
    if n == 0 {
        return;
    }
    let mut picks = vec![
        (0, "0%", "start"),
        (n / 2, "50%", "middle"),
        (n - 1, "100%", "end"),
    ];
    picks.dedup_by_key(|p| p.0);
    for (i, x, anchor) in picks {
        let _ = write!(
            out,
            r#"<text class="axis" x="{x}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            HEIGHT - 6.0,
            escape(&labels[i])
        );
    }
}

/// The scaled plot area: `columns` units wide, `PLOT` pixels high.
fn open_plot(out: &mut String, columns: usize) {
    let _ = write!(
        out,
        r#"<svg x="0" y="{TOP}" width="100%" height="{PLOT}" viewBox="0 0 {} {PLOT}" preserveAspectRatio="none">"#,
        columns.max(1)
    );
}

/// Columns (one per label) of stacked bars, one colour per series.
pub fn stacked_bars(id: &str, title: &str, labels: &[String], series: &[Series]) -> String {
    let totals: Vec<u64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let sum: u64 = totals.iter().sum();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
    let desc = format!(
        "{sum} in total over {} columns from {} to {}; {} series.",
        labels.len(),
        labels.first().map(String::as_str).unwrap_or("-"),
        labels.last().map(String::as_str).unwrap_or("-"),
        series.len()
    );
    let mut out = String::new();
    open_svg(&mut out, id, title, &desc);
    open_plot(&mut out, labels.len());
    for (i, label) in labels.iter().enumerate() {
        let mut base = 0u64;
        for (s_index, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let y = PLOT - PLOT * (base + v) as f64 / top as f64;
            let h = PLOT * v as f64 / top as f64;
            let _ = write!(
                out,
                r#"<rect class="series-{}" x="{}.1" y="{y:.2}" width="0.8" height="{h:.2}"><title>{}: {} {v}</title></rect>"#,
                s_index % PALETTE,
                i,
                escape(label),
                escape(&s.name)
            );
            base += v;
        }
    }
    out.push_str("</svg>");
    axis(&mut out, top, labels, &|v| v.to_string());
    out.push_str("</svg>");
    out
}

/// A filled line of one series (e.g. stored bytes over time).
pub fn area_line(
    id: &str,
    title: &str,
    labels: &[String],
    values: &[u64],
    format: &dyn Fn(u64) -> String,
) -> String {
    let top = nice_ceiling(values.iter().copied().max().unwrap_or(0));
    let desc = format!(
        "From {} on {} to {} on {}.",
        format(values.first().copied().unwrap_or(0)),
        labels.first().map(String::as_str).unwrap_or("-"),
        format(values.last().copied().unwrap_or(0)),
        labels.last().map(String::as_str).unwrap_or("-"),
    );
    let mut out = String::new();
    open_svg(&mut out, id, title, &desc);
    open_plot(&mut out, values.len());
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{}.5,{:.1}", i, PLOT - PLOT * v as f64 / top as f64))
        .collect();
    if !points.is_empty() {
        let last = values.len() - 1;
        let _ = write!(
            out,
            r#"<polygon class="series-0 fill" points="0.5,{PLOT} {} {last}.5,{PLOT}"/><polyline class="series-0 line" vector-effect="non-scaling-stroke" points="{}"/>"#,
            points.join(" "),
            points.join(" ")
        );
    }
    out.push_str("</svg>");
    axis(&mut out, top, labels, format);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_ceiling(0), 2);
        assert_eq!(nice_ceiling(1), 2);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(13), 20);
        assert_eq!(nice_ceiling(200), 200);
        assert_eq!(nice_ceiling(201), 500);
    }

    #[test]
    fn a_stacked_chart_has_one_bar_per_nonzero_value_and_escapes_names() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let svg = stacked_bars(
            "c",
            "Mail <per> day",
            &labels,
            &[
                Series {
                    name: "x&y".into(),
                    values: vec![1, 0],
                },
                Series {
                    name: "z".into(),
                    values: vec![2, 3],
                },
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("Mail &lt;per&gt; day"));
        assert!(svg.contains("x&amp;y 1"));
        assert!(svg.contains("6 in total"));
        assert!(!svg.contains("<script"));
    }
}
