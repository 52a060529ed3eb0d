//! `RandomPatchWithLabels`. Port of `mmselfsup.datasets.transforms.RandomPatchWithLabels`
//! (mmselfsup 1.0.0, `datasets/transforms/processing.py`), RelativeLoc's patches.
//!
//! The image is split into a 3×3 grid of `(h // 3) × (w // 3)` cells; from each cell a
//! random `(h//3 − 21) × (w//3 − 21)` patch is cropped (the 21-pixel jitter). The output is
//! the centre patch followed by its 8 neighbours (9 images), with `patch_label =
//! [[0, ..., 7]]`, `patch_box` (`[1, 9, 4]`) and `unpatched_img` (`[1, h, w, c]`, this crate's
//! RGB order where the reference stores BGR).
//!
//! The reference's cell arithmetic is kept as is, including two quirks that only matter
//! for non-square images or for `patch_box`: cell `(i, j)` (row `i`, column `j`) is cropped
//! with `mmcv.imcrop` from the inclusive box `x1 = i·h_grid, y1 = j·w_grid,
//! x2 = (i+1)·h_grid, y2 = (j+1)·w_grid` (rows and columns swapped, one pixel wider than a
//! cell, clipped to the image), and `patch_box` is `[i·h_grid + xmin, j·w_grid + ymin,
//! i·h_grid + xmin + w − 1, j·w_grid + ymin + h − 1]`. The offsets inside the cell are
//! MMSelfSup's `RandomCrop.get_params` draws: `randint(0, cell_h − h + 1)` then
//! `randint(0, cell_w − w + 1)`, no draw when the cell already has the patch size.

use serde::{Deserialize, Serialize};

use crate::imaging::geometric::imcrop;
use crate::imaging::Image;
use crate::transforms::{single_image, ArrayData, PackedArray, RandomSource, Results};
use crate::DataError;

/// Configuration of [`RandomPatchWithLabels`] (no parameter).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPatchWithLabelsConfig {}

impl RandomPatchWithLabelsConfig {
    /// Builds the transform.
    ///
    /// # Errors
    /// None; the signature matches the other transforms.
    pub fn init(&self) -> Result<RandomPatchWithLabels, DataError> {
        Ok(RandomPatchWithLabels)
    }
}

/// RelativeLoc's 3×3 patches with labels; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomPatchWithLabels;

/// The patches of one image and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Patches {
    /// The 9 patches in grid order (row-major), before the centre is moved first.
    pub patches: Vec<Image>,
    /// The reference's `patch_box` rows, in grid order.
    pub boxes: Vec<[i64; 4]>,
}

const SPLIT: usize = 3;
const JITTER: usize = 21;

