//! Data transforms with MMSelfSup's names and parameters, and the [`Pipeline`] that chains
//! them (mmcv's `Compose`).
//!
//! Two levels, as in the burn component idiom:
//! - [`TransformConfig`] is the serde registry (`type = "RandomResizedCrop"`, ...); an
//!   unknown `type` fails to deserialise with an error naming it and listing the known ones;
//! - [`Transform`] is the built, validated transform; [`ImageTransform`] is the per-image
//!   operation each concrete transform implements, with its random parameters drawn through a
//!   [`RandomSource`] in a separate public function (`sample_params`, `sample_direction`,
//!   `sample_sigma`, `sample_apply`, `sample_offsets`, `sample_flip`) and applied by a
//!   deterministic one (`apply_params`, `apply_with`), so tests can inject the reference's
//!   parameters or replay its draws ([`ReplayDraws`]).
//!
//! Every draw goes through the `rng` handed to [`Pipeline::transform`]; the loader gives each
//! sample its own seeded stream, so augmentations do not depend on the number of workers.
//!
//! Channel order: MMSelfSup's pipelines hold BGR arrays, this crate RGB images. Transforms
//! whose parameters name channels (`RandomGrayscale.channel_weights`, `RandomCrop.pad_val`)
//! read them in the reference's BGR order, so configs keep their meaning. Between `ToPIL` and
//! `ToNumpy` the reference holds a PIL image and our image holds its pixels in its channel
//! order; [`Pipeline::new`] refuses pipelines that mix PIL images and arrays where the
//! reference cannot (see [`pil_numpy`]).
//!
//! The state flowing through a pipeline is [`Results`] (mmcv's `results` dict): a list of
//! images (one until [`MultiView`] makes several) plus the label, index and name.
//! Per-image transforms apply to every image of the list.
//!
//! Adding a transform: a file here (named after its reference file), a config with
//! `init()`, an [`ImageTransform`] impl (or a `transform` on [`Results`] for transforms that
//! change the number of images), and one line in each of [`TransformConfig`], [`Transform`]
//! and the two `match`es below (plus one in `pil_numpy::image_kinds` for a transform that does not work
//! on the reference's arrays).

pub mod auto_augment;
pub mod formatting;
pub mod loading;
pub mod pil_numpy;
pub mod processing;
pub mod random;
pub mod wrappers;

pub use auto_augment::{AugOp, AugOpConfig, AugOpKind, AutoAugment, AutoAugmentConfig, RandAugment, RandAugmentConfig};
pub use formatting::{ArrayData, PackClsInputsConfig, PackInputsConfig, PackSelfSupInputs, PackSelfSupInputsConfig, PackedArray};
pub use loading::{LoadImageFromFile, LoadImageFromFileConfig};
pub use pil_numpy::{ImageKind, ToNumpy, ToNumpyConfig, ToPil, ToPilConfig};
pub use processing::{
    BeitMaskGenerator, BeitMaskGeneratorConfig, CenterCrop, CenterCropConfig, ColorJitter, ColorJitterConfig, ColorJitterParams,
    CropParams, DinoMultiCropConfig, RandomCrop, RandomCropConfig, RandomErasing, RandomErasingConfig, RandomFlip, RandomFlipConfig,
    RandomGaussianBlur, RandomGaussianBlurConfig, RandomGrayscale, RandomGrayscaleConfig, RandomPatchWithLabels,
    RandomPatchWithLabelsConfig, RandomResizedCrop, RandomResizedCropAndInterpolationWithTwoPic,
    RandomResizedCropAndInterpolationWithTwoPicConfig, RandomResizedCropConfig, RandomRotation, RandomRotationConfig, RandomSolarize,
    RandomSolarizeConfig, Resize, ResizeConfig, ResizeEdge, ResizeEdgeConfig, RotationWithLabels, RotationWithLabelsConfig,
    SimMimMaskGenerator, SimMimMaskGeneratorConfig, SizeSpec, TorchvisionRandomCrop, TorchvisionRandomCropConfig,
    TorchvisionRandomHorizontalFlip, TorchvisionRandomHorizontalFlipConfig, TorchvisionResize, TorchvisionResizeConfig,
};
pub use random::{Draw, RandomSource, ReplayDraws};
pub use wrappers::{MultiView, MultiViewConfig, NumViews, RandomApply, RandomApplyConfig};

use std::collections::BTreeMap;

use crate::imaging::Image;
use crate::{DataError, RawSample};

/// A transform of one image.
pub trait ImageTransform {
    /// The transform's MMSelfSup/mmcv/mmcls registry name.
    const NAME: &'static str;

    /// Transforms `img`, drawing any random parameter from `rng`.
    ///
    /// # Errors
    /// [`DataError::Transform`] when this image cannot be transformed (e.g. it would become
    /// empty); the pipeline fills in the sample's name.
    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError>;
}

