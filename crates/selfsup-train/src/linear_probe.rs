//! `selfsup linear-probe`: a linear classifier on the frozen backbone's
//! global features, MMSelfSup's linear-evaluation benchmark
//! (`configs/benchmarks/classification/imagenet/*_linear-*`):
//!
//! - ResNets: global average pooling and `LinearClsHead` (`fc`, weights
//!   `N(0, 0.01)`, bias 0), SGD momentum 0.9, weight decay 1e-6, lr 0.3
//!   per 256 images, cosine over the epochs by epoch
//!   (`resnet50_linear-8xb32-coslr-100e_in1k.py`);
//! - ViTs: the cls token after the final norm, MAE's `ClsBatchNormNeck`
//!   (BatchNorm without affine, eps 1e-6) and a linear head (weights
//!   `N(0, 0.01)`), LARS momentum 0.9, no weight decay, lr 6.4, linear
//!   warm-up from 1e-4 over the first ninth of the epochs then cosine, per
//!   iteration (`vit-base-p16_linear-8xb2048-coslr-90e_in1k.py`). The lr is
//!   the reference's at any batch size: a LARS step moves each weight by
//!   `lr·η·‖p‖` whatever the gradient's size, so scaling it down for small
//!   batches (as MAE's `blr·batch/256`) stalls the short probes of small
//!   datasets;
//! - top-1 and top-min(5, classes) accuracy in percent on the evaluated set.
//!
//! The backbone is frozen in eval mode (`frozen_stages` covering every
//! stage, as those configs set), so its features do not change during the
//! probe: they are computed once, through the config's test pipeline, and
//! the head trains on them. This is where the benchmark differs from
//! MMSelfSup's: no `RandomResizedCrop`/flip augmentation per epoch, which
//! makes a probe a matter of seconds on a CPU. Absolute accuracies are
//! therefore a little different from the reference protocol's; the
//! comparison between two checkpoints, which is what the benchmark is for,
//! is not affected.
use std::path::Path;

use burn::{
    module::{AutodiffModule, Module},
    nn::Linear,
    optim::GradientsParams,
    tensor::{
        activation::log_softmax,
        backend::{AutodiffBackend, Backend},
        ElementConversion, Int, Tensor, TensorData,
    },
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use selfsup_layers::init::{Dist, InitRng};
use selfsup_necks::{ClsBatchNormNeck, ClsBatchNormNeckConfig};
use selfsup_weights::KeyMap;
use serde::Serialize;

use crate::{
    config::LoadedConfig,
    extract::load_model,
    knn::{labelled_features, LabelledData, LabelledFeatures},
    optim::{OptimWrapperConfig, Optimizer},
    schedule::{Schedule, SchedulerConfig, StepUnit},
    TrainError,
};

/// The optimiser of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProbeOptimizer {
    /// `torch.optim.SGD` with momentum 0.9.
    Sgd,
    /// MMSelfSup's LARS with momentum 0.9.
    Lars,
}

/// Options of [`linear_probe`]; `None` takes the protocol's value (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct LinearProbeOptions {
    /// Training epochs over the training set (MMSelfSup: 100 for ResNets,
    /// 90 for ViTs).
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// SGD or LARS.
    pub optimizer: Option<ProbeOptimizer>,
    /// Peak learning rate (default: 6.4 with LARS, `0.3·batch/256` with
    /// SGD).
    pub lr: Option<f64>,
    /// Weight decay.
    pub weight_decay: Option<f64>,
    /// Linear warm-up epochs.
    pub warmup_epochs: Option<usize>,
    /// Seed of the head's initialisation and the sample order.
    pub seed: u64,
    /// Images per batch of the feature pass.
    pub feature_batch_size: usize,
}

impl Default for LinearProbeOptions {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 256,
            optimizer: None,
            lr: None,
            weight_decay: None,
            warmup_epochs: None,
            seed: 0,
            feature_batch_size: 64,
        }
    }
}

/// One epoch of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's steps.
    pub loss: f64,
    /// Top-1 accuracy on the evaluated set, percent.
    pub top1: f64,
    /// Top-5 accuracy (top-min(5, classes)), percent.
    pub top5: f64,
}

/// What [`linear_probe`] measured, with the protocol it ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearProbeResult {
    /// Top-1 accuracy after the last epoch, percent.
    pub top1: f64,
    /// Top-5 accuracy after the last epoch, percent.
    pub top5: f64,
    /// Whether `ClsBatchNormNeck` normalised the features (ViTs).
    pub cls_batch_norm: bool,
    /// The optimiser.
    pub optimizer: ProbeOptimizer,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Warm-up epochs.
    pub warmup_epochs: usize,
    /// Training and evaluated samples, feature width and classes.
    pub num_train: usize,
    /// Evaluated samples.
    pub num_val: usize,
    /// Feature width.
    pub dim: usize,
    /// Classes.
    pub num_classes: usize,
    /// Every epoch's loss and accuracy.
    pub epochs: Vec<ProbeEpoch>,
}

