//! Winograd F(4×4, 3×3) for the CPU graph engine's 3×3, stride-1, one-group convs (the
//! arithmetic in `crate::winograd`): 36 multiply-adds per 16 output pixels per channel pair
//! where the direct kernel does 144.
//!
//! The weights are transformed once (U = G g Gᵀ, float64 rounded once) and packed as 36 GEMMs of
//! `cout × cin` for the direct engine's micro-kernel (`direct_f32::gemm_task`). A layer runs in
//! bands of 4 × 4 output tiles, each band end to end:
//! 1. the input transform of its tiles, every input channel, into V `[ci][ξ][tile]`;
//! 2. the 36 GEMMs `M[ξ] = U[ξ] · V[ξ]`, into M `[co][ξ][tile]` (the B rows are V's rows, read in
//!    place);
//! 3. the output transform with bias, the residual add and the activation, straight into the
//!    output tensor.
//!
//! A band's V and M together stay under `BAND_BYTES`, so they stay in the L2 of the core that
//! runs it; wide layers with few pixels take bigger bands so that U (4× the direct weights) is
//! read few times. With enough bands every thread runs whole bands on its own scratch; with few
//! (the deep layers), the bands run one after another and the work inside each is split.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{Epilogue, Geom};
use crate::cpu::direct_f32::{gemm_task, Packed, MR};
use crate::cpu::SendPtr;
use crate::tensor::Tensor;
use crate::winograd::{at, bt, kernel};

/// Bytes of V and M one band may hold (a core's L2 is 1–2 MiB).
const BAND_BYTES: usize = 1 << 20;
/// Fewest tiles per band, whatever its bytes: two micro-kernel widths of GEMM columns.
const MIN_BAND_TILES: usize = 48;
/// Fewest input channels: below, the transforms cost more than the multiplies they save.
const MIN_CIN: usize = 16;
/// Fewest output channels: the micro-kernel's panels have 8 rows.
const MIN_COUT: usize = 8;
/// Fewest 4 × 4 tiles per image: below, the GEMM's columns are mostly padding and U's bytes
/// dominate (the direct kernel wins).
const MIN_TILES: usize = 64;

/// A conv's weights transformed and packed: 36 GEMMs of `cout × cin`.
pub(crate) struct Wino {
    u: Vec<Packed>,
    bias: Vec<f32>,
    /// Top and left padding.
    pad: [usize; 2],
}

impl Wino {
    /// The packed weights of a conv that this path runs at output size `oh × ow`: 3×3,
    /// stride 1, no dilation, one group, enough channels and tiles, on a CPU with the direct
    /// micro-kernel. `w`: `[cout, cin, 3, 3]`.
    pub(crate) fn new(
        w: &[f32],
        bias: Option<&[f32]>,
        [cout, cin]: [usize; 2],
        g: Geom,
        [oh, ow]: [usize; 2],
    ) -> Option<Wino> {
        if !crate::cpu::direct_f32::available()
            || g.kernel != [3, 3]
            || g.stride != [1, 1]
            || g.dil != [1, 1]
            || g.groups != 1
            || cin < MIN_CIN
            || cout < MIN_COUT
            || oh.div_ceil(4) * ow.div_ceil(4) < MIN_TILES
        {
            return None;
        }
        let u: Vec<[f32; 36]> = (0..cout * cin)
            .into_par_iter()
            .map(|i| kernel(&w[i * 9..][..9]))
            .collect();
        let zeros = vec![0.0; cout];
        let u = (0..36)
            .map(|xi| Packed::new(cout, cin, |co, ci| u[co * cin + ci][xi], zeros.clone()))
            .collect();
        Some(Wino {
            u,
            bias: bias.map_or(zeros, <[f32]>::to_vec),
            pad: [g.pad[0], g.pad[1]],
        })
    }

    fn cin(&self) -> usize {
        self.u[0].k
    }

    fn cout(&self) -> usize {
        self.u[0].m
    }
}

/// A run of tiles `t0..t1` of image `n` (tiles numbered row-major over the output).
#[derive(Clone, Copy)]
struct Band {
    n: usize,
    t0: usize,
    t1: usize,
}

