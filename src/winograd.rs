//! Winograd F(4×4, 3×3) arithmetic shared by the engines that run it (the GPU's
//! `gpu::winograd`, the CPU's `cpu::graph::winograd`): Lavin and Gray's transforms over the points
//! 0, ±1, ±2 and ∞. A 6 × 6 input tile d gives a 4 × 4 output tile
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, 36 multiplies where the direct conv does 144:
//!
//! ```text
//! Bᵀ = | 4  0 -5  0  1  0 |   Aᵀ = | 1  1  1  1  1  0 |
//!      | 0 -4 -4  1  1  0 |        | 0  1 -1  2 -2  0 |
//!      | 0  4 -4 -1  1  0 |        | 0  1  1  4  4  0 |
//!      | 0 -2 -1  2  1  0 |        | 0  1 -1  8 -8  1 |
//!      | 0  2 -1 -2  1  0 |
//!      | 0  4  0 -5  0  1 |
//! ```
//!
//! Frequencies are numbered ξ = 6i + k (i along y, k along x).

use std::ops::{Add, Mul, Sub};

/// Gᵀ's rows: the 6 frequencies of F(4, 3) from a 3-tap kernel.
pub(crate) const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// One 3 × 3 kernel (row-major, y then x) → its 36 frequencies G g Gᵀ (ξ = 6i + k), computed in
/// float64 and rounded once.
pub(crate) fn kernel(g: &[f32]) -> [f32; 36] {
    // First along x (gx[k][a]: kernel row a through G's row k), then along y.
    let mut gx = [[0.0f64; 3]; 6];
    for (gk, row) in G.iter().zip(gx.iter_mut()) {
        for (a, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|b| gk[b] * g[a * 3 + b] as f64).sum();
        }
    }
    let mut u = [0.0f32; 36];
    for (i, gi) in G.iter().enumerate() {
        for (k, gxk) in gx.iter().enumerate() {
            u[6 * i + k] = (0..3).map(|a| gi[a] * gxk[a]).sum::<f64>() as f32;
        }
    }
    u
}

/// Bᵀ d for one 6-vector (the input transform along one axis); `T` is one value or a vector
/// of tiles.
#[inline(always)]
pub(crate) fn bt<T>(d: [T; 6]) -> [T; 6]
where
    T: Copy + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>,
{
    [
        d[0] * 4.0 - d[2] * 5.0 + d[4],
        d[3] + d[4] - (d[1] + d[2]) * 4.0,
        (d[1] - d[2]) * 4.0 - d[3] + d[4],
        (d[3] - d[1]) * 2.0 - d[2] + d[4],
        (d[1] - d[3]) * 2.0 - d[2] + d[4],
        d[1] * 4.0 - d[3] * 5.0 + d[5],
    ]
}

/// Aᵀ m for one 6-vector (the output transform along one axis).
#[inline(always)]
pub(crate) fn at<T>(m: [T; 6]) -> [T; 4]
where
    T: Copy + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>,
{
    let (s12, d12, s34, d34) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + d34 * 2.0,
        s12 + s34 * 4.0,
        d12 + d34 * 8.0 + m[5],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F(4, 3) in one dimension: Aᵀ[(G g) ⊙ (Bᵀ d)] is the 4 outputs of the 3-tap correlation
    /// of d; and in two, through `kernel`, against the 3 × 3 correlation.
    #[test]
    fn transforms_compute_a_correlation() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5f32, -0.25, 1.5];
        let bd = bt(d);
        let m: Vec<f32> = (0..6)
            .map(|i| (0..3).map(|b| G[i][b] as f32 * g[b]).sum::<f32>() * bd[i])
            .collect();
        let got = at(m.try_into().unwrap());
        for (y, got) in got.iter().enumerate() {
            let want: f32 = (0..3).map(|b| g[b] * d[y + b]).sum();
            assert!((got - want).abs() < 1e-5, "output {y}: {got} vs {want}");
        }
        let k: Vec<f32> = (0..9).map(|i| (i as f32 * 0.37).sin()).collect();
        let tile: Vec<f32> = (0..36).map(|i| (i as f32 * 0.11).cos()).collect();
        let u = kernel(&k);
        let mut v = [[0f32; 6]; 6];
        let rows: Vec<[f32; 6]> = (0..6)
            .map(|y| bt(tile[6 * y..6 * y + 6].try_into().unwrap()))
            .collect();
        for kx in 0..6 {
            let col = bt(std::array::from_fn(|y| rows[y][kx]));
            for ky in 0..6 {
                v[ky][kx] = col[ky] * u[6 * ky + kx];
            }
        }
        let cols: Vec<[f32; 4]> = (0..6)
            .map(|kx| at(std::array::from_fn(|ky| v[ky][kx])))
            .collect();
        for oy in 0..4 {
            let o = at(std::array::from_fn(|kx| cols[kx][oy]));
            for ox in 0..4 {
                let want: f32 = (0..9)
                    .map(|t| k[t] * tile[(oy + t / 3) * 6 + ox + t % 3])
                    .sum();
                assert!(
                    (o[ox] - want).abs() < 1e-5,
                    "({oy}, {ox}): {} vs {want}",
                    o[ox]
                );
            }
        }
    }
}
