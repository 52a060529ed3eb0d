//! `BEiTMaskGenerator` and `SimMIMMaskGenerator`. Ports of
//! `mmselfsup.datasets.transforms.BEiTMaskGenerator` and `SimMIMMaskGenerator` (mmselfsup
//! 1.0.0, `datasets/transforms/processing.py`).
//!
//! Both add `results['mask']`, a `[h, w]` array of 0/1 (1 = masked) that
//! `PackSelfSupInputs(algorithm_keys=['mask'])` packs as `data_sample.mask.value` (here
//! [`Sample::mask`](crate::Sample::mask)). Neither looks at the image.
//!
//! Draws, in the reference's order (so tests can replay the reference's own draws):
//! - BEiT: per attempt `uniform(min_num_patches, max)` (Python's `random.uniform`),
//!   `uniform(ln min_aspect, ln max_aspect)`, then, for a block that fits,
//!   `randint(0, h - bh + 1)` and `randint(0, w - bw + 1)` (Python's inclusive
//!   `random.randint(0, h - bh)`);
//! - SimMIM: NumPy's `permutation(n)`, i.e. its Fisher–Yates shuffle of `0..n`: for
//!   `i = n-1, ..., 1`, `j = randint(0, i + 1)`, swap.

use serde::{Deserialize, Serialize};

use super::{py_round, SizeSpec};
use crate::transforms::{PackedArray, RandomSource, Results};
use crate::DataError;

/// Configuration of [`BeitMaskGenerator`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeitMaskGeneratorConfig {
    /// The patch grid: an integer for a square, or `[h, w]`. Required.
    pub input_size: SizeSpec,
    /// Number of patches masked in total. Required.
    pub num_masking_patches: usize,
    /// Smallest block area drawn. Default 4.
    #[serde(default = "default_min_num_patches")]
    pub min_num_patches: usize,
    /// Largest number of new patches one block may mask. Default `None`:
    /// `num_masking_patches`.
    #[serde(default)]
    pub max_num_patches: Option<usize>,
    /// Smallest block aspect ratio (height / width). Default 0.3.
    #[serde(default = "default_min_aspect")]
    pub min_aspect: f64,
    /// Largest block aspect ratio. Default `None`: `1 / min_aspect`.
    #[serde(default)]
    pub max_aspect: Option<f64>,
}

fn default_min_num_patches() -> usize {
    4
}

fn default_min_aspect() -> f64 {
    0.3
}

impl BeitMaskGeneratorConfig {
    /// MMSelfSup's defaults with the given grid and mask size.
    pub fn new(input_size: impl Into<SizeSpec>, num_masking_patches: usize) -> Self {
        Self {
            input_size: input_size.into(),
            num_masking_patches,
            min_num_patches: default_min_num_patches(),
            max_num_patches: None,
            min_aspect: default_min_aspect(),
            max_aspect: None,
        }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when the mask cannot be completed (more masked patches
    /// than the grid has, a grid side below 2 — blocks must be strictly smaller than the
    /// grid —, `max_num_patches` 0) or an aspect ratio is not positive.
    pub fn init(&self) -> Result<BeitMaskGenerator, DataError> {
        let name = BeitMaskGenerator::NAME;
        let [height, width] = self.input_size.pair();
        let max_num_patches = self.max_num_patches.unwrap_or(self.num_masking_patches);
        if self.num_masking_patches > height * width {
            return Err(DataError::config(
                name,
                format!("num_masking_patches {} exceeds the {height}x{width} grid", self.num_masking_patches),
            ));
        }
        if self.num_masking_patches > 0 && (height < 2 || width < 2 || max_num_patches == 0) {
            return Err(DataError::config(
                name,
                format!(
                    "cannot mask {} patches of a {height}x{width} grid with blocks of at most \
                     {max_num_patches} (blocks are strictly smaller than the grid)",
                    self.num_masking_patches
                ),
            ));
        }
        // Python's `max_aspect or 1 / min_aspect`: 0 counts as unset.
        let max_aspect = match self.max_aspect {
            Some(a) if a != 0.0 => a,
            _ => 1.0 / self.min_aspect,
        };
        if !(self.min_aspect > 0.0 && max_aspect > 0.0 && max_aspect.is_finite()) {
            return Err(DataError::config(
                name,
                format!("aspect ratios must be positive, got min_aspect {} and max_aspect {max_aspect}", self.min_aspect),
            ));
        }
        Ok(BeitMaskGenerator {
            height,
            width,
            num_masking_patches: self.num_masking_patches,
            min_num_patches: self.min_num_patches,
            max_num_patches,
            log_aspect_ratio: [self.min_aspect.ln(), max_aspect.ln()],
        })
    }
}

/// One block placed by [`BeitMaskGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskBlock {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Patches it newly masked (the block minus its overlap with earlier blocks).
    pub added: usize,
}

/// A BEiT mask and the blocks that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeitMask {
    /// Row-major `height × width` values, 1 = masked.
    pub mask: Vec<u8>,
    /// The blocks, in the order they were placed.
    pub blocks: Vec<MaskBlock>,
}

