//! Port of `mmpretrain.models.selfsup.SparK` (mmpretrain 1.2.0, `spark.py`):
//! BERT-style masked modelling for convolutional networks. The image is
//! masked on a coarse grid (`input_size / downsample_raito` cells,
//! `mask_ratio` of them dropped); the `SparseResNet` encoder sees only the
//! kept cells (every layer zero elsewhere, BatchNorm statistics over kept
//! positions); each of its feature maps, coarsest first, is normalised by a
//! sparse norm, its empty positions filled with that scale's learned mask
//! token, and projected (1×1 for the coarsest, 3×3 otherwise, or nothing
//! when the dimensions already agree); `SparKLightDecoder` upsamples them
//! to an image and `SparKPretrainHead` scores it on the dropped cells.
//!
//! The mask is the draw `mask_noise` (`[batch, f·f]` uniform values; the
//! `round(f²·(1 − mask_ratio))` smallest are kept), as mmpretrain's
//! `torch.rand(B, f*f).argsort(dim=1)`. Keys as mmpretrain's `state_dict`:
//! `backbone.*`, `neck.*`, `enc_dec_norms.{i}.*`,
//! `enc_dec_projectors.{i}.*`, `mask_tokens.{i}`.
use burn::{
    module::{Module, Param},
    nn::conv::Conv2d,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_backbones::{SparseResNet, SparseResNetConfig};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{SparKPretrainHead, SparKPretrainHeadConfig};
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::conv2d,
    init::{Dist, InitRng},
    sparse_modules::{active_at, sparse_batch_norm, sparse_layer_norm, SparseLayerNormCfg},
};
use selfsup_necks::{SparKLightDecoder, SparKLightDecoderConfig};
use serde::{Deserialize, Serialize};

use crate::{
    mae::{mae_prediction, MaePrediction},
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// SparK's encoder.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SparKBackboneConfig {
        /// mmpretrain's `SparseResNet`.
        "SparseResNet" => SparseResNet(SparseResNetConfig),
    }
}

selfsup_config::registry! {
    /// SparK's decoder.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SparKNeckRegistry {
        /// mmpretrain's `SparKLightDecoder`.
        "SparKLightDecoder" => SparKLightDecoder(SparKLightDecoderConfig),
    }
}

selfsup_config::registry! {
    /// SparK's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SparKHeadRegistry {
        /// mmpretrain's `SparKPretrainHead`.
        "SparKPretrainHead" => SparKPretrainHead(SparKPretrainHeadConfig),
    }
}

selfsup_config::registry! {
    /// `enc_dec_norm_cfg`: the sparse norm of each scale.
    #[derive(Debug, Clone, PartialEq)]
    pub enum EncDecNormCfg {
        /// A BatchNorm over active positions, statistics synchronised over
        /// replicas in mmpretrain (one device's is `SparseBatchNorm2d`).
        "SparseSyncBatchNorm2d" => SparseSyncBatchNorm2d(SparseBnCfg),
        /// A BatchNorm over active positions.
        "SparseBatchNorm2d" => SparseBatchNorm2d(SparseBnCfg),
        /// A LayerNorm over channels at active positions.
        "SparseLN2d" => SparseLn2d(SparseLayerNormCfg),
    }
}

/// `dict(type='SparseBatchNorm2d', eps=1e-5, momentum=0.1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseBnCfg {
    /// Epsilon added to the variance.
    #[serde(default = "bn_eps")]
    pub eps: f64,
    /// Running-statistics momentum.
    #[serde(default = "bn_momentum")]
    pub momentum: f64,
}

fn bn_eps() -> f64 {
    1e-5
}
fn bn_momentum() -> f64 {
    0.1
}
fn input_224() -> usize {
    224
}
fn ratio_32() -> usize {
    32
}
fn mask_060() -> f64 {
    0.6
}
fn dim_2048() -> usize {
    2048
}
fn sync_bn() -> EncDecNormCfg {
    EncDecNormCfg::SparseSyncBatchNorm2d(SparseBnCfg { eps: bn_eps(), momentum: bn_momentum() })
}

