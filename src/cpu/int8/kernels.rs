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

static FORCE_GENERIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make `qgemm_u8i8` use the portable kernel (tests compare whole networks both ways).
pub fn force_generic(on: bool) {
    FORCE_GENERIC.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The best kernel this CPU has, picked at run time.
pub fn qgemm_u8i8(m: usize, n: usize, kp: usize, a: &[i8], b: &[u8], c: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if !FORCE_GENERIC.load(std::sync::atomic::Ordering::Relaxed)
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512bw")
    {
        assert!(kp.is_multiple_of(4) && a.len() >= m * kp && b.len() >= kp * n && c.len() >= m * n);
        // SAFETY: the features were detected; the bounds were asserted.
        unsafe { x86_64::avx512vnni_qgemm_u8i8_8x32(m, n, kp, a, b, c) };
        return;
    }
    generic_qgemm_u8i8(m, n, kp, a, b, c)
}

/// Name of the kernel `qgemm_u8i8` runs here (for reports).
pub fn qgemm_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if !FORCE_GENERIC.load(std::sync::atomic::Ordering::Relaxed)
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512bw")
    {
        return "avx512vnni_qgemm_u8i8_8x32";
    }
    "generic_qgemm_u8i8"
}

#[cfg(target_arch = "x86_64")]
pub mod x86_64 {
    use std::arch::x86_64::*;

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
            // Extreme values: 255 × -128 summed over k.
            let a2 = vec![-128i8; m * kp];
            let b2 = vec![255u8; kp * n];
            let mut w2 = vec![0; m * n];
            let mut g2 = vec![0; m * n];
            generic_qgemm_u8i8(m, n, kp, &a2, &b2, &mut w2);
            qgemm_u8i8(m, n, kp, &a2, &b2, &mut g2);
            assert_eq!(g2, w2);
        }
    }
}
