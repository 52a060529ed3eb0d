//! The machinery behind the algorithm list in `lib.rs`: the config-side
//! trait every algorithm's config implements ([`AlgorithmSpec`]) and the
//! `algorithms!` macro that turns the list into `AlgorithmConfig` (the
//! `model.type` registry), `Algorithm<B>` (the module enum) and their
//! per-variant companions.
//!
//! Every per-algorithm question the runner and the tools ask is a method of
//! [`AlgorithmSpec`] or of [`SelfSupAlgorithm`]; the enums answer it with a
//! `match` the macro writes, one arm per listed algorithm. Nothing here is
//! maintained by hand per algorithm, so an algorithm that is listed but
//! lacks a piece does not compile.
use burn::tensor::backend::Backend;
use selfsup_core::{DataPreprocessorConfig, SelfSupAlgorithm};
use selfsup_layers::init::InitRng;

/// A config field that cannot be honoured, with its key path below `model`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{key}: {message}")]
pub struct ConfigIssue {
    /// Key path below `model` (`"neck.embed_dim"`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// What an algorithm's config (`model = dict(type=..., ...)`) tells the
/// runner and the tools before any module exists.
pub trait AlgorithmSpec {
    /// The module the config builds.
    type Model<B: Backend>: SelfSupAlgorithm<B>;

    /// Checks the config, including dimensions that depend on each other.
    fn validate(&self) -> Result<(), ConfigIssue>;

    /// Builds the module with initial weights drawn from `rng`. The caller
    /// runs [`SelfSupAlgorithm::prepare`] afterwards.
    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Self::Model<B>;

    /// The data preprocessor config.
    fn data_preprocessor(&self) -> &DataPreprocessorConfig;

    /// Number of views a batch must have.
    fn num_views(&self) -> usize;

    /// The size of each view for synthetic inputs (benchmarks) when the
    /// first view is `size` pixels. Default: every view `size`.
    fn view_sizes(&self, size: usize) -> Vec<usize> {
        vec![size; self.num_views()]
    }

    /// The square input size the model expects, when it fixes one.
    fn input_size(&self) -> Option<usize>;

    /// Whether the backbone is a ViT (its global feature is the cls token).
    fn has_vit_backbone(&self) -> bool;

    /// Checks the training batch size against the model (queues that take
    /// whole batches). Default: any size.
    fn check_batch_size(&self, _batch_size: usize) -> Result<(), String> {
        Ok(())
    }

    /// The `custom_hooks` types training cannot do without (DeepCluster's
    /// clustering between epochs, ...), checked when the config loads.
    /// Default: none; SwAV and DenseCL train without their hooks, as in
    /// MMSelfSup.
    fn required_hooks(&self) -> &'static [&'static str] {
        &[]
    }

    /// Loads the weight files the config names for parts that are not
    /// trained and not in a training checkpoint's scope (a tokenizer's or a
    /// teacher's `init_cfg=dict(type='Pretrained', checkpoint=...)`, CLIP's
    /// `tokenizer_path`), into a freshly built model. Runs after
    /// [`AlgorithmSpec::init`], when training starts and when a tool builds
    /// the model to use it; an error names the config key and the file.
    /// Default: nothing to load.
    fn load_pretrained<B: Backend>(&self, model: Self::Model<B>) -> Result<Self::Model<B>, ConfigIssue> {
        Ok(model)
    }
}

