//! The CPU int8 engine: the same graph as the float engines, activations uint8 between layers.
//!
//! 3×3 convs and transposed convs are u8 × i8 → i32 GEMMs (`kernels`) over operands packed
//! QNNPACK-style, with requantization (per-channel weight scale, per-tensor activation scale and
//! zero point, float bias, ReLU) fused after each GEMM tile. The decoder's first conv reads the
//! skip and the upsampled tensor as two GEMMs with their own scales: no concatenation. Max-pool
//! works on the uint8 values directly; the bilinear resize dequantizes, interpolates and
//! requantizes with the same parameters; the first conv (float image in) and the head (logits out)
//! run in float32.

pub mod kernels;

use rayon::prelude::*;

use crate::compress::{QConv, QParams, QUNet};
use crate::cpu::{gemm_f32, generic};
use crate::plan::{ConvRef, Graph, Op};
use crate::tensor::Tensor;
use crate::Result;

/// A uint8 NCHW tensor with its quantization.
#[derive(Clone, Debug)]
pub struct QTensor {
    pub shape: [usize; 4],
    pub data: Vec<u8>,
    pub q: QParams,
}

impl QTensor {
    pub fn quantize(t: &Tensor, q: QParams) -> QTensor {
        QTensor {
            shape: t.shape,
            data: t.data.par_iter().map(|&v| q.quantize(v)).collect(),
            q,
        }
    }

    pub fn dequantize(&self) -> Tensor {
        Tensor {
            shape: self.shape,
            data: self
                .data
                .par_iter()
                .map(|&v| self.q.dequantize(v))
                .collect(),
        }
    }
}

/// Target columns of a conv tile (per thread task); tiles are whole padded rows.
const TILE: usize = 512;

/// An output pointer shared by tasks that write disjoint rows.
#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so closures capture the whole (Send) wrapper.
    fn at(self, offset: usize) -> *mut u8 {
        self.0.wrapping_add(offset)
    }
}

/// One image of `x` with a 1-pixel border at the zero point, plus 2 trailing elements.
fn pad(x: &QTensor, n: usize) -> Vec<u8> {
    let [_, c, h, w] = x.shape;
    let (ph, pw) = (h + 2, w + 2);
    let mut p = vec![x.q.zero; c * ph * pw + 2];
    for ci in 0..c {
        let src = &x.data[((n * c + ci) * h) * w..((n * c + ci + 1) * h) * w];
        for y in 0..h {
            let o = ci * ph * pw + (y + 1) * pw + 1;
            p[o..o + w].copy_from_slice(&src[y * w..(y + 1) * w]);
        }
    }
    p
}

/// Weights of input channels `c0..c0 + c` of a 3×3 conv as GEMM rows `[cout][kp]` (k = channel,
/// tap; zero-padded to a multiple of 4), and each row's sum (for the zero-point correction).
fn conv_rows(qc: &QConv, c0: usize, c: usize) -> (Vec<i8>, Vec<i32>, usize) {
    let [cout, cin, _, _] = qc.shape;
    let kp = (9 * c).div_ceil(4) * 4;
    let mut a = vec![0i8; cout * kp];
    let mut sums = vec![0i32; cout];
    for co in 0..cout {
        let src = &qc.weight[(co * cin + c0) * 9..(co * cin + c0 + c) * 9];
        a[co * kp..co * kp + 9 * c].copy_from_slice(src);
        sums[co] = src.iter().map(|&v| v as i32).sum();
    }
    (a, sums, kp)
}

