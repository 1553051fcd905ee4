//! The int8 conv micro-kernels: u8 activations × i8 weights → i32 sums → requantized u8, one
//! call per block of output channels × output positions, QNNPACK-style.
//!
//! A call computes `out[r][j] = requantize(Σ_k a[r][k] · B(k, j))` for `r < m`, `j < n`:
//! - `a`: `m` rows of `kp` i8 weights (kp a multiple of 4, zero-padded);
//! - `B` is never materialized: `b[k / 4]` points at a row of `n` u32 words, each holding 4
//!   consecutive k of one column (byte `k % 4`). For a 3×3 conv over activations stored as
//!   groups of 4 channels (`[c/4][h+2][w+2][4]`, see `super::QAct`), the row of (channel group,
//!   tap) is the padded input plane itself, shifted by the tap: an implicit GEMM, no im2col;
//! - the outputs go to the same 4-channel layout: row `r`, column `j` at byte
//!   `out[(r / 4) · plane + 4 · j + r % 4]`; rows past `m` in the last group of 4 get the zero
//!   point.
//!
//! Requantization (`requantize`) is one rule for every kernel and backend: the sum plus an int32
//! bias, converted to f32 (round to nearest even), times one f32 multiplier, rounded half to even,
//! plus the output zero point, clamped. Every step is exactly specified IEEE arithmetic, so every
//! kernel equals `generic_qgemm` bit for bit.

/// How a GEMM's int32 sums become uint8 values, per row (output channel).
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// Added to the sum: the float bias in accumulator units, minus the input zero-point
    /// correction `z_x · Σ w`.
    pub bias: &'a [i32],
    /// `s_x · s_w / s_out`.
    pub mult: &'a [f32],
    /// Output zero point.
    pub zero: i32,
    /// Lowest output value: the zero point where a ReLU is fused, else 0.
    pub lo: i32,
}

/// 1.5 · 2²³: adding and subtracting it rounds an f32 of magnitude below 2²² to an integer,
/// half to even (without `roundss`, which baseline x86-64 lacks).
const ROUND: f32 = 12_582_912.0;

/// The requantization rule (module doc): exact, so SIMD kernels (and GPU shaders) can match it.
#[inline(always)]
pub fn requantize(acc: i32, bias: i32, mult: f32, zero: i32, lo: i32) -> u8 {
    let v = ((acc.wrapping_add(bias)) as f32 * mult).clamp(-512.0, 512.0);
    let r = (v + ROUND) - ROUND;
    (r as i32 + zero).clamp(lo, 255) as u8
}

/// One GEMM call (module doc). The pointers are raw because rows of `B` are windows into
/// padded activation planes and the output is shared by tasks writing disjoint blocks.
#[derive(Clone, Copy, Debug)]
pub struct QGemm<'a> {
    pub m: usize,
    pub n: usize,
    pub kp: usize,
    pub a: &'a [i8],
    /// `kp / 4` row pointers, each readable for `4 · n` bytes.
    pub b: &'a [*const u8],
    pub rq: Requant<'a>,
    /// Output base; writable at `(r / 4) · plane + 4 · j + r % 4` for `r < m` rounded up to 4.
    pub out: *mut u8,
    /// Bytes between output groups of 4 rows.
    pub plane: usize,
}

