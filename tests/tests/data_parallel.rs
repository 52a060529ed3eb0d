//! Data-parallel training: the collectives of `selfsup::layers::dist` on
//! replicas that are threads, the gradient all-reduce against one device
//! with the global batch, and whole runs on two replicas of the device
//! under test, killed and resumed.
use std::sync::Mutex;

use burn::{
    optim::GradientsParams,
    tensor::{Tensor, TensorData},
};
use selfsup::{
    algorithms::{
        common::{batch_shuffle, batch_unshuffle, gather_with_grad},
        key_map, Algorithm, AlgorithmConfig,
    },
    core::{Draws, SelfSupAlgorithm, SelfSupInputs},
    layers::dist::{self, Rank, ReduceOperation},
    train::{train_data_parallel, LoadedConfig, Resume, TrainOptions, TrainSummary},
    weights::{load_into, read_checkpoint, LoadOptions},
};
use selfsup_tests::{assert_close, demo_options, device, gradient_values, values, workspace, Case, Inner, B, BACKEND};

/// burn-collective's servers are per process and backend: one group at a
/// time in this binary.
static GROUP: Mutex<()> = Mutex::new(());

/// Runs `f(rank)` on two replica threads of one group; their results in
/// rank order.
fn on_two_ranks<T: Send + 'static>(f: impl Fn(usize) -> T + Send + Sync + Clone + 'static) -> Vec<T> {
    let _one = GROUP.lock().unwrap_or_else(|e| e.into_inner());
    dist::reset::<B>();
    dist::reset::<Inner>();
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                let _group = dist::join(Rank { rank, world_size: 2 });
                f(rank)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("replica thread")).collect()
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), &device())
}

#[test]
fn collectives_gather_reduce_and_shuffle_across_replicas() {
    let out = on_two_ranks(|rank| {
        let r = rank as f32;
        let x = tensor(vec![10.0 * r, 10.0 * r + 1.0, 10.0 * r + 2.0, 10.0 * r + 3.0], [2, 2]).require_grad();
        let gathered = values(dist::all_gather(x.clone()));
        // GatherLayer: the gradient of this rank's rows only.
        let w = tensor((0..8).map(|i| i as f32).collect(), [4, 2]);
        let grads = (gather_with_grad(x.clone()) * w).sum().backward();
        let gather_grad = values(x.grad(&grads).expect("x has a gradient"));
        // Barlow Twins' all-reduce: the sum, the gradient to the own term.
        let x2 = x.clone().detach().require_grad();
        let summed = dist::all_reduce_sum_with_grad(x2.clone());
        let summed_values = values(summed.clone());
        let grads = (summed * tensor(vec![1.0, 2.0, 3.0, 4.0], [2, 2])).sum().backward();
        let reduce_grad = values(x2.grad(&grads).expect("x2 has a gradient"));
        let mean = dist::mean_values::<B>(&[r as f64, 4.0 + r as f64], &device());
        let broadcast = values(dist::broadcast(tensor(vec![r + 7.0], [1]), 1));
        // ShuffleBN: a key encoder that is the identity must give back the
        // replica's own images after the unshuffle.
        let images = tensor((0..4).map(|i| 100.0 * r + i as f32).collect(), [4, 1, 1, 1]);
        let mut draws = Draws::seeded(3);
        let (shuffled, unshuffle) = batch_shuffle(images.clone(), &mut draws);
        let dealt = values(shuffled.clone());
        let restored = values(batch_unshuffle(shuffled.reshape([4, 1]), &unshuffle));
        (gathered, gather_grad, summed_values, reduce_grad, mean, broadcast, dealt, restored, values(images))
    });
    let all = vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
    let mut dealt_all = Vec::new();
    for (rank, (gathered, gather_grad, summed, reduce_grad, mean, broadcast, dealt, restored, images)) in out.into_iter().enumerate() {
        assert_eq!(gathered, all, "[{BACKEND}] rank {rank}: concat_all_gather");
        let own: Vec<f32> = (4 * rank..4 * rank + 4).map(|i| i as f32).collect();
        assert_eq!(gather_grad, own, "[{BACKEND}] rank {rank}: GatherLayer's gradient");
        assert_eq!(summed, vec![10.0, 12.0, 14.0, 16.0], "[{BACKEND}] rank {rank}: all_reduce");
        assert_eq!(reduce_grad, vec![1.0, 2.0, 3.0, 4.0], "[{BACKEND}] rank {rank}: all_reduce's gradient");
        assert_eq!(mean, vec![0.5, 4.5], "[{BACKEND}] rank {rank}: mean");
        assert_eq!(broadcast, vec![8.0], "[{BACKEND}] rank {rank}: broadcast from rank 1");
        assert_eq!(restored, images, "[{BACKEND}] rank {rank}: unshuffle(shuffle(x))");
        dealt_all.extend(dealt);
    }
    // Rank 0's permutation deals the global batch: every image once.
    let mut sorted = dealt_all.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(sorted, vec![0.0, 1.0, 2.0, 3.0, 100.0, 101.0, 102.0, 103.0], "[{BACKEND}] shuffle");
    assert!(dealt_all[..4].iter().any(|v| *v >= 100.0), "[{BACKEND}] rank 0 gets some of rank 1's images: {dealt_all:?}");
}

/// The MAE fixture's model, weights and batch of two.
fn mae_case() -> (Case, Algorithm<B>) {
    let case = Case::load("mae_tiny_normpix");
    let mut v = case.config.clone();
    for extra in ["batch_size", "optim_wrapper", "optimizer_resolved", "seeds", "derived"] {
        v.as_object_mut().expect("object").remove(extra);
    }
    let cfg: AlgorithmConfig = serde_json::from_value(v).expect("model config");
    let state = read_checkpoint(case.dir.join("model.pth")).expect("model.pth");
    let (model, _) = load_into(cfg.init::<B>(&device()), &state, &key_map(), &LoadOptions::default()).expect("weights");
    (case, model)
}

