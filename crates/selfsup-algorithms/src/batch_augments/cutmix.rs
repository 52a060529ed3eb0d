//! Port of mmcls's `CutMix` (`mmcls/models/utils/batch_augments/cutmix.py`,
//! 1.0.0rc6): a box of every image replaced by the same box of another
//! sample, the scores mixed by the box's share.
//!
//! `λ ~ Beta(α, α)` (the draw `cutmix_lambda`) sets the box's sides,
//! `int(h·√(1 − λ))` by `int(w·√(1 − λ))`, centred at a uniform row and
//! column (the draws `cutmix_cy`, `cutmix_cx`) and clipped to the image;
//! with `cutmix_minmax = [lo, hi]` the sides are uniform in
//! `[int(h·lo), int(h·hi))` instead (draws `cutmix_cut_h`, `cutmix_cut_w`)
//! and the corner uniform where the box fits (`cutmix_yl`, `cutmix_xl`).
//! With `correct_lam` (or `cutmix_minmax`) `λ` becomes one minus the
//! clipped box's share of the image. The partner is a random permutation
//! of the batch (the draw `cutmix_index`).
use burn::tensor::{backend::Backend, Tensor, TensorData};
use selfsup_core::Draws;
use serde::{Deserialize, Serialize};

use super::mixup::{mix_scores, permutation};

/// `dict(type='CutMix', alpha, cutmix_minmax=None, correct_lam=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutMixConfig {
    /// `α` of the `Beta(α, α)` ratio.
    pub alpha: f64,
    /// The box sides' range as fractions of the image, instead of `λ`.
    #[serde(default)]
    pub cutmix_minmax: Option<[f64; 2]>,
    /// Recompute `λ` from the clipped box. Default `true`.
    #[serde(default = "yes")]
    pub correct_lam: bool,
}

fn yes() -> bool {
    true
}

/// `[y_low, y_high, x_low, x_high]`, end-exclusive.
pub type CutBox = [usize; 4];

impl CutMixConfig {
    /// Checks the fields; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(("alpha", format!("must be positive, got {}", self.alpha)));
        }
        if let Some([lo, hi]) = self.cutmix_minmax {
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                return Err(("cutmix_minmax", format!("needs 0 <= min < max <= 1, got [{lo}, {hi}]")));
            }
        }
        Ok(())
    }

    /// The box for an `h × w` image and the ratio `λ` the scores take.
    pub fn bbox(&self, h: usize, w: usize, lam: f64, draws: &mut Draws) -> (CutBox, f64) {
        let randint =
            |draws: &mut Draws, name: &str, lo: usize, hi: usize| lo + draws.integers(name, 1, hi.saturating_sub(lo).max(1))[0] as usize;
        let b = match self.cutmix_minmax {
            Some([lo, hi]) => {
                let cut_h = randint(draws, "cutmix_cut_h", (h as f64 * lo) as usize, (h as f64 * hi) as usize);
                let cut_w = randint(draws, "cutmix_cut_w", (w as f64 * lo) as usize, (w as f64 * hi) as usize);
                let yl = randint(draws, "cutmix_yl", 0, h - cut_h);
                let xl = randint(draws, "cutmix_xl", 0, w - cut_w);
                [yl, yl + cut_h, xl, xl + cut_w]
            }
            None => {
                let ratio = (1.0 - lam).sqrt();
                let (cut_h, cut_w) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
                let cy = randint(draws, "cutmix_cy", 0, h) as i64;
                let cx = randint(draws, "cutmix_cx", 0, w) as i64;
                let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
                let (hh, hw) = ((cut_h / 2) as i64, (cut_w / 2) as i64);
                [clip(cy - hh, h), clip(cy + hh, h), clip(cx - hw, w), clip(cx + hw, w)]
            }
        };
        let lam = if self.correct_lam || self.cutmix_minmax.is_some() {
            1.0 - ((b[1] - b[0]) * (b[3] - b[2])) as f64 / (h * w) as f64
        } else {
            lam
        };
        (b, lam)
    }

    /// Mixes a batch and its `[n, classes]` scores.
    pub fn mix<B: Backend>(&self, x: Tensor<B, 4>, scores: Tensor<B, 2>, draws: &mut Draws) -> (Tensor<B, 4>, Tensor<B, 2>) {
        let [n, _, h, w] = x.dims();
        let lam = draws.beta("cutmix_lambda", self.alpha, self.alpha);
        let device = x.device();
        let index = permutation::<B>(draws, "cutmix_index", n, &device);
        let ([y0, y1, x0, x1], lam) = self.bbox(h, w, lam, draws);
        // The box as a 0/1 mask: x·(1 − m) + x[perm]·m copies the partner's
        // pixels exactly.
        let mask: Vec<f32> = (0..h * w).map(|i| f32::from(u8::from((y0..y1).contains(&(i / w)) && (x0..x1).contains(&(i % w))))).collect();
        let m = Tensor::<B, 4>::from_data(TensorData::new(mask, [1, 1, h, w]), &device);
        let mixed = x.clone() * m.clone().neg().add_scalar(1.0) + x.select(0, index.clone()) * m;
        (mixed, mix_scores(scores, lam, index))
    }
}
