//! `front.svg`: every network's accuracy against its latency, the Pareto front as a staircase
//! of red points, the zoo's baselines as labelled blue triangles.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Report, Row};
use crate::{Error, Result};

/// The front members' color; each member is one filled circle of it.
const FRONT_COLOR: RGBColor = RGBColor(214, 39, 40);
/// The baselines' color.
const BASELINE_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The other candidates' color: context, not the point of the plot.
const OTHER_COLOR: RGBColor = RGBColor(160, 160, 160);
/// Width and height in pixels.
const SIZE: (u32, u32) = (960, 640);
/// Latencies spanning more than this ratio get a log axis, where the fast end would otherwise
/// be squeezed against the y axis.
const LOG_RATIO: f64 = 4.0;

/// Draws `report`'s networks to `path` (an SVG file).
pub fn write_svg(path: &Path, report: &Report) -> Result<()> {
    let svg = render(report)?;
    std::fs::write(path, svg).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// The SVG text of `report`'s plot; the same report gives the same bytes.
pub(super) fn render(report: &Report) -> Result<String> {
    // Only finite points can be placed; a log axis also needs positive latencies.
    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.latency_ms.is_finite() && r.latency_ms > 0.0 && r.accuracy.is_finite())
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let title = format!("{}: top-1 accuracy against latency", report.space);
        let root = root.titled(&title, ("sans-serif", 20)).map_err(plot_error)?;
        let (subtitle, area) = root.split_vertically(22);
        let style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Top));
        subtitle
            .draw(&Text::new(report.device.as_str(), (SIZE.0 as i32 / 2, 2), style))
            .map_err(plot_error)?;
        let y = accuracy_range(&rows);
        match latency_range(&rows) {
            // Plotters' own log ticks leave a range under a decade with one label or none.
            (x, true) => {
                let ticks = log_ticks(&x);
                draw(&area, x.log_scale().with_key_points(ticks), y, &rows, "latency (ms, log scale)")?
            }
            (x, false) => draw(&area, x, y, &rows, "latency (ms)")?,
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The chart itself, generic over the x axis so one body serves the linear and the log scale.
fn draw<X>(
    area: &DrawingArea<SVGBackend, Shift>,
    x: X,
    y: Range<f64>,
    rows: &[&Row],
    x_desc: &str,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("top-1 accuracy (%)")
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(plot_error)?;
    let at = |r: &Row| (r.latency_ms, 100.0 * r.accuracy);
    if rows.is_empty() {
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let style = TextStyle::from(("sans-serif", 16)).pos(Pos::new(HPos::Center, VPos::Center));
        let note = Text::new("no network was evaluated", (w as i32 / 2, h as i32 / 2), style);
        chart.plotting_area().strip_coord_spec().draw(&note).map_err(plot_error)?;
        return Ok(());
    }

    let others: Vec<(f64, f64)> = rows.iter().filter(|r| !r.on_front && !r.baseline).map(|r| at(r)).collect();
    let mut labelled = !others.is_empty();
    let series = chart
        .draw_series(others.iter().map(|&p| Circle::new(p, 2, OTHER_COLOR.filled())))
        .map_err(plot_error)?;
    if !others.is_empty() {
        series
            .label(format!("candidates ({})", others.len()))
            .legend(|(x, y)| Circle::new((x + 10, y), 2, OTHER_COLOR.filled()));
    }

    let mut front: Vec<(f64, f64)> = rows.iter().filter(|r| r.on_front).map(|r| at(r)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    // A staircase: up to the next member's latency, the best accuracy reachable is this one's.
    let mut steps = Vec::with_capacity(2 * front.len());
    for (i, &p) in front.iter().enumerate() {
        if i > 0 {
            steps.push((p.0, front[i - 1].1));
        }
        steps.push(p);
    }
    let series =
        chart.draw_series(LineSeries::new(steps, FRONT_COLOR.stroke_width(2))).map_err(plot_error)?;
    if !front.is_empty() {
        labelled = true;
        series
            .label(format!("Pareto front ({})", front.len()))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], FRONT_COLOR.stroke_width(2)));
    }
    chart.draw_series(front.iter().map(|&p| Circle::new(p, 5, FRONT_COLOR.filled()))).map_err(plot_error)?;

    let baselines: Vec<&Row> = rows.iter().copied().filter(|r| r.baseline).collect();
    let label = TextStyle::from(("sans-serif", 12)).color(&BASELINE_COLOR);
    let series = chart
        .draw_series(baselines.iter().map(|r| {
            EmptyElement::at(at(r))
                + TriangleMarker::new((0, 0), 6, BASELINE_COLOR.filled())
                + Text::new(r.name.clone(), (8, -14), label.clone())
        }))
        .map_err(plot_error)?;
    if !baselines.is_empty() {
        labelled = true;
        series
            .label("zoo baselines")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BASELINE_COLOR.filled()));
    }

    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// The x axis's range, and whether it is drawn on a log scale.
