//! Batches. Counterpart of MMEngine's `default_collate` (`mmengine/dataset/utils.py`) for
//! MMSelfSup's packed inputs: per view, the samples' images stacked into one NCHW buffer.

use crate::transforms::Sample;
use crate::DataError;

/// One view of a batch: `n` images stacked as NCHW `f32` values in `0..=255`, RGB order
/// (not normalised: the model's data preprocessor does that on the device).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch {
    /// `n · c · h · w` values, row-major NCHW.
    pub data: Vec<f32>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
}

/// A batch of samples, as produced by the [`DataLoader`](crate::DataLoader).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// One entry per view (MMSelfSup's `inputs` list): `views[v]` stacks view `v` of every sample.
    pub views: Vec<ViewBatch>,
    /// Per-sample labels (`gt_label`), `None` for unlabelled samples.
    pub labels: Vec<Option<usize>>,
    /// Per-sample names (relative paths).
    pub names: Vec<String>,
    /// Per-sample dataset indices (`sample_idx`).
    pub indices: Vec<usize>,
    /// The epoch this batch belongs to.
    pub epoch: usize,
    /// The batch's index within its epoch: resume with
    /// [`DataLoader::iter_from(epoch, iteration + 1)`](crate::DataLoader::iter_from).
    pub iteration: usize,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// `true` when the batch has no sample.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Stacks samples into a [`Batch`] (with `epoch` and `iteration` set to 0).
///
/// # Errors
/// [`DataError::ViewCountMismatch`] when samples have different numbers of views,
/// [`DataError::ViewShapeMismatch`] when images of one view differ in size or channels.
pub fn default_collate(samples: &[Sample]) -> Result<Batch, DataError> {
    let n = samples.len();
    let num_views = samples.first().map_or(0, |s| s.views.len());
    let mut views = Vec::with_capacity(num_views);
    for s in samples {
        if s.views.len() != num_views {
            return Err(DataError::ViewCountMismatch {
                name: s.name.clone(),
                expected: num_views,
                got: s.views.len(),
            });
        }
    }
    for v in 0..num_views {
        let first = &samples[0].views[v];
        let chw = [first.channels(), first.height(), first.width()];
        let per = chw[0] * chw[1] * chw[2];
        let mut data = vec![0f32; n * per];
        for (s, out) in samples.iter().zip(data.chunks_exact_mut(per.max(1))) {
            let img = &s.views[v];
            let got = [img.channels(), img.height(), img.width()];
            if got != chw {
                return Err(DataError::ViewShapeMismatch {
                    view: v,
                    name: s.name.clone(),
                    expected: chw,
                    got,
                });
            }
            img.write_chw_f32(out);
        }
        views.push(ViewBatch {
            data,
            shape: [n, chw[0], chw[1], chw[2]],
        });
    }
    Ok(Batch {
        views,
        labels: samples.iter().map(|s| s.label).collect(),
        names: samples.iter().map(|s| s.name.clone()).collect(),
        indices: samples.iter().map(|s| s.index).collect(),
        epoch: 0,
        iteration: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Image;

    fn sample(i: usize, w: usize) -> Sample {
        Sample {
            views: vec![Image::from_fn(w, 2, |x, y| [x as u8, y as u8, i as u8])],
            label: Some(i),
            name: format!("s{i}"),
            index: i,
        }
    }

    #[test]
    fn stacks_nchw_rgb() {
        let b = default_collate(&[sample(0, 3), sample(1, 3)]).expect("same sizes");
        assert_eq!(b.views[0].shape, [2, 3, 2, 3]);
        let d = &b.views[0].data;
        // sample 1, channel 0 (R = x), row 1, col 2 → 2.0; channel 2 (B = i) → 1.0
        assert_eq!(d[18 + 5], 2.0);
        assert_eq!(d[18 + 12 + 5], 1.0);
        assert_eq!(b.labels, vec![Some(0), Some(1)]);
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let err = default_collate(&[sample(0, 3), sample(1, 4)]).expect_err("different widths");
        assert!(
            matches!(err, DataError::ViewShapeMismatch { view: 0, .. }),
            "{err}"
        );
    }
}
