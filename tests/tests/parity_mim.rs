//! Masked image modeling with pixel and feature targets against golden
//! fixtures from MMSelfSup 1.0.0 (`tools/gen_fixtures_mim.py`): the target
//! generators on their own (HOG histogram, tokens and picture; the
//! low-frequency filter and target), the key inventories of the tiny and
//! the full-size configs, and for SimMIM, MaskFeat, PixMIM and MixMIM two AdamW
//! iterations (the configs' `paramwise_cfg` and `clip_grad`) with every
//! loss, gradient and weight after each, from the reference's masks and
//! noise (MixMIM's one mixing mask per batch included).
//!
//! Tolerances come from the fixture's own float32-vs-float64 error
//! (`float32_error2.json`), as in `parity_clustering.rs`.
use burn::tensor::Tensor;
use selfsup::{
    algorithms::{key_map, Algorithm},
    core::{DataSamples, Draws, SelfSupAlgorithm, SelfSupInputs},
    target_generators::{hog_generator, HogGeneratorConfig, LowFreqTargetGeneratorConfig},
    weights::load_into,
};
use selfsup_tests::{
    device,
    mim::{self, close, load_model, rel_err},
    values, Case, Inner, B, BACKEND,
};

/// One module per case, one `#[test]` per check.
macro_rules! parity_cases {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn key_inventory() {
                super::check_key_inventory(stringify!($case));
            }

            #[test]
            fn two_iterations() {
                super::check_two_iterations(stringify!($case));
            }
        }
    )+};
}

parity_cases!(simmim_tiny, maskfeat_tiny, pixmim_tiny, mixmim_tiny);

/// The views and masks `loss()` receives in iteration `step` (0 or 1): the
/// stored inputs, or the raw BGR batch through the model's preprocessor.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let suffix = if step == 0 { "" } else { "2" };
    let view = if case.io.get(&format!("inputs{suffix}")).is_some() {
        case.tensor::<4, BB>(&format!("inputs{suffix}"))
    } else {
        model.data_preprocessor().apply(case.tensor::<4, BB>(&format!("raw{suffix}")).flip([1]))
    };
    let mut samples = DataSamples::default();
    // Pipeline masks are per-patch grids; PixMIM's `mask` is MAE's output.
    if case.io.get(&format!("mask{suffix}")).is_some_and(|m| m.shape.len() == 3) {
        samples.mask = Some(case.tensor::<3, BB>(&format!("mask{suffix}")));
    }
    SelfSupInputs::single(view).with_data_samples(samples)
}

/// The masking noise of iteration `step` (MAE-style algorithms), replayed.
fn draws(case: &Case, step: usize) -> Draws {
    let name = if step == 0 { "noise" } else { "noise2" };
    match case.io.get(name) {
        Some(_) => Draws::seeded(0).replay("mask_noise", case.f32(name).0),
        None => Draws::seeded(0),
    }
}

