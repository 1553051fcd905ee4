//! The fast float32 CPU engine for AVX-512 machines: convolutions as implicit GEMMs on padded
//! activations, with a hand-written micro-kernel (the int8 engine's design, in float32).
//!
//! Activations (`FAct`) are NCHW with every plane bordered by one pixel of zeros. Output
//! position `j = y · (w + 2) + x` of a 3×3 conv reads the window whose top-left padded pixel is
//! `j`, so the GEMM row of (input channel, tap) is the input plane itself shifted by the tap:
//! no im2col. Positions with `x ≥ w` are junk; their results land on the output's side borders,
//! which are zeroed again afterwards. Weights are BatchNorm-folded and packed once (`F32Model`)
//! into panels of `MR` output channels (8; 4 in the wasm build), `[k][MR]`, which the kernel
//! broadcasts from.
//!
//! Tasks are (column tile × block of output channels); inside one, K is split in chunks so the
//! rows of B being read stay in L2, and the output itself accumulates the partial sums (bias on
//! the first chunk, ReLU on the last).
//!
//! Machines without AVX-512 run `gemm_f32` (the `gemm` crate over a tiled im2col) instead.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::collections::HashMap;

use rayon::prelude::*;

use crate::cpu::{generic, row_block, SendPtr};
use crate::model::{fold_bn, ConvWeights, UNet, UNetSpec};
use crate::plan::{ConvRef, Graph, Op};
use crate::tensor::Tensor;
use crate::Result;

/// Output channels per packed panel (rows of the micro-kernel). wasm: 4, so that the 8
/// accumulators, 2 input vectors and the splat weight fit the 16 registers engines give SIMD on
/// x86-64 (8 rows spilled: 675–687 against 588–603 ms for the reference model at 128²; 6 rows:
/// 809–842 ms).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const MR: usize = 8;
#[cfg(target_arch = "wasm32")]
pub(crate) const MR: usize = 4;
/// Columns of the micro-kernel: 3 vectors of 16 (AVX-512), 2 of 4 (wasm simd128).
#[cfg(not(target_arch = "wasm32"))]
const NR: usize = 48;
#[cfg(target_arch = "wasm32")]
const NR: usize = 8;
/// Columns per task.
pub(crate) const TILE: usize = 10 * NR;
/// K per chunk: B rows of a chunk over a tile stay in L2.
const KC: usize = 256;
/// Trailing floats after the last plane (reads never go past it: the kernel's loads are masked).
const SLACK: usize = 16;

/// Whether this CPU runs the engine: AVX-512 F, or WebAssembly built with simd128.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        true
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    {
        false
    }
}

/// Float activations with a zero border: `[n][c][h + 2][w + 2]`, plus `SLACK`.
#[derive(Clone, Debug)]
pub struct FAct {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl FAct {
    fn zeros(shape: [usize; 4]) -> FAct {
        let [n, c, h, w] = shape;
        FAct {
            shape,
            data: vec![0.0; n * c * (h + 2) * (w + 2) + SLACK],
        }
    }

    fn pw(&self) -> usize {
        self.shape[3] + 2
    }

    /// Floats per channel plane.
    fn plane(&self) -> usize {
        (self.shape[2] + 2) * self.pw()
    }

    fn planes(&self) -> usize {
        self.shape[0] * self.shape[1]
    }

    pub fn from_nchw(t: &Tensor) -> FAct {
        let mut out = FAct::zeros(t.shape);
        let [_, _, h, w] = t.shape;
        let (plane, pw, planes) = (out.plane(), out.pw(), out.planes());
        out.data[..planes * plane]
            .par_chunks_mut(plane)
            .zip(t.data.par_chunks(h * w))
            .for_each(|(dst, src)| {
                for y in 0..h {
                    dst[(y + 1) * pw + 1..][..w].copy_from_slice(&src[y * w..][..w]);
                }
            });
        out
    }

