//! The non-conv layers of a shaped graph on the CPU, float32 NCHW: normalizations, activations,
//! pooling and reductions, resize, pad, concat, broadcast arithmetic, softmax. Planes run in
//! parallel; each kernel is written to be the plain definition of its ONNX op.

use rayon::prelude::*;

use super::buffers;
use crate::graph::ops::NearestRound;
use crate::graph::{Act, BinOp, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode};
use crate::tensor::Tensor;

/// `f(n, c, output plane)` over every plane of a new tensor; `f` writes every element of its
/// plane (the buffer may hold an earlier tensor's values).
fn planes(shape: [usize; 4], f: impl Fn(usize, usize, &mut [f32]) + Sync) -> Tensor {
    let mut out = buffers::filled(shape);
    let hw = shape[2] * shape[3];
    out.data
        .par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(i, o)| f(i / shape[1], i % shape[1], o));
    out
}

pub fn affine(x: &Tensor, scale: &[f32], shift: &[f32], act: &Act) -> Tensor {
    planes(x.shape, |n, c, o| {
        for (d, s) in o.iter_mut().zip(x.plane(n, c)) {
            *d = act.apply(s * scale[c] + shift[c], c);
        }
    })
}

pub fn act(x: &Tensor, act: &Act) -> Tensor {
    planes(x.shape, |n, c, o| {
        for (d, s) in o.iter_mut().zip(x.plane(n, c)) {
            *d = act.apply(*s, c);
        }
    })
}

/// Statistics in f64 (biased variance, as PyTorch and ONNX).
pub fn instance_norm(
    x: &Tensor,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    act: &Act,
) -> Tensor {
    planes(x.shape, |n, c, o| {
        let src = x.plane(n, c);
        let len = src.len() as f64;
        let mean = src.iter().map(|&v| v as f64).sum::<f64>() / len;
        let var = src.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len;
        let inv = 1.0 / (var + eps as f64).sqrt();
        let (g, b) = (
            scale.map_or(1.0, |s| s[c]) as f64,
            bias.map_or(0.0, |s| s[c]) as f64,
        );
        for (d, &s) in o.iter_mut().zip(src) {
            *d = act.apply((((s as f64 - mean) * inv) * g + b) as f32, c);
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub fn pool(
    x: &Tensor,
    out: [usize; 4],
    kind: PoolKind,
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
    d: [usize; 2],
) -> Tensor {
    let [_, _, h, w] = x.shape;
    let [_, _, oh, ow] = out;
    if kind == PoolKind::Max {
        return max_pool(x, out, k, s, pad, d);
    }
    planes(out, |n, c, o| {
        let src = x.plane(n, c);
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * s[0]) as isize - pad[0] as isize;
                let x0 = (ox * s[1]) as isize - pad[1] as isize;
                let (mut acc, mut count) = (
                    if kind == PoolKind::Max {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    },
                    0usize,
                );
                for ky in 0..k[0] {
                    let iy = y0 + (ky * d[0]) as isize;
                    if iy < 0 || iy as usize >= h {
                        continue;
                    }
                    for kx in 0..k[1] {
                        let ix = x0 + (kx * d[1]) as isize;
                        if ix < 0 || ix as usize >= w {
                            continue;
                        }
                        let v = src[iy as usize * w + ix as usize];
                        match kind {
                            PoolKind::Max => acc = acc.max(v),
                            PoolKind::Avg { .. } => acc += v,
                        }
                        count += 1;
                    }
                }
                o[oy * ow + ox] = match kind {
                    PoolKind::Max => acc,
                    PoolKind::Avg {
                        count_include_pad: false,
                    } => acc / count.max(1) as f32,
                    PoolKind::Avg {
                        count_include_pad: true,
                    } => {
                        // The window clipped to the padded extent (PyTorch's divisor).
                        let ye = (y0 + k[0] as isize).min((h + pad[2]) as isize);
                        let xe = (x0 + k[1] as isize).min((w + pad[3]) as isize);
                        acc / ((ye - y0) * (xe - x0)).max(1) as f32
                    }
                };
            }
        }
    })
}

/// Max pooling as two passes of one axis each: for each output row, the maximum of its window's
/// input rows (contiguous: this pass vectorizes), then of each window along that row (inner
/// windows without bounds checks).
fn max_pool(
    x: &Tensor,
    out: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
    d: [usize; 2],
) -> Tensor {
    let [_, _, h, w] = x.shape;
    let ow = out[3];
    // The input index of tap `t` of window `o` along an axis, if inside.
    let at = |o: usize, t: usize, axis: usize, len: usize| {
        (o * s[axis] + t * d[axis])
            .checked_sub(pad[axis])
            .filter(|&i| i < len)
    };
    let span = (k[1] - 1) * d[1] + 1;
    planes(out, |n, c, o| {
        let src = x.plane(n, c);
        let mut rows = vec![f32::NEG_INFINITY; w];
        for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
            rows.fill(f32::NEG_INFINITY);
            for t in 0..k[0] {
                if let Some(y) = at(oy, t, 0, h) {
                    for (m, v) in rows.iter_mut().zip(&src[y * w..(y + 1) * w]) {
                        *m = m.max(*v);
                    }
                }
            }
            for (ox, m) in orow.iter_mut().enumerate() {
                let x0 = (ox * s[1]).checked_sub(pad[1]).filter(|x0| x0 + span <= w);
                *m = match x0 {
                    Some(x0) => {
                        let win = &rows[x0..x0 + span];
                        (1..k[1]).fold(win[0], |m, t| m.max(win[t * d[1]]))
                    }
                    None => (0..k[1])
                        .filter_map(|t| at(ox, t, 1, w))
                        .fold(f32::NEG_INFINITY, |m, i| m.max(rows[i])),
                };
            }
        }
    })
}

