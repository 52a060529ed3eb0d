//! Port of `DINOMultiCrop` (mmpretrain 1.2.0,
//! `projects/dino/dataset/transform/processing.py`): two global crops and
//! `local_crops_number` local crops of one image, each through its own
//! pipeline, built here as a [`MultiView`] of three groups:
//!
//! - global 1: `RandomResizedCrop(224, global_crops_scale, bicubic)`, flip
//!   and colour (`RandomFlip(0.5)`, `ColorJitter(0.4, 0.4, 0.2, 0.1)` with
//!   probability 0.8, `RandomGrayscale(0.2)` keeping three channels), blur;
//! - global 2: the same, then `Solarize(thr=128)` with probability 0.2;
//! - local: `RandomResizedCrop(96, local_crops_scale, bicubic)`, flip and
//!   colour, blur.
//!
//! mmpretrain's blur is its `GaussianBlur(radius=random.uniform(0.1, 2.0),
//! prob=1.0)`, whose radius is drawn once, when the transform is built, and
//! then used for every image of the run; here it is
//! `RandomGaussianBlur(sigma_min=0.1, sigma_max=2.0, prob=1.0)`, a sigma
//! drawn per image from the same range, which is what DINO's recipe
//! describes. `global_crops_size` and `local_crops_size` (224 and 96, fixed
//! in mmpretrain) let small demos shrink the crops.
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    transforms::{MultiView, MultiViewConfig},
    DataError,
};

/// `dict(type='DINOMultiCrop', global_crops_scale, local_crops_scale, local_crops_number)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoMultiCropConfig {
    /// Area range of the global crops (`(0.4, 1.0)` in DINO's config).
    pub global_crops_scale: [f64; 2],
    /// Area range of the local crops (`(0.05, 0.4)`).
    pub local_crops_scale: [f64; 2],
    /// Local crops per image (8).
    pub local_crops_number: usize,
    /// Side of the global crops; 224 as mmpretrain.
    #[serde(default = "s224")]
    pub global_crops_size: usize,
    /// Side of the local crops; 96 as mmpretrain.
    #[serde(default = "s96")]
    pub local_crops_size: usize,
}

fn s224() -> usize {
    224
}

fn s96() -> usize {
    96
}

impl DinoMultiCropConfig {
    /// The equivalent [`MultiViewConfig`]: views `[1, 1, local_crops_number]`.
    pub fn multi_view(&self) -> MultiViewConfig {
        let flip_and_color = || {
            vec![
                json!({"type": "RandomFlip", "prob": 0.5, "direction": "horizontal"}),
                json!({"type": "RandomApply", "prob": 0.8,
                       "transforms": [{"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}]}),
                json!({"type": "RandomGrayscale", "prob": 0.2, "keep_channels": true, "channel_weights": [0.114, 0.587, 0.2989]}),
            ]
        };
        let group = |size: usize, scale: [f64; 2], solarize: bool| {
            let mut t = vec![json!({"type": "RandomResizedCrop", "size": size, "scale": scale, "interpolation": "bicubic"})];
            t.extend(flip_and_color());
            t.push(json!({"type": "RandomGaussianBlur", "sigma_min": 0.1, "sigma_max": 2.0, "prob": 1.0}));
            if solarize {
                t.push(json!({"type": "RandomSolarize", "threshold": 128, "prob": 0.2}));
            }
            serde_json::Value::Array(t)
        };
        let value = json!({
            "num_views": [1, 1, self.local_crops_number],
            "transforms": [
                group(self.global_crops_size, self.global_crops_scale, false),
                group(self.global_crops_size, self.global_crops_scale, true),
                group(self.local_crops_size, self.local_crops_scale, false),
            ],
        });
        serde_json::from_value(value).expect("DINOMultiCrop's pipelines are valid transform configs")
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for empty sizes or scales outside `(0, 1]`.
    pub fn init(&self) -> Result<MultiView, DataError> {
        for (key, [lo, hi]) in [("global_crops_scale", self.global_crops_scale), ("local_crops_scale", self.local_crops_scale)] {
            if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                return Err(DataError::config("DINOMultiCrop", format!("`{key}` must satisfy 0 < min <= max <= 1, got [{lo}, {hi}]")));
            }
        }
        if self.global_crops_size == 0 || self.local_crops_size == 0 {
            return Err(DataError::config("DINOMultiCrop", "crop sizes must be positive"));
        }
        self.multi_view().init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_come_in_three_groups_of_the_configured_sizes() {
        let cfg: DinoMultiCropConfig = serde_json::from_value(json!({
            "global_crops_scale": [0.4, 1.0], "local_crops_scale": [0.05, 0.4], "local_crops_number": 3,
            "global_crops_size": 32, "local_crops_size": 16,
        }))
        .unwrap();
        let mv = cfg.init().unwrap();
        assert_eq!(mv.num_views(), 5);
        assert_eq!(mv.pipelines().len(), 3);
        let names = |i: usize| mv.pipelines()[i].transforms().iter().map(|t| t.name()).collect::<Vec<_>>();
        assert_eq!(names(0), ["RandomResizedCrop", "RandomFlip", "RandomApply", "RandomGrayscale", "RandomGaussianBlur"]);
        assert_eq!(names(1).last(), Some(&"RandomSolarize"));
        assert_eq!(names(2), names(0));
        let bad = DinoMultiCropConfig { local_crops_scale: [0.5, 0.4], ..cfg };
        assert!(bad.init().is_err());
    }
}
