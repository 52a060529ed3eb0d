//! 2-D convolution with one group (float32) on burn-flex as one autodiff
//! operation, computed as PyTorch's own CPU fallback does: per image,
//! `col = im2col(x)` and `y = W·col`; backward, `dW = Σ dy·colᵀ` (the
//! columns rebuilt from the saved input) and `dx = col2im(Wᵀ·dy)`. A 1×1,
//! stride-1, unpadded convolution uses the image itself as its columns.
//!
//! burn-flex's convolution turns the input to NHWC on one thread and
//! scatters 512-pixel tiles of the product back, and burn's default
//! gradients run a transposed convolution and a convolution whose kernel is
//! the output gradient, whose thin products took most of a ResNet-50
//! backward pass. Here each image is one task on the cores with one `gemm`
//! call per product, or, with fewer images than cores, the products
//! themselves run in parallel.
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{binary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::flex_gemm::{gemm, tensor, Dst, SharedPtr};
use super::Conv2dGeometry;

/// The sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    g: Conv2dGeometry,
}

impl Dims {
    fn new(x: &[usize], w: &[usize], g: Conv2dGeometry) -> Self {
        let [top, left, bottom, right] = g.padding;
        let out = |n: usize, k: usize, s: usize, d: usize, p: usize| (n + p - d * (k - 1) - 1) / s + 1;
        Self {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            co: w[0],
            kh: w[2],
            kw: w[3],
            oh: out(x[2], w[2], g.stride[0], g.dilation[0], top + bottom),
            ow: out(x[3], w[3], g.stride[1], g.dilation[1], left + right),
            g,
        }
    }
    /// Rows of the columns: `c · kh · kw`.
    fn k(self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output pixels per image.
    fn p(self) -> usize {
        self.oh * self.ow
    }
    /// Input elements per image.
    fn image(self) -> usize {
        self.c * self.h * self.w
    }
    /// Whether the image is its own column matrix.
    fn direct(self) -> bool {
        self.kh == 1 && self.kw == 1 && self.g.stride == [1, 1] && self.g.padding == [0; 4]
    }
}

/// Calls `visit(xs, ys, step)` for every stretch of an output row that
/// reads the input, for every column row (channel, kernel tap): `xs` the
/// input indices within the image (every `step`-th), `ys` the column
/// indices. The stretches are the same for every image, and the column
/// entries they miss read padding. `im2col` and `col2im` are this walk in
/// opposite directions.
fn walk(d: Dims, mut visit: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>, usize)) {
    let [sh, sw] = d.g.stride;
    let [dh, dw] = d.g.dilation;
    let [top, left, ..] = d.g.padding;
    for ch in 0..d.c {
        for i in 0..d.kh {
            for j in 0..d.kw {
                let row = (ch * d.kh + i) * d.kw + j;
                // Output columns whose input column ox·sw + j·dw − left lies in [0, w).
                let off = (j * dw) as isize - left as isize;
                let lo = ((-off).max(0) as usize).div_ceil(sw).min(d.ow);
                let hi = ((d.w as isize - off).max(0) as usize).div_ceil(sw).min(d.ow).max(lo);
                if lo == hi {
                    continue;
                }
                let first = (lo as isize * sw as isize + off) as usize;
                let span = (hi - lo - 1) * sw + 1;
                for oy in 0..d.oh {
                    let iy = (oy * sh + i * dh) as isize - top as isize;
                    if iy < 0 || iy >= d.h as isize {
                        continue;
                    }
                    let x0 = ch * d.h * d.w + iy as usize * d.w + first;
                    let y0 = row * d.p() + oy * d.ow;
                    visit(x0..x0 + span, y0 + lo..y0 + hi, sw);
                }
            }
        }
    }
}

/// `col[k × p]` of one image `x`. The padding entries are zeroed when
/// `col` is made and never written, so a scratch buffer is reused as is.
fn im2col(x: &[f32], d: Dims, col: &mut Vec<f32>) {
    if col.len() != d.k() * d.p() {
        col.clear();
        col.resize(d.k() * d.p(), 0.0);
    }
    walk(d, |xs, ys, step| {
        if step == 1 {
            col[ys].copy_from_slice(&x[xs]);
        } else {
            col[ys].iter_mut().zip(x[xs].iter().step_by(step)).for_each(|(c, &v)| *c = v);
        }
    });
}

/// `dx += col2im(dcol)` for one image.
fn col2im(dcol: &[f32], d: Dims, dx: &mut [f32]) {
    walk(d, |xs, ys, step| {
        if step == 1 {
            dx[xs].iter_mut().zip(&dcol[ys]).for_each(|(g, &v)| *g += v);
        } else {
            dx[xs].iter_mut().step_by(step).zip(&dcol[ys]).for_each(|(g, &v)| *g += v);
        }
    });
}

/// Runs `f(image, scratch, parallel)` for every image: the images spread
/// over the cores when there are at least as many as threads, else one
/// after the other with each product parallel.
fn per_image(n: usize, f: impl Fn(usize, &mut Vec<f32>, bool) + Sync) {
    if n >= rayon::current_num_threads() {
        (0..n).into_par_iter().for_each_init(Vec::new, |scratch, b| f(b, scratch, false));
    } else {
        let mut scratch = Vec::new();
        (0..n).for_each(|b| f(b, &mut scratch, true));
    }
}