/// `model = dict(type='SparK', ...)`: mmpretrain's field names (its
/// spelling `downsample_raito` included) and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparKConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='SparseResNet', ...)`.
    pub backbone: SparKBackboneConfig,
    /// `dict(type='SparKLightDecoder', ...)`.
    pub neck: SparKNeckRegistry,
    /// `dict(type='SparKPretrainHead', ...)`.
    pub head: SparKHeadRegistry,
    /// A weight file for the whole model; must be null (use `load_from`).
    #[serde(default)]
    pub pretrained: Option<String>,
    /// The image side the mask grid is made for.
    #[serde(default = "input_224")]
    pub input_size: usize,
    /// The encoder's total stride: one mask cell is this many pixels.
    #[serde(default = "ratio_32")]
    pub downsample_raito: usize,
    /// Share of the cells dropped.
    #[serde(default = "mask_060")]
    pub mask_ratio: f64,
    /// The sparse norm of each scale.
    #[serde(default = "sync_bn")]
    pub enc_dec_norm_cfg: EncDecNormCfg,
    /// Channels of the coarsest scale's norm (halved per finer scale).
    #[serde(default = "dim_2048")]
    pub enc_dec_norm_dim: usize,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl SparKConfig {
    fn parts(&self) -> (&SparseResNetConfig, &SparKLightDecoderConfig, &SparKPretrainHeadConfig) {
        let SparKBackboneConfig::SparseResNet(b) = &self.backbone;
        let SparKNeckRegistry::SparKLightDecoder(n) = &self.neck;
        let SparKHeadRegistry::SparKPretrainHead(h) = &self.head;
        (b, n, h)
    }

    /// The side of the mask grid, `input_size / downsample_raito`.
    pub fn feature_map_size(&self) -> usize {
        self.input_size / self.downsample_raito.max(1)
    }

    /// Cells kept per image: Python's `round(f²·(1 − mask_ratio))`.
    pub fn len_keep(&self) -> usize {
        let f = self.feature_map_size();
        ((f * f) as f64 * (1.0 - self.mask_ratio)).round_ties_even() as usize
    }
}

