//! What a search leaves in its output folder: `front.json`, `candidates.jsonl`, `front.svg`,
//! `report.html`, and the front's networks as RON files ready for `archc compile`. Each file
//! is written beside its place and renamed into it, so none is ever half-written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{Item, Settings};
use crate::candidate::Evaluation;
use crate::report::{self, Failure, Report, Row};
use crate::space::Space;
use crate::strategy::pareto;
use crate::{Error, Result};

/// What a search found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The front, fastest first.
    pub front: Vec<Row>,
    /// The baselines as measured.
    pub baselines: Vec<Row>,
    /// Front networks at least as accurate as a baseline and faster.
    pub beats: Vec<Beat>,
    /// Candidates evaluated, and how many of them failed.
    pub candidates: usize,
    /// Failed candidates.
    pub failed: usize,
    /// Search seconds (across resumptions).
    pub elapsed_s: f64,
}

/// A front network that is faster than a baseline and at least as accurate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Beat {
    /// The front network.
    pub network: String,
    /// The baseline.
    pub baseline: String,
    /// Its latency over the baseline's (below 1).
    pub latency_ratio: f64,
    /// Its accuracy minus the baseline's (at least 0).
    pub accuracy_gain: f64,
}

/// A network with a short evaluation, and its final accuracy.
struct Measured<'a> {
    item: &'a Item,
    short: &'a Evaluation,
    long: Option<&'a Evaluation>,
    latency_ms: f64,
}

impl Measured<'_> {
    fn accuracy(&self) -> f64 {
        self.long.unwrap_or(self.short).accuracy
    }
}

/// Writes the results of `items` into `settings.out`.
pub(super) fn write(
    space: &Space,
    settings: &Settings,
    items: &[Item],
    device: &str,
    elapsed: Duration,
) -> Result<Summary> {
    let measured: Vec<Measured> = items
        .iter()
        .filter_map(|item| {
            let short = item.short.as_ref()?.as_ref().ok()?;
            Some(Measured {
                item,
                short,
                long: item.long.as_ref().and_then(|l| l.as_ref().ok()),
                latency_ms: short.latency.as_ref()?.median_ms,
            })
        })
        .collect();
    let front = final_front(&measured);
    let dir = &settings.out;
    let front_dir = dir.join("front");
    create_dir(&front_dir)?;
    let mut members = Vec::new();
    for &i in &front {
        let m = &measured[i];
        let genome = m.item.genome.as_ref().expect("the front holds candidates");
        let file = format!("front/{}.ron", m.item.name);
        let text = space.network_text(genome, &format!("{}_{}", space.name(), m.item.name))?;
        write_atomic(&dir.join(&file), text.as_bytes())?;
        members.push(row(space, m, true));
    }
    let baselines: Vec<Row> =
        measured.iter().filter(|m| m.item.genome.is_none()).map(|m| row(space, m, false)).collect();
    let beats = beats(&members, &baselines);
    let candidates = items.iter().filter(|i| i.genome.is_some() && i.short.is_some()).count();
    let failed = items.iter().filter(|i| i.genome.is_some() && matches!(i.short, Some(Err(_)))).count();
    let summary =
        Summary { front: members, baselines, beats, candidates, failed, elapsed_s: elapsed.as_secs_f64() };
    let front_json = serde_json::json!({
        "space": space.name(),
        "strategy": settings.strategy.to_string(),
        "device": device,
        "summary": &summary,
    });
    write_atomic(
        &dir.join("front.json"),
        serde_json::to_string_pretty(&front_json).expect("json").as_bytes(),
    )?;
    write_atomic(&dir.join("candidates.jsonl"), candidate_lines(space, items, &measured, &front).as_bytes())?;
    let report = Report {
        space: space.name().to_string(),
        strategy: settings.strategy.to_string(),
        device: device.to_string(),
        settings: described(settings),
        elapsed_s: elapsed.as_secs_f64(),
        rows: measured.iter().enumerate().map(|(i, m)| row(space, m, front.contains(&i))).collect(),
        failures: items.iter().filter_map(|item| failure(space, item)).collect(),
    };
    let svg = dir.join("front.svg");
    report::write_svg(&temporary(&svg), &report)?;
    rename(&svg)?;
    let html = dir.join("report.html");
    report::write_html(&temporary(&html), &report)?;
    rename(&html)?;
    Ok(summary)
}

