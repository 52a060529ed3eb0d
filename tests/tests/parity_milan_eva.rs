//! MILAN and EVA against golden fixtures from MMSelfSup 1.0.0
//! (`tools/gen_fixtures_milan_eva.py`): the key inventories of the tiny and
//! the full-size configs (the CLIP teacher included), two AdamW iterations
//! with every loss, gradient and state tensor from the reference's draws
//! (MILAN's `torch.multinomial` order of the patches, EVA's MAE noise),
//! the forward's pieces (CLIP's features and attention, MILAN's
//! importance, the latent, the decoder's prediction), the CLIP file in
//! OpenAI's layout loading through `tokenizer_path`, the token loss, and
//! both demos training from their pipelines.
use burn::tensor::{Int, Tensor, TensorData};
use selfsup::{
    algorithms::{key_map, Algorithm, AlgorithmConfig},
    core::{Draws, SelfSupAlgorithm, SelfSupInputs},
    losses::CosineSimilarityLoss,
    weights::{export_state_dict, load_into, read_checkpoint},
};
use selfsup_tests::{
    device,
    mim::{self, close, load_model, model_config},
    values, Case, Inner, B, BACKEND,
};

macro_rules! parity_cases {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn key_inventory() {
                super::check_key_inventory(stringify!($case));
            }

            #[test]
            fn two_iterations() {
                selfsup_tests::mim::check_two_iterations(stringify!($case), super::inputs::<selfsup_tests::B>, super::draws);
            }
        }
    )+};
}

parity_cases!(milan_tiny, eva_tiny);

