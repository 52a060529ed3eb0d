//! Port of `mmselfsup.models.algorithms.DeepCluster` (`deepcluster.py`):
//! a classifier trained on the clusters of the network's own features.
//!
//! The clustering runs between epochs in the `DeepClusterHook` (the
//! training crate): features of the whole dataset, PCA with whitening,
//! k-means, labels handed to the data loader, the sampler made uniform over
//! clusters, and the classifier re-initialised ([`DeepCluster::reinit_head`]).
//! Each sample's cluster arrives as its `clustering_label` pseudo-label;
//! the loss is the cross entropy weighted by the `loss_weight` buffer
//! (uniform `1/k` unless the hook re-weights), as MMSelfSup sets
//! `head.loss.class_weight = loss_weight` in every `loss()`.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::ClsHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::{AvgPool2dNeck, AvgPool2dNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{backbone_spec, check_common, class_weights, pseudo_labels, Backbone, BackboneOut, ContrastiveBackboneConfig},
    rotation_pred::{check_label_count, ClsHeadRegistry},
    Algorithm, AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// An `AvgPool2dNeck` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AvgPoolNeckRegistry {
        /// Global average pooling.
        "AvgPool2dNeck" => AvgPool2dNeck(AvgPool2dNeckConfig),
    }
}

/// `model = dict(type='DeepCluster', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepClusterConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone (a ResNet).
    pub backbone: ContrastiveBackboneConfig,
    /// Global pooling.
    pub neck: AvgPoolNeckRegistry,
    /// The classifier over the `k` clusters.
    pub head: ClsHeadRegistry,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for DeepClusterConfig {
    type Model<B: Backend> = DeepCluster<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        1
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "DeepCluster takes a ResNet"));
        }
        let AvgPoolNeckRegistry::AvgPool2dNeck(neck) = &self.neck;
        neck.validate().map_err(|(k, m)| ConfigIssue::new(format!("neck.{k}"), m))?;
        self.head.validate("head")?;
        let head = self.head.get();
        let flat = self.backbone.feat_dim() * neck.output_size * neck.output_size;
        if head.in_channels != flat {
            return Err(ConfigIssue::new("head.in_channels", format!("{} does not match the pooled features' {flat}", head.in_channels)));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> DeepCluster<B> {
        let AvgPoolNeckRegistry::AvgPool2dNeck(neck) = &self.neck;
        let k = self.head.get().num_classes;
        DeepCluster {
            backbone: self.backbone.init(device, rng),
            head: self.head.get().init(device, rng),
            loss_weight: class_weights(vec![1.0 / k as f32; k], device),
            neck: neck.init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    fn required_hooks(&self) -> &'static [&'static str] {
        &["DeepClusterHook"]
    }
}

/// DeepCluster: backbone, global pooling, the cluster classifier.
#[derive(Module, Debug)]
pub struct DeepCluster<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// `ClsHead` (`fc_cls`).
    pub head: ClsHead<B>,
    /// The cross entropy's class weights, `[k]` (buffer `loss_weight`).
    pub loss_weight: Param<Tensor<B, 1>>,
    #[module(skip)]
    neck: AvgPool2dNeck,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> DeepCluster<B> {
    /// The clusters.
    pub fn num_classes(&self) -> usize {
        self.loss_weight.dims()[0]
    }

    /// The features the hook clusters: `neck([backbone(x)])` flattened,
    /// `[n, c]` (what MMSelfSup's `Extractor` returns for DeepCluster).
    pub fn cluster_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let x = self.neck.forward(self.backbone.forward(inputs.first_view("DeepCluster")?.clone())?.map());
        Ok(x.flatten::<2>(1, 3))
    }

}

/// What the clustering hooks ask of the models they drive (DeepCluster and ODC);
/// other models answer `None` or stay as they are.
impl<B: Backend> Algorithm<B> {
    /// The features the `DeepClusterHook` clusters, `[n, c]`.
    pub fn cluster_features(&self, inputs: &SelfSupInputs<B>) -> Option<Result<Tensor<B, 2>, ModelError>> {
        match self {
            Algorithm::DeepCluster(m) => Some(m.cluster_features(inputs)),
            Algorithm::Odc(m) => Some(m.cluster_features(inputs)),
            _ => None,
        }
    }

    /// The class weights set (`set_reweight`), when `weights` is given.
    pub fn with_loss_weight(self, weights: Vec<f32>) -> Self {
        match self {
            Algorithm::DeepCluster(mut m) => {
                m.loss_weight = class_weights(weights, &m.loss_weight.device());
                Algorithm::DeepCluster(m)
            }
            Algorithm::Odc(m) => Algorithm::Odc(m.set_loss_weight(weights)),
            other => other,
        }
    }

    /// The classifier re-drawn (`head.init_weights()` after a clustering).
    pub fn with_new_classifier(self, rng: &mut InitRng) -> Self {
        match self {
            Algorithm::DeepCluster(mut m) => {
                m.head = m.head.reinit(rng);
                Algorithm::DeepCluster(m)
            }
            Algorithm::Odc(mut m) => {
                m.head = m.head.reinit(rng);
                Algorithm::Odc(m)
            }
            other => other,
        }
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for DeepCluster<B> {
    type Features = BackboneOut<B>;
    /// The cluster scores, `[n, k]`.
    type Prediction = Tensor<B, 2>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "DeepCluster"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
        self.backbone.forward(inputs.first_view("DeepCluster")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.global())
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let x = self.neck.forward(self.extract_feat(inputs)?.map());
        let labels = pseudo_labels(inputs, "clustering_label", "DeepCluster", "the DeepClusterHook's clustering", &x.device())?;
        check_label_count("DeepCluster", "clustering_label", labels.dims()[0], x.dims()[0])?;
        let loss = self.head.forward_weighted(x, labels, self.loss_weight.val().detach());
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.head.logits(self.neck.forward(self.extract_feat(inputs)?.map())))
    }
}