selfsup_config::registry! {
    /// The transform registry: one variant per MMSelfSup transform `type`.
    ///
    /// Deserialises from MMSelfSup-style dicts, e.g. (TOML)
    /// `{ type = "RandomResizedCrop", size = 224, backend = "pillow" }`. Scoped names
    /// (`mmcls.ResizeEdge`, `mmcv.RandomFlip`, `mmcls.torchvision/Resize`, ...) are accepted.
    #[derive(Debug, Clone, PartialEq)]
    pub enum TransformConfig {
        /// `LoadImageFromFile` (mmcv): pipeline head marker.
        "LoadImageFromFile" => LoadImageFromFile(LoadImageFromFileConfig),
        /// `RandomResizedCrop` (mmselfsup).
        "RandomResizedCrop" => RandomResizedCrop(RandomResizedCropConfig),
        /// `RandomFlip` (mmcv).
        "RandomFlip" => RandomFlip(RandomFlipConfig),
        /// `Resize` (mmcv).
        "Resize" => Resize(ResizeConfig),
        /// `ResizeEdge` (mmcls).
        "ResizeEdge" => ResizeEdge(ResizeEdgeConfig),
        /// `CenterCrop` (mmcv).
        "CenterCrop" => CenterCrop(CenterCropConfig),
        /// `RandomCrop` (mmselfsup).
        "RandomCrop" => RandomCrop(RandomCropConfig),
        /// `ColorJitter` (mmselfsup).
        "ColorJitter" => ColorJitter(ColorJitterConfig),
        /// `RandomGrayscale` (mmcv).
        "RandomGrayscale" => RandomGrayscale(RandomGrayscaleConfig),
        /// `RandomGaussianBlur` (mmselfsup).
        "RandomGaussianBlur" => RandomGaussianBlur(RandomGaussianBlurConfig),
        /// `RandomSolarize` (mmselfsup).
        "RandomSolarize" => RandomSolarize(RandomSolarizeConfig),
        /// `RandomErasing` (mmcls).
        "RandomErasing" => RandomErasing(RandomErasingConfig),
        /// `RandAugment` (mmcls).
        "RandAugment" => RandAugment(RandAugmentConfig),
        /// `AutoAugment` (mmcls).
        "AutoAugment" => AutoAugment(AutoAugmentConfig),
        /// mmcls's `Shear` (see [`AugOpKind::Shear`]).
        "Shear" => Shear(AugOpConfig),
        /// mmcls's `Translate` (see [`AugOpKind::Translate`]).
        "Translate" => Translate(AugOpConfig),
        /// mmcls's `Rotate` (see [`AugOpKind::Rotate`]).
        "Rotate" => Rotate(AugOpConfig),
        /// mmcls's `AutoContrast` (see [`AugOpKind::AutoContrast`]).
        "AutoContrast" => AutoContrast(AugOpConfig),
        /// mmcls's `Invert` (see [`AugOpKind::Invert`]).
        "Invert" => Invert(AugOpConfig),
        /// mmcls's `Equalize` (see [`AugOpKind::Equalize`]).
        "Equalize" => Equalize(AugOpConfig),
        /// mmcls's `Solarize` (see [`AugOpKind::Solarize`]).
        "Solarize" => Solarize(AugOpConfig),
        /// mmcls's `SolarizeAdd` (see [`AugOpKind::SolarizeAdd`]).
        "SolarizeAdd" => SolarizeAdd(AugOpConfig),
        /// mmcls's `Posterize` (see [`AugOpKind::Posterize`]).
        "Posterize" => Posterize(AugOpConfig),
        /// mmcls's `Contrast` (see [`AugOpKind::Contrast`]).
        "Contrast" => Contrast(AugOpConfig),
        /// mmcls's `ColorTransform` (see [`AugOpKind::ColorTransform`]).
        "ColorTransform" => ColorTransform(AugOpConfig),
        /// mmcls's `Brightness` (see [`AugOpKind::Brightness`]).
        "Brightness" => Brightness(AugOpConfig),
        /// mmcls's `Sharpness` (see [`AugOpKind::Sharpness`]).
        "Sharpness" => Sharpness(AugOpConfig),
        /// mmcls's `Cutout` (see [`AugOpKind::Cutout`]).
        "Cutout" => Cutout(AugOpConfig),
        /// `RandomResizedCropAndInterpolationWithTwoPic` (mmselfsup): one crop, two sizes.
        "RandomResizedCropAndInterpolationWithTwoPic" =>
            RandomResizedCropAndInterpolationWithTwoPic(RandomResizedCropAndInterpolationWithTwoPicConfig),
        /// `RandomRotation` (mmselfsup).
        "RandomRotation" => RandomRotation(RandomRotationConfig),
        /// `RotationWithLabels` (mmselfsup): the four right-angle rotations and `rot_label`.
        "RotationWithLabels" => RotationWithLabels(RotationWithLabelsConfig),
        /// `RandomPatchWithLabels` (mmselfsup): RelativeLoc's 3×3 patches and `patch_label`.
        "RandomPatchWithLabels" => RandomPatchWithLabels(RandomPatchWithLabelsConfig),
        /// `BEiTMaskGenerator` (mmselfsup): block-wise mask.
        "BEiTMaskGenerator" => BEiTMaskGenerator(BeitMaskGeneratorConfig),
        /// `SimMIMMaskGenerator` (mmselfsup): random mask of square blocks.
        "SimMIMMaskGenerator" => SimMIMMaskGenerator(SimMimMaskGeneratorConfig),
        /// `RandomApply` (mmcv): a sub-pipeline applied with a probability.
        "RandomApply" => RandomApply(RandomApplyConfig),
        /// `PackSelfSupInputs` (mmselfsup): pipeline tail marker.
        "PackSelfSupInputs" => PackSelfSupInputs(PackSelfSupInputsConfig),
        /// `PackInputs` (mmpretrain): the same tail marker.
        "PackInputs" => PackInputs(PackInputsConfig),
        /// `PackClsInputs` (mmcls): the classification pipelines' tail marker.
        "PackClsInputs" => PackClsInputs(PackClsInputsConfig),
        /// `MultiView` (mmselfsup): several views from sub-pipelines.
        "MultiView" => MultiView(MultiViewConfig),
        /// `DINOMultiCrop` (mmpretrain's DINO project): two global and N local crops, a `MultiView`.
        "DINOMultiCrop" => DINOMultiCrop(DinoMultiCropConfig),
        /// `ToPIL` (mmcls): the array becomes a PIL image.
        "ToPIL" => ToPIL(ToPilConfig),
        /// `ToNumpy` (mmcls): the PIL image becomes an array.
        "ToNumpy" => ToNumpy(ToNumpyConfig),
        /// `torchvision/Resize` (mmcls's wrapper of torchvision's `Resize`).
        "torchvision/Resize" => TorchvisionResize(TorchvisionResizeConfig),
        /// `torchvision/RandomCrop` (mmcls's wrapper of torchvision's `RandomCrop`).
        "torchvision/RandomCrop" => TorchvisionRandomCrop(TorchvisionRandomCropConfig),
        /// `torchvision/RandomHorizontalFlip` (mmcls's wrapper of torchvision's
        /// `RandomHorizontalFlip`).
        "torchvision/RandomHorizontalFlip" => TorchvisionRandomHorizontalFlip(TorchvisionRandomHorizontalFlipConfig),
    }
}

