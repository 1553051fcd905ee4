//! The CPU int8 engine: the same graph as the float engines, activations uint8 between layers.
//!
//! Activations live in one layout (`QAct`): channels in groups of 4, one u32 per pixel and
//! group, each plane bordered by one pixel of the zero point. A 3×3 conv is then an implicit
//! GEMM (`kernels`): the rows of its activation operand are the padded input planes shifted by
//! each tap, read in place (no im2col, no packing), and the kernels requantize their int32 sums
//! straight into the next layer's layout (ReLU fused; `kernels::requantize` is the one rule).
//! The decoder's first conv reads the skip and the upsampled tensor as one GEMM over both: the
//! two share their quantization (`QUNet::share_skip_quantization`), so no concatenation and
//! no float round trip. Transposed convs are one GEMM over their 4 taps, scattered; max-pool
//! works on the uint8 values; the bilinear resize (odd sizes only) interpolates the uint8 values
//! exactly (integer weights, rounded half to even). The input is quantized on the way in (or,
//! in models that keep it float, the first conv runs in float32) and the head computes float
//! logits from the uint8 activations.
//!
//! `Int8Model` prepares a model once (weights packed as GEMM rows, requantization constants);
//! `forward` is the one-shot form.

pub mod kernels;

use std::collections::HashMap;

use rayon::prelude::*;

use crate::compress::{FirstConv, QConv, QParams, QUNet};
use crate::cpu::{gemm_f32, row_block, SendPtr};
use crate::model::{ConvWeights, UNetSpec};
use crate::plan::{ConvRef, Graph, Op};
use crate::tensor::Tensor;
use crate::{Error, Result};
use kernels::{QGemm, Requant};

/// uint8 activations and their quantization, laid out for the kernels: `[n][c/4][h+2][w+2][4]`
/// (channel groups of 4, a border of one pixel), plus `SLACK` bytes. Borders and the channels
/// past `c` in the last group hold the zero point.
#[derive(Clone, Debug)]
pub struct QAct {
    pub shape: [usize; 4],
    pub q: QParams,
    pub data: Vec<u8>,
}

/// Trailing bytes: the taps of the last plane's two junk columns per row read 2 pixels past it.
const SLACK: usize = 8;

impl QAct {
    /// All zero point.
    fn new(shape: [usize; 4], q: QParams) -> QAct {
        let [n, c, h, w] = shape;
        QAct {
            shape,
            q,
            data: vec![q.zero; n * c.div_ceil(4) * (h + 2) * (w + 2) * 4 + SLACK],
        }
    }

    /// Channel groups of 4.
    pub fn groups(&self) -> usize {
        self.shape[1].div_ceil(4)
    }

    /// Padded row length in pixels.
    fn pw(&self) -> usize {
        self.shape[3] + 2
    }

    /// Bytes per channel group (one padded plane).
    pub fn plane(&self) -> usize {
        (self.shape[2] + 2) * self.pw() * 4
    }

    /// Bytes per image.
    pub fn image(&self) -> usize {
        self.groups() * self.plane()
    }

    /// Byte of (image, channel, y, x).
    #[inline]
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        n * self.image() + (c / 4) * self.plane() + ((y + 1) * self.pw() + x + 1) * 4 + c % 4
    }

    /// Quantize a float NCHW tensor.
    pub fn from_f32(t: &Tensor, q: QParams) -> QAct {
        let mut out = QAct::new(t.shape, q);
        let [n, c, h, w] = t.shape;
        let (groups, plane, pw) = (out.groups(), out.plane(), out.pw());
        out.data[..n * groups * plane]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, dst)| {
                let (img, g) = (p / groups, p % groups);
                for k in 0..4.min(c - 4 * g) {
                    let src = &t.data[(img * c + 4 * g + k) * h * w..][..h * w];
                    for y in 0..h {
                        for x in 0..w {
                            dst[((y + 1) * pw + x + 1) * 4 + k] = q.quantize(src[y * w + x]);
                        }
                    }
                }
            });
        out
    }

    /// Dequantize to a float NCHW tensor.
    pub fn to_f32(&self) -> Tensor {
        let [n, c, h, w] = self.shape;
        let mut data = vec![0f32; n * c * h * w];
        data.par_chunks_mut(h * w).enumerate().for_each(|(p, dst)| {
            let (img, ch) = (p / c, p % c);
            for y in 0..h {
                for x in 0..w {
                    dst[y * w + x] = self.q.dequantize(self.data[self.at(img, ch, y, x)]);
                }
            }
        });
        Tensor {
            shape: self.shape,
            data,
        }
    }

    /// Put the zero point back in the left and right border columns (conv kernels write their
    /// junk columns there).
    fn clear_side_borders(&mut self) {
        let (pw, z) = (self.pw(), self.q.zero);
        let planes = self.shape[0] * self.groups();
        let plane = self.plane();
        self.data[..planes * plane]
            .par_chunks_mut(plane)
            .for_each(|p| {
                for row in p.chunks_exact_mut(pw * 4) {
                    row[..4].fill(z);
                    row[(pw - 1) * 4..].fill(z);
                }
            });
    }
}

