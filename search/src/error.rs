//! The errors of the `search` crate.

/// Everything that can go wrong in the search crate. Data errors name the file (and, for a
/// malformed file, the byte offset) so that a bad download can be found and replaced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data spec (`--data`) does not parse: unknown kind, no folder after `mnist:`, or
    /// synthetic parameters that are not positive whole numbers in range.
    #[error("bad data spec `{spec}`: {message}")]
    DataSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A file or folder could not be opened, read or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A data file ends before its header (IDX) or its record size (CIFAR-10) says it should.
    /// Offsets count the decompressed bytes when the file is gzipped.
    #[error("{file}: truncated at byte {offset} of {expected_len}: expected {expected}")]
    Truncated {
        /// The file.
        file: String,
        /// Where the data ends (the file's length).
        offset: u64,
        /// The length the file should have.
        expected_len: u64,
        /// What the missing bytes should have been, e.g. `784 bytes of image 9`.
        expected: String,
    },
    /// A data file does not start with the magic number of the format it should have.
    #[error("{file}: wrong magic number 0x{found:08x} at byte 0, expected 0x{expected:08x} ({format})")]
    Magic {
        /// The file.
        file: String,
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number of `format`.
        expected: u32,
        /// The format expected, e.g. `IDX images (idx3-ubyte)`.
        format: &'static str,
    },
    /// A data file is malformed in another way: a broken gzip stream, an impossible header,
    /// bytes after the last record, no records at all.
    #[error("{file}: at byte {offset}: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// Where the problem is (decompressed bytes for gzip).
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// An images file and its labels file hold different numbers of examples.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// The images file.
        images: String,
        /// How many images it holds.
        image_count: usize,
        /// The labels file.
        labels: String,
        /// How many labels it holds.
        label_count: usize,
    },
    /// A label is not below the number of classes of its format (10 for MNIST and CIFAR-10).
    #[error("{file}: label {label} at byte {offset} is out of range: the data set has {classes} classes")]
    LabelOutOfRange {
        /// The file.
        file: String,
        /// Where the label is.
        offset: u64,
        /// The label found.
        label: u32,
        /// How many classes the format has.
        classes: usize,
    },
    /// A data folder does not hold what its kind needs: no images file, an images file without
    /// its labels, two candidates for one role, no class folders, a class folder without images.
    #[error("{path}: {message}")]
    Layout {
        /// The folder (or the file that has no partner).
        path: String,
        /// What is missing or ambiguous, and the names that were expected.
        message: String,
    },
    /// An image in a folder data set is not a PNG or JPEG file that decodes.
    #[error("{file}: cannot decode image: {message}")]
    Image {
        /// The file.
        file: String,
        /// The decoder's message.
        message: String,
    },
    /// A train/validation split does not fit the data set (more examples than it has, a
    /// fraction outside [0, 1)), or its text form does not parse.
    #[error("bad split: {message}")]
    Split {
        /// What is wrong.
        message: String,
    },
    /// A learning-rate schedule (`--schedule`) does not parse.
    #[error("bad schedule `{spec}`: {message}")]
    Schedule {
        /// The schedule as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// An augmentation (`--augment`, or `augment:` in a search space) does not parse.
    #[error("bad augmentation `{spec}`: {message}")]
    Augment {
        /// The augmentation as given.
        spec: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A search space file is malformed, or does not fit its network: a choice names no
    /// parameter of the network, has no options, or has a different length than the list it
    /// sets; the network or a baseline is missing; a default does not parse; or the network
    /// does not build with its defaults or with the first option of every choice.
    #[error("{location}: {message}")]
    Space {
        /// Where in the space file.
        location: ir::Location,
        /// What is wrong.
        message: String,
    },
    /// A genome does not fit its space: it has the wrong number of genes, or a gene is not
    /// below its number of options. A strategy that made it has a bug.
    #[error("space `{space}`: {message}")]
    Genome {
        /// The space's name.
        space: String,
        /// What is wrong.
        message: String,
    },
    /// A space's network does not build with the choices of a genome (channels that do not
    /// divide, a feature map that shrinks to nothing). The search scores it and goes on.
    #[error("space `{space}` with {choices}: {source}")]
    Build {
        /// The space's name.
        space: String,
        /// The genome's choices, `name=value` separated by spaces.
        choices: String,
        /// Why it does not build (boxed: `ir::Error` is large, and this variant is rare).
        source: Box<ir::Error>,
    },
    /// A network cannot be trained or evaluated on a data set: its autodiff, compilation or
    /// shapes fail (logits that are not `[n, classes]`, images of another size).
    #[error("{network}: {message}")]
    Network {
        /// The network's name.
        network: String,
        /// What went wrong.
        message: String,
    },
    /// A training recipe (a search space's `training`) has a value out of range.
    #[error("bad training recipe: {message}")]
    Recipe {
        /// What is wrong.
        message: String,
    },
    /// A search journal has a line that is not an event (other than a last line cut short
    /// by a crash, which is dropped), or belongs to another search than the one resumed.
    #[error("{path}:{line}: {message}")]
    Journal {
        /// The journal file.
        path: String,
        /// The 1-based line (0 when the file as a whole is at fault).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The Ray glue could not start or connect to the cluster (Ray not installed, a wrong
    /// address).
    #[error("ray: {message}")]
    Ray {
        /// What went wrong, with the glue's last words.
        message: String,
    },
    /// The search report's front plot could not be drawn (plotters failed to lay it out).
    #[error("drawing the front plot: {message}")]
    Plot {
        /// What failed.
        message: String,
    },
}

/// The `search` crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