/// What every band of one layer shares.
struct Layer<'a> {
    p: &'a Wino,
    /// Input channel `ci` of image `n`: `srcs[ci]` (a part of a concatenation, its channel).
    srcs: Vec<(&'a Tensor, usize)>,
    /// Input and output sizes, and tiles per output row.
    hw: [usize; 2],
    ohw: [usize; 2],
    tiles_x: usize,
    /// Tiles between rows of V and M (the largest band).
    tb: usize,
    epi: &'a Epilogue<'a>,
    out: SendPtr<f32>,
}

/// The bands of a layer of `tiles` tiles per image, `nb` images and `channels` input and output
/// channels together, on `threads` threads: every tile of every image in exactly one band, no
/// band empty; and the most tiles in a band.
fn bands(nb: usize, tiles: usize, channels: usize, threads: usize) -> (Vec<Band>, usize) {
    let fit = BAND_BYTES / (36 * 4 * channels);
    let per = fit.max(MIN_BAND_TILES).min(tiles);
    let mut nbands = tiles.div_ceil(per);
    // Bands as a multiple of the threads where they run on the threads (5 bands on 2 threads
    // leave one idle a fifth of the time), unless that makes them narrower than a vector.
    let even = (nb * nbands).next_multiple_of(threads).div_ceil(nb);
    if nb * nbands >= 2 * threads && tiles / even >= LANES {
        nbands = even;
    }
    let per = tiles.div_ceil(nbands);
    let bands = (0..nb)
        .flat_map(|n| {
            // Rounding the band count up can leave the last bands without tiles.
            (0..nbands)
                .map(move |b| Band {
                    n,
                    t0: b * per,
                    t1: ((b + 1) * per).min(tiles),
                })
                .filter(|b| b.t0 < b.t1)
        })
        .collect();
    (bands, per)
}

/// `act(conv3x3(parts) + bias + add)` through Winograd, output `oh × ow` (the parts' channels
/// one after another: a concatenation read in place).
pub(crate) fn conv(parts: &[&Tensor], p: &Wino, [oh, ow]: [usize; 2], epi: &Epilogue) -> Tensor {
    let [nb, _, h, w] = parts[0].shape;
    let srcs: Vec<(&Tensor, usize)> = parts
        .iter()
        .flat_map(|t| (0..t.c()).map(move |c| (*t, c)))
        .collect();
    debug_assert_eq!(srcs.len(), p.cin());
    let (cin, cout) = (p.cin(), p.cout());
    let tiles_x = ow.div_ceil(4);
    let tiles = oh.div_ceil(4) * tiles_x;
    let (bands, per) = bands(nb, tiles, cin + cout, rayon::current_num_threads());
    // Rows of V and M start on cache lines: the GEMM's vector loads of V never split one.
    let tb = per.next_multiple_of(LANES);
    // The tiles cover every output pixel.
    let mut out = super::buffers::filled([nb, cout, oh, ow]);
    let layer = Layer {
        p,
        srcs,
        hw: [h, w],
        ohw: [oh, ow],
        tiles_x,
        tb,
        epi,
        out: SendPtr(out.data.as_mut_ptr()),
    };
    let lens = [36 * cin * tb, 36 * cout * tb + LANES];
    if bands.len() >= 2 * rayon::current_num_threads() {
        bands
            .par_iter()
            .for_each(|b| with_scratch(lens, |v, m| layer.band(*b, v, m, false)));
    } else {
        with_scratch(lens, |v, m| {
            for b in &bands {
                layer.band(*b, v, m, true);
            }
        });
    }
    out
}

/// The stretches of one tile row inside a band: (tile row, first tile column, tiles, offset of
/// the first in the band).
fn segments(b: Band, tiles_x: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut t = b.t0;
    std::iter::from_fn(move || {
        (t < b.t1).then(|| {
            let (ty, tx) = (t / tiles_x, t % tiles_x);
            let s = (tiles_x - tx).min(b.t1 - t);
            let seg = (ty, tx, s, t - b.t0);
            t += s;
            seg
        })
    })
}