fn check_key_inventory(name: &str) {
    mim::check_key_inventory(name, |model, state, opts| match model {
        Algorithm::Milan(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        Algorithm::Eva(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

/// The raw BGR batch of iteration `step` through the model's own data
/// preprocessor.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    SelfSupInputs::single(model.data_preprocessor().apply(case.tensor::<4, BB>(&format!("raw{sfx}")).flip([1])))
}

/// The reference's draws of iteration `step`, replayed: MILAN's
/// `torch.multinomial` output as `mask_multinomial`, EVA's noise as
/// `mask_noise`.
fn draws(case: &Case, step: usize) -> Draws {
    let sfx = if step == 0 { "" } else { "2" };
    match case.io.get(&format!("ids_shuffle{sfx}")) {
        Some(_) => Draws::seeded(0).replay("mask_multinomial", case.f32(&format!("ids_shuffle{sfx}")).0),
        None => Draws::seeded(0).replay("mask_noise", case.f32(&format!("noise{sfx}")).0),
    }
}

fn ints<const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec::<i64>().unwrap()
}

/// CLIP's features and last-layer attention (both iterations' images), the
/// preprocessed input, MILAN's importance, the masking indices, the latent
/// and the decoder's prediction; EVA's latent, mask and prediction.
#[test]
fn forward_intermediates_match_reference() {
    let case = Case::load("milan_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::Milan(m) = &model else { panic!("MILAN") };
    for (step, sfx) in [(0, ""), (1, "2")] {
        let img = inputs(&case, &model, step).views[0].clone();
        close(&format!("milan inputs{sfx}"), img.clone(), case.f32(&format!("inputs{sfx}")));
        let clip = m.target_generator.forward(img);
        close(&format!("milan clip_feat{sfx}"), clip.features, case.f32(&format!("clip_feat{sfx}")));
        close(&format!("milan clip_attn{sfx}"), clip.attention, case.f32(&format!("clip_attn{sfx}")));
    }
    let img = inputs(&case, &model, 0).views[0].clone();
    let f = m.forward_parts(img, &mut draws(&case, 0)).unwrap();
    close("milan importance", f.importance, case.f32("importance"));
    let ids: Vec<i64> = case.f32("ids_restore").0.iter().map(|v| *v as i64).collect();
    assert_eq!(ints(f.ids_restore), ids, "[{BACKEND}] milan ids_restore");
    close("milan latent", f.latent, case.f32("latent"));
    close("milan pred", f.pred, case.f32("pred"));

    let case = Case::load("eva_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::Eva(m) = &model else { panic!("EVA") };
    let img = inputs(&case, &model, 0).views[0].clone();
    close("eva inputs", img.clone(), case.f32("inputs"));
    close("eva clip_feat", m.target_generator.forward(img.clone()).features, case.f32("clip_feat"));
    let enc = m.backbone.forward_masked(img, &mut draws(&case, 0)).unwrap();
    close("eva latent", enc.latent.clone(), case.f32("latent"));
    assert_eq!(values(enc.mask.clone()), case.f32("mask").0, "[{BACKEND}] eva mask");
    close("eva pred", m.neck.forward(enc.latent, enc.ids_restore), case.f32("pred"));
}

/// The tiny CLIP saved in OpenAI's layout (`clip_tiny.pth`, the file the
/// reference read through `tokenizer_path`) loads through the config's
/// `tokenizer_path` into exactly the weights `model.pth` holds under
/// `target_generator.tokenizer.*`, for both algorithms; a URL is refused
/// with the download advice.
#[test]
fn clip_file_in_openai_layout_loads_through_tokenizer_path() {
    for name in ["milan_tiny", "eva_tiny"] {
        let case = Case::load(name);
        let mut cfg = case.config.clone();
        let path = selfsup_tests::fixtures().join(cfg["target_generator"]["tokenizer_path"].as_str().unwrap());
        cfg["target_generator"]["tokenizer_path"] = serde_json::Value::from(path.to_str().unwrap());
        for k in ["batch_size", "seeds", "optim_wrapper", "optim_wrapper_real", "fixture", "float32_error"] {
            cfg.as_object_mut().unwrap().remove(k);
        }
        let cfg: AlgorithmConfig = serde_json::from_value(cfg).unwrap();
        let model = cfg.load_pretrained(cfg.init::<Inner>(&device())).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = export_state_dict(&model, &key_map()).unwrap();
        let reference = read_checkpoint(case.dir.join("model.pth")).unwrap();
        let mut compared = 0;
        for (key, t) in reference.tensors.iter().filter(|(k, _)| k.starts_with("target_generator.")) {
            let a = ours[key].clone().convert::<f32>().to_vec::<f32>().unwrap();
            let b = t.clone().convert::<f32>().to_vec::<f32>().unwrap();
            assert_eq!(a, b, "{name}: {key}");
            compared += 1;
        }
        assert!(compared > 20, "{name}: only {compared} CLIP tensors");

        let url = "https://download.openmmlab.com/mmselfsup/1.x/target_generator_ckpt/clip_vit_base_16.pth.tar";
        let mut remote = serde_json::to_value(model_config(&case)).unwrap();
        remote["target_generator"]["tokenizer_path"] = serde_json::Value::from(url);
        let remote: AlgorithmConfig = serde_json::from_value(remote).unwrap();
        let err = remote.load_pretrained(remote.init::<Inner>(&device())).expect_err("a URL is refused").to_string();
        assert!(err.contains("tokenizer_path") && err.contains("download"), "{err}");
    }
}

/// `CosineSimilarityLoss` over tokens: `shift − scale·cos`, averaged over
/// every token (MILAN) or over the mask's ones (EVA), on hand-computed
/// cosines 1, −1, 0 and √½.
#[test]
fn cosine_similarity_loss_over_tokens_shifts_scales_and_masks() {
    let t3 = |v: &[f32]| Tensor::<B, 3>::from_data(TensorData::new(v.to_vec(), [1, 4, 2]), &device());
    let pred = t3(&[1., 0., 2., 0., 0., 1., 1., 1.]);
    let target = t3(&[3., 0., -1., 0., 1., 0., 0., 5.]);
    let per: Vec<f32> = [1.0f32, -1.0, 0.0, 0.5f32.sqrt()].iter().map(|c| 2.0 - 2.0 * c).collect();
    let loss = CosineSimilarityLoss { shift_factor: 2.0, scale_factor: 2.0 };
    let mean = values(loss.forward_tokens(pred.clone(), target.clone(), None))[0];
    assert!((mean - per.iter().sum::<f32>() / 4.0).abs() < 1e-6, "[{BACKEND}] {mean}");
    let mask = Tensor::<B, 2>::from_data(TensorData::new(vec![0f32, 1., 0., 1.], [1, 4]), &device());
    let masked = values(loss.forward_tokens(pred, target, Some(mask)))[0];
    assert!((masked - (per[1] + per[3]) / 2.0).abs() < 1e-6, "[{BACKEND}] {masked}");
}

/// The full-size configs under `configs/` build MMSelfSup's state-dict keys
/// and shapes, CLIP ViT-B/16 (both towers) included.
#[test]
fn full_size_key_inventories_match_reference() {
    assert!(mim::check_full_size_key_inventories("milan_eva_keys.json") > 0);
}

/// Both demos train from their pipelines with a randomly initialised tiny
/// CLIP (no file): MILAN's masks come from `Draws::weighted_permutation`
/// on CLIP's attention, EVA's from MAE's noise; the losses are finite and
/// within `[0, 4]` (`2 − 2·cos`).
#[test]
fn milan_eva_demos_train_from_their_pipelines() {
    for path in ["configs/milan/milan_vit-tiny_demo_synthetic.toml", "configs/eva/eva-mae-style_vit-tiny_demo_synthetic.toml"] {
        let losses = selfsup_tests::demo_losses(path, 2);
        assert!(losses.iter().all(|l| l.is_finite() && (0.0..=4.0).contains(l)), "[{BACKEND}] {path}: {losses:?}");
    }
}
