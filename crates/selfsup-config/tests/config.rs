//! End-to-end tests: files on disk, inheritance, overrides, typed decoding.

use std::fs;
use std::path::{Path, PathBuf};

use selfsup_config::{one_or_many, Config, ConfigError, Format, IntOrPair, Pair, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---------------------------------------------------------------- components

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LayerCfgs {
    drop_rate: f64,
}

impl Default for LayerCfgs {
    fn default() -> Self {
        LayerCfgs { drop_rate: 0.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MaeVitConfig {
    arch: String,
    img_size: IntOrPair,
    patch_size: IntOrPair,
    mask_ratio: f64,
    #[serde(deserialize_with = "one_or_many")]
    out_indices: Vec<i64>,
    layer_cfgs: LayerCfgs,
    init_cfg: Option<Value>,
}

impl Default for MaeVitConfig {
    fn default() -> Self {
        MaeVitConfig {
            arch: "b".into(),
            img_size: Pair::splat(224),
            patch_size: Pair::splat(16),
            mask_ratio: 0.75,
            out_indices: vec![-1],
            layer_cfgs: LayerCfgs::default(),
            init_cfg: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ResNetConfig {
    depth: usize,
    out_indices: Vec<usize>,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig { depth: 50, out_indices: vec![3] }
    }
}

selfsup_config::registry! {
    /// Backbones.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BackboneConfig {
        /// MAE ViT.
        "MAEViT" => MaeVit(MaeVitConfig),
        "ResNet" => ResNet(ResNetConfig),
    }
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig::MaeVit(MaeVitConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DecoderConfig {
    embed_dim: usize,
    decoder_depth: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig { embed_dim: 768, decoder_depth: 8 }
    }
}

selfsup_config::registry! {
    #[derive(Debug, Clone, PartialEq)]
    enum NeckConfig {
        "MAEPretrainDecoder" => MaeDecoder(DecoderConfig),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MaeConfig {
    backbone: BackboneConfig,
    neck: Option<NeckConfig>,
}

selfsup_config::registry! {
    #[derive(Debug, Clone, PartialEq)]
    enum ModelConfig {
        "MAE" => Mae(MaeConfig),
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mae(MaeConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TrainCfg {
    max_iters: usize,
    by_epoch: bool,
}

impl Default for TrainCfg {
    fn default() -> Self {
        TrainCfg { max_iters: 100, by_epoch: true }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TopConfig {
    model: ModelConfig,
    train_cfg: TrainCfg,
    optim_wrapper: Value,
    default_hooks: Value,
    work_dir: Option<String>,
}

// ------------------------------------------------------------------- helpers

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

/// configs/_base_/models/mae.toml          (model)
/// configs/_base_/default_runtime.yaml     (train_cfg, hooks)
/// configs/_base_/schedule.json            (_base_ = default_runtime.yaml; optimizer)
/// configs/mae/mae_b.toml                  (_base_ = [models/mae.toml, schedule.json])
fn tree(dir: &Path) -> PathBuf {
    write(
        dir,
        "configs/_base_/models/mae.toml",
        r#"
[model]
type = "MAE"

[model.backbone]
type = "mmselfsup.MAEViT"
arch = "b"
mask_ratio = 0.75

[model.neck]
type = "MAEPretrainDecoder"
embed_dim = 768
"#,
    );
    write(
        dir,
        "configs/_base_/default_runtime.yaml",
        "train_cfg:\n  max_iters: 100\n  by_epoch: false\ndefault_hooks:\n  logger: {type: LoggerHook, interval: 10}\n",
    );
    write(
        dir,
        "configs/_base_/schedule.json",
        r#"{"_base_": "./default_runtime.yaml",
            "optim_wrapper": {"optimizer": {"type": "AdamW", "lr": 0.00015, "betas": [0.9, 0.95]}}}"#,
    );
    write(
        dir,
        "configs/mae/mae_b.toml",
        r#"
_base_ = ["../_base_/models/mae.toml", "../_base_/schedule.json"]
work_dir = "work_dirs/mae"

[model.backbone]
arch = "l"

[train_cfg]
max_iters = 50
"#,
    )
}

fn base_file(dir: &Path, rel: &str) -> String {
    dir.join(rel).display().to_string()
}

// --------------------------------------------------------------------- tests

#[test]
fn base_inheritance_two_levels() {
    let dir = tempfile::tempdir().unwrap();
    let top = tree(dir.path());
    let cfg = Config::from_file(&top).unwrap();
    let v = cfg.value();
    assert!(v.get("_base_").is_none());
    assert_eq!(cfg.get("model.backbone.arch"), Some(&json!("l")));
    assert_eq!(cfg.get("model.backbone.mask_ratio"), Some(&json!(0.75)));
    assert_eq!(cfg.get("train_cfg"), Some(&json!({"max_iters": 50, "by_epoch": false})));
    assert_eq!(cfg.get("optim_wrapper.optimizer.betas.1"), Some(&json!(0.95)));
    assert_eq!(cfg.get("default_hooks.logger.interval"), Some(&json!(10)));
    // Bases in order, then own keys; merged tables keep their first position.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["model", "train_cfg", "default_hooks", "optim_wrapper", "work_dir"]);

    let top_s = top.display().to_string();
    assert_eq!(cfg.file(), top_s);
    assert_eq!(cfg.origin("model.backbone.arch"), top_s);
    assert_eq!(cfg.origin("model.backbone.mask_ratio"), base_file(dir.path(), "configs/_base_/models/mae.toml"));
    assert_eq!(cfg.origin("train_cfg.by_epoch"), base_file(dir.path(), "configs/_base_/default_runtime.yaml"));
    assert_eq!(cfg.origin("optim_wrapper.optimizer.lr"), base_file(dir.path(), "configs/_base_/schedule.json"));
    assert_eq!(cfg.origin("no.such.key"), top_s);

    let typed: TopConfig = cfg.decode().unwrap();
    let ModelConfig::Mae(mae) = &typed.model;
    assert_eq!(mae.backbone, BackboneConfig::MaeVit(MaeVitConfig { arch: "l".into(), ..Default::default() }));
    assert_eq!(mae.neck, Some(NeckConfig::MaeDecoder(DecoderConfig::default())));
    assert_eq!(typed.train_cfg, TrainCfg { max_iters: 50, by_epoch: false });
    assert_eq!(typed.work_dir.as_deref(), Some("work_dirs/mae"));
}

#[test]
fn delete_replaces_instead_of_merging() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let child = write(
        dir.path(),
        "configs/resnet/r50.toml",
        r#"
_base_ = "../_base_/models/mae.toml"
[model.backbone]
_delete_ = true
type = "ResNet"
depth = 18
[model.neck]
_delete_ = false
embed_dim = 512
"#,
    );
    let cfg = Config::from_file(&child).unwrap();
    assert_eq!(cfg.get("model.backbone"), Some(&json!({"type": "ResNet", "depth": 18})));
    assert_eq!(cfg.get("model.neck"), Some(&json!({"type": "MAEPretrainDecoder", "embed_dim": 512})));
    assert!(!cfg.to_json_string_pretty().unwrap().contains("_delete_"));
    let child_s = child.display().to_string();
    assert_eq!(cfg.origin("model.backbone.depth"), child_s);
    // The replaced subtree no longer claims the base as origin.
    assert_eq!(cfg.origin("model.backbone.mask_ratio"), child_s);
    assert_eq!(cfg.origin("model.type"), base_file(dir.path(), "configs/_base_/models/mae.toml"));
    let fresh = write(dir.path(), "configs/fresh.yaml", "_base_: _base_/models/mae.toml\n_delete_: true\nwork_dir: w\n");
    assert_eq!(Config::from_file(&fresh).unwrap().value(), &json!({"work_dir": "w"}));
    let model: ModelConfig = cfg.decode_at("model").unwrap();
    let ModelConfig::Mae(mae) = model;
    assert_eq!(mae.backbone, BackboneConfig::ResNet(ResNetConfig { depth: 18, out_indices: vec![3] }));
}

#[test]
fn circular_and_missing_bases() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", "_base_ = 'sub/b.yaml'\nx = 1\n");
    write(dir.path(), "sub/b.yaml", "_base_: ../a.toml\ny: 2\n");
    let err = Config::from_file(&a).unwrap_err();
    match &err {
        ConfigError::CircularBase { chain, .. } => assert_eq!(chain.len(), 3, "{chain:?}"),
        other => panic!("expected CircularBase, got {other:?}"),
    }
    assert!(err.to_string().contains("circular inheritance"), "{err}");

    let s = write(dir.path(), "self.json", r#"{"_base_": ["self.json"]}"#);
    assert!(matches!(Config::from_file(&s), Err(ConfigError::CircularBase { .. })));

    let m = write(dir.path(), "m.toml", "_base_ = ['nope.toml']\n");
    let err = Config::from_file(&m).unwrap_err();
    assert!(matches!(&err, ConfigError::BaseNotFound { base, .. } if base == "nope.toml"), "{err:?}");
    assert_eq!(err.to_string(), format!("{}: _base_: base config \"nope.toml\" not found", m.display()));

    let bad = write(dir.path(), "bad.toml", "_base_ = 3\n");
    assert!(matches!(Config::from_file(&bad), Err(ConfigError::InvalidValue { .. })));
    assert!(matches!(Config::from_file(dir.path().join("x.ini")), Err(ConfigError::UnsupportedFormat { .. })));
    assert!(matches!(Config::from_file(dir.path().join("gone.toml")), Err(ConfigError::Io { .. })));
}

#[test]
fn three_formats_agree() {
    let dir = tempfile::tempdir().unwrap();
    let want = json!({"model": {"type": "MAE", "backbone": {"type": "MAEViT", "patch_size": [16, 16]}},
                      "lr": 1.5e-4, "flag": true});
    let t = write(
        dir.path(),
        "c.toml",
        "lr = 1.5e-4\nflag = true\n[model]\ntype = 'MAE'\nbackbone = {type = 'MAEViT', patch_size = [16, 16]}\n",
    );
    let j = write(dir.path(), "c.json", &want.to_string());
    let y = write(
        dir.path(),
        "c.yml",
        "model:\n  type: MAE\n  backbone:\n    type: MAEViT\n    patch_size: [16, 16]\nlr: 1.5e-4\nflag: true\n",
    );
    for p in [t, j, y] {
        assert_eq!(Config::from_file(&p).unwrap().value(), &want, "{}", p.display());
    }
    // Empty YAML is an empty table; scalars at top level are rejected.
    assert_eq!(Config::parse_str("", Format::Yaml, "e.yaml").unwrap().value(), &json!({}));
    assert!(matches!(Config::parse_str("[1]", Format::Json, "l.json"), Err(ConfigError::Parse { .. })));
}

#[test]
fn parse_errors_have_positions() {
    for (fmt, text) in [(Format::Toml, "a = 1\nb = = 2\n"), (Format::Json, "{\"a\": 1,\n \"b\": }"), (Format::Yaml, "a: 1\nb: [1, 2\n")] {
        let err = Config::parse_str(text, fmt, "bad").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }));
        assert!(msg.starts_with("bad: parse error: ") && msg.contains("line 2"), "{fmt:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}

/// TOML's `nan` and YAML's `.inf` name their key (JSON has no such numbers: they would
/// become `null`); a file far too large to be a config is refused before it is parsed.
#[test]
fn non_finite_numbers_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write(dir.path(), "nan.toml", "[optim_wrapper.optimizer]\nlr = nan\nbetas = [0.9, inf]\n");
    let e = Config::from_file(&toml).unwrap_err().to_string();
    assert!(e.contains("optim_wrapper.optimizer") && e.contains("must be finite"), "{e}");
    let yaml = write(dir.path(), "inf.yaml", "model:\n  momentum: [0.5, .inf]\n");
    let e = Config::from_file(&yaml).unwrap_err().to_string();
    assert!(e.contains("model.momentum.1") && e.contains("must be finite"), "{e}");
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(selfsup_config::MAX_CONFIG_BYTES + 1).unwrap();
    let e = Config::from_file(&big).unwrap_err().to_string();
    assert!(e.contains("MiB") && e.contains("right file"), "{e}");
}

#[test]
fn cfg_options_every_kind() {
    let mut cfg = Config::parse_str(
        "[train_cfg]\nmax_iters = 100\n[train_dataloader.dataset]\ndata_root = 'data/'\npipeline = [{type = 'Load'}, {type = 'Crop', size = 224}]\n",
        Format::Toml,
        "base.toml",
    )
    .unwrap();
    cfg.merge_options(&[
        "train_cfg.max_iters=20",
        "train_dataloader.dataset.data_root=imgs/",
        "model.backbone.arch=b",
        "a.b=[1,2]",
        "x=true",
        "y=null",
        "z=1e-4",
        "f=0.5",
        "neg=-3",
        "t=(1, [2, 'x,y'])",
        "bare=a,b",
        "q=\"123\"",
        "train_dataloader.dataset.pipeline.1.size=192",
        "train_dataloader.dataset.pipeline.0=Decode",
    ])
    .unwrap();
    let v = |p: &str| cfg.get(p).cloned();
    assert_eq!(v("train_cfg.max_iters"), Some(json!(20)));
    assert_eq!(v("train_dataloader.dataset.data_root"), Some(json!("imgs/")));
    assert_eq!(v("model"), Some(json!({"backbone": {"arch": "b"}})));
    assert_eq!(v("a.b"), Some(json!([1, 2])));
    assert_eq!(v("x"), Some(json!(true)));
    assert_eq!(v("y"), Some(json!(null)));
    assert_eq!(v("z"), Some(json!(1e-4)));
    assert_eq!(v("f"), Some(json!(0.5)));
    assert_eq!(v("neg"), Some(json!(-3)));
    assert_eq!(v("t"), Some(json!([1, [2, "x,y"]])));
    assert_eq!(v("bare"), Some(json!(["a", "b"])));
    assert_eq!(v("q"), Some(json!("123")));
    assert_eq!(v("train_dataloader.dataset.pipeline.1"), Some(json!({"type": "Crop", "size": 192})));
    assert_eq!(v("train_dataloader.dataset.pipeline.0"), Some(json!("Decode")));

    assert_eq!(cfg.origin("train_cfg.max_iters"), "--cfg-options");
    assert_eq!(cfg.origin("model"), "--cfg-options");
    assert_eq!(cfg.origin("model.backbone"), "--cfg-options");
    assert_eq!(cfg.origin("train_dataloader.dataset.pipeline.1.size"), "--cfg-options");
    assert_eq!(cfg.origin("train_dataloader.dataset.pipeline.1.type"), "base.toml");
    assert_eq!(cfg.origin("train_dataloader.dataset"), "base.toml");

    for bad in ["noequals", "a..b=1", "train_dataloader.dataset.pipeline.5=1", "train_dataloader.dataset.pipeline.x=1"] {
        let err = cfg.merge_options(&[bad]).unwrap_err();
        assert!(matches!(&err, ConfigError::BadOption { option, .. } if option == bad), "{err:?}");
        assert!(err.to_string().starts_with(&format!("--cfg-options {bad}: ")), "{err}");
    }
}

#[test]
fn unknown_key_inside_tagged_enum_names_path_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let top = tree(dir.path());
    // Deeper: a plain struct inside a variant inside a variant, set by an option.
    let mut cfg = Config::from_file(&top).unwrap();
    cfg.merge_options(&["model.backbone.layer_cfgs.foo=1"]).unwrap();
    let err = cfg.decode::<TopConfig>().unwrap_err();
    assert_eq!(err.key_path(), Some("model.backbone.layer_cfgs.foo"), "{err}");
    assert_eq!(err.file(), Some("--cfg-options"));
    assert!(matches!(&err, ConfigError::UnknownKey { expected, .. } if expected == &["drop_rate".to_string()]));

    let mae = base_file(dir.path(), "configs/_base_/models/mae.toml");
    fs::write(&mae, fs::read_to_string(&mae).unwrap().replace("mask_ratio", "mask_ratioo")).unwrap();
    let cfg = Config::from_file(&top).unwrap();
    let err = cfg.decode::<TopConfig>().unwrap_err();
    match &err {
        ConfigError::UnknownKey { file, key_path, expected } => {
            assert_eq!(file, &mae);
            assert_eq!(key_path, "model.backbone.mask_ratioo");
            assert!(expected.contains(&"mask_ratio".to_string()), "{expected:?}");
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("{mae}: model.backbone.mask_ratioo: unknown key; expected one of arch, ")), "{err}");

    // Same through decode_at, and in the second nested registry (neck).
    let mut cfg = Config::from_file(&top).unwrap();
    cfg.merge_options(&["model.neck.embed_dimm=3"]).unwrap();
    let err = cfg.decode_at::<ModelConfig>("model").unwrap_err();
    assert_eq!(err.key_path(), Some("model.neck.embed_dimm"), "{err}");
}

#[test]
fn unknown_and_missing_type() {
    let mut cfg = Config::parse_str("[model]\ntype = 'MAE'\nbackbone = {type = 'MAEVit'}\n", Format::Toml, "configs/x.toml").unwrap();
    let err = cfg.decode::<TopConfig>().unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownType { name, known, .. } if name == "MAEVit" && known.len() == 2));
    assert_eq!(err.to_string(), "configs/x.toml: model.backbone.type: unknown type \"MAEVit\"; known: MAEViT, ResNet");

    // Scope prefixes are stripped.
    cfg.merge_options(&["model.backbone.type=mmcls.ResNet", "model.type=mmselfsup.MAE"]).unwrap();
    let top: TopConfig = cfg.decode().unwrap();
    let ModelConfig::Mae(mae) = top.model;
    assert_eq!(mae.backbone.type_name(), "ResNet");

    cfg.set("model.backbone", json!({"depth": 18})).unwrap();
    let err = cfg.decode::<TopConfig>().unwrap_err();
    assert!(matches!(err, ConfigError::MissingType { .. }), "{err:?}");
    assert_eq!(err.to_string(), "<set>: model.backbone.type: missing type name; known: MAEViT, ResNet");

    cfg.set("model.backbone", json!({"type": 5})).unwrap();
    let err = cfg.decode::<TopConfig>().unwrap_err();
    assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
    assert_eq!(err.key_path(), Some("model.backbone.type"));
}

#[test]
fn wrong_types_report_paths() {
    let cases = [
        ("model.backbone.mask_ratio=high", "model.backbone.mask_ratio", "invalid type"),
        ("model.backbone.patch_size=[16,16,3]", "model.backbone.patch_size", "found a list of 3"),
        ("model.backbone.img_size=[224,x]", "model.backbone.img_size.1", "invalid type"),
        ("model.backbone.out_indices=[1,x]", "model.backbone.out_indices.1", "invalid type"),
        ("train_cfg.max_iters=1.5", "train_cfg.max_iters", "invalid type"),
        ("model.backbone=ResNet", "model.backbone", "expected a map"),
    ];
    for (opt, path, msg) in cases {
        let mut cfg = Config::parse_str("[model]\ntype='MAE'\nbackbone={type='MAEViT'}\n", Format::Toml, "c.toml").unwrap();
        cfg.merge_options(&[opt]).unwrap();
        let err = cfg.decode::<TopConfig>().unwrap_err();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{opt}: {err:?}");
        assert_eq!(err.key_path(), Some(path), "{opt}: {err}");
        assert_eq!(err.file(), Some("--cfg-options"));
        let s = err.to_string();
        assert!(s.starts_with(&format!("--cfg-options: {path}: ")) && s.contains(msg), "{s}");
        assert!(!s.contains('\0'), "{s:?}");
    }
    let cfg = Config::parse_str("[train_cfg]\nmax_iters = 1\n", Format::Toml, "c.toml").unwrap();
    let err = cfg.decode_at::<TrainCfg>("model").unwrap_err();
    assert!(matches!(err, ConfigError::MissingKey { .. }));
    assert_eq!(err.to_string(), "c.toml: model: missing key");
}

#[test]
fn one_or_many_and_pairs() {
    let cfg = Config::parse_str("[b]\ntype = 'MAEViT'\nout_indices = 3\nimg_size = [224, 192]\npatch_size = 14\n", Format::Toml, "c.toml")
        .unwrap();
    let BackboneConfig::MaeVit(b) = cfg.decode_at::<BackboneConfig>("b").unwrap() else { panic!("variant") };
    assert_eq!(b.out_indices, vec![3]);
    assert_eq!(b.img_size.tuple(), (224, 192));
    assert_eq!(b.patch_size, Pair(14, 14));
    // Serialization: equal pairs collapse to a scalar.
    let back = serde_json::to_value(&b).unwrap();
    assert_eq!(back["img_size"], json!([224, 192]));
    assert_eq!(back["patch_size"], json!(14));
    assert_eq!(IntOrPair::from((1, 2)), Pair(1, 2));
    assert_eq!(IntOrPair::from(7), Pair(7, 7));
}

#[test]
fn round_trip_all_formats() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::from_file(tree(dir.path())).unwrap();
    let typed: TopConfig = cfg.decode().unwrap();
    let full = Config::from_typed(&typed, "full").unwrap();
    // Serialized in full: defaults appear, tags first.
    assert_eq!(full.get("model.backbone.mask_ratio"), Some(&json!(0.75)));
    assert_eq!(full.get("model.neck.decoder_depth"), Some(&json!(8)));
    assert_eq!(full.get("model.type"), Some(&json!("MAE")));
    assert_eq!(full.get("model.backbone").unwrap().as_object().unwrap().keys().next().unwrap(), "type");
    for ext in ["toml", "json", "yaml", "yml"] {
        let p = dir.path().join(format!("out/dump.{ext}"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        full.dump(&p).unwrap();
        let again = Config::from_file(&p).unwrap();
        assert_eq!(again.decode::<TopConfig>().unwrap(), typed, "{ext}");
        if ext != "toml" {
            assert_eq!(again.value(), full.value(), "{ext}");
        }
    }
    // TOML drops nulls (init_cfg = None) but the rest is identical.
    let toml_back = Config::from_file(dir.path().join("out/dump.toml")).unwrap();
    assert_eq!(toml_back.get("model.backbone.init_cfg"), None);
    assert_eq!(full.get("model.backbone.init_cfg"), Some(&Value::Null));
    assert!(matches!(full.dump(dir.path().join("x.txt")), Err(ConfigError::UnsupportedFormat { .. })));
    // Only the dumped files are left (no temp files).
    assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 4);
}

#[test]
fn toml_output_orders_tables_after_values() {
    let cfg = Config::from_value(
        json!({
            "model": {"backbone": {"type": "MAEViT", "arch": "b"}, "type": "MAE"},
            "lr": 0.1,
            "pipeline": [{"type": "Load"}, {"type": "Crop", "size": [224, 224], "extra": null}],
            "gone": null,
            "mixed": [1, "a", [2.5]],
        }),
        "mem",
    )
    .unwrap();
    let text = cfg.to_toml_string().unwrap();
    let parsed = Config::parse_str(&text, Format::Toml, "again.toml").unwrap();
    assert_eq!(parsed.get("model.type"), Some(&json!("MAE")));
    assert_eq!(parsed.get("lr"), Some(&json!(0.1)));
    assert_eq!(parsed.get("pipeline.1"), Some(&json!({"type": "Crop", "size": [224, 224]})));
    assert_eq!(parsed.get("gone"), None);
    assert_eq!(parsed.get("mixed"), Some(&json!([1, "a", [2.5]])));
    let yaml = cfg.to_yaml_string().unwrap();
    assert_eq!(Config::parse_str(&yaml, Format::Yaml, "y.yaml").unwrap().value(), cfg.value());
    assert!(Config::from_value(json!([1]), "arr").is_err());
}

#[test]
fn set_and_get() {
    let mut cfg = Config::from_value(json!({"a": {"l": [1, {"x": 2}]}}), "mem").unwrap();
    assert_eq!(cfg.get(""), Some(cfg.value()));
    assert_eq!(cfg.get("a.l.1.x"), Some(&json!(2)));
    assert_eq!(cfg.get("a.l.9"), None);
    cfg.set("a.l.1.x", json!(3)).unwrap();
    cfg.set("new.deep.key", json!("v")).unwrap();
    assert_eq!(cfg.get("a.l.1.x"), Some(&json!(3)));
    assert_eq!(cfg.get("new"), Some(&json!({"deep": {"key": "v"}})));
    assert_eq!(cfg.origin("new.deep"), "<set>");
    assert_eq!(cfg.origin("a.l"), "mem");
    assert!(matches!(cfg.set("a.l.7", json!(0)), Err(ConfigError::InvalidValue { .. })));
    assert!(cfg.set("", json!(0)).is_err());
}