    pub fn to_nchw(&self) -> Tensor {
        let [_, _, h, w] = self.shape;
        let (plane, pw) = (self.plane(), self.pw());
        let mut out = Tensor::zeros(self.shape);
        out.data
            .par_chunks_mut(h * w)
            .zip(self.data.par_chunks(plane))
            .for_each(|(dst, src)| {
                for y in 0..h {
                    dst[y * w..][..w].copy_from_slice(&src[(y + 1) * pw + 1..][..w]);
                }
            });
        out
    }

    /// Zero the left and right border columns (where conv junk columns land).
    fn clear_side_borders(&mut self) {
        let (plane, pw, planes) = (self.plane(), self.pw(), self.planes());
        self.data[..planes * plane]
            .par_chunks_mut(plane)
            .for_each(|p| {
                for row in p.chunks_exact_mut(pw) {
                    row[0] = 0.0;
                    row[pw - 1] = 0.0;
                }
            });
    }
}

/// A GEMM's weights, packed: rows in panels of `MR`, K in chunks of `KC`, chunk-major:
/// `[chunk][panel][k in chunk][MR]`, rows past `m` zero. A task reads one chunk of its panels
/// after another, so the weights stream in order (the deep layers read megabytes of them per
/// pass, and the hardware prefetchers follow a stream only inside a page).
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    pub(crate) m: usize,
    pub(crate) k: usize,
    a: Vec<f32>,
    bias: Vec<f32>,
}

impl Packed {
    /// From `w(row, k)`.
    pub(crate) fn new(
        m: usize,
        k: usize,
        w: impl Fn(usize, usize) -> f32 + Sync,
        bias: Vec<f32>,
    ) -> Packed {
        let panels = m.div_ceil(MR);
        let mut a = vec![0f32; panels * k * MR];
        // One task per (chunk, panel) block: `kc · MR` floats at `panel_at(panel, k0)`.
        a.par_chunks_mut(KC * panels * MR)
            .enumerate()
            .for_each(|(c, chunk)| {
                let (k0, kc) = (c * KC, KC.min(k - c * KC));
                for (p, panel) in chunk.chunks_mut(kc * MR).enumerate() {
                    for r in 0..MR.min(m - p * MR) {
                        for kk in 0..kc {
                            panel[kk * MR + r] = w(p * MR + r, k0 + kk);
                        }
                    }
                }
            });
        Packed { m, k, a, bias }
    }

    /// Where panel `p`'s rows of the chunk that starts at `k0` begin.
    fn panel_at(&self, p: usize, k0: usize) -> usize {
        let panels = self.m.div_ceil(MR);
        (k0 * panels + p * KC.min(self.k - k0)) * MR
    }
}

/// `out[r][j] (+)= Σ_k A[r][k] · B(k, j)` for a task's rows `i0..i1` and columns: B row `k` is
/// `b[k]` (already offset to the task's first column), output row r at `c + r · ldc`.
///
/// # Safety
/// Every `b[k]` readable for `cols` floats; `c` writable for rows `i0..i1` × `cols`.
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub(crate) unsafe fn gemm_task(
    _: &Packed,
    _: (usize, usize),
    _: &[*const f32],
    _: usize,
    _: *mut f32,
    _: usize,
    _: bool,
) {
    unreachable!("the direct float32 engine runs with AVX-512 or wasm simd128 only")
}

#[cfg(target_arch = "x86_64")]
use x86_64::kernel_8x48 as micro_kernel;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use wasm32::kernel_4x8 as micro_kernel;

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
pub(crate) unsafe fn gemm_task(
    p: &Packed,
    (i0, i1): (usize, usize),
    b: &[*const f32],
    cols: usize,
    c: *mut f32,
    ldc: usize,
    relu: bool,
) {
    let k = p.k;
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let last = k0 + kc == k;
        for rb in (i0..i1).step_by(MR) {
            let rows = MR.min(i1 - rb);
            let a = p.a.as_ptr().add(p.panel_at(rb / MR, k0));
            let bias = (k0 == 0).then(|| p.bias.as_ptr().add(rb));
            for j in (0..cols).step_by(NR) {
                micro_kernel(
                    kc,
                    a,
                    &b[k0..k0 + kc],
                    j,
                    NR.min(cols - j),
                    c.add(rb * ldc + j),
                    ldc,
                    rows,
                    bias,
                    relu && last,
                );
            }
        }
        k0 += kc;
    }
}

