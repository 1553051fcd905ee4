//! Float32 convolutions of any geometry on the CPU: an implicit GEMM through the `gemm` crate
//! (threads build cache-sized column tiles of im2col on the fly and multiply them; a 1×1
//! stride-1 conv multiplies the input planes in place), depthwise convs as direct loops, and the
//! transposed conv as one GEMM (`Wᵀ · X`) scattered onto the output (col2im). Bias, a residual
//! tensor and the activation are applied in the epilogue of each tile.
//!
//! Where the direct micro-kernel runs (AVX-512, wasm simd128), one-group convs of any stride and
//! transposed convs whose windows do not overlap take it instead (`conv2d_direct`,
//! `conv_transpose2d_direct`); 3×3 stride-1 convs with enough channels take Winograd
//! (`winograd`).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::buffers;
use crate::cpu::direct_f32::{Packed, MR, TILE};
use crate::cpu::SendPtr;
use crate::graph::Act;
pub use crate::graph::Geom;
use crate::tensor::Tensor;

/// Elements of a tile's im2col slice (per task): about 1 MiB, to stay in L2.
const TILE_ELEMS: usize = 1 << 18;

/// The epilogue: `act(v + bias[co] + add[n, co, p])`.
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub add: Option<&'a Tensor>,
    pub act: &'a Act,
}

impl Epilogue<'_> {
    /// Applies to one output row (image `n`, channel `co`, pixels `p0..p0 + row.len()`).
    #[inline]
    pub(super) fn row(&self, row: &mut [f32], n: usize, co: usize, p0: usize) {
        let b = self.bias.map_or(0.0, |b| b[co]);
        if let Some(add) = self.add {
            let plane = add.plane(n, co);
            for (v, a) in row.iter_mut().zip(&plane[p0..]) {
                *v += b + a;
            }
        } else if b != 0.0 {
            for v in row.iter_mut() {
                *v += b;
            }
        }
        if !matches!(self.act, Act::None) {
            for v in row.iter_mut() {
                *v = self.act.apply(*v, co);
            }
        }
    }
}

