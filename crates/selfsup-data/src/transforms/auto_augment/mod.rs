//! `RandAugment` and `AutoAugment`. Port of mmcls 1.0.0rc6's
//! `mmcls/datasets/transforms/auto_augment.py`, the fine-tuning recipes' automatic
//! augmentation, with its fourteen operations in [`ops`].
//!
//! - [`RandAugment`] applies `num_policies` operations chosen with replacement
//!   (`np.random.choice`) from `policies` (`'timm_increasing'`, timm's
//!   `_RAND_INCREASING_TRANSFORMS`, or a list), each at `magnitude_level` out of
//!   `total_level` with `magnitude_std` noise, each with its own probability (default 0.5).
//! - [`AutoAugment`] applies one sub-policy chosen uniformly from `policies` (`'imagenet'`,
//!   the AutoAugment paper's, or a list of lists).
//!
//! `RandAugment` fills each operation's missing arguments from `hparams` (`merge_hparams`:
//! only the arguments the operation's `__init__` names, never overriding the policy's own).
//! mmcls 1.0.0rc6's `AutoAugment` merges them too but builds its operations from the
//! unmerged policies, so its `hparams` have no effect; this port keeps that. mmcls's
//! images are BGR, so `hparams.pad_val = [104, 116, 124]` is B, G, R; this port applies it to
//! RGB images channel-reversed, which gives the same pixels.
//!
//! The operations call mmcv's default `cv2` back-ends, which differ from the Pillow ones of
//! MMSelfSup's `ColorJitter`: see [`crate::imaging::photometric_cv2`].

pub mod ops;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use ops::{AugOp, AugOpConfig, AugOpKind, MagnitudeStd, PadVal};

use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// `policies`: a preset's name or the policies themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Policies<T> {
    /// A preset (`'timm_increasing'` for `RandAugment`, `'imagenet'` for `AutoAugment`).
    Named(String),
    /// Operation dicts (`{type = "Rotate", magnitude_range = [0, 30]}`).
    List(Vec<T>),
}

type OpDict = Map<String, Value>;

fn default_hparams() -> OpDict {
    let mut m = Map::new();
    m.insert("pad_val".into(), json!(128));
    m
}

fn ten() -> f64 {
    10.0
}

/// `RANDAUG_POLICIES['timm_increasing']`.
fn timm_increasing() -> Vec<Value> {
    vec![
        json!({"type": "AutoContrast"}),
        json!({"type": "Equalize"}),
        json!({"type": "Invert"}),
        json!({"type": "Rotate", "magnitude_range": [0, 30]}),
        json!({"type": "Posterize", "magnitude_range": [4, 0]}),
        json!({"type": "Solarize", "magnitude_range": [256, 0]}),
        json!({"type": "SolarizeAdd", "magnitude_range": [0, 110]}),
        json!({"type": "ColorTransform", "magnitude_range": [0, 0.9]}),
        json!({"type": "Contrast", "magnitude_range": [0, 0.9]}),
        json!({"type": "Brightness", "magnitude_range": [0, 0.9]}),
        json!({"type": "Sharpness", "magnitude_range": [0, 0.9]}),
        json!({"type": "Shear", "magnitude_range": [0, 0.3], "direction": "horizontal"}),
        json!({"type": "Shear", "magnitude_range": [0, 0.3], "direction": "vertical"}),
        json!({"type": "Translate", "magnitude_range": [0, 0.45], "direction": "horizontal"}),
        json!({"type": "Translate", "magnitude_range": [0, 0.45], "direction": "vertical"}),
    ]
}

