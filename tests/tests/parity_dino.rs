//! DINO against golden fixtures from mmpretrain 1.2.0's components
//! (`tools/gen_fixtures_dino.py`): the key inventories of the tiny and the
//! full-size config (teacher and centre included), the local crops'
//! resized position embedding, the teacher's and the student's outputs, two
//! AdamW iterations with every loss, gradient and state tensor (the
//! centre's EMA and the teacher's cosine EMA after each step), and the demo
//! training from its multi-crop pipeline.
use burn::tensor::Tensor;
use selfsup::{
    algorithms::{key_map, Algorithm},
    core::{Draws, SelfSupAlgorithm, SelfSupInputs},
    layers::resize_pos_embed,
    weights::load_into,
};
use selfsup_tests::{
    mim::{self, close, load_model},
    Case, B, BACKEND,
};

const CASE: &str = "dino_tiny";

#[test]
fn key_inventory() {
    mim::check_key_inventory(CASE, |model, state, opts| match model {
        Algorithm::Dino(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

/// What `DINOTeacherTempWarmupHook` sets before epoch 0.
fn with_teacher_temp<BB: burn::tensor::backend::Backend>(case: &Case, model: Algorithm<BB>) -> Algorithm<BB> {
    let Algorithm::Dino(mut m) = model else { panic!("DINO") };
    m.begin_epoch(0, case.config["teacher_temp"].as_f64().unwrap());
    Algorithm::Dino(m)
}

/// The four crops of iteration `step`, as `loss()` receives them.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, _model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    SelfSupInputs::new((0..4).map(|k| case.tensor::<4, BB>(&format!("inputs{sfx}.{k}"))).collect())
}

#[test]
fn two_iterations() {
    mim::check_two_iterations_with(CASE, with_teacher_temp, inputs::<B>, |_, _| Draws::seeded(0));
}

/// The local crops' position embedding (4×4 patches resized bicubically to
/// 2×2) and the first iteration's teacher and student outputs.
#[test]
fn forward_intermediates_match_reference() {
    let case = Case::load(CASE);
    let model = with_teacher_temp(&case, load_model::<B>(&case));
    let Algorithm::Dino(m) = &model else { panic!("DINO") };
    close("pos_embed_resized", resize_pos_embed(m.backbone.pos_embed.val(), [4, 4], [2, 2], 1), case.f32("pos_embed_resized"));
    let views = inputs(&case, &model, 0).views;
    let global = Tensor::cat(views[..2].to_vec(), 0);
    let local = Tensor::cat(views[2..].to_vec(), 0);
    let (tb, tn) = &m.teacher.module;
    close("teacher_out", tn.forward(tb.forward(global.clone()).unwrap().cls_token, false), case.f32("teacher_out"));
    let student: Vec<_> = [global, local].into_iter().map(|x| m.neck.forward(m.backbone.forward(x).unwrap().cls_token, false)).collect();
    close("student_out", Tensor::cat(student, 0), case.f32("student_out"));
}

#[test]
fn full_size_key_inventory_matches_reference() {
    assert!(mim::check_full_size_key_inventories("dino_keys.json") > 0);
}

/// The demo trains from its multi-crop pipeline (2 × 32 px + 4 × 16 px):
/// the losses are finite, positive and within the bound a cross-entropy
/// over 256 outputs has when the student's logits are unit vectors times
/// unit rows over `T = 0.1` (`|logit| ≤ 10`): `20 + ln 256`.
#[test]
fn demo_trains_from_its_pipeline() {
    let losses = selfsup_tests::demo_losses("configs/dino/dino_vit-tiny-p4_demo_synthetic.toml", 4);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0 && *l <= 20.0 + 256f64.ln()), "[{BACKEND}] {losses:?}");
}
