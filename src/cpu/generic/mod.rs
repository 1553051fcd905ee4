//! Portable float32 kernels: the reference every GPU kernel is tested against.
//! Layout NCHW throughout; planes are processed in parallel with rayon.

use rayon::prelude::*;

use crate::model::ConvWeights;
use crate::tensor::Tensor;

/// 3×3 conv, padding 1, stride 1, over the channels of `a` then `b` (PyTorch's
/// `cat((a, b), 1)` without building it). `w`: `[cout, ca + cb, 3, 3]`; optional bias and ReLU.
pub fn conv3x3(a: &Tensor, b: Option<&Tensor>, w: &ConvWeights, relu: bool) -> Tensor {
    let [n, ca, h, wd] = a.shape;
    let cb = b.map_or(0, |b| b.c());
    let [cout, cin, kh, kw] = w.shape;
    assert_eq!((cin, kh, kw), (ca + cb, 3, 3), "conv3x3 weight shape");
    let mut out = Tensor::zeros([n, cout, h, wd]);
    out.data
        .par_chunks_mut(h * wd)
        .enumerate()
        .for_each(|(plane, o)| {
            let (img, co) = (plane / cout, plane % cout);
            o.fill(w.bias.as_ref().map_or(0.0, |b| b[co]));
            for ci in 0..cin {
                let src = if ci < ca {
                    a.plane(img, ci)
                } else {
                    b.expect("b").plane(img, ci - ca)
                };
                let k = &w.weight[(co * cin + ci) * 9..][..9];
                for ky in 0..3 {
                    // Output rows y read input row y + ky - 1.
                    let (y0, y1) = (1usize.saturating_sub(ky), (h + 1 - ky).min(h));
                    for kx in 0..3 {
                        let wv = k[ky * 3 + kx];
                        let (x0, x1) = (1usize.saturating_sub(kx), (wd + 1 - kx).min(wd));
                        for y in y0..y1 {
                            let sy = y + ky - 1;
                            let orow = &mut o[y * wd + x0..y * wd + x1];
                            let irow = &src[sy * wd + x0 + kx - 1..sy * wd + x1 + kx - 1];
                            for (ov, iv) in orow.iter_mut().zip(irow) {
                                *ov += wv * iv;
                            }
                        }
                    }
                }
            }
            if relu {
                o.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        });
    out
}

/// `y = max(x · scale[c] + shift[c], 0)`.
pub fn bn_relu(x: &Tensor, scale: &[f32], shift: &[f32]) -> Tensor {
    let c = x.c();
    let mut out = x.clone();
    out.data
        .par_chunks_mut(x.h() * x.w())
        .enumerate()
        .for_each(|(plane, o)| {
            let ch = plane % c;
            o.iter_mut()
                .for_each(|v| *v = (*v * scale[ch] + shift[ch]).max(0.0));
        });
    out
}

/// 2×2 max-pool, stride 2; odd sizes drop their last row/column.
pub fn maxpool2x2(x: &Tensor) -> Tensor {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Tensor::zeros([n, c, oh, ow]);
    out.data
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let src = x.plane(plane / c, plane % c);
            for y in 0..oh {
                for xx in 0..ow {
                    let r0 = &src[2 * y * w + 2 * xx..];
                    let r1 = &src[(2 * y + 1) * w + 2 * xx..];
                    o[y * ow + xx] = r0[0].max(r0[1]).max(r1[0].max(r1[1]));
                }
            }
        });
    out
}

/// ConvTranspose2d(kernel 2, stride 2) with bias; `w`: `[cin, cout, 2, 2]`.
pub fn upconv2x2(x: &Tensor, w: &ConvWeights) -> Tensor {
    let [n, cin, h, wd] = x.shape;
    let [wcin, cout, kh, kw] = w.shape;
    assert_eq!((wcin, kh, kw), (cin, 2, 2), "transposed conv weight shape");
    let bias = w.bias.as_ref().expect("transposed conv has a bias");
    let (oh, ow) = (2 * h, 2 * wd);
    let mut out = Tensor::zeros([n, cout, oh, ow]);
    out.data
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let (img, co) = (plane / cout, plane % cout);
            o.fill(bias[co]);
            for ci in 0..cin {
                let src = x.plane(img, ci);
                let k = &w.weight[(ci * cout + co) * 4..][..4];
                for y in 0..oh {
                    let (sy, ky) = (y / 2, y % 2);
                    let orow = &mut o[y * ow..(y + 1) * ow];
                    for (xx, ov) in orow.iter_mut().enumerate() {
                        *ov += src[sy * wd + xx / 2] * k[ky * 2 + xx % 2];
                    }
                }
            }
        });
    out
}

