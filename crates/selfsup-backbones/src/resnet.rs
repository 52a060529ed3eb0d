//! Port of `mmselfsup.models.backbones.ResNet` (mmselfsup 1.0.0, on top of
//! `mmcls.models.backbones.ResNet`): depths 18/34/50/101/152, torchvision's
//! key layout, and MMSelfSup's `out_indices` where 0 is the stem; and
//! `ResNetSobel`, the same network on two input channels behind a frozen
//! [`Sobel`] stem (`sobel_layer.*`), which DeepCluster uses to hide colour.
//! The forward pass also runs sparse ([`ResNet::forward_sparse`]): SparK's
//! `SparseResNet` (`sparse_resnet.rs`) is this network with mmpretrain's
//! sparse layers.
use burn::{
    module::Module,
    nn::{
        conv::Conv2d,
        pool::{MaxPool2d, MaxPool2dConfig},
        PaddingConfig2d,
    },
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::fused::relu;
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::{conv2d, drop_path},
    init::{Dist, InitRng},
    sobel::Sobel,
    sparse_modules::{mask_inactive, sparse_batch_norm},
};
use serde::{Deserialize, Serialize};

/// Key rows between MMSelfSup's `downsample.0/1` (an `nn.Sequential`) and our
/// `downsample.conv/bn` fields, in [`selfsup_weights`-style] `(pytorch
/// pattern, ours, ours pattern, pytorch)` form.
pub const RESNET_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)downsample\.0\.", "${1}downsample.conv.", r"(^|\.)downsample\.conv\.", "${1}downsample.0."),
    (r"(^|\.)downsample\.1\.", "${1}downsample.bn.", r"(^|\.)downsample\.bn\.", "${1}downsample.1."),
];

/// `dict(type='ResNet', depth=50, ...)`: MMSelfSup's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// 18, 34, 50, 101 or 152.
    pub depth: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Stem width.
    pub stem_channels: usize,
    /// Width of the first stage (times the block expansion at its output).
    pub base_channels: usize,
    /// Block expansion; `None` is the block's own (1 basic, 4 bottleneck).
    pub expansion: Option<usize>,
    /// Number of stages (1–4).
    pub num_stages: usize,
    /// Stride of the first block of each stage.
    pub strides: Vec<usize>,
    /// Dilation of each stage.
    pub dilations: Vec<usize>,
    /// Outputs: 0 is the stem (after conv1/bn1/relu, before the max pool),
    /// 1..=4 the stages.
    pub out_indices: Vec<usize>,
    /// `"pytorch"` (stride on the 3×3 conv) or `"caffe"` (on the first 1×1).
    pub style: String,
    /// ResNetV1d's deep stem; not supported.
    pub deep_stem: bool,
    /// ResNetV1d's average-pool downsampling; not supported.
    pub avg_down: bool,
    /// Stages frozen (eval mode, no gradients): -1 none, 0 the stem, i the
    /// stem and stages 1..=i.
    pub frozen_stages: i64,
    /// Convolution config; only the default (`None`) is supported.
    pub conv_cfg: Option<serde_json::Value>,
    /// Norm config: `BN` or `SyncBN` (the same on one device).
    pub norm_cfg: BatchNormCfg,
    /// Keep every BatchNorm in eval mode while training.
    pub norm_eval: bool,
    /// Gradient checkpointing: accepted, no effect on the result.
    pub with_cp: bool,
    /// Zero the last BatchNorm scale of every block.
    pub zero_init_residual: bool,
    /// MMEngine `init_cfg`: Kaiming convolutions and unit norms are built in;
    /// other values are rejected (load weights with `load_from`).
    pub init_cfg: Option<serde_json::Value>,
    /// Stochastic depth of the residual branch, rising linearly over the
    /// blocks from 0 to this rate (mmcls's ResNet). MMSelfSup's algorithms
    /// train without it (it must be 0); SparK's `SparseResNet` uses it.
    pub drop_path_rate: f64,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 50,
            in_channels: 3,
            stem_channels: 64,
            base_channels: 64,
            expansion: None,
            num_stages: 4,
            strides: vec![1, 2, 2, 2],
            dilations: vec![1, 1, 1, 1],
            out_indices: vec![4],
            style: "pytorch".into(),
            deep_stem: false,
            avg_down: false,
            frozen_stages: -1,
            conv_cfg: None,
            norm_cfg: BatchNormCfg::new("BN"),
            norm_eval: false,
            with_cp: false,
            zero_init_residual: false,
            init_cfg: None,
            drop_path_rate: 0.0,
        }
    }
}

