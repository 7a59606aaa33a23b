//! The search report's files written for small reports: what the plot marks and labels, what
//! the page escapes and scores, and the empty and unwritable cases.

use std::path::Path;

use search::report::{Failure, Report, Row, write_html, write_svg};

/// The front members' marker color in the SVG.
const FRONT_FILL: &str = "fill=\"#D62728\"";

fn row(name: &str, latency_ms: f64, accuracy: f64, on_front: bool, snip: f64) -> Row {
    Row {
        name: name.into(),
        baseline: false,
        choices: vec![("width".into(), "1.0x".into()), ("kernel".into(), "3".into())],
        latency_ms,
        accuracy,
        short_accuracy: accuracy - 0.01,
        long_accuracy: on_front.then_some(accuracy),
        params: 120_000,
        macs: 14_000_000,
        // `snip` ranks the accuracy perfectly; `noise` ranks 4 of 6 rows, out of order.
        signals: vec![("snip".into(), snip), ("noise".into(), (latency_ms * 7.0) % 3.0)],
        on_front,
        file: on_front.then(|| format!("front/{name}.ron")),
    }
}

fn baseline(name: &str, latency_ms: f64, accuracy: f64) -> Row {
    Row { baseline: true, choices: Vec::new(), file: None, ..row(name, latency_ms, accuracy, false, 0.0) }
}

fn report() -> Report {
    let mut rows = vec![
        row("c000", 2.0, 0.91, true, 0.2),
        row("c001", 3.0, 0.95, true, 0.4),
        row("c002", 2.5, 0.90, false, 0.1),
        row("c003", 12.0, 0.97, true, 0.6),
        baseline("ShuffleNet <v2>", 1.5, 0.93),
        baseline("MobileNet v1", 9.0, 0.96),
    ];
    // Baselines carry only the signals they were measured with.
    for b in &mut rows[4..] {
        b.signals.truncate(0);
    }
    rows[4].signals.push(("snip".into(), 0.3));
    rows[5].signals.push(("snip".into(), 0.5));
    Report {
        space: "shufflenet-v2 & friends".into(),
        strategy: "nsga2".into(),
        device: "archc 0.1.0 (LLVM 19.1) on x86_64-unknown-linux-gnu/znver3 x2".into(),
        settings: vec![("data".into(), "mnist:data/mnist-2k".into()), ("budget".into(), "10m".into())],
        elapsed_s: 605.0,
        rows,
        failures: vec![Failure {
            name: "c004".into(),
            choices: vec![("width".into(), "2.0x".into())],
            error: "compiling c004: <script>alert(1)</script> & more".into(),
        }],
    }
}

fn write_both(dir: &Path, report: &Report) -> (String, String) {
    let (svg, html) = (dir.join("front.svg"), dir.join("report.html"));
    write_svg(&svg, report).unwrap();
    write_html(&html, report).unwrap();
    (std::fs::read_to_string(svg).unwrap(), std::fs::read_to_string(html).unwrap())
}

/// The text of the cells after `first` in the table row that starts with a cell of that text.
fn cells(html: &str, first: &str) -> Vec<String> {
    let start = html.find(&format!("<tr><td>{first}</td>")).unwrap_or_else(|| panic!("no row {first}"));
    let row = &html[start..start + html[start..].find("</tr>").unwrap()];
    row.split("<td")
        .skip(2)
        .map(|cell| cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()].into())
        .collect()
}

#[test]
fn plot_labels_baselines_and_marks_each_front_member() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, _) = write_both(dir.path(), &report());
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in ["ShuffleNet &lt;v2&gt;", "MobileNet v1", "shufflenet-v2 &amp; friends", "znver3 x2"] {
        assert!(svg.contains(text), "{text}");
    }
    // 12 ms / 1.5 ms is past the 4x at which the latency axis turns logarithmic.
    assert!(svg.contains("latency (ms, log scale)"));
    let markers = svg.lines().filter(|l| l.starts_with("<circle") && l.contains(FRONT_FILL)).count();
    assert_eq!(markers, 3, "one marker per front member");
}

#[test]
fn plot_is_deterministic_and_linear_for_a_narrow_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = report();
    report.rows.retain(|r| r.latency_ms <= 3.0);
    let (first, _) = write_both(dir.path(), &report);
    let (second, _) = write_both(dir.path(), &report);
    assert_eq!(first, second);
    assert!(first.contains("latency (ms)") && !first.contains("log scale"));
}

#[test]
fn page_escapes_text_and_scores_signals() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, html) = write_both(dir.path(), &report());
    assert!(!html.contains("<script>"), "a failure's error must not become markup");
    assert!(html.contains("compiling c004: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    assert!(html.contains("ShuffleNet &lt;v2&gt;"));
    assert!(!html.contains("<link") && !html.contains("src=\""), "self-contained");
    assert!(html.contains(svg.trim_end()), "the plot is inlined");
    // snip orders all six rows as their accuracy does.
    assert_eq!(cells(&html, "snip"), ["6", "1.00", "1.00"]);
    let noise = cells(&html, "noise");
    assert_eq!(noise[0], "4");
    assert_ne!(noise[1], "1.00");
    // The front table: fastest first, with the link to each member's file.
    let front = &html[html.find("<h2>Pareto front").unwrap()..html.find("<figure>").unwrap()];
    let order: Vec<usize> = ["c000", "c001", "c003"].iter().map(|n| front.find(n).unwrap()).collect();
    assert!(order.is_sorted(), "{order:?}");
    assert!(!front.contains("c002"));
    assert!(front.contains("<a href=\"front/c003.ron\">"));
    for text in ["nsga2", "mnist:data/mnist-2k", "10 min 5 s", "width=1.0x, kernel=3", "95.00", "14.00 M"] {
        assert!(html.contains(text), "{text}");
    }
}

#[test]
fn empty_reports_still_write_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = report();
    report.rows.clear();
    report.failures.clear();
    let (svg, html) = write_both(dir.path(), &report);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("No network is on the front."));

    // Rows but no front, one signal too sparse to score.
    let mut report = self::report();
    report.rows.truncate(2);
    for r in &mut report.rows {
        r.on_front = false;
    }
    let (svg, html) = write_both(dir.path(), &report);
    assert!(!svg.lines().any(|l| l.starts_with("<circle") && l.contains(FRONT_FILL)));
    assert_eq!(cells(&html, "snip"), ["2", "—", "—"]);
}

#[test]
fn a_missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    for (file, err) in [
        ("front.svg", write_svg(&missing.join("front.svg"), &report()).unwrap_err()),
        ("report.html", write_html(&missing.join("report.html"), &report()).unwrap_err()),
    ] {
        let path = missing.join(file).display().to_string();
        assert!(err.to_string().contains(&path), "{err}");
    }
}
