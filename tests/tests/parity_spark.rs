//! SparK against golden fixtures from mmpretrain 1.2.0
//! (`tools/gen_fixtures_spark.py`): the key inventories of the tiny and the
//! full-size config, the mask from the replayed noise, the sparse encoder's
//! maps and the reconstruction, two Lamb iterations with every loss,
//! gradient and state tensor (the sparse BatchNorms' running statistics
//! included), the weight-decay multipliers of `paramwise_cfg`
//! (`bias_decay_mult`, `flat_decay_mult`), the config's lr and weight-decay
//! schedule (`CosineAnnealingWeightDecay`), and the demo training.
use selfsup::{
    algorithms::{key_map, Algorithm},
    core::{Draws, SelfSupAlgorithm, SelfSupInputs},
    train::{
        optim::{OptimWrapperConfig, Optimizer},
        schedule::{Schedule, SchedulerConfig, StepUnit},
    },
    weights::load_into,
};
use selfsup_tests::{
    mim::{self, close, load_model},
    Case, B, BACKEND,
};

const CASE: &str = "spark_tiny";

#[test]
fn key_inventory() {
    mim::check_key_inventory(CASE, |model, state, opts| match model {
        Algorithm::SparK(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

/// Iteration `step`'s draws: the mask noise and each block's stochastic
/// depth, as the reference drew them.
fn draws(case: &Case, step: usize) -> Draws {
    let prefix = if step == 0 { "draws." } else { "draws2." };
    let names: Vec<String> = case.io.keys().filter_map(|k| k.strip_prefix(prefix)).map(str::to_string).collect();
    assert!(names.len() > 1, "the fixture records the mask noise and the drop-path draws");
    names.into_iter().fold(Draws::seeded(0), |d, n| {
        let values = case.f32(&format!("{prefix}{n}")).0;
        d.replay(n, values)
    })
}

fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, _model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    SelfSupInputs::single(case.tensor::<4, BB>(if step == 0 { "inputs" } else { "inputs2" }))
}

#[test]
fn two_iterations() {
    mim::check_two_iterations(CASE, inputs::<B>, draws);
}

/// The mask from the replayed noise, the sparse encoder's three maps and
/// the reconstruction of iteration 1.
#[test]
fn forward_intermediates_match_reference() {
    let case = Case::load(CASE);
    let model = load_model::<B>(&case);
    let Algorithm::SparK(m) = &model else { panic!("SparK") };
    let img = case.tensor::<4, B>("inputs");
    let mut d = draws(&case, 0);
    let active = m.mask(3, &mut d, &img.device());
    close("active", active.clone(), case.f32("active"));
    let [_, c, h, _] = img.dims();
    let masked = img.clone() * selfsup::layers::sparse_modules::active_at(&active, h).repeat_dim(1, c);
    let maps = m.backbone.forward_sparse(masked, &active, Some(&mut d.clone())).unwrap();
    assert_eq!(maps.len(), 3);
    for (i, map) in maps.into_iter().enumerate() {
        close(&format!("feature.{i}"), map, case.f32(&format!("feature.{i}")));
    }
    let model = load_model::<B>(&case);
    let Algorithm::SparK(m) = &model else { panic!("SparK") };
    let rec = m.reconstruct(img, &active, Some(&mut d)).unwrap();
    close("rec", rec, case.f32("rec"));
}

/// `paramwise_cfg`'s multipliers as MMEngine assigns them: the mask tokens
/// by their custom key, every bias by `bias_decay_mult` (BatchNorm's too,
/// without `norm_decay_mult`), the other one-dimensional parameters
/// (BatchNorm weights) by `flat_decay_mult`.
#[test]
fn weight_decay_groups_match_mmengine() {
    let case = Case::load(CASE);
    let model = load_model::<B>(&case);
    let ow: OptimWrapperConfig = serde_json::from_value(case.config["optim_wrapper"].clone()).unwrap();
    let optim = Optimizer::<B>::new(&ow, &model, &key_map());
    let groups: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(case.dir.join("param_groups.json")).unwrap()).unwrap();
    let infos = optim.param_infos();
    assert_eq!(infos.len(), groups.as_object().unwrap().len());
    for info in infos {
        let want = groups[&info.name]["weight_decay"].as_f64().unwrap_or_else(|| panic!("{} in param_groups.json", info.name));
        let ours = optim.group_weight_decays()[info.wd_group];
        assert!((ours - want).abs() < 1e-12, "[{BACKEND}] weight decay of {}: {ours} vs {want}", info.name);
    }
}

/// The config's three schedulers (shortened to 4 epochs of 3 iterations)
/// give mmpretrain's lr and weight decay at every iteration; the group
/// without weight decay keeps none.
#[test]
fn lr_and_weight_decay_schedule_match_mmpretrain() {
    let case = Case::load(CASE);
    let s = &case.config["schedule"];
    let cfgs: Vec<SchedulerConfig> = serde_json::from_value(s["param_scheduler"].clone()).unwrap();
    let epoch_length = s["epoch_length"].as_u64().unwrap() as usize;
    let mut schedule = Schedule::new(&cfgs, vec![1e-3], vec![0.04, 0.0], epoch_length).unwrap();
    let rows = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(s[k].clone()).unwrap() };
    for (i, (lr, wd)) in rows("lr").into_iter().zip(rows("weight_decay")).enumerate() {
        assert!((schedule.lrs()[0] - lr[0]).abs() <= 1e-12 * lr[0].max(1e-3), "iter {i}: lr {} vs {}", schedule.lrs()[0], lr[0]);
        for (ours, want) in schedule.weight_decays().iter().zip(&wd) {
            assert!((ours - want).abs() < 1e-12, "iter {i}: weight decay {ours} vs {want}");
        }
        schedule.step(StepUnit::Iter);
    }
}

#[test]
fn full_size_key_inventory_matches_reference() {
    assert!(mim::check_full_size_key_inventories("spark_keys.json") > 0);
}

/// The demo trains from its pipeline: finite, positive losses (a masked
/// mean of squared errors against per-patch-normalised targets).
#[test]
fn demo_trains_from_its_pipeline() {
    let losses = selfsup_tests::demo_losses("configs/spark/spark_sparse-resnet18_demo_synthetic.toml", 4);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0 && *l < 100.0), "[{BACKEND}] {losses:?}");
}
