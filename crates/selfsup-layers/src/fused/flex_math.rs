//! `exp` and `erf` for the burn-flex kernels, written so that loops over
//! slices vectorise (no calls, no branches), and [`vectorized`] to compile
//! such a loop for the widest vector ISA the CPU has. The workspace builds
//! for baseline x86-64, where `f32::exp` and `libm::erff` are scalar calls
//! that took a tenth of a ViT step in softmax and GELU.
//!
//! Every ISA runs the same IEEE operations in the same order (no fused
//! multiply-adds are formed), so the values do not depend on the machine.

/// `e^x` for `x ≤ 0` (softmax's `x − max`, the Gaussians of GELU and
/// `erf`): Cephes' `expf` (a degree-6 polynomial on `x − n·ln 2`, then
/// `2ⁿ` through the exponent bits), within 2 ulp; 0 below −87.3, where
/// `e^x` leaves the normal range.
#[inline(always)]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest through the float adder: 1.5·2²³ pushes the fraction out.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33, 0.0);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23) as u32);
    if x < -87.33 {
        0.0
    } else {
        e * scale
    }
}

/// `erf(x)`: Abramowitz and Stegun's 7.1.26, `1 − t·P(t)·e^{−x²}` with
/// `t = 1 / (1 + 0.3275911·|x|)`: the formula's 1.5·10⁻⁷ plus float32
/// rounding, within 6·10⁻⁷ of `erf`; the formula of PyTorch's own
/// vectorised `erf` on x86.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    let v = 1.0 - poly * exp_nonpositive(-a * a);
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// `r = softmax(r)` in place: the maximum and the sum each over sixteen
/// lanes (so that they vectorise too), `e^{r − max}`, then the scaling.
#[inline(always)]
pub(super) fn softmax_row(r: &mut [f32]) {
    let mut peaks = [f32::NEG_INFINITY; 16];
    let mut chunks = r.chunks_exact(16);
    for c in &mut chunks {
        peaks.iter_mut().zip(c).for_each(|(p, &v)| *p = if v > *p { v } else { *p });
    }
    let max = peaks.iter().chain(chunks.remainder()).copied().fold(f32::NEG_INFINITY, f32::max);
    r.iter_mut().for_each(|v| *v = exp_nonpositive(*v - max));
    let mut lanes = [0f32; 16];
    let mut chunks = r.chunks_exact(16);
    for c in &mut chunks {
        lanes.iter_mut().zip(c).for_each(|(l, v)| *l += v);
    }
    let sum = lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    let inv = 1.0 / sum;
    r.iter_mut().for_each(|v| *v *= inv);
}

/// Runs `f` compiled for AVX-512 or AVX2 when the CPU has them (`f` and
/// the `#[inline(always)]` functions it calls are inlined into a function
/// with those target features, where LLVM vectorises their loops), else as
/// built.
#[inline(always)]
pub(super) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,avx,sse4.1")]
        unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma,avx,sse4.1")]
        unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU has every feature v4 is compiled for.
            return unsafe { v4(f) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above, for v3.
            return unsafe { v3(f) };
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_match_f64() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in 0..=200_000 {
            let x = -90.0 + 90.0 * i as f32 / 200_000.0;
            let reference = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            if x >= -87.33 {
                worst_exp = worst_exp.max((got - reference).abs() / reference);
            } else {
                assert!(got <= f64::from(f32::MIN_POSITIVE) * 2.0, "exp({x}) = {got}");
            }
            let y = -6.0 + 12.0 * i as f32 / 200_000.0;
            let reference = libm::erf(f64::from(y));
            worst_erf = worst_erf.max((f64::from(erf(y)) - reference).abs());
        }
        assert!(worst_exp < 3.0 * f64::from(f32::EPSILON), "exp: relative error {worst_exp:e}");
        assert!(worst_erf < 6e-7, "erf: absolute error {worst_erf:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert!(erf(0.0).abs() < 2e-7);
    }

    #[test]
    fn the_vectorized_build_gives_the_baseline_values() {
        let xs: Vec<f32> = (0..4096).map(|i| (i as f32 - 2048.0) * 0.013).collect();
        let plain: Vec<f32> = xs.iter().map(|&x| erf(x) + exp_nonpositive(-x.abs())).collect();
        let vector = vectorized(|| xs.iter().map(|&x| erf(x) + exp_nonpositive(-x.abs())).collect::<Vec<f32>>());
        assert_eq!(plain, vector);
    }
}