impl Layer<'_> {
    /// One band end to end; `par` splits the work inside it over the threads.
    fn band(&self, b: Band, v: &mut [f32], m: &mut [f32], par: bool) {
        let (cin, cout, tb) = (self.p.cin(), self.p.cout(), self.tb);
        let cols = b.t1 - b.t0;
        // 1. V[ci][ξ][t].
        let input = |(ci, vc): (usize, &mut [f32])| self.input_transform(b, ci, vc);
        if par {
            v.par_chunks_mut(36 * tb).enumerate().for_each(input);
        } else {
            v.chunks_mut(36 * tb).enumerate().for_each(input);
        }
        // 2. M[co][ξ][t] = Σ_ci U[ξ][co][ci] · V[ci][ξ][t].
        let (vp, mp) = (SendPtr(v.as_mut_ptr()), SendPtr(m.as_mut_ptr()));
        let mb = if par {
            crate::cpu::row_block(cout, 36, MR)
        } else {
            cout
        };
        let blocks = cout.div_ceil(mb);
        let gemm = |task: usize| {
            let (xi, blk) = (task / blocks, task % blocks);
            let rows: Vec<*const f32> = (0..cin)
                .map(|ci| vp.at((ci * 36 + xi) * tb) as *const f32)
                .collect();
            let (i0, i1) = (blk * mb, ((blk + 1) * mb).min(cout));
            // SAFETY: each B row is `cols` ≤ tb floats of V; the task writes rows i0..i1 of
            // GEMM ξ, columns 0..cols, at stride 36 · tb: its own part of M.
            unsafe {
                gemm_task(
                    &self.p.u[xi],
                    (i0, i1),
                    &rows,
                    cols,
                    mp.at(xi * tb),
                    36 * tb,
                    false,
                )
            };
        };
        if par {
            (0..36 * blocks).into_par_iter().for_each(gemm);
        } else {
            (0..36 * blocks).for_each(gemm);
        }
        // 3. Output tiles with the epilogue.
        // Channel co's part of M runs on to M's end: its last vectors read past the band.
        let m = &m[..];
        let output = |co: usize| self.output_transform(b, co, &m[co * 36 * tb..]);
        if par {
            (0..cout).into_par_iter().for_each(output);
        } else {
            (0..cout).for_each(output);
        }
    }

    /// Channel `ci`'s 6 × 6 input patches of band `b`, transformed: `vc[ξ · tb + t]`.
    fn input_transform(&self, b: Band, ci: usize, vc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            assert!(std::is_x86_feature_detected!("avx512f"));
            // SAFETY: the CPU has AVX-512 F.
            unsafe { self.input_transform_avx512(b, ci, vc) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.input_transform_body(b, ci, vc)
    }

    /// The transforms compiled for AVX-512 (the rest of the crate is built for baseline
    /// x86-64; the loops over tiles vectorize 16 wide).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn input_transform_avx512(&self, b: Band, ci: usize, vc: &mut [f32]) {
        self.input_transform_body(b, ci, vc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn output_transform_avx512(&self, b: Band, co: usize, mc: &[f32]) {
        self.output_transform_body(b, co, mc)
    }

    #[inline(always)]
    fn input_transform_body(&self, b: Band, ci: usize, vc: &mut [f32]) {
        let (t, c) = self.srcs[ci];
        let plane = t.plane(b.n, c);
        let [h, w] = self.hw;
        let [pt, pl] = self.p.pad;
        let tb = self.tb;
        let mut row = Vec::new();
        // xr[r][kx][i]: input row r of the patches through Bᵀ along x.
        let mut xr = Vec::new();
        for (ty, tx0, s, o) in segments(b, self.tiles_x) {
            let sp = s.div_ceil(LANES) * LANES;
            xr.clear();
            xr.resize(36 * sp, 0.0);
            for r in 0..6 {
                let y = (4 * ty + r) as isize - pt as isize;
                row.clear();
                // Tile i's taps are row[4i..4i + 6]; the last block's loads end at 4 · sp + 16.
                row.resize(4 * sp + 16, 0.0);
                if (0..h as isize).contains(&y) {
                    let src = &plane[y as usize * w..][..w];
                    // Input column x = 4 · tx0 − pl + k.
                    let x0 = (4 * tx0) as isize - pl as isize;
                    let k0 = (-x0).max(0) as usize;
                    let k1 = ((w as isize - x0).max(0) as usize).min(4 * s + 2);
                    if k0 < k1 {
                        row[k0..k1].copy_from_slice(&src[(x0 + k0 as isize) as usize..][..k1 - k0]);
                    }
                }
                for blk in 0..sp / LANES {
                    let src = &row[4 * LANES * blk..];
                    let e = bt(V16::taps(src));
                    for (kx, e) in e.iter().enumerate() {
                        e.store(&mut xr[(r * 6 + kx) * sp + LANES * blk..], LANES);
                    }
                }
            }
            for kx in 0..6 {
                for blk in 0..sp / LANES {
                    let i = LANES * blk;
                    let row = |r: usize| V16::load(&xr[(r * 6 + kx) * sp + i..]);
                    let e = bt([row(0), row(1), row(2), row(3), row(4), row(5)]);
                    for (ky, e) in e.iter().enumerate() {
                        e.store(&mut vc[(6 * ky + kx) * tb + o + i..], s - i);
                    }
                }
            }
        }
    }

    /// Output channel `co`'s tiles of band `b` from `mc[ξ · tb + t]`, with bias, residual and
    /// activation, into the output tensor.
    fn output_transform(&self, b: Band, co: usize, mc: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            assert!(std::is_x86_feature_detected!("avx512f"));
            // SAFETY: the CPU has AVX-512 F.
            unsafe { self.output_transform_avx512(b, co, mc) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.output_transform_body(b, co, mc)
    }

    #[inline(always)]
    fn output_transform_body(&self, b: Band, co: usize, mc: &[f32]) {
        let [oh, ow] = self.ohw;
        let tb = self.tb;
        let bias = self.p.bias[co];
        let plane = b.n * self.p.cout() * oh * ow + co * oh * ow;
        let mut yr = Vec::new();
        let mut row = Vec::new();
        for (ty, tx0, s, o) in segments(b, self.tiles_x) {
            let sp = s.div_ceil(LANES) * LANES;
            // yr[dy][kx][i]: the frequencies through Aᵀ along y.
            yr.clear();
            yr.resize(24 * sp, 0.0);
            for kx in 0..6 {
                for blk in 0..sp / LANES {
                    let i = LANES * blk;
                    // Lanes past the band read the next rows of M (or its slack): their
                    // results are never stored.
                    let f = |ky: usize| V16::load(&mc[(6 * ky + kx) * tb + o + i..]);
                    let e = at([f(0), f(1), f(2), f(3), f(4), f(5)]);
                    for (dy, e) in e.iter().enumerate() {
                        e.store(&mut yr[(dy * 6 + kx) * sp + i..], LANES);
                    }
                }
            }
            let x0 = 4 * tx0;
            let width = (4 * s).min(ow - x0);
            row.clear();
            row.resize(4 * sp, 0.0);
            for dy in 0..4 {
                let y = 4 * ty + dy;
                if y >= oh {
                    break;
                }
                for blk in 0..sp / LANES {
                    let i = LANES * blk;
                    let f = |kx: usize| V16::load(&yr[(dy * 6 + kx) * sp + i..]);
                    let e = at([f(0), f(1), f(2), f(3), f(4), f(5)]);
                    V16::interleave(e.map(|e| e + bias), &mut row[4 * i..]);
                }
                let p0 = y * ow + x0;
                // SAFETY: the band owns its tiles' output pixels; this row stretch is
                // `width` floats of plane (n, co), written by this call only.
                let dst = unsafe { std::slice::from_raw_parts_mut(self.out.at(plane + p0), width) };
                dst.copy_from_slice(&row[..width]);
                self.epi.row(dst, b.n, co, p0);
            }
        }
    }
}

thread_local! {
    /// Each thread's V and M, kept between layers and runs: a band's size, about `BAND_BYTES`
    /// (more for the deep layers' single bands). Allocating them per layer cost page faults.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// `f(V, M)` on this thread's scratch (or, where it is in use further up this thread's stack,
/// fresh buffers), each `lens[i]` floats starting on a 64-byte boundary: the GEMM's vector
/// loads of V never split a cache line.
fn with_scratch<R>(lens: [usize; 2], f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
        if buf.len() < len + 15 {
            *buf = vec![0.0; len + 15];
        }
        let skip = buf.as_ptr().align_offset(64);
        &mut buf[skip..skip + len]
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let [v, m] = &mut *s;
            f(aligned(v, lens[0]), aligned(m, lens[1]))
        }
        Err(_) => {
            let (mut v, mut m) = (Vec::new(), Vec::new());
            f(aligned(&mut v, lens[0]), aligned(&mut m, lens[1]))
        }
    })
}

