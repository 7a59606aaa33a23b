//! `report.html`: one self-contained page (inline CSS and SVG, no scripts) with the search's
//! settings, its front, the plot, how well each cheap signal ranked the final accuracy, every
//! network evaluated and every failure.

use std::fmt::{self, Write};
use std::path::Path;

use super::rank::{SignalRank, signal_ranks};
use super::{Report, Row};
use crate::{Error, Result};

/// Kept short and inline so that the page reads well when mailed or opened from an archive.
const STYLE: &str = "\
body{font-family:sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:0.25em 0.6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.front td{background:#fdecec}
table.facts th{background:none;font-weight:normal;color:#666}
svg{max-width:100%;height:auto}
pre{white-space:pre-wrap;margin:0}
.note{color:#666}";

/// Shown for a value that is missing or undefined.
const NONE: &str = "—";

/// Writes `report` as one HTML page to `path`, the front plot inlined.
pub fn write_html(path: &Path, report: &Report) -> Result<()> {
    let svg = super::svg::render(report)?;
    let mut html = String::new();
    page(&mut html, report, &svg).expect("writing to a String cannot fail");
    std::fs::write(path, html).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// The whole page, in reading order.
fn page(out: &mut String, report: &Report, svg: &str) -> fmt::Result {
    let space = escape(&report.space);
    writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")?;
    writeln!(out, "<title>archc search: {space}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>")?;
    writeln!(out, "<h1>Architecture search of {space}</h1>")?;
    header(out, report)?;

    let mut by_latency: Vec<&Row> = report.rows.iter().collect();
    by_latency.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    let front: Vec<&Row> = by_latency.iter().copied().filter(|r| r.on_front).collect();
    writeln!(out, "<h2>Pareto front</h2>")?;
    if front.is_empty() {
        writeln!(out, "<p class=\"note\">No network is on the front.</p>")?;
    } else {
        front_table(out, &front)?;
    }
    writeln!(out, "<figure>\n{svg}\n</figure>")?;

    writeln!(out, "<h2>How well each cheap signal ranked the final accuracy</h2>")?;
    signal_table(out, &signal_ranks(&report.rows))?;

    writeln!(out, "<h2>All networks, by latency</h2>")?;
    if by_latency.is_empty() {
        writeln!(out, "<p class=\"note\">No network was evaluated.</p>")?;
    } else {
        full_table(out, &by_latency)?;
    }

    writeln!(out, "<h2>Failures</h2>")?;
    failures(out, report)?;
    writeln!(out, "</body>\n</html>")
}

/// Where, how and how long the search ran, and what it produced.
fn header(out: &mut String, report: &Report) -> fmt::Result {
    let baselines = report.rows.iter().filter(|r| r.baseline).count();
    let front = report.rows.iter().filter(|r| r.on_front).count();
    let summary = format!(
        "{} evaluated ({baselines} baselines), {front} on the front, {} failed",
        report.rows.len(),
        report.failures.len()
    );
    let elapsed = duration(report.elapsed_s);
    let facts = [("strategy", report.strategy.as_str()), ("device", report.device.as_str())]
        .into_iter()
        .chain(report.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .chain([("elapsed", elapsed.as_str()), ("networks", summary.as_str())]);
    writeln!(out, "<table class=\"facts\">")?;
    for (key, value) in facts {
        writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(key), escape(value))?;
    }
    writeln!(out, "</table>")
}

/// The front members, fastest first, with links to their RON files.
fn front_table(out: &mut String, rows: &[&Row]) -> fmt::Result {
    writeln!(
        out,
        "<table>\n<tr><th>name</th><th>latency (ms)</th><th>accuracy (%)</th><th>short (%)</th>\
         <th>long (%)</th><th>params</th><th>MACs</th><th>choices</th><th>file</th></tr>"
    )?;
    for row in rows {
        let file = match &row.file {
            Some(f) => format!("<a href=\"{0}\">{0}</a>", escape(f)),
            None => NONE.to_string(),
        };
        writeln!(
            out,
            "<tr><td>{}</td>{}<td>{}</td><td>{file}</td></tr>",
            escape(&row.name),
            measures(row),
            escape(&choices(&row.choices))
        )?;
    }
    writeln!(out, "</table>")
}

/// Kendall's tau-b and Spearman's rho of each signal against the final accuracy.
fn signal_table(out: &mut String, ranks: &[SignalRank]) -> fmt::Result {
    if ranks.is_empty() {
        return writeln!(out, "<p class=\"note\">No cheap signals were measured.</p>");
    }
    writeln!(
        out,
        "<p class=\"note\">Rank correlations against the final accuracy over the networks that \
         have the signal: 1 ranks them exactly as training did, 0 not at all, −1 backwards; \
         {NONE} for fewer than {} networks or a constant signal.</p>",
        super::rank::MIN_ROWS
    )?;
    writeln!(out, "<table>\n<tr><th>signal</th><th>n</th><th>Kendall τ-b</th><th>Spearman ρ</th></tr>")?;
    for rank in ranks {
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&rank.name),
            rank.n,
            correlation(rank.tau),
            correlation(rank.rho)
        )?;
    }
    writeln!(out, "</table>")
}

/// Every network, fastest first, front members shaded, each signal in its own column.
fn full_table(out: &mut String, rows: &[&Row]) -> fmt::Result {
    let mut signals: Vec<&str> = Vec::new();
    for row in rows {
        for (name, _) in &row.signals {
            if !signals.contains(&name.as_str()) {
                signals.push(name);
            }
        }
    }
    write!(
        out,
        "<table>\n<tr><th>name</th><th>kind</th><th>latency (ms)</th><th>accuracy (%)</th>\
         <th>short (%)</th><th>long (%)</th><th>params</th><th>MACs</th>"
    )?;
    for name in &signals {
        write!(out, "<th>{}</th>", escape(name))?;
    }
    writeln!(out, "<th>choices</th></tr>")?;
    for row in rows {
        let kind = match (row.baseline, row.on_front) {
            (true, true) => "baseline, front",
            (true, false) => "baseline",
            (false, true) => "front",
            (false, false) => "",
        };
        let class = if row.on_front { " class=\"front\"" } else { "" };
        write!(out, "<tr{class}><td>{}</td><td>{kind}</td>{}", escape(&row.name), measures(row))?;
        for name in &signals {
            let value = row.signals.iter().find(|(n, _)| n == name).map_or(NONE.to_string(), |s| signal(s.1));
            write!(out, "<td class=\"num\">{value}</td>")?;
        }
        writeln!(out, "<td>{}</td></tr>", escape(&choices(&row.choices)))?;
    }
    writeln!(out, "</table>")
}

/// The failed candidates with their errors, kept verbatim (errors span lines).
fn failures(out: &mut String, report: &Report) -> fmt::Result {
    if report.failures.is_empty() {
        return writeln!(out, "<p class=\"note\">None.</p>");
    }
    writeln!(out, "<table>\n<tr><th>name</th><th>choices</th><th>error</th></tr>")?;
    for failure in &report.failures {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            escape(&failure.name),
            escape(&choices(&failure.choices)),
            escape(&failure.error)
        )?;
    }
    writeln!(out, "</table>")
}

