//! `CustomDataset`. Port of `mmcls.datasets.CustomDataset` (mmcls 1.0, with mmpretrain's
//! `with_label`): images from a folder, or listed in an annotation file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::base::{apply_indices, normalize_extensions, read_ann_file, resolve, scan_folder, Listing};
use super::{DataPrefix, Dataset, Indices, MetaInfo, RawSample, IMG_EXTENSIONS};
use crate::imaging::io::imread;
use crate::transforms::TransformConfig;
use crate::DataError;

/// Configuration of [`CustomDataset`] (and of `ImageNet`). Field names and defaults are
/// mmcls's / MMEngine's `BaseDataset`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomDatasetConfig {
    /// Root joined in front of relative `ann_file` and `data_prefix`. Default `''`.
    pub data_root: String,
    /// Image folder (`'train/'` or `{img_path = 'train/'}`), relative to `data_root`.
    /// Default `''` (the root itself).
    pub data_prefix: DataPrefix,
    /// Annotation file (lines `relative/path label` or `relative/path`), relative to
    /// `data_root`. Default `''`: scan the image folder instead.
    pub ann_file: String,
    /// Read labels (class sub-folders when scanning, the second column of the annotation
    /// file). Default `true`.
    pub with_label: bool,
    /// Extensions looked for when scanning. Default `['.jpg', '.jpeg', '.png']`
    /// (see [`IMG_EXTENSIONS`]).
    pub extensions: Vec<String>,
    /// Class names (`{classes = [...]}`); default: the folder names when scanning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metainfo: Option<MetaInfo>,
    /// The transform pipeline applied by the data loader. Default empty.
    pub pipeline: Vec<TransformConfig>,
    /// Keep only some samples (first `n`, or a list of indices). Default: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<Indices>,
    /// MMEngine option, accepted, no effect. Default `false`.
    pub test_mode: bool,
    /// MMEngine option, accepted, no effect. Default `false`.
    pub lazy_init: bool,
    /// MMEngine option, accepted, no effect. Default `true`.
    pub serialize_data: bool,
    /// MMEngine option, accepted, no effect (the loader skips unreadable samples). Default 1000.
    pub max_refetch: usize,
}

impl Default for CustomDatasetConfig {
    fn default() -> Self {
        Self {
            data_root: String::new(),
            data_prefix: DataPrefix::default(),
            ann_file: String::new(),
            with_label: true,
            extensions: IMG_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            metainfo: None,
            pipeline: Vec::new(),
            indices: None,
            test_mode: false,
            lazy_init: false,
            serialize_data: true,
            max_refetch: 1000,
        }
    }
}

impl CustomDatasetConfig {
    /// A dataset scanning `folder`, mmcls's defaults otherwise.
    pub fn folder(folder: impl Into<String>) -> Self {
        Self { data_prefix: DataPrefix::Path(folder.into()), ..Self::default() }
    }

    /// Builds the dataset; see [`DatasetConfig::build`](super::DatasetConfig::build) for path
    /// resolution.
    ///
    /// # Errors
    /// [`DataError::Io`] with the path, [`DataError::EmptyDataset`], or
    /// [`DataError::InvalidConfig`] (e.g. a label beyond `metainfo.classes`).
    pub fn build(&self, base_dir: Option<&Path>) -> Result<CustomDataset, DataError> {
        CustomDataset::from_config("CustomDataset", self, base_dir, None)
    }
}

/// Images from a folder or an annotation file; see [`CustomDatasetConfig`].
#[derive(Debug, Clone)]
pub struct CustomDataset {
    kind: &'static str,
    img_prefix: PathBuf,
    samples: Vec<(String, Option<usize>)>,
    /// Exact relative paths of the names that are not valid UTF-8.
    exact: std::collections::HashMap<String, PathBuf>,
    classes: Vec<String>,
    num_classes: Option<usize>,
}

impl CustomDataset {
    /// Shared by `CustomDataset` and `ImageNet`: `ann_num_classes` is the class count assumed
    /// for an annotation file without `metainfo.classes` (`None`: largest label + 1).
    pub(crate) fn from_config(
        kind: &'static str,
        cfg: &CustomDatasetConfig,
        base_dir: Option<&Path>,
        ann_num_classes: Option<usize>,
    ) -> Result<Self, DataError> {
        let exts = normalize_extensions(kind, &cfg.extensions)?;
        let img_prefix = resolve(base_dir, &cfg.data_root, cfg.data_prefix.img_path());
        let (listing, source, from_ann) = if cfg.ann_file.is_empty() {
            (scan_folder(kind, &img_prefix, &exts, cfg.with_label)?, img_prefix.clone(), false)
        } else {
            let ann = resolve(base_dir, &cfg.data_root, &cfg.ann_file);
            (read_ann_file(kind, &ann, cfg.with_label)?, ann, true)
        };
        let Listing { samples, classes, exact } = listing;
        let classes = match cfg.metainfo.as_ref().and_then(|m| m.classes.clone()) {
            Some(c) => c,
            None => classes,
        };
        let max_label = samples.iter().filter_map(|s| s.1).max();
        let num_classes = if !classes.is_empty() {
            Some(classes.len())
        } else if from_ann {
            match (ann_num_classes, max_label) {
                (Some(n), Some(_)) => Some(n),
                (_, m) => m.map(|m| m + 1),
            }
        } else {
            None
        };
        if let (Some(n), Some(m)) = (num_classes, max_label) {
            if m >= n {
                let name = samples.iter().find(|s| s.1 == Some(m)).map_or("", |s| s.0.as_str());
                return Err(DataError::config(
                    kind,
                    format!("`{}`: sample `{name}` has label {m} but the dataset has {n} classes", source.display()),
                ));
            }
        }
        let samples = apply_indices(kind, samples, &cfg.indices)?;
        if samples.is_empty() {
            return Err(DataError::EmptyDataset {
                dataset: kind,
                path: source,
                reason: format!("`indices = {:?}` selects no sample", cfg.indices),
            });
        }
        Ok(Self { kind, img_prefix, samples, exact, classes, num_classes })
    }

    /// The folder image names are relative to.
    pub fn img_prefix(&self) -> &Path {
        &self.img_prefix
    }

    /// The relative name and label of every sample, in dataset order.
    pub fn samples(&self) -> &[(String, Option<usize>)] {
        &self.samples
    }

    /// `CustomDataset` or `ImageNet`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl Dataset for CustomDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn load(&self, index: usize) -> Result<RawSample, DataError> {
        let (name, label) = self.samples.get(index).ok_or(DataError::IndexOutOfRange { index, len: self.samples.len() })?;
        let img = match self.exact.get(name) {
            Some(path) => imread(&self.img_prefix.join(path))?,
            None => imread(&self.img_prefix.join(name))?,
        };
        Ok(RawSample { img, label: *label, name: name.clone(), index, clustering_label: None })
    }

    fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}
