//! The tokenizer and teacher target generators (`DALL-E`, `CLIPGenerator`,
//! `VQKD`) against golden fixtures from MMSelfSup 1.0.0
//! (`tools/gen_fixtures_tokenizers.py`): each generator loads its weight
//! file in the published layout through `LoadPretrained`, reproduces the
//! reference's outputs and intermediates, has the reference's key
//! inventory (shapes and dtypes, exported and re-loaded), stays frozen,
//! and refuses URLs and wrong files with errors that name the config key.
use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Int, Tensor};
use selfsup::{
    algorithms::target_generator_weights::load_generator_state,
    algorithms::{key_map, LoadPretrained},
    layers::init::InitRng,
    target_generators::{
        clip::{ClipConfig, ClipVisionConfig},
        vector_quantizer::{kmeans, NormEmaVectorQuantizer},
        ClipGenerator, ClipGeneratorConfig, DallE, DallEConfig, Vqkd, VqkdConfig,
    },
    weights::{export_state_dict, model_keys, read_checkpoint, Tensor as HostTensor},
};
use selfsup_tests::{
    device,
    mim::{keys_of, rel_err},
    values, Case, Inner, B, BACKEND,
};

/// Relative tolerance of logits and features (of the largest magnitude).
const TOL: f32 = 1e-4;

/// Asserts a tensor matches the reference within `tol` of its largest
/// magnitude.
fn close_within<BB: Backend, const D: usize>(what: &str, ours: Tensor<BB, D>, reference: (Vec<f32>, Vec<usize>), tol: f32) {
    assert_eq!(ours.dims().to_vec(), reference.1, "[{BACKEND}] {what}: shape");
    let (err, _) = rel_err(&values(ours), &reference.0);
    assert!(err < tol, "[{BACKEND}] {what}: relative error {err:e}");
}

fn path_of(case: &Case, file: &str) -> String {
    case.dir.join(file).to_string_lossy().into_owned()
}

fn pretrained(path: &str) -> Option<serde_json::Value> {
    Some(serde_json::json!({"type": "Pretrained", "checkpoint": path}))
}

/// The reference's `keys.json` as `key -> (shape, dtype)`.
fn reference_inventory(case: &Case) -> BTreeMap<String, (Vec<usize>, String)> {
    inventory_file(case, "keys.json")
}

/// A `keys.json`-style file of the case as `key -> (shape, dtype)`.
fn inventory_file(case: &Case, file: &str) -> BTreeMap<String, (Vec<usize>, String)> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(case.dir.join(file)).unwrap()).unwrap();
    let shapes = keys_of(&entries);
    entries
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_string(), e["dtype"].as_str().unwrap().to_string()))
        .map(|(k, d)| (k.clone(), (shapes[&k].clone(), d)))
        .collect()
}

/// PyTorch's name of a host tensor's dtype.
fn dtype_name(t: &HostTensor) -> String {
    use burn::tensor::DType;
    match t.dtype {
        DType::F32 => "float32",
        DType::F16 => "float16",
        DType::F64 => "float64",
        DType::I64 => "int64",
        other => panic!("unexpected dtype {other:?}"),
    }
    .to_string()
}

/// Our inventory (lazily, from the initial module) equals the reference's
/// keys and shapes; the loaded module exports every key with the
/// reference's shape and dtype and the file's values (the file's keys are
/// ours without `file_prefix`).
fn check_inventory<M: burn::module::Module<Inner>>(case: &Case, initial: &M, loaded: &M, file: &str, file_prefix: &str) {
    let reference = reference_inventory(case);
    let ours = model_keys(initial, &key_map());
    let expected: BTreeMap<String, Vec<usize>> = reference.iter().map(|(k, (s, _))| (k.clone(), s.clone())).collect();
    assert_eq!(ours, expected, "[{BACKEND}] {}: key inventory", case.dir.display());
    let exported = export_state_dict(loaded, &key_map()).unwrap();
    let file = read_checkpoint(case.dir.join(file)).unwrap();
    for (key, (shape, dtype)) in &reference {
        let t = &exported[key];
        assert_eq!((t.shape.to_vec(), dtype_name(t)), (shape.clone(), dtype.clone()), "{key}: exported shape and dtype");
        if let Some(f) = key.strip_prefix(file_prefix).and_then(|k| file.get(k)) {
            let (a, b) = (t.clone().convert::<f32>().to_vec::<f32>().unwrap(), f.clone().convert::<f32>().to_vec::<f32>().unwrap());
            assert_eq!(a, b, "{key}: exported values are the file's");
        }
    }
}