impl TransformConfig {
    /// The registry name (`type`).
    pub fn name(&self) -> &'static str {
        self.type_name()
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// The component's [`DataError::InvalidConfig`].
    pub fn init(&self) -> Result<Transform, DataError> {
        Ok(match self {
            TransformConfig::LoadImageFromFile(c) => Transform::LoadImageFromFile(c.init()?),
            TransformConfig::RandomResizedCrop(c) => Transform::RandomResizedCrop(c.init()?),
            TransformConfig::RandomFlip(c) => Transform::RandomFlip(c.init()?),
            TransformConfig::Resize(c) => Transform::Resize(c.init()?),
            TransformConfig::ResizeEdge(c) => Transform::ResizeEdge(c.init()?),
            TransformConfig::CenterCrop(c) => Transform::CenterCrop(c.init()?),
            TransformConfig::RandomCrop(c) => Transform::RandomCrop(c.init()?),
            TransformConfig::ColorJitter(c) => Transform::ColorJitter(c.init()?),
            TransformConfig::RandomGrayscale(c) => Transform::RandomGrayscale(c.init()?),
            TransformConfig::RandomGaussianBlur(c) => Transform::RandomGaussianBlur(c.init()?),
            TransformConfig::RandomSolarize(c) => Transform::RandomSolarize(c.init()?),
            TransformConfig::RandomErasing(c) => Transform::RandomErasing(c.init()?),
            TransformConfig::RandAugment(c) => Transform::RandAugment(c.init()?),
            TransformConfig::AutoAugment(c) => Transform::AutoAugment(c.init()?),
            TransformConfig::Shear(c) => Transform::AugOp(c.init(AugOpKind::Shear)?),
            TransformConfig::Translate(c) => Transform::AugOp(c.init(AugOpKind::Translate)?),
            TransformConfig::Rotate(c) => Transform::AugOp(c.init(AugOpKind::Rotate)?),
            TransformConfig::AutoContrast(c) => Transform::AugOp(c.init(AugOpKind::AutoContrast)?),
            TransformConfig::Invert(c) => Transform::AugOp(c.init(AugOpKind::Invert)?),
            TransformConfig::Equalize(c) => Transform::AugOp(c.init(AugOpKind::Equalize)?),
            TransformConfig::Solarize(c) => Transform::AugOp(c.init(AugOpKind::Solarize)?),
            TransformConfig::SolarizeAdd(c) => Transform::AugOp(c.init(AugOpKind::SolarizeAdd)?),
            TransformConfig::Posterize(c) => Transform::AugOp(c.init(AugOpKind::Posterize)?),
            TransformConfig::Contrast(c) => Transform::AugOp(c.init(AugOpKind::Contrast)?),
            TransformConfig::ColorTransform(c) => Transform::AugOp(c.init(AugOpKind::ColorTransform)?),
            TransformConfig::Brightness(c) => Transform::AugOp(c.init(AugOpKind::Brightness)?),
            TransformConfig::Sharpness(c) => Transform::AugOp(c.init(AugOpKind::Sharpness)?),
            TransformConfig::Cutout(c) => Transform::AugOp(c.init(AugOpKind::Cutout)?),
            TransformConfig::RandomResizedCropAndInterpolationWithTwoPic(c) => {
                Transform::RandomResizedCropAndInterpolationWithTwoPic(c.init()?)
            }
            TransformConfig::RandomRotation(c) => Transform::RandomRotation(c.init()?),
            TransformConfig::RotationWithLabels(c) => Transform::RotationWithLabels(c.init()?),
            TransformConfig::RandomPatchWithLabels(c) => Transform::RandomPatchWithLabels(c.init()?),
            TransformConfig::BEiTMaskGenerator(c) => Transform::BEiTMaskGenerator(c.init()?),
            TransformConfig::SimMIMMaskGenerator(c) => Transform::SimMIMMaskGenerator(c.init()?),
            TransformConfig::RandomApply(c) => Transform::RandomApply(c.init()?),
            TransformConfig::PackSelfSupInputs(c) => Transform::PackSelfSupInputs(c.init()?),
            TransformConfig::PackInputs(c) => Transform::PackSelfSupInputs(c.init()?),
            TransformConfig::PackClsInputs(c) => Transform::PackSelfSupInputs(c.init()?),
            TransformConfig::MultiView(c) => Transform::MultiView(c.init()?),
            TransformConfig::DINOMultiCrop(c) => Transform::MultiView(c.init()?),
            TransformConfig::ToPIL(c) => Transform::ToPIL(c.init()?),
            TransformConfig::ToNumpy(c) => Transform::ToNumpy(c.init()?),
            TransformConfig::TorchvisionResize(c) => Transform::TorchvisionResize(c.init()?),
            TransformConfig::TorchvisionRandomCrop(c) => Transform::TorchvisionRandomCrop(c.init()?),
            TransformConfig::TorchvisionRandomHorizontalFlip(c) => Transform::TorchvisionRandomHorizontalFlip(c.init()?),
        })
    }