/// Bilinear resize with align_corners=True, computed as PyTorch's CPU kernel does.
pub fn resize_bilinear_ac(x: &Tensor, oh: usize, ow: usize) -> Tensor {
    let [n, c, h, w] = x.shape;
    let scale = |i: usize, o: usize| {
        if o > 1 {
            (i as f32 - 1.0) / (o as f32 - 1.0)
        } else {
            0.0
        }
    };
    let (sh, sw) = (scale(h, oh), scale(w, ow));
    let taps = |s: f32, d: usize, i: usize| {
        let src = s * d as f32;
        let i0 = (src as usize).min(i - 1);
        let i1 = (i0 + 1).min(i - 1);
        let l1 = src - i0 as f32;
        (i0, i1, 1.0 - l1, l1)
    };
    let mut out = Tensor::zeros([n, c, oh, ow]);
    out.data
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let src = x.plane(plane / c, plane % c);
            for y in 0..oh {
                let (y0, y1, hy0, hy1) = taps(sh, y, h);
                for xx in 0..ow {
                    let (x0, x1, wx0, wx1) = taps(sw, xx, w);
                    o[y * ow + xx] = hy0 * (wx0 * src[y0 * w + x0] + wx1 * src[y0 * w + x1])
                        + hy1 * (wx0 * src[y1 * w + x0] + wx1 * src[y1 * w + x1]);
                }
            }
        });
    out
}

/// 1×1 conv with bias; `w`: `[cout, cin, 1, 1]`.
pub fn conv1x1(x: &Tensor, w: &ConvWeights) -> Tensor {
    let [n, cin, h, wd] = x.shape;
    let cout = w.shape[0];
    assert_eq!(w.shape[1], cin, "1×1 conv weight shape");
    let bias = w.bias.as_ref().expect("head conv has a bias");
    let mut out = Tensor::zeros([n, cout, h, wd]);
    out.data
        .par_chunks_mut(h * wd)
        .enumerate()
        .for_each(|(plane, o)| {
            let (img, co) = (plane / cout, plane % cout);
            o.fill(bias[co]);
            for ci in 0..cin {
                let wv = w.weight[co * cin + ci];
                for (ov, iv) in o.iter_mut().zip(x.plane(img, ci)) {
                    *ov += wv * iv;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: [usize; 4], f: impl Fn(usize) -> f32) -> Tensor {
        Tensor {
            shape,
            data: (0..shape.iter().product()).map(f).collect(),
        }
    }

    /// Direct definition of the concatenated conv, index by index.
    #[test]
    fn conv3x3_matches_the_definition() {
        let a = t([1, 2, 5, 4], |i| (i as f32 * 0.37).sin());
        let b = t([1, 1, 5, 4], |i| (i as f32 * 0.11).cos());
        let w = ConvWeights {
            shape: [3, 3, 3, 3],
            weight: (0..81).map(|i| (i as f32 * 0.7).sin()).collect(),
            bias: Some(vec![0.1, -0.2, 0.3]),
        };
        let out = conv3x3(&a, Some(&b), &w, false);
        for co in 0..3 {
            for y in 0..5i32 {
                for x in 0..4i32 {
                    let mut s = w.bias.as_ref().unwrap()[co];
                    for ci in 0..3 {
                        for ky in 0..3i32 {
                            for kx in 0..3i32 {
                                let (sy, sx) = (y + ky - 1, x + kx - 1);
                                if !(0..5).contains(&sy) || !(0..4).contains(&sx) {
                                    continue;
                                }
                                let v = if ci < 2 {
                                    a.plane(0, ci)
                                } else {
                                    b.plane(0, 0)
                                }[(sy * 4 + sx) as usize];
                                s += v * w.weight
                                    [((co * 3 + ci) * 3 + ky as usize) * 3 + kx as usize];
                            }
                        }
                    }
                    let got = out.plane(0, co)[(y * 4 + x) as usize];
                    assert!((got - s).abs() < 1e-5, "co {co} y {y} x {x}: {got} vs {s}");
                }
            }
        }
    }

    #[test]
    fn resize_keeps_corners_and_pool_floors() {
        let x = t([1, 1, 3, 5], |i| i as f32);
        let r = resize_bilinear_ac(&x, 4, 7);
        assert_eq!(r.data[0], 0.0);
        assert_eq!(r.data[6], 4.0);
        assert_eq!(r.data[27], 14.0);
        let p = maxpool2x2(&x);
        assert_eq!(p.shape, [1, 1, 1, 2]);
        assert_eq!(p.data, vec![6.0, 8.0]);
    }
}
