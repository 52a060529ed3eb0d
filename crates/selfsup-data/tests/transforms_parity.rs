//! Parity of the colour, blur, solarize, grayscale, crop and flip transforms with MMSelfSup
//! 1.0.0 / mmcv 2.0.1 / Pillow, and decoding of MMSelfSup's SSL augmentation recipes.
//!
//! The golden outputs in `testdata/transforms_golden.json` come from the real reference
//! implementations, run by `tools/gen_transform_fixtures.py` with fixed random parameters
//! (regenerate with `nice -n 10 .venv-reference/bin/python tools/gen_transform_fixtures.py`).
//! Each case feeds the same parameters to our deterministic functions (`apply_with`, or the
//! random path through [`ReplayDraws`]).
//!
//! Measured maximum differences against the reference (intensity levels, 0–255):
//!
//! | operation | max difference |
//! |---|---|
//! | Pillow's RGB→HSV, HSV→RGB, RGB→L (all 2²⁴ inputs) and `blend` (all pairs, 8 alphas) | 0 |
//! | `adjust_brightness` / `adjust_contrast` / `adjust_color` / `adjust_hue` (Pillow) | 0 |
//! | `ColorJitter` (fixed order and factors) | 0 |
//! | `RandomGrayscale` | 0 |
//! | `RandomSolarize` | 0 |
//! | `RandomGaussianBlur` (PIL `GaussianBlur`, RGB and `L`, 44 radii from 0.05 to 9.5) | 0 |
//! | `RandomCrop` (all padding modes), flips | 0 |
//! | whole SimCLR-like view pipelines (RRC, flip, jitter, grayscale, blur, solarize) | 0 |
//! | `ToPIL`/`ToNumpy` (all four flag pairs) | 0 |
//! | `torchvision/Resize` (every interpolation, `[h, w]`, `max_size`, both pass orders) | 0 |
//! | `torchvision/RandomCrop` (every padding mode and form, `fill`, `pad_if_needed`) | 0 |
//! | `torchvision/RandomHorizontalFlip` | 0 |
//! | MMSelfSup's PixMIM view pipeline (`ToPIL` … `ToNumpy`), on torch's own seeded draws | 0 |
//! | `np.pad` index maps (`reflect`, `symmetric`, `edge`) | 0 |
//! | mmcls's `RandomErasing`, `RandAugment`, `AutoAugment` and the 14 operations (cv2 paths) | 0 |
//!
//! The tests assert exact equality: every one of these operations is a bit-exact port. The
//! `torchvision` section of the golden file holds its own inputs (37×53 and 300×200); its
//! larger outputs are stored as checksums (equal checksums mean equal bytes, see
//! [`checksum_update`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use selfsup_config::{Config, Format};
use selfsup_data::imaging::geometric::{imflip, np_pad_indices, FlipDirection, PaddingMode};
use selfsup_data::imaging::photometric::{adjust_brightness, adjust_color, adjust_contrast, adjust_hue};
use selfsup_data::loader::DataLoaderConfig;
use selfsup_data::transforms::{ColorJitter, Draw, RandomGaussianBlur, ReplayDraws, Results, Transform};
use selfsup_data::{DataLoader, DataLoaderOptions, Image, Pipeline, SyntheticDatasetConfig, TransformConfig};
use serde::Deserialize;
use serde_json::Value;

mod common;
use common::{max_diff, Encoded};

// ---------------------------------------------------------------------------------------------
// Golden file
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Case {
    kind: String,
    input: usize,
    out: Encoded,
    #[serde(flatten)]
    params: BTreeMap<String, Value>,
}

impl Case {
    fn f64(&self, key: &str) -> f64 {
        self.params[key].as_f64().expect("number parameter")
    }

    fn config(&self) -> TransformConfig {
        serde_json::from_value(self.params["config"].clone()).expect("case config decodes")
    }

    fn draws(&self) -> Vec<Draw> {
        common::draws(&self.params["draws"])
    }

    fn what(&self) -> String {
        let mut p = self.params.clone();
        p.remove("draws");
        format!("{} on input {} with {p:?}", self.kind, self.input)
    }
}

#[derive(Deserialize)]
struct BlendChecksum {
    alpha: f64,
    checksum: u64,
}

#[derive(Deserialize)]
struct Exhaustive {
    rgb_to_hsv: u64,
    hsv_to_rgb: u64,
    rgb_to_l: u64,
    blend: Vec<BlendChecksum>,
}