    /// Parses a pipeline (a JSON list of transform dicts).
    ///
    /// # Errors
    /// [`DataError::ConfigParse`], whose message names an unknown `type` or key.
    pub fn parse_list(json: &str) -> Result<Vec<TransformConfig>, DataError> {
        serde_json::from_str(json).map_err(|e| DataError::parse("transform pipeline", &e))
    }
}

/// A built transform (see [`TransformConfig`]).
#[derive(Debug, Clone)]
pub enum Transform {
    /// See [`LoadImageFromFile`].
    LoadImageFromFile(LoadImageFromFile),
    /// See [`RandomResizedCrop`].
    RandomResizedCrop(RandomResizedCrop),
    /// See [`RandomFlip`].
    RandomFlip(RandomFlip),
    /// See [`Resize`].
    Resize(Resize),
    /// See [`ResizeEdge`].
    ResizeEdge(ResizeEdge),
    /// See [`CenterCrop`].
    CenterCrop(CenterCrop),
    /// See [`RandomCrop`].
    RandomCrop(RandomCrop),
    /// See [`ColorJitter`].
    ColorJitter(ColorJitter),
    /// See [`RandomGrayscale`].
    RandomGrayscale(RandomGrayscale),
    /// See [`RandomGaussianBlur`].
    RandomGaussianBlur(RandomGaussianBlur),
    /// See [`RandomSolarize`].
    RandomSolarize(RandomSolarize),
    /// See [`RandomErasing`].
    RandomErasing(RandomErasing),
    /// See [`RandAugment`].
    RandAugment(RandAugment),
    /// See [`AutoAugment`].
    AutoAugment(AutoAugment),
    /// One of mmcls's `RandAugment` operations on its own (see [`AugOp`]).
    AugOp(AugOp),
    /// See [`RandomResizedCropAndInterpolationWithTwoPic`].
    RandomResizedCropAndInterpolationWithTwoPic(RandomResizedCropAndInterpolationWithTwoPic),
    /// See [`RandomRotation`].
    RandomRotation(RandomRotation),
    /// See [`RotationWithLabels`].
    RotationWithLabels(RotationWithLabels),
    /// See [`RandomPatchWithLabels`].
    RandomPatchWithLabels(RandomPatchWithLabels),
    /// See [`BeitMaskGenerator`].
    BEiTMaskGenerator(BeitMaskGenerator),
    /// See [`SimMimMaskGenerator`].
    SimMIMMaskGenerator(SimMimMaskGenerator),
    /// See [`RandomApply`].
    RandomApply(RandomApply),
    /// See [`PackSelfSupInputs`].
    PackSelfSupInputs(PackSelfSupInputs),
    /// See [`MultiView`].
    MultiView(MultiView),
    /// See [`ToPil`].
    ToPIL(ToPil),
    /// See [`ToNumpy`].
    ToNumpy(ToNumpy),
    /// See [`TorchvisionResize`].
    TorchvisionResize(TorchvisionResize),
    /// See [`TorchvisionRandomCrop`].
    TorchvisionRandomCrop(TorchvisionRandomCrop),
    /// See [`TorchvisionRandomHorizontalFlip`].
    TorchvisionRandomHorizontalFlip(TorchvisionRandomHorizontalFlip),
}

fn each_image<T: ImageTransform, R: RandomSource + ?Sized>(t: &T, results: Results, rng: &mut R) -> Result<Results, DataError> {
    map_images(results, |img| t.apply(img, rng))
}

/// `f` of every image of `results`, in order.
fn map_images(mut results: Results, f: impl FnMut(Image) -> Result<Image, DataError>) -> Result<Results, DataError> {
    results.img = std::mem::take(&mut results.img).into_iter().map(f).collect::<Result<_, _>>()?;
    Ok(results)
}