fn check_key_inventory(name: &str) {
    mim::check_key_inventory(name, |model, state, opts| match model {
        Algorithm::SimMim(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        Algorithm::MaskFeat(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        Algorithm::PixMim(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        Algorithm::MixMim(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

fn check_two_iterations(name: &str) {
    mim::check_two_iterations(name, inputs::<B>, draws);
}

/// The recorded intermediates of one forward pass: SimMIM's masked
/// embedding, stage outputs and reconstruction; MaskFeat's tokens, HOG
/// prediction and target; PixMIM's low-frequency target, latent and
/// prediction.
#[test]
fn forward_intermediates_match_reference() {
    let case = Case::load("simmim_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::SimMim(m) = &model else { panic!("SimMIM") };
    let x = inputs(&case, &model, 0);
    let (img, mask) = (x.views[0].clone(), x.data_samples.mask.clone().unwrap());
    let (embed, hw) = m.backbone.patch_embed.forward(img.clone());
    close("simmim patch_embed", embed.clone(), case.f32("debug.patch_embed"));
    let [n, l, _] = embed.dims();
    let w = mask.clone().reshape([n, l, 1]);
    let masked = embed * (w.clone().neg() + 1.0) + m.backbone.mask_token.val() * w;
    close("simmim masked_embed", masked.clone(), case.f32("debug.masked_embed"));
    let mut x0 = masked;
    for block in &m.backbone.stages[0].blocks {
        x0 = block.forward(x0, hw, "", None);
    }
    close("simmim stage0 blocks", x0, case.f32("debug.stage0.blocks"));
    close("simmim feat", m.backbone.forward(img.clone(), Some(mask.clone()), None).unwrap(), case.f32("feat"));
    close("simmim rec", m.reconstruct(img, mask, None).unwrap(), case.f32("rec"));

    let case = Case::load("maskfeat_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::MaskFeat(m) = &model else { panic!("MaskFeat") };
    let x = inputs(&case, &model, 0);
    let (img, mask) = (x.views[0].clone(), x.data_samples.mask.clone().unwrap());
    let latent = m.backbone.forward(img.clone(), mask.clone()).unwrap();
    close("maskfeat latent", latent, case.f32("latent"));
    close("maskfeat pred", m.predict_tokens(img.clone(), mask).unwrap(), case.f32("pred"));
    close("maskfeat target", m.target_generator.forward(img), case.f32("target"));

    let case = Case::load("pixmim_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::PixMim(m) = &model else { panic!("PixMIM") };
    let img = inputs(&case, &model, 0).views[0].clone();
    close("pixmim target", m.target_generator.forward(img.clone()), case.f32("target_lowfreq"));
    let enc = m.backbone.forward_masked(img, &mut draws(&case, 0)).unwrap();
    close("pixmim latent", enc.latent.clone(), case.f32("latent"));
    close("pixmim pred", m.neck.forward(enc.latent, enc.ids_restore), case.f32("pred"));
}

/// `HOGGenerator`: buffers, the normalised histogram and the tokens at 112
/// (one cell per token) and 224 (2 × 2 cells), and the picture
/// `generate_hog_image` draws.
#[test]
fn hog_generator_matches_reference() {
    let case = Case::load("hog_tiny");
    let cfg: HogGeneratorConfig = serde_json::from_value({
        let mut v = case.config["target_generator"].clone();
        v.as_object_mut().unwrap().remove("type");
        v
    })
    .unwrap();
    let hog = cfg.init::<B>(&device());
    for (key, ours) in [("weight_x", values(hog.weight_x.val())), ("weight_y", values(hog.weight_y.val()))] {
        assert_eq!(ours, case.f32(key).0, "{key}");
    }
    let (err, _) = rel_err(&values(hog.gaussian_kernel.as_ref().unwrap().val()), &case.f32("gaussian_kernel").0);
    assert!(err < 1e-6, "gaussian_kernel {err:e}");
    for (x, out, features) in [("x1", "out1", "features1"), ("x2", "out2", "features2")] {
        let input = case.tensor::<4, B>(x);
        let hist = hog.histogram(input.clone());
        let (err, _) = rel_err(&values(hist.clone()), &case.f32(out).0);
        assert!(err < 1e-4, "[{BACKEND}] HOG histogram of {x}: {err:e}");
        let tokens = hog.forward(input);
        assert_eq!(tokens.dims().to_vec(), case.f32(features).1);
        let (err, _) = rel_err(&values(tokens), &case.f32(features).0);
        assert!(err < 1e-4, "[{BACKEND}] HOG tokens of {x}: {err:e}");
        if x == "x2" {
            let [_, c, bins, ch, cw] = hist.dims();
            let picture = hog_generator::generate_hog_image(&case.f32(out).0, [c, bins, ch, cw], cfg.pool, [224, 224]);
            let reference = case.f32("hog_image2").0;
            let differ = picture.iter().zip(&reference).filter(|(a, b)| (**a as f32 - **b).abs() > 0.5).count();
            assert!(differ * 200 < reference.len(), "generate_hog_image: {differ} of {} pixels differ", reference.len());
        }
    }
}

/// `histogram_from_tokens` (MMSelfSup's `MaskFeat.reconstruct`, which the
/// reconstruction view draws the prediction with) is the exact inverse of
/// `tokens`, for one and several cells per token, other channel and bin
/// counts, and a non-square grid; and it gives back the reference's
/// histogram from the reference's tokens.
#[test]
fn hog_tokens_turn_back_into_the_histogram_exactly() {
    for (n, c, bins, [ch, cw], grid) in
        [(2, 3, 9, [14, 14], [14, 14]), (1, 3, 9, [28, 28], [14, 14]), (2, 1, 4, [42, 42], [14, 14]), (1, 2, 3, [28, 14], [28, 14])]
    {
        let len = n * c * bins * ch * cw;
        let data: Vec<f32> = (0..len).map(|i| i as f32 - 0.25 * (i % 7) as f32).collect();
        let hist = Tensor::<Inner, 5>::from_data(burn::tensor::TensorData::new(data.clone(), [n, c, bins, ch, cw]), &device());
        let tokens = hog_generator::tokens(hist);
        let u = cw / 14;
        assert_eq!(tokens.dims(), [n, grid[0] * grid[1], c * bins * u * u]);
        let back = hog_generator::histogram_from_tokens(tokens.clone(), c, bins, grid);
        assert_eq!(back.dims(), [n, c, bins, ch, cw]);
        assert_eq!(values(back.clone()), data, "[{BACKEND}] tokens -> histogram, {c}x{bins}x{ch}x{cw}");
        assert_eq!(values(hog_generator::tokens(back)), values(tokens), "[{BACKEND}] histogram -> tokens, {c}x{bins}x{ch}x{cw}");
    }
    let case = Case::load("hog_tiny");
    for (out, features) in [("out1", "features1"), ("out2", "features2")] {
        let (hist, shape) = case.f32(out);
        let back = hog_generator::histogram_from_tokens(case.tensor::<3, Inner>(features), shape[1], shape[2], [14, 14]);
        assert_eq!(back.dims().to_vec(), shape);
        assert!(values(back) == hist, "[{BACKEND}] the reference's {features} back into {out}");
    }
}

/// `LowFreqTargetGenerator` for a square and a rectangular image: the
/// filter buffer and the target.
#[test]
fn low_freq_target_generator_matches_reference() {
    let case = Case::load("lowfreq_tiny");
    for shape in ["square", "rect"] {
        let mut v = case.config[shape]["config"].clone();
        v.as_object_mut().unwrap().remove("type");
        let cfg: LowFreqTargetGeneratorConfig = serde_json::from_value(v).unwrap();
        let generator = cfg.init::<B>(&device());
        assert_eq!(values(generator.low_pass_filter.val()), case.f32(&format!("{shape}.low_pass_filter")).0, "{shape}: filter");
        let out = generator.forward(case.tensor::<4, B>(&format!("{shape}.inputs")));
        let (err, _) = rel_err(&values(out), &case.f32(&format!("{shape}.output")).0);
        assert!(err < 1e-5, "[{BACKEND}] {shape}: low-frequency target {err:e}");
    }
}

/// The full-size configs under `configs/` build MMSelfSup's state-dict keys
/// and shapes (target-generator buffers included).
#[test]
fn full_size_key_inventories_match_reference() {
    assert!(mim::check_full_size_key_inventories("mim_keys.json") > 0);
}

/// The four demos train through their own pipelines: the mask generators
/// (SimMIM's, BEiT's for MaskFeat) reach the model as data samples, PixMIM's
/// torchvision-style pipeline runs, MixMIM mixes the batch, and the losses
/// are finite.
#[test]
fn mim_demos_train_from_their_pipelines() {
    for path in [
        "configs/simmim/simmim_swin-tiny_demo_synthetic.toml",
        "configs/maskfeat/maskfeat_vit-tiny_demo_synthetic.toml",
        "configs/pixmim/pixmim_vit-tiny-p4_demo_synthetic.toml",
        "configs/mixmim/mixmim_tiny_demo_synthetic.toml",
    ] {
        let losses = selfsup_tests::demo_losses(path, 2);
        assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "[{BACKEND}] {path}: {losses:?}");
    }
}
