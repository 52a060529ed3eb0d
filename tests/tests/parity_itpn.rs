//! iTPN against golden fixtures from mmpretrain 1.2.0
//! (`tools/gen_fixtures_itpn.py`): both targets (pixel: MAE's masking and
//! decoder on the pyramid; CLIP: the pipeline's mask, relative position
//! bias, layer scale, a frozen CLIP), their key inventories and the
//! full-size configs', the forward's pieces (the stem's maps, the main
//! stage, the decoder's prediction or the neck's tokens and CLIP's
//! targets), two AdamW iterations with every loss, gradient and state
//! tensor from the reference's draws (mask noise, each block's stochastic
//! depth), and the demo training.
use burn::tensor::Tensor;
use selfsup::{
    algorithms::Algorithm,
    core::{DataSamples, Draws, SelfSupInputs},
};
use selfsup_tests::{
    mim::{self, close, load_model},
    Case, B, BACKEND,
};

selfsup_tests::backbone_parity_cases!(ITpn; itpn_pixel_tiny, itpn_clip_tiny);

/// Iteration `step`'s draws: the mask noise (pixel) and each block's
/// stochastic depth, one `[batch]` draw per call.
fn draws(case: &Case, step: usize) -> Draws {
    let prefix = if step == 0 { "draws." } else { "draws2." };
    let batch = case.config["batch_size"].as_u64().unwrap() as usize;
    let names: Vec<String> = case.io.keys().filter_map(|k| k.strip_prefix(prefix)).map(str::to_string).collect();
    assert!(names.iter().any(|n| n.ends_with(".drop_path")), "the fixture records the drop-path draws");
    names.into_iter().fold(Draws::seeded(0), |d, n| {
        let values = case.f32(&format!("{prefix}{n}")).0;
        if n == "mask_noise" {
            return d.replay(n, values);
        }
        values.chunks(batch).fold(d, |d, call| d.replay(n.clone(), call.to_vec()))
    })
}

/// The pixel case's image, or the CLIP case's two views and mask.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, _model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    let img = case.tensor::<4, BB>(&format!("inputs{sfx}"));
    if !case.io.tensors.contains_key(&format!("inputs{sfx}_b")) {
        return SelfSupInputs::single(img);
    }
    let views = vec![img, case.tensor::<4, BB>(&format!("inputs{sfx}_b"))];
    let samples = DataSamples { mask: Some(case.tensor::<3, BB>(&format!("mask{sfx}"))), ..Default::default() };
    SelfSupInputs { views, data_samples: samples }
}

/// `[batch, L·h·w, C]` as the reference's `[batch, L, h, w, C]`.
fn grid(x: Tensor<B, 3>, shape: &[usize]) -> Tensor<B, 5> {
    x.reshape([shape[0], shape[1], shape[2], shape[3], shape[4]])
}

/// The stem's maps before each merge, the main stage's tokens and the
/// decoder's prediction (pixel: from the replayed mask noise); the neck's
/// tokens and CLIP's targets (CLIP).
#[test]
fn forward_intermediates_match_reference() {
    let case = Case::load("itpn_pixel_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::ITpn(m) = &model else { panic!("iTPN") };
    let enc = m.backbone.forward_pixel(case.tensor::<4, B>("inputs"), &mut draws(&case, 0)).unwrap();
    close("mask", enc.mask.clone(), case.f32("mask"));
    for (i, f) in enc.features.iter().enumerate() {
        let reference = case.f32(&format!("feature.{i}"));
        close(&format!("feature.{i}"), grid(f.clone(), &reference.1), reference);
    }
    close("latent", enc.latent.clone(), case.f32("latent"));
    let pred = m.neck.forward_pixel(&enc.features, enc.latent, enc.ids_restore);
    close("pred", pred, case.f32("pred"));

    let case = Case::load("itpn_clip_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::ITpn(m) = &model else { panic!("iTPN") };
    let x = inputs(&case, &model, 0);
    let mask = x.data_samples.mask.clone().unwrap();
    let enc = m.backbone.forward_clip(x.views[0].clone(), mask, &mut draws(&case, 0)).unwrap();
    for (i, f) in enc.features.iter().enumerate() {
        let reference = case.f32(&format!("feature.{i}"));
        close(&format!("clip feature.{i}"), grid(f.clone(), &reference.1), reference);
    }
    close("clip latent", enc.latent.clone(), case.f32("latent"));
    close("clip feats", m.neck.forward_clip(&enc.features, enc.latent), case.f32("feats"));
    let clip = m.target_generator.as_ref().expect("the CLIP target");
    close("clip target", clip.forward(x.views[1].clone()).features, case.f32("target"));
}

/// The configs' HiViT without a mask gives the last block's tokens as a
/// map, and the CLIP variant refuses a batch without the pipeline's mask.
#[test]
fn unmasked_features_and_missing_mask() {
    let case = Case::load("itpn_clip_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::ITpn(m) = &model else { panic!("iTPN") };
    let x = inputs(&case, &model, 0);
    let map = m.backbone.forward(x.views[0].clone()).unwrap();
    assert_eq!(map.dims(), [3, 32, 4, 4], "[{BACKEND}] HiViT's map");
    let no_mask = SelfSupInputs { views: x.views.clone(), data_samples: DataSamples::default() };
    let Err(err) = selfsup::core::SelfSupAlgorithm::loss(&model, &no_mask, &mut Draws::seeded(0)) else {
        panic!("[{BACKEND}] a missing mask must be an error");
    };
    assert!(err.to_string().contains("BEiTMaskGenerator"), "{err}");
}

#[test]
fn full_size_key_inventories_match_reference() {
    assert_eq!(mim::check_full_size_key_inventories("itpn_keys.json"), 3);
}

/// The demo trains from its pipeline: finite, positive losses.
#[test]
fn demo_trains_from_its_pipeline() {
    let losses = selfsup_tests::demo_losses("configs/itpn/itpn-pixel_hivit-tiny_demo_synthetic.toml", 4);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0 && *l < 100.0), "[{BACKEND}] {losses:?}");
}