/// int8 3×3 conv over the channels of `parts` in order; output quantized with `qc.out`.
pub fn conv3x3(parts: &[&QTensor], qc: &QConv, relu: bool) -> QTensor {
    let [nb, _, h, w] = parts[0].shape;
    let cout = qc.shape[0];
    let (ph, pw) = (h + 2, w + 2);
    let mut c0 = 0;
    let rows: Vec<_> = parts
        .iter()
        .map(|p| {
            let r = conv_rows(qc, c0, p.shape[1]);
            c0 += p.shape[1];
            r
        })
        .collect();
    assert_eq!(c0, qc.shape[1], "int8 conv3x3 weight shape");
    let mut out = QTensor {
        shape: [nb, cout, h, w],
        data: vec![0; nb * cout * h * w],
        q: qc.out,
    };
    for n in 0..nb {
        let padded: Vec<Vec<u8>> = parts.iter().map(|p| pad(p, n)).collect();
        let rows_per_tile = (TILE / pw).max(1);
        let dst = SendPtr(out.data[n * cout * h * w..].as_mut_ptr());
        (0..h.div_ceil(rows_per_tile))
            .into_par_iter()
            .for_each(|t| {
                let (y0, y1) = (t * rows_per_tile, ((t + 1) * rows_per_tile).min(h));
                let (j0, j1) = (y0 * pw, y1 * pw);
                let cols = j1 - j0;
                let mut y = vec![0f32; cout * cols];
                let mut acc = vec![0i32; cout * cols];
                for ((part, pd), (a, sums, kp)) in parts.iter().zip(&padded).zip(&rows) {
                    // Pack this part's im2col slice: [kp/4][cols][4], 4 rows (channel, tap) at a
                    // time into one u32 per column; rows past 9·c stay zero.
                    let mut b = vec![0u8; kp * cols];
                    let krows = 9 * part.shape[1];
                    let row = |r: usize| {
                        let (ci, tap) = (r / 9, r % 9);
                        let s = ci * ph * pw + (tap / 3) * pw + tap % 3 + j0;
                        &pd[s..s + cols]
                    };
                    for (k4, dst) in b.chunks_exact_mut(4 * cols).enumerate() {
                        let r0 = 4 * k4;
                        let rs: [Option<&[u8]>; 4] =
                            std::array::from_fn(|q| (r0 + q < krows).then(|| row(r0 + q)));
                        for (j, d) in dst.chunks_exact_mut(4).enumerate() {
                            for q in 0..4 {
                                d[q] = rs[q].map_or(0, |r| r[j]);
                            }
                        }
                    }
                    kernels::qgemm_u8i8(cout, cols, *kp, a, &b, &mut acc);
                    // Accumulate this part in real units: s_x · (acc − z_x · Σw).
                    let (sx, zx) = (part.q.scale, part.q.zero as i32);
                    for co in 0..cout {
                        let corr = zx * sums[co];
                        for j in 0..cols {
                            y[co * cols + j] += sx * (acc[co * cols + j] - corr) as f32;
                        }
                    }
                }
                // Requantize (weight scale, bias, ReLU, output scale and zero point) straight into
                // this tile's output rows, dropping the 2 junk columns per row.
                for co in 0..cout {
                    let (ws, b) = (qc.w_scale[co], qc.bias[co]);
                    for yy in y0..y1 {
                        let src = &y[co * cols + (yy - y0) * pw..][..w];
                        // SAFETY: rows y0..y1 of every channel belong to this task only.
                        let o =
                            unsafe { std::slice::from_raw_parts_mut(dst.at((co * h + yy) * w), w) };
                        for (d, &v) in o.iter_mut().zip(src) {
                            let v = ws * v + b;
                            *d = qc.out.quantize(if relu { v.max(0.0) } else { v });
                        }
                    }
                }
            });
    }
    out
}

