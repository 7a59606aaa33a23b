//! The report as text: Tables 1-4 laid out like the paper's, measured speeds beside the paper's
//! relative ones, each followed by its verdict; then the Figure-1 table.

use std::fmt::Write;

use super::figure::{ModelReport, fastest};
use super::tables::TableReport;

/// One experiment: a row per configuration; per width, images/s here and (in brackets) relative
/// to the first row; then the paper's GPU and ARM speeds relative to their first row.
pub fn table(t: &TableReport) -> String {
    let channels = |cells: &[super::tables::Cell]| {
        cells
            .first()
            .map(|c| c.channels.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let config_w = t.rows.iter().map(|r| r.config.len()).chain([t.config.len()]).max().unwrap_or(0);
    let channels_w =
        t.rows.iter().map(|r| channels(&r.cells).len()).chain(["channels".len()]).max().unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "Table {} ({}): {}", t.table, t.guideline, t.claim);
    let _ = write!(s, "{:<config_w$}  {:<channels_w$}  |", t.config, "channels");
    for c in &t.columns {
        let _ = write!(s, " {:>15}", format!("here {c}"));
    }
    for platform in ["GPU", "ARM"] {
        let _ = write!(s, " |");
        for (i, c) in t.columns.iter().enumerate() {
            let name = if i == 0 { format!("{platform} {c}") } else { c.clone() };
            let _ = write!(s, " {name:>6}");
        }
    }
    s.push('\n');
    for row in &t.rows {
        let _ = write!(s, "{:<config_w$}  {:<channels_w$}  |", row.config, channels(&row.cells));
        for cell in &row.cells {
            let _ = write!(s, " {:>15}", format!("{:.1} ({:.2})", cell.images_per_s, cell.relative));
        }
        let _ = write!(s, " |");
        for cell in &row.cells {
            let _ = write!(s, " {:>6.2}", cell.paper_gpu_relative);
        }
        let _ = write!(s, " |");
        for cell in &row.cells {
            let _ = write!(s, " {:>6.2}", cell.paper_arm_relative);
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{}", t.verdict.summary);
    s
}

/// The Figure-1 comparison: per network, its multiply-adds, its speed here and the paper's.
pub fn figure(models: &[ModelReport]) -> String {
    let name = |m: &ModelReport| format!("{} {}", m.family, m.width).trim_end().to_string();
    let name_w = models.iter().map(|m| name(m).len()).chain(["network".len()]).max().unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "Figure 1 (Table 8 networks): multiply-adds against speed, batch 1");
    let _ = writeln!(
        s,
        "{:<name_w$}  {:<7} {:>8} {:>9} {:>10}  | {:>12} {:>13} {:>9} {:>10}",
        "network",
        "class",
        "MMACs",
        "here ms",
        "here img/s",
        "paper MFLOPs",
        "GPU batches/s",
        "ARM img/s",
        "top-1 err%"
    );
    for m in models {
        let _ = writeln!(
            s,
            "{:<name_w$}  {:<7} {:>8.1} {:>9.2} {:>10.1}  | {:>12.0} {:>13.0} {:>9.1} {:>10.1}",
            name(m),
            m.column,
            m.macs as f64 / 1e6,
            m.median_ms,
            m.images_per_s,
            m.paper_mflops,
            m.paper_gpu,
            m.paper_arm,
            m.paper_top1_error
        );
    }
    for f in fastest(models) {
        let _ = writeln!(s, "Fastest at {}: here {}; paper GPU {}, ARM {}.", f.column, f.here, f.gpu, f.arm);
    }
    s
}
