//! Winograd F(4×4, 3×3) for the float32 3×3 convs: the weights transformed once at load
//! (U = G g Gᵀ, in float64), and per layer three kinds of dispatches over chunks of tile rows:
//! the input transform (`shaders/winograd/wino4x4_input_f32.wgsl`), 36 products of U with the
//! transformed tiles as one batched GEMM (`wino4x4_gemm_sg_f32`), and the output transform with
//! bias and ReLU (`wino4x4_output_f32`). The GEMM does 36 multiply-adds per 16 output pixels per
//! channel pair where the direct conv does 144.
//!
//! Costs that decide where it runs: U is 4× the size of the direct weights (36 values per 9), and
//! the GEMM reads all of U once per chunk, so it pays only where a layer has many tiles per
//! weight. Only layers of at most `MAX_COUT` output channels get U (the network's wide, shallow
//! levels; the deep ones hold most of the weights and have the fewest pixels), and a plan uses it
//! where the GEMM's blocks of 4 · SG tiles are at least 4/5 full (fewer tiles than a block, and
//! the direct kernel is faster: on lavapipe, 16 tiles in a block of 32 ran 1.2–1.3× slower). The
//! transformed tiles live in the activation arena for the duration of their layer only, in chunks
//! of at most `CHUNK_BYTES`.

use rayon::prelude::*;

use super::kernels::{linear_groups, Kernel};
use super::step::{Binding, StepSpec};
use crate::plan::{ConvRef, Graph, Op};

/// Output channels up to which a layer's weights are also kept transformed.
pub(crate) const MAX_COUT: usize = 512;
/// Input channels from which a layer is worth it (`cinp` pads to a multiple of `CIN_ALIGN`).
pub(crate) const MIN_CIN: usize = 32;
/// Input channels of U and V are padded to this (the GEMM takes SG / 2 ≤ 32 per weight load).
pub(crate) const CIN_ALIGN: usize = 32;
/// Tiles below which the byte budget does not cut a chunk (nor below a GEMM block), whatever
/// its bytes; evening the chunks out can leave them a little under.
pub(crate) const MIN_CHUNK_TILES: usize = 64;
/// The most bytes of transformed tiles (V and M together) one chunk may hold, by default
/// (`GpuOptions::winograd_chunk_bytes`).
pub const CHUNK_BYTES: u64 = 6 << 20;

/// Whether a layer of `cin` → `cout` channels gets transformed weights (its direct weights are
/// packed for the subgroup kernel, which takes 8 output channels and more).
pub(crate) fn wants(cin: usize, cout: usize) -> bool {
    cin >= MIN_CIN && (8..=MAX_COUT).contains(&cout)
}

/// 3×3 weights `[cout, cin, 3, 3]` → U grouped for the GEMM: vec4 index
/// `((g · 36 + ξ) · cinp + ci) · 2 + j` holds output channels `8g + 4j ..+ 4` of frequency
/// ξ = 6i + k (i along y, k along x), zero past `cout` and `cin`. Each group of 8 output channels
/// is one contiguous block, filled by its own task (rayon; in the browser on the calling thread,
/// which may be a page's main thread, where a thread pool cannot be waited for).
pub(crate) fn pack_u(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let cinp = cin.div_ceil(CIN_ALIGN) * CIN_ALIGN;
    let cog = cout.div_ceil(8);
    let mut out = vec![0.0; cog * 36 * cinp * 8];
    let fill = |(g, block): (usize, &mut [f32])| {
        for ci in 0..cin {
            for co in 8 * g..(8 * g + 8).min(cout) {
                let u = crate::winograd::kernel(&weight[(co * cin + ci) * 9..][..9]);
                for (xi, &v) in u.iter().enumerate() {
                    block[(xi * cinp + ci) * 8 + co % 8] = v;
                }
            }
        }
    };
    let block = 36 * cinp * 8;
    if cfg!(target_arch = "wasm32") {
        out.chunks_mut(block).enumerate().for_each(fill);
    } else {
        out.par_chunks_mut(block).enumerate().for_each(fill);
    }
    out
}

/// How one layer runs as Winograd at one input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub tiles_x: u32,
    /// Tile rows over all images (n · h / 4).
    pub rows: u32,
    /// Tile rows per chunk (the last may have fewer).
    pub chunk_rows: u32,
    /// Tiles between rows of V and M: the largest chunk's tiles, rounded up to the GEMM's block.
    pub tstride: u32,
    pub cinp: u32,
    pub coutp: u32,
}