/// 3×3 conv, padding 1, over the channels of `parts` in order (k = channel · 9 + tap, the
/// PyTorch weight order), bias, optional ReLU.
fn conv3x3(parts: &[&FAct], p: &Packed, relu: bool) -> FAct {
    let [nb, _, h, w] = parts[0].shape;
    let pw = w + 2;
    let mut out = FAct::zeros([nb, p.m, h, w]);
    let (oplane, ncols) = (out.plane(), h * pw);
    let tiles = ncols.div_ceil(TILE);
    let mb = row_block(p.m, tiles, MR);
    let blocks = p.m.div_ceil(mb);
    for n in 0..nb {
        let dst = SendPtr(out.data[n * p.m * oplane..].as_mut_ptr());
        (0..tiles * blocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / blocks, t % blocks);
            let (j0, j1) = (tile * TILE, ((tile + 1) * TILE).min(ncols));
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(p.m));
            let mut b = Vec::with_capacity(p.k);
            for x in parts {
                let c = x.shape[1];
                let base = &x.data[n * c * x.plane()..];
                for ci in 0..c {
                    for tap in 0..9 {
                        b.push(base[ci * x.plane() + (tap / 3) * pw + tap % 3 + j0..].as_ptr());
                    }
                }
            }
            // SAFETY: rows are windows of padded planes (the last junk column reads 2 floats
            // past a plane: the next plane or SLACK); this task writes rows i0..i1 of
            // positions j0..j1, which land on padded pixel j + pw + 1.
            unsafe { gemm_task(p, (i0, i1), &b, j1 - j0, dst.at(pw + 1 + j0), oplane, relu) };
        });
    }
    out.clear_side_borders();
    out
}

/// ConvTranspose2d(2, stride 2) with bias: one GEMM over the 4 taps (row `tap · cout + co`)
/// into a scratch buffer, then scattered.
fn upconv2x2(x: &FAct, p: &Packed) -> FAct {
    let [nb, cin, h, w] = x.shape;
    let cout = p.m / 4;
    let (pw, npix) = (w + 2, h * (w + 2));
    let mut out = FAct::zeros([nb, cout, 2 * h, 2 * w]);
    let (oplane, opw) = (out.plane(), out.pw());
    let mut taps = vec![0f32; p.m * npix];
    let tiles = npix.div_ceil(TILE);
    let mb = row_block(p.m, tiles, MR);
    let blocks = p.m.div_ceil(mb);
    for n in 0..nb {
        let dst = SendPtr(taps.as_mut_ptr());
        (0..tiles * blocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / blocks, t % blocks);
            let (j0, j1) = (tile * TILE, ((tile + 1) * TILE).min(npix));
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(p.m));
            let base = &x.data[n * cin * x.plane()..];
            let b: Vec<*const f32> = (0..cin)
                .map(|ci| base[ci * x.plane() + pw + j0..].as_ptr())
                .collect();
            // SAFETY: rows stay inside the input planes; the task owns rows i0..i1, columns
            // j0..j1 of the scratch buffer.
            unsafe { gemm_task(p, (i0, i1), &b, j1 - j0, dst.at(j0), npix, false) };
        });
        let taps = &taps;
        out.data[n * cout * oplane..(n + 1) * cout * oplane]
            .par_chunks_mut(oplane)
            .enumerate()
            .for_each(|(co, o)| {
                for tap in 0..4 {
                    let (dy, dx) = (tap / 2, tap % 2);
                    let src = &taps[(tap * cout + co) * npix..][..npix];
                    for y in 0..h {
                        let d = &mut o[(2 * y + dy + 1) * opw + 1 + dx..];
                        for (xx, &v) in src[y * pw + 1..][..w].iter().enumerate() {
                            d[2 * xx] = v;
                        }
                    }
                }
            });
    }
    out
}

