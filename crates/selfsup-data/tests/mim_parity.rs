//! Parity of the masked-image-modelling and pretext transforms with MMSelfSup 1.0.0:
//! `BEiTMaskGenerator`, `SimMIMMaskGenerator`, `RandomResizedCropAndInterpolationWithTwoPic`,
//! `RandomRotation`, `RotationWithLabels`, `RandomPatchWithLabels`.
//!
//! The golden file `testdata/mim_golden.json` comes from the reference transforms, run by
//! `tools/gen_mask_fixtures.py` (regenerate with
//! `nice -n 10 .venv-reference/bin/python tools/gen_mask_fixtures.py`).
//!
//! Measured against the reference (intensity levels, 0–255):
//!
//! | check | result |
//! |---|---|
//! | BEiT masks replayed from the reference's own `random` draws (18 masks, 3 configs) | identical |
//! | SimMIM masks replayed from the permutation's swaps (6 masks, 2 configs) | identical |
//! | BEiT statistics, 4000 masks each side: masked count | always exactly `num_masking_patches` |
//! | BEiT blocks per mask (ours / ref, 14×14, 75, min 16) | 4.48 ± 1.45 / 4.54 ± 1.45 (z = 1.7) |
//! | BEiT block attempts per mask | 16.6 ± 16.3 / 17.4 ± 17.0 (z = 2.2) |
//! | BEiT patches newly masked per block | 16.7 / 16.5 (z = 1.1) |
//! | BEiT per-patch masking frequency | max difference 0.03 (0.02 on a 6×9 grid) |
//! | BEiT blocks: height and width | always < the grid side, as in the reference |
//! | `TwoPic` (cv2 `INTER_AREA` fast/general/upscale/mixed, `INTER_CUBIC`, `INTER_LINEAR`) | ≤ 1 |
//! | `RandomRotation` nearest / bilinear / bicubic / lanczos / area, expand, centre, fill | ≤ 1 (nearest: 0) |
//! | `RotationWithLabels` | ≤ 1 |
//! | `RandomPatchWithLabels` patches, `patch_box`, `patch_label` | identical |

use selfsup_data::transforms::{BeitMaskGenerator, Draw, RandomSource, ReplayDraws, Results, Transform};
use selfsup_data::{Image, Pipeline, TransformConfig};

mod common;
use common::{draws, max_diff, Encoded};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct BeitStats {
    n: usize,
    counts: Vec<usize>,
    blocks_mean: f64,
    blocks_std: f64,
    attempts_mean: f64,
    attempts_std: f64,
    added_mean: f64,
    added_std: f64,
    num_blocks: usize,
    new_cells_height_max: usize,
    new_cells_width_max: usize,
    freq: Vec<f64>,
}

#[derive(Deserialize)]
struct BeitReplay {
    draws: Value,
    mask: Vec<i64>,
}

#[derive(Deserialize)]
struct BeitCase {
    config: Value,
    shape: [usize; 2],
    replays: Vec<BeitReplay>,
    stats: BeitStats,
}

#[derive(Deserialize)]
struct SimMimCase {
    config: Value,
    draws: Value,
    shape: Vec<usize>,
    mask: Vec<i64>,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    input: usize,
    out: Encoded,
    #[serde(flatten)]
    params: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct Golden {
    inputs: Vec<Encoded>,
    beit: Vec<BeitCase>,
    simmim: Vec<SimMimCase>,
    cases: Vec<Case>,
    patch_meta: Value,
}

const GOLDEN: &str = include_str!("testdata/mim_golden.json");

fn golden() -> Golden {
    serde_json::from_str(GOLDEN).expect("golden file parses")
}

fn config(v: &Value) -> TransformConfig {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("config {v}: {e}"))
}