/// BEiT's block-wise masking: rectangles of random area and aspect ratio are added until
/// exactly `num_masking_patches` patches are masked.
#[derive(Debug, Clone, PartialEq)]
pub struct BeitMaskGenerator {
    height: usize,
    width: usize,
    num_masking_patches: usize,
    min_num_patches: usize,
    max_num_patches: usize,
    log_aspect_ratio: [f64; 2],
}

/// Rounds of ten block attempts in a row that may mask nothing before the generator gives
/// up. MMSelfSup loops forever; valid configs never come near this.
const MAX_ROUNDS_WITHOUT_PROGRESS: usize = 100_000;

impl BeitMaskGenerator {
    /// The registry name.
    pub const NAME: &'static str = "BEiTMaskGenerator";

    /// The grid `(height, width)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Up to ten attempts (`_mask` in the reference) at one block adding between 1 and
    /// `max_mask_patches` patches; returns the block placed, if any.
    fn place_block<R: RandomSource + ?Sized>(&self, mask: &mut [u8], max_mask_patches: usize, rng: &mut R) -> Option<MaskBlock> {
        for _ in 0..10 {
            let target_area = rng.uniform(self.min_num_patches as f64, max_mask_patches as f64);
            let aspect_ratio = rng.uniform(self.log_aspect_ratio[0], self.log_aspect_ratio[1]).exp();
            let h = py_round((target_area * aspect_ratio).sqrt());
            let w = py_round((target_area / aspect_ratio).sqrt());
            if w < self.width && h < self.height {
                let top = rng.randint(0, self.height - h + 1);
                let left = rng.randint(0, self.width - w + 1);
                let rows = top..top + h;
                let masked: usize = rows
                    .clone()
                    .map(|i| mask[i * self.width + left..i * self.width + left + w].iter().map(|&m| usize::from(m)).sum::<usize>())
                    .sum();
                let added = h * w - masked;
                if 0 < added && added <= max_mask_patches {
                    for i in rows {
                        mask[i * self.width + left..i * self.width + left + w].fill(1);
                    }
                    return Some(MaskBlock { top, left, height: h, width: w, added });
                }
            }
        }
        None
    }

    /// Draws a mask.
    ///
    /// # Errors
    /// [`DataError::Transform`] if no block could be placed for a very long time (a grid
    /// where the remaining patches cannot be reached; the reference would hang).
    pub fn generate<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Result<BeitMask, DataError> {
        let mut mask = vec![0u8; self.height * self.width];
        let mut blocks = Vec::new();
        let mut count = 0;
        let mut idle = 0;
        while count != self.num_masking_patches {
            let max_mask_patches = (self.num_masking_patches - count).min(self.max_num_patches);
            match self.place_block(&mut mask, max_mask_patches, rng) {
                Some(b) => {
                    count += b.added;
                    blocks.push(b);
                    idle = 0;
                }
                None => {
                    idle += 1;
                    if idle >= MAX_ROUNDS_WITHOUT_PROGRESS {
                        return Err(DataError::Transform {
                            transform: Self::NAME,
                            name: String::new(),
                            message: format!(
                                "no block fits after {idle} rounds with {count} of {} patches \
                                 masked",
                                self.num_masking_patches
                            ),
                        });
                    }
                }
            }
        }
        Ok(BeitMask { mask, blocks })
    }

    /// Adds `mask` (`[height, width]`) to `results`.
    ///
    /// # Errors
    /// See [`BeitMaskGenerator::generate`].
    pub fn transform<R: RandomSource + ?Sized>(&self, mut results: Results, rng: &mut R) -> Result<Results, DataError> {
        let m = self.generate(rng)?;
        results.mask = Some(mask_array(self.height, self.width, &m.mask));
        Ok(results)
    }
}

fn mask_array(height: usize, width: usize, mask: &[u8]) -> PackedArray {
    PackedArray { shape: vec![height, width], data: crate::transforms::ArrayData::I64(mask.iter().map(|&m| i64::from(m)).collect()) }
}

