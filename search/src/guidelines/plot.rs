//! `speed_vs_macs.svg`: the Figure-1 comparison drawn as the paper draws it, speed against
//! complexity, one line per family; three panels (here, the paper's GPU, its ARM CPU).

use std::path::Path;

use plotters::prelude::*;

use super::Error;
use super::figure::ModelReport;

/// Colors of the families, in order of first appearance.
const COLORS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One panel: its title, its y-axis, and a point per network (x, y).
struct Panel {
    title: &'static str,
    y: &'static str,
    point: fn(&ModelReport) -> (f64, f64),
}

const PANELS: [Panel; 3] = [
    Panel { title: "here (this machine)", y: "images/s", point: |m| (m.macs as f64 / 1e6, m.images_per_s) },
    Panel { title: "paper: GTX 1080Ti", y: "batches/s (batch 8)", point: |m| (m.paper_mflops, m.paper_gpu) },
    Panel { title: "paper: Snapdragon 810", y: "images/s", point: |m| (m.paper_mflops, m.paper_arm) },
];

/// Draws the measured Table-8 networks to `path` (an SVG file).
pub fn speed_vs_macs(models: &[ModelReport], path: &Path) -> Result<(), Error> {
    let fail =
        |e: &dyn std::fmt::Display| Error::Plot { path: path.display().to_string(), message: e.to_string() };
    let mut families: Vec<&str> = Vec::new();
    for m in models {
        if !families.contains(&m.family.as_str()) {
            families.push(&m.family);
        }
    }
    let root = SVGBackend::new(path, (1320, 470)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root
        .titled("Speed against multiply-adds (batch 1 here)", ("sans-serif", 20))
        .map_err(|e| fail(&e))?;
    // One legend above the panels: inside them it would hide points, wherever it went.
    let (legend, panels) = root.split_vertically(30);
    for (i, family) in families.iter().enumerate() {
        let (x, color) = (40 + 240 * i as i32, COLORS[i % COLORS.len()]);
        legend
            .draw(&PathElement::new(vec![(x, 15), (x + 24, 15)], color.stroke_width(3)))
            .map_err(|e| fail(&e))?;
        legend.draw(&Circle::new((x + 12, 15), 4, color.filled())).map_err(|e| fail(&e))?;
        legend.draw(&Text::new(*family, (x + 32, 8), ("sans-serif", 14))).map_err(|e| fail(&e))?;
    }
    for (area, panel) in panels.split_evenly((1, 3)).iter().zip(&PANELS) {
        let points: Vec<(f64, f64)> = models.iter().map(panel.point).collect();
        // Axes from zero, as the paper's, with headroom above the largest value.
        let top = |axis: fn(&(f64, f64)) -> f64| points.iter().map(axis).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..top(|p| p.0), 0.0..top(|p| p.1))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("million multiply-adds")
            .y_desc(panel.y)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, family) in families.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut line: Vec<(f64, f64)> =
                models.iter().filter(|m| m.family == *family).map(panel.point).collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2))).map_err(|e| fail(&e))?;
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(|e| fail(&e))?;
        }
    }
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(family: &str, macs: u64, images_per_s: f64) -> ModelReport {
        ModelReport {
            family: family.into(),
            width: "1x".into(),
            column: "~140M".into(),
            network: "n".into(),
            macs,
            median_ms: 1e3 / images_per_s,
            min_ms: 1.0,
            p90_ms: 1.0,
            images_per_s,
            paper_mflops: macs as f64 / 1e6,
            paper_gpu: 300.0,
            paper_arm: 20.0,
            paper_top1_error: 30.0,
        }
    }

    #[test]
    fn writes_an_svg_with_every_family() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("speed_vs_macs.svg");
        let models = [
            model("ShuffleNet v2", 146_000_000, 140.0),
            model("ShuffleNet v2", 41_000_000, 400.0),
            model("MobileNet v1", 149_000_000, 120.0),
        ];
        speed_vs_macs(&models, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in ["ShuffleNet v2", "MobileNet v1", "paper: Snapdragon 810", "million multiply-adds"] {
            assert!(svg.contains(text), "{text}");
        }
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = speed_vs_macs(&[model("a", 1, 1.0)], &dir.path().join("no/such/dir/x.svg")).unwrap_err();
        assert!(err.to_string().starts_with("plotting "), "{err}");
    }
}