/// Runs `cfgs` on `img` with replayed draws (all of which must be used).
fn run(cfgs: &[TransformConfig], img: &Image, d: Vec<Draw>) -> Results {
    let p = Pipeline::new(cfgs).expect("builds");
    let mut rng = ReplayDraws::new(d);
    let out = p.transform(Results { img: vec![img.clone()], name: "golden".into(), ..Results::default() }, &mut rng).expect("runs");
    assert_eq!(rng.remaining(), 0, "every recorded draw is consumed");
    out
}

// ---------------------------------------------------------------------------------------------
// Mask generators
// ---------------------------------------------------------------------------------------------

#[test]
fn beit_masks_replay_the_reference_draw_for_draw() {
    let g = golden();
    let mut n = 0;
    for case in &g.beit {
        for r in &case.replays {
            let out = run(&[config(&case.config)], &Image::filled(1, 1, &[0]), draws(&r.draws));
            let mask = out.mask.expect("mask added");
            assert_eq!(mask.shape, case.shape.to_vec());
            assert_eq!(mask.to_i64(), r.mask, "{}", case.config);
            n += 1;
        }
    }
    assert!(n >= 18);
}

/// Counts the `uniform` draws (two per block attempt).
struct Counting<R> {
    inner: R,
    uniforms: usize,
}

impl<R: RandomSource> RandomSource for Counting<R> {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        self.uniforms += 1;
        self.inner.uniform(low, high)
    }

    fn randint(&mut self, low: usize, high: usize) -> usize {
        self.inner.randint(low, high)
    }
}

#[test]
fn beit_mask_statistics_match_the_reference() {
    use rand::SeedableRng;
    let g = golden();
    for case in &g.beit {
        let Transform::BEiTMaskGenerator(t) = config(&case.config).init().expect("builds") else { panic!("not a BEiTMaskGenerator") };
        let t: &BeitMaskGenerator = &t;
        let want = &case.stats;
        let n = want.n;
        let mut rng = Counting { inner: rand_chacha::ChaCha8Rng::seed_from_u64(2024), uniforms: 0 };
        let (h, w) = t.shape();
        let mut freq = vec![0f64; h * w];
        let (mut blocks, mut blocks_sq, mut added, mut added_sq, mut n_blocks) = (0f64, 0f64, 0f64, 0f64, 0f64);
        let (mut attempts_sq, mut last_uniforms) = (0f64, 0usize);
        let (mut max_h, mut max_w) = (0, 0);
        for _ in 0..n {
            let m = t.generate(&mut rng).expect("mask");
            let count: usize = m.mask.iter().map(|&v| usize::from(v)).sum();
            assert_eq!(vec![count], want.counts, "{}", case.config);
            for (f, &v) in freq.iter_mut().zip(&m.mask) {
                *f += f64::from(v) / n as f64;
            }
            let a = (rng.uniforms - last_uniforms) as f64 / 2.0;
            last_uniforms = rng.uniforms;
            attempts_sq += a * a / n as f64;
            let b = m.blocks.len() as f64;
            blocks += b / n as f64;
            blocks_sq += b * b / n as f64;
            for blk in &m.blocks {
                added += blk.added as f64;
                added_sq += (blk.added * blk.added) as f64;
                n_blocks += 1.0;
                max_h = max_h.max(blk.height);
                max_w = max_w.max(blk.width);
            }
        }
        let attempts = rng.uniforms as f64 / 2.0 / n as f64;
        let added = added / n_blocks;
        let added_std = (added_sq / n_blocks - added * added).sqrt();
        let attempts_std = (attempts_sq - attempts * attempts).sqrt();
        let std = (blocks_sq - blocks * blocks).sqrt();
        // Two-sample z-scores of the means (both sides are independent samples of `n` masks).
        let z = |m1: f64, s1: f64, n1: f64, m2: f64, s2: f64, n2: f64| (m1 - m2).abs() / (s1 * s1 / n1 + s2 * s2 / n2).sqrt();
        let nf = n as f64;
        let z_blocks = z(blocks, std, nf, want.blocks_mean, want.blocks_std, nf);
        let z_attempts = z(attempts, attempts_std, nf, want.attempts_mean, want.attempts_std, nf);
        let z_added = z(added, added_std, n_blocks, want.added_mean, want.added_std, want.num_blocks as f64);
        let rel = |a: f64, b: f64| (a - b).abs() / b;
        println!(
            "{}: blocks/mask {blocks:.3} (ref {:.3}), std {std:.3} (ref {:.3}), attempts/mask \
             {attempts:.3} (ref {:.3}), patches/block {added:.3} (ref {:.3})",
            case.config, want.blocks_mean, want.blocks_std, want.attempts_mean, want.added_mean
        );
        println!(
            "  z-scores: blocks {z_blocks:.2}, attempts {z_attempts:.2} (std {attempts_std:.2}, \
             ref {:.2}), patches/block {z_added:.2}",
            want.attempts_std
        );
        // Same distribution: the means agree within 4.5 standard errors, the spreads within 8%.
        assert!(z_blocks < 4.5, "blocks per mask: z = {z_blocks}");
        assert!(z_attempts < 4.5, "attempts per mask: z = {z_attempts}");
        assert!(z_added < 4.5, "patches per block: z = {z_added}");
        assert!(rel(std, want.blocks_std) < 0.08, "spread of blocks per mask");
        assert!(rel(attempts_std, want.attempts_std) < 0.15, "spread of attempts");
        // Blocks are strictly smaller than the grid, and the reference reaches the same
        // largest extents of newly masked cells.
        assert!(max_h < h && max_w < w);
        assert!(max_h >= want.new_cells_height_max && max_w >= want.new_cells_width_max);
        let worst = freq.iter().zip(&want.freq).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("  per-patch frequency: max |ours − ref| = {worst:.4}");
        assert!(worst < 0.045, "per-patch masking frequency differs by {worst}");
    }
}