/// The two block types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34).
    Basic,
    /// 1×1, 3×3, 1×1 (ResNet-50/101/152).
    Bottleneck,
}

impl ResNetConfig {
    /// Block type and blocks per stage of `depth`.
    pub fn arch(&self) -> Result<(BlockKind, [usize; 4]), String> {
        Ok(match self.depth {
            18 => (BlockKind::Basic, [2, 2, 2, 2]),
            34 => (BlockKind::Basic, [3, 4, 6, 3]),
            50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
            101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
            152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
            d => return Err(format!("invalid depth {d} for resnet; expected 18, 34, 50, 101 or 152")),
        })
    }

    /// The block expansion.
    pub fn block_expansion(&self) -> usize {
        match (self.expansion, self.arch().map(|a| a.0)) {
            (Some(e), _) => e,
            (None, Ok(BlockKind::Basic)) => 1,
            _ => 4,
        }
    }

    /// Channels of output `index` (0 the stem, i the stage i).
    pub fn out_channels(&self, index: usize) -> usize {
        if index == 0 {
            self.stem_channels
        } else {
            self.base_channels * self.block_expansion() * (1 << (index - 1))
        }
    }

    /// Channels of the last requested output (what a neck receives).
    pub fn feat_dim(&self) -> usize {
        self.out_channels(self.out_indices.iter().copied().max().unwrap_or(self.num_stages))
    }

    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.check(false)
    }

    /// [`ResNetConfig::validate`], with stochastic depth allowed when the
    /// forward pass draws it (`with_drop_path`).
    pub(crate) fn check(&self, with_drop_path: bool) -> Result<(), (&'static str, String)> {
        let (kind, _) = self.arch().map_err(|e| ("depth", e))?;
        if !(1..=4).contains(&self.num_stages) {
            return Err(("num_stages", format!("must be in 1..=4, got {}", self.num_stages)));
        }
        if self.strides.len() != self.num_stages || self.dilations.len() != self.num_stages {
            return Err(("strides", format!("strides and dilations need {} entries (num_stages)", self.num_stages)));
        }
        if self.out_indices.is_empty() || self.out_indices.iter().any(|&i| i > self.num_stages) {
            return Err(("out_indices", format!("indices must be in 0..={} (0 is the stem)", self.num_stages)));
        }
        if self.style != "pytorch" && self.style != "caffe" {
            return Err(("style", format!("`{}`: expected \"pytorch\" or \"caffe\"", self.style)));
        }
        if self.deep_stem {
            return Err(("deep_stem", "the deep stem (ResNetV1d) is not supported".into()));
        }
        if self.avg_down {
            return Err(("avg_down", "average-pool downsampling (ResNetV1d) is not supported".into()));
        }
        if self.conv_cfg.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(("conv_cfg", "only the default convolution is supported".into()));
        }
        self.norm_cfg.validate().map_err(|e| ("norm_cfg", e))?;
        if self.frozen_stages < -1 || self.frozen_stages > self.num_stages as i64 {
            return Err(("frozen_stages", format!("must be in -1..={}", self.num_stages)));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        if !with_drop_path && self.drop_path_rate != 0.0 {
            return Err(("drop_path_rate", "MMSelfSup's ResNet trains without stochastic depth here; set 0".into()));
        }
        if let Some(v) = &self.init_cfg {
            let ok = match v {
                serde_json::Value::Null => true,
                serde_json::Value::Array(a) => a.iter().all(|e| matches!(e["type"].as_str(), Some("Kaiming" | "Constant"))),
                serde_json::Value::Object(o) => matches!(o.get("type").and_then(|t| t.as_str()), Some("Kaiming" | "Constant")),
                _ => false,
            };
            if !ok {
                return Err(("init_cfg", "only the built-in Kaiming/Constant init is supported; load weights with `load_from`".into()));
            }
        }
        let e = self.block_expansion();
        if kind == BlockKind::Basic && e != 1 {
            return Err(("expansion", "BasicBlock needs expansion 1".into()));
        }
        if !(self.base_channels * e).is_multiple_of(e) || self.base_channels == 0 || self.stem_channels == 0 {
            return Err(("base_channels", "channels must be positive".into()));
        }
        Ok(())
    }

    /// Builds the backbone with MMSelfSup's initialisation (Kaiming-normal
    /// fan-out convolutions, unit BatchNorms, zeroed last norm per block with
    /// `zero_init_residual`). Call [`ResNetConfig::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ResNet<B> {
        self.build(device, rng, false, false)
    }

    /// Builds the network for [`ResNet::forward_sparse`] (SparK), stochastic
    /// depth allowed.
    pub(crate) fn init_sparse<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ResNet<B> {
        self.build(device, rng, false, true)
    }

    /// Builds `ResNetSobel`: the network on two channels (`in_channels` is
    /// set to 2, as MMSelfSup's constructor does) behind the frozen Sobel stem.
    pub fn init_sobel<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ResNet<B> {
        Self { in_channels: 2, ..self.clone() }.build(device, rng, true, false)
    }

    fn build<B: Backend>(&self, device: &B::Device, rng: &mut InitRng, sobel: bool, with_drop_path: bool) -> ResNet<B> {
        if let Err((k, m)) = self.check(with_drop_path) {
            panic!("invalid ResNet config at `{k}`: {m}");
        }
        let (kind, blocks) = self.arch().expect("validated");
        let e = self.block_expansion();
        // mmcls: `torch.linspace(0, drop_path_rate, sum(stage_blocks))` over
        // the whole arch's blocks, whatever `num_stages`.
        let total: usize = blocks.iter().sum();
        let dpr = |i: usize| if total > 1 { self.drop_path_rate * i as f64 / (total - 1) as f64 } else { 0.0 };
        let mut block_index = 0;
        let conv = |rng: &mut InitRng, cin: usize, cout: usize, k: usize, stride: usize, pad: usize, dil: usize| {
            rng.conv2d(cin, cout, k, stride, pad, dil, Dist::kaiming_normal_fan_out(cout * k * k), None, device)
        };
        let bn = |rng: &mut InitRng, c: usize| self.norm_cfg.init::<B>(c, device, rng);
        let frozen = |i: usize| self.frozen_stages >= i as i64;
        let freeze = |b: TorchBatchNorm<B>, stage: usize| {
            if frozen(stage) {
                b.frozen(true)
            } else if self.norm_eval {
                b.frozen(false)
            } else {
                b
            }
        };

        let conv1 = conv(rng, self.in_channels, self.stem_channels, 7, 2, 3, 1);
        let bn1 = freeze(bn(rng, self.stem_channels), 0);
        let mut stages: Vec<Vec<ResBlock<B>>> = Vec::new();
        let mut cin = self.stem_channels;
        for (s, &num_blocks) in blocks.iter().enumerate().take(self.num_stages) {
            let cout = self.base_channels * e * (1 << s);
            let mid = cout / e;
            let (stride, dil) = (self.strides[s], self.dilations[s]);
            let mut layer = Vec::new();
            for b in 0..num_blocks {
                let st = if b == 0 { stride } else { 1 };
                let block_in = if b == 0 { cin } else { cout };
                let downsample = (b == 0 && (stride != 1 || cin != cout))
                    .then(|| Downsample { conv: conv(rng, block_in, cout, 1, st, 0, 1), bn: freeze(bn(rng, cout), s + 1) });
                let last_w = if self.zero_init_residual { 0.0 } else { 1.0 };
                let drop_path = dpr(block_index);
                block_index += 1;
                let block = match kind {
                    BlockKind::Basic => ResBlock {
                        conv1: conv(rng, block_in, mid, 3, st, dil, dil),
                        bn1: freeze(bn(rng, mid), s + 1),
                        conv2: conv(rng, mid, cout, 3, 1, dil, dil),
                        bn2: freeze(bn(rng, cout).with_weight(last_w), s + 1),
                        conv3: None,
                        bn3: None,
                        downsample,
                        drop_path,
                    },
                    BlockKind::Bottleneck => {
                        let (s1, s2) = if self.style == "pytorch" { (1, st) } else { (st, 1) };
                        ResBlock {
                            conv1: conv(rng, block_in, mid, 1, s1, 0, 1),
                            bn1: freeze(bn(rng, mid), s + 1),
                            conv2: conv(rng, mid, mid, 3, s2, dil, dil),
                            bn2: freeze(bn(rng, mid), s + 1),
                            conv3: Some(conv(rng, mid, cout, 1, 1, 0, 1)),
                            bn3: Some(freeze(bn(rng, cout).with_weight(last_w), s + 1)),
                            downsample,
                            drop_path,
                        }
                    }
                };
                layer.push(if frozen(s + 1) { block.no_grad() } else { block });
            }
            stages.push(layer);
            cin = cout;
        }
        let (conv1, bn1) = if frozen(0) { (conv1.no_grad(), bn1) } else { (conv1, bn1) };
        let mut it = stages.into_iter();
        ResNet {
            sobel_layer: sobel.then(|| Sobel::new(device)),
            conv1,
            bn1,
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(),
            layer1: it.next().unwrap_or_default(),
            layer2: it.next().unwrap_or_default(),
            layer3: it.next().unwrap_or_default(),
            layer4: it.next().unwrap_or_default(),
            out_indices: self.out_indices.clone(),
            in_channels: self.in_channels,
        }
    }
}

