//! `RandomErasing`. Port of mmcls 1.0.0rc6's `RandomErasing`
//! (`mmcls/datasets/transforms/processing.py`), the fine-tuning recipes'
//! erasing: with probability `erase_prob`, a box of random area
//! (`[min_area_ratio, max_area_ratio]` of the image) and aspect ratio
//! (log-uniform in `aspect_range`) is filled with a constant colour
//! (`mode='const'`), uniform noise (`mode='rand'`), or, with `fill_std`,
//! per-pixel normal noise around `fill_color`.
//!
//! mmcls works on BGR images, so `fill_color` and `fill_std` are in BGR
//! order (MMSelfSup's configs write `[103.53, 116.28, 123.675]`); this
//! port's images are RGB and the colours are applied channel-reversed,
//! which gives the same pixels. Noise is drawn in mmcls's order (rows,
//! columns, then B, G, R).
use serde::{Deserialize, Serialize};

use super::py_round;
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// A number for all three channels, or three numbers (BGR).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelValues {
    /// The same value for every channel.
    One(f64),
    /// B, G, R.
    Three([f64; 3]),
}

impl ChannelValues {
    fn bgr(self) -> [f64; 3] {
        match self {
            ChannelValues::One(v) => [v; 3],
            ChannelValues::Three(v) => v,
        }
    }
}

/// `aspect_range`: a float `a` (meaning `(min(a, 1/a), max(a, 1/a))`) or a pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AspectRange {
    /// One ratio and its inverse.
    One(f64),
    /// `(min, max)`.
    Pair([f64; 2]),
}

/// Configuration of [`RandomErasing`]. Field names and defaults are mmcls's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomErasingConfig {
    /// Probability of erasing. Default 0.5.
    #[serde(default = "half")]
    pub erase_prob: f64,
    /// Smallest box area as a fraction of the image. Default 0.02.
    #[serde(default = "min_area")]
    pub min_area_ratio: f64,
    /// Largest box area as a fraction of the image. Default 0.4.
    #[serde(default = "max_area")]
    pub max_area_ratio: f64,
    /// Range of the box's height / width. Default `(3/10, 10/3)`.
    #[serde(default = "aspect")]
    pub aspect_range: AspectRange,
    /// `const` (the default) or `rand`.
    #[serde(default = "constant")]
    pub mode: String,
    /// The fill (BGR), or the noise's mean with `fill_std`. Default 128.
    #[serde(default = "grey")]
    pub fill_color: ChannelValues,
    /// With `mode='rand'`: the per-channel standard deviation (BGR) of
    /// normal noise around `fill_color`; without, uniform noise in [0, 256).
    #[serde(default)]
    pub fill_std: Option<ChannelValues>,
}

fn half() -> f64 {
    0.5
}
fn min_area() -> f64 {
    0.02
}
fn max_area() -> f64 {
    0.4
}
fn aspect() -> AspectRange {
    AspectRange::Pair([3.0 / 10.0, 10.0 / 3.0])
}
fn constant() -> String {
    "const".into()
}
fn grey() -> ChannelValues {
    ChannelValues::One(128.0)
}

impl RandomErasingConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a probability or area ratio outside `[0, 1]`, a
    /// minimum above the maximum, a non-positive aspect ratio, or an unknown mode.
    pub fn init(&self) -> Result<RandomErasing, DataError> {
        const NAME: &str = "RandomErasing";
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !unit(self.erase_prob) || !unit(self.min_area_ratio) || !unit(self.max_area_ratio) {
            return Err(DataError::config(NAME, "`erase_prob`, `min_area_ratio` and `max_area_ratio` must be in [0, 1]"));
        }
        if self.min_area_ratio > self.max_area_ratio {
            return Err(DataError::config(NAME, "`min_area_ratio` must not exceed `max_area_ratio`"));
        }
        let aspect = match self.aspect_range {
            AspectRange::One(a) => [a.min(1.0 / a), a.max(1.0 / a)],
            AspectRange::Pair(p) => p,
        };
        if !(aspect[0] > 0.0 && aspect[0] <= aspect[1]) {
            return Err(DataError::config(NAME, format!("`aspect_range` must be positive with min <= max, got {aspect:?}")));
        }
        let fill = match (self.mode.as_str(), self.fill_std) {
            ("const", _) => Fill::Const(self.fill_color.bgr()),
            ("rand", None) => Fill::Uniform,
            ("rand", Some(std)) => Fill::Normal(self.fill_color.bgr(), std.bgr()),
            (other, _) => return Err(DataError::config(NAME, format!("`mode` must be \"const\" or \"rand\", got {other:?}"))),
        };
        // mmcls takes the logs in float32.
        let log_aspect = [f64::from((aspect[0] as f32).ln()), f64::from((aspect[1] as f32).ln())];
        Ok(RandomErasing { erase_prob: self.erase_prob, area: [self.min_area_ratio, self.max_area_ratio], log_aspect, fill })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Fill {
    Const([f64; 3]),
    Uniform,
    Normal([f64; 3], [f64; 3]),
}

/// Erases a random box; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomErasing {
    erase_prob: f64,
    area: [f64; 2],
    log_aspect: [f64; 2],
    fill: Fill,
}

impl RandomErasing {
    /// The box `(top, left, h, w)` for an `img_h × img_w` image, or `None`
    /// when this image is not erased; mmcls's draws in its order.
    pub fn sample_box<R: RandomSource + ?Sized>(&self, img_h: usize, img_w: usize, rng: &mut R) -> Option<[usize; 4]> {
        if rng.rand() > self.erase_prob {
            return None;
        }
        let aspect = rng.uniform(self.log_aspect[0], self.log_aspect[1]).exp();
        let area = (img_h * img_w) as f64 * rng.uniform(self.area[0], self.area[1]);
        let h = py_round((area * aspect).sqrt()).min(img_h);
        let w = py_round((area / aspect).sqrt()).min(img_w);
        let top = if img_h > h { rng.randint(0, img_h - h) } else { 0 };
        let left = if img_w > w { rng.randint(0, img_w - w) } else { 0 };
        Some([top, left, h, w])
    }
}

impl ImageTransform for RandomErasing {
    const NAME: &'static str = "RandomErasing";

    fn apply<R: RandomSource + ?Sized>(&self, mut img: Image, rng: &mut R) -> Result<Image, DataError> {
        let (img_h, img_w, c) = (img.height(), img.width(), img.channels());
        let Some([top, left, h, w]) = self.sample_box(img_h, img_w, rng) else { return Ok(img) };
        if c != 3 {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!("needs a 3-channel image, got {c}"),
            });
        }
        let data = img.data_mut();
        for y in top..top + h {
            for x in left..left + w {
                let px = (y * img_w + x) * 3;
                // mmcls's channel k is B, G, R: this image's channel 2 − k.
                for k in 0..3 {
                    let v = match &self.fill {
                        Fill::Const(color) => color[k].clamp(0.0, 255.0) as u8,
                        Fill::Uniform => rng.uniform(0.0, 256.0).clamp(0.0, 255.0) as u8,
                        Fill::Normal(mean, std) => (rng.normal(mean[k], std[k]).trunc()).clamp(0.0, 255.0) as u8,
                    };
                    data[px + 2 - k] = v;
                }
            }
        }
        Ok(img)
    }
}
