//! Flags that choose a data set and its train/validation split, shared by `train` and `eval`.

use search::data::{DataSpec, Dataset, Split};

/// `--data` and `--split`.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// The data: mnist:DIR, cifar10:DIR, folder:DIR (one subfolder per class) or
    /// synthetic[:CLASSES,CHANNELS,H,W,COUNT[,SEED]].
    #[arg(long, value_name = "SPEC")]
    pub data: DataSpec,
    /// Hold out the end of the training data for validation: a fraction (0.1), a percentage
    /// (10%), a count (1000) or TRAIN,VALIDATION counts (7000,1000). Without it, the data
    /// set's own test part is used where it has one (MNIST t10k files, CIFAR-10 test_batch).
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<Split>,
}

impl DataArgs {
    /// The training examples and the validation examples, if any.
    pub fn train_and_validation(&self) -> anyhow::Result<(Dataset, Option<Dataset>)> {
        Ok(Dataset::train_and_validation(&self.data, self.split)?)
    }

    /// The examples to evaluate on: the validation part of `--split`, else the test part,
    /// else the whole data set.
    pub fn evaluation(&self) -> anyhow::Result<Dataset> {
        let (train, validation) = self.train_and_validation()?;
        Ok(validation.unwrap_or(train))
    }
}