/// `AUTOAUG_POLICIES['imagenet']`: 25 pairs of `(type, argument, value, prob)`.
fn imagenet() -> Vec<Vec<Value>> {
    let op = |t: &str, arg: Option<(&str, f64)>, prob: f64| {
        let mut m = json!({"type": t, "prob": prob});
        if let Some((k, v)) = arg {
            m[k] = json!(v);
        }
        m
    };
    let post = |b: f64, p| op("Posterize", Some(("bits", b)), p);
    let rot = |a: f64, p| op("Rotate", Some(("angle", a)), p);
    let sol = |t: f64, p| op("Solarize", Some(("thr", t)), p);
    let col = |m: f64, p| op("ColorTransform", Some(("magnitude", m)), p);
    let eq = |p| op("Equalize", None, p);
    let (ac, inv) = (|p| op("AutoContrast", None, p), |p| op("Invert", None, p));
    let shear = json!({"type": "Shear", "magnitude": 0.3 / 9.0 * 5.0, "prob": 0.6, "direction": "horizontal"});
    vec![
        vec![post(4.0, 0.4), rot(30.0, 0.6)],
        vec![sol(256.0 / 9.0 * 4.0, 0.6), ac(0.6)],
        vec![eq(0.8), eq(0.6)],
        vec![post(5.0, 0.6), post(5.0, 0.6)],
        vec![eq(0.4), sol(256.0 / 9.0 * 5.0, 0.2)],
        vec![eq(0.4), rot(30.0 / 9.0 * 8.0, 0.8)],
        vec![sol(256.0 / 9.0 * 6.0, 0.6), eq(0.6)],
        vec![post(6.0, 0.8), eq(1.0)],
        vec![rot(10.0, 0.2), sol(256.0 / 9.0, 0.6)],
        vec![eq(0.6), post(5.0, 0.4)],
        vec![rot(30.0 / 9.0 * 8.0, 0.8), col(0.0, 0.4)],
        vec![rot(30.0, 0.4), eq(0.6)],
        vec![eq(0.0), eq(0.8)],
        vec![inv(0.6), eq(1.0)],
        vec![col(0.4, 0.6), op("Contrast", Some(("magnitude", 0.8)), 1.0)],
        vec![rot(30.0 / 9.0 * 8.0, 0.8), col(0.2, 1.0)],
        vec![col(0.8, 0.8), sol(256.0 / 9.0 * 2.0, 0.8)],
        vec![op("Sharpness", Some(("magnitude", 0.7)), 0.4), inv(0.6)],
        vec![shear, eq(1.0)],
        vec![col(0.0, 0.4), eq(0.6)],
        vec![eq(0.4), sol(256.0 / 9.0 * 5.0, 0.2)],
        vec![sol(256.0 / 9.0 * 4.0, 0.6), ac(0.6)],
        vec![inv(0.6), eq(1.0)],
        vec![col(0.4, 0.6), op("Contrast", Some(("magnitude", 0.8)), 1.0)],
        vec![eq(0.8), eq(0.6)],
    ]
}

/// Builds one operation from its dict: `merge_hparams`, then (for `RandAugment`, when the
/// policy has a `magnitude_range`) the shared magnitude settings.
fn build_op(owner: &str, policy: &Value, hparams: &OpDict, randaug: Option<&OpDict>) -> Result<AugOp, DataError> {
    let err = |m: String| DataError::config(owner, m);
    let mut policy = policy.as_object().cloned().ok_or_else(|| err(format!("each policy must be a dict, got {policy}")))?;
    let type_name = match policy.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(err("each policy needs a string `type`".into())),
    };
    let kind = AugOpKind::from_name(&type_name).ok_or_else(|| {
        let known: Vec<_> = AugOpKind::ALL.iter().map(|k| k.name()).collect();
        err(format!("unknown policy type {type_name:?} (known: {})", known.join(", ")))
    })?;
    for (k, v) in hparams {
        if kind.args().contains(&k.as_str()) && !policy.contains_key(k) {
            policy.insert(k.clone(), v.clone());
        }
    }
    if let Some(shared) = randaug {
        policy.remove("magnitude_key");
        if policy.contains_key("magnitude_range") {
            policy.extend(shared.clone());
        }
    }
    let cfg: AugOpConfig =
        serde_json::from_value(Value::Object(policy)).map_err(|e| DataError::parse(&format!("{owner} policy {type_name}"), &e))?;
    cfg.init(kind)
}

/// Configuration of [`RandAugment`]. Field names and defaults are mmcls's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandAugmentConfig {
    /// `'timm_increasing'` or a list of operation dicts.
    pub policies: Policies<Value>,
    /// How many operations to apply (chosen with replacement).
    pub num_policies: usize,
    /// The magnitude level of every ranged operation.
    pub magnitude_level: f64,
    /// The level's noise: a normal std, 0 for none, or `"inf"` (uniform). Default 0.
    #[serde(default)]
    pub magnitude_std: MagnitudeStd,
    /// The level scale. Default 10.
    #[serde(default = "ten")]
    pub total_level: f64,
    /// Arguments filled into the operations that take them. Default `{pad_val = 128}`.
    #[serde(default = "default_hparams")]
    pub hparams: OpDict,
}

impl RandAugmentConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an unknown preset or operation, no policies,
    /// `num_policies == 0`, a negative level, a non-positive `total_level`, or an invalid
    /// operation.
    pub fn init(&self) -> Result<RandAugment, DataError> {
        const NAME: &str = "RandAugment";
        let policies = match &self.policies {
            Policies::Named(n) if n == "timm_increasing" => timm_increasing(),
            Policies::Named(n) => return Err(DataError::config(NAME, format!("unknown policies {n:?} (known: timm_increasing)"))),
            Policies::List(l) => l.clone(),
        };
        if policies.is_empty() || self.num_policies == 0 || self.magnitude_level < 0.0 || self.total_level <= 0.0 {
            return Err(DataError::config(NAME, "needs policies, `num_policies > 0`, `magnitude_level >= 0` and `total_level > 0`"));
        }
        let mut shared = Map::new();
        shared.insert("magnitude_level".into(), json!(self.magnitude_level));
        shared.insert("total_level".into(), json!(self.total_level));
        shared.insert("magnitude_std".into(), serde_json::to_value(&self.magnitude_std).unwrap_or(Value::Null));
        let ops = policies.iter().map(|p| build_op(NAME, p, &self.hparams, Some(&shared))).collect::<Result<_, _>>()?;
        Ok(RandAugment { ops, num_policies: self.num_policies })
    }
}

