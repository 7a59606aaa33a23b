//! Dividing a data set into a training part (its start) and a validation part (its end), in
//! the data set's own order, so a split is reproducible without a seed; shuffle first with
//! [`Dataset::subset`] and [`permutation`](super::permutation) for a random one.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::Dataset;
use crate::{Error, Result};

/// How to divide examples between training and validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    /// The last `fraction` of the examples (rounded to the nearest whole example) validate,
    /// the rest train. Text form: `0.1` or `10%`.
    Fraction(f64),
    /// The last `n` examples validate, the rest train. Text form: `1000`.
    Last(usize),
    /// The first `train` examples train and the last `validation` validate; any examples
    /// between them are left out. Text form: `7000,1000`.
    Counts {
        /// How many examples train, from the start.
        train: usize,
        /// How many examples validate, from the end.
        validation: usize,
    },
}

impl Split {
    /// The training and validation index ranges of a data set of `len` examples.
    pub fn ranges(&self, len: usize) -> Result<(Range<usize>, Range<usize>)> {
        let bad = |message: String| Err(Error::Split { message });
        let (train, validation) = match *self {
            Split::Fraction(f) if (0.0..1.0).contains(&f) => {
                let v = (len as f64 * f).round() as usize;
                (len - v, v)
            }
            Split::Fraction(f) => return bad(format!("a validation fraction must be in [0, 1), not {f}")),
            Split::Last(v) if v <= len => (len - v, v),
            Split::Counts { train, validation }
                if train.checked_add(validation).is_some_and(|n| n <= len) =>
            {
                (train, validation)
            }
            Split::Last(_) | Split::Counts { .. } => {
                return bad(format!("{self} asks for more than the {len} examples there are"));
            }
        };
        Ok((0..train, len - validation..len))
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Fraction(x) => write!(f, "{x}"),
            Split::Last(n) => write!(f, "{n}"),
            Split::Counts { train, validation } => write!(f, "{train},{validation}"),
        }
    }
}

impl FromStr for Split {
    type Err = Error;

    fn from_str(s: &str) -> Result<Split> {
        let bad = || Error::Split {
            message: format!(
                "`{s}`: expected a fraction (0.1 or 10%), a validation count (1000) \
                 or TRAIN,VALIDATION (7000,1000)"
            ),
        };
        let split = if let Some((t, v)) = s.split_once(',') {
            Split::Counts {
                train: t.trim().parse().map_err(|_| bad())?,
                validation: v.trim().parse().map_err(|_| bad())?,
            }
        } else if let Some(p) = s.strip_suffix('%') {
            Split::Fraction(p.trim().parse::<f64>().map_err(|_| bad())? / 100.0)
        } else if s.contains(['.', 'e']) {
            Split::Fraction(s.parse().map_err(|_| bad())?)
        } else {
            Split::Last(s.parse().map_err(|_| bad())?)
        };
        // Check what needs no length now, so a bad fraction fails at parse time.
        split.ranges(usize::MAX / 2).map(|_| split)
    }
}

impl Dataset {
    /// Divides the examples into `(training, validation)` as `split` says. The data set is
    /// consumed so the training part reuses its memory.
    pub fn split(mut self, split: Split) -> Result<(Dataset, Dataset)> {
        let (train, validation) = split.ranges(self.len())?;
        let validation = self.slice(validation);
        self.truncate(train.end);
        Ok((self, validation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> Dataset {
        Dataset::new((0..n).map(|i| i as f32).collect(), vec![0; n], [1, 1, 1], vec!["x".into()])
    }

    fn sizes(d: Dataset, split: &str) -> (Vec<f32>, Vec<f32>) {
        let (t, v) = d.split(split.parse().unwrap()).unwrap();
        (t.images().to_vec(), v.images().to_vec())
    }

    #[test]
    fn first_for_training_last_for_validation() {
        let (t, v) = numbered(8000).split(Split::Last(1000)).unwrap();
        assert_eq!((t.len(), v.len()), (7000, 1000));
        assert_eq!((t.images()[6999], v.images()[0], v.images()[999]), (6999.0, 7000.0, 7999.0));
        let (t, v) = sizes(numbered(10), "3,2");
        assert_eq!((t, v), (vec![0.0, 1.0, 2.0], vec![8.0, 9.0]));
    }

    #[test]
    fn fractions_round_to_whole_examples() {
        // 2.5 examples round away from zero.
        assert_eq!(sizes(numbered(10), "0.25").1, [7.0, 8.0, 9.0]);
        assert_eq!(Split::Fraction(0.1).ranges(8000).unwrap(), (0..7200, 7200..8000));
        assert_eq!("12.5%".parse::<Split>().unwrap(), Split::Fraction(0.125));
        assert_eq!(Split::Fraction(0.0).ranges(5).unwrap(), (0..5, 5..5));
    }

    #[test]
    fn splits_that_do_not_fit_are_errors() {
        assert!(matches!(numbered(10).split(Split::Last(11)), Err(Error::Split { .. })));
        let err = numbered(10).split(Split::Counts { train: 9, validation: 2 }).unwrap_err();
        assert_eq!(err.to_string(), "bad split: 9,2 asks for more than the 10 examples there are");
        assert!("1.5".parse::<Split>().is_err());
        assert!("-3".parse::<Split>().is_err());
        assert!("ten".parse::<Split>().is_err());
        assert_eq!("7000,1000".parse::<Split>().unwrap(), Split::Counts { train: 7000, validation: 1000 });
    }
}