/// `out[n, co] = Σ w[co, ci, ky, kx] · x[n, g·cin_g + ci, oy·s + ky·d − pt, ox·s + kx·d − pl]`.
/// `w`: [cout, cin / groups, kh, kw].
pub fn conv2d(
    x: &Tensor,
    w: &[f32],
    cout: usize,
    g: Geom,
    oh: usize,
    ow: usize,
    epi: &Epilogue,
) -> Tensor {
    let [nb, cin, h, wd] = x.shape;
    let cin_g = cin / g.groups;
    let cout_g = cout / g.groups;
    let kk = g.kernel[0] * g.kernel[1];
    let k = cin_g * kk;
    let p = oh * ow;
    let mut out = buffers::zeros([nb, cout, oh, ow]);
    if cin_g == 1 && g.groups > 1 {
        depthwise(x, w, cout_g, g, &mut out);
        finish(&mut out, epi);
        return out;
    }
    let pointwise = kk == 1 && g.stride == [1, 1] && g.pad == [0; 4] && (oh, ow) == (h, wd);
    let mut tile = (TILE_ELEMS / k).max(64).min(p);
    let few = p.div_ceil(tile) < 2 * rayon::current_num_threads();
    if few || pointwise {
        tile = p;
    }
    let par = if tile == p {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let dst = SendPtr(out.data.as_mut_ptr());
    for n in 0..nb {
        for gi in 0..g.groups {
            let xoff = (n * cin + gi * cin_g) * h * wd;
            let xs = &x.data[xoff..xoff + cin_g * h * wd];
            let wg = &w[gi * cout_g * k..(gi + 1) * cout_g * k];
            let ooff = (n * cout + gi * cout_g) * p;
            (0..p.div_ceil(tile)).into_par_iter().for_each(|t| {
                let (j0, j1) = (t * tile, ((t + 1) * tile).min(p));
                let cols = j1 - j0;
                let col;
                let (rhs, rhs_rs) = if pointwise {
                    (xs[j0..].as_ptr(), (h * wd) as isize)
                } else {
                    col = im2col(xs, cin_g, h, wd, g, ow, j0, cols);
                    (col.as_ptr(), cols as isize)
                };
                // SAFETY: each task writes columns j0..j1 of this group's output rows only.
                unsafe {
                    gemm(
                        cout_g,
                        cols,
                        k,
                        dst.at(ooff + j0),
                        1,
                        p as isize,
                        false,
                        wg.as_ptr(),
                        1,
                        k as isize,
                        rhs,
                        1,
                        rhs_rs,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    );
                }
            });
        }
    }
    finish(&mut out, epi);
    out
}

/// The epilogue over every output plane.
fn finish(out: &mut Tensor, epi: &Epilogue) {
    if epi.bias.is_none() && epi.add.is_none() && matches!(epi.act, Act::None) {
        return;
    }
    let c = out.c();
    let hw = out.h() * out.w();
    out.data
        .par_chunks_mut(hw)
        .enumerate()
        .for_each(|(i, plane)| epi.row(plane, i / c, i % c, 0));
}

/// Rows (ci, ky, kx) × columns j0..j0 + cols of one group's im2col.
fn im2col(
    xs: &[f32],
    cin_g: usize,
    h: usize,
    w: usize,
    g: Geom,
    ow: usize,
    j0: usize,
    cols: usize,
) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let mut b = vec![0f32; cin_g * kh * kw * cols];
    let mut row = 0;
    for ci in 0..cin_g {
        let plane = &xs[ci * h * w..(ci + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let dst = &mut b[row * cols..(row + 1) * cols];
                let mut j = 0;
                while j < cols {
                    let pidx = j0 + j;
                    let (oy, ox0) = (pidx / ow, pidx % ow);
                    let run = (ow - ox0).min(cols - j);
                    let iy = (oy * g.stride[0] + ky * g.dil[0]) as isize - g.pad[0] as isize;
                    if iy >= 0 && (iy as usize) < h {
                        let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                        let off = (kx * g.dil[1]) as isize - g.pad[1] as isize;
                        if g.stride[1] == 1 {
                            // Contiguous: the in-range part is one copy.
                            let lo = (-(off + ox0 as isize)).clamp(0, run as isize) as usize;
                            let hi =
                                ((w as isize - off - ox0 as isize).clamp(0, run as isize)) as usize;
                            if hi > lo {
                                let s0 = (ox0 as isize + lo as isize + off) as usize;
                                dst[j + lo..j + hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                            }
                        } else {
                            for r in 0..run {
                                let ix = ((ox0 + r) * g.stride[1]) as isize + off;
                                if ix >= 0 && (ix as usize) < w {
                                    dst[j + r] = src[ix as usize];
                                }
                            }
                        }
                    }
                    j += run;
                }
                row += 1;
            }
        }
    }
    b
}

/// Grouped convs with one input channel per group (depthwise, any multiplier).
fn depthwise(x: &Tensor, w: &[f32], cout_g: usize, g: Geom, out: &mut Tensor) {
    let [_, cin, h, wd] = x.shape;
    let [_, cout, oh, ow] = out.shape;
    let [kh, kw] = g.kernel;
    out.data
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(i, o)| {
            let (n, co) = (i / cout, i % cout);
            let ci = co / cout_g;
            let src = x.plane(n, ci);
            let wk = &w[co * kh * kw..(co + 1) * kh * kw];
            let _ = cin;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0f32;
                    for ky in 0..kh {
                        let iy = (oy * g.stride[0] + ky * g.dil[0]) as isize - g.pad[0] as isize;
                        if iy < 0 || iy as usize >= h {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix =
                                (ox * g.stride[1] + kx * g.dil[1]) as isize - g.pad[1] as isize;
                            if ix >= 0 && (ix as usize) < wd {
                                acc += wk[ky * kw + kx] * src[iy as usize * wd + ix as usize];
                            }
                        }
                    }
                    o[oy * ow + ox] = acc;
                }
            }
        });
}

