//! A loader batch as the model's inputs: the views uploaded and
//! preprocessed, the data samples carried along.
use burn::tensor::{backend::Backend, Tensor, TensorData};
use selfsup_core::{DataPreprocessorConfig, DataSamples, SelfSupInputs};
use selfsup_data::{transforms::PackedArray, Batch};

/// Uploads a batch of RGB values (0–255), applies the data preprocessor,
/// and carries the batch's masks, pseudo-labels, indices and labels along.
pub fn batch_to_inputs<B: Backend>(batch: &Batch, preprocessor: &DataPreprocessorConfig, device: &B::Device) -> SelfSupInputs<B> {
    let raw = batch.views.iter().map(|v| Tensor::<B, 4>::from_data(TensorData::new(v.data.clone(), v.shape), device)).collect();
    let data_samples = DataSamples {
        mask: batch.mask.as_ref().map(|m| {
            let values: Vec<f32> = m.to_i64().iter().map(|v| *v as f32).collect();
            Tensor::from_data(TensorData::new(values, m.shape.clone()), device)
        }),
        pseudo_label: batch.pseudo_label.iter().map(|(k, v)| (k.clone(), packed_data(v))).collect(),
        sample_idx: batch.indices.clone(),
        gt_label: batch.labels.clone(),
    };
    SelfSupInputs::new(preprocessor.apply_views(raw)).with_data_samples(data_samples)
}

fn packed_data(a: &PackedArray) -> TensorData {
    TensorData::new(a.to_i64(), a.shape.clone())
}
