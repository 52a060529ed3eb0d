//! MMSelfSup's data preprocessors against the reference's outputs
//! (`tools/gen_preprocessor_fixture.py`): normalisation, TwoNorm's second
//! statistics, CAE's target scaling and RelativeLoc's and RotationPred's
//! view stacking.
use burn::tensor::{Tensor, TensorData};
use selfsup::core::DataPreprocessorConfig;
use selfsup_tests::{assert_close, device, values, Inner};

#[test]
fn data_preprocessors_match_mmselfsup() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(selfsup_tests::fixtures().join("preprocessors/cases.json")).unwrap()).unwrap();
    let tensor = |t: &serde_json::Value| -> (Vec<f32>, Vec<usize>) {
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        let data: Vec<f32> = serde_json::from_value(t["data"].clone()).unwrap();
        (data, shape)
    };
    for (kind, case) in cases.as_object().unwrap() {
        let cfg: DataPreprocessorConfig = serde_json::from_value(case["config"].clone()).unwrap();
        cfg.validate().unwrap();
        let raw: Vec<Tensor<Inner, 4>> = case["raw_rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let (data, shape) = tensor(v);
                Tensor::from_data(TensorData::new(data, [shape[0], shape[1], shape[2], shape[3]]), &device())
            })
            .collect();
        let ours = cfg.apply_views(raw);
        let reference = case["outputs"].as_array().unwrap();
        assert_eq!(ours.len(), reference.len(), "{kind}: number of inputs");
        for (i, (o, r)) in ours.into_iter().zip(reference).enumerate() {
            let (data, shape) = tensor(r);
            assert_eq!(o.dims().to_vec(), shape, "{kind} input {i}: shape");
            assert_close(&format!("{kind} input {i}"), &values(o), &data, 1e-5, 1e-5);
        }
    }
}

#[test]
fn two_norm_needs_its_second_statistics() {
    let parse = |v: serde_json::Value| serde_json::from_value::<DataPreprocessorConfig>(v).unwrap().validate().map_err(|e| e.0);
    let base = serde_json::json!({"type": "TwoNormDataPreprocessor", "mean": [0.0], "std": [1.0]});
    assert_eq!(parse(base), Err("second_mean"));
    let bad = serde_json::json!({"type": "SelfSupDataPreprocessor", "second_mean": [0.0], "second_std": [1.0]});
    assert_eq!(parse(bad), Err("second_mean"));
    // An unknown type fails to decode, naming the known ones.
    let err =
        serde_json::from_value::<DataPreprocessorConfig>(serde_json::json!({"type": "VideoDataPreprocessor"})).unwrap_err().to_string();
    assert!(err.contains("VideoDataPreprocessor") && err.contains("TwoNormDataPreprocessor"), "{err}");
    let scoped: DataPreprocessorConfig = serde_json::from_value(serde_json::json!({"type": "mmselfsup.CAEDataPreprocessor"})).unwrap();
    assert_eq!(scoped.kind, selfsup::core::DataPreprocessorKind::Cae);
}