/// Applies `num_policies` randomly chosen operations; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    ops: Vec<AugOp>,
    num_policies: usize,
}

impl RandAugment {
    /// The operations to choose from.
    pub fn ops(&self) -> &[AugOp] {
        &self.ops
    }
}

impl ImageTransform for RandAugment {
    const NAME: &'static str = "RandAugment";

    fn apply<R: RandomSource + ?Sized>(&self, mut img: Image, rng: &mut R) -> Result<Image, DataError> {
        let chosen: Vec<usize> = (0..self.num_policies).map(|_| rng.randint(0, self.ops.len())).collect();
        for i in chosen {
            img = self.ops[i].apply(img, rng)?;
        }
        Ok(img)
    }
}

/// Configuration of [`AutoAugment`]. Field names and defaults are mmcls's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAugmentConfig {
    /// `'imagenet'` or a list of sub-policies (lists of operation dicts).
    pub policies: Policies<Vec<Value>>,
    /// Accepted, and without effect, as in mmcls 1.0.0rc6 (see the module documentation).
    #[serde(default = "default_hparams")]
    pub hparams: OpDict,
}

impl AutoAugmentConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an unknown preset or operation, no sub-policies, or
    /// an invalid operation.
    pub fn init(&self) -> Result<AutoAugment, DataError> {
        const NAME: &str = "AutoAugment";
        let policies = match &self.policies {
            Policies::Named(n) if n == "imagenet" => imagenet(),
            Policies::Named(n) => return Err(DataError::config(NAME, format!("unknown policies {n:?} (known: imagenet)"))),
            Policies::List(l) => l.clone(),
        };
        if policies.is_empty() {
            return Err(DataError::config(NAME, "needs at least one sub-policy"));
        }
        let sub_policies = policies
            .iter()
            .map(|sub| sub.iter().map(|p| build_op(NAME, p, &OpDict::new(), None)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        Ok(AutoAugment { sub_policies })
    }
}

/// Applies one randomly chosen sub-policy; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoAugment {
    sub_policies: Vec<Vec<AugOp>>,
}

impl ImageTransform for AutoAugment {
    const NAME: &'static str = "AutoAugment";

    fn apply<R: RandomSource + ?Sized>(&self, mut img: Image, rng: &mut R) -> Result<Image, DataError> {
        // mmcv's `RandomChoice` without `prob`: `np.random.choice(n)`.
        let i = rng.randint(0, self.sub_policies.len());
        for op in &self.sub_policies[i] {
            img = op.apply(img, rng)?;
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn recipe() -> RandAugment {
        let cfg: RandAugmentConfig = serde_json::from_value(json!({
            "policies": "timm_increasing", "num_policies": 2, "total_level": 10, "magnitude_level": 9,
            "magnitude_std": 0.5, "hparams": {"pad_val": [104, 116, 124], "interpolation": "bicubic"}
        }))
        .unwrap();
        cfg.init().unwrap()
    }

    #[test]
    fn recipe_builds_fifteen_operations_with_merged_hparams() {
        let ra = recipe();
        assert_eq!(ra.ops().len(), 15);
        let kinds: Vec<_> = ra.ops().iter().map(AugOp::kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == AugOpKind::Shear).count(), 2);
        // AutoAugment's presets: 25 sub-policies of two.
        let aa = AutoAugmentConfig { policies: Policies::Named("imagenet".into()), hparams: default_hparams() }.init().unwrap();
        assert_eq!(aa.sub_policies.len(), 25);
        assert!(aa.sub_policies.iter().all(|s| s.len() == 2));
    }

    #[test]
    fn seeded_runs_keep_the_size_change_pixels_and_repeat() {
        let img = Image::from_fn(24, 20, |x, y| [(x * 10) as u8, (y * 12) as u8, ((x + y) * 5) as u8]);
        let run = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..40).map(|_| recipe().apply(img.clone(), &mut rng).unwrap()).collect::<Vec<_>>()
        };
        let out = run(7);
        assert!(out.iter().all(|o| (o.width(), o.height(), o.channels()) == (24, 20, 3)));
        assert!(out.iter().filter(|o| *o != &img).count() > 20, "most draws change the image");
        assert_eq!(out, run(7));
    }
}
