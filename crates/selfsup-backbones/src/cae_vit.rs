//! Port of `mmselfsup.models.backbones.CAEViT` (mmselfsup 1.0.0): an mmcls
//! VisionTransformer whose layers are MMSelfSup's
//! [`TransformerEncoderLayer`] (q/v biases when `qkv_bias` is false, layer
//! scale `init_values`), with a fixed 2-D sin-cos position embedding. The
//! masked forward keeps only the visible patches (plus the cls token):
//! `x[~mask]`, in patch order, with their positions. CAE's teacher is a
//! second `CAEViT` that keeps the *masked* patches instead.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    init::{fixed, Dist, InitRng},
    transformer_blocks::{TransformerEncoderLayer, TransformerEncoderLayerConfig},
    NormCfg, PatchEmbed,
};
use serde::{Deserialize, Serialize};

use crate::{
    mae_vit::MaeVitConfig,
    vision_transformer::{VitArch, VitArchSpec, VitFeatures},
};

/// Configuration of [`CaeVit`], MMSelfSup's `CAEViT`: its `__init__`
/// arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaeVitConfig {
    /// `"b"`, `"l"`, another mmcls arch name, or custom dimensions.
    pub arch: VitArch,
    /// Input image size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Output layer indices; only the last layer (`-1`) is supported.
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth, linear from 0 over the layers.
    pub drop_path_rate: f64,
    /// A bias on the fused qkv Linears; when false, learned `q_bias` and
    /// `v_bias` (CAE's config).
    pub qkv_bias: bool,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Apply the final LayerNorm (`ln1`).
    pub final_norm: bool,
    /// Return the cls token (always true here).
    pub output_cls_token: bool,
    /// Position-embedding resize mode on checkpoint load (`"bicubic"`).
    pub interpolate_mode: String,
    /// Initial layer scale of every layer; no layer scale when 0. The
    /// default `None` fails in MMSelfSup (its layer compares it with 0), and
    /// is an error here; CAE's config sets 0.1.
    pub init_values: Option<f64>,
    /// Extra PatchEmbed arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// MMEngine `init_cfg`; must be null (use `load_from` or `selfsup convert`).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for CaeVitConfig {
    fn default() -> Self {
        Self {
            arch: VitArch::Name("b".into()),
            img_size: 224,
            patch_size: 16,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            qkv_bias: true,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: true,
            output_cls_token: true,
            interpolate_mode: "bicubic".into(),
            init_values: None,
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            init_cfg: None,
        }
    }
}

impl CaeVitConfig {
    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured. The ViT part is checked as an `MAEViT`'s.
    pub fn validate(&self) -> Result<VitArchSpec, (&'static str, String)> {
        let vit = MaeVitConfig {
            arch: self.arch.clone(),
            img_size: self.img_size,
            patch_size: self.patch_size,
            out_indices: self.out_indices.clone(),
            drop_rate: self.drop_rate,
            norm_cfg: self.norm_cfg.clone(),
            final_norm: self.final_norm,
            output_cls_token: self.output_cls_token,
            interpolate_mode: self.interpolate_mode.clone(),
            patch_cfg: self.patch_cfg.clone(),
            layer_cfgs: self.layer_cfgs.clone(),
            init_cfg: self.init_cfg.clone(),
            ..MaeVitConfig::default()
        };
        let spec = vit.validate()?;
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        match self.init_values {
            None => Err((
                "init_values",
                "MMSelfSup's TransformerEncoderLayer compares init_values with 0, so None fails there; set a number (CAE: 0.1, or 0 for no layer scale)"
                    .into(),
            )),
            Some(v) if !v.is_finite() => Err(("init_values", format!("must be finite, got {v}"))),
            Some(_) => Ok(spec),
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the backbone with CAEViT's `init_weights`: the sin-cos
    /// position embedding (fixed), a truncated-normal (std 0.02) cls token
    /// and patch projection with a zero bias, xavier-uniform Linears with
    /// zero biases, unit LayerNorms. Call [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> CaeVit<B> {
        let spec = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid CAEViT config at `{key}`: {msg}"));
        let (g, d, p) = (self.grid(), spec.embed_dims, self.patch_size);
        let tn = Dist::TruncNormal(0.0, 0.02);
        let mut patch_embed = PatchEmbed::new(3, d, p, device, rng);
        patch_embed.projection.weight = rng.param([d, 3, p, p], tn, device);
        patch_embed.projection.bias = Some(rng.param([d], Dist::Constant(0.0), device));
        let n = spec.num_layers;
        let layers = (0..n)
            .map(|i| {
                // np.linspace(0, drop_path_rate, num_layers)
                let dpr = if n > 1 { self.drop_path_rate * i as f64 / (n - 1) as f64 } else { 0.0 };
                TransformerEncoderLayerConfig {
                    embed_dims: d,
                    num_heads: spec.num_heads,
                    feedforward_channels: spec.feedforward_channels,
                    drop_path_rate: dpr,
                    qkv_bias: self.qkv_bias,
                    norm_cfg: self.norm_cfg.clone(),
                    init_values: self.init_values.unwrap_or(0.0),
                }
                .init(device, rng)
            })
            .collect();
        let pos = build_2d_sincos_position_embedding((g, g), d, 10000.0, true);
        CaeVit {
            cls_token: rng.param([1, 1, d], tn, device),
            pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, g * g + 1, d]), device)),
            patch_embed,
            layers,
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            img_size: self.img_size,
            patch_size: self.patch_size,
        }
    }
}

