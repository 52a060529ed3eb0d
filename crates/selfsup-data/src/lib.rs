//! Data for selfsup: datasets, MMSelfSup-compatible transforms, a deterministic
//! multi-threaded data loader, and the data-preprocessor arithmetic.
//!
//! # What it is
//! The Rust counterpart of `mmselfsup/datasets/` plus the parts of mmcv, mmcls and MMEngine
//! that MMSelfSup 1.0.0 pipelines use:
//! - [`datasets`]: the [`Dataset`] trait and the [`DatasetConfig`] registry (`CustomDataset`,
//!   `ImageNet`, `SyntheticDataset`); datasets decode images to 8-bit **RGB** (JPEG/PNG; grey,
//!   RGBA, palette and 16-bit images are converted);
//! - [`transforms`]: the [`TransformConfig`] registry with MMSelfSup's names and parameters,
//!   [`Pipeline`] (mmcv's `Compose`), [`MultiView`](transforms::MultiView) (one pipeline per
//!   group of views, e.g. SwAV's 2×224 + 6×96 multi-crop) and `RandomApply`; resizing
//!   matches Pillow bit for bit (`backend='pillow'`) or OpenCV within one level
//!   (`backend='cv2'`); `ColorJitter`, `RandomGrayscale`, `RandomGaussianBlur`,
//!   `RandomSolarize` and `RandomCrop` match MMSelfSup/mmcv/Pillow bit for bit (checked
//!   against the reference by `tests/transforms_parity.rs`); PixMIM's PIL pipeline
//!   (`mmcls.ToPIL`, `mmcls.torchvision/Resize`, `mmcls.torchvision/RandomCrop`,
//!   `mmcls.torchvision/RandomHorizontalFlip`, `mmcls.ToNumpy`) matches torchvision on PIL
//!   images bit for bit, with torch's draws replayed;
//! - [`loader`]: [`DataLoader`] and MMEngine's dataloader config; batches are a pure function
//!   of `(seed, epoch, iteration)`, whatever the number of workers; bad files are skipped and
//!   counted;
//! - the data preprocessor (mean/std, channel order) is a model part, as in MMSelfSup: it is
//!   `selfsup_core::DataPreprocessorConfig` and runs on the training device.
//!
//! # What it is not
//! - Not tensor code: there is no burn dependency. Batches are `Vec<f32>` NCHW buffers
//!   (values `0..=255`, RGB); the training crate turns them into tensors and normalises them.
//! - Not a downloader and not a file-system abstraction: local files only, no network.
//! - Not distributed: samplers behave as MMEngine's at world size 1.
//!
//! # Example
//! ```
//! use selfsup_data::*;
//! # fn main() -> Result<(), DataError> {
//! let dataset = SyntheticDatasetConfig { num_samples: 8, img_size: 16, ..Default::default() }.build()?;
//! let pipeline = Pipeline::new(&TransformConfig::parse_list(r#"[
//!     {"type": "RandomResizedCrop", "size": 8, "backend": "pillow"},
//!     {"type": "RandomFlip", "prob": 0.5},
//!     {"type": "PackSelfSupInputs"}]"#)?)?;
//! let loader = DataLoader::new(
//!     std::sync::Arc::new(dataset),
//!     pipeline,
//!     DataLoaderOptions { batch_size: 4, ..Default::default() },
//! )?;
//! let batch = loader.iter_epoch(0).next().expect("one batch")?;
//! assert_eq!(batch.views[0].shape, [4, 3, 8, 8]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod datasets;
mod error;
pub mod imaging;
pub mod loader;
pub mod transforms;

pub use datasets::{
    write_class_folders, CustomDataset, CustomDatasetConfig, DataPrefix, Dataset, DatasetConfig, DigitsSplit, RawSample, SklearnDigits,
    SklearnDigitsConfig, SyntheticDataset, SyntheticDatasetConfig,
};
pub use error::DataError;
pub use imaging::geometric::{Interpolation, ResizeBackend};
pub use imaging::Image;
pub use loader::{Batch, BatchIter, DataLoader, DataLoaderConfig, DataLoaderOptions, SamplerKind, SkipCallback, ViewBatch};
pub use transforms::{Pipeline, Sample, TransformConfig};