/// `y[n, co, oh, ow]`.
fn forward(x: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    let (k, p) = (d.k(), d.p());
    let mut y = vec![0f32; d.n * d.co * p];
    let out = SharedPtr(y.as_mut_ptr());
    per_image(d.n, |b, col, parallel| {
        let xb = &x[b * d.image()..][..d.image()];
        let cols = if d.direct() {
            xb
        } else {
            im2col(xb, d, col);
            &col[..]
        };
        // SAFETY: W is co×k, the columns k×p, and image b's output block co×p is this task's alone.
        unsafe {
            gemm(
                (d.co, p, k),
                out.get().add(b * d.co * p),
                (p, 1),
                w.as_ptr(),
                (k, 1),
                cols.as_ptr(),
                (p, 1),
                1.0,
                Dst::Overwrite,
                parallel,
            )
        };
    });
    y
}

/// `dx[n, c, h, w]` from `dy`.
fn grad_input(dy: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    let (k, p) = (d.k(), d.p());
    let mut dx = vec![0f32; d.n * d.image()];
    let out = SharedPtr(dx.as_mut_ptr());
    per_image(d.n, |b, dcol, parallel| {
        let g = dy[b * d.co * p..].as_ptr();
        // SAFETY: image b's block of dx is this task's alone; Wᵀ is k×co through W's strides, dy's block co×p.
        unsafe {
            let dxb = out.get().add(b * d.image());
            if d.direct() {
                gemm((k, p, d.co), dxb, (p, 1), w.as_ptr(), (1, k), g, (p, 1), 1.0, Dst::Overwrite, parallel);
            } else {
                dcol.resize(k * p, 0.0);
                gemm((k, p, d.co), dcol.as_mut_ptr(), (p, 1), w.as_ptr(), (1, k), g, (p, 1), 1.0, Dst::Overwrite, parallel);
                col2im(dcol, d, std::slice::from_raw_parts_mut(dxb, d.image()));
            }
        }
    });
    dx
}

/// `dW[co, c, kh, kw] = Σ_images dy·colᵀ`: each core sums a share of the
/// images into its own buffer, then the buffers are added.
fn grad_weight(x: &[f32], dy: &[f32], d: Dims) -> Vec<f32> {
    let (k, p) = (d.k(), d.p());
    let share = |images: std::ops::Range<usize>, parallel: bool| {
        let mut dw = vec![0f32; d.co * k];
        let mut col = Vec::new();
        for b in images {
            let xb = &x[b * d.image()..][..d.image()];
            let cols = if d.direct() {
                xb
            } else {
                im2col(xb, d, &mut col);
                &col[..]
            };
            // SAFETY: dy's block is co×p, colᵀ is p×k through the columns' strides, dw co×k is local.
            unsafe {
                gemm(
                    (d.co, k, p),
                    dw.as_mut_ptr(),
                    (k, 1),
                    dy[b * d.co * p..].as_ptr(),
                    (p, 1),
                    cols.as_ptr(),
                    (1, p),
                    1.0,
                    Dst::Accumulate,
                    parallel,
                )
            };
        }
        dw
    };
    let tasks = rayon::current_num_threads().min(d.n).max(1);
    if tasks == 1 {
        return share(0..d.n, true);
    }
    let per = d.n.div_ceil(tasks);
    let shares: Vec<Vec<f32>> = (0..tasks).into_par_iter().map(|t| share(t * per..((t + 1) * per).min(d.n), false)).collect();
    let mut shares = shares.into_iter();
    let mut dw = shares.next().expect("one share at least");
    for s in shares {
        dw.par_chunks_mut(1 << 14).zip(s.par_chunks(1 << 14)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    }
    dw
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    /// The input and weight (contiguous) and the sizes.
    type State = (FlexTensor, FlexTensor, Dims);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (x, w, d) = ops.state;
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            |dy| {
                let dy = dy.to_contiguous();
                let dx = grad_input(dy.as_slice::<f32>().expect("float32"), w.as_slice::<f32>().expect("float32"), d);
                tensor(dx, vec![d.n, d.c, d.h, d.w])
            },
            |dy| {
                let dy = dy.to_contiguous();
                let dw = grad_weight(x.as_slice::<f32>().expect("float32"), dy.as_slice::<f32>().expect("float32"), d);
                tensor(dw, vec![d.co, d.c, d.kh, d.kw])
            },
        );
    }
}

fn run(x: &FlexTensor, w: &FlexTensor, g: Conv2dGeometry) -> (FlexTensor, Dims) {
    let d = Dims::new(x.layout().shape(), w.layout().shape(), g);
    let y = forward(x.as_slice::<f32>().expect("float32"), w.as_slice::<f32>().expect("float32"), d);
    (tensor(y, vec![d.n, d.co, d.oh, d.ow]), d)
}

/// The convolution of `x` `[n, c, h, w]` by `weight` `[co, c, kh, kw]`.
pub(crate) fn conv2d_autodiff(
    x: Tensor<Autodiff<Flex>, 4>,
    weight: Tensor<Autodiff<Flex>, 4>,
    g: Conv2dGeometry,
) -> Tensor<Autodiff<Flex>, 4> {
    let x = x.into_primitive().tensor();
    let w = weight.into_primitive().tensor();
    let (xc, wc) = (x.primitive.to_contiguous(), w.primitive.to_contiguous());
    let (y, d) = run(&xc, &wc, g);
    let out = match ConvBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((xc, wc, d), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// The convolution without autodiff.
pub(crate) fn conv2d_inner(x: Tensor<Flex, 4>, weight: Tensor<Flex, 4>, g: Conv2dGeometry) -> Tensor<Flex, 4> {
    let x = x.into_primitive().tensor().to_contiguous();
    let w = weight.into_primitive().tensor().to_contiguous();
    Tensor::from_primitive(TensorPrimitive::Float(run(&x, &w, g).0))
}