/// Transposed conv: `w`: [cin, cout / groups, kh, kw]; per image and group one GEMM
/// `cols[(co, ky, kx), pixel] = Σ_ci w[ci, co, ky, kx] · x[ci, pixel]`, then each column is added
/// to the output pixel it lands on.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &[f32],
    cout: usize,
    g: Geom,
    oh: usize,
    ow: usize,
    epi: &Epilogue,
) -> Tensor {
    let [nb, cin, h, wd] = x.shape;
    let cin_g = cin / g.groups;
    let cout_g = cout / g.groups;
    let [kh, kw] = g.kernel;
    let kk = kh * kw;
    let p = h * wd;
    let rows = cout_g * kk;
    let mut out = buffers::zeros([nb, cout, oh, ow]);
    let mut cols = vec![0f32; rows * p];
    for n in 0..nb {
        for gi in 0..g.groups {
            let xs = &x.data[(n * cin + gi * cin_g) * p..][..cin_g * p];
            let wg = &w[gi * cin_g * rows..(gi + 1) * cin_g * rows];
            // SAFETY: `cols` is rows × p, written whole; lhs[r, ci] = wg[ci · rows + r].
            unsafe {
                gemm(
                    rows,
                    p,
                    cin_g,
                    cols.as_mut_ptr(),
                    1,
                    p as isize,
                    false,
                    wg.as_ptr(),
                    rows as isize,
                    1,
                    xs.as_ptr(),
                    1,
                    p as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::Rayon(0),
                );
            }
            let obase = (n * cout + gi * cout_g) * oh * ow;
            out.data[obase..obase + cout_g * oh * ow]
                .par_chunks_mut(oh * ow)
                .enumerate()
                .for_each(|(co, o)| {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let c = &cols[(co * kk + ky * kw + kx) * p..][..p];
                            for iy in 0..h {
                                let oy =
                                    (iy * g.stride[0] + ky * g.dil[0]) as isize - g.pad[0] as isize;
                                if oy < 0 || oy as usize >= oh {
                                    continue;
                                }
                                let orow = &mut o[oy as usize * ow..(oy as usize + 1) * ow];
                                for ix in 0..wd {
                                    let ox = (ix * g.stride[1] + kx * g.dil[1]) as isize
                                        - g.pad[1] as isize;
                                    if ox >= 0 && (ox as usize) < ow {
                                        orow[ox as usize] += c[iy * wd + ix];
                                    }
                                }
                            }
                        }
                    }
                });
        }
    }
    finish(&mut out, epi);
    out
}

/// A one-group conv's weights packed for the direct engine's micro-kernel (`direct_f32`), its
/// bias included; `None` where that kernel does not run here (no AVX-512 or simd128) or the conv
/// is grouped.
pub(crate) fn pack_direct(
    w: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    cin: usize,
    g: Geom,
) -> Option<Packed> {
    if !crate::cpu::direct_f32::available() || g.groups != 1 {
        return None;
    }
    let k = cin * g.kernel[0] * g.kernel[1];
    let b = bias.map_or_else(|| vec![0.0; cout], <[f32]>::to_vec);
    Some(Packed::new(cout, k, |r, kk| w[r * k + kk], b))
}

/// A transposed conv whose windows do not overlap (kernel = stride, no padding or dilation, one
/// group: the k2 s2 upsampling of U-Nets) packed for the direct kernel: rows (tap, co), K the
/// input channels, bias per row.
pub(crate) fn pack_direct_transposed(
    w: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    cin: usize,
    g: Geom,
) -> Option<Packed> {
    if !crate::cpu::direct_f32::available()
        || g.groups != 1
        || g.stride != g.kernel
        || g.pad != [0; 4]
        || g.dil != [1, 1]
    {
        return None;
    }
    let taps = g.kernel[0] * g.kernel[1];
    let b: Vec<f32> = (0..taps * cout)
        .map(|r| bias.map_or(0.0, |b| b[r % cout]))
        .collect();
    // w: [cin][cout][tap]; row r = tap · cout + co.
    Some(Packed::new(
        taps * cout,
        cin,
        |r, ci| w[(ci * cout + r % cout) * taps + r / cout],
        b,
    ))
}