pub fn reduce(
    x: &Tensor,
    out: [usize; 4],
    kind: ReduceKind,
    channels: bool,
    spatial: bool,
) -> Tensor {
    let [_, c, h, w] = x.shape;
    let hw = h * w;
    let mut o = buffers::zeros(out);
    let fold = |vals: &mut dyn Iterator<Item = f32>, count: usize| match kind {
        ReduceKind::Max => vals.fold(f32::NEG_INFINITY, f32::max),
        ReduceKind::Mean => (vals.map(|v| v as f64).sum::<f64>() / count as f64) as f32,
    };
    if channels && !spatial {
        o.data.par_chunks_mut(hw).enumerate().for_each(|(n, dst)| {
            for (p, d) in dst.iter_mut().enumerate() {
                *d = fold(&mut (0..c).map(|ci| x.plane(n, ci)[p]), c);
            }
        });
    } else if spatial && !channels {
        o.data.par_iter_mut().enumerate().for_each(|(i, d)| {
            *d = fold(&mut x.plane(i / c, i % c).iter().copied(), hw);
        });
    } else {
        o.data.iter_mut().enumerate().for_each(|(n, d)| {
            *d = fold(
                &mut x.data[n * c * hw..(n + 1) * c * hw].iter().copied(),
                c * hw,
            );
        });
    }
    o
}