#[derive(Deserialize)]
struct Golden {
    inputs: Vec<Encoded>,
    cases: Vec<Case>,
    exhaustive: Exhaustive,
    torchvision: TorchvisionGolden,
}

/// The golden script's `torchvision_section`.
#[derive(Deserialize)]
struct TorchvisionGolden {
    inputs: Vec<Encoded>,
    cases: Vec<TorchvisionCase>,
    np_pad: Vec<NpPadCase>,
}

/// A pipeline (`ToPIL`, torchvision transforms, `ToNumpy`) run by the reference with fixed
/// (or, for `pixmim`, seeded and recovered) torch draws.
#[derive(Deserialize)]
struct TorchvisionCase {
    kind: String,
    input: usize,
    config: Vec<TransformConfig>,
    draws: Value,
    out: EncodedOrChecksum,
    #[serde(flatten)]
    params: BTreeMap<String, Value>,
}

/// An output: the bytes (as [`Encoded`]) or, for large images, their checksum.
#[derive(Deserialize)]
struct EncodedOrChecksum {
    w: usize,
    h: usize,
    c: usize,
    data: Option<String>,
    checksum: Option<u64>,
}

#[derive(Deserialize)]
struct NpPadCase {
    n: usize,
    before: usize,
    after: usize,
    mode: PaddingMode,
    index: Vec<usize>,
}

const GOLDEN: &str = include_str!("testdata/transforms_golden.json");

fn golden() -> (Vec<Image>, Vec<Case>) {
    let g: Golden = serde_json::from_str(GOLDEN).expect("golden file parses");
    (g.inputs.iter().map(Encoded::image).collect(), g.cases)
}

/// The golden script's checksum: `Σ v[i] · (i + 1) · K mod 2⁶⁴` over the flattened bytes,
/// continued from `(state, offset)` so that an image can be hashed in chunks.
fn checksum_update(state: &mut (u64, u64), bytes: &[u8]) {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let (sum, offset) = state;
    for (i, &v) in bytes.iter().enumerate() {
        let w = (*offset + i as u64 + 1).wrapping_mul(K);
        *sum = sum.wrapping_add(u64::from(v).wrapping_mul(w));
    }
    *offset += bytes.len() as u64;
}

/// Checks every case of `kinds` with `f`, asserts exact equality, and returns the number of
/// cases checked.
fn check(kinds: &[&str], f: impl Fn(&Image, &Case) -> Image) -> usize {
    let (inputs, cases) = golden();
    let mut n = 0;
    for case in cases.iter().filter(|c| kinds.contains(&c.kind.as_str())) {
        let got = f(&inputs[case.input], case);
        let d = max_diff(&got, &case.out.image(), &case.what());
        assert_eq!(d, 0, "{}: max difference {d}", case.what());
        n += 1;
    }
    assert!(n > 0, "no golden case of kind {kinds:?}");
    n
}

/// Runs one transform config on `img`, drawing from `draws` (all of which must be used).
fn run_replayed(cfgs: &[TransformConfig], img: &Image, draws: Vec<Draw>) -> Image {
    let pipeline = Pipeline::new(cfgs).expect("builds");
    let mut rng = ReplayDraws::new(draws);
    let out = pipeline
        .transform(Results { img: vec![img.clone()], gt_label: None, sample_idx: 0, name: "golden".into(), ..Results::default() }, &mut rng)
        .expect("transform succeeds");
    assert_eq!(rng.remaining(), 0, "every recorded draw is consumed");
    assert_eq!(out.img.len(), 1);
    out.img.into_iter().next().expect("one image")
}

fn built(cfg: &TransformConfig) -> Transform {
    cfg.init().expect("golden config builds")
}

// ---------------------------------------------------------------------------------------------
// Parity
// ---------------------------------------------------------------------------------------------

#[test]
fn photometric_functions_match_mmcv_pillow_backend() {
    let n = check(&["brightness", "contrast", "saturation", "hue"], |img, c| {
        let f = c.f64("factor");
        match c.kind.as_str() {
            "brightness" => adjust_brightness(img, f),
            "contrast" => adjust_contrast(img, f),
            "saturation" => adjust_color(img, f),
            _ => adjust_hue(img, f),
        }
    });
    assert!(n >= 30);
}