#[test]
fn simmim_masks_replay_the_reference() {
    let g = golden();
    for case in &g.simmim {
        let out = run(&[config(&case.config)], &Image::filled(1, 1, &[0]), draws(&case.draws));
        let mask = out.mask.expect("mask added");
        assert_eq!(mask.shape, case.shape);
        assert_eq!(mask.to_i64(), case.mask, "{}", case.config);
    }
    assert!(g.simmim.len() >= 6);
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

fn cases<'a>(g: &'a Golden, kind: &str) -> Vec<&'a Case> {
    let v: Vec<&Case> = g.cases.iter().filter(|c| c.kind == kind).collect();
    assert!(!v.is_empty(), "no golden case of kind {kind}");
    v
}

#[test]
fn two_pic_matches_mmselfsup_within_one_level() {
    let g = golden();
    let inputs: Vec<Image> = g.inputs.iter().map(Encoded::image).collect();
    let firsts = cases(&g, "two_pic");
    let seconds = cases(&g, "two_pic_second");
    assert_eq!(firsts.len(), seconds.len());
    let mut worst = 0;
    for (a, b) in firsts.iter().zip(&seconds) {
        let cfg = config(&a.params["config"]);
        let out = run(&[cfg], &inputs[a.input], draws(&a.params["draws"]));
        assert_eq!(out.img.len(), 2);
        let what = format!("{}", a.params["config"]);
        let d0 = max_diff(&out.img[0], &a.out.image(), &what);
        let d1 = max_diff(&out.img[1], &b.out.image(), &what);
        println!("two_pic {what}: max diff {d0} / {d1}");
        assert!(d0 <= 1 && d1 <= 1, "{what}: {d0} {d1}");
        worst = worst.max(d0).max(d1);
    }
    println!("two_pic worst: {worst}");
}