/// A conv ready for the kernels: weights as GEMM rows in the order the kernels read activations,
/// and the requantization constants for its input's quantization.
#[derive(Clone, Debug)]
pub(crate) struct PConv {
    /// GEMM rows.
    pub(crate) m: usize,
    /// Real output channels.
    pub(crate) cout: usize,
    pub(crate) kp: usize,
    pub(crate) a: Vec<i8>,
    pub(crate) bias: Vec<i32>,
    pub(crate) mult: Vec<f32>,
    pub(crate) out: QParams,
    /// The kernels' lowest output: the zero point where a ReLU is fused, else 0.
    pub(crate) lo: i32,
}

/// Requantization constants of one output channel (`kernels::Requant`): the float bias in
/// accumulator units (s_x · s_w), rounded half to even, minus z_x · Σw; and s_x · s_w / s_out.
fn requant_consts(bias: f32, w_scale: f32, w_sum: i32, x: QParams, out: QParams) -> (i32, f32) {
    let unit = x.scale as f64 * w_scale as f64;
    let limit = (1u32 << 30) as f64;
    let b = (bias as f64 / unit).round_ties_even().clamp(-limit, limit) as i32;
    (b - x.zero as i32 * w_sum, (unit / out.scale as f64) as f32)
}

impl PConv {
    /// A 3×3 conv reading `parts` (channel counts, in order) as one GEMM: row `co`, k = (part,
    /// channel group, tap, channel in group).
    pub(crate) fn conv3x3(qc: &QConv, x: QParams, parts: &[usize]) -> PConv {
        let [cout, cin, _, _] = qc.shape;
        let kp: usize = parts.iter().map(|c| 36 * c.div_ceil(4)).sum();
        let mut a = vec![0i8; cout * kp];
        let mut bias = Vec::with_capacity(cout);
        let mut mult = Vec::with_capacity(cout);
        for co in 0..cout {
            let (mut k, mut c0) = (co * kp, 0);
            for &c in parts {
                for g in 0..c.div_ceil(4) {
                    for tap in 0..9 {
                        for q in 0..4 {
                            let ci = 4 * g + q;
                            if ci < c {
                                a[k] = qc.weight[(co * cin + c0 + ci) * 9 + tap];
                            }
                            k += 1;
                        }
                    }
                }
                c0 += c;
            }
            let sum = qc.weight[co * cin * 9..(co + 1) * cin * 9]
                .iter()
                .map(|&v| v as i32)
                .sum();
            let (b, m) = requant_consts(qc.bias[co], qc.w_scale[co], sum, x, qc.out);
            bias.push(b);
            mult.push(m);
        }
        PConv {
            m: cout,
            cout,
            kp,
            a,
            bias,
            mult,
            out: qc.out,
            lo: qc.out.zero as i32,
        }
    }

    /// A 2×2 stride-2 transposed conv as one GEMM over its taps: row `tap · cout4 + co` (output
    /// channels padded to a multiple of 4, padding rows all zero), k = input channel.
    fn upconv(qc: &QConv, x: QParams) -> PConv {
        let [cin, cout, _, _] = qc.shape;
        let cout4 = cout.div_ceil(4) * 4;
        let kp = cin.div_ceil(4) * 4;
        let m = 4 * cout4;
        let mut a = vec![0i8; m * kp];
        let (mut bias, mut mult) = (vec![0; m], vec![0.0; m]);
        for tap in 0..4 {
            for co in 0..cout {
                let r = tap * cout4 + co;
                let mut sum = 0;
                for ci in 0..cin {
                    let v = qc.weight[(ci * cout + co) * 4 + tap];
                    a[r * kp + ci] = v;
                    sum += v as i32;
                }
                (bias[r], mult[r]) = requant_consts(qc.bias[co], qc.w_scale[co], sum, x, qc.out);
            }
        }
        PConv {
            m,
            cout,
            kp,
            a,
            bias,
            mult,
            out: qc.out,
            lo: 0,
        }
    }