impl Transform {
    /// The registry name.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::LoadImageFromFile(_) => "LoadImageFromFile",
            Transform::RandomResizedCrop(_) => RandomResizedCrop::NAME,
            Transform::RandomFlip(_) => RandomFlip::NAME,
            Transform::Resize(_) => Resize::NAME,
            Transform::ResizeEdge(_) => ResizeEdge::NAME,
            Transform::CenterCrop(_) => CenterCrop::NAME,
            Transform::RandomCrop(_) => RandomCrop::NAME,
            Transform::ColorJitter(_) => ColorJitter::NAME,
            Transform::RandomGrayscale(_) => RandomGrayscale::NAME,
            Transform::RandomGaussianBlur(_) => RandomGaussianBlur::NAME,
            Transform::RandomSolarize(_) => RandomSolarize::NAME,
            Transform::RandomErasing(_) => RandomErasing::NAME,
            Transform::RandAugment(_) => RandAugment::NAME,
            Transform::AutoAugment(_) => AutoAugment::NAME,
            Transform::AugOp(t) => t.kind().name(),
            Transform::RandomResizedCropAndInterpolationWithTwoPic(_) => RandomResizedCropAndInterpolationWithTwoPic::NAME,
            Transform::RandomRotation(_) => RandomRotation::NAME,
            Transform::RotationWithLabels(_) => RotationWithLabels::NAME,
            Transform::RandomPatchWithLabels(_) => RandomPatchWithLabels::NAME,
            Transform::BEiTMaskGenerator(_) => BeitMaskGenerator::NAME,
            Transform::SimMIMMaskGenerator(_) => SimMimMaskGenerator::NAME,
            Transform::RandomApply(_) => "RandomApply",
            Transform::PackSelfSupInputs(_) => "PackSelfSupInputs",
            Transform::MultiView(_) => "MultiView",
            Transform::ToPIL(_) => ToPil::NAME,
            Transform::ToNumpy(_) => ToNumpy::NAME,
            Transform::TorchvisionResize(_) => TorchvisionResize::NAME,
            Transform::TorchvisionRandomCrop(_) => TorchvisionRandomCrop::NAME,
            Transform::TorchvisionRandomHorizontalFlip(_) => TorchvisionRandomHorizontalFlip::NAME,
        }
    }

    /// Applies the transform to the pipeline state.
    ///
    /// # Errors
    /// The transform's error (without the sample name; [`Pipeline`] adds it).
    pub fn transform<R: RandomSource + ?Sized>(&self, results: Results, rng: &mut R) -> Result<Results, DataError> {
        match self {
            Transform::LoadImageFromFile(_) | Transform::PackSelfSupInputs(_) => Ok(results),
            Transform::RandomResizedCrop(t) => each_image(t, results, rng),
            Transform::RandomFlip(t) => each_image(t, results, rng),
            Transform::Resize(t) => each_image(t, results, rng),
            Transform::ResizeEdge(t) => each_image(t, results, rng),
            Transform::CenterCrop(t) => each_image(t, results, rng),
            Transform::RandomCrop(t) => each_image(t, results, rng),
            Transform::ColorJitter(t) => each_image(t, results, rng),
            Transform::RandomGrayscale(t) => each_image(t, results, rng),
            Transform::RandomGaussianBlur(t) => each_image(t, results, rng),
            Transform::RandomSolarize(t) => each_image(t, results, rng),
            Transform::RandomErasing(t) => each_image(t, results, rng),
            Transform::RandAugment(t) => each_image(t, results, rng),
            Transform::AutoAugment(t) => each_image(t, results, rng),
            Transform::AugOp(t) => map_images(results, |img| t.apply(img, rng)),
            Transform::RandomResizedCropAndInterpolationWithTwoPic(t) => t.transform(results, rng),
            Transform::RandomRotation(t) => each_image(t, results, rng),
            Transform::RotationWithLabels(t) => t.transform(results),
            Transform::RandomPatchWithLabels(t) => t.transform(results, rng),
            Transform::BEiTMaskGenerator(t) => t.transform(results, rng),
            Transform::SimMIMMaskGenerator(t) => t.transform(results, rng),
            Transform::RandomApply(t) => t.transform(results, rng),
            Transform::MultiView(t) => t.transform(results, rng),
            Transform::ToPIL(t) => each_image(t, results, rng),
            Transform::ToNumpy(t) => each_image(t, results, rng),
            Transform::TorchvisionResize(t) => each_image(t, results, rng),
            Transform::TorchvisionRandomCrop(t) => each_image(t, results, rng),
            Transform::TorchvisionRandomHorizontalFlip(t) => each_image(t, results, rng),
        }
    }

    /// The non-image keys this transform adds to the pipeline state (`mask`, pseudo-labels).
    /// `MultiView` adds none: like MMSelfSup's, it keeps only its sub-pipelines' images.
    pub fn added_keys(&self) -> Vec<&'static str> {
        match self {
            Transform::BEiTMaskGenerator(_) | Transform::SimMIMMaskGenerator(_) => vec!["mask"],
            Transform::RotationWithLabels(_) => vec![RotationWithLabels::LABEL_KEY],
            Transform::RandomPatchWithLabels(_) => RandomPatchWithLabels::ADDED_KEYS.to_vec(),
            Transform::RandomApply(t) => t.pipeline().transforms().iter().flat_map(Transform::added_keys).collect(),
            _ => Vec::new(),
        }
    }
}

/// The one image of `results`, for transforms that (like their reference) work on a single
/// image and turn it into several or add labels computed from it.
pub(crate) fn single_image(results: &mut Results, transform: &'static str) -> Result<Image, DataError> {
    if results.img.len() != 1 {
        return Err(DataError::Transform {
            transform,
            name: String::new(),
            message: format!(
                "expects exactly one image, got {} (place it before `MultiView` or any \
                 transform that makes several)",
                results.img.len()
            ),
        });
    }
    Ok(results.img.remove(0))
}