fn codes_of<BB: Backend>(t: Tensor<BB, 2, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec::<i64>().unwrap()
}

fn reference_codes(case: &Case, name: &str) -> Vec<i64> {
    case.io.get(name).unwrap().clone().convert::<i64>().to_vec::<i64>().unwrap()
}

// ------------------------------------------------------------------ DALL-E

fn dalle_config(case: &Case) -> DallEConfig {
    let mut cfg: DallEConfig = serde_json::from_value({
        let mut v = case.config["target_generator"].clone();
        v.as_object_mut().unwrap().remove("type");
        v
    })
    .unwrap();
    cfg.validate().unwrap();
    cfg.init_cfg = pretrained(&path_of(case, "dalle_encoder.pth"));
    cfg
}

fn dalle_loaded<BB: Backend>(cfg: &DallEConfig) -> DallE<BB> {
    cfg.load_pretrained(cfg.init::<BB>(&Default::default(), &mut InitRng::new(7))).unwrap_or_else(|e| panic!("[{BACKEND}] {e}"))
}

/// `dalle_encoder.pth` loads by key; logits, codes and every group's
/// output match the reference, on a square and a non-square batch.
#[test]
fn dalle_matches_reference() {
    let case = Case::load("dalle_tiny");
    let model = dalle_loaded::<Inner>(&dalle_config(&case));
    for k in ["1", "2"] {
        let x = case.tensor::<4, Inner>(&format!("x{k}"));
        close_within(&format!("DALL-E logits{k}"), model.forward(x.clone()), case.f32(&format!("logits{k}")), TOL);
        assert_eq!(codes_of(model.codes(x)), reference_codes(&case, &format!("codes{k}")), "[{BACKEND}] DALL-E codes{k}");
    }
    let x112 = Tensor::<Inner, 4>::full([1, 3, 112, 112], 0.5, &Default::default());
    assert_eq!(model.forward(x112).dims(), [1, 32, 14, 14], "BEiT's 112-pixel view gives 14 x 14 codes");
    let groups = model.group_outputs(case.tensor::<4, Inner>("x2"));
    for (i, g) in groups.into_iter().enumerate() {
        let name = format!("x2.group_{}", i + 1);
        close_within(&format!("DALL-E {name}"), g, case.f32(&name), TOL);
    }
}

/// The key inventory is the reference `state_dict`'s (`blocks.group_g.
/// block_i.*` through the key map), exports round-trip, and the
/// parameters stay frozen after loading.
#[test]
fn dalle_key_inventory_and_frozen_parameters() {
    let case = Case::load("dalle_tiny");
    let cfg = dalle_config(&case);
    let initial = cfg.init::<Inner>(&Default::default(), &mut InitRng::new(7));
    check_inventory(&case, &initial, &dalle_loaded::<Inner>(&cfg), "dalle_encoder.pth", "");
    let trained = dalle_loaded::<B>(&cfg);
    assert!(!trained.blocks.input.w.is_require_grad() && !trained.blocks.group_4.block[1].res_path.conv_4.b.is_require_grad());
    assert!(!cfg.init::<B>(&device(), &mut InitRng::new(1)).blocks.output.conv.w.is_require_grad());
    let x = case.tensor::<4, B>("x1");
    assert!(!trained.forward(x).is_require_grad(), "the logits are detached");
}

