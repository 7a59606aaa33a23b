//! The training loop: a network's compiled training step over shuffled, augmented batches,
//! the learning rate from a schedule, and the compiled network's validation accuracy after
//! every epoch. The caller is told of every step and epoch, for progress bars and logs.

use std::time::Instant;

use ir::Weights;
use passes::autodiff::{SgdOptions, TrainOptions, training_graph};

use crate::data::{Augment, Batches, Dataset};
use crate::evaluate::{Accuracy, Evaluator, Network, check_fits};
use crate::proxies::Proxies;
use crate::{Error, Result, Schedule};

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per step (a last, short batch of an epoch is dropped).
    pub batch: usize,
    /// Base learning rate.
    pub lr: f32,
    /// How the rate changes over training.
    pub schedule: Schedule,
    /// Epochs of linear warm-up (fractional allowed).
    pub warmup_epochs: f64,
    /// SGD momentum, Nesterov or not, and weight decay (never on batch norm or biases).
    pub sgd: SgdOptions,
    /// Label smoothing of the loss.
    pub label_smoothing: f32,
    /// Random crops and flips of the training images.
    pub augment: Augment,
    /// Seed of the shuffling and the augmentation.
    pub seed: u64,
    /// Threads of the compiled step and evaluation.
    pub threads: usize,
    /// Whether to measure the zero-cost proxies on the first batch before training.
    pub proxies: bool,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            epochs: 5,
            batch: 64,
            lr: 0.1,
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            sgd: SgdOptions { momentum: 0.9, nesterov: true, weight_decay: 5e-5 },
            label_smoothing: 0.0,
            augment: Augment::NONE,
            seed: 0,
            threads: 1,
            proxies: false,
        }
    }
}

/// Where training is, after a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The epoch (0-based) and how many there are.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Steps done in this epoch, and per epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Mean loss and accuracy over the epoch's steps so far.
    pub loss: f64,
    /// Training accuracy over the epoch so far (before each step's update).
    pub accuracy: f64,
    /// Training throughput over the epoch so far.
    pub images_per_second: f64,
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f32,
    /// Mean training loss and accuracy (before each step's update).
    pub train_loss: f64,
    /// Training top-1 accuracy.
    pub train_top1: f64,
    /// Images per second of the training steps.
    pub images_per_second: f64,
    /// Seconds of training steps in the epoch.
    pub train_seconds: f64,
    /// Accuracy on the validation data, if any.
    pub validation: Option<Accuracy>,
}

/// The result of training.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The network's weights (running statistics included, optimizer state left out).
    pub weights: Weights,
    /// One entry per epoch.
    pub epochs: Vec<EpochLog>,
    /// Seconds spent compiling the training step.
    pub compile_seconds: f64,
    /// The zero-cost proxies at the initial weights, when asked for.
    pub proxies: Option<Proxies>,
}

/// Trains `network` from `initial` on `train`, validating on `validation` after each epoch.
pub fn train(
    network: &Network<'_>,
    initial: &Weights,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &TrainConfig,
    on_step: &mut dyn FnMut(&Progress),
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<Trained> {
    let forward = network(config.batch)
        .map_err(|e| Error::Network { network: "network".into(), message: e.to_string() })?;
    let fail = |message: String| Error::Network { network: forward.name().to_string(), message };
    check_fits(&forward, train)?;
    let steps = train.len() / config.batch;
    if steps == 0 {
        return Err(fail(format!(
            "a batch of {} is larger than the {} training examples",
            config.batch,
            train.len()
        )));
    }
    let options = TrainOptions {
        label_smoothing: config.label_smoothing,
        bn_momentum: 0.1,
        optimizer: Some(config.sgd),
        // jacob_cov reads the input gradient.
        input_gradient: config.proxies,
    };
    let training = training_graph(&forward, &options).map_err(|e| fail(e.to_string()))?;
    let start = Instant::now();
    // LLVM's -O1: the step runs as fast as at -O2 (the kernels are explicit vector code or
    // simple loops) and compiles four times faster.
    let mut compiled = codegen::CompiledTraining::compile(&training, &training.initial_state(initial), 1)
        .map_err(|e| fail(e.to_string()))?;
    compiled.set_threads(config.threads);
    let mut evaluator = match validation {
        Some(_) => Some(Evaluator::new(&forward, initial, config.threads)?),
        None => None,
    };
    let compile_seconds = start.elapsed().as_secs_f64();
    let proxies = config.proxies.then(|| {
        let first = Batches::new(train, config.batch, config.seed, 0, config.augment)
            .drop_last(true)
            .next()
            .expect("at least one batch, checked above");
        crate::proxies::proxies(initial, &compiled.probe(&first.images, &first.labels), config.batch)
    });
    let network_weights = |compiled: &codegen::CompiledTraining| {
        let state = compiled.state();
        let mut weights = Weights::default();
        for (name, _, _) in ir::weights::expected_params(&forward) {
            weights.insert(
                name.clone(),
                state.get(&name).expect("the state holds the network's weights").clone(),
            );
        }
        weights
    };
    let mut epochs = Vec::new();
    for epoch in 0..config.epochs {
        let (mut loss, mut correct, mut lr) = (0.0f64, 0usize, config.lr);
        let mut seconds = 0.0;
        let batches =
            Batches::new(train, config.batch, config.seed, epoch as u64, config.augment).drop_last(true);
        for (step, b) in batches.enumerate() {
            let progress = epoch as f64 + step as f64 / steps as f64;
            lr = config.schedule.rate(config.lr, progress, config.epochs, config.warmup_epochs);
            let begin = Instant::now();
            let result = compiled.step(&b.images, &b.labels, lr);
            seconds += begin.elapsed().as_secs_f64();
            if !result.loss.is_finite() {
                return Err(fail(format!(
                    "the loss diverged to {} at epoch {}, step {}; try a lower --lr",
                    result.loss,
                    epoch + 1,
                    step + 1
                )));
            }
            loss += f64::from(result.loss);
            correct += result.correct;
            let done = step + 1;
            on_step(&Progress {
                epoch,
                epochs: config.epochs,
                step: done,
                steps,
                loss: loss / done as f64,
                accuracy: correct as f64 / (done * config.batch) as f64,
                images_per_second: (done * config.batch) as f64 / seconds,
            });
        }
        let validation = match (validation, evaluator.as_mut()) {
            (Some(data), Some(evaluator)) => Some(evaluator.accuracy(&network_weights(&compiled), data)),
            _ => None,
        };
        let log = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: loss / steps as f64,
            train_top1: correct as f64 / (steps * config.batch) as f64,
            images_per_second: (steps * config.batch) as f64 / seconds,
            train_seconds: seconds,
            validation,
        };
        on_epoch(&log);
        epochs.push(log);
    }
    Ok(Trained { weights: network_weights(&compiled), epochs, compile_seconds, proxies })
}
