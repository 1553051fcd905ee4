//! The direct float32 GEMM of the CPU graph engine (`cpu::graph`) on AVX-512 machines and in
//! the wasm simd128 build: `C (+)= A · B` with A a conv's weights, packed once (`Packed`) into
//! panels of `MR` output channels (8; 4 in the wasm build), `[k][MR]`, which the micro-kernel
//! broadcasts from, and B given as one pointer per row of K, read in place: a shifted padded
//! input plane for a conv (no im2col), a row of transformed tiles for Winograd, an input plane
//! for a transposed conv.
//!
//! Tasks are (column tile × block of output channels); inside one, K is split in chunks so the
//! rows of B being read stay in L2, and the output itself accumulates the partial sums (bias on
//! the first chunk, ReLU on the last).
//!
//! Machines without either run the graph engine's plain kernels (the `gemm` crate) instead.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use rayon::prelude::*;

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
/// Columns of the kernel for panels of at most two rows: 8 vectors of 16.
#[cfg(target_arch = "x86_64")]
const NR_WIDE: usize = 128;
/// Columns per task.
pub(crate) const TILE: usize = 10 * NR;
/// K per chunk: B rows of a chunk over a tile stay in L2.
const KC: usize = 256;

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

/// A micro-kernel: (kc, A panel, B rows, first column, columns, C, ldc, rows, bias, ReLU).
#[allow(dead_code)]
type Kernel = unsafe fn(
    usize,
    *const f32,
    &[*const f32],
    usize,
    usize,
    *mut f32,
    usize,
    usize,
    Option<*const f32>,
    bool,
);

#[cfg(target_arch = "x86_64")]
use x86_64::kernel;

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
            // A panel of one or two rows (a head with few classes, or a ragged last panel)
            // would use 1/8 or 2/8 of the 8 × 48 kernel's multiplies: it gets a wide one.
            #[cfg(target_arch = "x86_64")]
            let (micro, width): (Kernel, usize) = if rows <= 2 {
                (kernel::<2, 8>, NR_WIDE)
            } else {
                (kernel::<MR, 3>, NR)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (micro, width): (Kernel, usize) = (micro_kernel, NR);
            for j in (0..cols).step_by(width) {
                micro(
                    kc,
                    a,
                    &b[k0..k0 + kc],
                    j,
                    width.min(cols - j),
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

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::MR;
    use std::arch::x86_64::*;

    /// Rows `0..rows` (≤ R) × columns `j..j + cols` (≤ 16 V) of the output in R × V
    /// accumulators: per k, V loads of B and R broadcasts of A (whose panels hold `MR` rows
    /// per k). 8 × 3 for full panels; 2 × 8 for panels of one or two rows (the 8 × 48 form
    /// would waste 6/8 of its multiplies). Starts from `bias` (first K chunk) or from the
    /// output (later chunks); ReLU on the store if `relu`.
    ///
    /// # Safety
    /// AVX-512 F; `a` holds `kc × MR` floats; every `b[k] + j` readable for `cols` floats; `c`
    /// writable for `rows` rows of stride `ldc` and `cols` columns.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel<const R: usize, const V: usize>(
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
        debug_assert!(R <= MR && rows <= R && cols <= 16 * V && b.len() == kc);
        let mut m = [0u16; V];
        for (v, m) in m.iter_mut().enumerate() {
            let n = cols.saturating_sub(16 * v).min(16);
            *m = ((1u32 << n) - 1) as u16;
        }
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, acc) in acc.iter_mut().enumerate().take(rows) {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = match bias {
                    Some(bp) => _mm512_set1_ps(*bp.add(r)),
                    None => _mm512_maskz_loadu_ps(m[v], c.add(r * ldc + 16 * v)),
                };
            }
        }
        for (kk, &row) in b.iter().enumerate() {
            let p = row.add(j);
            let mut x = [_mm512_setzero_ps(); V];
            for (v, x) in x.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(m[v], p.add(16 * v));
            }
            let w = a.add(kk * MR);
            // The weights stream from L3 in the deep layers (megabytes, each used for a few
            // dozen columns): fetch 16 steps ahead (smp ResNet-18 at 256²: 55 → 48–53 ms).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(MR * 16) as *const i8);
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*w.add(r));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(wv, x[v], acc[v]);
                }
            }
        }
        let zero = _mm512_setzero_ps();
        for (r, acc) in acc.iter().enumerate().take(rows) {
            for (v, &o) in acc.iter().enumerate() {
                let o = if relu { _mm512_max_ps(o, zero) } else { o };
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
    /// As `x86_64::kernel`, with 8 columns.
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
