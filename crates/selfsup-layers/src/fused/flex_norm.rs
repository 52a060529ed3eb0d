//! Training-mode BatchNorm and LayerNorm on burn-flex, each as one autodiff
//! operation.
//!
//! burn composes BatchNorm from about fifteen element-wise operations
//! forward and thirty backward, most of them single-threaded on burn-flex,
//! each a full pass over the activation. Here the forward is two passes
//! (per-channel statistics, then `y = x·a + b` with `a = w/σ`,
//! `b = β − μ·a`) and the backward two (per-channel `Σ dy` and
//! `Σ dy·(x − μ)`, then `dx`), spread over the cores by channel and by
//! `(sample, channel)` plane. LayerNorm (about ten operations forward and
//! twenty backward under autodiff) is one pass each way over rows spread
//! over the cores, the scale and shift gradients summed per task. Sums run
//! in `f64` over eight lanes.
use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// `Σ xs` in `f64`, eight lanes (vectorisable).
fn sum(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f64::from(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f64::from(v);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ (xs − m)²` in `f64`, eight lanes.
fn sum_sq_dev(xs: &[f32], m: f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| (f64::from(v) - m).powi(2)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            let d = f64::from(v) - m;
            *a += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `(Σ dy, Σ dy·(x − m))` in `f64`, eight lanes.
fn sums_dy(dy: &[f32], xs: &[f32], m: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let (cd, cx) = (dy.chunks_exact(8), xs.chunks_exact(8));
    let (mut ta, mut tb) = (0f64, 0f64);
    for (&g, &v) in cd.remainder().iter().zip(cx.remainder()) {
        ta += f64::from(g);
        tb += f64::from(g) * (f64::from(v) - m);
    }
    for (g8, x8) in cd.zip(cx) {
        for i in 0..8 {
            a[i] += f64::from(g8[i]);
            b[i] += f64::from(g8[i]) * (f64::from(x8[i]) - m);
        }
    }
    (a.iter().sum::<f64>() + ta, b.iter().sum::<f64>() + tb)
}

/// `[N, C, S]` sizes of a `[N, C, ...]` shape.
fn ncs(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

/// Per-channel `f(plane_0, …, plane_{N−1})` folded with `+`, channels in parallel.
fn per_channel<T: Send + Copy + std::ops::Add<Output = T> + Default>(
    x: &[f32],
    (n, c, s): (usize, usize, usize),
    f: impl Fn(usize, &[f32]) -> T + Sync,
) -> Vec<T> {
    (0..c).into_par_iter().map(|ch| (0..n).fold(T::default(), |acc, b| acc + f(ch, &x[(b * c + ch) * s..][..s]))).collect()
}

/// Batch mean and biased variance per channel.
fn stats(x: &[f32], dims: (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let m = (dims.0 * dims.2) as f64;
    let mean: Vec<f64> = per_channel(x, dims, |_, p| sum(p)).into_iter().map(|v| v / m).collect();
    let var = per_channel(x, dims, |ch, p| sum_sq_dev(p, mean[ch])).into_iter().map(|v| v / m).collect();
    (mean, var)
}

fn f32_tensor(values: impl IntoIterator<Item = f64>) -> FlexTensor {
    let v: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    let n = v.len();
    FlexTensor::from_data(burn::tensor::TensorData::new(v, [n]))
}

/// `y = x·a_c + b_c` per `(sample, channel)` plane.
fn affine(x: &[f32], shape: Shape, (_, c, s): (usize, usize, usize), a: &[f32], b: &[f32]) -> FlexTensor {
    let mut y = FlexTensor::empty(shape, DType::F32);
    y.storage_mut::<f32>().par_chunks_mut(s.max(1)).zip(x.par_chunks(s.max(1))).enumerate().for_each(|(i, (yp, xp))| {
        let (a, b) = (a[i % c], b[i % c]);
        yp.iter_mut().zip(xp).for_each(|(y, &x)| *y = x * a + b);
    });
    y
}

/// Forward: the output, the batch mean and biased variance (as `f64`), and
/// `1/σ` per channel.
fn forward(x: &FlexTensor, w: &[f32], bias: &[f32], eps: f64) -> (FlexTensor, Vec<f64>, Vec<f64>, Vec<f32>) {
    let dims = ncs(x.layout().shape().as_slice());
    let xs = x.as_slice::<f32>().expect("contiguous float32");
    let (mean, var) = stats(xs, dims);
    let rstd: Vec<f32> = var.iter().map(|v| (1.0 / (v + eps).sqrt()) as f32).collect();
    let a: Vec<f32> = w.iter().zip(&rstd).map(|(w, r)| w * r).collect();
    let b: Vec<f32> = bias.iter().zip(a.iter().zip(&mean)).map(|(b, (a, m))| b - *m as f32 * a).collect();
    let y = affine(xs, x.layout().shape().clone(), dims, &a, &b);
    (y, mean, var, rstd)
}

#[derive(Debug)]
struct BatchNormBackward;

/// What the backward pass needs: `x` (contiguous), the scale `w`, and the
/// batch mean and `1/σ` per channel.
type State = (FlexTensor, Vec<f32>, Vec<f64>, Vec<f32>);

impl Backward<Flex, 3> for BatchNormBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x, w, mean, rstd) = ops.state;
        let (n, c, s) = ncs(x.layout().shape().as_slice());
        let (xs, dys) = (x.as_slice::<f32>().expect("contiguous"), dy.as_slice::<f32>().expect("contiguous"));
        // Σ dy and Σ dy·(x − μ) per channel.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                (0..n).fold((0.0, 0.0), |(a, b), bi| {
                    let o = (bi * c + ch) * s;
                    let (da, db) = sums_dy(&dys[o..o + s], &xs[o..o + s], mean[ch]);
                    (a + da, b + db)
                })
            })
            .collect();
        let m = (n * s) as f64;
        if let Some(node) = node_x {
            // dx = w/σ · (dy − Σdy/M − (x − μ)/σ² · Σdy(x − μ)/M), as k·dy + p·x + q.
            let mut k = vec![0f32; c];
            let mut p = vec![0f32; c];
            let mut q = vec![0f32; c];
            for ch in 0..c {
                let r = f64::from(rstd[ch]);
                let kk = f64::from(w[ch]) * r;
                let (sdy, sdyx) = sums[ch];
                let pp = -kk * r * r * sdyx / m;
                k[ch] = kk as f32;
                p[ch] = pp as f32;
                q[ch] = (-kk * sdy / m - pp * mean[ch]) as f32;
            }
            let mut dx = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
            dx.storage_mut::<f32>().par_chunks_mut(s.max(1)).enumerate().for_each(|(i, out)| {
                let ch = i % c;
                let o = i * s;
                for ((d, &g), &v) in out.iter_mut().zip(&dys[o..o + s]).zip(&xs[o..o + s]) {
                    *d = k[ch] * g + p[ch] * v + q[ch];
                }
            });
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, f32_tensor(sums.iter().zip(&rstd).map(|((_, b), r)| b * f64::from(*r))));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, f32_tensor(sums.iter().map(|(a, _)| *a)));
        }
    }
}

fn vec_of(t: FlexTensor) -> Vec<f32> {
    t.to_contiguous().as_slice::<f32>().expect("float32").to_vec()
}

type A = Autodiff<Flex>;

/// Training-mode BatchNorm of `x` `[N, C, ...]`: the output and the batch
/// mean and biased variance (detached).
#[allow(clippy::type_complexity)]
pub(crate) fn batch_norm_autodiff<const D: usize>(
    x: Tensor<A, D>,
    w: Tensor<A, 1>,
    b: Tensor<A, 1>,
    eps: f64,
) -> (Tensor<A, D>, Tensor<A, 1>, Tensor<A, 1>) {
    let (x, w, b) = (x.into_primitive().tensor(), w.into_primitive().tensor(), b.into_primitive().tensor());
    let xc = x.primitive.to_contiguous();
    let (wv, bv) = (vec_of(w.primitive.clone()), vec_of(b.primitive.clone()));
    let (y, mean, var, rstd) = forward(&xc, &wv, &bv, eps);
    let out =
        match BatchNormBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xc, wv, mean.clone(), rstd), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
    let stat = |v: Vec<f64>| Tensor::<A, 1>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(f32_tensor(v))));
    (Tensor::from_primitive(TensorPrimitive::Float(out)), stat(mean), stat(var))
}

// ------------------------------------------------------------------ LayerNorm

/// Rows per parallel task for rows of `n`: about 32 K elements a task.
fn rows_per_task(n: usize) -> usize {
    ((1 << 15) / n.max(1)).max(1)
}

/// LayerNorm over the last dimension: the output and each row's mean and
/// `1/σ`.
fn ln_forward(x: &FlexTensor, g: &[f32], b: Option<&[f32]>, eps: f64) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let n = g.len();
    let xs = x.as_slice::<f32>().expect("contiguous float32");
    let rows = xs.len() / n.max(1);
    let mut y = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
    let (mut mean, mut rstd) = (vec![0f32; rows], vec![0f32; rows]);
    let chunk = rows_per_task(n);
    y.storage_mut::<f32>()
        .par_chunks_mut(chunk * n)
        .zip(xs.par_chunks(chunk * n))
        .zip(mean.par_chunks_mut(chunk).zip(rstd.par_chunks_mut(chunk)))
        .for_each(|((ys, xs), (ms, rs))| {
            for (((y, x), m), r) in ys.chunks_mut(n).zip(xs.chunks(n)).zip(ms).zip(rs) {
                let mu = sum(x) / n as f64;
                let rv = 1.0 / (sum_sq_dev(x, mu) / n as f64 + eps).sqrt();
                let (mu32, r32) = (mu as f32, rv as f32);
                match b {
                    Some(b) => y.iter_mut().zip(x).zip(g.iter().zip(b)).for_each(|((y, &x), (&g, &b))| *y = (x - mu32) * r32 * g + b),
                    None => y.iter_mut().zip(x).zip(g).for_each(|((y, &x), &g)| *y = (x - mu32) * r32 * g),
                }
                (*m, *r) = (mu32, r32);
            }
        });
    (y, mean, rstd)
}

#[derive(Debug)]
struct LayerNormBackward;

/// `x` (contiguous), `γ`, and each row's mean and `1/σ`.
type LnState = (FlexTensor, Vec<f32>, Vec<f32>, Vec<f32>);

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x, g, mean, rstd) = ops.state;
        let n = g.len();
        let (xs, dys) = (x.as_slice::<f32>().expect("contiguous"), dy.as_slice::<f32>().expect("contiguous"));
        let chunk = rows_per_task(n);
        let mut dx = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
        // Per task: dx of its rows, and partial Σ dy·x̂ and Σ dy per column.
        let partials: Vec<(Vec<f64>, Vec<f64>)> = dx
            .storage_mut::<f32>()
            .par_chunks_mut(chunk * n)
            .zip(xs.par_chunks(chunk * n).zip(dys.par_chunks(chunk * n)))
            .zip(mean.par_chunks(chunk).zip(rstd.par_chunks(chunk)))
            .map(|((dxs, (xs, dys)), (ms, rs))| {
                let (mut dg, mut db) = (vec![0f64; n], vec![0f64; n]);
                let mut xhat = vec![0f32; n];
                for ((((d, x), dy), &m), &r) in dxs.chunks_mut(n).zip(xs.chunks(n)).zip(dys.chunks(n)).zip(ms).zip(rs) {
                    let (mut c1, mut c2) = (0f64, 0f64);
                    for j in 0..n {
                        xhat[j] = (x[j] - m) * r;
                        let gd = f64::from(dy[j] * g[j]);
                        c1 += gd;
                        c2 += gd * f64::from(xhat[j]);
                        dg[j] += f64::from(dy[j]) * f64::from(xhat[j]);
                        db[j] += f64::from(dy[j]);
                    }
                    let (c1, c2) = ((c1 / n as f64) as f32, (c2 / n as f64) as f32);
                    for j in 0..n {
                        d[j] = r * (dy[j] * g[j] - c1 - xhat[j] * c2);
                    }
                }
                (dg, db)
            })
            .collect();
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        // Column sums of the tasks' partial Σ dy·x̂ (`k = 0`) or Σ dy (`k = 1`).
        let total = |k: usize| f32_tensor((0..n).map(|j| partials.iter().map(|p| if k == 0 { p.0[j] } else { p.1[j] }).sum::<f64>()));
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, total(0));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, total(1));
        }
    }
}

/// LayerNorm over the last dimension of `x` with scale `g` and shift `b`.
pub(crate) fn layer_norm_autodiff<const D: usize>(x: Tensor<A, D>, g: Tensor<A, 1>, b: Tensor<A, 1>, eps: f64) -> Tensor<A, D> {
    let (x, g, b) = (x.into_primitive().tensor(), g.into_primitive().tensor(), b.into_primitive().tensor());
    let xc = x.primitive.to_contiguous();
    let (gv, bv) = (vec_of(g.primitive.clone()), vec_of(b.primitive.clone()));
    let (y, mean, rstd) = ln_forward(&xc, &gv, Some(&bv), eps);
    let out =
        match LayerNormBackward.prepare::<NoCheckpointing>([x.node.clone(), g.node.clone(), b.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xc, gv, mean, rstd), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