/// A residual block; BasicBlock when `conv3` is absent. Keys as torchvision.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    /// First convolution.
    pub conv1: Conv2d<B>,
    /// Its norm.
    pub bn1: TorchBatchNorm<B>,
    /// Second convolution (3×3).
    pub conv2: Conv2d<B>,
    /// Its norm.
    pub bn2: TorchBatchNorm<B>,
    /// Bottleneck's expanding 1×1 convolution.
    pub conv3: Option<Conv2d<B>>,
    /// Its norm.
    pub bn3: Option<TorchBatchNorm<B>>,
    /// The projection shortcut (`downsample.0/1` in checkpoints).
    pub downsample: Option<Downsample<B>>,
    /// Stochastic depth of the residual branch.
    pub drop_path: f64,
}

/// `nn.Sequential(conv1x1, norm)` shortcut.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// Key `downsample.0`.
    pub conv: Conv2d<B>,
    /// Key `downsample.1`.
    pub bn: TorchBatchNorm<B>,
}

/// How a forward pass runs its convolutions and norms: dense, or SparK's
/// sparse layers on an active map `[batch, 1, f, f]`.
struct Mode<'a, B: Backend> {
    active: Option<&'a Tensor<B, 4>>,
}

impl<B: Backend> Clone for Mode<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Mode<'_, B> {}