/// Configuration of [`SimMimMaskGenerator`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimMimMaskGeneratorConfig {
    /// Image side in pixels. Default 192.
    pub input_size: usize,
    /// Side of one masked block in pixels. Default 32.
    pub mask_patch_size: usize,
    /// Side of one model token (patch) in pixels. Default 4.
    pub model_patch_size: usize,
    /// Fraction of blocks masked (rounded up). Default 0.6.
    pub mask_ratio: f64,
}

impl Default for SimMimMaskGeneratorConfig {
    fn default() -> Self {
        Self { input_size: 192, mask_patch_size: 32, model_patch_size: 4, mask_ratio: 0.6 }
    }
}

impl SimMimMaskGeneratorConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when the sizes do not divide each other (the reference's
    /// assertions) or `mask_ratio` is outside `[0, 1]`.
    pub fn init(&self) -> Result<SimMimMaskGenerator, DataError> {
        let name = SimMimMaskGenerator::NAME;
        if self.mask_patch_size == 0
            || self.model_patch_size == 0
            || !self.input_size.is_multiple_of(self.mask_patch_size)
            || !self.mask_patch_size.is_multiple_of(self.model_patch_size)
        {
            return Err(DataError::config(
                name,
                format!(
                    "input_size ({}) must be a multiple of mask_patch_size ({}), itself a \
                     multiple of model_patch_size ({})",
                    self.input_size, self.mask_patch_size, self.model_patch_size
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.mask_ratio) {
            return Err(DataError::config(name, format!("mask_ratio must be in [0, 1], got {}", self.mask_ratio)));
        }
        let rand_size = self.input_size / self.mask_patch_size;
        let token_count = rand_size * rand_size;
        Ok(SimMimMaskGenerator {
            rand_size,
            scale: self.mask_patch_size / self.model_patch_size,
            token_count,
            mask_count: (token_count as f64 * self.mask_ratio).ceil() as usize,
        })
    }
}

/// SimMIM's mask: `ceil(mask_ratio · n)` of the `n` blocks chosen uniformly, each block
/// covering `mask_patch_size / model_patch_size` tokens per side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMimMaskGenerator {
    rand_size: usize,
    scale: usize,
    token_count: usize,
    mask_count: usize,
}

impl SimMimMaskGenerator {
    /// The registry name.
    pub const NAME: &'static str = "SimMIMMaskGenerator";

    /// Number of blocks masked.
    pub fn mask_count(&self) -> usize {
        self.mask_count
    }

    /// Side of the token grid of the mask (`input_size / model_patch_size`).
    pub fn side(&self) -> usize {
        self.rand_size * self.scale
    }

    /// NumPy's `permutation(token_count)`.
    pub fn sample_permutation<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let mut p: Vec<usize> = (0..self.token_count).collect();
        for i in (1..self.token_count).rev() {
            let j = rng.randint(0, i + 1);
            p.swap(i, j);
        }
        p
    }

    /// The token mask (`side × side`, row-major, 1 = masked) for a block permutation: the
    /// first `mask_count` blocks of `permutation` are masked.
    pub fn mask_from_permutation(&self, permutation: &[usize]) -> Vec<u8> {
        let mut blocks = vec![0u8; self.token_count];
        for &b in permutation.iter().take(self.mask_count) {
            blocks[b] = 1;
        }
        let side = self.side();
        let mut mask = vec![0u8; side * side];
        for (y, row) in mask.chunks_exact_mut(side).enumerate() {
            let by = y / self.scale;
            for (x, m) in row.iter_mut().enumerate() {
                *m = blocks[by * self.rand_size + x / self.scale];
            }
        }
        mask
    }

    /// Adds `mask` (`[side, side]`) to `results`.
    ///
    /// # Errors
    /// None; the signature matches the other transforms.
    pub fn transform<R: RandomSource + ?Sized>(&self, mut results: Results, rng: &mut R) -> Result<Results, DataError> {
        let p = self.sample_permutation(rng);
        let side = self.side();
        results.mask = Some(mask_array(side, side, &self.mask_from_permutation(&p)));
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{Draw, ReplayDraws};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn components(mask: &[u8], w: usize) -> usize {
        // Number of 4-connected masked regions (a lower bound on blocks, a sanity check).
        let h = mask.len() / w;
        let mut seen = vec![false; mask.len()];
        let mut n = 0;
        for start in 0..mask.len() {
            if mask[start] == 0 || seen[start] {
                continue;
            }
            n += 1;
            let mut stack = vec![start];
            seen[start] = true;
            while let Some(i) = stack.pop() {
                let (y, x) = (i / w, i % w);
                let mut push = |j: usize| {
                    if mask[j] == 1 && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                };
                if x > 0 {
                    push(i - 1);
                }
                if x + 1 < w {
                    push(i + 1);
                }
                if y > 0 {
                    push(i - w);
                }
                if y + 1 < h {
                    push(i + w);
                }
            }
        }
        n
    }

    #[test]
    fn beit_masks_exactly_the_requested_count_with_blocks_in_range() {
        let g = BeitMaskGeneratorConfig { min_num_patches: 16, ..BeitMaskGeneratorConfig::new(SizeSpec::Pair([14, 14]), 75) }
            .init()
            .expect("valid");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..300 {
            let m = g.generate(&mut rng).expect("mask");
            assert_eq!(m.mask.iter().map(|&v| usize::from(v)).sum::<usize>(), 75);
            assert_eq!(m.blocks.iter().map(|b| b.added).sum::<usize>(), 75);
            assert!(components(&m.mask, 14) <= m.blocks.len());
            for b in &m.blocks {
                assert!(b.height < 14 && b.width < 14 && b.added >= 1);
                assert!(b.top + b.height <= 14 && b.left + b.width <= 14);
                // Aspect in [0.3, 1/0.3] and area ≥ ~min before rounding to whole patches.
                let (h, w) = (b.height as f64, b.width as f64);
                assert!((h + 0.5) / (w - 0.5).max(0.5) >= 0.3 && (h - 0.5) / (w + 0.5) <= 1.0 / 0.3);
                assert!((h + 0.5) * (w + 0.5) >= 1.0);
            }
        }
    }

    #[test]
    fn beit_replays_the_reference_draws() {
        // 4x4 grid, 5 patches, min 1. Attempt 1: area 4, aspect e^0 = 1 → 2x2 at (1, 2):
        // adds 4. Remaining 1: attempt 2: area 1.2 → 1x1 at (0, 0): adds 1.
        let g = BeitMaskGeneratorConfig { min_num_patches: 1, ..BeitMaskGeneratorConfig::new(4, 5) }.init().expect("valid");
        let mut rng = ReplayDraws::new([
            Draw::Uniform(4.0),
            Draw::Uniform(0.0),
            Draw::Int(1),
            Draw::Int(2),
            Draw::Uniform(1.2),
            Draw::Uniform(0.0),
            Draw::Int(0),
            Draw::Int(0),
        ]);
        let m = g.generate(&mut rng).expect("mask");
        assert_eq!(rng.remaining(), 0);
        assert_eq!(m.mask, vec![1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn beit_rejects_impossible_configs() {
        assert!(BeitMaskGeneratorConfig::new(14, 197).init().is_err());
        assert!(BeitMaskGeneratorConfig::new(SizeSpec::Pair([1, 14]), 3).init().is_err());
        let mut c = BeitMaskGeneratorConfig::new(14, 75);
        c.min_aspect = 0.0;
        assert!(c.init().is_err());
        assert!(BeitMaskGeneratorConfig::new(14, 0).init().is_ok());
    }

    #[test]
    fn simmim_masks_ceil_ratio_blocks_uniformly() {
        let g = SimMimMaskGeneratorConfig::default().init().expect("valid");
        assert_eq!((g.mask_count(), g.side()), (22, 48));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut per_block = [0usize; 36];
        let n = 4000;
        for _ in 0..n {
            let p = g.sample_permutation(&mut rng);
            let m = g.mask_from_permutation(&p);
            assert_eq!(m.iter().map(|&v| usize::from(v)).sum::<usize>(), 22 * 64);
            for (b, count) in per_block.iter_mut().enumerate() {
                let (by, bx) = (b / 6, b % 6);
                let v = m[by * 8 * 48 + bx * 8];
                // Whole 8x8 blocks.
                for y in 0..8 {
                    for x in 0..8 {
                        assert_eq!(m[(by * 8 + y) * 48 + bx * 8 + x], v);
                    }
                }
                *count += usize::from(v);
            }
        }
        // Each block is masked with probability 22/36; 5 standard deviations of slack.
        let p = 22.0 / 36.0;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        for c in per_block {
            assert!((c as f64 - n as f64 * p).abs() < 5.0 * sd, "{per_block:?}");
        }
    }

    #[test]
    fn simmim_rejects_sizes_that_do_not_divide() {
        let mut c = SimMimMaskGeneratorConfig { mask_patch_size: 30, ..Default::default() };
        assert!(c.init().is_err());
        c.mask_patch_size = 32;
        c.model_patch_size = 5;
        assert!(c.init().is_err());
    }
}