/// The state flowing through a pipeline (mmcv's `results` dict).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    /// The image(s): one after loading, several after [`MultiView`].
    pub img: Vec<Image>,
    /// The class label, when the dataset has one (`gt_label`).
    pub gt_label: Option<usize>,
    /// The dataset index (`sample_idx`).
    pub sample_idx: usize,
    /// The sample's name (relative path, or a synthetic name).
    pub name: String,
    /// The mask of a mask generator (`results['mask']`), `[h, w]` of 0/1.
    pub mask: Option<PackedArray>,
    /// Pseudo-labels added by transforms (`rot_label`, `patch_label`, `patch_box`,
    /// `unpatched_img`), by key.
    pub pseudo_label: BTreeMap<String, PackedArray>,
}

impl From<RawSample> for Results {
    fn from(raw: RawSample) -> Self {
        let mut pseudo_label = BTreeMap::new();
        if let Some(l) = raw.clustering_label.and_then(|l| PackedArray::from_i64(vec![1], vec![l])) {
            pseudo_label.insert("clustering_label".to_string(), l);
        }
        Results { img: vec![raw.img], gt_label: raw.label, sample_idx: raw.index, name: raw.name, pseudo_label, ..Results::default() }
    }
}

/// The output of a pipeline for one dataset sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The views (one unless the pipeline has a [`MultiView`]).
    pub views: Vec<Image>,
    /// The class label, when the dataset has one.
    pub label: Option<usize>,
    /// The sample's name (relative path, or a synthetic name).
    pub name: String,
    /// The dataset index.
    pub index: usize,
    /// The mask (`data_sample.mask.value`), when `PackSelfSupInputs.algorithm_keys` has
    /// `mask` (or the pipeline has no `PackSelfSupInputs` and a mask generator ran).
    pub mask: Option<PackedArray>,
    /// The pseudo-labels (`data_sample.pseudo_label.<key>`) named by
    /// `PackSelfSupInputs.pseudo_label_keys` (all of them without a `PackSelfSupInputs`).
    pub pseudo_label: BTreeMap<String, PackedArray>,
}

/// A chain of transforms (mmcv's `Compose`).
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    transforms: Vec<Transform>,
}

impl Pipeline {
    /// Builds and validates every transform of `configs`, and checks that each transform gets
    /// the kind of image (array or PIL image, see [`pil_numpy`]) it works on in the reference.
    ///
    /// # Errors
    /// The first transform's [`DataError::InvalidConfig`], with the transform's position; a
    /// [`DataError::InvalidConfig`] for a `PackSelfSupInputs` key that no transform produces, a
    /// transform that gets the wrong kind of image, or a pipeline that ends with a PIL image.
    pub fn new(configs: &[TransformConfig]) -> Result<Self, DataError> {
        let pipeline = Self::nested(configs)?;
        if pil_numpy::check_image_kinds(&pipeline.transforms, ImageKind::Array, "pipeline")? == ImageKind::Pil {
            return Err(DataError::config(
                "pipeline",
                "it ends with a PIL image: add `ToNumpy` after the torchvision transforms (the reference packs and collates \
                 arrays)",
            ));
        }
        Ok(pipeline)
    }