/// Builds `AlgorithmConfig`, `Algorithm<B>`, `AnyFeatures<B>`,
/// `AnyPrediction<B>` and `AnyStepState<B>` from one list of
/// `"Type" => Variant(ConfigType, ModelType) in module` entries, with every
/// dispatch between them. `in module` declares the algorithm's file
/// (`pub mod module;`) and re-exports the two types; without it the types
/// must be in scope.
///
/// `selfsup-algorithms` invokes it once, in `lib.rs`, with every algorithm
/// it ships. A crate that adds its own algorithms may invoke it too, with
/// the shipped entries it wants plus its own; it needs `burn` as a
/// dependency (burn's `Module` derive names it).
#[macro_export]
macro_rules! algorithms {
    ($( $(#[$doc:meta])* $tag:literal => $variant:ident($config:ident, $model:ident) $(in $module:ident)? ),+ $(,)?) => {
        $($(
            pub mod $module;
            pub use $module::{$config, $model};
        )?)+

        $crate::__private::selfsup_config::registry! {
            /// `model = dict(type=..., ...)`: every algorithm selfsup implements.
            #[derive(Debug, Clone, PartialEq)]
            pub enum AlgorithmConfig {
                $( $(#[$doc])* $tag => $variant($config), )+
            }
        }

        /// Any algorithm, chosen from a config. Checkpoint keys are the inner
        /// algorithm's (`backbone.*`, `neck.*`): the variant name never appears.
        #[derive(burn::module::Module, Debug)]
        pub enum Algorithm<B: $crate::__private::burn::tensor::backend::Backend> {
            $( $(#[$doc])* $variant($model<B>), )+
        }

        /// The `tensor`-mode output of any algorithm.
        pub enum AnyFeatures<B: $crate::__private::burn::tensor::backend::Backend> {
            $( $(#[$doc])* $variant(<$model<B> as $crate::__private::selfsup_core::SelfSupAlgorithm<B>>::Features), )+
        }

        /// The `predict` output of any algorithm.
        pub enum AnyPrediction<B: $crate::__private::burn::tensor::backend::Backend> {
            $( $(#[$doc])* $variant(<$model<B> as $crate::__private::selfsup_core::SelfSupAlgorithm<B>>::Prediction), )+
        }

        /// The step state of any algorithm, from its `loss` to its `after_step`.
        pub enum AnyStepState<B: $crate::__private::burn::tensor::backend::Backend> {
            $( $(#[$doc])* $variant(<$model<B> as $crate::__private::selfsup_core::SelfSupAlgorithm<B>>::StepState), )+
        }

        impl<B: $crate::__private::burn::tensor::backend::Backend> core::fmt::Debug for AnyStepState<B> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self { $( Self::$variant(_) => f.write_str(concat!("AnyStepState::", stringify!($variant))), )+ }
            }
        }

        impl<B: $crate::__private::burn::tensor::backend::Backend> core::fmt::Debug for AnyPrediction<B> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self { $( Self::$variant(_) => f.write_str(concat!("AnyPrediction::", stringify!($variant))), )+ }
            }
        }

        impl<B: $crate::__private::burn::tensor::backend::Backend> core::fmt::Debug for AnyFeatures<B> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self { $( Self::$variant(_) => f.write_str(concat!("AnyFeatures::", stringify!($variant))), )+ }
            }
        }

        impl AlgorithmConfig {
            /// MMSelfSup's name of the algorithm (`"MAE"`).
            pub fn name(&self) -> &'static str {
                self.type_name()
            }

            /// Checks the config, including dimensions that depend on each other.
            pub fn validate(&self) -> Result<(), $crate::ConfigIssue> {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::validate(c), )+ }
            }

            /// Checks the training batch size against the model.
            pub fn check_batch_size(&self, batch_size: usize) -> Result<(), String> {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::check_batch_size(c, batch_size), )+ }
            }

            /// Builds the algorithm with seed 0; call [`AlgorithmConfig::validate`] first.
            pub fn init<B: $crate::__private::burn::tensor::backend::Backend>(&self, device: &B::Device) -> Algorithm<B> {
                self.init_seeded(device, 0)
            }

            /// Builds the algorithm with initial weights drawn from `seed`
            /// (independent of the backend and of anything else running),
            /// ready to train.
            pub fn init_seeded<B: $crate::__private::burn::tensor::backend::Backend>(&self, device: &B::Device, seed: u64) -> Algorithm<B> {
                let mut rng = $crate::__private::selfsup_layers::init::InitRng::new(seed);
                let model = match self {
                    $( Self::$variant(c) => Algorithm::$variant($crate::AlgorithmSpec::init(c, device, &mut rng)), )+
                };
                $crate::__private::selfsup_core::SelfSupAlgorithm::prepare(model)
            }

            /// The data preprocessor config.
            pub fn data_preprocessor(&self) -> &$crate::__private::selfsup_core::DataPreprocessorConfig {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::data_preprocessor(c), )+ }
            }

            /// Number of views a batch must have.
            pub fn num_views(&self) -> usize {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::num_views(c), )+ }
            }

            /// The size of each view for synthetic inputs when the first is `size`.
            pub fn view_sizes(&self, size: usize) -> Vec<usize> {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::view_sizes(c, size), )+ }
            }

            /// The square input size the model expects, when it fixes one.
            pub fn input_size(&self) -> Option<usize> {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::input_size(c), )+ }
            }

            /// Whether the backbone is a ViT (its global feature is the cls token).
            pub fn has_vit_backbone(&self) -> bool {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::has_vit_backbone(c), )+ }
            }

            /// The `custom_hooks` types training needs.
            pub fn required_hooks(&self) -> &'static [&'static str] {
                match self { $( Self::$variant(c) => $crate::AlgorithmSpec::required_hooks(c), )+ }
            }

            /// Loads the pretrained files the config names for frozen parts
            /// (tokenizers, teachers) into `model`, built from this config.
            pub fn load_pretrained<B: $crate::__private::burn::tensor::backend::Backend>(
                &self,
                model: Algorithm<B>,
            ) -> Result<Algorithm<B>, $crate::ConfigIssue> {
                match (self, model) {
                    $( (Self::$variant(c), Algorithm::$variant(m)) => Ok(Algorithm::$variant($crate::AlgorithmSpec::load_pretrained(c, m)?)), )+
                    (c, m) => Err($crate::ConfigIssue::new(
                        "type",
                        format!("the model is a {} but the config builds {}", $crate::__private::selfsup_core::SelfSupAlgorithm::name(&m), c.name()),
                    )),
                }
            }
        }

        impl<B: $crate::__private::burn::tensor::backend::Backend> $crate::__private::selfsup_core::SelfSupAlgorithm<B> for Algorithm<B> {
            type Features = AnyFeatures<B>;
            type Prediction = AnyPrediction<B>;
            type StepState = AnyStepState<B>;

            fn name(&self) -> &'static str {
                match self { $( Self::$variant(m) => m.name(), )+ }
            }

            fn data_preprocessor(&self) -> &$crate::__private::selfsup_core::DataPreprocessorConfig {
                match self { $( Self::$variant(m) => m.data_preprocessor(), )+ }
            }

            fn extract_feat(&self, inputs: &$crate::__private::selfsup_core::SelfSupInputs<B>) -> Result<AnyFeatures<B>, $crate::__private::selfsup_core::ModelError> {
                match self { $( Self::$variant(m) => m.extract_feat(inputs).map(AnyFeatures::$variant), )+ }
            }

            fn global_features(&self, inputs: &$crate::__private::selfsup_core::SelfSupInputs<B>) -> Result<$crate::__private::burn::tensor::Tensor<B, 2>, $crate::__private::selfsup_core::ModelError> {
                match self { $( Self::$variant(m) => m.global_features(inputs), )+ }
            }

            fn loss(
                &self,
                inputs: &$crate::__private::selfsup_core::SelfSupInputs<B>,
                draws: &mut $crate::__private::selfsup_core::Draws,
            ) -> Result<($crate::__private::selfsup_core::LossOutput<B>, AnyStepState<B>), $crate::__private::selfsup_core::ModelError> {
                match self { $( Self::$variant(m) => m.loss(inputs, draws).map(|(l, s)| (l, AnyStepState::$variant(s))), )+ }
            }

            fn predict(&self, inputs: &$crate::__private::selfsup_core::SelfSupInputs<B>, draws: &mut $crate::__private::selfsup_core::Draws) -> Result<AnyPrediction<B>, $crate::__private::selfsup_core::ModelError> {
                match self { $( Self::$variant(m) => m.predict(inputs, draws).map(AnyPrediction::$variant), )+ }
            }

            fn prepare(self) -> Self {
                match self { $( Self::$variant(m) => Self::$variant(m.prepare()), )+ }
            }

            /// # Panics
            /// When `state` came from another algorithm's `loss`: the runner
            /// always hands a model its own state back.
            fn after_step(self, state: AnyStepState<B>, ctx: &$crate::__private::selfsup_core::StepContext) -> Self {
                #[allow(unreachable_patterns)]
                match (self, state) {
                    $( (Self::$variant(m), AnyStepState::$variant(s)) => Self::$variant(m.after_step(s, ctx)), )+
                    (m, _) => panic!("{}: step state from another algorithm's loss", m.name()),
                }
            }
        }
    };
}
