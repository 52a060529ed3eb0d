//! The evaluation benchmarks' building blocks: the linear probe on
//! synthetic features.
use burn::{
    nn::Linear,
    tensor::{Tensor, TensorData},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use selfsup::train::{
    knn::LabelledFeatures,
    linear_probe::{accuracy, probe_features, ClsHead, LinearClassifier, LinearProbeOptions},
};
use selfsup_tests::{Inner, B};

/// `n` samples of `classes` blobs: class `c` sits at 3 on axis `c`, plus
/// uniform noise; with `wild`, the last channel has a large offset and
/// scale, which only a normalisation tames.
fn blobs(n: usize, dim: usize, classes: usize, seed: u64, wild: bool) -> LabelledFeatures {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut feats = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        labels.push(c);
        for d in 0..dim {
            let centre = if d == c { 3.0 } else { 0.0 };
            let v: f32 = centre + rng.random_range(-1.0..1.0);
            feats.push(if wild && d == dim - 1 { 500.0 + 100.0 * v } else { v });
        }
    }
    LabelledFeatures { feats, labels, dim }
}

#[test]
fn linear_probe_learns_separable_features_with_both_protocols() {
    for cls_bn in [false, true] {
        // ClsBatchNormNeck copes with a wild channel; the ResNet protocol
        // (plain SGD) gets well-scaled features.
        let (train, val) = (blobs(240, 6, 4, 1, cls_bn), blobs(120, 6, 4, 2, cls_bn));
        let opts = LinearProbeOptions { epochs: 12, batch_size: 32, ..Default::default() };
        let r = probe_features::<B>(&train, &val, cls_bn, &opts, &Default::default()).unwrap();
        assert!(r.top1 > 95.0, "cls_bn={cls_bn}: {r:?}");
        assert_eq!(r.top5, 100.0);
        assert!(r.epochs.last().unwrap().loss < r.epochs[0].loss, "{r:?}");
    }
}

#[test]
fn linear_probe_accuracy_gives_ties_to_the_lower_class() {
    let dev = Default::default();
    let head = LinearClassifier::<Inner>::new(2, 3, false, 0, &dev);
    let head = LinearClassifier {
        head: ClsHead { fc: Linear { weight: head.head.fc.weight.map(|w| w.zeros_like()), bias: head.head.fc.bias } },
        ..head
    };
    // Every score ties: class 0 wins top-1 and top-5 holds all three.
    let x = Tensor::from_data(TensorData::new(vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]), &dev);
    assert_eq!(accuracy(&head, x, &[0, 1, 2], 3), (100.0 / 3.0, 100.0));
}
