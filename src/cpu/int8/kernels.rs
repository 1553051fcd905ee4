//! The int8 GEMM micro-kernels: u8 activations × i8 weights → i32, QNNPACK-style operand packing.
//!
//! Operands: `a` weights, `m` rows of `kp` i8 (kp = k rounded up to 4, zero-padded);
//! `b` activations packed as `[kp / 4][n][4]` u8 (4 consecutive k of one column in one u32);
//! `c` `m × n` i32, overwritten. Zero-padded k rows contribute nothing whatever `b` holds there.
//! Every kernel computes exact integer sums, so all of them equal `generic_qgemm_u8i8` bit for bit.

/// Portable reference.
pub fn generic_qgemm_u8i8(m: usize, n: usize, kp: usize, a: &[i8], b: &[u8], c: &mut [i32]) {
    assert!(kp.is_multiple_of(4) && a.len() >= m * kp && b.len() >= kp * n && c.len() >= m * n);
    for i in 0..m {
        let row = &a[i * kp..(i + 1) * kp];
        let out = &mut c[i * n..(i + 1) * n];
        out.fill(0);
        for k4 in 0..kp / 4 {
            let w = &row[4 * k4..4 * k4 + 4];
            let bb = &b[k4 * n * 4..(k4 + 1) * n * 4];
            for (j, o) in out.iter_mut().enumerate() {
                let x = &bb[4 * j..4 * j + 4];
                *o += w[0] as i32 * x[0] as i32
                    + w[1] as i32 * x[1] as i32
                    + w[2] as i32 * x[2] as i32
                    + w[3] as i32 * x[3] as i32;
            }
        }
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

/// The best kernel this CPU has, picked at run time.
pub fn qgemm_u8i8(m: usize, n: usize, kp: usize, a: &[i8], b: &[u8], c: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if cap() == 0
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512bw")
    {
        assert!(kp.is_multiple_of(4) && a.len() >= m * kp && b.len() >= kp * n && c.len() >= m * n);
        // SAFETY: the features were detected; the bounds were asserted.
        unsafe { x86_64::avx512vnni_qgemm_u8i8_8x32(m, n, kp, a, b, c) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if cap() != 1 && std::is_x86_feature_detected!("avx2") {
        assert!(kp.is_multiple_of(4) && a.len() >= m * kp && b.len() >= kp * n && c.len() >= m * n);
        // SAFETY: AVX2 was detected; the bounds were asserted.
        unsafe { x86_64::avx2_qgemm_u8i8_4x8(m, n, kp, a, b, c) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if cap() != 1 {
        assert!(kp.is_multiple_of(4) && a.len() >= m * kp && b.len() >= kp * n && c.len() >= m * n);
        // SAFETY: NEON is part of ARMv8-A; dotprod is detected; the bounds were asserted.
        unsafe {
            if cap() == 0 && std::arch::is_aarch64_feature_detected!("dotprod") {
                aarch64::neon_dot_qgemm_u8i8_4x8(m, n, kp, a, b, c)
            } else {
                aarch64::neon_qgemm_u8i8_4x4(m, n, kp, a, b, c)
            }
        }
        return;
    }
    generic_qgemm_u8i8(m, n, kp, a, b, c)
}

/// Name of the kernel `qgemm_u8i8` runs here (for reports).
pub fn qgemm_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if cap() == 0
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512bw")
    {
        return "avx512vnni_qgemm_u8i8_8x32";
    }
    #[cfg(target_arch = "x86_64")]
    if cap() != 1 && std::is_x86_feature_detected!("avx2") {
        return "avx2_qgemm_u8i8_4x8";
    }
    #[cfg(target_arch = "aarch64")]
    if cap() != 1 {
        return if cap() == 0 && std::arch::is_aarch64_feature_detected!("dotprod") {
            "neon_dot_qgemm_u8i8_4x8"
        } else {
            "neon_qgemm_u8i8_4x4"
        };
    }
    "generic_qgemm_u8i8"
}

/// Scalar columns `j0..n` of `rows` (column tails of the SIMD kernels).
#[allow(dead_code)]
fn tail_columns(
    rows: std::ops::Range<usize>,
    j0: usize,
    n: usize,
    kp: usize,
    a: &[i8],
    b: &[u8],
    c: &mut [i32],
) {
    for r in rows {
        for j in j0..n {
            let mut s = 0i32;
            for k in 0..kp {
                s += a[r * kp + k] as i32 * b[((k / 4) * n + j) * 4 + k % 4] as i32;
            }
            c[r * n + j] = s;
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[allow(clippy::needless_range_loop)] // register-block loops read best indexed
pub mod aarch64 {
    use std::arch::aarch64::*;

    /// Any ARMv8: a block of 4 rows × 4 columns. The 16 bytes of 4 columns × 4 k are widened to
    /// i16 and multiplied-accumulated into i32 with `smlal`/`smlal2` (one int32x4 of partial sums
    /// per row and column, summed across lanes at the end).
    ///
    /// # Safety
    /// Operands as in the module doc.
    #[target_feature(enable = "neon")]
    pub unsafe fn neon_qgemm_u8i8_4x4(
        m: usize,
        n: usize,
        kp: usize,
        a: &[i8],
        b: &[u8],
        c: &mut [i32],
    ) {
        let (k4n, n4) = (kp / 4, n / 4 * 4);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            for j in (0..n4).step_by(4) {
                let mut acc = [[vdupq_n_s32(0); 4]; 4];
                for k4 in 0..k4n {
                    // Load 4 columns × 4 k of activations, widened to i16.
                    let x = vld1q_u8(b.as_ptr().add((k4 * n + j) * 4));
                    let x01 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
                    let x23 = vreinterpretq_s16_u16(vmovl_high_u8(x));
                    for r in 0..rows {
                        // The row's 4 weights widened, twice.
                        let w8 = vld1_s8(a.as_ptr().add((i + r) * kp + 4 * k4));
                        let w = vmovl_s8(vreinterpret_s8_s32(vdup_lane_s32::<0>(
                            vreinterpret_s32_s8(w8),
                        )));
                        acc[r][0] = vmlal_s16(acc[r][0], vget_low_s16(x01), vget_low_s16(w));
                        acc[r][1] = vmlal_high_s16(acc[r][1], x01, w);
                        acc[r][2] = vmlal_s16(acc[r][2], vget_low_s16(x23), vget_low_s16(w));
                        acc[r][3] = vmlal_high_s16(acc[r][3], x23, w);
                    }
                }
                for r in 0..rows {
                    for q in 0..4 {
                        c[(i + r) * n + j + q] = vaddvq_s32(acc[r][q]);
                    }
                }
            }
            super::tail_columns(i..i + rows, n4, n, kp, a, b, c);
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

    /// ARMv8.2 dot product: a block of 4 rows × 8 columns, one `sdot` per row and 4 columns.
    /// `sdot` is signed × signed, so activations are shifted to i8 (x − 128, a byte XOR) and
    /// 128 · Σw is added back: exact.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension; operands as in the module doc.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn neon_dot_qgemm_u8i8_4x8(
        m: usize,
        n: usize,
        kp: usize,
        a: &[i8],
        b: &[u8],
        c: &mut [i32],
    ) {
        let (k4n, n8) = (kp / 4, n / 8 * 8);
        let flip = vdupq_n_u8(0x80);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let bias: [i32; 4] = std::array::from_fn(|r| {
                if r < rows {
                    128 * a[(i + r) * kp..(i + r + 1) * kp]
                        .iter()
                        .map(|&v| v as i32)
                        .sum::<i32>()
                } else {
                    0
                }
            });
            for j in (0..n8).step_by(8) {
                let mut acc = [[vdupq_n_s32(0); 2]; 4];
                for k4 in 0..k4n {
                    // Load 8 columns × 4 k, shifted to i8.
                    let p = b.as_ptr().add((k4 * n + j) * 4);
                    let x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), flip));
                    let x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p.add(16)), flip));
                    for r in 0..rows {
                        let w = vreinterpretq_s8_s32(vdupq_n_s32(
                            (a.as_ptr().add((i + r) * kp + 4 * k4) as *const i32).read_unaligned(),
                        ));
                        acc[r][0] = sdot(acc[r][0], x0, w);
                        acc[r][1] = sdot(acc[r][1], x1, w);
                    }
                }
                for r in 0..rows {
                    let o = c.as_mut_ptr().add((i + r) * n + j);
                    let bv = vdupq_n_s32(bias[r]);
                    vst1q_s32(o, vaddq_s32(acc[r][0], bv));
                    vst1q_s32(o.add(4), vaddq_s32(acc[r][1], bv));
                }
            }
            super::tail_columns(i..i + rows, n8, n, kp, a, b, c);
            i += rows;
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod x86_64 {
    use std::arch::x86_64::*;

    /// AVX2: a register block of 4 rows × 8 columns. Bytes are widened to i16 and multiplied
    /// with `vpmaddwd` (exact: no `vpmaddubsw`, whose i16 saturation would break bit-exactness),
    /// giving two partial sums per column that are folded with one `vphaddd` at the end.
    /// Column tails fall back to scalar code.
    ///
    /// # Safety
    /// The CPU must have AVX2; operands as in the module doc.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2_qgemm_u8i8_4x8(
        m: usize,
        n: usize,
        kp: usize,
        a: &[i8],
        b: &[u8],
        c: &mut [i32],
    ) {
        let k4n = kp / 4;
        let n8 = n / 8 * 8;
        // Each row's 4-weight groups widened to 4 i16 once, for a 64-bit broadcast per step.
        let wpat: Vec<i64> = a[..m * kp]
            .chunks_exact(4)
            .map(|w| {
                w.iter().enumerate().fold(0i64, |acc, (q, &v)| {
                    acc | ((v as i16 as u16 as i64) << (16 * q))
                })
            })
            .collect();
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            for j in (0..n8).step_by(8) {
                let mut lo = [_mm256_setzero_si256(); 4];
                let mut hi = [_mm256_setzero_si256(); 4];
                for k4 in 0..k4n {
                    // Load 8 columns × 4 k of activations, widened to i16.
                    let x = _mm256_loadu_si256(b.as_ptr().add((k4 * n + j) * 4) as *const __m256i);
                    let xl = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(x));
                    let xh = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(x));
                    for r in 0..rows {
                        // The row's 4 weights as i16, repeated over the register.
                        let wv = _mm256_set1_epi64x(*wpat.get_unchecked((i + r) * k4n + k4));
                        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(xl, wv));
                        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(xh, wv));
                    }
                }
                // Fold the two partial sums of each column and store.
                for r in 0..rows {
                    let s =
                        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[r], hi[r]));
                    _mm256_storeu_si256(c.as_mut_ptr().add((i + r) * n + j) as *mut __m256i, s);
                }
            }
            super::tail_columns(i..i + rows, n8, n, kp, a, b, c);
            i += rows;
        }
    }

    /// AVX-512 VNNI: a register block of 8 rows × 32 columns (16 accumulators), `vpdpbusd` over 4 k
    /// at a time; column tails through masked loads and stores, row tails one row at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI; operands as in the module doc.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512vnni_qgemm_u8i8_8x32(
        m: usize,
        n: usize,
        kp: usize,
        a: &[i8],
        b: &[u8],
        c: &mut [i32],
    ) {
        let bp = b.as_ptr();
        let k4n = kp / 4;
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(8);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(32);
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
                let mut acc = [_mm512_setzero_si512(); 16];
                for k4 in 0..k4n {
                    // Load 32 columns × 4 k of activations.
                    let p = bp.add((k4 * n + j) * 4) as *const i32;
                    let x0 = _mm512_maskz_loadu_epi32(m0, p);
                    let x1 = _mm512_maskz_loadu_epi32(m1, p.add(16));
                    // Broadcast 4 k of each row's weights and accumulate.
                    for r in 0..rows {
                        let w = _mm512_set1_epi32(
                            (a.as_ptr().add((i + r) * kp + 4 * k4) as *const i32).read_unaligned(),
                        );
                        acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], x0, w);
                        acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], x1, w);
                    }
                }
                // Store the block.
                for r in 0..rows {
                    let o = c.as_mut_ptr().add((i + r) * n + j);
                    _mm512_mask_storeu_epi32(o, m0, acc[2 * r]);
                    _mm512_mask_storeu_epi32(o.add(16), m1, acc[2 * r + 1]);
                }
                j += 32;
            }
            i += rows;
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

    /// Every kernel against `generic`: m, n and k below, at and above the tile, not multiples of it.
    #[test]
    fn simd_equals_generic_bit_for_bit() {
        let mut s = 12345u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for &(m, n, k) in &[
            (1usize, 1usize, 1usize),
            (3, 31, 5),
            (4, 32, 4),
            (5, 33, 8),
            (8, 64, 36),
            (13, 100, 77),
            (64, 17, 576),
        ] {
            let kp = k.div_ceil(4) * 4;
            let mut a = vec![0i8; m * kp];
            for r in 0..m {
                for q in 0..k {
                    a[r * kp + q] = rnd() as i8;
                }
            }
            // Junk in the padded k rows of b must not matter.
            let b: Vec<u8> = (0..kp * n).map(|_| rnd() as u8).collect();
            let mut want = vec![0i32; m * n];
            generic_qgemm_u8i8(m, n, kp, &a, &b, &mut want);
            let mut got = vec![7i32; m * n];
            qgemm_u8i8(m, n, kp, &a, &b, &mut got);
            assert_eq!(got, want, "{} on m {m} n {n} k {k}", qgemm_name());
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut got2 = vec![7i32; m * n];
                unsafe { x86_64::avx2_qgemm_u8i8_4x8(m, n, kp, &a, &b, &mut got2) };
                assert_eq!(got2, want, "avx2 on m {m} n {n} k {k}");
            } else {
                eprintln!("SKIPPED the AVX2 kernel: this CPU has no AVX2");
            }
            #[cfg(target_arch = "aarch64")]
            {
                let mut g = vec![7i32; m * n];
                unsafe { aarch64::neon_qgemm_u8i8_4x4(m, n, kp, &a, &b, &mut g) };
                assert_eq!(g, want, "neon on m {m} n {n} k {k}");
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    let mut g = vec![7i32; m * n];
                    unsafe { aarch64::neon_dot_qgemm_u8i8_4x8(m, n, kp, &a, &b, &mut g) };
                    assert_eq!(g, want, "neon dot on m {m} n {n} k {k}");
                } else {
                    eprintln!("SKIPPED the sdot kernel: this CPU has no dot product (the NEON fallback is used)");
                }
            }
            // Extreme values: 255 × -128 summed over k.
            let a2 = vec![-128i8; m * kp];
            let b2 = vec![255u8; kp * n];
            let mut w2 = vec![0; m * n];
            let mut g2 = vec![0; m * n];
            generic_qgemm_u8i8(m, n, kp, &a2, &b2, &mut w2);
            qgemm_u8i8(m, n, kp, &a2, &b2, &mut g2);
            assert_eq!(g2, w2);
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut g3 = vec![0; m * n];
                unsafe { x86_64::avx2_qgemm_u8i8_4x8(m, n, kp, &a2, &b2, &mut g3) };
                assert_eq!(g3, w2, "avx2 extremes");
            }
        }
    }
}