/// The non-overlapping transposed conv: one GEMM of the packed rows (tap, co) over the input
/// planes (the B rows, read in place), each tap's plane then scattered to its output pixels with
/// the activation.
pub(crate) fn conv_transpose2d_direct(
    x: &Tensor,
    p: &Packed,
    k: [usize; 2],
    out_shape: [usize; 4],
    act: &Act,
) -> Tensor {
    let [nb, cin, h, w] = x.shape;
    let [_, cout, oh, ow] = out_shape;
    let npix = h * w;
    // Every output pixel is some tap's (kernel = stride), and the GEMM writes all of `acc`.
    let mut out = buffers::filled(out_shape);
    let mut acc = buffers::scratch(p.m * npix);
    let tiles = npix.div_ceil(TILE);
    let mb = crate::cpu::row_block(p.m, tiles, MR);
    let blocks = p.m.div_ceil(mb);
    for n in 0..nb {
        let dst = SendPtr(acc.as_mut_ptr());
        (0..tiles * blocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / blocks, t % blocks);
            let (j0, j1) = (tile * TILE, ((tile + 1) * TILE).min(npix));
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(p.m));
            let b: Vec<*const f32> = (0..cin).map(|ci| x.plane(n, ci)[j0..].as_ptr()).collect();
            // SAFETY: each row pointer reads `j1 − j0` floats of one input plane; this task
            // writes rows i0..i1, columns j0..j1 of `acc`.
            unsafe {
                crate::cpu::direct_f32::gemm_task(p, (i0, i1), &b, j1 - j0, dst.at(j0), npix, false)
            };
        });
        let acc = &acc;
        out.data[n * cout * oh * ow..(n + 1) * cout * oh * ow]
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(co, o)| {
                for tap in 0..k[0] * k[1] {
                    let (dy, dx) = (tap / k[1], tap % k[1]);
                    let src = &acc[(tap * cout + co) * npix..][..npix];
                    for y in 0..h {
                        let row = &mut o[(y * k[0] + dy) * ow..][..ow];
                        for (xx, &v) in src[y * w..(y + 1) * w].iter().enumerate() {
                            row[xx * k[1] + dx] = act.apply(v, co);
                        }
                    }
                }
            });
    }
    buffers::give(acc);
    out
}

