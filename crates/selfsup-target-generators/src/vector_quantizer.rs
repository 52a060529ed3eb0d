//! Port of `mmselfsup.models.utils.vector_quantizer` (mmselfsup 1.0.0,
//! from BEiT v2's `norm_ema_quantizer.py`): `NormEMAVectorQuantizer`, its
//! codebook `EmbeddingEMA` and the cosine `kmeans` that initialises it.
//!
//! Inputs are L2-normalised; the code of a vector is the nearest codebook
//! entry (`argmin ‖z‖² + ‖e‖² − 2 z·e`; the entries are unit vectors).
//!
//! The reference updates its state **inside the forward**: in training
//! mode (which BEiT v2's tokenizer always is, `BaseModel` never puts it in
//! eval mode) `cluster_size` becomes the EMA of the code counts and every
//! codebook entry with hits the normalised EMA of the normalised mean of
//! its vectors (decay 0.99); in eval mode only `cluster_size` moves. With
//! `initted == 0` (k-means initialisation) the first forward first runs
//! k-means on the batch. Here the forward is pure (`&self`) and the
//! updates are explicit, for the algorithm to apply where the reference
//! does: [`NormEmaVectorQuantizer::statistics`] (the counts and sums the
//! reference `all_reduce`s), [`NormEmaVectorQuantizer::apply_ema`],
//! [`NormEmaVectorQuantizer::apply_cluster_size_ema`] and
//! [`NormEmaVectorQuantizer::init_embed`].
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_layers::{
    functional::l2_normalize,
    init::{Dist, InitRng},
};

/// `EmbeddingEMA`: the codebook. Keys `weight` (`[num_embed, dims]`) and
/// `initted` (`[1]`, 1 once initialised).
#[derive(Module, Debug)]
pub struct EmbeddingEma<B: Backend> {
    /// `[num_embed, dims]`, unit rows once initialised.
    pub weight: Param<Tensor<B, 2>>,
    /// `[1]`: 1.0 when the codebook holds its entries, 0.0 before k-means.
    pub initted: Param<Tensor<B, 1>>,
}

/// `NormEMAVectorQuantizer`. Keys `embedding.weight`,
/// `embedding.initted`, `cluster_size`.
#[derive(Module, Debug)]
pub struct NormEmaVectorQuantizer<B: Backend> {
    /// The codebook.
    pub embedding: EmbeddingEma<B>,
    /// `[num_embed]`: EMA of the code counts (`statistic_code_usage`).
    pub cluster_size: Param<Tensor<B, 1>>,
    /// EMA decay.
    pub decay: f64,
    /// Weight of the commitment loss (unused by the tokenizer).
    pub beta: f64,
}

/// What one batch contributes to the EMA: the code counts and the sums of
/// the vectors per code (the tensors the reference `all_reduce`s; sum them
/// over ranks before [`NormEmaVectorQuantizer::apply_ema`]).
#[derive(Debug, Clone)]
pub struct CodeStatistics<B: Backend> {
    /// `[num_embed]`: vectors per code (`encodings.sum(0)`).
    pub bins: Tensor<B, 1>,
    /// `[dims, num_embed]`: the sum of the vectors of each code
    /// (`z.t() @ encodings`).
    pub embed_sum: Tensor<B, 2>,
}