fn maxpool2x2(x: &FAct) -> FAct {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut out = FAct::zeros([n, c, oh, ow]);
    let (iplane, oplane, ipw, opw, planes) =
        (x.plane(), out.plane(), x.pw(), out.pw(), out.planes());
    out.data[..planes * oplane]
        .par_chunks_mut(oplane)
        .enumerate()
        .for_each(|(p, o)| {
            let src = &x.data[p * iplane..(p + 1) * iplane];
            for y in 0..oh {
                let r0 = &src[(2 * y + 1) * ipw + 1..];
                let r1 = &src[(2 * y + 2) * ipw + 1..];
                for (xx, d) in o[(y + 1) * opw + 1..][..ow].iter_mut().enumerate() {
                    *d = r0[2 * xx]
                        .max(r0[2 * xx + 1])
                        .max(r1[2 * xx].max(r1[2 * xx + 1]));
                }
            }
        });
    out
}

/// The 1×1 head with bias, into a plain NCHW tensor.
fn head(x: &FAct, head: &ConvWeights) -> Tensor {
    let [n, c, h, w] = x.shape;
    let cout = head.shape[0];
    let (plane, pw) = (x.plane(), x.pw());
    let mut out = Tensor::zeros([n, cout, h, w]);
    out.data
        .par_chunks_mut(w)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, o, y) = (row / (cout * h), (row / h) % cout, row % h);
            dst.fill(head.bias.as_ref().map_or(0.0, |b| b[o]));
            for ci in 0..c {
                let wv = head.weight[o * c + ci];
                let src = &x.data[(img * c + ci) * plane + (y + 1) * pw + 1..][..w];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += wv * s;
                }
            }
        });
    out
}

/// A float model prepared for this engine: BatchNorm folded, weights packed.
pub struct F32Model {
    spec: UNetSpec,
    convs: HashMap<ConvRef, Packed>,
    ups: Vec<Packed>,
    head: ConvWeights,
}

impl F32Model {
    pub fn new(model: &UNet) -> F32Model {
        let eps = model.spec.bn_eps;
        let d = model.spec.depth();
        let refs = (0..d)
            .flat_map(|l| [ConvRef::Down(l, 1), ConvRef::Down(l, 2)])
            .chain([ConvRef::Bottleneck(1), ConvRef::Bottleneck(2)])
            .chain((0..d).flat_map(|l| [ConvRef::Up(l, 1), ConvRef::Up(l, 2)]));
        let convs = refs
            .map(|r| {
                let (w, bn) = r.weights(model);
                let f = fold_bn(w, bn, eps);
                let [cout, cin, _, _] = f.shape;
                let k = 9 * cin;
                let bias = f.bias.clone().expect("folded bias");
                (
                    r,
                    Packed::new(cout, k, |row, kk| f.weight[row * k + kk], bias),
                )
            })
            .collect();
        let ups = model
            .ups
            .iter()
            .map(|u| {
                let [cin, cout, _, _] = u.up.shape;
                let b = u.up.bias.as_ref().expect("transposed conv has a bias");
                let bias = (0..4).flat_map(|_| b.iter().copied()).collect();
                Packed::new(
                    4 * cout,
                    cin,
                    |row, ci| u.up.weight[(ci * cout + row % cout) * 4 + row / cout],
                    bias,
                )
            })
            .collect();
        F32Model {
            spec: model.spec.clone(),
            convs,
            ups,
            head: model.head.clone(),
        }
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// Run on an NCHW input; returns the logits. Needs `available()`.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_timed(input)?.0)
    }

