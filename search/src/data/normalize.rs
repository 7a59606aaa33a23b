//! The fixed map from pixel bytes to network inputs: `(x / 255 - mean[c]) / std[c]` per
//! channel `c`, with one stated mean and standard deviation per format.

/// Per-channel mean and standard deviation, in units of the full byte range (`x / 255`).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// The mean subtracted from `x / 255`, per channel.
    pub mean: Vec<f32>,
    /// The standard deviation divided by, per channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// MNIST: mean 0.1307, std 0.3081, the training set's statistics (as in PyTorch's MNIST
    /// example).
    pub fn mnist() -> Normalization {
        Normalization { mean: vec![0.1307], std: vec![0.3081] }
    }

    /// CIFAR-10: the training set's per-channel (R, G, B) mean (0.4914, 0.4822, 0.4465) and
    /// standard deviation over all pixels (0.2470, 0.2435, 0.2616).
    pub fn cifar10() -> Normalization {
        Normalization { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] }
    }

    /// Folders of images, whose statistics are unknown: mean 0.5, std 0.5 in every channel,
    /// which maps bytes onto [-1, 1].
    pub fn folder(channels: usize) -> Normalization {
        Normalization { mean: vec![0.5; channels], std: vec![0.5; channels] }
    }

    /// The value of byte `x` in channel `channel`.
    pub fn apply(&self, channel: usize, x: u8) -> f32 {
        (f32::from(x) / 255.0 - self.mean[channel]) / self.std[channel]
    }

    /// Normalizes NCHW bytes (`plane` pixels per channel, as many channels as this has).
    pub(crate) fn images(&self, pixels: &[u8], plane: usize) -> Vec<f32> {
        let tables: Vec<Vec<f32>> =
            (0..self.mean.len()).map(|c| (0..=255u8).map(|x| self.apply(c, x)).collect()).collect();
        let channels = tables.len();
        pixels
            .chunks(plane)
            .enumerate()
            .flat_map(|(i, p)| p.iter().map(move |&x| (i % channels, x)))
            .map(|(c, x)| tables[c][usize::from(x)])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_use_their_own_statistics() {
        let n = Normalization::cifar10();
        // Two images of 2x1 pixels: R plane, G plane, B plane each.
        let x = n.images(&[0, 255, 0, 255, 0, 255, 10, 10, 20, 20, 30, 30], 2);
        assert_eq!(x.len(), 12);
        assert_eq!(x[0], -0.4914 / 0.2470);
        assert_eq!(x[1], (1.0 - 0.4914) / 0.2470);
        assert_eq!(x[2], -0.4822 / 0.2435);
        assert_eq!(x[5], (1.0 - 0.4465) / 0.2616);
        assert_eq!(x[10], n.apply(2, 30));
        assert_eq!(Normalization::folder(1).images(&[0, 255], 1), [-1.0, 1.0]);
    }
}
