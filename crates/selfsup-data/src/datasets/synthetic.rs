//! `SyntheticDataset` (ours, no MMSelfSup counterpart): procedural, deterministic images with
//! a class structure, for tests, smoke runs and benchmarks without any download.
//!
//! Each class is a family of images defined only by the class index and `num_classes` (so a
//! training set and a validation set built with different seeds share their classes):
//! - a pattern kind (`class % 3`): oriented sinusoidal grating, concentric rings, or
//!   oriented checkerboard;
//! - a spatial frequency (2 to 8 cycles per image) and an orientation, both spread with the
//!   golden ratio so neighbouring classes differ;
//! - a palette: a saturated foreground colour whose hue is evenly spaced among classes and a
//!   dark complementary background.
//!
//! Each sample (`label = index % num_classes`) draws, from a ChaCha stream keyed by
//! `(seed, index)`, a random phase, an orientation jitter of ±0.15 rad, a frequency factor in
//! [0.85, 1.15], the position and size of the Gaussian window in which the pattern shows, a
//! brightness gain in [0.85, 1.15] and Gaussian pixel noise (σ = 6 levels), so kNN / linear
//! evaluation have a signal that augmentations do not trivially destroy.

use std::f64::consts::PI;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Dataset, RawSample};
use crate::imaging::Image;
use crate::transforms::TransformConfig;
use crate::DataError;

/// Configuration of [`SyntheticDataset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticDatasetConfig {
    /// Number of samples. Default 512.
    pub num_samples: usize,
    /// Side of the square images, in pixels. Default 64.
    pub img_size: usize,
    /// Number of classes. Default 8.
    pub num_classes: usize,
    /// Seed of the per-sample draws (not of the class definitions). Default 0.
    pub seed: u64,
    /// The transform pipeline applied by the data loader. Default empty.
    pub pipeline: Vec<TransformConfig>,
    /// MMEngine option, accepted, no effect. Default `false`.
    pub test_mode: bool,
}

impl Default for SyntheticDatasetConfig {
    fn default() -> Self {
        Self { num_samples: 512, img_size: 64, num_classes: 8, seed: 0, pipeline: Vec::new(), test_mode: false }
    }
}

impl SyntheticDatasetConfig {
    /// Builds the dataset (nothing is rendered until [`Dataset::load`]).
    ///
    /// # Errors
    /// [`DataError::EmptyDataset`] for `num_samples == 0`, [`DataError::InvalidConfig`] for a
    /// zero `img_size` or `num_classes`.
    pub fn build(&self) -> Result<SyntheticDataset, DataError> {
        if self.num_samples == 0 {
            return Err(DataError::EmptyDataset {
                dataset: "SyntheticDataset",
                path: "<synthetic>".into(),
                reason: "`num_samples` is 0".into(),
            });
        }
        if self.img_size == 0 || self.num_classes == 0 {
            return Err(DataError::config(
                "SyntheticDataset",
                format!("`img_size` and `num_classes` must be positive, got {} and {}", self.img_size, self.num_classes),
            ));
        }
        let styles = (0..self.num_classes).map(|c| ClassStyle::new(c, self.num_classes)).collect();
        Ok(SyntheticDataset { cfg: self.clone(), styles })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Grating,
    Rings,
    Checker,
}

#[derive(Debug, Clone)]
struct ClassStyle {
    pattern: Pattern,
    theta: f64,
    freq: f64,
    fg: [f64; 3],
    bg: [f64; 3],
}

fn frac(x: f64) -> f64 {
    x - x.floor()
}

/// HSV (all in [0, 1]) to RGB in [0, 255].
fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h6 = frac(h) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i as u32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r * 255.0, g * 255.0, b * 255.0]
}

impl ClassStyle {
    fn new(c: usize, k: usize) -> Self {
        const GOLDEN: f64 = 0.618_033_988_749_895;
        let hue = (c as f64 + 0.25) / k as f64;
        Self {
            pattern: match c % 3 {
                0 => Pattern::Grating,
                1 => Pattern::Rings,
                _ => Pattern::Checker,
            },
            theta: PI * frac(c as f64 * GOLDEN + 0.1),
            freq: 2.0 + 6.0 * frac(c as f64 * GOLDEN * GOLDEN + 0.3),
            fg: hsv(hue, 0.75, 0.95),
            bg: hsv(hue + 0.5, 0.45, 0.35),
        }
    }
}

/// Procedurally rendered images; see the module documentation.
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    cfg: SyntheticDatasetConfig,
    styles: Vec<ClassStyle>,
}

/// A standard normal draw (Box–Muller).
fn gaussian<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

impl SyntheticDataset {
    /// The label of sample `index`: `index % num_classes`.
    pub fn label_of(&self, index: usize) -> usize {
        index % self.cfg.num_classes
    }

    /// Renders sample `index` (deterministic in `(seed, index)`).
    pub fn render(&self, index: usize) -> Image {
        let label = self.label_of(index);
        let style = &self.styles[label];
        let n = self.cfg.img_size;
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.cfg.seed.to_le_bytes());
        key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
        key[16..24].copy_from_slice(b"synthds\0");
        let mut rng = ChaCha8Rng::from_seed(key);