    /// The kernels' view of rows `i0..i1`.
    fn rows(&self, i0: usize, i1: usize) -> (&[i8], Requant<'_>) {
        (
            &self.a[i0 * self.kp..i1 * self.kp],
            Requant {
                bias: &self.bias[i0..i1],
                mult: &self.mult[i0..i1],
                zero: self.out.zero as i32,
                lo: self.lo,
            },
        )
    }
}

/// Target columns (output positions, junk columns included) of one conv task.
const TILE: usize = 512;

/// int8 3×3 conv (padding 1, ReLU fused) over the channels of `parts` in order, which share
/// their quantization.
fn conv3x3(parts: &[&QAct], pc: &PConv) -> QAct {
    let [nb, _, h, w] = parts[0].shape;
    debug_assert!(parts
        .iter()
        .all(|p| p.q == parts[0].q && p.shape[2..] == [h, w]));
    let pw = w + 2;
    let mut out = QAct::new([nb, pc.cout, h, w], pc.out);
    let (oplane, oimage) = (out.plane(), out.image());
    let rows_per_tile = (TILE / pw).max(1);
    let tiles = h.div_ceil(rows_per_tile);
    let mb = row_block(pc.m, tiles, 8);
    let mblocks = pc.m.div_ceil(mb);
    for n in 0..nb {
        let dst = SendPtr(out.data[n * oimage..].as_mut_ptr());
        (0..tiles * mblocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / mblocks, t % mblocks);
            let (y0, y1) = (tile * rows_per_tile, ((tile + 1) * rows_per_tile).min(h));
            let (j0, j1) = (y0 * pw, y1 * pw);
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(pc.m));
            // Output position j (= y · pw + x, x ≥ w are junk) reads the input window whose
            // top-left padded pixel is j: each (group, tap) row is a plane shifted by the tap.
            let mut b = Vec::with_capacity(pc.kp / 4);
            for p in parts {
                let base = &p.data[n * p.image()..];
                for g in 0..p.groups() {
                    for tap in 0..9 {
                        b.push(
                            base[g * p.plane() + ((tap / 3) * pw + tap % 3 + j0) * 4..].as_ptr(),
                        );
                    }
                }
            }
            let (a, rq) = pc.rows(i0, i1);
            let g = QGemm {
                m: i1 - i0,
                n: j1 - j0,
                kp: pc.kp,
                a,
                b: &b,
                rq,
                // Position j lands on padded pixel j + pw + 1.
                out: dst.at((i0 / 4) * oplane + (j0 + pw + 1) * 4),
                plane: oplane,
            };
            // SAFETY: rows read at most 2 pixels past a plane (SLACK); this task writes rows
            // i0..i1 (whole groups) of output positions j0..j1 only.
            unsafe { kernels::qgemm_u8i8(&g) };
        });
    }
    out.clear_side_borders();
    out
}

