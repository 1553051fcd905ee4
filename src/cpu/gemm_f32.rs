//! Fast float32 convolutions on the CPU through the `gemm` crate (packed, cache-blocked,
//! SIMD-dispatched micro-kernels). The 3×3 conv works on a zero-padded copy of its inputs with the
//! output laid out at the padded row width, so every (channel, tap) row of im2col is one
//! contiguous run of the padded input; threads split the output columns into tiles whose im2col
//! slice (~1 MiB) is built on the fly, so no whole im2col matrix ever exists, and the skip
//! concatenation is two inputs, never built.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::SendPtr;
use crate::model::ConvWeights;
use crate::tensor::Tensor;

/// Elements of a tile's im2col slice (per thread task): about 1 MiB, to stay in L2.
const TILE_ELEMS: usize = 1 << 18;

/// One image's channels copied into a zero border of 1 pixel, plus 2 trailing zeros so the
/// shifted views of the last (junk) columns stay inside the buffer.
fn pad(x: &Tensor, n: usize) -> Vec<f32> {
    let [_, c, h, w] = x.shape;
    let (ph, pw) = (h + 2, w + 2);
    let mut p = vec![0f32; c * ph * pw + 2];
    p[..c * ph * pw]
        .par_chunks_mut(ph * pw)
        .enumerate()
        .for_each(|(ci, plane)| {
            let src = x.plane(n, ci);
            for y in 0..h {
                let o = (y + 1) * pw + 1;
                plane[o..o + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
        });
    p
}

/// 3×3 conv, padding 1, over the channels of `a` then `b`; `w`: `[cout, ca + cb, 3, 3]`.
pub fn conv3x3(a: &Tensor, b: Option<&Tensor>, w: &ConvWeights, relu: bool) -> Tensor {
    let [nb, ca, h, wd] = a.shape;
    let cb = b.map_or(0, |b| b.c());
    let [cout, cin, _, _] = w.shape;
    assert_eq!(cin, ca + cb, "conv3x3 weight shape");
    let (ph, pw) = (h + 2, wd + 2);
    let ncols = h * pw;
    let k = 9 * cin;
    // Columns per tile: its im2col slice (k × tile) stays around 1 MiB.
    let mut tile = (TILE_ELEMS / k).max(64).min(ncols);
    // Few columns (deep, small layers): one tile, and the GEMM itself splits the output rows
    // across threads, rather than packing the large weight matrix once per tile.
    let few = ncols.div_ceil(tile) < 2 * rayon::current_num_threads();
    if few {
        tile = ncols;
    }
    let par = if few {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let mut out = Tensor::zeros([nb, cout, h, wd]);
    for n in 0..nb {
        let padded: Vec<(Vec<f32>, usize)> = std::iter::once((pad(a, n), ca))
            .chain(b.map(|b| (pad(b, n), cb)))
            .collect();
        // C [cout × h·pw], starting at the bias.
        let mut acc = vec![0f32; cout * ncols];
        for co in 0..cout {
            acc[co * ncols..(co + 1) * ncols].fill(w.bias.as_ref().map_or(0.0, |bs| bs[co]));
        }
        let dst = SendPtr(acc.as_mut_ptr());
        (0..ncols.div_ceil(tile)).into_par_iter().for_each(|t| {
            let (j0, j1) = (t * tile, ((t + 1) * tile).min(ncols));
            let cols = j1 - j0;
            // im2col of this tile, rows (ci, tap) in the weights' order: each row is one
            // contiguous run of the padded input.
            let mut b = vec![0f32; k * cols];
            let mut row = 0;
            for (p, c) in &padded {
                for ci in 0..*c {
                    for tap in 0..9 {
                        let s = ci * ph * pw + (tap / 3) * pw + tap % 3 + j0;
                        b[row * cols..(row + 1) * cols].copy_from_slice(&p[s..s + cols]);
                        row += 1;
                    }
                }
            }
            // SAFETY: every task writes columns j0..j1 of `acc` only; `lhs` is the weight
            // tensor [cout × 9·cin] as stored, `rhs` the k × cols slice just built.
            unsafe {
                gemm(
                    cout,
                    cols,
                    k,
                    dst.at(j0),
                    1,
                    ncols as isize,
                    true,
                    w.weight.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    cols as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        });
        // Drop the 2 junk columns per row; ReLU.
        out.data[n * cout * h * wd..(n + 1) * cout * h * wd]
            .par_chunks_mut(h * wd)
            .enumerate()
            .for_each(|(co, o)| {
                for y in 0..h {
                    let src = &acc[co * ncols + y * pw..][..wd];
                    for (d, s) in o[y * wd..(y + 1) * wd].iter_mut().zip(src) {
                        *d = if relu { s.max(0.0) } else { *s };
                    }
                }
            });
    }
    out
}

/// ConvTranspose2d(kernel 2, stride 2) with bias: one GEMM per tap, scattered to its pixels.
pub fn upconv2x2(x: &Tensor, w: &ConvWeights) -> Tensor {
    let [nb, cin, h, wd] = x.shape;
    let [_, cout, _, _] = w.shape;
    let bias = w.bias.as_ref().expect("transposed conv has a bias");
    let (oh, ow) = (2 * h, 2 * wd);
    let hw = h * wd;
    let mut out = Tensor::zeros([nb, cout, oh, ow]);
    let mut tap_out = vec![0f32; cout * hw];
    for n in 0..nb {
        let src = &x.data[n * cin * hw..(n + 1) * cin * hw];
        for tap in 0..4 {
            // lhs[co][ci] = w[ci][co][tap]: strides straight into PyTorch's layout.
            unsafe {
                gemm(
                    cout,
                    hw,
                    cin,
                    tap_out.as_mut_ptr(),
                    1,
                    hw as isize,
                    false,
                    w.weight.as_ptr().add(tap),
                    (cout * 4) as isize,
                    4,
                    src.as_ptr(),
                    1,
                    hw as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::Rayon(0),
                );
            }
            let (dy, dx) = (tap / 2, tap % 2);
            out.data[n * cout * oh * ow..(n + 1) * cout * oh * ow]
                .par_chunks_mut(oh * ow)
                .enumerate()
                .for_each(|(co, o)| {
                    let t = &tap_out[co * hw..(co + 1) * hw];
                    for y in 0..h {
                        let row = &mut o[(2 * y + dy) * ow..(2 * y + dy + 1) * ow];
                        for xx in 0..wd {
                            row[2 * xx + dx] = t[y * wd + xx] + bias[co];
                        }
                    }
                });
        }
    }
    out
}

/// 1×1 conv with bias: one GEMM per image.
pub fn conv1x1(x: &Tensor, w: &ConvWeights) -> Tensor {
    let [nb, cin, h, wd] = x.shape;
    let cout = w.shape[0];
    let bias = w.bias.as_ref().expect("head conv has a bias");
    let hw = h * wd;
    let mut out = Tensor::zeros([nb, cout, h, wd]);
    for n in 0..nb {
        let o = &mut out.data[n * cout * hw..(n + 1) * cout * hw];
        for co in 0..cout {
            o[co * hw..(co + 1) * hw].fill(bias[co]);
        }
        unsafe {
            gemm(
                cout,
                hw,
                cin,
                o.as_mut_ptr(),
                1,
                hw as isize,
                true,
                w.weight.as_ptr(),
                1,
                cin as isize,
                x.data.as_ptr().add(n * cin * hw),
                1,
                hw as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::generic;

    fn t(shape: [usize; 4], seed: u32) -> Tensor {
        let data = (0..shape.iter().product::<usize>())
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                    / (1 << 24) as f32
                    - 0.5
            })
            .collect();
        Tensor { shape, data }
    }

    fn close(a: &Tensor, b: &Tensor) {
        let (d, m) = a.max_abs_diff(b);
        assert!(d <= 1e-5 * m.max(1.0), "max diff {d} vs max {m}");
    }

    #[test]
    fn gemm_kernels_match_generic() {
        for (shape, cb, cout) in [
            ([2, 3, 5, 7], 0, 5),
            ([1, 6, 9, 4], 5, 8),
            ([1, 17, 13, 11], 3, 33),
        ] {
            let a = t(shape, 1);
            let b = t([shape[0], cb, shape[2], shape[3]], 2);
            let cin = shape[1] + cb;
            let w = ConvWeights {
                shape: [cout, cin, 3, 3],
                weight: t([cout, cin, 3, 3], 3).data,
                bias: Some(t([1, 1, 1, cout], 4).data),
            };
            let bb = (cb > 0).then_some(&b);
            close(
                &conv3x3(&a, bb, &w, true),
                &generic::conv3x3(&a, bb, &w, true),
            );
            close(
                &conv3x3(&a, bb, &w, false),
                &generic::conv3x3(&a, bb, &w, false),
            );
            let up = ConvWeights {
                shape: [shape[1], cout, 2, 2],
                weight: t([shape[1], cout, 2, 2], 5).data,
                bias: Some(t([1, 1, 1, cout], 6).data),
            };
            close(&upconv2x2(&a, &up), &generic::upconv2x2(&a, &up));
            let head = ConvWeights {
                shape: [cout, shape[1], 1, 1],
                weight: t([cout, shape[1], 1, 1], 7).data,
                bias: Some(t([1, 1, 1, cout], 8).data),
            };
            close(&conv1x1(&a, &head), &generic::conv1x1(&a, &head));
        }
    }
}