/// The probe's trainable part: MMCls' `ImageClassifier` minus its frozen
/// backbone. Keys: `neck.bn.*` (ViTs) and `head.fc.{weight,bias}`.
#[derive(Module, Debug)]
pub struct LinearClassifier<B: Backend> {
    /// `ClsBatchNormNeck` for ViTs.
    pub neck: Option<ClsBatchNormNeck<B>>,
    /// The linear head.
    pub head: ClsHead<B>,
}

/// `LinearClsHead` (`fc`).
#[derive(Module, Debug)]
pub struct ClsHead<B: Backend> {
    /// `[in, classes]` weight (burn layout) and bias.
    pub fc: Linear<B>,
}

impl<B: Backend> LinearClassifier<B> {
    /// A classifier of `dim` features into `num_classes`, weights
    /// `N(0, 0.01)` and zero bias (mmcls' `Normal`/`TruncNormal(std=0.01)`
    /// head init; the ±2 truncation of the latter is 200 standard
    /// deviations away).
    pub fn new(dim: usize, num_classes: usize, cls_batch_norm: bool, seed: u64, device: &B::Device) -> Self {
        let mut rng = InitRng::new(seed);
        let neck = cls_batch_norm.then(|| ClsBatchNormNeckConfig { input_features: dim, ..Default::default() }.init(device, &mut rng));
        let fc = Linear {
            weight: rng.param([dim, num_classes], Dist::Normal(0.0, 0.01), device),
            bias: Some(rng.param([num_classes], Dist::Constant(0.0), device)),
        };
        Self { neck, head: ClsHead { fc } }
    }

    /// Class scores.
    ///
    /// # Shapes
    /// `[batch, dim] -> [batch, classes]`
    pub fn forward(&self, feats: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = match &self.neck {
            Some(neck) => neck.forward(feats),
            None => feats,
        };
        self.head.fc.forward(x)
    }
}

/// Extracts the frozen features of both sets with `checkpoint` (or, with
/// `None`, the randomly initialised model: the baseline), trains the
/// linear classifier on the training set and reports its accuracy on the
/// evaluated set after every epoch.
///
/// # Errors
/// Unreadable weights, images without labels, an empty set, fewer than two
/// classes, or a pipeline or model error.
pub fn linear_probe<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint: Option<&Path>,
    data: &LabelledData,
    opts: &LinearProbeOptions,
    device: &B::Device,
) -> Result<LinearProbeResult, TrainError> {
    let model = load_model::<B>(cfg, checkpoint, device)?;
    let (train, val) = labelled_features(cfg, &model, data, opts.feature_batch_size, device)?;
    drop(model);
    probe_features::<B>(&train, &val, cfg.run.model.has_vit_backbone(), opts, device)
}