        let phase = rng.random::<f64>() * 2.0 * PI;
        let theta = style.theta + (rng.random::<f64>() - 0.5) * 0.3;
        let freq = style.freq * (0.85 + 0.3 * rng.random::<f64>());
        let cx = 0.3 + 0.4 * rng.random::<f64>();
        let cy = 0.3 + 0.4 * rng.random::<f64>();
        let sigma = 0.2 + 0.2 * rng.random::<f64>();
        let gain = 0.85 + 0.3 * rng.random::<f64>();
        let (ct, st) = (theta.cos(), theta.sin());
        let tau = 2.0 * PI;

        let mut data = Vec::with_capacity(n * n * 3);
        for y in 0..n {
            let v = (y as f64 + 0.5) / n as f64;
            for x in 0..n {
                let u = (x as f64 + 0.5) / n as f64;
                let (du, dv) = (u - cx, v - cy);
                let r2 = du * du + dv * dv;
                let g = match style.pattern {
                    Pattern::Grating => 0.5 + 0.5 * (tau * freq * (u * ct + v * st) + phase).sin(),
                    Pattern::Rings => 0.5 + 0.5 * (tau * freq * r2.sqrt() + phase).sin(),
                    Pattern::Checker => {
                        let a = (tau * freq * 0.5 * (u * ct + v * st) + phase).sin();
                        let b = (tau * freq * 0.5 * (-u * st + v * ct)).sin();
                        0.5 + 0.5 * (a * b * 4.0).clamp(-1.0, 1.0)
                    }
                };
                let window = (-r2 / (2.0 * sigma * sigma)).exp();
                let mix = 0.25 + 0.75 * window;
                for ch in 0..3 {
                    let pattern = style.bg[ch] * (1.0 - g) + style.fg[ch] * g;
                    let value = (style.bg[ch] * (1.0 - mix) + pattern * mix) * gain + 6.0 * gaussian(&mut rng);
                    data.push(value.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Image::from_raw(n, n, 3, data).unwrap_or_else(|| Image::filled(n, n, &[0, 0, 0]))
    }
}

impl Dataset for SyntheticDataset {
    fn len(&self) -> usize {
        self.cfg.num_samples
    }

    fn load(&self, index: usize) -> Result<RawSample, DataError> {
        if index >= self.cfg.num_samples {
            return Err(DataError::IndexOutOfRange { index, len: self.cfg.num_samples });
        }
        let label = self.label_of(index);
        Ok(RawSample {
            img: self.render(index),
            label: Some(label),
            name: format!("synthetic/{label}/{index:06}"),
            index,
            clustering_label: None,
        })
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.cfg.num_classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(seed: u64) -> SyntheticDataset {
        SyntheticDatasetConfig { num_samples: 96, img_size: 16, num_classes: 4, seed, ..SyntheticDatasetConfig::default() }
            .build()
            .expect("valid config")
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = dataset(0);
        let b = dataset(0);
        let c = dataset(1);
        for i in [0, 5, 95] {
            let (sa, sb, sc) = (a.load(i).expect("load"), b.load(i).expect("load"), c.load(i).expect("load"));
            assert_eq!(sa, sb);
            assert_ne!(sa.img, sc.img);
            assert_eq!(sa.label, sc.label);
            assert_eq!((sa.img.width(), sa.img.height(), sa.img.channels()), (16, 16, 3));
        }
        assert!(a.load(96).is_err());
    }

    /// Nearest-class-mean classification on raw pixels of a fresh seed works far above chance:
    /// classes are separable.
    #[test]
    fn classes_are_separable() {
        let train = dataset(0);
        let test = dataset(7);
        let dim = 16 * 16 * 3;
        let mut means = vec![vec![0f64; dim]; 4];
        let mut counts = [0usize; 4];
        for i in 0..train.len() {
            let s = train.load(i).expect("load");
            let l = s.label.expect("labelled");
            counts[l] += 1;
            for (m, &v) in means[l].iter_mut().zip(s.img.data()) {
                *m += f64::from(v);
            }
        }
        for (m, &n) in means.iter_mut().zip(&counts) {
            m.iter_mut().for_each(|v| *v /= n as f64);
        }
        // Class means differ clearly.
        for a in 0..4 {
            for b in a + 1..4 {
                let d: f64 = means[a].iter().zip(&means[b]).map(|(x, y)| (x - y).abs()).sum::<f64>() / dim as f64;
                eprintln!("classes {a} and {b}: mean abs diff {d}");
                assert!(d > 8.0, "classes {a} and {b} mean abs diff {d}");
            }
        }
        let mut correct = 0;
        for i in 0..test.len() {
            let s = test.load(i).expect("load");
            let pred = (0..4)
                .min_by(|&a, &b| {
                    let da: f64 = means[a].iter().zip(s.img.data()).map(|(m, &v)| (m - f64::from(v)).powi(2)).sum();
                    let db: f64 = means[b].iter().zip(s.img.data()).map(|(m, &v)| (m - f64::from(v)).powi(2)).sum();
                    da.total_cmp(&db)
                })
                .expect("4 classes");
            correct += usize::from(Some(pred) == s.label);
        }
        eprintln!("nearest class mean: {correct}/{} correct", test.len());
        assert!(correct * 10 >= test.len() * 9, "{correct}/{} correct", test.len());
    }
}
