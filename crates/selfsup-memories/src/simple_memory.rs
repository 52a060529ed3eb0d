//! Port of `mmselfsup.models.memories.SimpleMemory` (`simple_memory.py`),
//! NPID's bank of one running-average feature per sample of the dataset.
//!
//! The bank is one `[length, feat_dim]` tensor on the device (ImageNet's
//! 1 281 167 × 128 floats are 656 MB), saved in checkpoints under
//! MMSelfSup's key `memory_bank.feature_bank` and restored on resume.
//! MMSelfSup draws negatives with `AliasMethod(torch.ones(length))`, whose
//! tables (`multinomial.prob`, all 1, and `multinomial.alias`, all 0) make
//! every draw uniform; the tables are kept for the checkpoint keys, and the
//! draws are uniform integers from the run's [`Draws`].
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_core::Draws;
use selfsup_layers::{
    init::{fixed, Dist, InitRng},
    l2_normalize,
};
use serde::{Deserialize, Serialize};

/// `dict(type='SimpleMemory', length, feat_dim, momentum)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleMemoryConfig {
    /// Features stored: the dataset's length.
    pub length: usize,
    /// Width of a feature.
    pub feat_dim: usize,
    /// Weight of the new feature in the running average.
    pub momentum: f64,
}

impl SimpleMemoryConfig {
    /// Checks the sizes; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.length == 0 || self.feat_dim == 0 {
            return Err(("length", "length and feat_dim must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(("momentum", format!("must be in [0, 1], got {}", self.momentum)));
        }
        Ok(())
    }

    /// A bank of `normalize(randn(length, feat_dim))`, as MMSelfSup builds it.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimpleMemory<B> {
        SimpleMemory {
            feature_bank: rng.fixed_with([self.length, self.feat_dim], Dist::Normal(0.0, 1.0), |b| l2_normalize(b, 1), device),
            multinomial: AliasMethod {
                prob: fixed(Tensor::ones([self.length], device)),
                alias: fixed(Tensor::zeros([self.length], device)),
            },
            momentum: self.momentum,
        }
    }
}

/// The tables of `AliasMethod(torch.ones(length))` (keys `prob`, `alias`; `alias` is an
/// int64 buffer in PyTorch, a float here, exact below 2²⁴).
#[derive(Module, Debug)]
pub struct AliasMethod<B: Backend> {
    /// Probability of keeping the drawn bucket (1 everywhere).
    pub prob: Param<Tensor<B, 1>>,
    /// The bucket taken otherwise (0 everywhere).
    pub alias: Param<Tensor<B, 1>>,
}

/// Keys `feature_bank`, `multinomial.prob`, `multinomial.alias`.
#[derive(Module, Debug)]
pub struct SimpleMemory<B: Backend> {
    /// `[length, feat_dim]`, L2-normalised rows.
    pub feature_bank: Param<Tensor<B, 2>>,
    /// The negative sampler's tables.
    pub multinomial: AliasMethod<B>,
    momentum: f64,
}

/// The draw of NPID's negative indices.
pub const NEGATIVES_DRAW: &str = "simple_memory.negatives";

impl<B: Backend> SimpleMemory<B> {
    /// Rows stored.
    pub fn len(&self) -> usize {
        self.feature_bank.dims()[0]
    }

    /// Whether the bank is empty (never: configs are validated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The features at `idx`, without gradient: `[idx.len(), feat_dim]`.
    pub fn rows(&self, idx: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.feature_bank.val().detach().select(0, idx)
    }

    /// `n` negative indices per row of `positives` (`multinomial.draw`), uniform over the
    /// bank; with `ensure_neg` an index equal to its row's positive is drawn again until
    /// none is (MMSelfSup's loop). Row-major, `positives.len() * n` values.
    pub fn draw_negatives(&self, positives: &[usize], n: usize, ensure_neg: bool, draws: &mut Draws) -> Vec<i64> {
        let len = self.len();
        let mut idx = draws.integers(NEGATIVES_DRAW, positives.len() * n, len);
        if ensure_neg && len > 1 {
            loop {
                let wrong: Vec<usize> = (0..idx.len()).filter(|&i| idx[i] == positives[i / n] as i64).collect();
                if wrong.is_empty() {
                    break;
                }
                for (i, v) in wrong.iter().zip(draws.integers(NEGATIVES_DRAW, wrong.len(), len)) {
                    idx[*i] = v;
                }
            }
        }
        idx
    }

    /// `update(idx, feature)`: each row at `idx` becomes
    /// `normalize((1 − m)·old + m·normalize(feature))`. A repeated index takes its last
    /// feature, as PyTorch's indexed assignment does on the CPU.
    ///
    /// # Shapes
    /// `idx.len()` rows, `features`: `[idx.len(), feat_dim]`
    pub fn update(self, idx: &[usize], features: Tensor<B, 2>) -> Self {
        let device = features.device();
        let features = l2_normalize(features.detach(), 1);
        let idx_t =
            Tensor::<B, 1, Int>::from_data(TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [idx.len()]), &device);
        let old = self.rows(idx_t);
        let new = l2_normalize(old.mul_scalar(1.0 - self.momentum) + features.mul_scalar(self.momentum), 1);
        Self { feature_bank: assign_rows(self.feature_bank, idx, new), ..self }
    }
}

/// `bank[idx] = rows`, the last of repeated indices winning; no gradient.
pub fn assign_rows<B: Backend>(bank: Param<Tensor<B, 2>>, idx: &[usize], rows: Tensor<B, 2>) -> Param<Tensor<B, 2>> {
    let device = rows.device();
    // Keep the last occurrence of each index.
    let mut last = std::collections::HashMap::new();
    for (pos, &i) in idx.iter().enumerate() {
        last.insert(i, pos);
    }
    let mut keep: Vec<(usize, usize)> = last.into_iter().collect();
    keep.sort_unstable();
    let positions =
        Tensor::<B, 1, Int>::from_data(TensorData::new(keep.iter().map(|&(_, p)| p as i64).collect::<Vec<_>>(), [keep.len()]), &device);
    let targets =
        Tensor::<B, 2, Int>::from_data(TensorData::new(keep.iter().map(|&(i, _)| i as i64).collect::<Vec<_>>(), [keep.len(), 1]), &device);
    let rows = rows.detach().select(0, positions);
    let (id, b, mapper) = bank.consume();
    let b = b.detach().set_require_grad(false).scatter_nd(targets, rows, burn::tensor::IndexingUpdateOp::Assign);
    Param::from_mapped_value(id, b, mapper)
}