impl QGemm<'_> {
    /// Each row's groups of 4 weights widened to 4 i16 in one 64-bit word (lane q in bits
    /// 16q..16q + 16), `kp / 4` words per row: what kernels that multiply in i16 broadcast per
    /// step, widened once per call.
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    fn weights_as_i16x4(&self) -> Vec<u64> {
        self.a[..self.m * self.kp]
            .chunks_exact(4)
            .map(|w| {
                w.iter().enumerate().fold(0u64, |acc, (q, &v)| {
                    acc | ((v as i16 as u16 as u64) << (16 * q))
                })
            })
            .collect()
    }

    fn check(&self) {
        assert!(self.kp.is_multiple_of(4) && self.b.len() == self.kp / 4);
        assert!(self.a.len() >= self.m * self.kp);
        assert!(self.rq.bias.len() >= self.m && self.rq.mult.len() >= self.m);
        assert!((0..=255).contains(&self.rq.zero) && self.rq.lo <= self.rq.zero);
    }

    /// Requantize and store a block of sums: rows `i..i + rows` (i a multiple of 4), columns
    /// `j..j + cols`, `acc[r][c]`. Rows past `m` in the block's last group of 4 get the zero point.
    ///
    /// # Safety
    /// The output must be writable as the struct says; `acc` has `rows` rounded up to 4 rows.
    #[inline(always)]
    unsafe fn store<const C: usize>(
        &self,
        i: usize,
        rows: usize,
        j: usize,
        cols: usize,
        acc: &[[i32; C]],
    ) {
        let rq = &self.rq;
        for (r, sums) in acc.iter().enumerate().take(rows.div_ceil(4) * 4) {
            let row = i + r;
            for (c, &s) in sums.iter().enumerate().take(cols) {
                let q = if row < self.m {
                    requantize(s, rq.bias[row], rq.mult[row], rq.zero, rq.lo)
                } else {
                    rq.zero as u8
                };
                *self.out.add((row / 4) * self.plane + 4 * (j + c) + row % 4) = q;
            }
        }
    }
}

/// Portable reference: blocks of 4 rows × 8 columns, plain integer sums.
///
/// # Safety
/// The pointers of `g` must be valid as `QGemm` says.
pub unsafe fn generic_qgemm_u8i8(g: &QGemm) {
    g.check();
    let mut i = 0;
    while i < g.m {
        let rows = (g.m - i).min(4);
        let mut j = 0;
        while j < g.n {
            let cols = (g.n - j).min(8);
            let mut acc = [[0i32; 8]; 4];
            for (k4, &p) in g.b.iter().enumerate() {
                for (r, sums) in acc.iter_mut().enumerate().take(rows) {
                    let w = &g.a[(i + r) * g.kp + 4 * k4..][..4];
                    for (c, s) in sums.iter_mut().enumerate().take(cols) {
                        let x = p.add(4 * (j + c));
                        for (q, &wq) in w.iter().enumerate() {
                            *s += wq as i32 * *x.add(q) as i32;
                        }
                    }
                }
            }
            g.store(i, rows, j, cols, &acc);
            j += cols;
        }
        i += rows;
    }
}

use std::sync::atomic::{AtomicU8, Ordering};

/// Which kernel `qgemm_u8i8` may use at most: 0 the best detected, 1 generic, 2 up to AVX2 /
/// the plain NEON kernel.
static CAP: AtomicU8 = AtomicU8::new(0);

/// Cap the kernel choice (tests and benchmarks compare whole networks across kernels):
/// `"generic"`, `"avx2"` / `"neon"`, or `"auto"` (the best this CPU has; the default, or `WUNET_QGEMM`).
pub fn limit_kernels(name: &str) {
    CAP.store(
        match name {
            "generic" => 1,
            "avx2" | "neon" => 2,
            _ => 0,
        },
        Ordering::Relaxed,
    );
}

fn cap() -> u8 {
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        if let Ok(v) = std::env::var("WUNET_QGEMM") {
            limit_kernels(&v);
        }
    });
    CAP.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Pick {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "aarch64")]
    Neon,
    #[cfg(target_arch = "aarch64")]
    NeonDot,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