/// DistributedDataParallel's gradient: two replicas with one image each,
/// their gradients averaged by burn-collective, equal one device's
/// gradient of the batch of two.
#[test]
fn averaged_replica_gradients_equal_the_global_batch_gradient() {
    let (case, model) = mae_case();
    let raw = case.tensor::<4, B>("raw").flip([1]);
    let (noise, shape) = case.f32("noise");
    assert_eq!(shape[0], 2, "the fixture batch is split in two");
    let whole = {
        let inputs = SelfSupInputs::single(model.data_preprocessor().apply(raw.clone()));
        let mut draws = Draws::seeded(0).replay("mask_noise", noise.clone());
        let (loss, _) = model.loss(&inputs, &mut draws).expect("loss");
        let grads = GradientsParams::from_grads(loss.total().expect("total").backward(), &model);
        gradient_values(&model, &grads)
    };
    let per = noise.len() / 2;
    let raw_host = raw.into_data();
    let replicas = on_two_ranks(move |rank| {
        let (_, model) = mae_case();
        let raw = Tensor::<B, 4>::from_data(raw_host.clone(), &device()).narrow(0, rank, 1);
        let inputs = SelfSupInputs::single(model.data_preprocessor().apply(raw));
        let mut draws = Draws::seeded(0).replay("mask_noise", noise[rank * per..(rank + 1) * per].to_vec());
        let (loss, _) = model.loss(&inputs, &mut draws).expect("loss");
        let grads = GradientsParams::from_grads(loss.total().expect("total").backward(), &model);
        let grads = dist::all_reduce_gradients(&model, grads, ReduceOperation::Mean);
        gradient_values(&model, &grads)
    });
    assert_eq!(replicas[0].keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
    for (name, reference) in &whole {
        for (rank, replica) in replicas.iter().enumerate() {
            assert_close(&format!("rank {rank}: {name}"), &replica[name], reference, 1e-4, 1e-6);
        }
    }
}

fn run_on_two(cfg: &LoadedConfig, dir: &std::path::Path, resume: Resume) -> TrainSummary {
    let _one = GROUP.lock().unwrap_or_else(|e| e.into_inner());
    let opts = TrainOptions { work_dir: dir.to_path_buf(), resume, progress: false, config_name: "config.toml".into() };
    train_data_parallel::<B>(cfg, &opts, &[device(), device()]).unwrap_or_else(|e| panic!("[{BACKEND}] {e}"))
}

/// Whole runs on two replicas: MoCo v2 (ShuffleBN, gathered keys into the
/// queue) and SwAV (distributed Sinkhorn, one queue per replica), killed
/// after two epochs and resumed, give the uninterrupted run's losses.
/// SimCLR's gathered loss and Barlow Twins' all-reduced correlation train.
#[test]
fn two_replicas_train_and_resume_to_the_same_losses() {
    let cases: [(&str, &[&str]); 4] = [
        ("configs/mocov2/mocov2_resnet18-tiny_demo_synthetic.toml", &["model.queue_len=32"]),
        (
            "configs/swav/swav_resnet18-tiny_demo_synthetic.toml",
            &[
                "custom_hooks.0.batch_size=4",
                "custom_hooks.0.epoch_queue_starts=1",
                "custom_hooks.0.queue_length=16",
                "custom_hooks.0.frozen_layers_cfg.prototypes=3",
            ],
        ),
        ("configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml", &[]),
        ("configs/barlowtwins/barlowtwins_resnet18-tiny_demo_synthetic.toml", &[]),
    ];
    for (path, extra) in cases {
        let resumable = !path.contains("simclr") && !path.contains("barlow");
        let options = |epochs: usize| demo_options(4, epochs, extra);
        let dir = tempfile::tempdir().unwrap();
        let epochs = if resumable { 3 } else { 1 };
        let full_cfg = LoadedConfig::load(&workspace().join(path), &options(epochs)).unwrap();
        let full = run_on_two(&full_cfg, &dir.path().join("full"), Resume::No);
        // 16 samples, 2 replicas of 4: two iterations an epoch.
        assert_eq!(full.iters, 2 * epochs, "[{BACKEND}] {path}");
        assert!(full.losses.iter().all(|l| l.is_finite()), "[{BACKEND}] {path}: {:?}", full.losses);
        let log = std::fs::read_to_string(dir.path().join("full/scalars.json")).unwrap();
        assert_eq!(log.lines().count(), 2 * epochs, "[{BACKEND}] {path}: rank 0 alone logs");
        if !resumable {
            continue;
        }
        let part = dir.path().join("part");
        let first = run_on_two(&LoadedConfig::load(&workspace().join(path), &options(2)).unwrap(), &part, Resume::No);
        if path.contains("swav") {
            let ckpt = selfsup::train::checkpoint::load(&first.checkpoint).unwrap();
            let queue = ckpt.model.get(selfsup::train::checkpoint::SWAV_QUEUE).expect("the SwAV queues are checkpointed");
            // [replicas, crops_for_assign, 16 / 2 rows, feat_dim]
            assert_eq!(queue.shape[..3], [2, 2, 8], "[{BACKEND}] one queue per replica");
        }
        let rest = run_on_two(&full_cfg, &part, Resume::Auto);
        assert_eq!(rest.iters_this_run, 2, "{path}");
        let mut resumed = first.losses.clone();
        resumed.extend(&rest.losses);
        for (i, (a, b)) in full.losses.iter().zip(&resumed).enumerate() {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "[{BACKEND}] {path}: iteration {i}: {a} vs {b}");
        }
    }
}