/// A conv as an implicit GEMM with no im2col. The input is copied once into planes padded by
/// the conv's pads and, for a stride s, split into its s × s phases (phase (ry, rx) holds the
/// padded pixels (s·a + ry, s·b + rx)): the GEMM row of (channel, ky, kx) is then one phase
/// plane shifted by the tap, `(ky·d) / s` rows and `(kx·d) / s` columns. Output position
/// `j = y · pw + x` (pw the phase planes' width; columns `x ≥ ow` are junk and dropped when the
/// epilogue copies the result out). Bias comes with the packed weights.
pub(crate) fn conv2d_direct(
    parts: &[&Tensor],
    p: &Packed,
    g: Geom,
    oh: usize,
    ow: usize,
    epi: &Epilogue,
) -> Tensor {
    let x = parts[0];
    let [nb, _, h, w] = x.shape;
    let cin: usize = parts.iter().map(|t| t.c()).sum();
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    // Tap (ky, kx): its phase and its shift inside the phase plane.
    let tap = |ky: usize, kx: usize| {
        let (oy, ox) = (ky * g.dil[0], kx * g.dil[1]);
        ((oy % sy, ox % sx), (oy / sy, ox / sx))
    };
    // The phases some tap reads (a 1×1 stride-2 conv reads one of four).
    let mut phases: Vec<(usize, usize)> = (0..kh * kw).map(|t| tap(t / kw, t % kw).0).collect();
    phases.sort_unstable();
    phases.dedup();
    let (ph, pw) = (
        (h + g.pad[0] + g.pad[2]).div_ceil(sy),
        (w + g.pad[1] + g.pad[3]).div_ceil(sx),
    );
    let plane = ph * pw;
    let cout = p.m;
    let ncols = oh * pw;
    debug_assert_eq!(p.k, cin * kh * kw);
    let direct_input = kh * kw == 1 && g.pad == [0; 4] && g.stride == [1, 1] && parts.len() == 1;
    // Junk columns of the last rows read up to the largest column shift past the last plane.
    let slack = tap(kh - 1, kw - 1).1 .1 + 16;
    // The epilogue copies every output row, and the GEMM writes all of `acc`.
    let mut out = buffers::filled([nb, cout, oh, ow]);
    let mut acc = buffers::scratch(cout * ncols);
    let tiles = ncols.div_ceil(TILE);
    let mb = crate::cpu::row_block(cout, tiles, MR);
    let blocks = cout.div_ceil(mb);
    let mut padded = if direct_input {
        Vec::new()
    } else {
        buffers::scratch(cin * phases.len() * plane + slack)
    };
    let np = phases.len();
    for n in 0..nb {
        let src: &[f32] = if direct_input {
            &x.data[n * cin * h * w..(n + 1) * cin * h * w]
        } else {
            // Recycled: its borders (and slack) must be zero again.
            padded.fill(0.0);
            // The parts' channels one after another: a concatenation costs nothing more.
            let srcs: Vec<(&Tensor, usize)> = parts
                .iter()
                .flat_map(|t| (0..t.c()).map(move |c| (*t, c)))
                .collect();
            padded[..cin * np * plane]
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(i, dst)| {
                    let ((t, c), (ry, rx)) = (srcs[i / np], phases[i % np]);
                    let s = t.plane(n, c);
                    // Phase row a is padded row sy·a + ry, input row sy·a + ry − pad_top.
                    for (a, drow) in dst.chunks_exact_mut(pw).enumerate() {
                        let Some(y) = (sy * a + ry).checked_sub(g.pad[0]).filter(|&y| y < h) else {
                            continue;
                        };
                        let srow = &s[y * w..(y + 1) * w];
                        if sx == 1 {
                            let x0 = g.pad[1].saturating_sub(rx);
                            let from = (x0 + rx).saturating_sub(g.pad[1]);
                            let len = (w - from).min(pw - x0);
                            drow[x0..x0 + len].copy_from_slice(&srow[from..from + len]);
                        } else {
                            for (b, d) in drow.iter_mut().enumerate() {
                                if let Some(&v) = (sx * b + rx)
                                    .checked_sub(g.pad[1])
                                    .and_then(|x| srow.get(x))
                                {
                                    *d = v;
                                }
                            }
                        }
                    }
                });
            &padded
        };
        let dst = SendPtr(acc.as_mut_ptr());
        (0..tiles * blocks).into_par_iter().for_each(|t| {
            let (tile, blk) = (t / blocks, t % blocks);
            let (j0, j1) = (tile * TILE, ((tile + 1) * TILE).min(ncols));
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(cout));
            let mut b = Vec::with_capacity(p.k);
            for ci in 0..cin {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let (phase, (qy, qx)) = tap(ky, kx);
                        let pi = if direct_input {
                            0
                        } else {
                            phases.binary_search(&phase).expect("a used phase")
                        };
                        b.push(src[(ci * np + pi) * plane + qy * pw + qx + j0..].as_ptr());
                    }
                }
            }
            // SAFETY: each row pointer reads `cols` floats inside `src` (padded planes plus
            // `slack`); this task writes rows i0..i1, columns j0..j1 of `acc`.
            unsafe {
                crate::cpu::direct_f32::gemm_task(
                    p,
                    (i0, i1),
                    &b,
                    j1 - j0,
                    dst.at(j0),
                    ncols,
                    false,
                )
            };
        });
        let epi_rest = Epilogue {
            bias: None,
            add: epi.add,
            act: epi.act,
        };
        let acc = &acc;
        out.data[n * cout * oh * ow..(n + 1) * cout * oh * ow]
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(co, o)| {
                for y in 0..oh {
                    o[y * ow..(y + 1) * ow].copy_from_slice(&acc[co * ncols + y * pw..][..ow]);
                }
                epi_rest.row(o, n, co, 0);
            });
    }
    buffers::give(acc);
    buffers::give(padded);
    out
}
