//! Transforms that wrap pipelines: `MultiView`, port of
//! `mmselfsup.datasets.transforms.MultiView` (mmselfsup 1.0.0,
//! `datasets/transforms/wrappers.py`), and `RandomApply`, port of
//! `mmcv.transforms.RandomApply` (mmcv 2.0.1, `transforms/wrappers.py`).
//!
//! `MultiView` takes one pipeline per group of views, so views of different sizes come out of
//! one sample (SwAV's multi-crop: `num_views = [2, 6]`, 224 and 96 pixels); the loader's
//! collate stacks each view index separately, so a batch is a list of views with one shape
//! each.

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
                format!("{} pipelines in `transforms` but {} entries in `num_views`", self.transforms.len(), counts.len()),
            ));
        }
        let pipelines = self.transforms.iter().map(|t| Pipeline::nested(t)).collect::<Result<Vec<_>, _>>()?;
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
    /// The sub-pipelines, one per group of views.
    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }

    /// Total number of views produced (for one input image).
    pub fn num_views(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Runs the pipelines in order (pipeline 0's views first), drawing from `rng` in that
    /// order, and returns `results` with `img` replaced by the list of views.
    ///
    /// # Errors
    /// The first error of a sub-pipeline.
    pub fn transform<R: RandomSource + ?Sized>(&self, results: Results, rng: &mut R) -> Result<Results, DataError> {
        let total = self.num_views();
        let mut template = results;
        let mut input = Some(std::mem::take(&mut template.img));
        let mut views = Vec::with_capacity(total * input.as_ref().map_or(0, Vec::len));
        let mut done = 0;
        for (pipeline, &n) in self.pipelines.iter().zip(&self.counts) {
            for _ in 0..n {
                done += 1;
                // Every view but the last works on a copy; the last takes the input itself.
                let img = if done == total { input.take() } else { input.clone() };
                let view = Results { img: img.unwrap_or_default(), ..template.clone() };
                views.extend(pipeline.transform(view, rng)?.img);
            }
        }
        Ok(Results { img: views, ..template })
    }
}

/// Configuration of [`RandomApply`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomApplyConfig {
    /// The transforms applied together (one transform or a list). Required.
    #[serde(deserialize_with = "selfsup_config::one_or_many")]
    pub transforms: Vec<TransformConfig>,
    /// Probability of applying them. Default 0.5.
    #[serde(default = "default_apply_prob")]
    pub prob: f64,
}

fn default_apply_prob() -> f64 {
    0.5
}

impl RandomApplyConfig {
    /// Validates the config and builds the transform (and its sub-pipeline).
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `prob` is outside `[0, 1]`, and any error of the
    /// sub-pipeline.
    pub fn init(&self) -> Result<RandomApply, DataError> {
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(DataError::config("RandomApply", format!("`prob` must be in [0, 1], got {}", self.prob)));
        }
        Ok(RandomApply { pipeline: Pipeline::nested(&self.transforms)?, prob: self.prob })
    }
}

/// Applies a sub-pipeline with a given probability (one draw for the whole `results`).
#[derive(Debug, Clone)]
pub struct RandomApply {
    pipeline: Pipeline,
    prob: f64,
}

impl RandomApply {
    /// Draws whether to apply, as mmcv: `np.random.rand() < prob`.
    pub fn sample_apply<R: RandomSource + ?Sized>(&self, rng: &mut R) -> bool {
        rng.rand() < self.prob
    }

    /// The wrapped transforms.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Draws once, then runs the sub-pipeline (drawing its own parameters from `rng`) or
    /// returns `results` unchanged.
    ///
    /// # Errors
    /// The first error of the sub-pipeline.
    pub fn transform<R: RandomSource + ?Sized>(&self, results: Results, rng: &mut R) -> Result<Results, DataError> {
        if self.sample_apply(rng) {
            self.pipeline.transform(results, rng)
        } else {
            Ok(results)
        }
    }
}