/// Every 24-bit colour through RGB→HSV, HSV→RGB and RGB→L, and every pair of values through
/// `Image.blend`, against checksums of Pillow's outputs.
#[test]
fn pillow_colour_primitives_are_exact_for_every_value() {
    use selfsup_data::imaging::pillow_enhance::{blend, hsv_to_rgb, rgb_to_hsv, rgb_to_l};
    let g: Golden = serde_json::from_str(GOLDEN).expect("golden file parses");
    let (mut hsv, mut rgb, mut l) = ((0, 0), (0, 0), (0, 0));
    // 4096x4096 pixels, pixel p = (p >> 16, p >> 8 & 255, p & 255), in 16 bands of 256 rows.
    for band in 0..16u32 {
        let first = band << 20;
        let data: Vec<u8> = (first..first + (1 << 20)).flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, p as u8]).collect();
        let img = Image::from_raw(4096, 256, 3, data).expect("band");
        checksum_update(&mut hsv, rgb_to_hsv(&img).data());
        checksum_update(&mut rgb, hsv_to_rgb(&img).data());
        checksum_update(&mut l, rgb_to_l(&img).data());
    }
    assert_eq!(hsv.0, g.exhaustive.rgb_to_hsv, "RGB → HSV");
    assert_eq!(rgb.0, g.exhaustive.hsv_to_rgb, "HSV → RGB");
    assert_eq!(l.0, g.exhaustive.rgb_to_l, "RGB → L");
    let rows = Image::from_fn(256, 256, |_, y| [y as u8]);
    let cols = Image::from_fn(256, 256, |x, _| [x as u8]);
    for b in &g.exhaustive.blend {
        let mut state = (0, 0);
        checksum_update(&mut state, blend(&rows, &cols, b.alpha as f32).data());
        assert_eq!(state.0, b.checksum, "blend with alpha {}", b.alpha);
    }
}

#[test]
fn color_jitter_matches_mmselfsup() {
    // Deterministic path: the parameters drawn from the recorded draws, then `apply_with`.
    check(&["color_jitter"], |img, c| {
        let Transform::ColorJitter(t) = built(&c.config()) else { panic!("not a ColorJitter") };
        let mut rng = ReplayDraws::new(c.draws());
        let params = t.sample_params(&mut rng);
        assert_eq!(rng.remaining(), 0);
        let order: Vec<usize> = serde_json::from_value(c.params["order"].clone()).expect("order");
        assert_eq!(params.order.to_vec(), order, "{}", c.what());
        ColorJitter::apply_with(img.clone(), &params).expect("3-channel input")
    });
    // Random path, through a pipeline.
    check(&["color_jitter"], |img, c| run_replayed(&[c.config()], img, c.draws()));
}

#[test]
fn grayscale_matches_mmcv() {
    check(&["grayscale"], |img, c| {
        let Transform::RandomGrayscale(t) = built(&c.config()) else { panic!("not a RandomGrayscale") };
        t.apply_with(img.clone(), true).expect("3 channels")
    });
    check(&["grayscale", "grayscale_skipped"], |img, c| {
        let u = c.params.get("draw").and_then(Value::as_f64).unwrap_or(0.0);
        run_replayed(&[c.config()], img, vec![Draw::Uniform(u)])
    });
}

#[test]
fn solarize_matches_mmcv() {
    check(&["solarize"], |img, c| {
        let cfg: TransformConfig = serde_json::from_value(serde_json::json!({
            "type": "RandomSolarize", "threshold": c.f64("threshold"), "prob": 1.0
        }))
        .expect("decodes");
        let Transform::RandomSolarize(t) = built(&cfg) else { panic!("not a RandomSolarize") };
        let direct = t.apply_with(img.clone(), true);
        assert_eq!(direct, run_replayed(&[cfg], img, vec![Draw::Uniform(0.0)]), "random path");
        direct
    });
}