/// Tiles per vector of the transforms.
const LANES: usize = 16;

/// One transform entry of 16 tiles. The arithmetic is element-wise over a fixed-size array, so
/// inside the AVX-512 functions each operation compiles to one vector instruction.
#[derive(Clone, Copy)]
struct V16([f32; LANES]);

impl V16 {
    #[inline(always)]
    fn load(s: &[f32]) -> V16 {
        V16(s[..LANES].try_into().expect("16 lanes"))
    }

    /// The 6 taps of 16 consecutive tiles of a row: lane l of tap c is `s[4l + c]` (`s` holds
    /// at least 80 floats).
    #[inline(always)]
    fn taps(s: &[f32]) -> [V16; 6] {
        let s = &s[..80];
        // SAFETY: on x86-64 the transforms run inside their AVX-512 functions only; `s` holds
        // the 80 floats read.
        #[cfg(target_arch = "x86_64")]
        return unsafe { x86::taps(s.as_ptr()) };
        #[cfg(not(target_arch = "x86_64"))]
        V16::taps_portable(s)
    }

    /// `taps` in plain Rust (the wasm build's, which LLVM vectorizes with simd128).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn taps_portable(s: &[f32]) -> [V16; 6] {
        std::array::from_fn(|c| V16(std::array::from_fn(|l| s[4 * l + c])))
    }

    /// The first `n` (at most 16) lanes into `d`.
    #[inline(always)]
    fn store(&self, d: &mut [f32], n: usize) {
        if n >= LANES {
            d[..LANES].copy_from_slice(&self.0);
        } else {
            d[..n].copy_from_slice(&self.0[..n]);
        }
    }

    /// Lane l of `e[c]` into `d[4l + c]` (64 floats): 16 tiles' 4 output columns, in order.
    #[inline(always)]
    fn interleave(e: [V16; 4], d: &mut [f32]) {
        let d = &mut d[..64];
        // SAFETY: as in `taps`; `d` holds the 64 floats written.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::interleave(e, d.as_mut_ptr())
        };
        #[cfg(not(target_arch = "x86_64"))]
        V16::interleave_portable(e, d)
    }

    /// `interleave` in plain Rust.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn interleave_portable(e: [V16; 4], d: &mut [f32]) {
        for (c, e) in e.iter().enumerate() {
            for (l, v) in e.0.iter().enumerate() {
                d[4 * l + c] = *v;
            }
        }
    }
}

