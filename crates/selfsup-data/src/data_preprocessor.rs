//! The arithmetic of `mmselfsup.models.utils.SelfSupDataPreprocessor` (mmselfsup 1.0.0), on
//! plain buffers: optional channel flip, then `(x − mean) / std` per channel.
//!
//! # Channel order
//! MMSelfSup decodes images with OpenCV, so its pipelines hold **BGR** images, and its
//! configs set `bgr_to_rgb=True` with `mean=[123.675, 116.28, 103.53]` given in **RGB** order:
//! the model sees RGB. (mmengine flips the channels when either `bgr_to_rgb` or `rgb_to_bgr`
//! is set; both only reverse the channel axis.)
//!
//! This crate decodes **RGB** directly, so to give the model exactly what MMSelfSup gives it:
//! - `bgr_to_rgb = true` (or `rgb_to_bgr = true`): **no flip** here, the model gets RGB;
//! - both `false`: the channels **are flipped** here, the model gets BGR, as MMSelfSup's
//!   model would.
//!
//! `mean` and `std` always apply in the order the model sees.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// Configuration of `SelfSupDataPreprocessor` (mmengine `ImgDataPreprocessor` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfSupDataPreprocessorConfig {
    /// Per-channel mean (1 or 3 values, 0–255 scale), in the order the model sees; `None`
    /// disables normalisation. MMSelfSup configs: `[123.675, 116.28, 103.53]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel std (1 or 3 values); required with `mean`. MMSelfSup configs:
    /// `[58.395, 57.12, 57.375]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
    /// MMSelfSup input is BGR → flip to RGB. See the module documentation. Default `false`.
    pub bgr_to_rgb: bool,
    /// Flip the channels too (mmengine treats both flags alike). Default `false`.
    pub rgb_to_bgr: bool,
    /// Padding multiple: `SelfSupDataPreprocessor` ignores it; must be 1 (the default).
    pub pad_size_divisor: usize,
    /// Padding value (ignored, as in `SelfSupDataPreprocessor`). Default 0.
    pub pad_value: f64,
    /// Non-blocking host→device copies: accepted, no effect here. Default `false`.
    pub non_blocking: bool,
}

impl Default for SelfSupDataPreprocessorConfig {
    fn default() -> Self {
        Self {
            mean: None,
            std: None,
            bgr_to_rgb: false,
            rgb_to_bgr: false,
            pad_size_divisor: 1,
            pad_value: 0.0,
            non_blocking: false,
        }
    }
}

impl SelfSupDataPreprocessorConfig {
    /// The ImageNet settings every MMSelfSup config uses: RGB mean/std, `bgr_to_rgb = true`.
    pub fn imagenet() -> Self {
        Self {
            mean: Some(vec![123.675, 116.28, 103.53]),
            std: Some(vec![58.395, 57.12, 57.375]),
            bgr_to_rgb: true,
            ..Self::default()
        }
    }

    /// Checks the config.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when both flips are set, `mean` and `std` are not both
    /// given (or both absent), they have a length other than 1 or 3, a std is 0, or
    /// `pad_size_divisor != 1`.
    pub fn validate(&self) -> Result<(), DataError> {
        const NAME: &str = "SelfSupDataPreprocessor";
        if self.bgr_to_rgb && self.rgb_to_bgr {
            return Err(DataError::config(
                NAME,
                "`bgr_to_rgb` and `rgb_to_bgr` cannot be set to True at the same time",
            ));
        }
        match (&self.mean, &self.std) {
            (None, None) => {}
            (Some(m), Some(s)) => {
                if ![1, 3].contains(&m.len()) || ![1, 3].contains(&s.len()) {
                    return Err(DataError::config(
                        NAME,
                        format!("`mean` and `std` should have 1 or 3 values, got {m:?} and {s:?}"),
                    ));
                }
                if s.contains(&0.0) {
                    return Err(DataError::config(NAME, "`std` contains 0"));
                }
            }
            _ => {
                return Err(DataError::config(
                    NAME,
                    "`mean` and `std` should be both None or tuple",
                ))
            }
        }
        if self.pad_size_divisor != 1 {
            return Err(DataError::config(
                NAME,
                "`pad_size_divisor` other than 1 is not supported",
            ));
        }
        Ok(())
    }