impl AlgorithmSpec for SparKConfig {
    type Model<B: Backend> = SparK<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.input_size)
    }

    fn has_vit_backbone(&self) -> bool {
        false
    }

    /// Every part, and how they fit: the encoder's outputs double in
    /// resolution from the coarsest, at `downsample_raito`; the norms'
    /// channels are the encoder's, coarsest first; the decoder undoes the
    /// same stride, and the head's patch is one mask cell.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        if self.pretrained.is_some() {
            return Err(ConfigIssue::new("pretrained", "not supported; load weights with `load_from`"));
        }
        let (backbone, neck, head) = self.parts();
        backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(ConfigIssue::new("mask_ratio", format!("must be in [0, 1), got {}", self.mask_ratio)));
        }
        let r = self.downsample_raito;
        if r == 0 || self.input_size == 0 || !self.input_size.is_multiple_of(r) {
            return Err(ConfigIssue::new("downsample_raito", format!("{r} does not divide input_size {}", self.input_size)));
        }
        if self.len_keep() == 0 {
            return Err(ConfigIssue::new("mask_ratio", "keeps no cell of the mask grid"));
        }
        let strides = backbone.out_strides();
        let channels = backbone.out_channels();
        if strides.last() != Some(&r) || strides.windows(2).any(|w| w[1] != 2 * w[0]) {
            return Err(ConfigIssue::new(
                "backbone.out_indices",
                format!("the outputs' strides {strides:?} must double up to downsample_raito {r}"),
            ));
        }
        for (i, &c) in channels.iter().rev().enumerate() {
            let dim = self.enc_dec_norm_dim >> i;
            if dim != c {
                return Err(ConfigIssue::new("enc_dec_norm_dim", format!("scale {i} has {c} channels, the norm {dim}")));
            }
        }
        if let EncDecNormCfg::SparseSyncBatchNorm2d(c) | EncDecNormCfg::SparseBatchNorm2d(c) = &self.enc_dec_norm_cfg {
            BatchNormCfg { eps: c.eps, momentum: c.momentum, ..BatchNormCfg::new("BN") }
                .validate()
                .map_err(|e| ConfigIssue::new("enc_dec_norm_cfg", e))?;
        }
        if neck.upsample_ratio != r {
            return Err(ConfigIssue::new("neck.upsample_ratio", format!("{} is not downsample_raito {r}", neck.upsample_ratio)));
        }
        if neck.channels().len() <= channels.len() {
            return Err(ConfigIssue::new("neck.upsample_ratio", format!("the decoder has fewer modules than the {} scales", channels.len())));
        }
        if (neck.feature_dim >> (channels.len() - 1)) == 0 {
            return Err(ConfigIssue::new("neck.feature_dim", "halves to 0 before the finest scale"));
        }
        if head.patch_size != r {
            return Err(ConfigIssue::new("head.patch_size", format!("{} is not downsample_raito {r}", head.patch_size)));
        }
        if backbone.in_channels != 3 {
            return Err(ConfigIssue::new("backbone.in_channels", "SparK reconstructs 3-channel images"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SparK<B> {
        let (backbone, neck, head) = self.parts();
        let scales = backbone.out_indices.len();
        let mut enc_dec_norms = Vec::new();
        let mut enc_dec_projectors = Vec::new();
        let mut mask_tokens = Vec::new();
        let (mut dim, mut out) = (self.enc_dec_norm_dim, neck.feature_dim);
        for i in 0..scales {
            enc_dec_norms.push(match &self.enc_dec_norm_cfg {
                EncDecNormCfg::SparseSyncBatchNorm2d(c) | EncDecNormCfg::SparseBatchNorm2d(c) => {
                    EncDecNorm::Bn(TorchBatchNorm::new(dim, true, c.eps, c.momentum, device, rng))
                }
                EncDecNormCfg::SparseLn2d(c) => EncDecNorm::Ln(c.init(dim, device)),
            });
            // PyTorch's default `Conv2d` init: U(±1/√fan_in), weight and bias.
            let k = if i == 0 { 1 } else { 3 };
            let bound = 1.0 / ((dim * k * k) as f64).sqrt();
            let dist = Dist::Uniform(-bound, bound);
            enc_dec_projectors.push((i > 0 || dim != out).then(|| rng.conv2d(dim, out, k, 1, k / 2, 1, dist, Some(dist), device)));
            mask_tokens.push(rng.param([1, dim, 1, 1], Dist::TruncNormalWithin(0.0, 0.02, -0.02, 0.02), device));
            dim /= 2;
            out /= 2;
        }
        SparK {
            backbone: backbone.init(device, rng),
            neck: neck.init(device, rng),
            enc_dec_norms,
            enc_dec_projectors,
            mask_tokens,
            head: head.init(),
            data_preprocessor: self.data_preprocessor.clone(),
            input_size: self.input_size,
            feature_map_size: self.feature_map_size(),
            len_keep: self.len_keep(),
        }
    }
}

/// A scale's sparse norm: BatchNorm or LayerNorm over active positions.
#[derive(Module, Debug)]
pub enum EncDecNorm<B: Backend> {
    /// `SparseSyncBatchNorm2d` / `SparseBatchNorm2d`.
    Bn(TorchBatchNorm<B>),
    /// `SparseLN2d`.
    Ln(LayerNorm<B>),
}

impl<B: Backend> EncDecNorm<B> {
    fn forward(&self, x: Tensor<B, 4>, active: &Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            EncDecNorm::Bn(bn) => sparse_batch_norm(bn, x, active),
            EncDecNorm::Ln(ln) => sparse_layer_norm(ln, x, active),
        }
    }
}

/// SparK.
#[derive(Module, Debug)]
pub struct SparK<B: Backend> {
    /// The sparse encoder.
    pub backbone: SparseResNet<B>,
    /// The light decoder.
    pub neck: SparKLightDecoder<B>,
    /// Each scale's sparse norm, coarsest first.
    pub enc_dec_norms: Vec<EncDecNorm<B>>,
    /// Each scale's projection to the decoder's width (`None`: identity).
    pub enc_dec_projectors: Vec<Option<Conv2d<B>>>,
    /// Each scale's mask token `[1, C, 1, 1]`.
    pub mask_tokens: Vec<Param<Tensor<B, 4>>>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: SparKPretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
    input_size: usize,
    feature_map_size: usize,
    len_keep: usize,
}

impl<B: Backend> SparK<B> {
    /// The active map `[batch, 1, f, f]` (1 kept) from the draw `mask_noise`.
    pub fn mask(&self, batch: usize, draws: &mut Draws, device: &B::Device) -> Tensor<B, 4> {
        let f = self.feature_map_size;
        let l = f * f;
        let noise = draws.uniform("mask_noise", batch * l);
        let mut active = vec![0f32; batch * l];
        for (noise, active) in noise.chunks(l).zip(active.chunks_mut(l)) {
            let mut order: Vec<usize> = (0..l).collect();
            order.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
            for &i in &order[..self.len_keep] {
                active[i] = 1.0;
            }
        }
        Tensor::from_data(TensorData::new(active, [batch, 1, f, f]), device)
    }

    fn image(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        let img = inputs.expect_views("SparK", 1)?[0].clone();
        let dims = img.dims();
        if dims[1] != 3 || dims[2] != self.input_size || dims[3] != self.input_size {
            return Err(ModelError::Shape {
                algorithm: "SparK",
                expected: format!("[batch, 3, {0}, {0}] (input_size)", self.input_size),
                got: dims.to_vec(),
            });
        }
        Ok(img)
    }

    /// The reconstruction of `img` seen through the active map `active`
    /// (`[batch, 1, f, f]`); stochastic depth draws from `draws` when given.
    pub fn reconstruct(&self, img: Tensor<B, 4>, active: &Tensor<B, 4>, draws: Option<&mut Draws>) -> Result<Tensor<B, 4>, ModelError> {
        let [_, c, h, _] = img.dims();
        let masked = img * active_at(active, h).repeat_dim(1, c);
        let mut maps = self.backbone.forward_sparse(masked, active, draws)?;
        maps.reverse();
        let to_dec: Vec<Option<Tensor<B, 4>>> = maps
            .into_iter()
            .enumerate()
            .map(|(i, map)| {
                let [_, ch, mh, _] = map.dims();
                let map = self.enc_dec_norms[i].forward(map, active);
                // torch.where(active, map, mask_token): the token fills the
                // empty positions.
                let on = active_at(active, mh).repeat_dim(1, ch);
                let token = self.mask_tokens[i].val();
                let filled = map * on.clone() + (on.neg().add_scalar(1.0)) * token;
                Some(match &self.enc_dec_projectors[i] {
                    Some(p) => conv2d(p, filled),
                    None => filled,
                })
            })
            .collect();
        Ok(self.neck.forward(&to_dec))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for SparK<B> {
    type Features = Vec<Tensor<B, 4>>;
    /// The reconstruction in the input's space (de-normalised per patch
    /// with the image's statistics when `norm_pix`), its patches and the
    /// mask on the grid of cells (1 dropped), as MAE's.
    type Prediction = MaePrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "SparK"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The encoder's maps on the whole image (every position active, which
    /// is the dense network).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Vec<Tensor<B, 4>>, ModelError> {
        self.backbone.forward(inputs.first_view("SparK")?.clone())
    }

    /// The average over the coarsest map, as ResNet's classifier pools it.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let map = self.extract_feat(inputs)?.pop().expect("out_indices is never empty");
        let [n, c, _, _] = map.dims();
        Ok(map.mean_dim(3).mean_dim(2).reshape([n, c]))
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let img = self.image(inputs)?;
        let active = self.mask(img.dims()[0], draws, &img.device());
        let rec = self.reconstruct(img.clone(), &active, Some(draws))?;
        Ok((LossOutput::new().with("loss", self.head.forward(rec, img, active)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<MaePrediction<B>, ModelError> {
        let img = self.image(inputs)?;
        let n = img.dims()[0];
        let active = self.mask(n, draws, &img.device());
        let rec = self.reconstruct(img.clone(), &active, None)?;
        let head = self.head.patches();
        let l = self.feature_map_size * self.feature_map_size;
        let mask = active.reshape([n, l]).neg().add_scalar(1.0);
        Ok(mae_prediction(&head, img, head.patchify(rec), mask))
    }
}