/// A URL is refused with a message that says to download it; a missing
/// file and a file of another model are errors naming the config key.
#[test]
fn dalle_refuses_urls_and_wrong_files() {
    let case = Case::load("dalle_tiny");
    let cfg = dalle_config(&case);
    let fresh = cfg.clone();
    let model = || fresh.init::<Inner>(&Default::default(), &mut InitRng::new(0));
    let url = "https://download.openmmlab.com/mmselfsup/1.x/target_generator_ckpt/dalle_encoder.pth";
    let mut remote = cfg.clone();
    remote.init_cfg = pretrained(url);
    let err = remote.load_pretrained(model()).unwrap_err();
    assert_eq!(err.key, "target_generator.init_cfg.checkpoint");
    assert!(err.message.contains("download") && err.message.contains("dalle_encoder.pth"), "{err}");
    let mut missing = cfg.clone();
    missing.init_cfg = pretrained("/nonexistent/dalle_encoder.pth");
    assert!(missing.load_pretrained(model()).unwrap_err().to_string().contains("/nonexistent/dalle_encoder.pth"));
    // A wider encoder than the file: every convolution's shape differs.
    let mut wider = cfg.clone();
    wider.n_hid = 12;
    let err = wider.load_pretrained(wider.init::<Inner>(&Default::default(), &mut InitRng::new(0))).unwrap_err();
    assert!(err.message.contains("shape mismatch"), "{err}");
    let none = DallEConfig { init_cfg: None, ..cfg };
    let untouched = none.load_pretrained(model()).unwrap();
    assert_eq!(values(untouched.blocks.input.w.val()), values(model().blocks.input.w.val()), "no file, no change");
}

// -------------------------------------------------------------------- CLIP

fn clip_config(case: &Case) -> ClipGeneratorConfig {
    let arch: ClipConfig = serde_json::from_value(case.config["arch"].clone()).unwrap();
    let cfg = ClipGeneratorConfig { tokenizer_path: Some(path_of(case, "clip.pth.tar")), arch };
    cfg.validate().unwrap();
    cfg
}

fn clip_loaded<BB: Backend>(cfg: &ClipGeneratorConfig) -> ClipGenerator<BB> {
    cfg.load_pretrained(cfg.init::<BB>(&Default::default(), &mut InitRng::new(7))).unwrap_or_else(|e| panic!("[{BACKEND}] {e}"))
}

/// `CLIPGenerator` from an OpenAI-layout file (half-precision weights,
/// the JIT archive's integer entries): the features after `ln_post` and
/// `proj`, the last layer's head-averaged attention, and the tokens after
/// `ln_pre` and after the block match the reference.
#[test]
fn clip_matches_reference() {
    let case = Case::load("clip_tiny");
    let model = clip_loaded::<Inner>(&clip_config(&case));
    let x = case.tensor::<4, Inner>("x");
    let out = model.forward(x.clone());
    close_within("CLIP features", out.features, case.f32("features"), TOL);
    close_within("CLIP attention", out.attention, case.f32("attention"), TOL);
    let visual = &model.tokenizer.visual;
    let tokens = visual.embed(x);
    close_within("CLIP ln_pre", tokens.clone(), case.f32("ln_pre"), TOL);
    close_within("CLIP block output", visual.transformer.forward(tokens).0, case.f32("block_out"), TOL);
}

/// Two heads and two layers (the reference `VisionTransformer` built
/// directly; `build_clip_model` always gives `width / 64` heads): the
/// head split and the averaging of the attention over heads.
#[test]
fn clip_two_heads_match_reference() {
    let case = Case::load("clip_tiny");
    let two = &case.config["two_heads"]["vision_transformer"];
    let u = |k: &str| two[k].as_u64().unwrap() as usize;
    let cfg = ClipVisionConfig {
        input_resolution: u("input_resolution"),
        patch_size: u("patch_size"),
        width: u("width"),
        layers: u("layers"),
        heads: u("heads"),
        output_dim: u("output_dim"),
    };
    let state = read_checkpoint(case.dir.join("visual_2heads.pth")).unwrap();
    let (model, report) = load_generator_state(cfg.init::<Inner>(&Default::default(), &mut InitRng::new(3)), &state, &[]).unwrap();
    assert!(report.is_exact(), "{report}");
    let out = model.forward(case.tensor::<4, Inner>("x"));
    close_within("CLIP 2 heads features", out.features, case.f32("2heads.features"), TOL);
    close_within("CLIP 2 heads attention", out.attention, case.f32("2heads.attention"), TOL);
}