fn latency_range(rows: &[&Row]) -> (Range<f64>, bool) {
    let Some((lo, hi)) = bounds(rows.iter().map(|r| r.latency_ms)) else {
        return (0.0..1.0, false);
    };
    if hi > LOG_RATIO * lo {
        // 15% either side, evenly in log space.
        (lo / 1.15..hi * 1.15, true)
    } else {
        let pad = if hi > lo { 0.08 * (hi - lo) } else { 0.1 * lo };
        ((lo - pad).max(0.0)..hi + pad, false)
    }
}

/// The y axis's range, in percent: the accuracies with some headroom, within [0, 100].
fn accuracy_range(rows: &[&Row]) -> Range<f64> {
    let Some((lo, hi)) = bounds(rows.iter().map(|r| 100.0 * r.accuracy)) else {
        return 0.0..100.0;
    };
    let pad = (0.08 * (hi - lo)).max(1.0);
    let (lo, hi) = ((lo - pad).max(0.0), (hi + pad).min(100.0));
    // All points at 100% (or above, from a caller's bug) would leave an empty range.
    if hi > lo { lo..hi } else { lo - 1.0..lo + 1.0 }
}

/// Smallest and largest of `values`, `None` when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
    })
}

/// Ticks at 1, 2 and 5 times the powers of ten within `range`, and at 3 too when it spans
/// less than two decades, so that even a range just over [`LOG_RATIO`] gets three labels.
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    let mantissas: &[f64] =
        if range.end < 100.0 * range.start { &[1.0, 2.0, 3.0, 5.0] } else { &[1.0, 2.0, 5.0] };
    let (first, last) = (range.start.log10().floor() as i32, range.end.log10().ceil() as i32);
    (first..=last)
        .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|t| range.contains(t))
        .collect()
}

/// A tick label with no more digits than it needs: `0.125`, `1.5`, `20`.
fn short(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Plotters' errors as the crate's; drawing into a String can only fail in layout.
fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Plot { message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(latency_ms: f64) -> Row {
        Row {
            name: "c".into(),
            baseline: false,
            choices: Vec::new(),
            latency_ms,
            accuracy: 0.5,
            short_accuracy: 0.5,
            long_accuracy: None,
            params: 1,
            macs: 1,
            signals: Vec::new(),
            on_front: false,
            file: None,
        }
    }

    #[test]
    fn log_scale_only_past_four_times() {
        let (a, b, c) = (row(1.0), row(4.0), row(4.5));
        assert!(!latency_range(&[&a, &b]).1);
        assert!(latency_range(&[&a, &c]).1);
        assert_eq!(latency_range(&[]), (0.0..1.0, false));
    }

    #[test]
    fn log_ticks_label_short_and_long_ranges() {
        assert_eq!(log_ticks(&(1.3..13.8)), [2.0, 3.0, 5.0, 10.0]);
        assert_eq!(log_ticks(&(0.5..400.0)), [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]);
        assert_eq!((short(0.125), short(1.5), short(20.0)), ("0.125".into(), "1.5".into(), "20".into()));
    }

    #[test]
    fn accuracy_axis_stays_within_percent() {
        let mut a = row(1.0);
        a.accuracy = 1.0;
        let r = accuracy_range(&[&a]);
        assert!(r.start < 100.0 && r.end == 100.0, "{r:?}");
    }
}