/// The patch indices a `[batch, L]` mask (1 = masked) splits each sample
/// into, in patch order: PyTorch's `x[~mask]` and `x[mask]` rows.
#[derive(Debug, Clone)]
pub struct MaskIds<B: Backend> {
    /// `[batch, visible]`; `None` when every patch is masked.
    pub visible: Option<Tensor<B, 2, Int>>,
    /// `[batch, masked]`; `None` when no patch is masked.
    pub masked: Option<Tensor<B, 2, Int>>,
}

impl<B: Backend> MaskIds<B> {
    /// Splits `mask` (`[batch, L]`, 1 = masked). Every sample must mask the
    /// same number of patches (MMSelfSup reshapes `x[~mask]` to `[batch,
    /// -1, dims]`); otherwise the error says how many each has.
    pub fn from_mask(mask: &Tensor<B, 2>) -> Result<Self, String> {
        let [n, l] = mask.dims();
        let values = mask.clone().into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("mask: {e:?}"))?;
        let (mut visible, mut masked) = (Vec::with_capacity(n * l), Vec::with_capacity(n * l));
        let mut counts = Vec::with_capacity(n);
        for row in values.chunks(l.max(1)).take(n) {
            let before = masked.len();
            for (i, v) in row.iter().enumerate() {
                if *v != 0.0 {
                    masked.push(i as i64)
                } else {
                    visible.push(i as i64)
                }
            }
            counts.push(masked.len() - before);
        }
        if counts.iter().any(|c| *c != counts[0]) {
            return Err(format!("every sample must mask the same number of patches, got {counts:?}"));
        }
        let m = counts.first().copied().unwrap_or(0);
        let device = mask.device();
        let ids = |v: Vec<i64>, k: usize| (k > 0 && n > 0).then(|| Tensor::from_data(TensorData::new(v, [n, k]), &device));
        Ok(Self { visible: ids(visible, l - m), masked: ids(masked, m) })
    }

    /// The number of masked patches per sample.
    pub fn num_masked(&self) -> usize {
        self.masked.as_ref().map_or(0, |m| m.dims()[1])
    }
}

/// Every patch in order: `[batch, L]` rows `0..L`.
pub fn all_patches<B: Backend>(n: usize, l: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..n).flat_map(|_| 0..l as i64).collect();
    Tensor::from_data(TensorData::new(ids, [n, l]), device)
}

/// Rows `ids` (`[batch, k]`) of each sample of `x` (`[batch, L, d]`).
pub fn gather_tokens<B: Backend>(x: Tensor<B, 3>, ids: &Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [n, k] = ids.dims();
    let d = x.dims()[2];
    x.gather(1, ids.clone().unsqueeze_dim::<3>(2).expand([n, k, d]))
}