/// The generator's inventory is the reference's (`tokenizer.*`, the text
/// tower and the 0-d `logit_scale` included), for the tiny file and for
/// OpenAI's ViT-B/16 (the default `arch`); exports carry the file's
/// values; the parameters stay frozen.
#[test]
fn clip_key_inventories_and_frozen_parameters() {
    let case = Case::load("clip_tiny");
    let cfg = clip_config(&case);
    let initial = cfg.init::<Inner>(&Default::default(), &mut InitRng::new(7));
    check_inventory(&case, &initial, &clip_loaded::<Inner>(&cfg), "clip.pth.tar", "tokenizer.");
    let full = ClipGeneratorConfig::default();
    full.validate().unwrap();
    let reference: BTreeMap<String, Vec<usize>> =
        inventory_file(&case, "clip_vit_b16_keys.json").into_iter().map(|(k, (s, _))| (k, s)).collect();
    assert_eq!(model_keys(&full.init::<Inner>(&Default::default(), &mut InitRng::new(0)), &key_map()), reference, "ViT-B/16 inventory");
    let trained = clip_loaded::<B>(&cfg);
    assert!(!trained.tokenizer.visual.proj.is_require_grad() && !trained.tokenizer.logit_scale.is_require_grad());
    assert!(!trained.forward(case.tensor::<4, B>("x")).features.is_require_grad());
}

/// URLs, files of another architecture (the error names the `arch` field
/// to set) and files that are no ViT CLIP are refused.
#[test]
fn clip_refuses_urls_and_other_architectures() {
    let case = Case::load("clip_tiny");
    let cfg = clip_config(&case);
    let model = || cfg.init::<Inner>(&Default::default(), &mut InitRng::new(0));
    let url = ClipGeneratorConfig {
        tokenizer_path: Some("https://download.openmmlab.com/mmselfsup/1.x/target_generator_ckpt/clip_vit_base_16.pth.tar".into()),
        ..cfg.clone()
    };
    url.validate().unwrap();
    let err = url.load_pretrained(model()).unwrap_err();
    assert_eq!(err.key, "target_generator.tokenizer_path");
    assert!(err.message.contains("download") && err.message.contains("clip_vit_base_16.pth.tar"), "{err}");
    let default_arch = ClipGeneratorConfig { tokenizer_path: cfg.tokenizer_path.clone(), ..Default::default() };
    let err = default_arch.load_pretrained(ClipGenerator::<Inner> { tokenizer: model().tokenizer }).unwrap_err();
    assert_eq!(err.key, "target_generator.arch.embed_dim", "{err}");
    assert!(err.message.contains("embed_dim = 16"), "{err}");
    let dalle = ClipGeneratorConfig { tokenizer_path: Some(path_of(&Case::load("dalle_tiny"), "dalle_encoder.pth")), ..cfg.clone() };
    assert!(dalle.load_pretrained(model()).unwrap_err().message.contains("visual.proj"));
}

// -------------------------------------------------------------------- VQ-KD

fn vqkd_config(case: &Case) -> VqkdConfig {
    let mut v = case.config["target_generator"].clone();
    v.as_object_mut().unwrap().remove("type");
    let mut cfg: VqkdConfig = serde_json::from_value(v).unwrap();
    cfg.validate().unwrap();
    cfg.init_cfg = pretrained(&path_of(case, "vqkd_encoder.pth"));
    cfg
}

fn vqkd_loaded<BB: Backend>(cfg: &VqkdConfig) -> Vqkd<BB> {
    cfg.load_pretrained(cfg.init::<BB>(&Default::default(), &mut InitRng::new(7))).unwrap_or_else(|e| panic!("[{BACKEND}] {e}"))
}

/// `vqkd_encoder.pth` loads by key; the encoder's patch tokens, the task
/// layer's output, the codebook distances and the token ids match the
/// reference.
#[test]
fn vqkd_matches_reference() {
    let case = Case::load("vqkd_tiny");
    let model = vqkd_loaded::<Inner>(&vqkd_config(&case));
    let x = case.tensor::<4, Inner>("x");
    let f = model.encoder.forward(x.clone());
    let [n, l, c] = f.dims();
    let g = (l as f64).sqrt() as usize;
    close_within("VQ-KD encoder", f.swap_dims(1, 2).reshape([n, c, g, g]), case.f32("encoder_features"), TOL);
    close_within("VQ-KD task layer", model.task_features(x.clone()), case.f32("task_features"), TOL);
    let enc = model.encode(x.clone());
    close_within("VQ-KD distances", model.quantize.distances(enc.z), case.f32("distances"), TOL);
    assert_eq!(codes_of(model.get_tokens(x)), reference_codes(&case, "tokens"), "[{BACKEND}] VQ-KD tokens");
}

