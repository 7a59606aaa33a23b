//! The paper's Figure 1 for the zoo: multiply-adds against measured speed for the Table-8
//! networks archc has (ShuffleNet V1/V2, MobileNet V1/V2), beside the paper's GPU and ARM speeds.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Measured;
use super::jobs::Subject;
use super::paper::Paper;

/// One Table-8 network, measured.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    /// Table 8's row (`ShuffleNet v2`).
    pub family: String,
    /// The width in its cell (`1.5x`).
    pub width: String,
    /// Table 8's column (`~300M`).
    pub column: String,
    /// The zoo network.
    pub network: String,
    /// Multiply-adds as built here (224x224 unless a test shrank the input).
    pub macs: u64,
    /// Median time of one image, in milliseconds.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Images per second (batch 1).
    pub images_per_s: f64,
    /// The paper's MFLOPs.
    pub paper_mflops: f64,
    /// The paper's GPU batches/s (batch 8).
    pub paper_gpu: f64,
    /// The paper's ARM images/s.
    pub paper_arm: f64,
    /// The paper's ImageNet top-1 error, percent.
    pub paper_top1_error: f64,
}

/// The measured Table-8 networks, in the data file's order.
pub fn assemble(paper: &Paper, measured: &BTreeMap<Subject, Measured>) -> Vec<ModelReport> {
    paper
        .models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let t = measured.get(&Subject::Model(i))?;
            Some(ModelReport {
                family: m.family.clone(),
                width: m.width.clone(),
                column: m.column.clone(),
                network: m.network.clone().unwrap_or_default(),
                macs: t.macs,
                median_ms: t.timing.median_ms,
                min_ms: t.timing.min_ms,
                p90_ms: t.timing.p90_ms,
                images_per_s: 1e3 / t.timing.median_ms,
                paper_mflops: m.mflops,
                paper_gpu: m.gpu,
                paper_arm: m.arm,
                paper_top1_error: m.top1_error,
            })
        })
        .collect()
}

/// The fastest family of one complexity class, here and in the paper.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fastest {
    /// Table 8's column.
    pub column: String,
    /// Fastest here.
    pub here: String,
    /// Fastest on the paper's GPU, among the same networks.
    pub gpu: String,
    /// Fastest on its ARM CPU.
    pub arm: String,
}

/// Per complexity class (in the order first seen), which of the measured networks is fastest.
pub fn fastest(models: &[ModelReport]) -> Vec<Fastest> {
    let mut columns: Vec<&str> = Vec::new();
    for m in models {
        if !columns.contains(&m.column.as_str()) {
            columns.push(&m.column);
        }
    }
    columns
        .into_iter()
        .map(|column| {
            let class: Vec<&ModelReport> = models.iter().filter(|m| m.column == column).collect();
            let best = |speed: fn(&ModelReport) -> f64| {
                class
                    .iter()
                    .max_by(|a, b| speed(a).total_cmp(&speed(b)))
                    .map(|m| format!("{} {}", m.family, m.width).trim_end().to_string())
                    .unwrap_or_default()
            };
            Fastest {
                column: column.to_string(),
                here: best(|m| m.images_per_s),
                gpu: best(|m| m.paper_gpu),
                arm: best(|m| m.paper_arm),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use codegen::bench::Timing;

    #[test]
    fn measured_networks_are_reported_and_ranked() {
        let paper = Paper::builtin().unwrap();
        let mut measured = BTreeMap::new();
        for (i, m) in paper.models.iter().enumerate() {
            if m.network.is_some() && m.column == "~140M" {
                // MobileNet V1 made up to be the fastest here.
                let ms = if m.family == "MobileNet v1" { 2.0 } else { 5.0 };
                let timing = Timing { median_ms: ms, min_ms: ms, p90_ms: ms };
                measured.insert(Subject::Model(i), Measured { timing, macs: 140_000_000, compile_s: 1.0 });
            }
        }
        let models = assemble(&paper, &measured);
        assert_eq!(models.len(), 4);
        let v2 = models.iter().find(|m| m.family == "ShuffleNet v2").unwrap();
        assert_eq!((v2.network.as_str(), v2.images_per_s, v2.paper_arm), ("shufflenet_v2_x1_0", 200.0, 24.4));
        let fastest = fastest(&models);
        assert_eq!(
            fastest,
            [Fastest {
                column: "~140M".into(),
                here: "MobileNet v1 0.5".into(),
                gpu: "MobileNet v1 0.5".into(),
                arm: "ShuffleNet v2 1x".into(),
            }]
        );
    }
}
