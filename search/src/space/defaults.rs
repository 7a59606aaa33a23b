//! The defaults a space file gives `archc search`: the data, its split, how candidates are
//! trained, and the time budget. Command-line flags override them.

use std::time::Duration;

use serde::Deserialize;

use crate::Schedule;
use crate::candidate::Recipe;
use crate::data::{Augment, DataSpec, Split};

/// How a search over a space runs unless told otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchDefaults {
    /// The data set (`archc train --data`), checked; relative folders are relative to the
    /// current directory. `None`: the command line must give one.
    pub data: Option<String>,
    /// The train/validation split (`archc train --split`), checked; `None`: the data set's own.
    pub split: Option<String>,
    /// How each candidate is trained (a short run).
    pub recipe: Recipe,
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
    /// The defaults from a space file's fields; [`Recipe::default`] fills the gaps, and the
    /// long training is twice the short one unless given.
    pub(super) fn parse(
        data: Option<&str>,
        split: Option<&str>,
        training: &Training,
        budget: Option<&str>,
    ) -> Result<SearchDefaults, Bad> {
        let top = |field| move |e: crate::Error| Bad { field, in_training: false, message: e.to_string() };
        let sub = |field| move |e: crate::Error| Bad { field, in_training: true, message: e.to_string() };
        let base = Recipe::default();
        let recipe = Recipe {
            epochs: training.epochs.unwrap_or(base.epochs),
            batch: training.batch.unwrap_or(base.batch),
            lr: training.lr.unwrap_or(base.lr),
            schedule: training.schedule.clone().unwrap_or(base.schedule),
            warmup: training.warmup.unwrap_or(base.warmup),
            momentum: training.momentum.unwrap_or(base.momentum),
            weight_decay: training.weight_decay.unwrap_or(base.weight_decay),
            label_smoothing: training.label_smoothing.unwrap_or(base.label_smoothing),
            augment: training.augment.clone().unwrap_or(base.augment),
            seed: training.seed.unwrap_or(base.seed),
        };
        recipe.schedule.parse::<Schedule>().map_err(sub("schedule"))?;
        recipe.augment.parse::<Augment>().map_err(sub("augment"))?;
        for (field, value) in [("epochs", recipe.epochs), ("batch", recipe.batch)] {
            if value == 0 {
                return Err(Bad { field, in_training: true, message: format!("{field} must be at least 1") });
            }
        }
        if !(recipe.lr > 0.0 && recipe.lr.is_finite()) {
            return Err(Bad {
                field: "lr",
                in_training: true,
                message: "the learning rate must be positive".into(),
            });
        }
        if let Some(data) = data {
            data.parse::<DataSpec>().map_err(top("data"))?;
        }
        if let Some(split) = split {
            split.parse::<Split>().map_err(top("split"))?;
        }
        Ok(SearchDefaults {
            data: data.map(String::from),
            split: split.map(String::from),
            long_epochs: training.long_epochs.unwrap_or(2 * recipe.epochs),
            recipe,
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
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
    fn training_fills_gaps_from_the_default_recipe() {
        let training = Training { epochs: Some(3), augment: Some("shift:2".into()), ..Training::default() };
        let d = SearchDefaults::parse(Some("synthetic"), Some("0.2"), &training, None).ok().unwrap();
        assert_eq!(d.recipe.epochs, 3);
        assert_eq!(d.long_epochs, 6);
        assert_eq!(d.recipe.augment, "shift:2");
        assert_eq!(d.recipe.lr, Recipe::default().lr);
        assert_eq!(d.split.as_deref(), Some("0.2"));
        assert_eq!(d.budget, BUDGET);
    }

    #[test]
    fn bad_defaults_name_their_field() {
        let bad = |training: Training, split: Option<&str>| {
            SearchDefaults::parse(None, split, &training, None).err().map(|b| (b.field, b.message))
        };
        assert_eq!(
            bad(Training { augment: Some("rotate".into()), ..Training::default() }, None).unwrap().0,
            "augment"
        );
        assert_eq!(bad(Training { lr: Some(-1.0), ..Training::default() }, None).unwrap().0, "lr");
        assert_eq!(bad(Training::default(), Some("lots")).unwrap().0, "split");
    }
}
