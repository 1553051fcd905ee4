//! The CPU engine's prepared int8 layers (`PConv`) regrouped for the shaders: one u32 per
//! (output channel, 4 input channels, tap), per-block requantization constants, and the sparse
//! kernel's lists of nonzero 8 × 4 blocks.

use super::{make, Layer};
use crate::cpu::int8::PConv;

/// The word of 4 consecutive int8 weights.
fn word(a: &[i8]) -> u32 {
    u32::from_le_bytes([a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8])
}

/// A prepared CPU row's bias for the shaders, which compute Σ (x − 128) · w: plus 128 · Σw.
fn shader_bias(pc: &PConv, row: usize) -> i32 {
    let sum: i32 = pc.a[row * pc.kp..(row + 1) * pc.kp]
        .iter()
        .map(|&v| v as i32)
        .sum();
    pc.bias[row] + 128 * sum
}

/// 3×3 conv rows → `conv3x3_i8` weights `[k][blocks][8]` and per-block constants.
fn pack_conv3x3(pc: &PConv) -> (Vec<u32>, Vec<u32>, u32) {
    let blocks = pc.cout.div_ceil(8);
    let kw = pc.kp / 4;
    let mut w = vec![0u32; kw * blocks * 8];
    let mut rq = vec![0u32; blocks * 16];
    for co in 0..pc.cout {
        let (blk, j) = (co / 8, co % 8);
        for k in 0..kw {
            w[(k * blocks + blk) * 8 + j] = word(&pc.a[co * pc.kp + 4 * k..]);
        }
        rq[blk * 16 + j] = shader_bias(pc, co) as u32;
        rq[blk * 16 + 8 + j] = pc.mult[co].to_bits();
    }
    (w, rq, blocks as u32)
}

/// Transposed conv rows (`tap · cout4 + co`) → `upconv2x2_i8` weights `[g][tap][gout][4]` and
/// per-(tap, group) constants.
pub(super) fn pack_upconv(pc: &PConv) -> (Vec<u32>, Vec<u32>, u32) {
    let cout4 = pc.m / 4;
    let gout = cout4 / 4;
    let gin = pc.kp / 4;
    let mut w = vec![0u32; gin * 4 * cout4];
    let mut rq = vec![0u32; 4 * gout * 8];
    for tap in 0..4 {
        for co in 0..cout4 {
            let row = tap * cout4 + co;
            let (grp, j) = (co / 4, co % 4);
            for g in 0..gin {
                w[((g * 4 + tap) * gout + grp) * 4 + j] = word(&pc.a[row * pc.kp + 4 * g..]);
            }
            let r = (tap * gout + grp) * 8;
            rq[r + j] = shader_bias(pc, row) as u32;
            rq[r + 4 + j] = pc.mult[row].to_bits();
        }
    }
    (w, rq, gout as u32)
}

/// 3×3 conv rows → `conv3x3_sparse_i8` data: the nonzero 8×4 blocks' vec4 pairs and the entry
/// table (offsets per block of 8 output channels, then k = input group · 9 + tap per entry); and
/// the density of nonzero blocks. The requantization constants are the dense kernel's.
fn pack_sparse(pc: &PConv) -> (Vec<u32>, Vec<u32>, f64) {
    let blocks = pc.cout.div_ceil(8);
    let kw = pc.kp / 4;
    let mut w = Vec::new();
    let mut ks = Vec::new();
    let mut offsets = vec![0u32];
    for blk in 0..blocks {
        for k in 0..kw {
            let v: [u32; 8] = std::array::from_fn(|j| {
                let co = blk * 8 + j;
                if co < pc.cout {
                    word(&pc.a[co * pc.kp + 4 * k..])
                } else {
                    0
                }
            });
            if v != [0; 8] {
                w.extend_from_slice(&v);
                ks.push(k as u32);
            }
        }
        offsets.push(ks.len() as u32);
    }
    let density = ks.len() as f64 / (blocks * kw).max(1) as f64;
    if w.is_empty() {
        // Bindings may not be empty: one unused all-zero entry.
        w = vec![0; 8];
    }
    offsets.extend(ks);
    (w, offsets, density)
}

/// A 3×3 conv packed for both kernels, ready to upload either.
pub(super) struct Packed3x3 {
    dense: Vec<u32>,
    rq: Vec<u32>,
    blocks: u32,
    sparse: Vec<u32>,
    entries: Vec<u32>,
    /// Fraction of the 8×4 weight blocks that are nonzero.
    pub(super) density: f64,
    zl: u32,
}

impl Packed3x3 {
    pub(super) fn new(pc: &PConv) -> Packed3x3 {
        let (dense, rq, blocks) = pack_conv3x3(pc);
        let (sparse, entries, density) = pack_sparse(pc);
        Packed3x3 {
            dense,
            rq,
            blocks,
            sparse,
            entries,
            density,
            zl: pc.out.zero as u32 | (pc.lo as u32) << 8,
        }
    }

    /// The layer for `conv3x3_i8`.
    pub(super) fn dense(&self, device: &wgpu::Device, queue: &wgpu::Queue, name: &str) -> Layer {
        Layer {
            weights: make(device, queue, name, bytemuck::cast_slice(&self.dense)),
            rq: make(device, queue, name, bytemuck::cast_slice(&self.rq)),
            entries: None,
            blocks: self.blocks,
            zl: self.zl,
        }
    }

    /// The layer for `conv3x3_sparse_i8` (the dense kernel's requantization constants).
    pub(super) fn sparse(&self, device: &wgpu::Device, queue: &wgpu::Queue, name: &str) -> Layer {
        Layer {
            weights: make(device, queue, name, bytemuck::cast_slice(&self.sparse)),
            rq: make(device, queue, name, bytemuck::cast_slice(&self.rq)),
            entries: Some(make(
                device,
                queue,
                name,
                bytemuck::cast_slice(&self.entries),
            )),
            blocks: self.blocks,
            zl: self.zl,
        }
    }
}