/// The cells both network tables share: latency, accuracies, params and MACs.
fn measures(row: &Row) -> String {
    let long = row.long_accuracy.map_or(NONE.to_string(), percent);
    format!(
        "<td class=\"num\">{:.3}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{long}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
        row.latency_ms,
        percent(row.accuracy),
        percent(row.short_accuracy),
        count(row.params),
        count(row.macs)
    )
}

/// `name=value` pairs, comma-separated; a dash for none (baselines).
fn choices(choices: &[(String, String)]) -> String {
    if choices.is_empty() {
        return NONE.to_string();
    }
    choices.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A fraction as a percentage with two decimals.
fn percent(fraction: f64) -> String {
    format!("{:.2}", 100.0 * fraction)
}

/// A correlation with two decimals, or a dash.
fn correlation(value: Option<f64>) -> String {
    value.map_or(NONE.to_string(), |v| format!("{v:.2}"))
}

/// A signal's value: signals range from parameter counts to tiny gradient norms, so large and
/// small magnitudes switch to scientific notation.
fn signal(value: f64) -> String {
    let a = value.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{value:.3e}") } else { format!("{value:.4}") }
}

/// A count with a k/M/G suffix.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1} k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} M", n as f64 / 1e6),
        _ => format!("{:.2} G", n as f64 / 1e9),
    }
}

/// Seconds as hours, minutes and seconds.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, s) => format!("{h} h {m} min {s} s"),
    }
}

/// `text` safe inside HTML elements and double- or single-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn formats_counts_and_durations() {
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1.23 M");
        assert_eq!(count(146_000_000_000), "146.00 G");
        assert_eq!(duration(42.04), "42.0 s");
        assert_eq!(duration(605.0), "10 min 5 s");
        assert_eq!(duration(3725.4), "1 h 2 min 5 s");
    }

    #[test]
    fn signals_switch_to_scientific_notation() {
        assert_eq!(signal(0.5), "0.5000");
        assert_eq!(signal(0.0), "0.0000");
        assert_eq!(signal(1_250_000.0), "1.250e6");
        assert_eq!(signal(-0.00002), "-2.000e-5");
    }
}