#[test]
fn gaussian_blur_matches_pillow() {
    check(&["gaussian_blur"], |img, c| {
        let sigma = c.f64("sigma");
        let cfg: TransformConfig = serde_json::from_value(serde_json::json!({
            "type": "RandomGaussianBlur", "sigma_min": 0.1, "sigma_max": 10.0, "prob": 1.0
        }))
        .expect("decodes");
        let direct = RandomGaussianBlur::apply_with(img.clone(), Some(sigma));
        let replayed = run_replayed(&[cfg], img, vec![Draw::Uniform(0.0), Draw::Uniform(sigma)]);
        assert_eq!(direct, replayed, "random path");
        direct
    });
    // One-channel ('L') images, e.g. after RandomGrayscale(keep_channels=False).
    let (_, cases) = golden();
    let gray = cases.iter().find(|c| c.kind == "gray_input").expect("gray input").out.image();
    check(&["gaussian_blur_gray"], |_, c| RandomGaussianBlur::apply_with(gray.clone(), Some(c.f64("sigma"))));
    // Many radii on a 29x3 strip (radius larger than the height, fractional box edges).
    let strip = cases.iter().find(|c| c.kind == "strip_input").expect("strip input").out.image();
    let n = check(&["gaussian_blur_strip"], |_, c| RandomGaussianBlur::apply_with(strip.clone(), Some(c.f64("sigma"))));
    assert!(n >= 30);
}

#[test]
fn random_crop_matches_mmselfsup() {
    check(&["random_crop"], |img, c| {
        let offsets: Vec<usize> = serde_json::from_value(c.params["offsets"].clone()).expect("offsets");
        let Transform::RandomCrop(t) = built(&c.config()) else { panic!("not a RandomCrop") };
        let (top, left) = match offsets[..] {
            [top, left] => (top, left),
            _ => (0, 0),
        };
        let direct = t.apply_with(img.clone(), top, left).expect("fits");
        let replayed = run_replayed(&[c.config()], img, offsets.iter().map(|&k| Draw::Int(k)).collect());
        assert_eq!(direct, replayed, "random path of {}", c.what());
        direct
    });
}

#[test]
fn flips_match_mmcv() {
    check(&["flip"], |img, c| {
        let d: FlipDirection = serde_json::from_value(c.params["direction"].clone()).expect("direction");
        imflip(img, d)
    });
}

#[test]
fn view_pipelines_match_mmselfsup_draw_for_draw() {
    check(&["pipeline"], |img, c| {
        let cfgs: Vec<TransformConfig> = serde_json::from_value(c.params["config"].clone()).expect("pipeline decodes");
        run_replayed(&cfgs, img, c.draws())
    });
}

