//! Health measures of a representation, computed on a matrix of embeddings
//! (`[n, dim]` row-major): the signals solo-learn and lightly log during
//! pre-training to see a run improving or collapsing.
//!
//! - [`rankme`]: RankMe (Garrido et al., 2023), the effective rank of the
//!   embeddings, `exp(−Σ p_k log p_k)` with `p_k = σ_k / ‖σ‖₁ + ε` over the
//!   singular values `σ`. It ranges from 1 (every embedding on one line) to
//!   `min(n, dim)`, and tracks downstream accuracy without labels.
//! - [`embedding_std`]: lightly's `std_of_l2_normalized`, the standard
//!   deviation over samples of each dimension of the L2-normalised
//!   embeddings, averaged over dimensions. It falls to 0 when the
//!   embeddings collapse to one point, and sits near `1/√dim` when they
//!   spread over the sphere.
use nalgebra::{DMatrix, SymmetricEigen};

/// RankMe's `ε` (the paper's `1e-7`).
const RANKME_EPS: f64 = 1e-7;

/// The singular values of the `[n, dim]` matrix `x`, largest first: square
/// roots of the eigenvalues of the smaller Gram matrix (`x xᵀ` or `xᵀ x`),
/// accumulated and decomposed in `f64`.
pub fn singular_values(x: &[f32], n: usize, dim: usize) -> Vec<f64> {
    assert_eq!(x.len(), n * dim, "singular_values: {} values for [{n}, {dim}]", x.len());
    let (m, gram) = if n <= dim {
        // Rows against rows.
        let rows: Vec<Vec<f64>> = x.chunks(dim.max(1)).map(|r| r.iter().map(|&v| f64::from(v)).collect()).collect();
        let mut g = DMatrix::<f64>::zeros(n, n);
        for i in 0..n {
            for j in 0..=i {
                let s: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
                g[(i, j)] = s;
                g[(j, i)] = s;
            }
        }
        (n, g)
    } else {
        // Columns against columns, one pass over the rows.
        let mut g = DMatrix::<f64>::zeros(dim, dim);
        for r in x.chunks(dim) {
            let r: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            for i in 0..dim {
                if r[i] == 0.0 {
                    continue;
                }
                for j in 0..=i {
                    g[(i, j)] += r[i] * r[j];
                }
            }
        }
        for i in 0..dim {
            for j in 0..i {
                g[(j, i)] = g[(i, j)];
            }
        }
        (dim, g)
    };
    if m == 0 {
        return Vec::new();
    }
    let mut s: Vec<f64> = SymmetricEigen::new(gram).eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// RankMe of the `[n, dim]` embeddings `x` (see the module documentation);
/// 0 for an all-zero matrix.
pub fn rankme(x: &[f32], n: usize, dim: usize) -> f64 {
    let s = singular_values(x, n, dim);
    let l1: f64 = s.iter().sum();
    if l1 <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = s
        .iter()
        .map(|v| {
            let p = v / l1 + RANKME_EPS;
            -p * p.ln()
        })
        .sum();
    entropy.exp()
}

/// lightly's collapse signal of the `[n, dim]` embeddings `x`: rows
/// L2-normalised (`F.normalize`, `‖·‖` floored at `1e-12`), the unbiased
/// standard deviation of each column (`torch.std(dim=0)`), averaged.
/// `NaN` for fewer than two rows.
pub fn embedding_std(x: &[f32], n: usize, dim: usize) -> f64 {
    assert_eq!(x.len(), n * dim, "embedding_std: {} values for [{n}, {dim}]", x.len());
    if n < 2 || dim == 0 {
        return f64::NAN;
    }
    let mut sum = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for r in x.chunks(dim) {
        let norm = r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt().max(1e-12);
        for (j, &v) in r.iter().enumerate() {
            let v = f64::from(v) / norm;
            sum[j] += v;
            sq[j] += v * v;
        }
    }
    let n = n as f64;
    sum.iter().zip(&sq).map(|(s, q)| ((q - s * s / n) / (n - 1.0)).max(0.0).sqrt()).sum::<f64>() / dim as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_values_of_a_known_matrix_from_either_gram() {
        // diag(3, 2) padded with a zero row / column: singular values 3 and 2.
        let tall = [3.0, 0.0, 0.0, 2.0, 0.0, 0.0];
        let wide = [3.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        for (x, n, d) in [(&tall, 3, 2), (&wide, 2, 3)] {
            let s = singular_values(x, n, d);
            assert!((s[0] - 3.0).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12, "{s:?}");
        }
        // A rank-one matrix u vᵀ has one singular value ‖u‖·‖v‖.
        let (u, v) = ([1.0f32, 2.0, 2.0], [0.0f32, 3.0, 4.0, 0.0]);
        let x: Vec<f32> = u.iter().flat_map(|a| v.iter().map(move |b| a * b)).collect();
        let s = singular_values(&x, 3, 4);
        assert!((s[0] - 15.0).abs() < 1e-9 && s[1].abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn rankme_counts_equal_directions_and_sees_collapse() {
        // k orthogonal directions of equal length: RankMe ≈ k.
        for k in [1usize, 4, 16] {
            let dim = 16;
            let x: Vec<f32> = (0..k).flat_map(|i| (0..dim).map(move |j| if i == j { 2.5 } else { 0.0 })).collect();
            let r = rankme(&x, k, dim);
            assert!((r - k as f64).abs() < 1e-3 * k as f64, "k = {k}: {r}");
        }
        // Every row the same vector: rank one whatever n.
        let x: Vec<f32> = (0..64).flat_map(|_| [0.3f32, -1.0, 2.0, 0.5]).collect();
        assert!((rankme(&x, 64, 4) - 1.0).abs() < 1e-3);
        assert_eq!(rankme(&[0.0; 8], 2, 4), 0.0);
        // Unequal spectrum: entropy of p = (3/4, 1/4).
        let x = [3.0f32, 0.0, 0.0, 1.0];
        let expected = (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp();
        assert!((rankme(&x, 2, 2) - expected).abs() < 1e-5);
    }

    #[test]
    fn embedding_std_matches_a_direct_computation() {
        // Collapse: every row one direction (any length): 0.
        let x: Vec<f32> = (1..=10).flat_map(|s| [s as f32, 2.0 * s as f32, 0.0]).collect();
        assert!(embedding_std(&x, 10, 3).abs() < 1e-7);
        // ±e_j for every j: each column holds +1, −1 and zeros.
        let dim = 8;
        let x: Vec<f32> = (0..2 * dim)
            .flat_map(|i| {
                (0..dim).map(move |j| {
                    if i % dim == j {
                        if i < dim {
                            1.0
                        } else {
                            -1.0
                        }
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let n = 2 * dim;
        let expected = (2.0 / (n as f64 - 1.0)).sqrt();
        assert!((embedding_std(&x, n, dim) - expected).abs() < 1e-12);
        assert!(embedding_std(&[1.0, 2.0], 1, 2).is_nan());
    }
}
