//! Port of `mmselfsup.utils.clustering` (`Kmeans`, `preprocess_features`,
//! `run_kmeans`): the clustering DeepCluster and ODC run between epochs.
//!
//! MMSelfSup calls faiss; here the heavy parts run on the Burn backend
//! the model trains on, so they use the GPU when training does:
//! - `preprocess_features`: faiss's `PCAMatrix(d, pca_dim, eigen_power=-0.5)`
//!   (mean, the unnormalised scatter matrix `XᵀX − n·μμᵀ` as one matmul on
//!   the backend, its eigendecomposition on the host in `f64` with
//!   nalgebra, rows scaled by `eigenvalue^−0.5` for whitening), then
//!   `y / (‖y‖ + 1e-10)`;
//! - `run_kmeans`: faiss's `Clustering` with `niter = 20`: `k` distinct
//!   random rows as the first centroids, then Lloyd iterations (nearest
//!   centroid in squared L2, first index on ties; centroid = sum × 1/count),
//!   empty clusters split from a large one as faiss's `split_clusters`
//!   does, and the labels of the final centroids.
//!
//! The eigendecomposition costs `O(d³)` on the host whatever the number of
//! samples (2048 dimensions: a few seconds); everything that grows with the
//! number of samples is a backend matmul, chunked so that the `n × k`
//! distances never exist at once.
use burn::tensor::{backend::Backend, ElementConversion, IndexingUpdateOp, Int, Tensor, TensorData};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// `clustering=dict(type='Kmeans', k, pca_dim=256)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeansConfig {
    /// Clusters.
    pub k: usize,
    /// PCA output width; `-1` keeps the features as they are.
    #[serde(default = "pca256")]
    pub pca_dim: i64,
}

fn pca256() -> i64 {
    256
}

/// What can go wrong while clustering.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClusteringError {
    /// The features hold NaN (MMSelfSup raises "nan occurs").
    #[error("the features to cluster hold NaN")]
    NanFeatures,
    /// Too many NaN after the PCA (a degenerate feature space).
    #[error("{0:.2} % of the values are NaN after the PCA (more than 0.1 %): the features are degenerate")]
    NanAfterPca(f64),
    /// Fewer samples than clusters, or a PCA wider than the features.
    #[error("{0}")]
    Shape(String),
}

/// A trained `PCAMatrix`: `y = A x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Column means, `[d_in]`.
    pub mean: Vec<f32>,
    /// Eigenvalues of the scatter matrix, descending, `[d_in]`.
    pub eigenvalues: Vec<f32>,
    /// `[d_out, d_in]`: the leading eigenvectors, each scaled by its
    /// eigenvalue to the `eigen_power`.
    pub a: Vec<f32>,
    /// `−A·mean`, `[d_out]`.
    pub b: Vec<f32>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

/// Rows per chunk of the `n × k` distance computations.
const CHUNK: usize = 16384;

/// faiss's `PCAMatrix::train` on `x` (`[n, d_in]`).
///
/// # Errors
/// [`ClusteringError::Shape`] when `d_out > d_in`.
pub fn train_pca<B: Backend>(x: &Tensor<B, 2>, d_out: usize, eigen_power: f64) -> Result<Pca, ClusteringError> {
    let [_, d_in] = x.dims();
    if d_out > d_in || d_out == 0 {
        return Err(ClusteringError::Shape(format!("a PCA from {d_in} to {d_out} dimensions")));
    }
    let mean = x.clone().mean_dim(0);
    let centred = x.clone() - mean.clone();
    let scatter = centred.clone().transpose().matmul(centred);
    let mean: Vec<f32> = host(mean);
    let scatter: Vec<f32> = host(scatter);
    let matrix = DMatrix::<f64>::from_fn(d_in, d_in, |i, j| f64::from(scatter[i * d_in + j]));
    let eig = SymmetricEigen::new(matrix);
    let mut order: Vec<usize> = (0..d_in).collect();
    order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
    let eigenvalues: Vec<f32> = order.iter().map(|&i| eig.eigenvalues[i] as f32).collect();
    let mut a = vec![0f32; d_out * d_in];
    for (row, &i) in order.iter().take(d_out).enumerate() {
        let factor = if eigen_power == 0.0 { 1.0 } else { (eig.eigenvalues[i] as f32 as f64).powf(eigen_power) };
        for j in 0..d_in {
            a[row * d_in + j] = (eig.eigenvectors[(j, i)] * factor) as f32;
        }
    }
    let b = (0..d_out).map(|r| -(0..d_in).map(|j| a[r * d_in + j] as f64 * mean[j] as f64).sum::<f64>() as f32).collect();
    Ok(Pca { mean, eigenvalues, a, b, d_in, d_out })
}