/// Indices (into `measured`) of the final front, fastest first: the candidates that had the
/// longer training, by its accuracy; without any, all candidates by the short accuracy.
fn final_front(measured: &[Measured]) -> Vec<usize> {
    let candidates: Vec<usize> = (0..measured.len()).filter(|&i| measured[i].item.genome.is_some()).collect();
    let finalists: Vec<usize> = candidates.iter().copied().filter(|&i| measured[i].long.is_some()).collect();
    let pool = if finalists.is_empty() { candidates } else { finalists };
    let points: Vec<(f64, f64)> =
        pool.iter().map(|&i| (measured[i].accuracy(), measured[i].latency_ms)).collect();
    pareto::front(&points).into_iter().map(|k| pool[k]).collect()
}

fn choices(space: &Space, item: &Item) -> Vec<(String, String)> {
    item.genome.as_ref().and_then(|g| space.choices(g).ok()).unwrap_or_default()
}

fn beats(front: &[Row], baselines: &[Row]) -> Vec<Beat> {
    let mut beats = Vec::new();
    for f in front {
        for b in baselines.iter().filter(|b| f.latency_ms < b.latency_ms && f.accuracy >= b.accuracy) {
            beats.push(Beat {
                network: f.name.clone(),
                baseline: b.name.clone(),
                latency_ratio: f.latency_ms / b.latency_ms,
                accuracy_gain: f.accuracy - b.accuracy,
            });
        }
    }
    beats
}

fn row(space: &Space, m: &Measured, on_front: bool) -> Row {
    let mut signals =
        vec![("params".to_string(), m.short.params as f64), ("macs".to_string(), m.short.macs as f64)];
    if let Some(p) = m.short.proxies {
        signals.push(("snip".into(), p.snip));
        signals.push(("grad_norm".into(), p.grad_norm));
        signals.extend(p.jacob_cov.map(|j| ("jacob_cov".to_string(), j)));
    }
    if m.long.is_some() {
        signals.push(("short_accuracy".into(), m.short.accuracy));
    }
    Row {
        name: m.item.name.clone(),
        baseline: m.item.genome.is_none(),
        choices: choices(space, m.item),
        latency_ms: m.latency_ms,
        accuracy: m.accuracy(),
        short_accuracy: m.short.accuracy,
        long_accuracy: m.long.map(|l| l.accuracy),
        params: m.short.params,
        macs: m.short.macs,
        signals,
        on_front,
        file: on_front.then(|| format!("front/{}.ron", m.item.name)),
    }
}

fn failure(space: &Space, item: &Item) -> Option<Failure> {
    let error = match (&item.short, &item.long) {
        (Some(Err(e)), _) => e.clone(),
        (_, Some(Err(e))) => format!("longer training: {e}"),
        _ => return None,
    };
    Some(Failure { name: item.name.clone(), choices: choices(space, item), error })
}

/// One JSON line per network, in the order they were proposed (baselines first).
fn candidate_lines(space: &Space, items: &[Item], measured: &[Measured], front: &[usize]) -> String {
    let on_front = |item: &Item| front.iter().any(|&i| std::ptr::eq(measured[i].item, item));
    let outcome = |o: &Option<std::result::Result<Evaluation, String>>| match o {
        Some(Ok(e)) => serde_json::json!({ "evaluation": e }),
        Some(Err(error)) => serde_json::json!({ "error": error }),
        None => serde_json::Value::Null,
    };
    let mut text = String::new();
    for item in items {
        let line = serde_json::json!({
            "name": item.name,
            "baseline": item.genome.is_none(),
            "file": item.file,
            "genome": item.genome,
            "choices": choices(space, item),
            "short": outcome(&item.short),
            "long": outcome(&item.long),
            "on_front": on_front(item),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

fn described(settings: &Settings) -> Vec<(String, String)> {
    let r = &settings.recipe;
    vec![
        ("data".into(), format!("{} split {}", settings.data, settings.split.as_deref().unwrap_or("test"))),
        (
            "training".into(),
            format!(
                "{} epochs ({} for the finalists and baselines), batch {}, lr {} {}, weight decay {}, augment {}",
                r.epochs, settings.long_epochs, r.batch, r.lr, r.schedule, r.weight_decay, r.augment
            ),
        ),
        (
            "latency".into(),
            format!(
                "batch 1, {} thread(s), median of {} runs after {} warm-up",
                settings.latency.threads, settings.latency.runs, settings.latency.warmup
            ),
        ),
        ("budget".into(), format!("{:.0} s, {} job(s)", settings.budget.as_secs_f64(), settings.jobs)),
    ]
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file").to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = temporary(path);
    std::fs::write(&partial, bytes)
        .map_err(|source| Error::Io { path: partial.display().to_string(), source })?;
    rename(path)
}

/// Moves the finished `.partial` file into `path`.
fn rename(path: &Path) -> Result<()> {
    std::fs::rename(temporary(path), path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })
}
