//! The defaults a space file gives `archc search`: the data, its split, how candidates are
//! trained, and the time budget. Command-line flags override them.

use std::time::Duration;

use serde::Deserialize;

use crate::Schedule;
use crate::data::{Augment, DataSpec, Split};
use crate::train::TrainConfig;

/// How a search over a space runs unless told otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchDefaults {
    /// The data set (`archc train --data`); relative folders are relative to the current
    /// directory. `None`: the command line must give one.
    pub data: Option<DataSpec>,
    /// The train/validation split (`archc train --split`); `None`: the data set's own.
    pub split: Option<Split>,
    /// How each candidate is trained (a short run: `train.epochs`).
    pub train: TrainConfig,
    /// Epochs of the longer training of the best candidates.
    pub long_epochs: usize,
    /// How long the search may take in all.
    pub budget: Duration,
}

/// The `training: (..)` settings as written; every field is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Training {
    epochs: Option<usize>,
    long_epochs: Option<usize>,
    batch: Option<usize>,
    lr: Option<f32>,
    schedule: Option<String>,
    warmup: Option<f64>,
    momentum: Option<f32>,
    weight_decay: Option<f32>,
    label_smoothing: Option<f32>,
    augment: Option<String>,
    seed: Option<u64>,
}

/// A default that does not parse: the field (under `training` when `in_training`) and why.
pub(super) struct Bad {
    pub field: &'static str,
    pub in_training: bool,
    pub message: String,
}

/// The budget when a space gives none.
const BUDGET: Duration = Duration::from_secs(10 * 60);

impl SearchDefaults {
    /// The defaults from a space file's fields; [`TrainConfig::default`] fills the gaps, and
    /// the long training is twice the short one unless given.
    pub(super) fn parse(
        data: Option<&str>,
        split: Option<&str>,
        training: &Training,
        budget: Option<&str>,
    ) -> Result<SearchDefaults, Bad> {
        let top = |field| move |e: crate::Error| Bad { field, in_training: false, message: e.to_string() };
        let sub = |field| move |e: crate::Error| Bad { field, in_training: true, message: e.to_string() };
        let base = TrainConfig::default();
        let mut train = TrainConfig {
            epochs: training.epochs.unwrap_or(base.epochs),
            batch: training.batch.unwrap_or(base.batch),
            lr: training.lr.unwrap_or(base.lr),
            warmup_epochs: training.warmup.unwrap_or(base.warmup_epochs),
            label_smoothing: training.label_smoothing.unwrap_or(base.label_smoothing),
            seed: training.seed.unwrap_or(base.seed),
            ..base
        };
        train.sgd.momentum = training.momentum.unwrap_or(train.sgd.momentum);
        train.sgd.weight_decay = training.weight_decay.unwrap_or(train.sgd.weight_decay);
        if let Some(s) = &training.schedule {
            train.schedule = s.parse::<Schedule>().map_err(sub("schedule"))?;
        }
        if let Some(s) = &training.augment {
            train.augment = s.parse::<Augment>().map_err(sub("augment"))?;
        }
        for (field, value) in [("epochs", train.epochs), ("batch", train.batch)] {
            if value == 0 {
                return Err(Bad { field, in_training: true, message: format!("{field} must be at least 1") });
            }
        }
        Ok(SearchDefaults {
            data: data.map(str::parse::<DataSpec>).transpose().map_err(top("data"))?,
            split: split.map(str::parse::<Split>).transpose().map_err(top("split"))?,
            long_epochs: training.long_epochs.unwrap_or(2 * train.epochs),
            train,
            budget: match budget {
                Some(text) => parse_duration(text).map_err(|message| Bad {
                    field: "budget",
                    in_training: false,
                    message,
                })?,
                None => BUDGET,
            },
        })
    }
}

/// A duration such as `90s`, `10m`, `1.5h` or `1h30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("bad duration `{text}`: expected a number and a unit (s, m or h), like 90s, 10m or 1h30m");
    let mut seconds = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let unit_at = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..unit_at].parse().map_err(|_| bad())?;
        let scale = match rest.as_bytes()[unit_at] {
            b's' => 1.0,
            b'm' => 60.0,
            b'h' => 3600.0,
            _ => return Err(bad()),
        };
        seconds += n * scale;
        rest = &rest[unit_at + 1..];
    }
    if seconds > 0.0 && seconds < 1e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("bad duration `{text}`: expected more than zero and less than 30 years"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "m", "10 m", "5x", "0s", "1..5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn training_fills_gaps_from_train_config() {
        let training = Training { epochs: Some(3), augment: Some("shift:2".into()), ..Training::default() };
        let d = SearchDefaults::parse(Some("synthetic"), Some("0.2"), &training, None).ok().unwrap();
        assert_eq!(d.train.epochs, 3);
        assert_eq!(d.long_epochs, 6);
        assert_eq!(d.train.augment, Augment { pad: 2, flip: false });
        assert_eq!(d.train.lr, TrainConfig::default().lr);
        assert_eq!(d.split, Some(Split::Fraction(0.2)));
        assert_eq!(d.budget, BUDGET);
    }
}