impl Pca {
    /// `x Aᵀ + b`, `[n, d_in] -> [n, d_out]`.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let device = x.device();
        let a = Tensor::<B, 2>::from_data(TensorData::new(self.a.clone(), [self.d_out, self.d_in]), &device);
        let b = Tensor::<B, 1>::from_data(TensorData::new(self.b.clone(), [self.d_out]), &device);
        x.matmul(a.transpose()) + b.unsqueeze::<2>()
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// MMSelfSup's `preprocess_features`: the PCA (whitened) when `pca_dim` is
/// given, NaN handling, then `y / (‖y‖ + 1e-10)` per row.
///
/// # Errors
/// NaN in the features, or more than 0.1 % NaN after the PCA.
pub fn preprocess_features<B: Backend>(x: Tensor<B, 2>, pca_dim: Option<usize>) -> Result<(Tensor<B, 2>, Option<Pca>), ClusteringError> {
    if x.clone().is_nan().int().sum().into_scalar().elem::<i64>() > 0 {
        return Err(ClusteringError::NanFeatures);
    }
    let (y, pca) = match pca_dim {
        Some(d) => {
            let pca = train_pca(&x, d, -0.5)?;
            (pca.apply(x), Some(pca))
        }
        None => (x, None),
    };
    let nan = y.clone().is_nan();
    let count = nan.clone().int().sum().into_scalar().elem::<i64>();
    let y = if count > 0 {
        let percent = count as f64 / y.dims().iter().product::<usize>() as f64 * 100.0;
        if percent > 0.1 {
            return Err(ClusteringError::NanAfterPca(percent));
        }
        y.mask_fill(nan, 0.0)
    } else {
        y
    };
    let norm = y.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-10);
    Ok((y / norm, pca))
}

/// A k-means result.
#[derive(Debug, Clone)]
pub struct KmeansResult<B: Backend> {
    /// `[k, d]`.
    pub centroids: Tensor<B, 2>,
    /// Each sample's cluster (nearest final centroid).
    pub labels: Vec<usize>,
    /// The objective (sum of squared distances) at each iteration.
    pub objective: Vec<f64>,
    /// Empty clusters split over the run.
    pub splits: usize,
}

/// `k` distinct rows of `0..n` in random order: faiss's initial centroids.
pub fn random_init(n: usize, k: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = rng.random_range(i as u64..n as u64) as usize;
        perm.swap(i, j);
    }
    perm.truncate(k);
    perm
}

/// The nearest centroid of every row and its squared distance.
///
/// One matmul per chunk of rows gives `‖c‖² − 2 x·c` for every centroid
/// (`x` augmented with a column of ones, the centroids with `‖c‖²`), whose
/// minimum picks the centroid (first index on ties); `‖x‖²` is added to the
/// minima only.
pub fn assign<B: Backend>(x: &Tensor<B, 2>, centroids: &Tensor<B, 2>) -> (Vec<usize>, Vec<f32>) {
    let [n, _] = x.dims();
    let device = x.device();
    let c_norm = centroids.clone().powi_scalar(2).sum_dim(1); // [k, 1]
    let c_aug = Tensor::cat(vec![centroids.clone().mul_scalar(-2.0), c_norm], 1).transpose(); // [d + 1, k]
    let (mut labels, mut dists) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows = x.clone().slice([start..end]);
        let x_norm = rows.clone().powi_scalar(2).sum_dim(1);
        let x_aug = Tensor::cat(vec![rows, Tensor::ones([end - start, 1], &device)], 1);
        let (min, arg) = x_aug.matmul(c_aug.clone()).min_dim_with_indices(1);
        labels.extend(arg.into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default().into_iter().map(|v| v as usize));
        dists.extend(host(min + x_norm).into_iter().map(|v| v.max(0.0)));
    }
    (labels, dists)
}