    /// `forward`, also returning each op's wall time in milliseconds (graph order).
    pub fn forward_timed(&self, input: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        assert!(available(), "the direct float32 engine needs AVX-512");
        let mut times = Vec::new();
        let g = Graph::build(&self.spec, input.shape, true)?;
        let mut vals: Vec<Option<FAct>> = vec![None; g.shapes.len()];
        let last_use = g.last_uses();
        vals[g.input] = Some(FAct::from_nchw(input));
        for (i, op) in g.ops.iter().enumerate() {
            let get = |t: usize| {
                vals[t]
                    .as_ref()
                    .expect("graph order: inputs computed first")
            };
            let t0 = web_time::Instant::now();
            let out = match op {
                Op::Conv3x3 { a, b, conv, .. } => {
                    let parts: Vec<&FAct> = std::iter::once(get(*a)).chain(b.map(get)).collect();
                    conv3x3(&parts, &self.convs[conv], true)
                }
                Op::MaxPool { x, .. } => maxpool2x2(get(*x)),
                Op::UpConv { x, level, .. } => upconv2x2(get(*x), &self.ups[*level]),
                Op::Resize { x, out } => {
                    let [_, _, h, w] = g.shapes[*out];
                    FAct::from_nchw(&generic::resize_bilinear_ac(&get(*x).to_nchw(), h, w))
                }
                Op::Head { x, .. } => {
                    let logits = head(get(*x), &self.head);
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                    return Ok((logits, times));
                }
                Op::BnRelu { .. } => unreachable!("folded graphs have no standalone BatchNorm"),
            };
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            vals[op.output()] = Some(out);
            for t in op.inputs() {
                if last_use[t] == i {
                    vals[t] = None;
                }
            }
        }
        unreachable!("the graph ends with the head")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Rows `0..rows` (≤ 8) × columns `j..j + cols` (≤ 48) of the output: 24 accumulators,
    /// per k 3 loads of B and 8 broadcasts of A. Starts from `bias` (first K chunk) or from the
    /// output (later chunks); ReLU on the store if `relu`.
    ///
    /// # Safety
    /// AVX-512 F; `a` holds `kc × 8` floats; every `b[k] + j` readable for `cols` floats; `c`
    /// writable for `rows` rows of stride `ldc` and `cols` columns.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel_8x48(
        kc: usize,
        a: *const f32,
        b: &[*const f32],
        j: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        bias: Option<*const f32>,
        relu: bool,
    ) {
        debug_assert!(rows <= MR && cols <= NR && b.len() == kc);
        let mask = |v: usize| -> __mmask16 {
            let n = cols.saturating_sub(16 * v).min(16);
            ((1u32 << n) - 1) as u16
        };
        let m = [mask(0), mask(1), mask(2)];
        let mut acc = [_mm512_setzero_ps(); 3 * MR];
        for r in 0..rows {
            for v in 0..3 {
                acc[3 * r + v] = match bias {
                    Some(bp) => _mm512_set1_ps(*bp.add(r)),
                    None => _mm512_maskz_loadu_ps(m[v], c.add(r * ldc + 16 * v)),
                };
            }
        }
        for (kk, &row) in b.iter().enumerate() {
            let p = row.add(j);
            let x = [
                _mm512_maskz_loadu_ps(m[0], p),
                _mm512_maskz_loadu_ps(m[1], p.add(16)),
                _mm512_maskz_loadu_ps(m[2], p.add(32)),
            ];
            let w = a.add(kk * MR);
            // The weights stream from L3 in the deep layers (megabytes, each used for a few
            // dozen columns): fetch 16 steps ahead (smp ResNet-18 at 256²: 55 → 48–53 ms).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(MR * 16) as *const i8);
            for r in 0..MR {
                let wv = _mm512_set1_ps(*w.add(r));
                for v in 0..3 {
                    acc[3 * r + v] = _mm512_fmadd_ps(wv, x[v], acc[3 * r + v]);
                }
            }
        }
        let zero = _mm512_setzero_ps();
        for r in 0..rows {
            for v in 0..3 {
                let o = if relu {
                    _mm512_max_ps(acc[3 * r + v], zero)
                } else {
                    acc[3 * r + v]
                };
                _mm512_mask_storeu_ps(c.add(r * ldc + 16 * v), m[v], o);
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm32 {
    use super::{MR, NR};
    use std::arch::wasm32::*;

    /// Rows `0..rows` (≤ 4) × columns `j..j + cols` (≤ 8) of the output: 8 accumulators, per k 2
    /// loads of B and 4 splats of A (no FMA in simd128: a multiply and an add). Starts from
    /// `bias` (first K chunk) or from the output; ReLU on the store if `relu`.
    ///
    /// # Safety
    /// As `x86_64::kernel_8x48`, with 8 columns.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn kernel_4x8(
        kc: usize,
        a: *const f32,
        b: &[*const f32],
        j: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        bias: Option<*const f32>,
        relu: bool,
    ) {
        debug_assert!(rows <= MR && cols <= NR && b.len() == kc);
        let load = |p: *const f32| -> [v128; 2] {
            if cols == 8 {
                [
                    v128_load(p as *const v128),
                    v128_load(p.add(4) as *const v128),
                ]
            } else {
                let mut t = [0f32; 8];
                std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), cols);
                [
                    v128_load(t.as_ptr() as *const v128),
                    v128_load(t.as_ptr().add(4) as *const v128),
                ]
            }
        };
        let mut acc = [[f32x4_splat(0.0); 2]; MR];
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            *acc_r = match bias {
                Some(bp) => [f32x4_splat(*bp.add(r)); 2],
                None => load(c.add(r * ldc)),
            };
        }
        for (kk, &row) in b.iter().enumerate() {
            let x = load(row.add(j));
            let w = a.add(kk * MR);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let wv = f32x4_splat(*w.add(r));
                acc_r[0] = f32x4_add(acc_r[0], f32x4_mul(wv, x[0]));
                acc_r[1] = f32x4_add(acc_r[1], f32x4_mul(wv, x[1]));
            }
        }
        let zero = f32x4_splat(0.0);
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            let mut t = [0f32; 8];
            for (v, vec) in acc_r.iter().enumerate() {
                let o = if relu { f32x4_max(*vec, zero) } else { *vec };
                v128_store(t.as_mut_ptr().add(4 * v) as *mut v128, o);
            }
            std::ptr::copy_nonoverlapping(t.as_ptr(), c.add(r * ldc), cols);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_random, InitOptions};

    /// The whole network against the generic float engine: odd sizes (resize), channel counts
    /// not multiples of the panel, batch 2, deep and shallow models.
    #[test]
    fn direct_engine_matches_generic() {
        if !available() {
            eprintln!("SKIPPED: this CPU has no AVX-512");
            return;
        }
        for (features, shape) in [
            (vec![5, 10, 20], [2, 3, 37, 29]),
            (vec![3, 6], [1, 3, 18, 23]),
            (vec![16, 32, 64, 128], [1, 3, 64, 64]),
            (vec![12, 24, 48], [1, 1, 33, 35]),
        ] {
            let m = init_random(
                &UNetSpec::new(shape[1], 2, features.clone()),
                &InitOptions { seed: 9 },
            );
            let x = Tensor {
                shape,
                data: (0..shape.iter().product::<usize>())
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect(),
            };
            let got = F32Model::new(&m).forward(&x).unwrap();
            let g = Graph::build(&m.spec, shape, true).unwrap();
            // The oracle: every op through the generic kernels.
            let mut vals: Vec<Option<Tensor>> = vec![None; g.shapes.len()];
            vals[g.input] = Some(x.clone());
            for op in &g.ops {
                let args: Vec<&Tensor> = op
                    .inputs()
                    .iter()
                    .map(|&t| vals[t].as_ref().unwrap())
                    .collect();
                let out = crate::cpu::apply(&m, &g, op, &args);
                vals[op.output()] = Some(out);
            }
            let want = vals[g.output].take().unwrap();
            let (d, mx) = got.max_abs_diff(&want);
            assert!(
                d <= 1e-4 * mx.max(1e-3),
                "{features:?}: max diff {d}, max {mx}"
            );
        }
    }
}