impl<B: Backend> NormEmaVectorQuantizer<B> {
    /// The reference's initialisation: with `kmeans_init` a zero codebook
    /// and `initted = 0`, otherwise normalised `randn` rows and `initted
    /// = 1`; `cluster_size` zero.
    pub fn new(
        num_embed: usize,
        embed_dims: usize,
        beta: f64,
        decay: f64,
        kmeans_init: bool,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> Self {
        let weight = if kmeans_init {
            rng.param([num_embed, embed_dims], Dist::Constant(0.0), device)
        } else {
            rng.fixed_with([num_embed, embed_dims], Dist::Normal(0.0, 1.0), |t| l2_normalize(t, 1), device)
        };
        Self {
            embedding: EmbeddingEma { weight, initted: rng.param([1], Dist::Constant(if kmeans_init { 0.0 } else { 1.0 }), device) },
            cluster_size: rng.param([num_embed], Dist::Constant(0.0), device),
            decay,
            beta,
        }
    }

    /// Codebook size.
    pub fn num_embed(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// Code width.
    pub fn embed_dims(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// Whether the codebook is initialised (`initted` non-zero).
    pub fn is_initted(&self) -> bool {
        self.embedding.initted.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")[0] != 0.0
    }

    /// `d = ‖z‖² + ‖e‖² − 2 z·e` for normalised `z` `[N, dims]`: `[N,
    /// num_embed]`.
    pub fn distances(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let e = self.embedding.weight.val();
        let zz = z.clone().powi_scalar(2).sum_dim(1);
        let ee = e.clone().powi_scalar(2).sum_dim(1).transpose();
        zz + ee - z.matmul(e.transpose()).mul_scalar(2.0)
    }

    /// The nearest code of every normalised vector: `[N] -> [N]`.
    pub fn codes(&self, z: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        let n = z.dims()[0];
        self.distances(z).argmin(1).reshape([n])
    }

    /// The codebook entries of `codes` (`[N] -> [N, dims]`).
    pub fn lookup(&self, codes: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.embedding.weight.val().select(0, codes)
    }

    /// One batch's counts and sums for the EMA.
    pub fn statistics(&self, z: Tensor<B, 2>, codes: Tensor<B, 1, Int>) -> CodeStatistics<B> {
        let encodings = one_hot(codes, self.num_embed());
        CodeStatistics { bins: encodings.clone().sum_dim(0).reshape([self.num_embed()]), embed_sum: z.transpose().matmul(encodings) }
    }

    /// The training-mode update: `cluster_size ← decay·cluster_size +
    /// (1 − decay)·bins`; each code with hits moves its entry to
    /// `normalize(decay·e + (1 − decay)·normalize(sum / count))`, the
    /// others keep theirs (normalised again, as the reference does).
    pub fn apply_ema(mut self, stats: CodeStatistics<B>) -> Self {
        let decay = self.decay;
        let CodeStatistics { bins, embed_sum } = stats;
        self = self.apply_cluster_size_ema(bins.clone());
        let zero = bins.clone().equal_elem(0.0);
        let bins = bins.mask_fill(zero.clone(), 1.0);
        let mean = (embed_sum / bins.unsqueeze_dim::<2>(0)).transpose();
        let k = self.num_embed();
        let old = self.embedding.weight.val().detach();
        let normalized = l2_normalize(mean, 1).mask_where(zero.reshape([k, 1]).expand(old.dims()), old.clone());
        let new = l2_normalize(old.mul_scalar(decay) + normalized.mul_scalar(1.0 - decay), 1).detach();
        self.embedding.weight = self.embedding.weight.map(|_| new);
        self
    }

    /// The eval-mode update: only `cluster_size ← decay·cluster_size +
    /// (1 − decay)·bins`.
    pub fn apply_cluster_size_ema(mut self, bins: Tensor<B, 1>) -> Self {
        let decay = self.decay;
        self.cluster_size = self.cluster_size.map(|c| (c.mul_scalar(decay) + bins.mul_scalar(1.0 - decay)).detach());
        self
    }

    /// `init_embed_`: k-means (cosine, 10 iterations) on the normalised
    /// vectors `z` from the entries `z[indices]` (the reference draws them
    /// with `torch.randperm(N)[:num_embed]`, or `torch.randint(0, N,
    /// (num_embed,))` when `N < num_embed`); sets `initted`. A no-op when
    /// already initialised.
    pub fn init_embed(mut self, z: Tensor<B, 2>, indices: &[usize]) -> Self {
        if self.is_initted() {
            return self;
        }
        let (means, _) = kmeans(z, indices, 10, true);
        self.embedding.weight = self.embedding.weight.map(|_| means.detach());
        self.embedding.initted = self.embedding.initted.map(|t| t.ones_like());
        self
    }
}

/// `F.one_hot(codes, k)` as floats: `[N] -> [N, k]`.
fn one_hot<B: Backend>(codes: Tensor<B, 1, Int>, k: usize) -> Tensor<B, 2> {
    let n = codes.dims()[0];
    let classes = Tensor::<B, 1, Int>::arange(0..k as i64, &codes.device()).reshape([1, k]).expand([n, k]);
    codes.reshape([n, 1]).expand([n, k]).equal(classes).float()
}

/// The reference's `kmeans(samples, num_clusters, num_iters,
/// use_cosine_sim)` from the initial means `samples[indices]` (its
/// `sample_vectors` draw, passed in): `(means [k, d], bins [k])`, `bins`
/// the cluster sizes of the last assignment. Empty clusters keep their
/// mean.
pub fn kmeans<B: Backend>(
    samples: Tensor<B, 2>,
    indices: &[usize],
    num_iters: usize,
    use_cosine_sim: bool,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let device = samples.device();
    let [n, d] = samples.dims();
    let k = indices.len();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(indices.iter().map(|&i| i as i64).collect::<Vec<_>>(), [k]), &device);
    let mut means = samples.clone().select(0, idx);
    let mut bins = Tensor::<B, 1>::zeros([k], &device);
    for _ in 0..num_iters {
        let dists = if use_cosine_sim {
            samples.clone().matmul(means.clone().transpose())
        } else {
            let diff = samples.clone().unsqueeze_dim::<3>(1).expand([n, k, d]) - means.clone().unsqueeze_dim::<3>(0).expand([n, k, d]);
            diff.powi_scalar(2).sum_dim(2).reshape([n, k]).neg()
        };
        let buckets = dists.argmax(1).reshape([n]);
        let encodings = one_hot(buckets, k);
        bins = encodings.clone().sum_dim(0).reshape([k]);
        let zero = bins.clone().equal_elem(0.0);
        let clamped = bins.clone().mask_fill(zero.clone(), 1.0);
        let mut new_means = encodings.transpose().matmul(samples.clone()) / clamped.unsqueeze_dim::<2>(1);
        if use_cosine_sim {
            new_means = l2_normalize(new_means, 1);
        }
        means = new_means.mask_where(zero.reshape([k, 1]).expand([k, d]), means);
    }
    (means, bins)
}