/// ONNX's coordinate transform: output index → input coordinate.
fn source(coord: ResizeCoord, o: usize, scale: f32, in_len: usize, out_len: usize) -> f32 {
    let o = o as f32;
    match coord {
        ResizeCoord::HalfPixel => (o + 0.5) / scale - 0.5,
        ResizeCoord::PytorchHalfPixel => {
            if out_len > 1 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        ResizeCoord::AlignCorners => {
            if out_len > 1 {
                // PyTorch: scale (in − 1) / (out − 1) in float, times the index.
                ((in_len - 1) as f32 / (out_len - 1) as f32) * o
            } else {
                0.0
            }
        }
        ResizeCoord::Asymmetric => o / scale,
    }
}

/// Per output index: (i0, i1, weight of i1) for linear; (i, i, 0) for nearest.
fn taps(
    mode: ResizeMode,
    coord: ResizeCoord,
    scale: f32,
    n_in: usize,
    n_out: usize,
) -> Vec<(usize, usize, f32)> {
    (0..n_out)
        .map(|o| {
            let s = source(coord, o, scale, n_in, n_out);
            match mode {
                ResizeMode::Linear => {
                    let s = s.clamp(0.0, (n_in - 1) as f32);
                    let i0 = (s.floor() as usize).min(n_in - 1);
                    let i1 = (i0 + 1).min(n_in - 1);
                    (i0, i1, s - i0 as f32)
                }
                ResizeMode::Nearest(r) => {
                    let i = match r {
                        NearestRound::Floor => s.floor(),
                        NearestRound::Ceil => s.ceil(),
                        NearestRound::RoundPreferFloor => {
                            if s.fract() == 0.5 {
                                s.floor()
                            } else {
                                s.round()
                            }
                        }
                        NearestRound::RoundPreferCeil => (s + 0.5).floor(),
                    };
                    let i = (i.max(0.0) as usize).min(n_in - 1);
                    (i, i, 0.0)
                }
            }
        })
        .collect()
}

pub fn resize(
    x: &Tensor,
    out: [usize; 4],
    mode: ResizeMode,
    coord: ResizeCoord,
    scale: [f32; 2],
) -> Tensor {
    let [_, _, h, w] = x.shape;
    let [_, _, oh, ow] = out;
    let ty = taps(mode, coord, scale[0], h, oh);
    let tx = taps(mode, coord, scale[1], w, ow);
    let nearest = matches!(mode, ResizeMode::Nearest(_));
    // Nearest with a whole-number scale along x: source column ox / f.
    let repeat = (ow % w == 0)
        .then_some(ow / w)
        .filter(|&f| tx.iter().enumerate().all(|(ox, t)| t.0 == ox / f));
    planes(out, |n, c, o| {
        let src = x.plane(n, c);
        if nearest {
            // A gather: one source row per output row (an output row with the same source as
            // the one before is a copy of it), one source column per output column (each
            // repeated `f` times where the scale is a whole number).
            for (oy, &(y0, _, _)) in ty.iter().enumerate() {
                if oy > 0 && ty[oy - 1].0 == y0 {
                    o.copy_within((oy - 1) * ow..oy * ow, oy * ow);
                    continue;
                }
                let (r0, d) = (&src[y0 * w..(y0 + 1) * w], &mut o[oy * ow..(oy + 1) * ow]);
                match repeat {
                    Some(f) => {
                        for (d, &v) in d.chunks_exact_mut(f).zip(r0) {
                            d.fill(v);
                        }
                    }
                    None => {
                        for (d, &(x0, _, _)) in d.iter_mut().zip(&tx) {
                            *d = r0[x0];
                        }
                    }
                }
            }
            return;
        }
        for (oy, &(y0, y1, fy)) in ty.iter().enumerate() {
            let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
            for (ox, &(x0, x1, fx)) in tx.iter().enumerate() {
                let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                let bot = r1[x0] + (r1[x1] - r1[x0]) * fx;
                o[oy * ow + ox] = top + (bot - top) * fy;
            }
        }
    })
}

pub fn pad(x: &Tensor, out: [usize; 4], mode: PadMode, pads: [i64; 4], value: f32) -> Tensor {
    let [_, _, h, w] = x.shape;
    let [_, _, oh, ow] = out;
    let map = |i: i64, len: usize| -> Option<usize> {
        let l = len as i64;
        match mode {
            PadMode::Constant => (0..l).contains(&i).then_some(i as usize),
            PadMode::Edge => Some(i.clamp(0, l - 1) as usize),
            PadMode::Reflect => {
                let r = if i < 0 {
                    -i
                } else if i >= l {
                    2 * (l - 1) - i
                } else {
                    i
                };
                Some(r.clamp(0, l - 1) as usize)
            }
        }
    };
    planes(out, |n, c, o| {
        let src = x.plane(n, c);
        for oy in 0..oh {
            let iy = map(oy as i64 - pads[0], h);
            for ox in 0..ow {
                let ix = map(ox as i64 - pads[1], w);
                o[oy * ow + ox] = match (iy, ix) {
                    (Some(y), Some(xx)) => src[y * w + xx],
                    _ => value,
                };
            }
        }
    })
}

pub fn concat(xs: &[&Tensor], out: [usize; 4]) -> Tensor {
    // Each output plane copies the plane it comes from.
    let mut starts = Vec::new();
    let mut c0 = 0;
    for t in xs {
        starts.push(c0);
        c0 += t.c();
    }
    planes(out, |n, c, o| {
        let k = starts
            .iter()
            .rposition(|&s| s <= c)
            .expect("channel in range");
        o.copy_from_slice(xs[k].plane(n, c - starts[k]));
    })
}

/// An operand viewed as NCHW with broadcast dims of stride 0.
pub struct View<'a> {
    pub data: &'a [f32],
    pub shape: [usize; 4],
}

impl View<'_> {
    fn strides(&self) -> [usize; 4] {
        let s = self.shape;
        let full = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
        std::array::from_fn(|k| if s[k] == 1 { 0 } else { full[k] })
    }
}

pub fn binary(a: View, b: View, out: [usize; 4], op: BinOp, act: &Act) -> Tensor {
    let (sa, sb) = (a.strides(), b.strides());
    let same = a.shape == out && b.shape == out;
    planes(out, |n, c, o| {
        let ow = out[3];
        if same {
            let o0 = (n * out[1] + c) * out[2] * ow;
            for (i, d) in o.iter_mut().enumerate() {
                *d = act.apply(op.apply(a.data[o0 + i], b.data[o0 + i]), c);
            }
            return;
        }
        let (ba, bb) = (n * sa[0] + c * sa[1], n * sb[0] + c * sb[1]);
        for y in 0..out[2] {
            for x in 0..ow {
                let va = a.data[ba + y * sa[2] + x * sa[3]];
                let vb = b.data[bb + y * sb[2] + x * sb[3]];
                o[y * ow + x] = act.apply(op.apply(va, vb), c);
            }
        }
    })
}

pub fn softmax_channels(x: &Tensor) -> Tensor {
    let [nb, c, h, w] = x.shape;
    let hw = h * w;
    let mut out = buffers::zeros(x.shape);
    out.data
        .par_chunks_mut(c * hw)
        .enumerate()
        .for_each(|(n, o)| {
            let src = &x.data[n * c * hw..(n + 1) * c * hw];
            for p in 0..hw {
                let m = (0..c)
                    .map(|ci| src[ci * hw + p])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for ci in 0..c {
                    let e = (src[ci * hw + p] - m).exp();
                    o[ci * hw + p] = e;
                    sum += e;
                }
                for ci in 0..c {
                    o[ci * hw + p] /= sum;
                }
            }
        });
    let _ = nb;
    out
}
