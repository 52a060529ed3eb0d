//! Batches. Counterpart of MMEngine's `default_collate` (`mmengine/dataset/utils.py`) for
//! MMSelfSup's packed inputs: per view, the samples' images stacked into one NCHW buffer.

use std::collections::BTreeMap;

use crate::transforms::{PackedArray, Sample};
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
    /// The samples' masks stacked, `[n, h, w]` (`torch.stack` of MMSelfSup's
    /// `data_sample.mask.value`), when the pipeline packs `mask`.
    pub mask: Option<PackedArray>,
    /// The samples' pseudo-labels stacked along a new first axis, by key (`rot_label`:
    /// `[n, 4]`, `patch_label`: `[n, 1, 8]`, ...).
    pub pseudo_label: BTreeMap<String, PackedArray>,
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
/// [`DataError::ViewShapeMismatch`] when images of one view differ in size or channels,
/// [`DataError::FieldMismatch`] when masks or pseudo-labels are present for some samples
/// only or differ in shape.
pub fn default_collate(samples: &[Sample]) -> Result<Batch, DataError> {
    let n = samples.len();
    let num_views = samples.first().map_or(0, |s| s.views.len());
    let mut views = Vec::with_capacity(num_views);
    for s in samples {
        if s.views.len() != num_views {
            return Err(DataError::ViewCountMismatch { name: s.name.clone(), expected: num_views, got: s.views.len() });
        }
    }
    for v in 0..num_views {
        let first = &samples[0].views[v];
        let chw = [first.channels(), first.height(), first.width()];
        let per = chw[0] * chw[1] * chw[2];
        // Appended image by image rather than zero-filled then overwritten: the buffer is
        // large (19 MB for 32 RGB 224² views), and the allocator hands it out uncleared.
        let mut data = Vec::with_capacity(n * per);
        for s in samples {
            let img = &s.views[v];
            let got = [img.channels(), img.height(), img.width()];
            if got != chw {
                return Err(DataError::ViewShapeMismatch { view: v, name: s.name.clone(), expected: chw, got });
            }
            img.extend_chw_f32(&mut data);
        }
        views.push(ViewBatch { data, shape: [n, chw[0], chw[1], chw[2]] });
    }
    let mask = stack_field(samples, "mask", |s| s.mask.as_ref())?;
    let mut pseudo_label = BTreeMap::new();
    if let Some(first) = samples.first() {
        for key in first.pseudo_label.keys() {
            if let Some(stacked) = stack_field(samples, key, |s| s.pseudo_label.get(key))? {
                pseudo_label.insert(key.clone(), stacked);
            }
        }
        for s in samples {
            if let Some(key) = s.pseudo_label.keys().find(|k| !pseudo_label.contains_key(*k)) {
                return Err(DataError::FieldMismatch {
                    field: key.clone(),
                    name: s.name.clone(),
                    message: "present for this sample but not for the batch's first".into(),
                });
            }
        }
    }
    Ok(Batch {
        views,
        labels: samples.iter().map(|s| s.label).collect(),
        names: samples.iter().map(|s| s.name.clone()).collect(),
        indices: samples.iter().map(|s| s.index).collect(),
        mask,
        pseudo_label,
        epoch: 0,
        iteration: 0,
    })
}

/// Stacks one optional per-sample array: `None` when no sample has it, an error when only
/// some have it or the shapes differ.
fn stack_field<'a>(
    samples: &'a [Sample],
    field: &str,
    get: impl Fn(&'a Sample) -> Option<&'a PackedArray>,
) -> Result<Option<PackedArray>, DataError> {
    let values: Vec<Option<&PackedArray>> = samples.iter().map(&get).collect();
    let Some(first) = values.iter().flatten().next() else {
        return Ok(None);
    };
    let mut present = Vec::with_capacity(values.len());
    for (s, v) in samples.iter().zip(&values) {
        match v {
            None => {
                return Err(DataError::FieldMismatch {
                    field: field.into(),
                    name: s.name.clone(),
                    message: "missing for this sample but present for others".into(),
                })
            }
            Some(a) if a.shape != first.shape => {
                return Err(DataError::FieldMismatch {
                    field: field.into(),
                    name: s.name.clone(),
                    message: format!("shape {:?} differs from the batch's first {:?}", a.shape, first.shape),
                })
            }
            Some(a) => present.push(*a),
        }
    }
    PackedArray::stack(&present).map(Some).ok_or_else(|| DataError::FieldMismatch {
        field: field.into(),
        name: samples[0].name.clone(),
        message: "values of different kinds (bytes and integers)".into(),
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
            mask: None,
            pseudo_label: BTreeMap::new(),
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
        assert!(matches!(err, DataError::ViewShapeMismatch { view: 0, .. }), "{err}");
    }
}

#[cfg(test)]
mod packed_tests {
    use super::*;
    use crate::Image;

    fn sample(i: usize, mask: Option<Vec<i64>>, label: Option<Vec<i64>>) -> Sample {
        Sample {
            views: vec![Image::filled(2, 2, &[i as u8, 0, 0])],
            label: None,
            name: format!("s{i}"),
            index: i,
            mask: mask.map(|m| PackedArray::from_i64(vec![2, 2], m).expect("2x2")),
            pseudo_label: label
                .map(|l| {
                    let n = l.len();
                    BTreeMap::from([("rot_label".to_string(), PackedArray::from_i64(vec![n], l).expect("1-d"))])
                })
                .unwrap_or_default(),
        }
    }

    #[test]
    fn masks_and_pseudo_labels_are_stacked() {
        let b = default_collate(&[
            sample(0, Some(vec![1, 0, 0, 1]), Some(vec![0, 1, 2, 3])),
            sample(1, Some(vec![0, 1, 1, 0]), Some(vec![0, 1, 2, 3])),
        ])
        .expect("same shapes");
        let m = b.mask.expect("mask");
        assert_eq!(m.shape, vec![2, 2, 2]);
        assert_eq!(m.to_i64(), vec![1, 0, 0, 1, 0, 1, 1, 0]);
        let r = &b.pseudo_label["rot_label"];
        assert_eq!(r.shape, vec![2, 4]);
        assert_eq!(r.to_i64(), vec![0, 1, 2, 3, 0, 1, 2, 3]);
        let none = default_collate(&[sample(0, None, None)]).expect("plain");
        assert!(none.mask.is_none() && none.pseudo_label.is_empty());
    }

    #[test]
    fn missing_or_mismatched_fields_are_errors_naming_the_field() {
        let err =
            default_collate(&[sample(0, Some(vec![1, 0, 0, 1]), None), sample(1, None, None)]).expect_err("mask missing for one sample");
        assert!(matches!(&err, DataError::FieldMismatch { field, .. } if field == "mask"), "{err}");
        let err = default_collate(&[sample(0, None, Some(vec![0, 1])), sample(1, None, Some(vec![0, 1, 2]))]).expect_err("shapes differ");
        assert!(err.to_string().contains("rot_label"), "{err}");
        let err = default_collate(&[sample(0, None, None), sample(1, None, Some(vec![0]))]).expect_err("label only on the second sample");
        assert!(err.to_string().contains("rot_label"), "{err}");
    }
}
