//! `ImageNet`. Port of `mmcls.datasets.ImageNet` (mmcls 1.0): a
//! [`CustomDataset`] whose metainfo is ImageNet-1k's 1000 classes.
//!
//! MMSelfSup configs use it as `type='mmcls.ImageNet'` with `ann_file='meta/train.txt'`
//! (lines `n01440764/n01440764_10026.JPEG 0`) and `data_prefix=dict(img_path='train/')`.
//! With an annotation file and no `metainfo.classes`, the dataset has 1000 classes; when
//! scanning a folder, the class sub-folders define the classes (as for `CustomDataset`).

use std::path::Path;

use super::{CustomDataset, CustomDatasetConfig};
use crate::DataError;

/// Number of ImageNet-1k classes.
pub const IMAGENET_NUM_CLASSES: usize = 1000;

/// Builds an `ImageNet` dataset from its config.
///
/// # Errors
/// As [`CustomDatasetConfig::build`].
pub fn build(cfg: &CustomDatasetConfig, base_dir: Option<&Path>) -> Result<CustomDataset, DataError> {
    CustomDataset::from_config("ImageNet", cfg, base_dir, Some(IMAGENET_NUM_CLASSES))
}
