//! Times DeepCluster's clustering step (`selfsup::memories::clustering`) on
//! random features with cluster structure: the whitened PCA, the L2
//! normalisation and 20 Lloyd iterations of k-means, each phase apart.
//!
//! ```text
//! cargo run --release -p selfsup --example clustering -- [N D K PCA] [--backend flex|tch|wgpu|cuda] [--device SPEC]
//! ```
//!
//! Defaults: 100000 × 2048 features, k = 10000, PCA to 256 (MMSelfSup's
//! DeepCluster on a 100k-image subset). ARCHITECTURE.md quotes its numbers.
use std::time::Instant;

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Distribution, Tensor,
};
use rand::SeedableRng;
use selfsup::memories::clustering::{kmeans, preprocess_features, random_init};

fn main() {
    let mut numbers = Vec::new();
    let (mut backend, mut device) = ("flex".to_string(), String::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--backend" => backend = args.next().expect("--backend NAME"),
            "--device" => device = args.next().expect("--device SPEC"),
            n => numbers.push(n.parse::<usize>().unwrap_or_else(|_| panic!("not a number: {n}"))),
        }
    }
    let get = |i: usize, default: usize| numbers.get(i).copied().unwrap_or(default);
    let (n, d, k, pca) = (get(0, 100_000), get(1, 2048), get(2, 10_000), get(3, 256));
    let result = selfsup::with_backend!(backend.as_str(), device.as_str(), |B, device| {
        run::<<B as AutodiffBackend>::InnerBackend>(n, d, k, pca, &device)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run<B: Backend>(n: usize, d: usize, k: usize, pca: usize, device: &B::Device) {
    B::seed(device, 0);
    // Features with structure: 4k blob centres in a 64-dimensional subspace, ReLU'd like
    // pooled ResNet features, plus isotropic noise.
    let blobs = 4 * k.min(n);
    let basis = Tensor::<B, 2>::random([64, d], Distribution::Normal(0.0, 1.0), device);
    let centres = Tensor::<B, 2>::random([blobs, 64], Distribution::Normal(0.0, 1.0), device).matmul(basis);
    let pick = Tensor::<B, 1, burn::tensor::Int>::random([n], Distribution::Uniform(0.0, blobs as f64), device);
    let x =
        burn::tensor::activation::relu(centres.select(0, pick) + Tensor::<B, 2>::random([n, d], Distribution::Normal(0.0, 0.5), device));
    let _ = x.clone().sum().into_scalar();
    println!("{n} x {d} features, k = {k}, PCA to {pca}, backend {}", B::name(device));

    let t = Instant::now();
    let (y, _) = preprocess_features(x, Some(pca)).expect("PCA");
    let _ = y.clone().sum().into_scalar();
    let t_pca = t.elapsed().as_secs_f64();
    println!("PCA + whitening + L2: {t_pca:.1} s");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let init = random_init(n, k, &mut rng);
    let t = Instant::now();
    let r = kmeans(&y, k, 20, &init, &mut rng).expect("k-means");
    let t_km = t.elapsed().as_secs_f64();
    println!(
        "k-means, 20 iterations: {t_km:.1} s ({:.2} s per iteration; objective {:.1} -> {:.1}, {} empty-cluster splits)",
        t_km / 20.0,
        r.objective.first().copied().unwrap_or(0.0),
        r.objective.last().copied().unwrap_or(0.0),
        r.splits
    );
    println!("total {:.1} s", t_pca + t_km);
}