/// int8 ConvTranspose2d(2, stride 2): one GEMM for the 4 taps into a scratch buffer, then
/// each tap's pixels scattered to their places.
fn upconv2x2(x: &QAct, pc: &PConv) -> QAct {
    let [nb, _, h, w] = x.shape;
    let (pw, npix) = (w + 2, h * (w + 2));
    let mut out = QAct::new([nb, pc.cout, 2 * h, 2 * w], pc.out);
    let (oplane, oimage, opw, ogroups) = (out.plane(), out.image(), out.pw(), out.groups());
    let tplane = npix * 4;
    let mut taps = vec![0u8; (pc.m / 4) * tplane];
    let tiles = npix.div_ceil(TILE);
    let mb = row_block(pc.m, tiles, 8);
    let mblocks = pc.m.div_ceil(mb);
    for n in 0..nb {
        let dst = SendPtr(taps.as_mut_ptr());
        (0..tiles * mblocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / mblocks, t % mblocks);
            let (j0, j1) = (tile * TILE, ((tile + 1) * TILE).min(npix));
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(pc.m));
            // Columns: the padded rows 1..=h, border pixels included (their results unused).
            let base = &x.data[n * x.image()..];
            let b: Vec<*const u8> = (0..x.groups())
                .map(|g| base[g * x.plane() + (pw + j0) * 4..].as_ptr())
                .collect();
            let (a, rq) = pc.rows(i0, i1);
            let g = QGemm {
                m: i1 - i0,
                n: j1 - j0,
                kp: pc.kp,
                a,
                b: &b,
                rq,
                out: dst.at((i0 / 4) * tplane + j0 * 4),
                plane: tplane,
            };
            // SAFETY: rows stay inside the input's planes; this task writes rows i0..i1 of
            // columns j0..j1 of the scratch buffer only.
            unsafe { kernels::qgemm_u8i8(&g) };
        });
        let taps = &taps;
        out.data[n * oimage..(n + 1) * oimage]
            .par_chunks_mut(oplane)
            .enumerate()
            .for_each(|(g, o)| {
                for tap in 0..4 {
                    let (dy, dx) = (tap / 2, tap % 2);
                    let src = &taps[(tap * ogroups + g) * tplane..][..tplane];
                    for y in 0..h {
                        let d = &mut o[((2 * y + dy + 1) * opw + 1 + dx) * 4..];
                        let s = &src[(y * pw + 1) * 4..];
                        for xx in 0..w {
                            d[8 * xx..8 * xx + 4].copy_from_slice(&s[4 * xx..4 * xx + 4]);
                        }
                    }
                }
            });
    }
    out
}

/// 2×2 max-pool on uint8 values (order-preserving, so the quantization is unchanged).
fn maxpool2x2(x: &QAct) -> QAct {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut out = QAct::new([n, c, oh, ow], x.q);
    let (iplane, oplane, ipw, opw) = (x.plane(), out.plane(), x.pw(), out.pw());
    let planes = n * out.groups();
    out.data[..planes * oplane]
        .par_chunks_mut(oplane)
        .enumerate()
        .for_each(|(p, o)| {
            let src = &x.data[p * iplane..(p + 1) * iplane];
            for y in 0..oh {
                let r0 = &src[((2 * y + 1) * ipw + 1) * 4..];
                let r1 = &src[((2 * y + 2) * ipw + 1) * 4..];
                let d = &mut o[((y + 1) * opw + 1) * 4..];
                for (i, v) in d[..ow * 4].iter_mut().enumerate() {
                    let s = (i / 4) * 8 + i % 4;
                    *v = r0[s].max(r0[s + 4]).max(r1[s].max(r1[s + 4]));
                }
            }
        });
    out
}

/// One axis of the align-corners bilinear resize as exact rationals: output `d` of `o` reads
/// inputs `i0`, `i1` with weights `(den − f, f) / den`.
pub fn resize_taps(d: usize, i: usize, o: usize) -> (usize, usize, u64, u64) {
    let den = o.saturating_sub(1).max(1) as u64;
    let num = if o > 1 { (d * (i - 1)) as u64 } else { 0 };
    let i0 = (num / den) as usize;
    let f = num - i0 as u64 * den;
    (i0, (i0 + 1).min(i - 1), f, den)
}

/// Bilinear resize (align corners) on the uint8 values, exactly: the weighted sum of the 4
/// neighbours as an integer over the product of the denominators, rounded half to even. (With one
/// quantization in and out, interpolating the values is interpolating what they stand for.)
fn resize_u8(x: &QAct, oh: usize, ow: usize) -> QAct {
    let [n, c, h, w] = x.shape;
    let mut out = QAct::new([n, c, oh, ow], x.q);
    let (iplane, oplane, ipw, opw, planes) =
        (x.plane(), out.plane(), x.pw(), out.pw(), n * out.groups());
    out.data[..planes * oplane]
        .par_chunks_mut(oplane)
        .enumerate()
        .for_each(|(p, o)| {
            let src = &x.data[p * iplane..(p + 1) * iplane];
            let at = |y: usize, xx: usize, k: usize| src[((y + 1) * ipw + xx + 1) * 4 + k] as u64;
            for y in 0..oh {
                let (y0, y1, fy, dy) = resize_taps(y, h, oh);
                for xx in 0..ow {
                    let (x0, x1, fx, dx) = resize_taps(xx, w, ow);
                    for k in 0..4 {
                        let top = (dx - fx) * at(y0, x0, k) + fx * at(y0, x1, k);
                        let bot = (dx - fx) * at(y1, x0, k) + fx * at(y1, x1, k);
                        let num = (dy - fy) * top + fy * bot;
                        o[((y + 1) * opw + xx + 1) * 4 + k] =
                            div_round_half_even(num, dy * dx) as u8;
                    }
                }
            }
        });
    out
}