/// The strided parts of the transforms as AVX-512 shuffles.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::V16;
    use std::arch::x86_64::*;
    use std::mem::transmute;

    /// Lane l = `p[4l + c]` for c = 0..4 (p: 64 floats): each phase gathered from two pairs of
    /// vectors (tiles 0–7 and 8–15) and joined.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn phases(p: *const f32) -> [__m512; 4] {
        // (Closures would not inherit the target feature: no `map` here.)
        let a = [
            _mm512_loadu_ps(p),
            _mm512_loadu_ps(p.add(16)),
            _mm512_loadu_ps(p.add(32)),
            _mm512_loadu_ps(p.add(48)),
        ];
        let mut out = [_mm512_setzero_ps(); 4];
        for (c, o) in out.iter_mut().enumerate() {
            let c = c as i32;
            let idx = _mm512_setr_epi32(
                c,
                4 + c,
                8 + c,
                12 + c,
                16 + c,
                20 + c,
                24 + c,
                28 + c,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            );
            let lo = _mm512_permutex2var_ps(a[0], idx, a[1]);
            let hi = _mm512_permutex2var_ps(a[2], idx, a[3]);
            *o = _mm512_shuffle_f32x4::<0x44>(lo, hi);
        }
        out
    }

    /// See `V16::taps`; taps 4 and 5 are taps 0 and 1 of the next tiles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn taps(s: *const f32) -> [V16; 6] {
        let [t0, t1, t2, t3] = phases(s);
        let [t4, t5, _, _] = phases(s.add(4));
        let v = |x: __m512| V16(transmute::<__m512, [f32; 16]>(x));
        [v(t0), v(t1), v(t2), v(t3), v(t4), v(t5)]
    }

    /// See `V16::interleave`: a 4 × 4 transpose inside each 128-bit lane (tile 4L + j in lane L
    /// of u[j]), then of the 128-bit lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn interleave(e: [V16; 4], d: *mut f32) {
        let [e0, e1, e2, e3] = e.map(|v| transmute::<[f32; 16], __m512>(v.0));
        let (t0, t1) = (_mm512_unpacklo_ps(e0, e1), _mm512_unpackhi_ps(e0, e1));
        let (t2, t3) = (_mm512_unpacklo_ps(e2, e3), _mm512_unpackhi_ps(e2, e3));
        let (t0, t1, t2, t3) = (
            _mm512_castps_pd(t0),
            _mm512_castps_pd(t1),
            _mm512_castps_pd(t2),
            _mm512_castps_pd(t3),
        );
        let u = [
            _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)),
        ];
        let lo01 = _mm512_shuffle_f32x4::<0x44>(u[0], u[1]);
        let lo23 = _mm512_shuffle_f32x4::<0x44>(u[2], u[3]);
        let hi01 = _mm512_shuffle_f32x4::<0xEE>(u[0], u[1]);
        let hi23 = _mm512_shuffle_f32x4::<0xEE>(u[2], u[3]);
        _mm512_storeu_ps(d, _mm512_shuffle_f32x4::<0x88>(lo01, lo23));
        _mm512_storeu_ps(d.add(16), _mm512_shuffle_f32x4::<0xDD>(lo01, lo23));
        _mm512_storeu_ps(d.add(32), _mm512_shuffle_f32x4::<0x88>(hi01, hi23));
        _mm512_storeu_ps(d.add(48), _mm512_shuffle_f32x4::<0xDD>(hi01, hi23));
    }
}

