//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building or reading data.
///
/// Errors about one sample ([`DataError::is_sample_error`]: unreadable file, undecodable
/// image, a transform that cannot handle that image) are skipped and counted by the
/// [`DataLoader`](crate::DataLoader); all others are returned to the caller.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file was read but is not a decodable JPEG/PNG image (corrupt, truncated, other format).
    #[error("cannot decode image `{path}`: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// An image whose header declares more than twice the decompression-bomb limit
    /// ([`max_image_pixels`](crate::imaging::io::max_image_pixels)); it is not decoded.
    #[error(
        "`{path}` declares {width}x{height} pixels, more than twice the limit of {limit} \
         (a possible decompression bomb); not decoded (--max-image-pixels raises the limit)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in pixels.
        limit: u64,
    },

    /// A dataset has no samples.
    #[error("dataset `{dataset}` is empty: {reason} (in `{path}`)")]
    EmptyDataset {
        /// The dataset type (`CustomDataset`, `ImageNet`, ...).
        dataset: &'static str,
        /// The folder that was scanned or the annotation file that was read.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },

    /// A sample index past the end of the dataset.
    #[error("index {index} is out of range for a dataset of {len} samples")]
    IndexOutOfRange {
        /// The requested index.
        index: usize,
        /// The dataset length.
        len: usize,
    },

    /// A component config is invalid (bad value, unsupported option, missing key).
    #[error("invalid `{component}` config: {message}")]
    InvalidConfig {
        /// The component (`RandomResizedCrop`, `DataLoader`, `SelfSupDataPreprocessor`, ...).
        component: String,
        /// What is wrong.
        message: String,
    },

    /// A config could not be deserialised (unknown `type`, unknown key, wrong value type).
    #[error("cannot parse {what}: {message}")]
    ConfigParse {
        /// What was being parsed.
        what: String,
        /// The decoder's message, with the key path.
        message: String,
    },

    /// A transform could not be applied to one particular image (e.g. it would become empty).
    #[error("transform `{transform}` failed on `{name}`: {message}")]
    Transform {
        /// The transform's MMSelfSup name.
        transform: &'static str,
        /// The sample's name (path), or empty when unknown.
        name: String,
        /// What went wrong.
        message: String,
    },

    /// Samples of one batch do not have the same number of views.
    #[error("sample `{name}` has {got} views but the batch's first sample has {expected}")]
    ViewCountMismatch {
        /// The offending sample.
        name: String,
        /// Views of the first sample.
        expected: usize,
        /// Views of this sample.
        got: usize,
    },

    /// Images of one view of a batch do not have the same size.
    #[error(
        "view {view} of sample `{name}` is {got:?} (c, h, w) but the batch's first sample's is \
         {expected:?}: add a crop/resize to a fixed size at the end of the pipeline"
    )]
    ViewShapeMismatch {
        /// The view index.
        view: usize,
        /// The offending sample.
        name: String,
        /// `(c, h, w)` of the first sample's view.
        expected: [usize; 3],
        /// `(c, h, w)` of this sample's view.
        got: [usize; 3],
    },

    /// Every candidate sample failed to load while filling a batch.
    #[error("no readable sample left to fill a batch: all {tried} candidates failed (last error: {last})")]
    NoReadableSample {
        /// How many samples were tried.
        tried: usize,
        /// The last error, as text.
        last: String,
    },

    /// A buffer does not match the shape it is said to have.
    #[error("buffer of {len} values does not match shape {shape:?}")]
    ShapeMismatch {
        /// The buffer length.
        len: usize,
        /// The shape.
        shape: Vec<usize>,
    },

    /// A mask or pseudo-label cannot be stacked into a batch (present for some samples only,
    /// or of different shapes).
    #[error("cannot batch `{field}` of sample `{name}`: {message}")]
    FieldMismatch {
        /// The field (`mask`, `rot_label`, ...).
        field: String,
        /// The offending sample.
        name: String,
        /// What differs.
        message: String,
    },

    /// A loader worker thread died (panicked) before delivering its batch.
    #[error("data loader worker {worker} stopped unexpectedly (it panicked)")]
    WorkerDied {
        /// The worker id.
        worker: usize,
    },
}

impl DataError {
    /// `true` for errors that concern one sample only (unreadable/corrupt file, a transform
    /// that cannot handle that image): the loader skips such samples and counts them.
    pub fn is_sample_error(&self) -> bool {
        matches!(self, DataError::Io { .. } | DataError::Decode { .. } | DataError::TooLarge { .. } | DataError::Transform { .. })
    }

    /// A [`DataError::ConfigParse`] from a serde error; keeps the readable part of messages
    /// produced by `selfsup_config::registry!` enums (which carry an encoded tail).
    pub(crate) fn parse(what: &str, err: &serde_json::Error) -> Self {
        let msg = err.to_string();
        let readable = msg.split('\u{0}').next().unwrap_or_default().trim_end();
        DataError::ConfigParse { what: what.into(), message: readable.to_string() }
    }

    /// Shorthand for [`DataError::InvalidConfig`].
    pub(crate) fn config(component: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::InvalidConfig { component: component.into(), message: message.into() }
    }
}