impl Layout {
    /// The layout for a conv of `cin` → `cout` channels on `[n, _, h, w]`, or `None` where the
    /// direct kernel runs: sizes not multiples of 4, GEMM blocks more than 1/5 padding (too few
    /// tiles), or no fixed subgroup size.
    pub(crate) fn new(
        sg: Option<u32>,
        [n, cin, cout, h, w]: [usize; 5],
        chunk_bytes: u64,
        max_binding: u64,
    ) -> Option<Layout> {
        let sg = sg? as usize;
        if !wants(cin, cout) || h % 4 != 0 || w % 4 != 0 {
            return None;
        }
        let cinp = cin.div_ceil(CIN_ALIGN) * CIN_ALIGN;
        let coutp = cout.div_ceil(8) * 8;
        let (tiles_x, rows) = (w / 4, n * h / 4);
        let block = 4 * sg;
        let bytes = |r: usize| {
            let ts = (r * tiles_x).div_ceil(block) * block;
            (36 * 4 * (cinp + coutp) * ts) as u64
        };
        // The largest chunk within the budget, but the budget does not cut it under
        // MIN_CHUNK_TILES tiles nor a block: each chunk reads all of U again, and a block holding
        // fewer tiles wastes lanes.
        let min_rows = MIN_CHUNK_TILES.max(block).div_ceil(tiles_x).min(rows);
        let mut chunk_rows = rows;
        while chunk_rows > min_rows && bytes(chunk_rows) > chunk_bytes {
            chunk_rows = chunk_rows.div_ceil(2).min(chunk_rows - 1).max(min_rows);
        }
        if bytes(chunk_rows) > max_binding {
            return None;
        }
        // Even chunks: the same number of dispatches, less padding in the last (they can end
        // a little under the minimum; the padding check below bounds what that costs).
        let chunks = rows.div_ceil(chunk_rows);
        let chunk_rows = rows.div_ceil(chunks);
        let tstride = (chunk_rows * tiles_x).div_ceil(block) * block;
        if 4 * chunks * tstride > 5 * rows * tiles_x {
            return None;
        }
        Some(Layout {
            tiles_x: tiles_x as u32,
            rows: rows as u32,
            chunk_rows: chunk_rows as u32,
            tstride: tstride as u32,
            cinp: cinp as u32,
            coutp: coutp as u32,
        })
    }

    /// Bytes of the transformed input tiles (V) and of the products (M) of one chunk.
    pub(crate) fn scratch_bytes(&self) -> (u64, u64) {
        let ts = 4 * 36 * self.tstride as u64;
        (ts * self.cinp as u64, ts * self.coutp as u64)
    }

    /// The dispatches of one layer: per chunk, the input transform of each source, the GEMM,
    /// the output transform. `srcs`: the input tensors and their channels; `v`, `m`: the scratch
    /// tensors; the GEMM steps carry the layer's FLOPs (as a direct conv counts them).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn steps<'a>(
        &self,
        sg: u32,
        maxd: u32,
        srcs: &[(usize, u32)],
        out: usize,
        [cout, h, w]: [u32; 3],
        u: &'a wgpu::Buffer,
        bias: &'a wgpu::Buffer,
        (v, m): (usize, usize),
        relu: bool,
        label: &str,
        flops: u64,
    ) -> Vec<StepSpec<'a>> {
        let mut steps = Vec::new();
        let mut r0 = 0;
        while r0 < self.rows {
            let rows = self.chunk_rows.min(self.rows - r0);
            let tiles = rows * self.tiles_x;
            let tail = |what: &str| {
                if self.rows > self.chunk_rows {
                    format!("{label} [{what} rows {r0}..{}]", r0 + rows)
                } else {
                    format!("{label} [{what}]")
                }
            };
            let mut ci0 = 0;
            for &(t, c) in srcs {
                steps.push(StepSpec {
                    kernel: Kernel::WinoInput,
                    params: [c, ci0, self.cinp, h, w, r0, tiles, self.tstride],
                    groups: linear_groups(tiles as u64 * c as u64, maxd),
                    bufs: vec![Binding::Arena(t), Binding::Arena(v)],
                    label: tail("winograd in"),
                    flops: 0,
                    tensors: vec![t, v],
                    output: out,
                });
                ci0 += c;
            }
            // V's padding channels, which the GEMM reads (against zero rows of U), zeroed: the
            // arena there holds whatever an earlier tensor left, and 0 · Inf is NaN. A source
            // of no channels (the first one's binding) writes zeros from channel ci0 to cinp.
            if ci0 < self.cinp {
                let (t, _) = srcs[0];
                steps.push(StepSpec {
                    kernel: Kernel::WinoInput,
                    params: [0, ci0, self.cinp, h, w, r0, tiles, self.tstride],
                    groups: linear_groups(tiles as u64 * (self.cinp - ci0) as u64, maxd),
                    bufs: vec![Binding::Arena(t), Binding::Arena(v)],
                    label: tail("winograd in, zero padding"),
                    flops: 0,
                    tensors: vec![v],
                    output: out,
                });
            }
            steps.push(StepSpec {
                kernel: Kernel::WinoGemm,
                params: [self.cinp, self.coutp, self.tstride, 0, 0, 0, 0, 0],
                groups: [self.tstride / (4 * sg), self.coutp / 8, 36],
                bufs: vec![Binding::Arena(v), Binding::Weights(u), Binding::Arena(m)],
                label: tail("winograd gemm"),
                flops: flops * rows as u64 / self.rows as u64,
                tensors: vec![v, m],
                output: out,
            });
            steps.push(StepSpec {
                kernel: Kernel::WinoOutput,
                params: [cout, self.coutp, h, w, r0, tiles, self.tstride, relu as u32],
                groups: linear_groups(tiles as u64 * cout as u64, maxd),
                bufs: vec![
                    Binding::Arena(m),
                    Binding::Weights(bias),
                    Binding::Arena(out),
                ],
                label: tail("winograd out"),
                flops: 0,
                tensors: vec![m, out],
                output: out,
            });
            r0 += rows;
        }
        steps
    }
}