/// faiss's `Clustering::train` (`niter` Lloyd iterations from the rows
/// `init`), then the nearest final centroid of every row. Empty clusters
/// are split from a cluster drawn with probability ∝ (size − 1), as faiss
/// does, with `rng`.
///
/// # Errors
/// [`ClusteringError::Shape`] when `init` does not hold `k` rows of `x`.
pub fn kmeans<B: Backend>(
    x: &Tensor<B, 2>,
    k: usize,
    niter: usize,
    init: &[usize],
    rng: &mut impl Rng,
) -> Result<KmeansResult<B>, ClusteringError> {
    let [n, d] = x.dims();
    if k == 0 || k > n || init.len() != k || init.iter().any(|&i| i >= n) {
        return Err(ClusteringError::Shape(format!("k-means with k = {k} on {n} samples (initial rows: {})", init.len())));
    }
    let device = x.device();
    let idx = |v: Vec<i64>| {
        let len = v.len();
        Tensor::<B, 1, Int>::from_data(TensorData::new(v, [len]), &device)
    };
    let mut centroids = x.clone().select(0, idx(init.iter().map(|&i| i as i64).collect()));
    let (mut objective, mut splits) = (Vec::with_capacity(niter), 0);
    for _ in 0..niter {
        let (labels, dists) = assign(x, &centroids);
        objective.push(dists.iter().map(|&v| f64::from(v)).sum());
        let mut counts = vec![0usize; k];
        for &l in &labels {
            counts[l] += 1;
        }
        let sums = Tensor::<B, 2>::zeros([k, d], &device).select_assign(
            0,
            idx(labels.iter().map(|&l| l as i64).collect()),
            x.clone(),
            IndexingUpdateOp::Add,
        );
        let inv: Vec<f32> = counts.iter().map(|&c| if c == 0 { 0.0 } else { 1.0 / c as f32 }).collect();
        centroids = sums * Tensor::<B, 1>::from_data(TensorData::new(inv, [k]), &device).unsqueeze_dim::<2>(1);
        if counts.contains(&0) {
            let (c, s) = split_clusters(centroids, &mut counts, n, rng);
            centroids = c;
            splits += s;
        }
    }
    let (labels, _) = assign(x, &centroids);
    Ok(KmeansResult { centroids, labels, objective, splits })
}

/// faiss's `split_clusters`: each empty cluster takes a copy of a cluster
/// drawn with probability ∝ (size − 1)/(n − k), the two nudged apart by
/// ±1/1024 on alternate coordinates, the size shared between them.
fn split_clusters<B: Backend>(centroids: Tensor<B, 2>, counts: &mut [usize], n: usize, rng: &mut impl Rng) -> (Tensor<B, 2>, usize) {
    const EPS: f32 = 1.0 / 1024.0;
    let [k, d] = centroids.dims();
    let device = centroids.device();
    let mut c = host(centroids);
    let mut splits = 0;
    for ci in 0..k {
        if counts[ci] != 0 {
            continue;
        }
        let mut cj = 0;
        loop {
            let p = (counts[cj] as f32 - 1.0) / (n - k).max(1) as f32;
            if rng.random::<f32>() < p {
                break;
            }
            cj = (cj + 1) % k;
        }
        for j in 0..d {
            let v = c[cj * d + j];
            if j % 2 == 0 {
                c[ci * d + j] = v * (1.0 + EPS);
                c[cj * d + j] = v * (1.0 - EPS);
            } else {
                c[ci * d + j] = v * (1.0 - EPS);
                c[cj * d + j] = v * (1.0 + EPS);
            }
        }
        counts[ci] = counts[cj] / 2;
        counts[cj] -= counts[ci];
        splits += 1;
    }
    (Tensor::from_data(TensorData::new(c, [k, d]), &device), splits)
}

