//! Datasets: the [`Dataset`] trait, the [`DatasetConfig`] registry and the implementations.
//!
//! | `type` | reference | what |
//! |---|---|---|
//! | `CustomDataset` | `mmcls.datasets.CustomDataset` | a folder of images (class sub-folders optional) or an annotation file |
//! | `ImageNet` | `mmcls.datasets.ImageNet` | the same, with ImageNet's 1000 classes for annotation files |
//! | `SyntheticDataset` | ours | procedural class-structured images, no file I/O |
//! | `SklearnDigits` | ours | the handwritten digits scikit-learn ships (`digits.csv.gz`) |
//!
//! A dataset decodes images (mmcv's `LoadImageFromFile` happens here) and returns
//! [`RawSample`]s; transforms are applied by a [`Pipeline`](crate::Pipeline).

mod base;
pub mod custom;
pub mod imagenet;
pub mod sklearn_digits;
pub mod synthetic;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use base::{DataPrefix, Indices, MetaInfo, IMG_EXTENSIONS};
pub use custom::{CustomDataset, CustomDatasetConfig};
pub use imagenet::IMAGENET_NUM_CLASSES;
pub use sklearn_digits::{DigitsSplit, SklearnDigits, SklearnDigitsConfig};
pub use synthetic::{SyntheticDataset, SyntheticDatasetConfig};

use crate::imaging::Image;
use crate::transforms::TransformConfig;
use crate::DataError;

/// One decoded dataset sample, before transforms.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// The decoded image, 8-bit RGB, HWC.
    pub img: Image,
    /// The class label, when the dataset has labels.
    pub label: Option<usize>,
    /// The sample's name: its path relative to the image folder, or a synthetic name.
    pub name: String,
    /// The index in the dataset.
    pub index: usize,
    /// The cluster DeepCluster's and ODC's clustering assigned it
    /// (`DeepClusterImageNet.clustering_labels`), set by the loader; packed
    /// as the `clustering_label` pseudo-label.
    pub clustering_label: Option<i64>,
}

/// A random-access dataset of decoded images, shareable across loader threads.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// `true` when there is no sample (datasets built from configs never are: that is an error).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads and decodes sample `index`.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`], or a per-sample error ([`DataError::Io`],
    /// [`DataError::Decode`]) that the loader skips and counts.
    fn load(&self, index: usize) -> Result<RawSample, DataError>;

    /// Number of classes, `None` for an unlabelled dataset.
    fn num_classes(&self) -> Option<usize>;

    /// Class names, when known (folder names or `metainfo.classes`); empty otherwise.
    fn classes(&self) -> &[String] {
        &[]
    }
}

selfsup_config::registry! {
    /// The dataset registry: one variant per dataset `type`.
    ///
    /// Deserialises from MMEngine-style dicts, e.g. (TOML)
    /// `{ type = "mmcls.ImageNet", data_root = "data/imagenet/", ann_file = "meta/train.txt",
    /// data_prefix = { img_path = "train/" }, pipeline = [...] }` (scope prefixes are accepted).
    #[derive(Debug, Clone, PartialEq)]
    pub enum DatasetConfig {
        /// `CustomDataset` (mmcls).
        "CustomDataset" => CustomDataset(CustomDatasetConfig),
        /// `ImageNet` (mmcls): a [`CustomDataset`] whose annotation-file form has 1000 classes.
        "ImageNet" => ImageNet(CustomDatasetConfig),
        /// `DeepClusterImageNet` (mmselfsup): an [`ImageNet`](DatasetConfig::ImageNet) whose
        /// samples carry the clustering labels DeepCluster and ODC assign
        /// ([`DataLoader::assign_labels`](crate::DataLoader::assign_labels), which every
        /// dataset type accepts here).
        "DeepClusterImageNet" => DeepClusterImageNet(CustomDatasetConfig),
        /// `SyntheticDataset` (ours).
        "SyntheticDataset" => SyntheticDataset(SyntheticDatasetConfig),
        /// `SklearnDigits` (ours): scikit-learn's bundled handwritten digits.
        "SklearnDigits" => SklearnDigits(SklearnDigitsConfig),
    }
}

impl DatasetConfig {
    /// The registry name (`type`).
    pub fn name(&self) -> &'static str {
        self.type_name()
    }

    /// The dataset's transform pipeline (MMEngine keeps it in the dataset config).
    pub fn pipeline(&self) -> &[TransformConfig] {
        match self {
            DatasetConfig::CustomDataset(c) | DatasetConfig::ImageNet(c) | DatasetConfig::DeepClusterImageNet(c) => &c.pipeline,
            DatasetConfig::SyntheticDataset(c) => &c.pipeline,
            DatasetConfig::SklearnDigits(c) => &c.pipeline,
        }
    }

    /// Builds the dataset (scans the folder / reads the annotation file).
    ///
    /// Relative paths are joined MMEngine's way (`data_root` + `ann_file`,
    /// `data_root` + `data_prefix`), then to `base_dir` when given (otherwise they are relative
    /// to the current directory, as in MMEngine).
    ///
    /// # Errors
    /// [`DataError::Io`] with the path, [`DataError::EmptyDataset`] naming the folder or
    /// file, or [`DataError::InvalidConfig`].
    pub fn build(&self, base_dir: Option<&Path>) -> Result<Arc<dyn Dataset>, DataError> {
        Ok(match self {
            DatasetConfig::CustomDataset(c) => Arc::new(c.build(base_dir)?),
            DatasetConfig::ImageNet(c) | DatasetConfig::DeepClusterImageNet(c) => Arc::new(imagenet::build(c, base_dir)?),
            DatasetConfig::SyntheticDataset(c) => Arc::new(c.build()?),
            DatasetConfig::SklearnDigits(c) => Arc::new(c.build(base_dir)?),
        })
    }
}

/// Writes every sample of a labelled `dataset` as a PNG into a class-folder
/// tree, `out/<class>/<name>` (the class's name when the dataset has
/// names, else its number; `name`'s extension replaced by `.png`), the
/// layout `CustomDataset`, `selfsup knn --train/--val` and `selfsup
/// linear-probe` read. Returns the number of images written.
///
/// # Errors
/// An unlabelled sample ([`DataError::InvalidConfig`]), a sample that
/// cannot be read, or a file that cannot be written ([`DataError::Io`]).
pub fn write_class_folders(dataset: &dyn Dataset, out: &Path) -> Result<usize, DataError> {
    let io = |path: &Path, source| DataError::Io { path: path.to_path_buf(), source };
    for index in 0..dataset.len() {
        let sample = dataset.load(index)?;
        let label = sample.label.ok_or_else(|| DataError::config("write_class_folders", format!("{} has no label", sample.name)))?;
        let class = dataset.classes().get(label).cloned().unwrap_or_else(|| label.to_string());
        let dir = out.join(class);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let path = dir.join(Path::new(&sample.name).with_extension("png").file_name().unwrap_or_default());
        let (w, h, c) = (sample.img.width() as u32, sample.img.height() as u32, sample.img.channels());
        let color = if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
        image::save_buffer(&path, sample.img.data(), w, h, color).map_err(|e| io(&path, std::io::Error::other(e)))?;
    }
    Ok(dataset.len())
}
