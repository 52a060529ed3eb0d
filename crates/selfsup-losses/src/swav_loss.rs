//! Port of `mmselfsup.models.losses.SwAVLoss` (`swav_loss.py`), with the
//! feature queue of `SwAVHook` ([`SwAVQueue`]) and MMSelfSup's
//! `distributed_sinkhorn` ([`sinkhorn`], `mmselfsup/utils/distributed_sinkhorn.py`).
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{activation::log_softmax, backend::Backend, ElementConversion, Tensor},
};
use selfsup_layers::{
    dist::{self, ReduceOperation},
    l2_normalize,
};
use serde::{Deserialize, Serialize};

/// `dict(type='SwAVLoss', feat_dim, ...)`: MMSelfSup's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVLossConfig {
    /// Feature width (the neck's output).
    pub feat_dim: usize,
    /// Sinkhorn-Knopp iterations.
    #[serde(default = "three")]
    pub sinkhorn_iterations: usize,
    /// Sinkhorn's entropic regularisation.
    #[serde(default = "eps005")]
    pub epsilon: f64,
    /// Softmax temperature of the swapped prediction.
    #[serde(default = "t01")]
    pub temperature: f64,
    /// Crops whose assignments are computed.
    #[serde(default = "crops01")]
    pub crops_for_assign: Vec<usize>,
    /// Crops per resolution group, e.g. `[2, 6]`.
    #[serde(default = "crops2")]
    pub num_crops: Vec<usize>,
    /// Number of prototypes (a list makes MultiPrototypes: not supported).
    #[serde(default = "k3000")]
    pub num_prototypes: serde_json::Value,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

fn three() -> usize {
    3
}
fn eps005() -> f64 {
    0.05
}
fn t01() -> f64 {
    0.1
}
fn crops01() -> Vec<usize> {
    vec![0, 1]
}
fn crops2() -> Vec<usize> {
    vec![2]
}
fn k3000() -> serde_json::Value {
    serde_json::Value::from(3000)
}

impl SwAVLossConfig {
    /// The number of prototypes, or the reason it cannot be honoured.
    pub fn prototypes(&self) -> Result<usize, (&'static str, String)> {
        match self.num_prototypes.as_u64() {
            Some(k) if k > 0 => Ok(k as usize),
            _ => Err(("num_prototypes", "only a single positive number of prototypes is supported (MultiPrototypes is not)".into())),
        }
    }

    /// Checks the config.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.prototypes()?;
        let total: usize = self.num_crops.iter().sum();
        if total < 2 {
            return Err(("num_crops", "SwAV needs at least two crops".into()));
        }
        if let Some(c) = self.crops_for_assign.iter().find(|&&c| c >= total) {
            return Err(("crops_for_assign", format!("crop {c} does not exist ({total} crops)")));
        }
        if !(self.epsilon > 0.0 && self.temperature > 0.0) {
            return Err(("epsilon", "epsilon and temperature must be > 0".into()));
        }
        Ok(())
    }

    /// Builds the loss with its prototypes (PyTorch's default Linear init).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut selfsup_layers::init::InitRng) -> SwAVLoss<B> {
        let k = self.prototypes().expect("validated");
        SwAVLoss {
            prototypes: rng.linear_torch(self.feat_dim, k, false, device),
            sinkhorn_iterations: self.sinkhorn_iterations,
            epsilon: self.epsilon,
            temperature: self.temperature,
            crops_for_assign: self.crops_for_assign.clone(),
            num_crops: self.num_crops.clone(),
        }
    }
}

/// SwAV's swapped-prediction loss with its prototypes
/// (key `prototypes.weight`).
///
/// MMSelfSup L2-normalises `prototypes.weight` in place at the start of
/// every forward. Here the forward uses the normalised value (the
/// gradient flows to the parameter unchanged) and the algorithm
/// re-normalises the parameter after each optimiser step
/// ([`SwAVLoss::normalize_prototypes`]), so that each step sees and updates
/// the same values as MMSelfSup's.
#[derive(Module, Debug)]
pub struct SwAVLoss<B: Backend> {
    /// `Linear(feat_dim, num_prototypes, bias=False)`.
    pub prototypes: Linear<B>,
    sinkhorn_iterations: usize,
    epsilon: f64,
    temperature: f64,
    crops_for_assign: Vec<usize>,
    num_crops: Vec<usize>,
}

/// SwAV's optional feature queue (`SwAVHook`): `[len(crops_for_assign),
/// queue_length, feat_dim]`, newest first.
#[derive(Debug, Clone)]
pub struct SwAVQueue<B: Backend> {
    /// The stored embeddings.
    pub queue: Tensor<B, 3>,
    /// Whether the queue's content joins the assignments (MMSelfSup's
    /// `use_queue`; it switches on once the queue is full).
    pub use_queue: bool,
}

impl<B: Backend> SwAVLoss<B> {
    /// Total crops per sample.
    pub fn total_crops(&self) -> usize {
        self.num_crops.iter().sum()
    }

    /// Crops per resolution group.
    pub fn num_crops(&self) -> &[usize] {
        &self.num_crops
    }

    /// Crops whose assignments are computed.
    pub fn crops_for_assign(&self) -> &[usize] {
        &self.crops_for_assign
    }

    /// Sets the prototypes to their row-wise L2-normalised value (what
    /// MMSelfSup's forward does in place).
    pub fn normalize_prototypes(mut self) -> Self {
        let (id, w, mapper) = self.prototypes.weight.consume();
        let require_grad = w.is_require_grad();
        // burn stores [in, out]: prototypes are the columns.
        let mut n = l2_normalize(w.detach().set_require_grad(false), 0);
        if require_grad {
            n = n.require_grad();
        }
        self.prototypes.weight = Param::from_mapped_value(id, n, mapper);
        self
    }