#[test]
fn random_rotation_matches_mmselfsup_within_one_level() {
    let g = golden();
    let inputs: Vec<Image> = g.inputs.iter().map(Encoded::image).collect();
    for c in cases(&g, "rotation") {
        let cfg = config(&c.params["config"]);
        let nearest = c.params["config"].get("interpolation").is_none();
        let angle = c.params["angle"].as_f64().expect("angle");
        let out = run(&[cfg], &inputs[c.input], vec![Draw::Uniform(angle)]);
        let what = format!("{} at {angle} on input {}", c.params["config"], c.input);
        let d = max_diff(&out.img[0], &c.out.image(), &what);
        println!("rotation {what}: max diff {d}");
        assert!(d <= if nearest { 0 } else { 1 }, "{what}: {d}");
    }
}

#[test]
fn rotation_with_labels_matches_mmselfsup() {
    let g = golden();
    let inputs: Vec<Image> = g.inputs.iter().map(Encoded::image).collect();
    let cfg = config(&serde_json::json!({"type": "RotationWithLabels"}));
    for c in cases(&g, "rotation_with_labels") {
        let out = run(std::slice::from_ref(&cfg), &inputs[c.input], vec![]);
        let k = c.params["view"].as_u64().expect("view") as usize;
        let d = max_diff(&out.img[k], &c.out.image(), &format!("view {k}"));
        assert!(d <= 1, "view {k} of input {}: {d}", c.input);
        assert_eq!(out.pseudo_label["rot_label"].to_i64(), vec![0, 1, 2, 3]);
    }
}

#[test]
fn random_patch_with_labels_matches_mmselfsup() {
    let g = golden();
    let inputs: Vec<Image> = g.inputs.iter().map(Encoded::image).collect();
    let meta = &g.patch_meta;
    let cfg = config(&serde_json::json!({"type": "RandomPatchWithLabels"}));
    let out = run(&[cfg], &inputs[2], draws(&meta["draws"]));
    let patches = cases(&g, "patch");
    assert_eq!(out.img.len(), patches.len());
    for c in patches {
        let k = c.params["view"].as_u64().expect("view") as usize;
        assert_eq!(out.img[k], c.out.image(), "patch {k}");
    }
    let ints = |k: &str| -> Vec<i64> { serde_json::from_value(meta[k].clone()).expect("ints") };
    let shape = |k: &str| -> Vec<usize> { serde_json::from_value(meta[k].clone()).expect("shape") };
    let labels = &out.pseudo_label;
    assert_eq!(labels["patch_label"].to_i64(), ints("patch_label"));
    assert_eq!(labels["patch_label"].shape, shape("patch_label_shape"));
    assert_eq!(labels["patch_box"].to_i64(), ints("patch_box"));
    assert_eq!(labels["patch_box"].shape, shape("patch_box_shape"));
    assert_eq!(labels["unpatched_img"].shape, shape("unpatched_img_shape"));
}

// ---------------------------------------------------------------------------------------------
// Recipes: MMSelfSup's BEiT, SimMIM, RelativeLoc and RotationPred pipelines, end to end
// ---------------------------------------------------------------------------------------------

fn loader_batches(pipeline: &str, img_size: usize) -> selfsup_data::Batch {
    use selfsup_data::{DataLoader, DataLoaderOptions, SyntheticDatasetConfig};
    let p = Pipeline::new(&TransformConfig::parse_list(pipeline).expect("parses")).expect("builds");
    let ds = SyntheticDatasetConfig { num_samples: 4, img_size, ..Default::default() }.build().expect("dataset");
    let l = DataLoader::new(std::sync::Arc::new(ds), p, DataLoaderOptions { batch_size: 2, num_workers: 2, seed: 1, ..Default::default() })
        .expect("loader");
    l.iter_epoch(0).next().expect("a batch").expect("batch")
}