impl RandomPatchWithLabels {
    /// The registry name.
    pub const NAME: &'static str = "RandomPatchWithLabels";
    /// The pseudo-label keys it adds.
    pub const ADDED_KEYS: [&'static str; 3] = ["patch_label", "patch_box", "unpatched_img"];

    fn error(message: String) -> DataError {
        DataError::Transform { transform: Self::NAME, name: String::new(), message }
    }

    /// Crops the 9 patches, drawing the offsets from `rng` (`_image_to_patches`).
    ///
    /// # Errors
    /// [`DataError::Transform`] when the image is too small (a cell side of at most 21
    /// pixels) or, for very elongated images, a cell is smaller than the patch.
    pub fn patches<R: RandomSource + ?Sized>(&self, img: &Image, rng: &mut R) -> Result<Patches, DataError> {
        let (h, w) = (img.height(), img.width());
        let (h_grid, w_grid) = (h / SPLIT, w / SPLIT);
        if h_grid <= JITTER || w_grid <= JITTER {
            return Err(Self::error(format!("a {w}x{h} image is too small: each third must exceed {JITTER} pixels")));
        }
        let (h_patch, w_patch) = (h_grid - JITTER, w_grid - JITTER);
        let mut patches = Vec::with_capacity(SPLIT * SPLIT);
        let mut boxes = Vec::with_capacity(SPLIT * SPLIT);
        for i in 0..SPLIT {
            for j in 0..SPLIT {
                let cell = imcrop(img, i * h_grid, j * w_grid, (i + 1) * h_grid, (j + 1) * w_grid);
                let (ch, cw) = (cell.height(), cell.width());
                if ch < h_patch || cw < w_patch {
                    return Err(Self::error(format!("cell ({i}, {j}) is {cw}x{ch}, smaller than the {w_patch}x{h_patch} patch")));
                }
                let (ymin, xmin) = if ch == h_patch && cw == w_patch {
                    (0, 0)
                } else {
                    let ymin = rng.randint(0, ch - h_patch + 1);
                    (ymin, rng.randint(0, cw - w_patch + 1))
                };
                patches.push(imcrop(&cell, xmin, ymin, xmin + w_patch - 1, ymin + h_patch - 1));
                let (x0, y0) = ((i * h_grid + xmin) as i64, (j * w_grid + ymin) as i64);
                boxes.push([x0, y0, x0 + w_patch as i64 - 1, y0 + h_patch as i64 - 1]);
            }
        }
        Ok(Patches { patches, boxes })
    }

    /// Replaces the one image of `results` by the centre patch and its 8 neighbours, and
    /// adds `patch_label`, `patch_box` and `unpatched_img`.
    ///
    /// # Errors
    /// See [`RandomPatchWithLabels::patches`]; also when `results` does not hold exactly one
    /// image.
    pub fn transform<R: RandomSource + ?Sized>(&self, mut results: Results, rng: &mut R) -> Result<Results, DataError> {
        let img = single_image(&mut results, Self::NAME)?;
        let Patches { mut patches, boxes } = self.patches(&img, rng)?;
        let centre = patches.remove(SPLIT * SPLIT / 2);
        results.img = std::iter::once(centre).chain(patches).collect();
        let labels = &mut results.pseudo_label;
        labels.insert("patch_label".into(), PackedArray { shape: vec![1, 8], data: ArrayData::I64((0..8).collect()) });
        labels.insert(
            "patch_box".into(),
            PackedArray { shape: vec![1, SPLIT * SPLIT, 4], data: ArrayData::I64(boxes.into_iter().flatten().collect()) },
        );
        labels.insert("unpatched_img".into(), PackedArray::from_image(&img));
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{Draw, ReplayDraws};

    #[test]
    fn nine_patches_centre_first_with_labels() {
        // 75x75: cells of 25, patches of 4. Cells not in the last row/column are 26 wide.
        let img = Image::from_fn(75, 75, |x, y| [x as u8, y as u8, 7]);
        let mut draws = Vec::new();
        for k in 0..9 {
            draws.push(Draw::Int(k % 3));
            draws.push(Draw::Int((k + 1) % 3));
        }
        let mut rng = ReplayDraws::new(draws);
        let r = RandomPatchWithLabels.transform(Results { img: vec![img.clone()], ..Results::default() }, &mut rng).expect("big enough");
        assert_eq!(rng.remaining(), 0);
        assert_eq!(r.img.len(), 9);
        assert!(r.img.iter().all(|p| (p.width(), p.height()) == (4, 4)));
        // The centre cell (i = j = 1) is the 5th drawn (k = 4): ymin = 1, xmin = 2. Its
        // crop box starts at x = i·25, y = j·25.
        assert_eq!(r.img[0].pixel(0, 0), &[25 + 2, 25 + 1, 7]);
        assert_eq!(r.pseudo_label["patch_label"].shape, vec![1, 8]);
        let boxes = r.pseudo_label["patch_box"].to_i64();
        assert_eq!(&boxes[16..20], &[25 + 2, 25 + 1, 25 + 2 + 3, 25 + 1 + 3]);
        assert_eq!(r.pseudo_label["unpatched_img"].shape, vec![1, 75, 75, 3]);
    }

    #[test]
    fn small_images_are_a_sample_error() {
        let err = RandomPatchWithLabels.patches(&Image::filled(60, 60, &[0, 0, 0]), &mut ReplayDraws::default()).expect_err("cells of 20");
        assert!(err.is_sample_error(), "{err}");
    }
}