/// [`linear_probe`] on features already extracted.
///
/// # Errors
/// Fewer than two classes, mismatched widths, zero epochs or batch size.
pub fn probe_features<B: AutodiffBackend>(
    train: &LabelledFeatures,
    val: &LabelledFeatures,
    cls_batch_norm: bool,
    opts: &LinearProbeOptions,
    device: &B::Device,
) -> Result<LinearProbeResult, TrainError> {
    let err = |m: String| TrainError::Other(format!("linear probe: {m}"));
    let dim = train.dim;
    if val.dim != dim {
        return Err(err(format!("training features are {dim} wide, evaluated ones {}", val.dim)));
    }
    if opts.epochs == 0 || opts.batch_size == 0 {
        return Err(err("epochs and batch size must be at least 1".into()));
    }
    let num_classes = train.labels.iter().chain(&val.labels).max().map_or(0, |m| m + 1);
    if num_classes < 2 {
        return Err(err(format!("needs at least two classes, found {num_classes}")));
    }
    let n = train.labels.len();
    let batch_size = opts.batch_size.min(n);
    let optimizer = opts.optimizer.unwrap_or(if cls_batch_norm { ProbeOptimizer::Lars } else { ProbeOptimizer::Sgd });
    let lr = opts.lr.unwrap_or(match optimizer {
        ProbeOptimizer::Lars => 6.4,
        ProbeOptimizer::Sgd => 0.3 * batch_size as f64 / 256.0,
    });
    let weight_decay = opts.weight_decay.unwrap_or(if cls_batch_norm { 0.0 } else { 1e-6 });
    let warmup = opts.warmup_epochs.unwrap_or(if cls_batch_norm { (opts.epochs as f64 / 9.0).round() as usize } else { 0 });
    let warmup = warmup.min(opts.epochs - 1);

    let optimizer_json = match optimizer {
        ProbeOptimizer::Sgd => serde_json::json!({"type": "SGD", "lr": lr, "momentum": 0.9, "weight_decay": weight_decay}),
        ProbeOptimizer::Lars => serde_json::json!({"type": "LARS", "lr": lr, "momentum": 0.9, "weight_decay": weight_decay}),
    };
    let wrapper: OptimWrapperConfig =
        serde_json::from_value(serde_json::json!({ "optimizer": optimizer_json })).map_err(|e| err(e.to_string()))?;
    // Steps per epoch: the last short batch is dropped when BatchNorm would
    // see a single sample.
    let steps = if cls_batch_norm && n % batch_size == 1 { n / batch_size } else { n.div_ceil(batch_size) };
    let mut schedulers = vec![];
    if warmup > 0 {
        schedulers.push(serde_json::json!({"type": "LinearLR", "start_factor": 1e-4, "by_epoch": true, "begin": 0, "end": warmup, "convert_to_iter_based": true}));
    }
    schedulers.push(serde_json::json!({"type": "CosineAnnealingLR", "T_max": opts.epochs - warmup, "by_epoch": true,
        "begin": warmup, "end": opts.epochs, "eta_min": 0.0, "convert_to_iter_based": cls_batch_norm}));
    let schedulers: Vec<SchedulerConfig> = serde_json::from_value(serde_json::Value::Array(schedulers)).map_err(|e| err(e.to_string()))?;

    let mut head = LinearClassifier::<B>::new(dim, num_classes, cls_batch_norm, opts.seed, device);
    let mut optim = Optimizer::<B>::new(&wrapper, &head, &KeyMap::new());
    let base: Vec<f64> = optim.group_lr_mults().iter().map(|m| lr * m).collect();
    let mut schedule = Schedule::new(&schedulers, base, optim.group_weight_decays().to_vec(), steps).map_err(err)?;

    let x_train = Tensor::<B, 2>::from_data(TensorData::new(train.feats.clone(), [n, dim]), device);
    let onehot = |labels: &[usize]| {
        let mut v = vec![0f32; labels.len() * num_classes];
        for (i, &l) in labels.iter().enumerate() {
            v[i * num_classes + l] = 1.0;
        }
        v
    };
    let y_train = Tensor::<B, 2>::from_data(TensorData::new(onehot(&train.labels), [n, num_classes]), device);
    let x_val = Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(val.feats.clone(), [val.labels.len(), dim]), device);

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut epochs = Vec::with_capacity(opts.epochs);
    for epoch in 0..opts.epochs {
        order.shuffle(&mut rng);
        // The epoch's losses are summed on the device and read once.
        let mut loss_sum: Option<Tensor<B::InnerBackend, 1>> = None;
        for step in 0..steps {
            let idx = &order[step * batch_size..((step + 1) * batch_size).min(n)];
            let idx_t =
                Tensor::<B, 1, Int>::from_data(TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [idx.len()]), device);
            let x = x_train.clone().select(0, idx_t.clone());
            let y = y_train.clone().select(0, idx_t);
            let logits = head.forward(x);
            let loss = (log_softmax(logits, 1) * y).sum().neg().div_scalar(idx.len() as f64);
            let value = loss.clone().inner();
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + value,
                None => value,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(schedule.lrs(), head, grads).0;
            schedule.step(StepUnit::Iter);
        }
        schedule.step(StepUnit::Epoch);
        let (top1, top5) = accuracy(&head.valid(), x_val.clone(), &val.labels, num_classes);
        let loss_sum = loss_sum.map_or(0.0, |sum| sum.into_scalar().elem::<f64>());
        epochs.push(ProbeEpoch { epoch: epoch + 1, loss: loss_sum / steps as f64, top1, top5 });
    }
    let last = *epochs.last().expect("at least one epoch");
    Ok(LinearProbeResult {
        top1: last.top1,
        top5: last.top5,
        cls_batch_norm,
        optimizer,
        lr,
        weight_decay,
        warmup_epochs: warmup,
        num_train: n,
        num_val: val.labels.len(),
        dim,
        num_classes,
        epochs,
    })
}

/// Top-1 and top-min(5, classes) accuracy in percent of `head` on `x`;
/// ties go to the lower class.
pub fn accuracy<B: Backend>(head: &LinearClassifier<B>, x: Tensor<B, 2>, labels: &[usize], num_classes: usize) -> (f64, f64) {
    let scores = head.forward(x).into_data().convert::<f32>().to_vec::<f32>().expect("data converted to f32 reads as f32");
    let (mut top1, mut top5) = (0usize, 0usize);
    for (row, &label) in scores.chunks(num_classes).zip(labels) {
        let above = row.iter().enumerate().filter(|&(c, &s)| s > row[label] || (s == row[label] && c < label)).count();
        top1 += usize::from(above == 0);
        top5 += usize::from(above < 5.min(num_classes));
    }
    let n = labels.len().max(1) as f64;
    (100.0 * top1 as f64 / n, 100.0 * top5 as f64 / n)
}