impl std::ops::Add for V16 {
    type Output = V16;
    #[inline(always)]
    fn add(mut self, o: V16) -> V16 {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
        self
    }
}

impl std::ops::Add<f32> for V16 {
    type Output = V16;
    #[inline(always)]
    fn add(mut self, o: f32) -> V16 {
        for a in &mut self.0 {
            *a += o;
        }
        self
    }
}

impl std::ops::Sub for V16 {
    type Output = V16;
    #[inline(always)]
    fn sub(mut self, o: V16) -> V16 {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a -= b;
        }
        self
    }
}

impl std::ops::Mul<f32> for V16 {
    type Output = V16;
    #[inline(always)]
    fn mul(mut self, o: f32) -> V16 {
        for a in &mut self.0 {
            *a *= o;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Act;

    /// Every tile in exactly one band, no band empty, for layer sizes around the rounding
    /// (a 726 × 726 layer on 2 threads once got empty bands whose width underflowed).
    #[test]
    fn bands_cover_every_tile_once() {
        for threads in [1, 2, 3, 4, 8] {
            for nb in [1, 2, 3] {
                for tiles in (1..400).chain([33124, 4096, 1025]) {
                    for channels in [32, 128, 1024] {
                        let (bands, per) = bands(nb, tiles, channels, threads);
                        let mut seen = vec![0u8; nb * tiles];
                        for b in &bands {
                            assert!(b.t0 < b.t1 && b.t1 - b.t0 <= per && b.t1 <= tiles);
                            for t in b.t0..b.t1 {
                                seen[b.n * tiles + t] += 1;
                            }
                        }
                        assert!(
                            seen.iter().all(|&c| c == 1),
                            "{nb} images, {tiles} tiles, {threads} threads"
                        );
                    }
                }
            }
        }
    }

    /// The AVX-512 shuffles against the plain Rust that the wasm build runs.
    #[test]
    fn shuffles_match_the_portable_code() {
        if !crate::cpu::direct_f32::available() {
            return;
        }
        let s: Vec<f32> = (0..80).map(|i| i as f32 * 0.5 - 3.0).collect();
        let (fast, plain) = (V16::taps(&s), V16::taps_portable(&s));
        for c in 0..6 {
            assert_eq!(fast[c].0, plain[c].0, "tap {c}");
        }
        let e: [V16; 4] =
            std::array::from_fn(|c| V16(std::array::from_fn(|l| (c * 16 + l) as f32)));
        let (mut fast, mut plain) = ([0f32; 64], [0f32; 64]);
        V16::interleave(e, &mut fast);
        V16::interleave_portable(e, &mut plain);
        assert_eq!(fast, plain);
    }

    /// Against the plain conv: pads (1, 1) and (0, 2)/(2, 0), sizes that are not multiples of 4,
    /// batch 2, a two-part input, a residual and LeakyReLU; bands run both ways (many small bands
    /// on the threads, and one band split inside).
    #[test]
    fn winograd_matches_the_plain_conv() {
        if !crate::cpu::direct_f32::available() {
            return;
        }
        let wv = |n: usize, seed: usize| {
            (0..n)
                .map(|i| ((i * 7919 + seed) % 101) as f32 / 101.0 - 0.5)
                .collect::<Vec<_>>()
        };
        for (pad, [h, w], parts) in [
            ([1, 1, 1, 1], [37, 45], [16, 8]),
            ([0, 2, 2, 0], [33, 70], [24, 0]),
            ([1, 1, 1, 1], [120, 132], [20, 12]),
        ] {
            let (cin, cout) = (parts[0] + parts[1], 18); // panels of 8, 8 and 2 rows
            let g = Geom {
                kernel: [3, 3],
                stride: [1, 1],
                pad,
                dil: [1, 1],
                groups: 1,
            };
            let (oh, ow) = (h + pad[0] + pad[2] - 2, w + pad[1] + pad[3] - 2);
            let wt = wv(cout * cin * 9, 1);
            let bias = wv(cout, 2);
            let x = Tensor::new([2, cin, h, w], wv(2 * cin * h * w, 3)).unwrap();
            let add = Tensor::new([2, cout, oh, ow], wv(2 * cout * oh * ow, 4)).unwrap();
            let act = Act::LeakyRelu(0.1);
            let epi = Epilogue {
                bias: Some(&bias),
                add: Some(&add),
                act: &act,
            };
            let want = super::super::conv::conv2d(&x, &wt, cout, g, oh, ow, &epi);
            let p = Wino::new(&wt, Some(&bias), [cout, cin], g, [oh, ow]).expect("runs");
            let split: Vec<Tensor> = if parts[1] == 0 {
                vec![x.clone()]
            } else {
                let part = |c0: usize, c: usize| {
                    let mut d = Vec::new();
                    for n in 0..2 {
                        for ci in c0..c0 + c {
                            d.extend_from_slice(x.plane(n, ci));
                        }
                    }
                    Tensor::new([2, c, h, w], d).unwrap()
                };
                vec![part(0, parts[0]), part(parts[0], parts[1])]
            };
            let refs: Vec<&Tensor> = split.iter().collect();
            let epi = Epilogue {
                bias: None,
                add: Some(&add),
                act: &act,
            };
            let got = conv(&refs, &p, [oh, ow], &epi);
            let (d, m) = got.max_abs_diff(&want);
            assert!(d <= 1e-5 * m, "pad {pad:?} {h}×{w}: {d} vs {m}");
        }
    }
}
