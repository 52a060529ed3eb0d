//! `MultiView`. Port of `mmselfsup.datasets.transforms.MultiView` (mmselfsup 1.0.0,
//! `datasets/transforms/wrappers.py`).

use serde::{Deserialize, Serialize};

use super::{Pipeline, Results, TransformConfig};
use crate::transforms::RandomSource;
use crate::DataError;

/// `num_views`: one integer (with exactly one pipeline) or one integer per pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumViews {
    /// Views of the single pipeline.
    One(usize),
    /// Views of each pipeline.
    PerPipeline(Vec<usize>),
}

/// Configuration of [`MultiView`]. Field names are MMSelfSup's; both are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiViewConfig {
    /// Views produced by each pipeline.
    pub num_views: NumViews,
    /// The pipelines.
    pub transforms: Vec<Vec<TransformConfig>>,
}

impl MultiViewConfig {
    /// Validates the config and builds the transform (and its sub-pipelines).
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `num_views` and `transforms` differ in length, and any
    /// error of the sub-pipelines.
    pub fn init(&self) -> Result<MultiView, DataError> {
        let counts = match &self.num_views {
            NumViews::One(n) => vec![*n],
            NumViews::PerPipeline(v) => v.clone(),
        };
        if counts.len() != self.transforms.len() {
            return Err(DataError::config(
                "MultiView",
                format!(
                    "{} pipelines in `transforms` but {} entries in `num_views`",
                    self.transforms.len(),
                    counts.len()
                ),
            ));
        }
        let pipelines = self
            .transforms
            .iter()
            .map(|t| Pipeline::new(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MultiView { pipelines, counts })
    }
}

/// Applies pipeline `i` `num_views[i]` times to copies of the input and collects the views.
#[derive(Debug, Clone)]
pub struct MultiView {
    pipelines: Vec<Pipeline>,
    counts: Vec<usize>,
}

impl MultiView {
    /// Total number of views produced (for one input image).
    pub fn num_views(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Runs the pipelines in order (pipeline 0's views first), drawing from `rng` in that
    /// order, and returns `results` with `img` replaced by the list of views.
    ///
    /// # Errors
    /// The first error of a sub-pipeline.
    pub fn transform<R: RandomSource + ?Sized>(
        &self,
        results: Results,
        rng: &mut R,
    ) -> Result<Results, DataError> {
        let mut views = Vec::with_capacity(self.num_views() * results.img.len());
        for (pipeline, &n) in self.pipelines.iter().zip(&self.counts) {
            for _ in 0..n {
                let out = pipeline.transform(results.clone(), rng)?;
                views.extend(out.img);
            }
        }
        Ok(Results {
            img: views,
            ..results
        })
    }
}
