//! `archc train`: trains a network with its compiled training step and writes the weights.

use std::io::Write;
use std::path::PathBuf;

use search::Schedule;
use search::data::Augment;
use search::train::{TrainConfig, train};

use super::NetworkArgs;
use super::data::DataArgs;

/// Flags of `archc train`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Start from these weights (safetensors) instead of a seeded initialization.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where to write the trained weights (safetensors, PyTorch names).
    #[arg(short, long)]
    output: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    epochs: u32,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Learning-rate schedule: constant, cosine or step:EVERY:GAMMA.
    #[arg(long, default_value = "cosine")]
    schedule: Schedule,
    /// Epochs of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    no_nesterov: bool,
    /// L2 weight decay on convolution and linear weights.
    #[arg(long, default_value_t = 5e-5)]
    weight_decay: f32,
    /// Label smoothing of the cross-entropy loss.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Augmentation of the training images: none, cifar (random crops of the image padded by
    /// 4 pixels, and horizontal flips) or shift:N (random crops of the image padded by N pixels:
    /// shifts, for digits).
    #[arg(long, default_value = "none")]
    augment: Augment,
    /// Threads of the compiled step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Seed of the initialization, the shuffling and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also append the per-epoch JSON lines to this file.
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Runs `archc train`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    check_range("--lr", args.lr, 0.0, 10.0)?;
    check_range("--momentum", args.momentum, 0.0, 0.999)?;
    check_range("--weight-decay", args.weight_decay, 0.0, 1.0)?;
    check_range("--label-smoothing", args.label_smoothing, 0.0, 0.999)?;
    let (train_set, validation) = args.data.train_and_validation()?;
    let graph = args.network.build_with_batch(args.network.batch as usize)?;
    let initial = super::WeightsArgs { weights: args.weights.clone(), seed: args.seed }.load(&graph)?;
    let config = TrainConfig {
        epochs: args.epochs as usize,
        batch: args.network.batch as usize,
        lr: args.lr,
        schedule: args.schedule,
        warmup_epochs: args.warmup.max(0.0),
        sgd: passes::autodiff::SgdOptions {
            momentum: args.momentum,
            nesterov: !args.no_nesterov,
            weight_decay: args.weight_decay,
        },
        label_smoothing: args.label_smoothing,
        augment: args.augment,
        seed: args.seed,
        threads: args.threads as usize,
        proxies: false,
    };
    let mut log = match &args.log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| super::InputError(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut on_step = |p: &search::train::Progress| {
        bar.set_length(p.steps as u64);
        bar.set_prefix(format!("{}/{}", p.epoch + 1, p.epochs));
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "loss {:.4} acc {:.2}% {:.0} img/s",
            p.loss,
            100.0 * p.accuracy,
            p.images_per_second
        ));
    };
    let mut stdout = std::io::stdout();
    let mut failure = None;
    let mut on_epoch = |e: &search::train::EpochLog| {
        let line = serde_json::to_string(e).expect("epoch logs serialize");
        bar.suspend(|| {
            let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            let logged = log.as_mut().map_or(Ok(()), |f| writeln!(f, "{line}").and_then(|()| f.sync_data()));
            if let Err(e) = written.and(logged) {
                failure.get_or_insert(e);
            }
        });
    };
    let network = |batch: usize| args.network.build_graph(batch);
    let trained =
        train(&network, &initial, &train_set, validation.as_ref(), &config, &mut on_step, &mut on_epoch)?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.into());
    }
    trained.weights.save(&args.output)?;
    Ok(())
}

/// Checks that flag `name` lies in `[lo, hi]`.
fn check_range(name: &str, value: f32, lo: f32, hi: f32) -> anyhow::Result<()> {
    if !(lo..=hi).contains(&value) {
        return Err(super::InputError(format!("{name} must be in [{lo}, {hi}], got {value}")).into());
    }
    Ok(())
}