/// A layer that runs as Winograd: its layout and its two scratch tensors (V, M).
pub(crate) type WinoLayer = (Layout, (usize, usize));

/// Which 3×3 convs of `graph` run as Winograd (those whose weights were transformed, `has_u`,
/// and whose shape `Layout::new` takes), and their scratch: per op, its layout and the ids of its
/// V and M, and the list of `(op, bytes)` scratch tensors for `plan::plan_memory_temps` (V and
/// M of op i get ids `graph.shapes.len() + 2k`, `+ 2k + 1` in op order).
pub(crate) fn plan_layers(
    graph: &Graph,
    has_u: impl Fn(&ConvRef) -> bool,
    sg: Option<u32>,
    chunk_bytes: u64,
    max_binding: u64,
) -> (Vec<Option<WinoLayer>>, Vec<(usize, u64)>) {
    let mut temps = Vec::new();
    let mut layers = vec![None; graph.ops.len()];
    for (i, op) in graph.ops.iter().enumerate() {
        let Op::Conv3x3 {
            a, b, out, conv, ..
        } = op
        else {
            continue;
        };
        if !has_u(conv) {
            continue;
        }
        let [n, cout, h, w] = graph.shapes[*out];
        let cin = graph.shapes[*a][1] + b.map_or(0, |b| graph.shapes[b][1]);
        if let Some(l) = Layout::new(sg, [n, cin, cout, h, w], chunk_bytes, max_binding) {
            let (v, m) = l.scratch_bytes();
            let first = graph.shapes.len() + temps.len();
            temps.extend([(i, v), (i, m)]);
            layers[i] = Some((l, (first, first + 1)));
        }
    }
    (layers, temps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_budget_and_cover_every_row() {
        for (shape, sg) in [
            ([1, 64, 64, 512, 512], 8),
            ([1, 128, 64, 128, 128], 4),
            ([2, 256, 256, 32, 32], 32),
        ] {
            let l = Layout::new(Some(sg), shape, CHUNK_BYTES, 128 << 20).expect("runs as winograd");
            let (v, m) = l.scratch_bytes();
            let min_rows = MIN_CHUNK_TILES
                .max(4 * sg as usize)
                .div_ceil(l.tiles_x as usize) as u32;
            assert!(
                v + m <= CHUNK_BYTES || l.chunk_rows <= min_rows,
                "{shape:?}: {}",
                v + m
            );
            assert!(l.chunk_rows * l.rows.div_ceil(l.chunk_rows) >= l.rows);
            assert_eq!(l.tstride % (4 * sg), 0);
            assert!(l.tstride >= l.chunk_rows * l.tiles_x);
        }
        assert_eq!(
            Layout::new(Some(8), [1, 64, 64, 30, 32], CHUNK_BYTES, 1 << 30),
            None
        );
        assert_eq!(
            Layout::new(Some(8), [1, 64, 1024, 64, 64], CHUNK_BYTES, 1 << 30),
            None
        );
        assert_eq!(
            Layout::new(None, [1, 64, 64, 64, 64], CHUNK_BYTES, 1 << 30),
            None
        );
        assert_eq!(
            Layout::new(Some(8), [1, 64, 64, 12, 12], CHUNK_BYTES, 1 << 30),
            None
        );
    }
}
