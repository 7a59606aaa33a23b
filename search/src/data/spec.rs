//! Which data set to use, as written on the command line: `mnist:DIR`, `cifar10:DIR`,
//! `folder:DIR` or `synthetic[:CLASSES,CHANNELS,HEIGHT,WIDTH,COUNT[,SEED]]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::Synthetic;
use crate::{Error, Result};

const FORMS: &str = "expected mnist:DIR, cifar10:DIR, folder:DIR or \
                     synthetic[:CLASSES,CHANNELS,HEIGHT,WIDTH,COUNT[,SEED]]";

/// A data set's kind and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// `mnist:DIR`: IDX files in `DIR` named `*images-idx3-ubyte[.gz]` and
    /// `*labels-idx1-ubyte[.gz]` (or `.idx3-ubyte`), paired by prefix; `t10k-` and `test-`
    /// prefixes are the test part.
    Mnist(PathBuf),
    /// `cifar10:DIR`: CIFAR-10's binary batches `data_batch_N.bin` and `test_batch.bin`, in
    /// `DIR` or in `DIR/cifar-10-batches-bin`.
    Cifar10(PathBuf),
    /// `folder:DIR`: one subfolder of PNG or JPEG images per class, classes in name order.
    Folder(PathBuf),
    /// `synthetic[:...]`: generated, learnable, deterministic by seed.
    Synthetic(Synthetic),
}

impl FromStr for DataSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<DataSpec> {
        let bad = |message: String| Error::DataSpec { spec: spec.to_string(), message };
        let (kind, arg) = match spec.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (spec, None),
        };
        let dir = || match arg {
            Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            _ => Err(bad(format!("{kind} needs a folder: {kind}:DIR"))),
        };
        match kind {
            "mnist" => Ok(DataSpec::Mnist(dir()?)),
            "cifar10" => Ok(DataSpec::Cifar10(dir()?)),
            "folder" => Ok(DataSpec::Folder(dir()?)),
            "synthetic" => match arg {
                None => Ok(DataSpec::Synthetic(Synthetic::default())),
                Some(arg) => Synthetic::parse(arg).map(DataSpec::Synthetic).map_err(bad),
            },
            _ => Err(bad(format!("unknown kind `{kind}`; {FORMS}"))),
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Mnist(dir) => write!(f, "mnist:{}", dir.display()),
            DataSpec::Cifar10(dir) => write!(f, "cifar10:{}", dir.display()),
            DataSpec::Folder(dir) => write!(f, "folder:{}", dir.display()),
            DataSpec::Synthetic(s) => {
                let Synthetic { classes, channels, height, width, count, seed } = s;
                write!(f, "synthetic:{classes},{channels},{height},{width},{count},{seed}")
            }
        }
    }
}

impl Synthetic {
    /// Parses `CLASSES,CHANNELS,HEIGHT,WIDTH,COUNT[,SEED]`; the message says what is wrong.
    fn parse(arg: &str) -> Result<Synthetic, String> {
        const NAMES: [&str; 6] = ["CLASSES", "CHANNELS", "HEIGHT", "WIDTH", "COUNT", "SEED"];
        let parts: Vec<&str> = arg.split(',').map(str::trim).collect();
        if !(5..=6).contains(&parts.len()) {
            return Err(format!(
                "synthetic takes CLASSES,CHANNELS,HEIGHT,WIDTH,COUNT[,SEED] \
                 (e.g. synthetic:10,1,28,28,2000), found {} value(s)",
                parts.len()
            ));
        }
        let mut values = [0u64; 6];
        for ((value, part), name) in values.iter_mut().zip(&parts).zip(NAMES) {
            *value = part.parse().map_err(|_| format!("{name} `{part}` is not a whole number"))?;
        }
        let [classes, channels, height, width, count, seed] = values;
        let synthetic = Synthetic {
            classes: classes as usize,
            channels: channels as usize,
            height: height as usize,
            width: width as usize,
            count: count as usize,
            seed,
        };
        synthetic.check()?;
        Ok(synthetic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DataSpec> {
        s.parse()
    }

    #[test]
    fn kinds_and_folders() {
        assert_eq!(parse("mnist:data/mnist-2k").unwrap(), DataSpec::Mnist("data/mnist-2k".into()));
        assert_eq!(parse("cifar10:/d/c:x").unwrap(), DataSpec::Cifar10("/d/c:x".into()));
        assert_eq!(parse("folder:imgs").unwrap(), DataSpec::Folder("imgs".into()));
        assert_eq!(parse("synthetic").unwrap(), DataSpec::Synthetic(Synthetic::default()));
        let s = parse("synthetic:3,2,8,6,100,9").unwrap();
        assert_eq!(
            s,
            DataSpec::Synthetic(Synthetic {
                classes: 3,
                channels: 2,
                height: 8,
                width: 6,
                count: 100,
                seed: 9
            })
        );
        assert_eq!(parse(&s.to_string()).unwrap(), s, "Display round-trips");
        let DataSpec::Synthetic(s) = parse("synthetic:3,2,8,6,100").unwrap() else { panic!() };
        assert_eq!(s.seed, 0);
    }

    #[test]
    fn bad_specs_say_what_was_expected() {
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("imagenet:/x"),
            format!("bad data spec `imagenet:/x`: unknown kind `imagenet`; {FORMS}")
        );
        assert_eq!(msg("mnist"), "bad data spec `mnist`: mnist needs a folder: mnist:DIR");
        assert_eq!(msg("folder:"), "bad data spec `folder:`: folder needs a folder: folder:DIR");
        assert!(msg("synthetic:10,1,28").contains("found 3 value(s)"));
        assert!(msg("synthetic:10,1,x,28,5").ends_with("HEIGHT `x` is not a whole number"));
        assert!(msg("synthetic:1,1,28,28,5").contains("CLASSES"), "{}", msg("synthetic:1,1,28,28,5"));
        assert!(msg("synthetic:10,0,28,28,5").contains("CHANNELS"));
        assert!(msg("synthetic:10,1,100000,100000,100000").contains("too large"));
    }
}