/// The 2-means split ODC makes of its largest cluster (MMSelfSup calls
/// `sklearn.cluster.KMeans(n_clusters=2, random_state=0, max_iter=20)`):
/// k-means++ seeding from `rng` (the first centre uniform, the second drawn
/// ∝ squared distance), then 20 Lloyd iterations. Each row's side, 0 or 1.
/// Identical rows give one side only; the caller falls back to a random half.
pub fn two_means<B: Backend>(x: &Tensor<B, 2>, rng: &mut impl Rng) -> Vec<usize> {
    let [n, _] = x.dims();
    if n < 2 {
        return vec![0; n];
    }
    let first = rng.random_range(0..n as u64) as usize;
    let device = x.device();
    let centre = x.clone().select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(vec![first as i64], [1]), &device));
    let (_, d2) = assign(x, &centre);
    let total: f64 = d2.iter().map(|&v| f64::from(v)).sum();
    let second = if total > 0.0 {
        let mut u = rng.random::<f64>() * total;
        d2.iter()
            .position(|&v| {
                u -= f64::from(v);
                u < 0.0
            })
            .unwrap_or(n - 1)
    } else {
        (first + 1) % n
    };
    match kmeans(x, 2, 20, &[first, second], rng) {
        Ok(r) => r.labels,
        Err(_) => vec![0; n],
    }
}

/// Samples per cluster (`np.bincount(labels, minlength=k)`).
pub fn histogram(labels: &[usize], k: usize) -> Vec<usize> {
    let mut h = vec![0usize; k];
    for &l in labels {
        h[l] += 1;
    }
    h
}

/// The clustering hooks' `set_reweight`: cluster `c` weighs `(1/(|c| + 1e-10))^pow`,
/// normalised to sum 1, in float32 as NumPy computes it from the `float32` histogram.
pub fn reweight(histogram: &[usize], pow: f64) -> Vec<f32> {
    let inv: Vec<f32> = histogram.iter().map(|&h| (1.0f32 / (h as f32 + 1e-10)).powf(pow as f32)).collect();
    let total: f32 = inv.iter().sum();
    inv.iter().map(|v| v / total).collect()
}

/// Normalised mutual information of two labelings of the same samples,
/// `I(a; b) / √(H(a)·H(b))` as the DeepCluster paper reports it between
/// consecutive epochs (1 when both are one cluster).
pub fn nmi(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len(), "two labelings of the same samples");
    let n = a.len() as f64;
    if a.is_empty() {
        return 1.0;
    }
    let mut joint = std::collections::HashMap::<(usize, usize), f64>::new();
    let (mut pa, mut pb) = (std::collections::HashMap::<usize, f64>::new(), std::collections::HashMap::<usize, f64>::new());
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_default() += 1.0;
        *pa.entry(x).or_default() += 1.0;
        *pb.entry(y).or_default() += 1.0;
    }
    let entropy = |p: &std::collections::HashMap<usize, f64>| -p.values().map(|c| c / n * (c / n).ln()).sum::<f64>();
    let mi: f64 = joint.iter().map(|(&(x, y), &c)| c / n * (c * n / (pa[&x] * pb[&y])).ln()).sum();
    let (ha, hb) = (entropy(&pa), entropy(&pb));
    if ha == 0.0 || hb == 0.0 {
        return if ha == hb { 1.0 } else { 0.0 };
    }
    (mi / (ha * hb).sqrt()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_of_identical_permuted_and_independent_labelings() {
        let a = [0, 0, 1, 1, 2, 2];
        assert!((nmi(&a, &a) - 1.0).abs() < 1e-12);
        assert!((nmi(&a, &[5, 5, 3, 3, 4, 4]) - 1.0).abs() < 1e-12, "cluster names do not matter");
        assert!(nmi(&[0, 1, 0, 1], &[0, 0, 1, 1]).abs() < 1e-12, "independent");
    }
}
