//! One candidate's evaluation, as a search worker process runs it: build the network, compile
//! it and measure its latency (when the driver says the machine is quiet), probe the
//! zero-cost proxies, train it briefly and measure its accuracy. Requests and results are
//! plain data, sent between the driver and its workers as JSON lines.

use serde::{Deserialize, Serialize};

use crate::data::{Augment, DataSpec, Dataset, Split};
use crate::measure::{self, Protocol};
use crate::proxies::Proxies;
use crate::train::{TrainConfig, train};
use crate::{Error, Result, Schedule};

/// Which evaluation of a candidate: the short one every candidate gets, or the longer
/// training given to the networks on or near the front.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Latency, proxies and a short training.
    Short,
    /// A longer training (latency is the short stage's).
    Long,
}

/// How a candidate is trained: the flags of `archc train`, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// Passes over the training data.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f32,
    /// `constant`, `cosine` or `step:E:G`.
    pub schedule: String,
    /// Epochs of linear warm-up.
    pub warmup: f64,
    /// SGD momentum (Nesterov).
    pub momentum: f32,
    /// Weight decay of conv and linear weights.
    pub weight_decay: f32,
    /// Label smoothing.
    pub label_smoothing: f32,
    /// `none`, `cifar` or `shift:N`.
    pub augment: String,
    /// Seed of the initial weights, the shuffling and the augmentation.
    pub seed: u64,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            epochs: 4,
            batch: 64,
            lr: 0.08,
            schedule: "cosine".into(),
            warmup: 0.5,
            momentum: 0.9,
            weight_decay: 5e-4,
            label_smoothing: 0.0,
            augment: "none".into(),
            seed: 0,
        }
    }
}

impl Recipe {
    /// The training loop's configuration, or why the recipe is wrong.
    pub fn config(&self, threads: usize, proxies: bool) -> Result<TrainConfig> {
        let bad = |message: String| Error::Recipe { message };
        if self.epochs == 0 || self.batch == 0 {
            return Err(bad(format!(
                "epochs and batch must be positive, got {} and {}",
                self.epochs, self.batch
            )));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(bad(format!("the learning rate must be positive, got {}", self.lr)));
        }
        Ok(TrainConfig {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            schedule: self.schedule.parse::<Schedule>()?,
            warmup_epochs: self.warmup.max(0.0),
            sgd: passes::autodiff::SgdOptions {
                momentum: self.momentum,
                nesterov: true,
                weight_decay: self.weight_decay,
            },
            label_smoothing: self.label_smoothing,
            augment: self.augment.parse::<Augment>()?,
            seed: self.seed,
            threads,
            proxies,
        })
    }
}

/// Everything a worker needs to evaluate one network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The network, as a RON file's text.
    pub network: String,
    /// What to call that text in error messages.
    pub file: String,
    /// Which evaluation.
    pub stage: Stage,
    /// The data (`archc train --data`) and its train/validation split.
    pub data: String,
    /// The split (`archc train --split`); `None`: the data set's own test part.
    pub split: Option<String>,
    /// How to train.
    pub recipe: Recipe,
    /// Threads of training and validation.
    pub threads: usize,
    /// How to time the network (batch 1), in the short stage.
    pub latency: Option<LatencyProtocol>,
    /// Whether to train (and probe the proxies): a distributed search times a network on one
    /// node and trains it on another, so its timing request says `false`.
    #[serde(default = "yes")]
    pub train: bool,
}

fn yes() -> bool {
    true
}

/// The measurement protocol of `archc bench`, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyProtocol {
    /// Threads per run.
    pub threads: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
}

/// A latency, measured at batch 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median of the timed runs, in milliseconds.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// The device fingerprint of the machine that took it.
    pub device: String,
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Trainable parameters and multiply-adds per image.
    pub params: u64,
    /// Multiply-adds of one image, as written.
    pub macs: u64,
    /// Batch-1 latency (short stage).
    pub latency: Option<Latency>,
    /// Zero-cost proxies at the initial weights (short stage).
    pub proxies: Option<Proxies>,
    /// Top-1 accuracy on the validation split after training.
    pub accuracy: f64,
    /// Mean validation loss.
    pub loss: f64,
    /// Mean training loss of the last epoch.
    pub train_loss: f64,
    /// Seconds compiling: the timed network, the training step and the validation network.
    pub compile_seconds: f64,
    /// Seconds of training steps.
    pub train_seconds: f64,
}

/// The two moments of a latency measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// The network is compiled and ready to time: return once nothing else runs.
    Begin,
    /// The timing is done.
    End,
}

/// Evaluates `request`, telling `timing` when its latency measurement begins and ends.
pub fn evaluate(request: &Request, timing: &mut dyn FnMut(Timing)) -> Result<Evaluation> {
    let network_error = |message: String| Error::Network { network: request.file.clone(), message };
    let build = |batch: usize| {
        let options = ir::BuildOptions { batch, overrides: Vec::new() };
        ir::from_ron_str(&request.network, &request.file, &options)
    };
    let graph = build(1).map_err(|e| network_error(e.to_string()))?;
    let metrics = ir::metrics::metrics(&graph).totals;
    let config = request.recipe.config(request.threads, request.stage == Stage::Short)?;
    let mut compile_seconds = 0.0;
    let latency = match request.latency {
        Some(protocol) => {
            let mut prepared =
                measure::prepare(&graph, protocol.threads).map_err(|e| network_error(e.to_string()))?;
            timing(Timing::Begin);
            let protocol = Protocol {
                threads: protocol.threads,
                warmup: protocol.warmup,
                runs: protocol.runs,
                rounds: 1,
            };
            let measured = measure::time_all(std::slice::from_mut(&mut prepared), &protocol, |_| {});
            timing(Timing::End);
            compile_seconds += measured[0].compile_s;
            let timing = measured[0].timing;
            Some(Latency {
                median_ms: timing.median_ms,
                min_ms: timing.min_ms,
                p90_ms: timing.p90_ms,
                device: crate::fingerprint().to_string(),
            })
        }
        None => None,
    };
    if !request.train {
        return Ok(Evaluation {
            params: metrics.params,
            macs: metrics.macs,
            latency,
            proxies: None,
            accuracy: 0.0,
            loss: 0.0,
            train_loss: 0.0,
            compile_seconds,
            train_seconds: 0.0,
        });
    }
    let spec: DataSpec = request.data.parse()?;
    let split = request.split.as_deref().map(str::parse::<Split>).transpose()?;
    let (train_set, validation) = Dataset::train_and_validation(&spec, split)?;
    let validation = validation.ok_or_else(|| Error::Split {
        message: format!("{} has no test part to validate on: give a split", request.data),
    })?;
    let initial = ir::Weights::seeded(&graph, request.recipe.seed);
    let trained = train(&build, &initial, &train_set, Some(&validation), &config, &mut |_| {}, &mut |_| {})?;
    let last = trained.epochs.last().expect("at least one epoch");
    let accuracy = last.validation.expect("validated");
    Ok(Evaluation {
        params: metrics.params,
        macs: metrics.macs,
        latency,
        proxies: trained.proxies,
        accuracy: accuracy.top1,
        loss: accuracy.loss,
        train_loss: last.train_loss,
        compile_seconds: compile_seconds + trained.compile_seconds,
        train_seconds: trained.epochs.iter().map(|e| e.train_seconds).sum(),
    })
}
