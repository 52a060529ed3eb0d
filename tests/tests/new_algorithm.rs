//! Adding an algorithm is its file plus one line in the list: this module
//! is such a file (a config implementing `AlgorithmSpec`, a module
//! implementing `SelfSupAlgorithm`), and `algorithms!` below is the list,
//! with one shipped algorithm beside the new one. Everything the runner
//! and the tools ask of an algorithm then works through the generated
//! `AlgorithmConfig` and `Algorithm`; leaving out a method without a
//! default, or the list line, does not compile.
use burn::{
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{backend::Backend, Tensor},
};
use selfsup::{
    algorithms::{AlgorithmSpec, ConfigIssue, Mae, MaeConfig},
    core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs},
    layers::init::InitRng,
};
use selfsup_tests::{device, B};
use serde::{Deserialize, Serialize};

/// `model = dict(type='TinyAutoencoder', pixels=48, hidden=8)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyAutoencoderConfig {
    #[serde(default)]
    data_preprocessor: DataPreprocessorConfig,
    pixels: usize,
    hidden: usize,
}

/// Encodes a flattened view and decodes it back; the loss is the MSE.
#[derive(Module, Debug)]
pub struct TinyAutoencoder<B: Backend> {
    encoder: Linear<B>,
    decoder: Linear<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl AlgorithmSpec for TinyAutoencoderConfig {
    type Model<B: Backend> = TinyAutoencoder<B>;

    fn validate(&self) -> Result<(), ConfigIssue> {
        if self.hidden == 0 || self.hidden >= self.pixels {
            return Err(ConfigIssue::new("hidden", "must be in 1..pixels"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, _rng: &mut InitRng) -> TinyAutoencoder<B> {
        TinyAutoencoder {
            encoder: LinearConfig::new(self.pixels, self.hidden).init(device),
            decoder: LinearConfig::new(self.hidden, self.pixels).init(device),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        None
    }

    fn has_vit_backbone(&self) -> bool {
        false
    }
}

impl<B: Backend> TinyAutoencoder<B> {
    fn encode(&self, inputs: &SelfSupInputs<B>) -> Result<(Tensor<B, 2>, Tensor<B, 2>), ModelError> {
        let x = inputs.expect_views("TinyAutoencoder", 1)?[0].clone().flatten::<2>(1, 3);
        Ok((self.encoder.forward(x.clone()), x))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for TinyAutoencoder<B> {
    type Features = Tensor<B, 2>;
    type Prediction = Tensor<B, 2>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "TinyAutoencoder"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.encode(inputs)?.0)
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        self.extract_feat(inputs)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let (z, x) = self.encode(inputs)?;
        let loss = (self.decoder.forward(z) - x).powi_scalar(2).mean();
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.decoder.forward(self.encode(inputs)?.0))
    }
}

mod registry {
    use super::{Mae, MaeConfig, TinyAutoencoder, TinyAutoencoderConfig};

    selfsup::algorithms::algorithms! {
        /// A shipped algorithm.
        "MAE" => Mae(MaeConfig, Mae),
        /// The new one: one line.
        "TinyAutoencoder" => TinyAutoencoder(TinyAutoencoderConfig, TinyAutoencoder),
    }
}

#[test]
fn a_new_algorithm_is_its_file_plus_one_list_line() {
    use registry::{Algorithm, AlgorithmConfig, AnyStepState};
    let cfg: AlgorithmConfig = serde_json::from_value(serde_json::json!({"type": "TinyAutoencoder", "pixels": 48, "hidden": 8})).unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        (cfg.name(), cfg.num_views(), cfg.view_sizes(4), cfg.input_size(), cfg.has_vit_backbone()),
        ("TinyAutoencoder", 1, vec![4], None, false)
    );
    assert!(cfg.check_batch_size(3).is_ok() && cfg.required_hooks().is_empty());
    let bad: AlgorithmConfig = serde_json::from_value(serde_json::json!({"type": "TinyAutoencoder", "pixels": 48, "hidden": 48})).unwrap();
    assert_eq!(bad.validate().unwrap_err().to_string(), "model.hidden: must be in 1..pixels");
    let unknown = serde_json::from_value::<AlgorithmConfig>(serde_json::json!({"type": "Nope"})).unwrap_err().to_string();
    assert!(unknown.contains("TinyAutoencoder") && unknown.contains("MAE"), "{unknown}");

    let model: Algorithm<B> = cfg.init(&device());
    let x = Tensor::<B, 4>::ones([2, 3, 4, 4], &device());
    let inputs = SelfSupInputs::single(x);
    assert_eq!(model.global_features(&inputs).unwrap().dims(), [2, 8]);
    let (loss, state) = model.loss(&inputs, &mut Draws::seeded(0)).unwrap();
    assert!(matches!(state, AnyStepState::TinyAutoencoder(())));
    let grads = loss.total().unwrap().backward();
    let Algorithm::TinyAutoencoder(inner) = &model else { panic!("the config builds its own variant") };
    assert!(inner.encoder.weight.grad(&grads).is_some(), "the new algorithm trains");
    let model = model.after_step(state, &selfsup::core::StepContext { iter: 0, max_iters: 1, epoch: 0 });
    assert_eq!(model.name(), "TinyAutoencoder");
}

/// What the loader packs besides the images (masks, pseudo-labels, sample
/// indices, labels) reaches the model as `SelfSupInputs::data_samples`.
#[test]
fn data_samples_reach_the_model() {
    use selfsup::data::{transforms::PackedArray, Batch, ViewBatch};
    let cfg: registry::AlgorithmConfig =
        serde_json::from_value(serde_json::json!({"type": "TinyAutoencoder", "pixels": 48, "hidden": 8})).unwrap();
    let model = cfg.init::<B>(&device());
    let batch = Batch {
        views: vec![ViewBatch { data: vec![0.0; 2 * 3 * 4 * 4], shape: [2, 3, 4, 4] }],
        labels: vec![Some(3), None],
        names: vec!["a.png".into(), "b.png".into()],
        indices: vec![7, 11],
        mask: PackedArray::from_i64(vec![2, 2, 2], vec![1, 0, 0, 1, 0, 1, 1, 0]),
        pseudo_label: [("rot_label".to_string(), PackedArray::from_i64(vec![2, 4], vec![0, 1, 2, 3, 0, 1, 2, 3]).unwrap())].into(),
        epoch: 0,
        iteration: 0,
    };
    let inputs = selfsup::train::runner::batch_to_inputs::<B>(&batch, model.data_preprocessor(), &device());
    assert_eq!(inputs.views.len(), 1);
    let ds = &inputs.data_samples;
    assert_eq!(ds.sample_idx, vec![7, 11]);
    assert_eq!(ds.gt_label, vec![Some(3), None]);
    let mask = ds.mask.clone().expect("the mask is carried");
    assert_eq!(mask.dims(), [2, 2, 2]);
    assert_eq!(selfsup_tests::values(mask), vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
    assert_eq!(ds.pseudo_label["rot_label"].shape.to_vec(), vec![2, 4]);
}
