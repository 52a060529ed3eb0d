//! Checkpoint interop: strict loading reports, backbone-only loads, and
//! safetensors export with PyTorch keys that loads back exactly.
use burn::module::AutodiffModule;
use selfsup::{
    algorithms::{key_map, Algorithm, AlgorithmConfig},
    weights::{export_state_dict, load_into, read_checkpoint, write_safetensors, KeyMap, LoadOptions, WeightsError},
};
use selfsup_tests::{device, fixtures, values, B, BACKEND};

fn keymap() -> KeyMap {
    key_map()
}

fn tiny() -> (AlgorithmConfig, selfsup::weights::StateDict) {
    let dir = fixtures().join("mae_tiny_normpix");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    for extra in ["batch_size", "optim_wrapper", "optimizer_resolved", "seeds", "derived"] {
        v.as_object_mut().unwrap().remove(extra);
    }
    (serde_json::from_value(v).unwrap(), read_checkpoint(dir.join("model.pth")).unwrap())
}

#[test]
fn export_then_reload_is_exact() {
    let (cfg, state) = tiny();
    let (model, _) = load_into(cfg.init::<B>(&device()), &state, &keymap(), &LoadOptions::default()).unwrap();
    let exported = export_state_dict(&model.valid(), &keymap()).unwrap();
    // Same keys and values as the MMSelfSup checkpoint, in PyTorch layout.
    assert_eq!(exported.keys().collect::<Vec<_>>(), state.tensors.keys().collect::<Vec<_>>());
    for (k, v) in &exported {
        let a = v.clone().convert::<f32>().to_vec::<f32>().unwrap();
        let b = state.tensors[k].clone().convert::<f32>().to_vec::<f32>().unwrap();
        assert_eq!(a, b, "[{BACKEND}] {k}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_safetensors(&path, &exported, &Default::default()).unwrap();
    let back = read_checkpoint(&path).unwrap();
    let (reloaded, report) = load_into(cfg.init::<B>(&device()), &back, &keymap(), &LoadOptions::default()).unwrap();
    assert!(report.is_exact());
    let (Algorithm::Mae(a), Algorithm::Mae(b)) = (&model, &reloaded) else { panic!("MAE models") };
    assert_eq!(values(a.neck.decoder_pred.weight.val()), values(b.neck.decoder_pred.weight.val()));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn strict_load_reports_missing_unexpected_and_shapes() {
    let (cfg, mut state) = tiny();
    state.tensors.remove("neck.mask_token");
    let w = state.tensors.remove("backbone.cls_token").unwrap();
    state.tensors.insert("backbone.cls_tokn".into(), w);
    let bad = burn::tensor::TensorData::new(vec![0f32; 5], [5]);
    state.tensors.insert("neck.ln1.weight".into(), bad);
    match load_into(cfg.init::<B>(&device()), &state, &keymap(), &LoadOptions::default()) {
        Err(WeightsError::Mismatch(r)) => {
            assert_eq!(r.missing, vec!["backbone.cls_token".to_string(), "neck.mask_token".to_string()]);
            assert_eq!(r.unexpected, vec!["backbone.cls_tokn".to_string()]);
            assert_eq!(r.shape_mismatches, vec![("neck.ln1.weight".to_string(), vec![24], vec![5])]);
            let text = WeightsError::Mismatch(r).to_string();
            assert!(text.contains("missing keys") && text.contains("unexpected keys") && text.contains("shape mismatch"));
        }
        other => panic!("expected a mismatch report, got {:?}", other.map(|(_, r)| r)),
    }
    // Non-strict: what fits loads, the report lists the rest.
    let (_, report) = load_into(cfg.init::<B>(&device()), &state, &keymap(), &LoadOptions { strict: false, prefix: None }).unwrap();
    assert_eq!(report.missing.len(), 2);
    assert!(report.loaded.len() > 50);
}

#[test]
fn backbone_only_load_for_downstream_use() {
    let (cfg, state) = tiny();
    let AlgorithmConfig::Mae(mae) = &cfg else { panic!("an MAE config") };
    let backbone = mae.backbone.get().init::<B>(&device(), &mut selfsup::layers::init::InitRng::new(0));
    let opts = LoadOptions { strict: true, prefix: Some("backbone.".into()) };
    let (backbone, report) = load_into(backbone, &state, &keymap(), &opts).unwrap();
    assert!(report.is_exact(), "{report}");
    let want = state.tensors["backbone.cls_token"].clone().convert::<f32>().to_vec::<f32>().unwrap();
    assert_eq!(values(backbone.cls_token.val()), want);
}

/// A `.pth` cut short is reported as truncated, not as a pickle opcode; an empty file as
/// empty; a missing one as the I/O error it is.
#[test]
fn truncated_empty_and_missing_pth_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(fixtures().join("simclr_tiny/model.pth")).unwrap();
    for cut in [300, whole.len() / 2, whole.len() - 10] {
        let p = dir.path().join(format!("cut{cut}.pth"));
        std::fs::write(&p, &whole[..cut]).unwrap();
        let e = read_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains("truncated or corrupt") && !e.contains("opcode"), "cut at {cut}: {e}");
    }
    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(read_checkpoint(&empty).unwrap_err().to_string().contains("empty"));
    let missing = read_checkpoint(dir.path().join("missing.pth")).unwrap_err();
    assert!(matches!(missing, WeightsError::Io { .. }), "{missing}");
    assert!(read_checkpoint(fixtures().join("simclr_tiny/model.pth")).is_ok());
}