impl<B: Backend> Mode<'_, B> {
    /// A convolution (or pooling) output, masked when sparse.
    fn out(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.active {
            Some(a) => mask_inactive(x, a),
            None => x,
        }
    }

    fn conv(&self, c: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.out(conv2d(c, x))
    }

    fn bn(&self, bn: &TorchBatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.active {
            Some(a) => sparse_batch_norm(bn, x, a),
            None => bn.forward(x),
        }
    }
}

impl<B: Backend> ResBlock<B> {
    /// `[n, c_in, h, w] -> [n, c_out, h/stride, w/stride]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_mode(x, Mode { active: None }, "", None)
    }

    /// The block, its residual branch dropped per sample under the draw
    /// `{key}.drop_path` when training with `draws`.
    fn forward_mode(&self, x: Tensor<B, 4>, mode: Mode<'_, B>, key: &str, draws: Option<&mut Draws>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(d) => mode.bn(&d.bn, mode.conv(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = relu(mode.bn(&self.bn1, mode.conv(&self.conv1, x)));
        let out = mode.bn(&self.bn2, mode.conv(&self.conv2, out));
        let out = match (&self.conv3, &self.bn3) {
            (Some(c), Some(b)) => mode.bn(b, mode.conv(c, relu(out))),
            _ => out,
        };
        let out = if self.drop_path > 0.0 && draws.is_some() {
            let [n, c, h, w] = out.dims();
            drop_path(out.reshape([n, c, h * w]), self.drop_path, &format!("{key}.drop_path"), draws).reshape([n, c, h, w])
        } else {
            out
        };
        relu(out + identity)
    }
}