/// `num / den` rounded half to even.
pub fn div_round_half_even(num: u64, den: u64) -> u64 {
    let (q, r) = (num / den, num % den);
    if 2 * r > den || (2 * r == den && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// The float 1×1 head on uint8 activations: `b + s · Σ_c w_c · (x_c − z)`.
fn head(x: &QAct, head: &ConvWeights) -> Tensor {
    let [n, c, h, w] = x.shape;
    let cout = head.shape[0];
    let s = x.q.scale;
    let ws: Vec<f32> = head.weight.iter().map(|v| s * v).collect();
    let base: Vec<f32> = (0..cout)
        .map(|o| {
            let b = head.bias.as_ref().map_or(0.0, |b| b[o]);
            b - x.q.zero as f32 * ws[o * c..(o + 1) * c].iter().sum::<f32>()
        })
        .collect();
    let mut data = vec![0f32; n * cout * h * w];
    data.par_chunks_mut(w).enumerate().for_each(|(row, dst)| {
        let (img, o, y) = (row / (cout * h), (row / h) % cout, row % h);
        dst.fill(base[o]);
        for ch in 0..c {
            let wv = ws[o * c + ch];
            let src = &x.data[x.at(img, ch, y, 0)..];
            for (xx, d) in dst.iter_mut().enumerate() {
                *d += wv * src[4 * xx] as f32;
            }
        }
    });
    Tensor {
        shape: [n, cout, h, w],
        data,
    }
}

/// An int8 model prepared for the CPU engine.
pub struct Int8Model {
    pub(crate) spec: UNetSpec,
    pub(crate) first: FirstConv,
    pub(crate) first_out: QParams,
    pub(crate) convs: HashMap<ConvRef, PConv>,
    pub(crate) ups: Vec<PConv>,
    pub(crate) head: ConvWeights,
    /// The quantization of the head's input.
    pub(crate) head_in: QParams,
}

impl Int8Model {
    /// Pack the weights and work out each layer's requantization from the quantization of
    /// the tensor it reads (found by walking the graph once).
    pub fn new(model: &QUNet) -> Result<Int8Model> {
        let mut model = model.clone();
        model.share_skip_quantization();
        let side = 1usize << model.spec.depth();
        let g = Graph::build(&model.spec, [1, model.spec.in_channels, side, side], true)?;
        let mut qs: Vec<Option<QParams>> = vec![None; g.shapes.len()];
        if let FirstConv::Int8(input) = model.first {
            qs[g.input] = Some(input);
        }
        let mut convs = HashMap::new();
        let mut ups = vec![None; model.ups.len()];
        let mut head_in = None;
        for op in &g.ops {
            let q = |t: usize| qs[t].expect("graph order: inputs first");
            let out = match op {
                Op::Conv3x3 {
                    conv: ConvRef::Down(0, 1),
                    ..
                } if matches!(model.first, FirstConv::Float(_)) => model.first_out,
                Op::Conv3x3 { a, b, conv, .. } => {
                    let parts: Vec<usize> = std::iter::once(*a)
                        .chain(*b)
                        .map(|t| g.shapes[t][1])
                        .collect();
                    if b.is_some_and(|b| q(b) != q(*a)) {
                        return Err(Error::InvalidArgument(format!(
                            "{}: the skip and the upsampled tensor are quantized differently",
                            conv.name()
                        )));
                    }
                    let qc = &model.convs[conv];
                    convs.insert(*conv, PConv::conv3x3(qc, q(*a), &parts));
                    qc.out
                }
                Op::MaxPool { x, .. } | Op::Resize { x, .. } => q(*x),
                Op::UpConv { x, level, .. } => {
                    let qc = &model.ups[*level];
                    ups[*level] = Some(PConv::upconv(qc, q(*x)));
                    qc.out
                }
                Op::Head { x, .. } => {
                    head_in = Some(q(*x));
                    continue;
                }
                Op::BnRelu { .. } => unreachable!("int8 graphs fold BatchNorm"),
            };
            qs[op.output()] = Some(out);
        }
        Ok(Int8Model {
            spec: model.spec.clone(),
            first: model.first,
            first_out: model.first_out,
            convs,
            ups: ups
                .into_iter()
                .map(|u| u.expect("every level upsamples"))
                .collect(),
            head: model.head,
            head_in: head_in.expect("the graph ends with the head"),
        })
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// Run on a float input (NCHW); returns the float logits.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.run(input, false)?.0)
    }

    /// `forward`, also returning every uint8 tensor of the graph (indexed by `TensorId`; `None`
    /// for float ones): the reference the GPU int8 kernels are tested against.
    pub fn forward_all(&self, input: &Tensor) -> Result<(Tensor, Vec<Option<QAct>>)> {
        self.run(input, true)
    }

    fn run(&self, input: &Tensor, keep: bool) -> Result<(Tensor, Vec<Option<QAct>>)> {
        let g = Graph::build(&self.spec, input.shape, true)?;
        let mut vals: Vec<Option<QAct>> = vec![None; g.shapes.len()];
        if let FirstConv::Int8(q) = self.first {
            vals[g.input] = Some(QAct::from_f32(input, q));
        }
        let last_use = g.last_uses();
        for (i, op) in g.ops.iter().enumerate() {
            let get = |t: usize| {
                vals[t]
                    .as_ref()
                    .expect("graph order: inputs computed first")
            };
            let out = match (op, &self.first) {
                (
                    Op::Conv3x3 {
                        conv: ConvRef::Down(0, 1),
                        ..
                    },
                    FirstConv::Float(first),
                ) => QAct::from_f32(&gemm_f32::conv3x3(input, None, first, true), self.first_out),
                (Op::Conv3x3 { a, b, conv, .. }, _) => {
                    let parts: Vec<&QAct> = std::iter::once(get(*a)).chain(b.map(get)).collect();
                    conv3x3(&parts, &self.convs[conv])
                }
                (Op::MaxPool { x, .. }, _) => maxpool2x2(get(*x)),
                (Op::UpConv { x, level, .. }, _) => upconv2x2(get(*x), &self.ups[*level]),
                (Op::Resize { x, out }, _) => {
                    let [_, _, h, w] = g.shapes[*out];
                    resize_u8(get(*x), h, w)
                }
                (Op::Head { x, .. }, _) => return Ok((head(get(*x), &self.head), vals)),
                (Op::BnRelu { .. }, _) => unreachable!("int8 graphs fold BatchNorm"),
            };
            vals[op.output()] = Some(out);
            for t in op.inputs() {
                if last_use[t] == i && !keep {
                    vals[t] = None;
                }
            }
        }
        unreachable!("the graph ends with the head")
    }
}

/// Run an int8 model on a float input (NCHW) once; returns the float logits. To run a model
/// more than once, prepare it with `Int8Model::new`.
pub fn forward(model: &QUNet, input: &Tensor) -> Result<Tensor> {
    Int8Model::new(model)?.forward(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::generic;

    /// The exact uint8 resize against the float one on dequantized values: within half a step
    /// plus float rounding, so at most 1 apart; and exact where the float one is exact.
    #[test]
    fn resize_u8_is_the_exact_bilinear() {
        let q = QParams {
            scale: 0.1,
            zero: 7,
        };
        for (h, w, oh, ow) in [(3, 5, 7, 9), (4, 4, 9, 8), (5, 3, 5, 3), (1, 6, 1, 11)] {
            let t = Tensor {
                shape: [1, 5, h, w],
                data: (0..5 * h * w)
                    .map(|i| ((i * 37) % 251) as f32 * 0.1 - 0.7)
                    .collect(),
            };
            let x = QAct::from_f32(&t, q);
            let got = resize_u8(&x, oh, ow);
            let want = generic::resize_bilinear_ac(&x.to_f32(), oh, ow);
            for c in 0..5 {
                for y in 0..oh {
                    for xx in 0..ow {
                        let g = got.data[got.at(0, c, y, xx)] as f32;
                        let f = want.data[(c * oh + y) * ow + xx] / q.scale + q.zero as f32;
                        assert!((g - f).abs() <= 0.5 + 1e-3, "{h}x{w}→{oh}x{ow}: {g} vs {f}");
                    }
                }
            }
            // Corners are copied.
            assert_eq!(got.data[got.at(0, 3, 0, 0)], x.data[x.at(0, 3, 0, 0)]);
            assert_eq!(
                got.data[got.at(0, 3, oh - 1, ow - 1)],
                x.data[x.at(0, 3, h - 1, w - 1)]
            );
        }
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(7, 3), 2);
        assert_eq!(div_round_half_even(8, 3), 3);
    }
}