    /// A wrapper's sub-pipeline ([`MultiView`], [`RandomApply`]): built and checked as by
    /// [`Pipeline::new`], except for the kinds of image, which depend on where the wrapper
    /// stands and which the enclosing pipeline's check follows through it.
    pub(crate) fn nested(configs: &[TransformConfig]) -> Result<Self, DataError> {
        let transforms = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.init().map_err(|e| match e {
                    DataError::InvalidConfig { component, message } => {
                        DataError::InvalidConfig { component: format!("pipeline[{i}] {component}"), message }
                    }
                    e => e,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pipeline = Self { transforms };
        pipeline.check_packed_keys()?;
        Ok(pipeline)
    }

    /// Checks that every key `PackSelfSupInputs` asks for (`mask`, pseudo-labels) is added by
    /// a transform before it.
    fn check_packed_keys(&self) -> Result<(), DataError> {
        let Some(pack_pos) = self.transforms.iter().rposition(|t| matches!(t, Transform::PackSelfSupInputs(_))) else {
            return Ok(());
        };
        let Transform::PackSelfSupInputs(pack) = &self.transforms[pack_pos] else {
            return Ok(());
        };
        // `clustering_label` comes from the dataset (the clustering hook's labels), not a transform.
        let added: Vec<&str> =
            std::iter::once("clustering_label").chain(self.transforms[..pack_pos].iter().flat_map(Transform::added_keys)).collect();
        let wanted = pack.algorithm_keys().iter().filter(|k| k.as_str() == "mask").chain(pack.pseudo_label_keys());
        for key in wanted {
            if !added.contains(&key.as_str()) {
                return Err(DataError::config(
                    format!("pipeline[{pack_pos}] PackSelfSupInputs"),
                    format!(
                        "key '{key}' is not produced by any transform before it (keys added: \
                         {added:?})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The built transforms.
    pub fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    /// The `PackSelfSupInputs` of this pipeline, if any (the last one).
    pub fn pack(&self) -> Option<&PackSelfSupInputs> {
        self.transforms.iter().rev().find_map(|t| match t {
            Transform::PackSelfSupInputs(p) => Some(p),
            _ => None,
        })
    }

    /// Runs every transform on `results`.
    ///
    /// # Errors
    /// The first error, with the sample's name filled in for [`DataError::Transform`].
    pub fn transform<R: RandomSource + ?Sized>(&self, mut results: Results, rng: &mut R) -> Result<Results, DataError> {
        for t in &self.transforms {
            let name = results.name.clone();
            results = t.transform(results, rng).map_err(|e| match e {
                DataError::Transform { transform, name: n, message } if n.is_empty() => DataError::Transform { transform, name, message },
                e => e,
            })?;
        }
        Ok(results)
    }

    /// Runs the pipeline on a decoded dataset sample.
    ///
    /// # Errors
    /// See [`Pipeline::transform`].
    pub fn run<R: RandomSource + ?Sized>(&self, raw: RawSample, rng: &mut R) -> Result<Sample, DataError> {
        let mut r = self.transform(Results::from(raw), rng)?;
        let (mask, pseudo_label) = match self.pack() {
            None => (r.mask, r.pseudo_label),
            Some(pack) => {
                let mask = if pack.packs_mask() { r.mask } else { None };
                let mut labels = BTreeMap::new();
                for key in pack.pseudo_label_keys() {
                    if let Some(v) = r.pseudo_label.remove(key) {
                        labels.insert(key.clone(), v);
                    }
                }
                (mask, labels)
            }
        };
        Ok(Sample { views: r.img, label: r.gt_label, name: r.name, index: r.sample_idx, mask, pseudo_label })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SIMCLR_LIKE: &str = r#"[
        {"type": "LoadImageFromFile"},
        {"type": "MultiView", "num_views": [2, 1], "transforms": [
            [{"type": "RandomResizedCrop", "size": 8, "backend": "pillow"},
             {"type": "RandomFlip", "prob": 0.5}],
            [{"type": "mmcls.ResizeEdge", "scale": 10, "edge": "short"},
             {"type": "CenterCrop", "crop_size": 6}]
        ]},
        {"type": "PackSelfSupInputs", "meta_keys": ["img_path"]}
    ]"#;

    fn raw() -> RawSample {
        RawSample {
            img: Image::from_fn(20, 14, |x, y| [(x * 10) as u8, (y * 15) as u8, 77]),
            label: Some(3),
            name: "a/b.png".into(),
            index: 5,
            clustering_label: None,
        }
    }

    #[test]
    fn multiview_pipeline_from_json() {
        let cfgs = TransformConfig::parse_list(SIMCLR_LIKE).expect("parses");
        assert_eq!(cfgs.len(), 3);
        let p = Pipeline::new(&cfgs).expect("builds");
        assert!(p.pack().is_some());
        let s = p.run(raw(), &mut ChaCha8Rng::seed_from_u64(0)).expect("runs");
        assert_eq!(s.views.len(), 3);
        assert_eq!((s.views[0].width(), s.views[0].height()), (8, 8));
        assert_eq!((s.views[1].width(), s.views[1].height()), (8, 8));
        assert_eq!((s.views[2].width(), s.views[2].height()), (6, 6));
        assert_eq!((s.label, s.index, s.name.as_str()), (Some(3), 5, "a/b.png"));
        // Same seed, same views.
        let s2 = p.run(raw(), &mut ChaCha8Rng::seed_from_u64(0)).expect("runs");
        assert_eq!(s, s2);
        // Config round-trips through JSON.
        let back: Vec<TransformConfig> = serde_json::from_str(&serde_json::to_string(&cfgs).expect("serialises")).expect("parses back");
        assert_eq!(back, cfgs);
    }

    #[test]
    fn unknown_transform_or_key_is_named() {
        let err = TransformConfig::parse_list(r#"[{"type": "NoSuchTransform"}]"#).expect_err("unknown type");
        assert!(err.to_string().contains("NoSuchTransform"), "{err}");
        assert!(err.to_string().contains("RandomResizedCrop"), "lists the known types: {err}");
        assert!(!err.to_string().contains('\u{0}'), "{err:?}");
        let err = TransformConfig::parse_list(r#"[{"type": "RandomFlip", "prob": 0.5, "bogus": 1}]"#).expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = TransformConfig::parse_list(r#"[{"type": "RandomResizedCrop"}]"#).expect_err("missing size");
        assert!(err.to_string().contains("size"), "{err}");
    }

    #[test]
    fn invalid_config_names_its_position() {
        let cfgs = TransformConfig::parse_list(r#"[{"type": "LoadImageFromFile"}, {"type": "RandomFlip", "prob": 2.0}]"#).expect("parses");
        let err = Pipeline::new(&cfgs).expect_err("prob > 1");
        assert!(err.to_string().contains("pipeline[1] RandomFlip"), "{err}");
    }

    /// MMSelfSup 1.0.0's PixMIM `train_pipeline`, verbatim.
    const PIXMIM: &str = r#"[
        {"type": "LoadImageFromFile"},
        {"type": "mmcls.ToPIL", "to_rgb": true},
        {"type": "mmcls.torchvision/Resize", "size": 224},
        {"type": "mmcls.torchvision/RandomCrop", "size": 224, "padding": 4, "padding_mode": "reflect"},
        {"type": "mmcls.torchvision/RandomHorizontalFlip", "p": 0.5},
        {"type": "mmcls.ToNumpy", "to_rgb": true},
        {"type": "PackSelfSupInputs", "meta_keys": ["img_path"]}
    ]"#;

    #[test]
    fn pixmim_pipeline_builds_and_gives_224_views() {
        let cfgs = TransformConfig::parse_list(PIXMIM).expect("parses");
        let names: Vec<&str> = cfgs.iter().map(TransformConfig::name).collect();
        assert_eq!(
            names,
            [
                "LoadImageFromFile",
                "ToPIL",
                "torchvision/Resize",
                "torchvision/RandomCrop",
                "torchvision/RandomHorizontalFlip",
                "ToNumpy",
                "PackSelfSupInputs"
            ]
        );
        let p = Pipeline::new(&cfgs).expect("builds");
        let mut r = raw();
        r.img = Image::from_fn(37, 53, |x, y| [(x * 6) as u8, (y * 4) as u8, 9]);
        let s = p.run(r, &mut ChaCha8Rng::seed_from_u64(1)).expect("runs");
        assert_eq!((s.views.len(), s.views[0].width(), s.views[0].height(), s.views[0].channels()), (1, 224, 224, 3));
        // ToPIL(to_rgb=True) … ToNumpy(to_rgb=True) keeps the channel order: blue stays 9
        // (reflect padding and bilinear resampling of a constant channel).
        assert!(s.views[0].data().chunks_exact(3).all(|px| px[2] == 9));
        let back: Vec<TransformConfig> = serde_json::from_str(&serde_json::to_string(&cfgs).expect("serialises")).expect("parses back");
        assert_eq!(back, cfgs);
    }

    #[test]
    fn pil_images_and_arrays_are_not_mixed() {
        let build = |json: &str| Pipeline::new(&TransformConfig::parse_list(json).expect("parses")).map(|_| ()).map_err(|e| e.to_string());
        let tv_flip = r#"{"type": "mmcls.torchvision/RandomHorizontalFlip"}"#;
        let (to_pil, to_numpy) = (r#"{"type": "mmcls.ToPIL", "to_rgb": true}"#, r#"{"type": "mmcls.ToNumpy", "to_rgb": true}"#);
        // A torchvision transform on an array.
        let err = build(&format!("[{tv_flip}]")).expect_err("no ToPIL");
        assert!(err.contains("pipeline[0] torchvision/RandomHorizontalFlip") && err.contains("`ToPIL`"), "{err}");
        // An array transform on a PIL image, and packing one.
        let err = build(&format!(r#"[{to_pil}, {{"type": "RandomFlip", "prob": 0.5}}, {to_numpy}]"#)).expect_err("array transform");
        assert!(err.contains("pipeline[1] RandomFlip") && err.contains("`ToNumpy`"), "{err}");
        let err = build(&format!(r#"[{to_pil}, {{"type": "PackSelfSupInputs"}}]"#)).expect_err("packs a PIL image");
        assert!(err.contains("pipeline[1] PackSelfSupInputs"), "{err}");
        // Unbalanced conversions.
        assert!(build(&format!("[{to_numpy}]")).expect_err("no ToPIL").contains("pipeline[0] ToNumpy"));
        assert!(build(&format!("[{to_pil}, {to_pil}, {to_numpy}]")).expect_err("twice").contains("pipeline[1] ToPIL"));
        assert!(build(&format!("[{to_pil}, {tv_flip}]")).expect_err("ends as PIL").contains("ends with a PIL image"));
        // Wrappers are followed: inside a PIL stretch, their transforms see a PIL image.
        build(&format!(r#"[{to_pil}, {{"type": "RandomApply", "transforms": [{tv_flip}]}}, {to_numpy}]"#)).expect("PIL inside");
        let err =
            build(&format!(r#"[{{"type": "RandomApply", "transforms": [{to_pil}, {tv_flip}]}}, {to_numpy}]"#)).expect_err("random kind");
        assert!(err.contains("pipeline[0] RandomApply"), "{err}");
        let err =
            build(&format!(r#"[{to_pil}, {{"type": "RandomApply", "transforms": [{{"type": "RandomFlip", "prob": 1}}]}}, {to_numpy}]"#))
                .expect_err("array transform inside");
        assert!(err.contains("pipeline[1] RandomApply.transforms[0] RandomFlip"), "{err}");
        let views = format!(r#"[[{to_pil}, {tv_flip}, {to_numpy}], [{{"type": "RandomFlip", "prob": 1}}]]"#);
        build(&format!(r#"[{{"type": "MultiView", "num_views": [1, 1], "transforms": {views}}}]"#)).expect("each view converts back");
        let err = build(&format!(r#"[{{"type": "MultiView", "num_views": 2, "transforms": [[{to_pil}, {tv_flip}]]}}, {to_numpy}]"#))
            .expect_err("view pipeline ends as PIL");
        assert!(err.contains("pipeline[0] MultiView.transforms[0]") && err.contains("ends with a PIL image"), "{err}");
        // Mask generators do not read the image.
        build(&format!(
            r#"[{to_pil}, {{"type": "SimMIMMaskGenerator", "input_size": 8, "mask_patch_size": 4, "model_patch_size": 2}}, {to_numpy}]"#
        ))
        .expect("mask generator on a PIL image");
    }

    #[test]
    fn transform_error_carries_the_sample_name() {
        let cfgs = TransformConfig::parse_list(r#"[{"type": "ResizeEdge", "scale": 2, "edge": "long"}]"#).expect("parses");
        let p = Pipeline::new(&cfgs).expect("builds");
        let mut r = raw();
        r.img = Image::filled(100, 1, &[0, 0, 0]);
        let err = p.run(r, &mut ChaCha8Rng::seed_from_u64(0)).expect_err("degenerate");
        assert!(err.to_string().contains("a/b.png"), "{err}");
        assert!(err.is_sample_error());
    }
}