    /// The loss over `z` (`[crops·n, feat_dim]`, crop-major as SwAVNeck
    /// outputs it), and the queue after this batch when one is given.
    pub fn forward(&self, z: Tensor<B, 2>, queue: Option<&SwAVQueue<B>>) -> (Tensor<B, 1>, Option<SwAVQueue<B>>) {
        self.forward_frozen(z, queue, false)
    }

    /// [`SwAVLoss::forward`], with the prototypes given no gradient when
    /// `frozen_prototypes` (`SwAVHook`'s `frozen_layers_cfg`).
    pub fn forward_frozen(
        &self,
        z: Tensor<B, 2>,
        queue: Option<&SwAVQueue<B>>,
        frozen_prototypes: bool,
    ) -> (Tensor<B, 1>, Option<SwAVQueue<B>>) {
        let w = self.prototypes.weight.val();
        let w = if frozen_prototypes { w.detach().set_require_grad(false) } else { w };
        // Forward value normalised, gradient straight to the parameter.
        let w = w.clone() + (l2_normalize(w.clone().detach(), 0) - w.detach()).detach();
        let scores = z.clone().matmul(w.clone()); // [crops·n, K]
        let embedding = z.detach();
        let total = self.total_crops();
        let bs = scores.dims()[0] / total;
        let mut loss: Option<Tensor<B, 1>> = None;
        let mut new_queue = queue.cloned();
        for (i, &crop) in self.crops_for_assign.iter().enumerate() {
            let mut out = scores.clone().slice([bs * crop..bs * (crop + 1)]).detach();
            if let Some(q) = new_queue.as_mut() {
                let [_, len, d] = q.queue.dims();
                let qi = q.queue.clone().slice([i..i + 1]).reshape([len, d]);
                let last_nonzero = qi.clone().slice([len - 1..len]).abs().sum().into_scalar().elem::<f64>() != 0.0;
                if q.use_queue || last_nonzero {
                    q.use_queue = true;
                    out = Tensor::cat(vec![qi.clone().matmul(w.clone().detach()), out], 0);
                }
                let fresh = embedding.clone().slice([crop * bs..(crop + 1) * bs]);
                let shifted = if len > bs { Tensor::cat(vec![fresh, qi.slice([0..len - bs])], 0) } else { fresh.slice([0..len]) };
                q.queue = q.queue.clone().slice_assign([i..i + 1, 0..len, 0..d], shifted.reshape([1, len, d]));
            }
            let assign = sinkhorn(out, self.sinkhorn_iterations, self.epsilon);
            let rows = assign.dims()[0];
            let q = assign.slice([rows - bs..rows]);
            let mut sub: Option<Tensor<B, 1>> = None;
            for v in (0..total).filter(|&v| v != crop) {
                let x = scores.clone().slice([bs * v..bs * (v + 1)]).div_scalar(self.temperature);
                let term = (q.clone() * log_softmax(x, 1)).sum_dim(1).mean().neg();
                sub = Some(match sub {
                    Some(s) => s + term,
                    None => term,
                });
            }
            let sub = sub.expect("at least two crops").div_scalar((total - 1) as f64);
            loss = Some(match loss {
                Some(l) => l + sub,
                None => sub,
            });
        }
        let loss = loss.expect("at least one assigned crop").div_scalar(self.crops_for_assign.len() as f64);
        (loss, new_queue)
    }
}

/// MMSelfSup's `distributed_sinkhorn`: soft assignments `[n, K]` of the
/// scores `out` (`[n, K]`), no gradient.
///
/// Across replicas the total mass is all-reduced and the column count is
/// the global batch. As in MMSelfSup, the prototype (row) sums are
/// all-reduced only on the rare iteration that finds an empty row; the
/// zero-row test itself is made global here, so that every replica takes
/// the same branch (MMSelfSup's ranks would wait on each other otherwise).
pub fn sinkhorn<B: Backend>(out: Tensor<B, 2>, iterations: usize, epsilon: f64) -> Tensor<B, 2> {
    let world = dist::world_size();
    let out = out.detach();
    let mut q = out.div_scalar(epsilon).exp().transpose(); // [K, n]
    let [k, n] = q.dims();
    let n = n * world;
    let total = dist::all_reduce(q.clone().sum(), ReduceOperation::Sum);
    q = q / total.reshape([1, 1]);
    for _ in 0..iterations {
        let u = q.clone().sum_dim(1); // [K, 1]
                                      // MMSelfSup adds 1e-12 everywhere when a row sums to zero.
                                      // Entries are non-negative, so a zero row sum is a zero minimum.
        let local_zero = u.clone().min().into_scalar().elem::<f64>() == 0.0;
        let zero_rows = if world > 1 {
            let flag = Tensor::<B, 1>::from_floats([if local_zero { 1.0 } else { 0.0 }], &u.device());
            dist::all_reduce(flag, ReduceOperation::Sum).into_scalar().elem::<f64>() > 0.0
        } else {
            local_zero
        };
        let (qq, u) = if zero_rows {
            let qq = q.add_scalar(1e-12);
            let u = dist::all_reduce(qq.clone().sum_dim(1), ReduceOperation::Sum);
            (qq, u)
        } else {
            (q, u)
        };
        q = (qq / u).div_scalar(k as f64);
        let c = q.clone().sum_dim(0); // [1, n]
        q = (q / c).div_scalar(n as f64);
    }
    q.mul_scalar(n as f64).transpose()
}