/// MMSelfSup's ResNet. Keys `conv1`, `bn1`, `layer{1..4}.{j}.*`.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// `ResNetSobel`'s frozen gray + Sobel stem, before `conv1`.
    pub sobel_layer: Option<Sobel<B>>,
    /// Stem convolution, 7×7 stride 2.
    pub conv1: Conv2d<B>,
    /// Stem norm.
    pub bn1: TorchBatchNorm<B>,
    /// 3×3 stride-2 max pool.
    pub maxpool: MaxPool2d,
    /// Stage 1.
    pub layer1: Vec<ResBlock<B>>,
    /// Stage 2.
    pub layer2: Vec<ResBlock<B>>,
    /// Stage 3.
    pub layer3: Vec<ResBlock<B>>,
    /// Stage 4.
    pub layer4: Vec<ResBlock<B>>,
    out_indices: Vec<usize>,
    in_channels: usize,
}

impl<B: Backend> ResNet<B> {
    /// The configured outputs, in increasing index order (MMSelfSup's tuple).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`
    /// - output `i`: `[batch, C_i, h/s_i, w/s_i]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Vec<Tensor<B, 4>>, ModelError> {
        self.forward_mode(x, Mode { active: None }, None)
    }

    /// The outputs of the network with mmpretrain's sparse layers (SparK's
    /// `SparseResNet`): every convolution and pooling output is zero outside
    /// the active map `active` (`[batch, 1, f, f]`, 1 where kept, at the
    /// coarsest output's resolution), every BatchNorm normalises over active
    /// positions only. Stochastic depth draws `layer{i}.{j}.drop_path` when
    /// `draws` is given (training).
    pub fn forward_sparse(
        &self,
        x: Tensor<B, 4>,
        active: &Tensor<B, 4>,
        draws: Option<&mut Draws>,
    ) -> Result<Vec<Tensor<B, 4>>, ModelError> {
        self.forward_mode(x, Mode { active: Some(active) }, draws)
    }

    fn forward_mode(&self, x: Tensor<B, 4>, mode: Mode<'_, B>, mut draws: Option<&mut Draws>) -> Result<Vec<Tensor<B, 4>>, ModelError> {
        let dims = x.dims();
        let channels = if self.sobel_layer.is_some() { 3 } else { self.in_channels };
        if dims[1] != channels || dims[2] < 2 || dims[3] < 2 {
            return Err(ModelError::Shape {
                algorithm: "ResNet",
                expected: format!("[batch, {channels}, height, width]"),
                got: dims.to_vec(),
            });
        }
        let x = match &self.sobel_layer {
            Some(sobel) => sobel.forward(x),
            None => x,
        };
        let mut outs = Vec::new();
        let mut x = relu(mode.bn(&self.bn1, mode.conv(&self.conv1, x)));
        if self.out_indices.contains(&0) {
            outs.push(x.clone());
        }
        x = mode.out(self.maxpool.forward(x));
        for (i, stage) in [&self.layer1, &self.layer2, &self.layer3, &self.layer4].into_iter().enumerate() {
            if stage.is_empty() {
                break;
            }
            for (j, block) in stage.iter().enumerate() {
                x = block.forward_mode(x, mode, &format!("layer{}.{j}", i + 1), draws.as_deref_mut());
            }
            if self.out_indices.contains(&(i + 1)) {
                outs.push(x.clone());
            }
        }
        Ok(outs)
    }

    /// The last configured output.
    pub fn forward_last(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(self.forward(x)?.pop().expect("out_indices is never empty"))
    }
}
