//! BEiT v1 and v2 against golden fixtures from MMSelfSup 1.0.0
//! (`tools/gen_fixtures_beit.py`): the key inventories of the tiny and the
//! full-size configs (tokenizers included), two AdamW iterations with every
//! loss, gradient and state tensor (VQ-KD's codebook and code counts, which
//! move during the forward in the reference, included), and the forward's
//! pieces: backbone outputs, the shared relative position bias, the
//! tokenizers' logits and codes, BEiT v2's neck.
use selfsup::{
    algorithms::{key_map, Algorithm},
    core::{DataSamples, SelfSupAlgorithm, SelfSupInputs},
    weights::load_into,
};
use selfsup_tests::{
    mim::{self, close, load_model},
    values, Case, B, BACKEND,
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
                selfsup_tests::mim::check_two_iterations(stringify!($case), super::inputs::<selfsup_tests::B>, |_, _| {
                    selfsup::core::Draws::seeded(0)
                });
            }
        }
    )+};
}

parity_cases!(beit_tiny, beitv2_tiny);

fn check_key_inventory(name: &str) {
    mim::check_key_inventory(name, |model, state, opts| match model {
        Algorithm::Beit(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

/// Both views of iteration `step` through the model's own
/// `TwoNormDataPreprocessor` (the raw views are BGR, as mmcv loads them),
/// and the pipeline's masks.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    let raw = [format!("raw{sfx}"), format!("raw{sfx}_b")].map(|k| case.tensor::<4, BB>(&k).flip([1]));
    let views = model.data_preprocessor().apply_views(raw.to_vec());
    let samples = DataSamples { mask: Some(case.tensor::<3, BB>(&format!("mask{sfx}"))), ..Default::default() };
    SelfSupInputs { views, data_samples: samples }
}

/// The preprocessed views, the backbone's outputs, the shared bias, the
/// DALL-E logits (v1), the VQ-KD codes (v2, both iterations: the second
/// after the codebook's first update) and BEiT v2's neck.
#[test]
fn forward_intermediates_match_reference() {
    for name in ["beit_tiny", "beitv2_tiny"] {
        let case = Case::load(name);
        let model = load_model::<B>(&case);
        let x = inputs(&case, &model, 0);
        close(&format!("{name} inputs"), x.views[0].clone(), case.f32("inputs"));
        close(&format!("{name} inputs_b"), x.views[1].clone(), case.f32("inputs_b"));
        let Algorithm::Beit(m) = &model else { panic!("BEiT") };
        let mask = x.data_samples.mask.clone().unwrap();
        close(&format!("{name} rel_pos_bias"), m.backbone.shared_rel_pos_bias().unwrap(), case.f32("rel_pos_bias"));
        let outs = m.backbone.forward(x.views[0].clone(), mask, None).unwrap();
        close(&format!("{name} latent"), outs.last().unwrap().clone(), case.f32("latent"));
        match &m.target_generator {
            selfsup::algorithms::beit::BeitTokenizer::DallE(t) => {
                close(&format!("{name} DALL-E logits"), t.forward(x.views[1].clone()), case.f32("target_logits"));
            }
            selfsup::algorithms::beit::BeitTokenizer::Vqkd(t) => {
                let codes = t.get_tokens(x.views[1].clone());
                assert_eq!(values(codes.float()), case.f32("target").0, "[{BACKEND}] VQ-KD codes");
                close(&format!("{name} latent_early"), outs[0].clone(), case.f32("latent_early"));
                let neck = m.neck.as_ref().unwrap();
                let (xx, x_cls_pt) = neck.forward(outs[0].clone(), outs[1].clone(), m.backbone.shared_rel_pos_bias(), None);
                close(&format!("{name} neck.x"), xx, case.f32("neck.x"));
                close(&format!("{name} neck.x_cls_pt"), x_cls_pt, case.f32("neck.x_cls_pt"));
            }
        }
    }
}

/// The full-size configs under `configs/` build MMSelfSup's state-dict keys
/// and shapes, the DALL-E and VQ-KD tokenizers included.
#[test]
fn full_size_key_inventories_match_reference() {
    assert!(mim::check_full_size_key_inventories("beit_keys.json") > 0);
}

/// Both demos train from their pipelines (two views, the BEiT masks, a
/// randomly initialised tiny tokenizer) with finite losses.
#[test]
fn beit_demos_train_from_their_pipelines() {
    for path in ["configs/beit/beit_vit-tiny_demo_synthetic.toml", "configs/beitv2/beitv2_vit-tiny_demo_synthetic.toml"] {
        let losses = selfsup_tests::demo_losses(path, 2);
        assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "[{BACKEND}] {path}: {losses:?}");
    }
}
