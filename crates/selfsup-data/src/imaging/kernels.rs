//! Building blocks shared by the Pillow ports: a tiled transpose, and [`avx2_dispatch!`],
//! which compiles a kernel a second time for AVX2 and picks that version at run time when the
//! CPU has it.
//!
//! The crate builds for the baseline `x86_64` target (SSE2), where a vectorised 32-bit
//! integer multiply (the fixed-point arithmetic of Pillow's filters) takes several
//! instructions; AVX2 has it as one, over twice the lanes. The kernels are plain Rust loops
//! written so that the compiler vectorises them for either target: same code, same results.

/// Defines `$vis fn $name(args) -> ret`, which runs `$imp` (an `#[inline(always)]` function
/// with the same signature) compiled with AVX2 enabled when the CPU supports it, and as
/// compiled for the baseline target otherwise.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: calling a `#[target_feature]` function is unsafe only because
                    // the CPU might lack the feature; it has AVX2 (checked just above), and
                    // `avx2` is otherwise the safe `$imp`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}
pub(crate) use avx2_dispatch;

/// Writes the transpose of a `w × h` image of `c`-byte pixels into `dst` (`w` rows of `h`
/// pixels, `h · c` bytes each). Row `y` of the source is `src[y · stride ..][.. w · c]`,
/// so `src` may be a window of a wider image.
///
/// Works in square tiles, so that the rows being read and those being written stay in cache.
pub(crate) fn transpose(src: &[u8], stride: usize, w: usize, h: usize, c: usize, dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), w * h * c);
    match c {
        1 => transpose_px::<1>(src, stride, w, h, dst),
        3 => transpose_px::<3>(src, stride, w, h, dst),
        4 => transpose_px::<4>(src, stride, w, h, dst),
        _ => {
            for y in 0..h {
                for x in 0..w {
                    let (s, d) = (y * stride + x * c, (x * h + y) * c);
                    dst[d..d + c].copy_from_slice(&src[s..s + c]);
                }
            }
        }
    }
}

fn transpose_px<const C: usize>(src: &[u8], stride: usize, w: usize, h: usize, dst: &mut [u8]) {
    // 32 × 32 pixels measured faster than 8 or 16 (500 × 375 RGB, 1 core), and going
    // through a small buffer faster than writing the destination pixel by pixel: its rows
    // are then written whole.
    const TILE: usize = 32;
    let mut tile = [[[0u8; C]; TILE]; TILE];
    for y0 in (0..h).step_by(TILE) {
        let ny = (h - y0).min(TILE);
        for x0 in (0..w).step_by(TILE) {
            let nx = (w - x0).min(TILE);
            for j in 0..ny {
                let row = &src[(y0 + j) * stride + x0 * C..][..nx * C];
                for (column, px) in tile.iter_mut().zip(row.as_chunks::<C>().0) {
                    column[j] = *px;
                }
            }
            for (i, column) in tile.iter().enumerate().take(nx) {
                let d = ((x0 + i) * h + y0) * C;
                dst[d..d + ny * C].copy_from_slice(column[..ny].as_flattened());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_of_a_window_matches_the_definition() {
        for c in 1..=5 {
            for (w, h) in [(1, 1), (3, 17), (17, 3), (33, 40)] {
                // A window at (2, 1) of a (w + 5) × (h + 2) image.
                let (full_w, left, top) = (w + 5, 2, 1);
                let stride = full_w * c;
                let full: Vec<u8> = (0..stride * (h + 2)).map(|i| (i * 7 % 251) as u8).collect();
                let src = &full[top * stride + left * c..];
                let mut dst = vec![0; w * h * c];
                transpose(src, stride, w, h, c, &mut dst);
                for y in 0..h {
                    for x in 0..w {
                        for k in 0..c {
                            assert_eq!(dst[(x * h + y) * c + k], src[y * stride + x * c + k], "{w}x{h}x{c} at ({x}, {y})");
                        }
                    }
                }
            }
        }
    }
}