/// CAE's ViT. Keys as MMSelfSup: `cls_token`, `pos_embed`,
/// `patch_embed.projection.*`, `layers.{i}.{gamma_1, gamma_2, ln1, attn.*,
/// ln2, ffn.layers.*}`, `ln1.*`.
#[derive(Module, Debug)]
pub struct CaeVit<B: Backend> {
    /// `[1, 1, embed_dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// Fixed sin-cos embedding `[1, 1 + L, embed_dims]`, zero cls row; not trained.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// Transformer layers.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// Final norm (mmcls's `ln1`), when `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    img_size: usize,
    patch_size: usize,
}

impl<B: Backend> CaeVit<B> {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// The input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// The patches' position embeddings `[batch, k, d]` for `ids`.
    pub fn pos_embed_of(&self, ids: &Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, _] = ids.dims();
        let l = self.grid() * self.grid();
        let d = self.embed_dims();
        gather_tokens(self.pos_embed.val().slice([0..1, 1..l + 1]).expand([n, l, d]), ids)
    }

    fn check_input(&self, x: &Tensor<B, 4>) -> Result<(), ModelError> {
        let [_, c, h, w] = x.dims();
        if c != 3 || h != self.img_size || w != self.img_size {
            return Err(ModelError::Shape {
                algorithm: "CAEViT",
                expected: format!("[batch, 3, {0}, {0}]", self.img_size),
                got: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// MMSelfSup's `CAEViT.forward(img, mask)`: the cls token and the
    /// visible patches' tokens after the layers (and `ln1`).
    ///
    /// # Shapes
    /// - `img`: `[batch, 3, img_size, img_size]`
    /// - `mask`: `[batch, L]`, 1 for the patches left out
    /// - returns `[batch, 1 + visible, embed_dims]`
    pub fn forward(&self, img: Tensor<B, 4>, mask: Tensor<B, 2>) -> Result<Tensor<B, 3>, ModelError> {
        let ids =
            MaskIds::from_mask(&mask).map_err(|message| ModelError::DataSample { algorithm: "CAEViT", field: "mask".into(), message })?;
        self.forward_visible(img, ids.visible.as_ref(), "backbone", None)
    }

    /// The forward on the patches `visible` (`[batch, k]` indices in patch
    /// order; `None`: only the cls token). `draws` (training) drive the
    /// stochastic depth under `{key}.layers.{i}.attn`/`.ffn`.
    pub fn forward_visible(
        &self,
        img: Tensor<B, 4>,
        visible: Option<&Tensor<B, 2, Int>>,
        key: &str,
        mut draws: Option<&mut Draws>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        self.check_input(&img)?;
        let l = self.grid() * self.grid();
        let n = img.dims()[0];
        if let Some(ids) = visible.filter(|ids| ids.dims()[0] != n || ids.dims()[1] > l) {
            return Err(ModelError::Shape {
                algorithm: "CAEViT",
                expected: format!("[{n}, k <= {l}] patch indices"),
                got: ids.dims().to_vec(),
            });
        }
        let d = self.embed_dims();
        let pos_cls = self.pos_embed.val().slice([0..1, 0..1]).expand([n, 1, d]);
        let mut x = self.cls_token.val().expand([n, 1, d]) + pos_cls;
        if let Some(ids) = visible {
            let patches = gather_tokens(self.patch_embed.forward(img), ids) + self.pos_embed_of(ids);
            x = Tensor::cat(vec![x, patches], 1);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &format!("{key}.layers.{i}"), draws.as_deref_mut());
        }
        Ok(match &self.ln1 {
            Some(norm) => norm.forward(x),
            None => x,
        })
    }

    /// The unmasked forward as features: the cls token and the patch map
    /// (mmpretrain's `CAEPretrainViT` with `mask=None`; MMSelfSup 1.0.0's
    /// `extract_feat` cannot call `CAEViT` without a mask).
    pub fn features(&self, img: Tensor<B, 4>) -> Result<VitFeatures<B>, ModelError> {
        let [n, _, _, _] = img.dims();
        let g = self.grid();
        let ids = all_patches::<B>(n, g * g, &img.device());
        let x = self.forward_visible(img, Some(&ids), "backbone", None)?;
        let d = x.dims()[2];
        let cls_token = x.clone().slice([0..n, 0..1]).reshape([n, d]);
        let patch_token = x.slice([0..n, 1..g * g + 1]).reshape([n, g, g, d]).permute([0, 3, 1, 2]);
        Ok(VitFeatures { patch_token, cls_token })
    }
}