/// The best kernel this CPU has under the cap, detected at run time.
fn pick() -> Pick {
    let cap = cap();
    if cap == 1 {
        return Pick::Generic;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if cap == 0
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512bw")
        {
            return Pick::Avx512Vnni;
        }
        if std::is_x86_feature_detected!("avx2") {
            return Pick::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if cap == 0 && std::arch::is_aarch64_feature_detected!("dotprod") {
            return Pick::NeonDot;
        }
        return Pick::Neon;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return Pick::Simd128;
    #[allow(unreachable_code)]
    Pick::Generic
}

/// Rows of the wasm kernel's register block (`wasm32::simd128_qgemm_u8i8`).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const SIMD128_ROWS: usize = 4;

/// The best kernel this CPU has, picked at run time.
///
/// # Safety
/// The pointers of `g` must be valid as `QGemm` says.
pub unsafe fn qgemm_u8i8(g: &QGemm) {
    match pick() {
        Pick::Generic => generic_qgemm_u8i8(g),
        #[cfg(target_arch = "x86_64")]
        Pick::Avx2 => x86_64::avx2_qgemm_u8i8_4x8(g),
        #[cfg(target_arch = "x86_64")]
        Pick::Avx512Vnni => x86_64::avx512vnni_qgemm_u8i8_8x32(g),
        #[cfg(target_arch = "aarch64")]
        Pick::Neon => aarch64::neon_qgemm_u8i8_4x4(g),
        #[cfg(target_arch = "aarch64")]
        Pick::NeonDot => aarch64::neon_dot_qgemm_u8i8_4x8(g),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Pick::Simd128 => wasm32::simd128_qgemm_u8i8::<SIMD128_ROWS>(g),
    }
}

/// Name of the kernel `qgemm_u8i8` runs here (for reports).
pub fn qgemm_name() -> &'static str {
    match pick() {
        Pick::Generic => "generic_qgemm_u8i8",
        #[cfg(target_arch = "x86_64")]
        Pick::Avx2 => "avx2_qgemm_u8i8_4x8",
        #[cfg(target_arch = "x86_64")]
        Pick::Avx512Vnni => "avx512vnni_qgemm_u8i8_8x32",
        #[cfg(target_arch = "aarch64")]
        Pick::Neon => "neon_qgemm_u8i8_4x4",
        #[cfg(target_arch = "aarch64")]
        Pick::NeonDot => "neon_dot_qgemm_u8i8_4x8",
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Pick::Simd128 => {
            const _: () = assert!(SIMD128_ROWS == 4, "rename the kernel in qgemm_name");
            "simd128_qgemm_u8i8_4x4"
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[allow(clippy::needless_range_loop)] // register-block loops read best indexed
pub mod aarch64 {
    use super::QGemm;
    use std::arch::aarch64::*;

    /// Any ARMv8: blocks of 4 rows × 4 columns. The 16 bytes of 4 columns × 4 k are widened to
    /// i16 and multiplied-accumulated into i32 with `smlal`/`smlal2` (one int32x4 of partial sums
    /// per row and column, summed across lanes at the end); the shared scalar requantization.
    ///
    /// # Safety
    /// The CPU has NEON (every ARMv8-A); pointers as `QGemm` says.
    #[target_feature(enable = "neon")]
    pub unsafe fn neon_qgemm_u8i8_4x4(g: &QGemm) {
        g.check();
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(4);
            let w: [*const u8; 4] = std::array::from_fn(|r| {
                g.a.as_ptr().add((i + r.min(rows - 1)) * g.kp) as *const u8
            });
            let mut j = 0;
            while j < g.n {
                let cols = (g.n - j).min(4);
                let mut acc = [[vdupq_n_s32(0); 4]; 4];
                let mut tail = [0u8; 16];
                for (k4, &p) in g.b.iter().enumerate() {
                    // 4 columns × 4 k of activations, widened to i16.
                    let src = p.add(4 * j);
                    let x = if cols == 4 {
                        vld1q_u8(src)
                    } else {
                        std::ptr::copy_nonoverlapping(src, tail.as_mut_ptr(), 4 * cols);
                        vld1q_u8(tail.as_ptr())
                    };
                    let x01 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
                    let x23 = vreinterpretq_s16_u16(vmovl_high_u8(x));
                    for r in 0..4 {
                        // The row's 4 weights widened, twice.
                        let w8 = vreinterpret_s8_u32(vdup_n_u32(
                            (w[r].add(4 * k4) as *const u32).read_unaligned(),
                        ));
                        let wv = vmovl_s8(w8);
                        acc[r][0] = vmlal_s16(acc[r][0], vget_low_s16(x01), vget_low_s16(wv));
                        acc[r][1] = vmlal_high_s16(acc[r][1], x01, wv);
                        acc[r][2] = vmlal_s16(acc[r][2], vget_low_s16(x23), vget_low_s16(wv));
                        acc[r][3] = vmlal_high_s16(acc[r][3], x23, wv);
                    }
                }
                let sums: [[i32; 4]; 4] =
                    std::array::from_fn(|r| std::array::from_fn(|c| vaddvq_s32(acc[r][c])));
                g.store(i, rows, j, cols, &sums);
                j += cols;
            }
            i += rows;
        }
    }

    /// `sdot`: lane q of the accumulator += Σ of 4 i8 products of lane q's bytes.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        core::arch::asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) acc, in(vreg) a, in(vreg) b, options(pure, nomem, nostack));
        acc
    }

    /// ARMv8.2 dot product: blocks of 4 rows × 8 columns, one `sdot` per row and 4 columns.
    /// `sdot` is signed × signed, so activations are shifted to i8 (x − 128, a byte XOR) and
    /// 128 · Σw is added back: exact.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension; pointers as `QGemm` says.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn neon_dot_qgemm_u8i8_4x8(g: &QGemm) {
        g.check();
        let flip = vdupq_n_u8(0x80);
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(4);
            let w: [*const u8; 4] = std::array::from_fn(|r| {
                g.a.as_ptr().add((i + r.min(rows - 1)) * g.kp) as *const u8
            });
            let shift: [i32; 4] = std::array::from_fn(|r| {
                128 * g.a[(i + r.min(rows - 1)) * g.kp..][..g.kp]
                    .iter()
                    .map(|&v| v as i32)
                    .sum::<i32>()
            });
            let mut j = 0;
            while j < g.n {
                let cols = (g.n - j).min(8);
                let mut acc = [[vdupq_n_s32(0); 2]; 4];
                let mut tail = [0u8; 32];
                for (k4, &p) in g.b.iter().enumerate() {
                    // 8 columns × 4 k, shifted to i8.
                    let mut src = p.add(4 * j);
                    if cols < 8 {
                        std::ptr::copy_nonoverlapping(src, tail.as_mut_ptr(), 4 * cols);
                        src = tail.as_ptr();
                    }
                    let x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
                    let x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src.add(16)), flip));
                    for r in 0..4 {
                        let wv = vreinterpretq_s8_u32(vdupq_n_u32(
                            (w[r].add(4 * k4) as *const u32).read_unaligned(),
                        ));
                        acc[r][0] = sdot(acc[r][0], x0, wv);
                        acc[r][1] = sdot(acc[r][1], x1, wv);
                    }
                }
                let mut sums = [[0i32; 8]; 4];
                for r in 0..4 {
                    let bv = vdupq_n_s32(shift[r]);
                    vst1q_s32(sums[r].as_mut_ptr(), vaddq_s32(acc[r][0], bv));
                    vst1q_s32(sums[r].as_mut_ptr().add(4), vaddq_s32(acc[r][1], bv));
                }
                g.store(i, rows, j, cols, &sums);
                j += cols;
            }
            i += rows;
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod wasm32 {
    use super::QGemm;
    use std::arch::wasm32::*;

    /// WebAssembly SIMD: blocks of `R` rows × 4 columns. Each step loads the 16 bytes of 4
    /// columns × 4 k once and widens them to i16; each row's 4 weights, widened to i16 once per
    /// call, come with one 64-bit splat load; `i32x4.dot_i16x8_s` (exact: i32 products, pairs
    /// summed in i32) gives two partial sums per column, folded by shuffles at the end; the shared
    /// scalar requantization. `R` is 4 or 8 (`store` writes whole groups of 4 rows).
    ///
    /// # Safety
    /// Built with simd128; pointers as `QGemm` says.
    pub unsafe fn simd128_qgemm_u8i8<const R: usize>(g: &QGemm) {
        g.check();
        let k4n = g.kp / 4;
        let wpat = g.weights_as_i16x4();
        assert!(R.is_multiple_of(4));
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(R);
            let w: [*const u64; R] =
                std::array::from_fn(|r| wpat.as_ptr().add((i + r.min(rows - 1)) * k4n));
            let mut j = 0;
            while j < g.n {
                let cols = (g.n - j).min(4);
                // acc[r][h]: columns 2h, 2h + 1, two partial sums each.
                let mut acc = [[i32x4_splat(0); 2]; R];
                let mut tail = [0u8; 16];
                for (k4, &p) in g.b.iter().enumerate() {
                    let mut src = p.add(4 * j);
                    if cols < 4 {
                        std::ptr::copy_nonoverlapping(src, tail.as_mut_ptr(), 4 * cols);
                        src = tail.as_ptr();
                    }
                    let x = v128_load(src as *const v128);
                    let x0 = u16x8_extend_low_u8x16(x);
                    let x1 = u16x8_extend_high_u8x16(x);
                    for (a, wr) in acc.iter_mut().zip(&w) {
                        let wv = v128_load64_splat(wr.add(k4));
                        a[0] = i32x4_add(a[0], i32x4_dot_i16x8(x0, wv));
                        a[1] = i32x4_add(a[1], i32x4_dot_i16x8(x1, wv));
                    }
                }
                let mut sums = [[0i32; 4]; R];
                for (s, a) in sums.iter_mut().zip(&acc) {
                    let v = i32x4_add(
                        i32x4_shuffle::<0, 2, 4, 6>(a[0], a[1]),
                        i32x4_shuffle::<1, 3, 5, 7>(a[0], a[1]),
                    );
                    v128_store(s.as_mut_ptr() as *mut v128, v);
                }
                g.store(i, rows, j, cols, &sums[..rows.div_ceil(4) * 4]);
                j += cols;
            }
            i += rows;
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod x86_64 {
    use super::QGemm;
    use std::arch::x86_64::*;

    /// AVX2: blocks of 4 rows × 8 columns. Bytes are widened to i16 and multiplied with
    /// `vpmaddwd` (exact: no `vpmaddubsw`, whose i16 saturation would break bit-exactness),
    /// giving two partial sums per column that are folded with one `vphaddd` at the end; the
    /// shared scalar requantization.
    ///
    /// # Safety
    /// The CPU must have AVX2; pointers as `QGemm` says.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2_qgemm_u8i8_4x8(g: &QGemm) {
        g.check();
        let k4n = g.kp / 4;
        let wpat = g.weights_as_i16x4();
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(4);
            let w: [&[u64]; 4] =
                std::array::from_fn(|r| &wpat[(i + r.min(rows - 1)) * k4n..][..k4n]);
            let mut j = 0;
            while j < g.n {
                let cols = (g.n - j).min(8);
                let mut lo = [_mm256_setzero_si256(); 4];
                let mut hi = [_mm256_setzero_si256(); 4];
                let mut tail = [0u8; 32];
                for (k4, &p) in g.b.iter().enumerate() {
                    // 8 columns × 4 k of activations, widened to i16.
                    let mut src = p.add(4 * j);
                    if cols < 8 {
                        std::ptr::copy_nonoverlapping(src, tail.as_mut_ptr(), 4 * cols);
                        src = tail.as_ptr();
                    }
                    let x = _mm256_loadu_si256(src as *const __m256i);
                    let xl = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(x));
                    let xh = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(x));
                    for r in 0..4 {
                        // The row's 4 weights as i16, repeated over the register.
                        let wv = _mm256_set1_epi64x(*w[r].get_unchecked(k4) as i64);
                        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(xl, wv));
                        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(xh, wv));
                    }
                }
                // Fold the two partial sums of each column.
                let mut sums = [[0i32; 8]; 4];
                for r in 0..4 {
                    let s =
                        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[r], hi[r]));
                    _mm256_storeu_si256(sums[r].as_mut_ptr() as *mut __m256i, s);
                }
                g.store(i, rows, j, cols, &sums);
                j += cols;
            }
            i += rows;
        }
    }

    /// AVX-512 VNNI: blocks of 8 rows × 32 columns (16 accumulators), `vpdpbusd` over 4 k at a
    /// time; column tails through masked loads and stores. The requantization runs on the
    /// registers: 16 columns of 4 rows packed into one u32 each and stored in one go.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI; pointers as `QGemm` says.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512vnni_qgemm_u8i8_8x32(g: &QGemm) {
        g.check();
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(8);
            if rows > 4 {
                block::<8>(g, i, rows);
            } else {
                block::<4>(g, i, rows);
            }
            i += rows;
        }
    }

    /// Rows `i..i + rows` (`rows ≤ R`, R a multiple of 4), every column.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn block<const R: usize>(g: &QGemm, i: usize, rows: usize) {
        // Rows past m repeat the last row's weights, and requantize every sum to the zero point
        // (bias 0, multiplier 0).
        let w: [*const i32; R] =
            std::array::from_fn(|r| g.a.as_ptr().add((i + r.min(rows - 1)) * g.kp) as *const i32);
        let bias: [__m512i; R] =
            std::array::from_fn(|r| _mm512_set1_epi32(if r < rows { g.rq.bias[i + r] } else { 0 }));
        let mult: [__m512; R] =
            std::array::from_fn(|r| _mm512_set1_ps(if r < rows { g.rq.mult[i + r] } else { 0.0 }));
        let (zero, lo, hi) = (
            _mm512_set1_epi32(g.rq.zero),
            _mm512_set1_epi32(g.rq.lo),
            _mm512_set1_epi32(255),
        );
        let (vmin, vmax) = (_mm512_set1_ps(-512.0), _mm512_set1_ps(512.0));
        let mut j = 0;
        while j < g.n {
            let cols = (g.n - j).min(32);
            let m0: __mmask16 = if cols >= 16 {
                0xFFFF
            } else {
                (1u32 << cols) as u16 - 1
            };
            let m1: __mmask16 = if cols >= 32 {
                0xFFFF
            } else if cols > 16 {
                (1u32 << (cols - 16)) as u16 - 1
            } else {
                0
            };
            let mut acc0 = [_mm512_setzero_si512(); R];
            let mut acc1 = [_mm512_setzero_si512(); R];
            for (k4, &p) in g.b.iter().enumerate() {
                // 32 columns × 4 k of activations.
                let p = p.add(4 * j) as *const i32;
                let x0 = _mm512_maskz_loadu_epi32(m0, p);
                let x1 = _mm512_maskz_loadu_epi32(m1, p.add(16));
                // Broadcast 4 k of each row's weights and accumulate.
                for r in 0..R {
                    let wv = _mm512_set1_epi32(w[r].add(k4).read_unaligned());
                    acc0[r] = _mm512_dpbusd_epi32(acc0[r], x0, wv);
                    acc1[r] = _mm512_dpbusd_epi32(acc1[r], x1, wv);
                }
            }
            // Requantize (the rule of `super::requantize`, lane-wise) and pack 4 rows per u32.
            for grp in 0..R / 4 {
                let o = g.out.add((i / 4 + grp) * g.plane + 4 * j) as *mut i32;
                for (h, acc, mask) in [(0, &acc0, m0), (1, &acc1, m1)] {
                    let mut word = _mm512_setzero_si512();
                    for q in 0..4 {
                        let r = 4 * grp + q;
                        let v = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r], bias[r]));
                        let v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, mult[r]), vmin), vmax);
                        let v = _mm512_add_epi32(_mm512_cvtps_epi32(v), zero);
                        let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                        word = _mm512_or_si512(
                            word,
                            _mm512_sllv_epi32(v, _mm512_set1_epi32(8 * q as i32)),
                        );
                    }
                    _mm512_mask_storeu_epi32(o.add(16 * h), mask, word);
                }
            }
            j += 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI states which kernel each emulated CPU must get (`-cpu cortex-a53`: no dot product, so
    /// the NEON fallback).
    #[test]
    fn the_expected_kernel_is_picked() {
        let name = qgemm_name();
        eprintln!("int8 GEMM kernel here: {name}");
        if let Ok(want) = std::env::var("WUNET_EXPECT_QGEMM") {
            assert_eq!(name, want);
        }
    }

    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
    }

    /// Every kernel this CPU can run, by name.
    #[allow(clippy::type_complexity)]
    fn kernels() -> Vec<(&'static str, unsafe fn(&QGemm))> {
        #[allow(unused_mut)]
        let mut v: Vec<(&'static str, unsafe fn(&QGemm))> = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                v.push(("avx2", x86_64::avx2_qgemm_u8i8_4x8));
            } else {
                eprintln!("SKIPPED the AVX2 kernel: this CPU has no AVX2");
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512bw")
            {
                v.push(("avx512vnni", x86_64::avx512vnni_qgemm_u8i8_8x32));
            } else {
                eprintln!("SKIPPED the AVX-512 VNNI kernel: this CPU lacks it");
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            v.push(("neon", aarch64::neon_qgemm_u8i8_4x4));
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(("neon dot", aarch64::neon_dot_qgemm_u8i8_4x8));
            } else {
                eprintln!("SKIPPED the sdot kernel: this CPU has no dot product (the NEON fallback is used)");
            }
        }
        v
    }

    /// Run `f` on a random problem: rows of B at scattered offsets of one buffer, outputs in
    /// groups with a gap between them (which must stay untouched).
    fn run(
        f: unsafe fn(&QGemm),
        (m, n, k): (usize, usize, usize),
        a: &[i8],
        src: &[u8],
        offs: &[usize],
        rq: Requant,
    ) -> Vec<u8> {
        let kp = k.div_ceil(4) * 4;
        let rows: Vec<*const u8> = offs.iter().map(|&o| src[o..].as_ptr()).collect();
        let plane = 4 * n + 12;
        let mut out = vec![0xA5u8; m.div_ceil(4) * plane];
        let g = QGemm {
            m,
            n,
            kp,
            a,
            b: &rows,
            rq,
            out: out.as_mut_ptr(),
            plane,
        };
        unsafe { f(&g) };
        for grp in 0..m.div_ceil(4) {
            assert!(out[grp * plane + 4 * n..(grp + 1) * plane]
                .iter()
                .all(|&v| v == 0xA5));
        }
        out
    }

    /// Every kernel against `generic`: m, n and k below, at and above the blocks, not multiples
    /// of them; random and extreme operands; with and without a fused ReLU.
    #[test]
    fn simd_equals_generic_bit_for_bit() {
        let mut rng = Rng(12345);
        for &(m, n, k) in &[
            (1usize, 1usize, 1usize),
            (3, 31, 5),
            (4, 32, 4),
            (5, 33, 8),
            (8, 64, 36),
            (13, 100, 77),
            (64, 17, 576),
            (12, 47, 300),
        ] {
            let kp = k.div_ceil(4) * 4;
            for extreme in [false, true] {
                let mut a = vec![0i8; m * kp];
                for r in 0..m {
                    for q in 0..k {
                        a[r * kp + q] = if extreme { -128 } else { rng.next() as i8 };
                    }
                }
                let src: Vec<u8> = (0..4 * n + 4000)
                    .map(|_| if extreme { 255 } else { rng.next() as u8 })
                    .collect();
                // Junk in the padded k rows must not matter: it has zero weights.
                let offs: Vec<usize> = (0..kp / 4).map(|_| rng.next() as usize % 4000).collect();
                let bias: Vec<i32> = (0..m)
                    .map(|_| (rng.next() % 200_000) as i32 - 100_000)
                    .collect();
                let mult: Vec<f32> = (0..m)
                    .map(|_| (rng.next() % 1000 + 1) as f32 * if extreme { 1e-3 } else { 1e-5 })
                    .collect();
                for (zero, lo) in [(0, 0), (37, 0), (37, 37), (255, 255)] {
                    let rq = Requant {
                        bias: &bias,
                        mult: &mult,
                        zero,
                        lo,
                    };
                    let want = run(generic_qgemm_u8i8, (m, n, k), &a, &src, &offs, rq);
                    for (name, f) in kernels() {
                        let got = run(f, (m, n, k), &a, &src, &offs, rq);
                        assert!(
                            got == want,
                            "{name} on m {m} n {n} k {k}, zero {zero} lo {lo}"
                        );
                    }
                    let got = run(qgemm_u8i8, (m, n, k), &a, &src, &offs, rq);
                    assert!(got == want, "{} on m {m} n {n} k {k}", qgemm_name());
                }
            }
        }
    }

    /// The rule itself: half to even, saturation, the ReLU floor, huge sums.
    #[test]
    fn requantize_rounds_half_to_even_and_saturates() {
        assert_eq!(requantize(5, 0, 0.5, 0, 0), 2); // 2.5 → 2
        assert_eq!(requantize(7, 0, 0.5, 0, 0), 4); // 3.5 → 4
        assert_eq!(requantize(-5, 0, 0.5, 10, 0), 8); // −2.5 → −2
        assert_eq!(requantize(-1000, 0, 1.0, 10, 0), 0);
        assert_eq!(requantize(-1000, 0, 1.0, 10, 10), 10);
        assert_eq!(requantize(i32::MAX - 5, 5, 1.0, 0, 0), 255);
        assert_eq!(requantize(i32::MIN + 5, -5, 1.0, 255, 0), 0);
        assert_eq!(requantize(100, 28, 1.0, 0, 0), 128);
    }
}