#[test]
fn beit_pipeline_batches_two_sizes_and_the_mask() {
    let b = loader_batches(
        r#"[
        {"type": "LoadImageFromFile"},
        {"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.0},
        {"type": "RandomFlip", "prob": 0.5, "direction": "horizontal"},
        {"type": "RandomResizedCropAndInterpolationWithTwoPic", "size": 224, "second_size": 112,
         "interpolation": "bicubic", "second_interpolation": "lanczos", "scale": [0.08, 1.0]},
        {"type": "BEiTMaskGenerator", "input_size": [14, 14], "num_masking_patches": 75,
         "min_num_patches": 16},
        {"type": "PackSelfSupInputs", "algorithm_keys": ["mask"], "meta_keys": ["img_path"]}
    ]"#,
        64,
    );
    assert_eq!(b.views[0].shape, [2, 3, 224, 224]);
    assert_eq!(b.views[1].shape, [2, 3, 112, 112]);
    let m = b.mask.expect("mask batched");
    assert_eq!(m.shape, vec![2, 14, 14]);
    assert_eq!(m.to_i64().iter().sum::<i64>(), 150);
}

#[test]
fn simmim_relative_loc_and_rotation_pred_pipelines_batch_their_labels() {
    let b = loader_batches(
        r#"[
        {"type": "LoadImageFromFile"},
        {"type": "RandomResizedCrop", "size": 192, "scale": [0.67, 1.0], "ratio": [0.75, 1.3333333]},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "SimMIMMaskGenerator", "input_size": 192, "mask_patch_size": 32,
         "model_patch_size": 4, "mask_ratio": 0.6},
        {"type": "PackSelfSupInputs", "algorithm_keys": ["mask"], "meta_keys": ["img_path"]}
    ]"#,
        64,
    );
    assert_eq!(b.views[0].shape, [2, 3, 192, 192]);
    let m = b.mask.expect("mask");
    assert_eq!(m.shape, vec![2, 48, 48]);
    assert_eq!(m.to_i64().iter().sum::<i64>(), 2 * 22 * 64);

    let b = loader_batches(
        r#"[
        {"type": "LoadImageFromFile"},
        {"type": "Resize", "scale": 292},
        {"type": "RandomCrop", "size": 255},
        {"type": "RandomGrayscale", "prob": 0.66, "keep_channels": true},
        {"type": "RandomPatchWithLabels"},
        {"type": "PackSelfSupInputs", "pseudo_label_keys": ["patch_box", "patch_label", "unpatched_img"],
         "meta_keys": ["img_path"]}
    ]"#,
        64,
    );
    assert_eq!(b.views.len(), 9);
    assert!(b.views.iter().all(|v| v.shape == [2, 3, 64, 64]));
    assert!(b.mask.is_none());
    assert_eq!(b.pseudo_label["patch_label"].shape, vec![2, 1, 8]);
    assert_eq!(b.pseudo_label["patch_box"].shape, vec![2, 1, 9, 4]);
    assert_eq!(b.pseudo_label["unpatched_img"].shape, vec![2, 1, 255, 255, 3]);

    let b = loader_batches(
        r#"[
        {"type": "LoadImageFromFile"},
        {"type": "RandomResizedCrop", "size": 224, "backend": "pillow"},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "RotationWithLabels"},
        {"type": "PackSelfSupInputs", "pseudo_label_keys": ["rot_label"], "meta_keys": ["img_path"]}
    ]"#,
        64,
    );
    assert_eq!(b.views.len(), 4);
    assert_eq!(b.pseudo_label["rot_label"].shape, vec![2, 4]);
}

#[test]
fn packing_a_key_no_transform_adds_is_an_error_naming_it() {
    for (pipeline, key) in [
        (
            r#"[{"type": "RandomFlip", "prob": 0.5},
               {"type": "PackSelfSupInputs", "algorithm_keys": ["mask"]}]"#,
            "mask",
        ),
        (
            r#"[{"type": "MultiView", "num_views": 1, "transforms": [[{"type": "RotationWithLabels"}]]},
               {"type": "PackSelfSupInputs", "pseudo_label_keys": ["rot_label"]}]"#,
            "rot_label",
        ),
    ] {
        let err = Pipeline::new(&TransformConfig::parse_list(pipeline).expect("parses")).expect_err("key not produced");
        assert!(err.to_string().contains(key), "{err}");
    }
}