/// The codebook's in-place updates of the reference forward, applied
/// explicitly: training mode (code counts and normalised EMA of the
/// entries) and eval mode (counts only); and `kmeans`/`init_embed` from
/// the reference's `randperm` draw.
#[test]
fn vqkd_codebook_updates_match_reference() {
    let case = Case::load("vqkd_tiny");
    let model = vqkd_loaded::<Inner>(&vqkd_config(&case));
    let enc = model.encode(case.tensor::<4, Inner>("x"));
    let stats = model.quantize.statistics(enc.z.clone(), enc.codes.clone());
    let eval = model.quantize.clone().apply_cluster_size_ema(stats.bins.clone());
    close_within("VQ-KD eval cluster_size", eval.cluster_size.val(), case.f32("ema_eval.cluster_size"), TOL);
    let trained = model.quantize.clone().apply_ema(stats);
    close_within("VQ-KD train cluster_size", trained.cluster_size.val(), case.f32("ema_train.cluster_size"), TOL);
    close_within("VQ-KD train codebook", trained.embedding.weight.val(), case.f32("ema_train.embedding.weight"), TOL);

    let indices: Vec<usize> = reference_codes(&case, "kmeans.indices").into_iter().map(|i| i as usize).collect();
    let (means, bins) = kmeans(enc.z.clone(), &indices, 10, true);
    close_within("k-means means", means.clone(), case.f32("kmeans.means"), TOL);
    assert_eq!(values(bins), case.f32("kmeans.bins").0, "[{BACKEND}] k-means cluster sizes");
    let empty = NormEmaVectorQuantizer::<Inner>::new(indices.len(), 8, 1.0, 0.99, true, &Default::default(), &mut InitRng::new(0));
    assert!(!empty.is_initted());
    let filled = empty.init_embed(enc.z.clone(), &indices);
    assert!(filled.is_initted());
    assert_eq!(values(filled.embedding.weight.val()), values(means.clone()));
    let again = filled.init_embed(enc.z, &indices[..1].repeat(indices.len()));
    assert_eq!(values(again.embedding.weight.val()), values(means), "init_embed is a no-op once initialised");
}

/// The inventory (`encoder.*`, `encode_task_layer.0/.2`, `quantize.*`)
/// is the reference's; exports carry the file's values; frozen; a file
/// without the quantizer's statistics buffers loads (MMEngine's
/// non-strict load keeps them), one without a weight does not.
#[test]
fn vqkd_key_inventory_and_loading_rules() {
    let case = Case::load("vqkd_tiny");
    let cfg = vqkd_config(&case);
    let initial = cfg.init::<Inner>(&Default::default(), &mut InitRng::new(7));
    check_inventory(&case, &initial, &vqkd_loaded::<Inner>(&cfg), "vqkd_encoder.pth", "");
    let trained = vqkd_loaded::<B>(&cfg);
    assert!(!trained.quantize.embedding.weight.is_require_grad() && !trained.encoder.cls_token.is_require_grad());

    let optional = ["quantize.cluster_size", "quantize.embedding.initted"];
    let mut state = read_checkpoint(case.dir.join("vqkd_encoder.pth")).unwrap();
    state.tensors.retain(|k, _| !optional.contains(&k.as_str()));
    let (_, report) = load_generator_state(cfg.init::<Inner>(&Default::default(), &mut InitRng::new(0)), &state, &optional).unwrap();
    assert_eq!(report.missing, optional.map(String::from).to_vec());
    state.tensors.remove("encoder.ln1.weight");
    let err = load_generator_state(cfg.init::<Inner>(&Default::default(), &mut InitRng::new(0)), &state, &optional).unwrap_err();
    assert!(err.to_string().contains("encoder.ln1.weight"), "{err}");
    let url = VqkdConfig {
        init_cfg: pretrained("https://download.openmmlab.com/mmselfsup/1.x/target_generator_ckpt/vqkd_encoder.pth"),
        ..cfg.clone()
    };
    assert!(url.load_pretrained(initial).unwrap_err().message.contains("download"));
}