    /// Whether this crate's RGB buffers must be flipped to match MMSelfSup (see the module
    /// documentation): `true` exactly when neither flag is set.
    pub fn flips_rgb_input(&self) -> bool {
        !(self.bgr_to_rgb || self.rgb_to_bgr)
    }

    /// Normalises an NCHW batch from the loader (RGB, 0–255) in place: channel flip when
    /// [`flips_rgb_input`](Self::flips_rgb_input), then `(x − mean[c]) / std[c]`.
    ///
    /// # Errors
    /// [`DataError::ShapeMismatch`] when `batch.len()` is not the product of `shape`, or the
    /// flip is needed and there are not 3 channels; errors of [`validate`](Self::validate).
    pub fn normalize_in_place(
        &self,
        batch: &mut [f32],
        shape: [usize; 4],
    ) -> Result<(), DataError> {
        self.validate()?;
        let [n, c, h, w] = shape;
        let plane = h * w;
        if n * c * plane != batch.len() {
            return Err(DataError::ShapeMismatch {
                len: batch.len(),
                shape: shape.to_vec(),
            });
        }
        let flip = self.flips_rgb_input();
        if flip && c != 3 {
            return Err(DataError::ShapeMismatch {
                len: batch.len(),
                shape: shape.to_vec(),
            });
        }
        if plane == 0 {
            return Ok(());
        }
        for img in batch.chunks_exact_mut(c * plane) {
            if flip {
                let (first, rest) = img.split_at_mut(plane);
                first.swap_with_slice(&mut rest[plane..2 * plane]);
            }
            if let (Some(mean), Some(std)) = (&self.mean, &self.std) {
                for (ch, chan) in img.chunks_exact_mut(plane).enumerate() {
                    let m = mean[if mean.len() == 1 {
                        0
                    } else {
                        ch.min(mean.len() - 1)
                    }] as f32;
                    let s = std[if std.len() == 1 {
                        0
                    } else {
                        ch.min(std.len() - 1)
                    }] as f32;
                    chan.iter_mut().for_each(|v| *v = (*v - m) / s);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_settings_keep_rgb_and_normalise() {
        let cfg = SelfSupDataPreprocessorConfig::imagenet();
        // One 1x1 RGB pixel equal to the mean plus one std.
        let mut x = vec![123.675 + 58.395, 116.28, 103.53 - 57.375];
        cfg.normalize_in_place(&mut x, [1, 3, 1, 1]).expect("valid");
        for (got, want) in x.iter().zip([1.0, 0.0, -1.0]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn no_flag_means_the_model_sees_bgr() {
        let cfg = SelfSupDataPreprocessorConfig::default();
        // Two pixels per channel: R = [1, 2], G = [3, 4], B = [5, 6].
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        cfg.normalize_in_place(&mut x, [1, 3, 1, 2]).expect("valid");
        assert_eq!(x, vec![5.0, 6.0, 3.0, 4.0, 1.0, 2.0]);
        let cfg = SelfSupDataPreprocessorConfig {
            rgb_to_bgr: true,
            ..SelfSupDataPreprocessorConfig::default()
        };
        let mut y = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        cfg.normalize_in_place(&mut y, [1, 3, 1, 2]).expect("valid");
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn bad_configs_and_shapes_are_rejected() {
        let both = SelfSupDataPreprocessorConfig {
            bgr_to_rgb: true,
            rgb_to_bgr: true,
            ..SelfSupDataPreprocessorConfig::default()
        };
        assert!(both.validate().is_err());
        let mean_only = SelfSupDataPreprocessorConfig {
            mean: Some(vec![1.0]),
            ..SelfSupDataPreprocessorConfig::default()
        };
        assert!(mean_only.validate().is_err());
        let mut x = vec![0.0; 5];
        assert!(SelfSupDataPreprocessorConfig::imagenet()
            .normalize_in_place(&mut x, [1, 3, 1, 2])
            .is_err());
    }
}