/// Every case of the `torchvision` section through our pipeline, with the reference's torch
/// draws replayed (`torch.randint` → integer draws, `torch.rand(1)` → uniform draws).
#[test]
fn torchvision_pil_pipelines_match_mmcls_torchvision_wrappers() {
    let g: Golden = serde_json::from_str(GOLDEN).expect("golden file parses");
    let inputs: Vec<Image> = g.torchvision.inputs.iter().map(Encoded::image).collect();
    assert_eq!(inputs.iter().map(|i| (i.width(), i.height())).collect::<Vec<_>>(), [(37, 53), (300, 200)]);
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &g.torchvision.cases {
        let what = format!("{} on input {} with {:?} {:?}", case.kind, case.input, serde_json::to_string(&case.config), case.params);
        let got = run_replayed(&case.config, &inputs[case.input], common::draws(&case.draws));
        let want = &case.out;
        assert_eq!((got.width(), got.height(), got.channels()), (want.w, want.h, want.c), "shape of {what}");
        match (&want.data, want.checksum) {
            (Some(data), _) => {
                let want = Image::from_raw(want.w, want.h, want.c, common::base64_decode(data)).expect("golden image");
                assert_eq!(max_diff(&got, &want, &what), 0, "{what}");
            }
            (None, Some(sum)) => {
                let mut state = (0, 0);
                checksum_update(&mut state, got.data());
                assert_eq!(state.0, sum, "checksum of {what}");
            }
            (None, None) => panic!("{what}: no data nor checksum"),
        }
        // The crops again, through the deterministic `apply_with` at the recorded offsets.
        if case.kind == "random_crop" {
            let offsets: Vec<usize> = serde_json::from_value(case.params["offsets"].clone()).expect("offsets");
            let (top, left) = match offsets[..] {
                [top, left] => (top, left),
                _ => (0, 0),
            };
            let [to_pil, crop, to_numpy] = &case.config[..] else { panic!("{what}: not ToPIL, crop, ToNumpy") };
            let Transform::TorchvisionRandomCrop(t) = built(crop) else { panic!("{what}: not a torchvision/RandomCrop") };
            // Each transform on its own (a pipeline cannot stop at the PIL image).
            let convert = |cfg: &TransformConfig, img: Image| {
                let r = built(cfg).transform(Results { img: vec![img], ..Results::default() }, &mut ReplayDraws::new([]));
                r.expect("converts").img.remove(0)
            };
            let pil = convert(to_pil, inputs[case.input].clone());
            let direct = convert(to_numpy, t.apply_with(pil, top, left).expect("fits"));
            assert_eq!(direct, got, "apply_with of {what}");
        }
        *per_kind.entry(case.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<&str> = per_kind.keys().copied().collect();
    assert_eq!(kinds, ["conversion", "flip", "pixmim", "random_crop", "resize"], "{per_kind:?}");
    assert!(per_kind["resize"] >= 20 && per_kind["random_crop"] >= 20 && per_kind["pixmim"] >= 4, "{per_kind:?}");
}

/// NumPy's `np.pad` index maps, which torchvision's PIL padding uses.
#[test]
fn np_pad_indices_match_numpy() {
    let g: Golden = serde_json::from_str(GOLDEN).expect("golden file parses");
    for c in &g.torchvision.np_pad {
        let got: Vec<usize> = np_pad_indices(c.n, c.before, c.after, c.mode).into_iter().map(|i| i.expect("not constant")).collect();
        assert_eq!(got, c.index, "np.pad(arange({}), ({}, {}), {:?})", c.n, c.before, c.after, c.mode);
    }
    assert!(g.torchvision.np_pad.len() >= 90);
}

// ---------------------------------------------------------------------------------------------
// Recipes (MMSelfSup 1.0.0 `configs/selfsup/_base_/datasets/*.py`, inventory §2.8)
// ---------------------------------------------------------------------------------------------

const SIMCLR: &str = r#"
[train_dataloader]
batch_size = 32
num_workers = 4
persistent_workers = true
sampler = { type = "DefaultSampler", shuffle = true }
collate_fn = { type = "default_collate" }

[train_dataloader.dataset]
type = "mmcls.ImageNet"
data_root = "data/imagenet/"
ann_file = "meta/train.txt"
data_prefix = { img_path = "train/" }
pipeline = [
    { type = "LoadImageFromFile" },
    { type = "MultiView", num_views = 2, transforms = [[
        { type = "RandomResizedCrop", size = 224, backend = "pillow" },
        { type = "RandomFlip", prob = 0.5 },
        { type = "RandomApply", prob = 0.8, transforms = [
            { type = "ColorJitter", brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2 },
        ] },
        { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
        { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 0.5 },
    ]] },
    { type = "PackSelfSupInputs", meta_keys = ["img_path"] },
]
"#;

const MOCOV2: &str = r#"
[train_dataloader]
batch_size = 32
num_workers = 8
drop_last = true
persistent_workers = true
sampler = { type = "DefaultSampler", shuffle = true }
collate_fn = { type = "default_collate" }

[train_dataloader.dataset]
type = "mmcls.ImageNet"
data_root = "data/imagenet/"
ann_file = "meta/train.txt"
data_prefix = { img_path = "train/" }
pipeline = [
    { type = "LoadImageFromFile" },
    { type = "MultiView", num_views = 2, transforms = [[
        { type = "RandomResizedCrop", size = 224, scale = [0.2, 1.0], backend = "pillow" },
        { type = "RandomApply", prob = 0.8, transforms = [
            { type = "ColorJitter", brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1 },
        ] },
        { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
        { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 0.5 },
        { type = "RandomFlip", prob = 0.5 },
    ]] },
    { type = "PackSelfSupInputs", meta_keys = ["img_path"] },
]
"#;

const BYOL: &str = r#"
[train_dataloader]
batch_size = 32
num_workers = 4
persistent_workers = true
sampler = { type = "DefaultSampler", shuffle = true }
collate_fn = { type = "default_collate" }

[train_dataloader.dataset]
type = "mmcls.ImageNet"
data_root = "data/imagenet/"
ann_file = "meta/train.txt"
data_prefix = { img_path = "train/" }
pipeline = [
    { type = "LoadImageFromFile" },
    { type = "MultiView", num_views = [1, 1], transforms = [
        [
            { type = "RandomResizedCrop", size = 224, interpolation = "bicubic", backend = "pillow" },
            { type = "RandomFlip", prob = 0.5 },
            { type = "RandomApply", prob = 0.8, transforms = [
                { type = "ColorJitter", brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1 },
            ] },
            { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
            { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 1.0 },
            { type = "RandomSolarize", prob = 0.0 },
        ],
        [
            { type = "RandomResizedCrop", size = 224, interpolation = "bicubic", backend = "pillow" },
            { type = "RandomFlip", prob = 0.5 },
            { type = "RandomApply", prob = 0.8, transforms = [
                { type = "ColorJitter", brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1 },
            ] },
            { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
            { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 0.1 },
            { type = "RandomSolarize", prob = 0.2 },
        ],
    ] },
    { type = "PackSelfSupInputs", meta_keys = ["img_path"] },
]
"#;

const SWAV: &str = r#"
[train_dataloader]
batch_size = 32
num_workers = 8
drop_last = true
persistent_workers = true
sampler = { type = "DefaultSampler", shuffle = true }
collate_fn = { type = "default_collate" }

[train_dataloader.dataset]
type = "mmcls.ImageNet"
data_root = "data/imagenet/"
ann_file = "meta/train.txt"
data_prefix = { img_path = "train/" }
pipeline = [
    { type = "LoadImageFromFile" },
    { type = "MultiView", num_views = [2, 6], transforms = [
        [
            { type = "RandomResizedCrop", size = 224, scale = [0.14, 1.0], backend = "pillow" },
            { type = "RandomApply", prob = 0.8, transforms = [
                { type = "ColorJitter", brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2 },
            ] },
            { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
            { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 0.5 },
            { type = "RandomFlip", prob = 0.5 },
        ],
        [
            { type = "RandomResizedCrop", size = 96, scale = [0.05, 0.14], backend = "pillow" },
            { type = "RandomApply", prob = 0.8, transforms = [
                { type = "ColorJitter", brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2 },
            ] },
            { type = "RandomGrayscale", prob = 0.2, keep_channels = true, channel_weights = [0.114, 0.587, 0.2989] },
            { type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, prob = 0.5 },
            { type = "RandomFlip", prob = 0.5 },
        ],
    ] },
    { type = "PackSelfSupInputs", meta_keys = ["img_path"] },
]
"#;

fn toml(text: &str, name: &str) -> Config {
    Config::parse_str(text, Format::Toml, name).expect("valid TOML")
}

/// Decodes a recipe's dataloader (strictly) and builds its pipeline.
fn recipe_pipeline(text: &str, name: &str) -> Pipeline {
    let cfg = toml(text, name);
    cfg.decode_at::<DataLoaderConfig>("train_dataloader").unwrap_or_else(|e| panic!("{name}: {e}"));
    let transforms: Vec<TransformConfig> = cfg.decode_at("train_dataloader.dataset.pipeline").unwrap_or_else(|e| panic!("{name}: {e}"));
    // Round trip through JSON: the configs serialise back to what they decoded from.
    let back: Vec<TransformConfig> = serde_json::from_str(&serde_json::to_string(&transforms).expect("serialises")).expect("parses back");
    assert_eq!(back, transforms, "{name}");
    Pipeline::new(&transforms).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn photo(w: usize, h: usize) -> Image {
    Image::from_fn(w, h, |x, y| [(x * 255 / w) as u8, (y * 255 / h) as u8, ((x * 7 + y * 13) % 256) as u8])
}

fn run_recipe(p: &Pipeline, seed: u64) -> Vec<Image> {
    use rand::SeedableRng;
    let raw = Results { img: vec![photo(120, 90)], gt_label: None, sample_idx: 0, name: "photo".into(), ..Results::default() };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    p.transform(raw, &mut rng).expect("recipe runs").img
}

fn sizes(views: &[Image]) -> Vec<(usize, usize, usize)> {
    views.iter().map(|v| (v.channels(), v.height(), v.width())).collect()
}

#[test]
fn ssl_recipes_decode_from_toml_and_produce_their_views() {
    let simclr = recipe_pipeline(SIMCLR, "simclr.toml");
    let mocov2 = recipe_pipeline(MOCOV2, "mocov2.toml");
    let byol = recipe_pipeline(BYOL, "byol.toml");
    for (name, p, n) in [("SimCLR", &simclr, 2), ("MoCo v2", &mocov2, 2), ("BYOL", &byol, 2)] {
        for seed in 0..3 {
            let views = run_recipe(p, seed);
            assert_eq!(sizes(&views), vec![(3, 224, 224); n], "{name}");
            assert_ne!(views[0], views[1], "{name}: two different augmentations");
            assert_eq!(views, run_recipe(p, seed), "{name}: same seed, same views");
        }
    }
}

#[test]
fn swav_multi_crop_gives_views_of_two_sizes() {
    let swav = recipe_pipeline(SWAV, "swav.toml");
    let views = run_recipe(&swav, 7);
    let mut want = vec![(3, 224, 224); 2];
    want.extend(vec![(3, 96, 96); 6]);
    assert_eq!(sizes(&views), want);
}

#[test]
fn multi_crop_batches_keep_one_shape_per_view_whatever_the_workers() {
    let swav = recipe_pipeline(SWAV, "swav.toml");
    let dataset =
        Arc::new(SyntheticDatasetConfig { num_samples: 5, img_size: 48, ..Default::default() }.build().expect("synthetic dataset"));
    let batches = |workers: usize| {
        DataLoader::new(
            dataset.clone(),
            swav.clone(),
            DataLoaderOptions { batch_size: 2, num_workers: workers, seed: 3, ..Default::default() },
        )
        .expect("loader")
        .iter_epoch(0)
        .map(|b| b.expect("batch"))
        .collect::<Vec<_>>()
    };
    let serial = batches(0);
    assert_eq!(serial.len(), 3);
    let b = &serial[0];
    assert_eq!(b.views.len(), 8);
    for (v, view) in b.views.iter().enumerate() {
        let side = if v < 2 { 224 } else { 96 };
        assert_eq!(view.shape, [2, 3, side, side], "view {v}");
        assert_eq!(view.data.len(), 2 * 3 * side * side);
    }
    assert_eq!(batches(2), serial, "same batches with 2 workers");
}

#[test]
fn unknown_transform_type_is_an_error_naming_it() {
    let text = r#"
pipeline = [
    { type = "MultiView", num_views = 2, transforms = [[
        { type = "RandomApply", transforms = [{ type = "ColourJitter", brightness = 0.4 }] },
    ]] },
]
"#;
    let err = toml(text, "bad.toml").decode_at::<Vec<TransformConfig>>("pipeline").expect_err("unknown type");
    let msg = err.to_string();
    assert!(msg.contains("ColourJitter"), "{msg}");
    assert!(msg.contains("ColorJitter"), "lists the known types: {msg}");
    assert!(msg.contains("transforms"), "names the key path: {msg}");

    let text = r#"pipeline = [{ type = "RandomGaussianBlur", sigma_min = 0.1, sigma_max = 2.0, radius = 3 }]"#;
    let err = toml(text, "bad.toml").decode_at::<Vec<TransformConfig>>("pipeline").expect_err("unknown key");
    assert!(err.to_string().contains("radius"), "{err}");

    let text = r#"pipeline = [{ type = "RandomGaussianBlur", sigma_min = 0.1 }]"#;
    let err = toml(text, "bad.toml").decode_at::<Vec<TransformConfig>>("pipeline").expect_err("missing key");
    assert!(err.to_string().contains("sigma_max"), "{err}");
}

#[test]
fn random_apply_accepts_one_transform_or_a_list() {
    let one: TransformConfig =
        serde_json::from_str(r#"{"type": "RandomApply", "transforms": {"type": "RandomSolarize", "prob": 1.0}, "prob": 1.0}"#)
            .expect("single transform");
    let list: TransformConfig =
        serde_json::from_str(r#"{"type": "RandomApply", "transforms": [{"type": "RandomSolarize", "prob": 1.0}], "prob": 1.0}"#)
            .expect("list");
    assert_eq!(one, list);
    // prob 1: RandomApply draws once (rand() < 1), the solarize draws once.
    let img = photo(5, 4);
    let out = run_replayed(&[one], &img, vec![Draw::Uniform(0.99), Draw::Uniform(0.5)]);
    assert_ne!(out, img);
    let skipped: TransformConfig =
        serde_json::from_str(r#"{"type": "RandomApply", "transforms": [{"type": "RandomSolarize", "prob": 1.0}], "prob": 0.3}"#)
            .expect("list");
    assert_eq!(run_replayed(&[skipped], &img, vec![Draw::Uniform(0.3)]), img);
}

/// mmcls's `RandomErasing` (`tools/gen_random_erasing_fixture.py`): constant,
/// uniform and normal fills (the fine-tuning recipe's BGR colours on RGB
/// images), a float aspect range and a skipped draw, byte for byte from the
/// reference's own draws.
#[test]
fn random_erasing_matches_mmcls() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/random_erasing_golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (h, w) = (case["height"].as_u64().unwrap() as usize, case["width"].as_u64().unwrap() as usize);
        let bytes = |key: &str| -> Vec<u8> { case[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect() };
        let img = Image::from_raw(w, h, 3, bytes("input")).unwrap();
        let draws = replay_draws(case);
        let mut cfg = case["config"].clone();
        cfg["type"] = "RandomErasing".into();
        let cfg: TransformConfig = serde_json::from_value(cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = run_replayed(&[cfg], &img, draws);
        assert_eq!(out.data(), bytes("output").as_slice(), "{name}");
    }
    // Out-of-range settings are refused.
    for bad in
        [r#"{"type": "RandomErasing", "mode": "noise"}"#, r#"{"type": "RandomErasing", "min_area_ratio": 0.5, "max_area_ratio": 0.1}"#]
    {
        let cfg: TransformConfig = serde_json::from_str(bad).unwrap();
        assert!(cfg.init().is_err(), "{bad}");
    }
}

fn replay_draws(case: &Value) -> Vec<Draw> {
    case["draws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| match (d[0].as_str().unwrap(), &d[1]) {
            ("uniform", v) => Draw::Uniform(v.as_f64().unwrap()),
            ("int", v) => Draw::Int(v.as_u64().unwrap() as usize),
            ("normal", v) => Draw::Normal(v.as_f64().unwrap()),
            (k, _) => panic!("unknown draw {k}"),
        })
        .collect()
}

/// mmcls's `RandAugment`, `AutoAugment` and each of their 14 operations
/// (`tools/gen_rand_augment_fixture.py`): fixed and ranged magnitudes (normal, no and
/// uniform noise), every direction, three interpolations, the `pad_val` forms (including
/// `imrotate`'s single number, which OpenCV reads as blue only), the fine-tuning recipe's
/// `RandAugment` and the `imagenet` `AutoAugment`, byte for byte from the reference's draws.
#[test]
fn rand_augment_matches_mmcls() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/rand_augment_golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let (h, w) = (golden["height"].as_u64().unwrap() as usize, golden["width"].as_u64().unwrap() as usize);
    let bytes = |v: &Value| -> Vec<u8> { v.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect() };
    let inputs: Vec<Image> = golden["inputs"].as_array().unwrap().iter().map(|v| Image::from_raw(w, h, 3, bytes(v)).unwrap()).collect();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() > 100);
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut cfg = case["config"].clone();
        cfg["type"] = case["type"].clone();
        let label = format!("case {i}: {cfg}");
        let cfg: TransformConfig = serde_json::from_value(cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
        let out = run_replayed(&[cfg], &inputs[case["input"].as_u64().unwrap() as usize], replay_draws(case));
        let want = bytes(&case["output"]);
        let diff = out.data().iter().zip(&want).filter(|(a, b)| a != b).count();
        if diff > 0 {
            failed.push(format!("{label}: {diff} bytes differ"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases differ:\n{}", failed.len(), cases.len(), failed.join("\n"));
    // Invalid settings are refused when the transform is built.
    for bad in [
        r#"{"type": "Rotate", "angle": 10, "magnitude_range": [0, 30]}"#,
        r#"{"type": "Rotate"}"#,
        r#"{"type": "Solarize", "thr": 10, "random_negative_prob": 0.5}"#,
        r#"{"type": "Equalize", "magnitude": 0.5}"#,
        r#"{"type": "Posterize", "bits": 9}"#,
        r#"{"type": "Shear", "magnitude": 0.1, "interpolation": "box"}"#,
        r#"{"type": "RandAugment", "policies": "imagenet", "num_policies": 2, "magnitude_level": 9}"#,
        r#"{"type": "RandAugment", "policies": [{"type": "Blur"}], "num_policies": 2, "magnitude_level": 9}"#,
        r#"{"type": "RandAugment", "policies": "timm_increasing", "num_policies": 0, "magnitude_level": 9}"#,
        r#"{"type": "RandAugment", "policies": "timm_increasing", "num_policies": 2, "magnitude_level": 9, "magnitude_std": "big"}"#,
        r#"{"type": "AutoAugment", "policies": [[{"type": "Rotate", "angle": 3, "fill": 1}]]}"#,
    ] {
        let cfg: TransformConfig = serde_json::from_str(bad).unwrap_or_else(|e| panic!("{bad}: {e}"));
        assert!(cfg.init().is_err(), "{bad}");
    }
}