/// int8 ConvTranspose2d(2, stride 2): one GEMM per tap, requantized and scattered.
pub fn upconv2x2(x: &QTensor, qc: &QConv) -> QTensor {
    let [nb, cin, h, w] = x.shape;
    let cout = qc.shape[1];
    let (oh, ow, hw) = (2 * h, 2 * w, h * w);
    let kp = cin.div_ceil(4) * 4;
    let mut out = QTensor {
        shape: [nb, cout, oh, ow],
        data: vec![0; nb * cout * oh * ow],
        q: qc.out,
    };
    for n in 0..nb {
        // Activations packed [kp/4][hw][4].
        let mut b = vec![0u8; kp * hw];
        for ci in 0..cin {
            let src = &x.data[(n * cin + ci) * hw..(n * cin + ci + 1) * hw];
            let dst = &mut b[(ci / 4) * hw * 4 + ci % 4..];
            for (j, &v) in src.iter().enumerate() {
                dst[4 * j] = v;
            }
        }
        let taps: Vec<Vec<u8>> = (0..4)
            .into_par_iter()
            .map(|tap| {
                let mut a = vec![0i8; cout * kp];
                let mut sums = vec![0i32; cout];
                for co in 0..cout {
                    for ci in 0..cin {
                        let v = qc.weight[(ci * cout + co) * 4 + tap];
                        a[co * kp + ci] = v;
                        sums[co] += v as i32;
                    }
                }
                let mut acc = vec![0i32; cout * hw];
                kernels::qgemm_u8i8(cout, hw, kp, &a, &b, &mut acc);
                let (sx, zx) = (x.q.scale, x.q.zero as i32);
                (0..cout * hw)
                    .map(|i| {
                        let co = i / hw;
                        qc.out.quantize(
                            qc.w_scale[co] * sx * (acc[i] - zx * sums[co]) as f32 + qc.bias[co],
                        )
                    })
                    .collect()
            })
            .collect();
        out.data[n * cout * oh * ow..(n + 1) * cout * oh * ow]
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(co, o)| {
                for (tap, q) in taps.iter().enumerate() {
                    let (dy, dx) = (tap / 2, tap % 2);
                    for yy in 0..h {
                        let row = &mut o[(2 * yy + dy) * ow..(2 * yy + dy + 1) * ow];
                        for (xx, &v) in q[co * hw + yy * w..co * hw + (yy + 1) * w]
                            .iter()
                            .enumerate()
                        {
                            row[2 * xx + dx] = v;
                        }
                    }
                }
            });
    }
    out
}

/// 2×2 max-pool on uint8 values (order-preserving, so the quantization is unchanged).
pub fn maxpool2x2(x: &QTensor) -> QTensor {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut data = vec![0u8; n * c * oh * ow];
    data.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let src = &x.data[plane * h * w..(plane + 1) * h * w];
            for y in 0..oh {
                for xx in 0..ow {
                    let (r0, r1) = (2 * y * w + 2 * xx, (2 * y + 1) * w + 2 * xx);
                    o[y * ow + xx] = src[r0].max(src[r0 + 1]).max(src[r1].max(src[r1 + 1]));
                }
            }
        });
    QTensor {
        shape: [n, c, oh, ow],
        data,
        q: x.q,
    }
}

/// Run an int8 model on a float input (NCHW); returns the float logits.
pub fn forward(model: &QUNet, input: &Tensor) -> Result<Tensor> {
    let g = Graph::build(&model.spec, input.shape, true)?;
    let mut vals: Vec<Option<QTensor>> = vec![None; g.shapes.len()];
    let mut last_use = vec![0usize; g.shapes.len()];
    for (i, op) in g.ops.iter().enumerate() {
        for t in op.inputs() {
            last_use[t] = i;
        }
    }
    for (i, op) in g.ops.iter().enumerate() {
        let get = |t: usize| {
            vals[t]
                .as_ref()
                .expect("graph order: inputs computed first")
        };
        let out = match op {
            Op::Conv3x3 {
                conv: ConvRef::Down(0, 1),
                ..
            } => QTensor::quantize(
                &gemm_f32::conv3x3(input, None, &model.first, true),
                model.first_out,
            ),
            Op::Conv3x3 { a, b, conv, .. } => {
                let parts: Vec<&QTensor> = std::iter::once(get(*a)).chain(b.map(get)).collect();
                conv3x3(&parts, &model.convs[conv], true)
            }
            Op::MaxPool { x, .. } => maxpool2x2(get(*x)),
            Op::UpConv { x, level, .. } => upconv2x2(get(*x), &model.ups[*level]),
            Op::Resize { x, out } => {
                let [_, _, h, w] = g.shapes[*out];
                let src = get(*x);
                QTensor::quantize(&generic::resize_bilinear_ac(&src.dequantize(), h, w), src.q)
            }
            Op::Head { x, .. } => return Ok(gemm_f32::conv1x1(&get(*x).dequantize(), &model.head)),
            Op::BnRelu { .. } => unreachable!("int8 graphs fold BatchNorm"),
        };
        vals[op.output()] = Some(out);
        for t in op.inputs() {
            if last_use[t] == i {
                vals[t] = None;
            }
        }
    }
    unreachable!("the graph ends with the head")
}
