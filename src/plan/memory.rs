//! Activation memory planning by tensor lifetime.
//!
//! Every tensor of a `Graph` gets an offset in one arena. A tensor lives from the op that writes
//! it to the last op that reads it (the input from before the first op, the output to the end),
//! so a skip connection stays live across the whole encoder-decoder span. Placement is the
//! "greedy by size" strategy of Pisarchyk & Lee, *Efficient Memory Management for Deep Neural Net
//! Inference* (2020): largest tensors first, each at the lowest offset that does not overlap a
//! placed tensor whose lifetime intersects its own.

use super::{Graph, Shape, TensorId};

/// Offsets are aligned to this (WebGPU's `minStorageBufferOffsetAlignment` is at most 256).
pub const ARENA_ALIGN: u64 = 256;

#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Byte offset of each tensor in the arena.
    pub offsets: Vec<u64>,
    /// Byte size of each tensor (in its layout: float32 tensors with `plane_stride` planes).
    pub sizes: Vec<u64>,
    /// [first op, last op] during which each tensor must stay intact.
    pub lifetimes: Vec<(usize, usize)>,
    /// Arena size: the planned activation bytes.
    pub arena_bytes: u64,
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Floats between the channel planes of an `h × w` float32 tensor in a GPU arena (`hw = h · w`):
/// `hw`, plus one 64-byte line where the plane is a whole number of 4 KiB pages. Without it the
/// same pixel of every channel maps to the same cache set (a 3×3 conv reads 10 rows of each of
/// 64–1024 channels per column), and at 256² the decoder's first convs lost 15–25 % of their speed
/// to conflict misses on lavapipe. `shaders/lib/layout_f32.wgsl` holds the same rule.
pub fn plane_stride(hw: usize) -> usize {
    if hw.is_multiple_of(1024) {
        hw + 16
    } else {
        hw
    }
}

/// Bytes of a float32 NCHW tensor in that layout.
pub fn f32_tensor_bytes(s: Shape) -> u64 {
    4 * (s[0] * s[1] * plane_stride(s[2] * s[3])) as u64
}

/// Dense NCHW values into that layout (borrowed where no plane is padded).
pub fn pad_planes(s: Shape, dense: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    let (hw, ps) = (s[2] * s[3], plane_stride(s[2] * s[3]));
    if ps == hw {
        return dense.into();
    }
    let mut out = vec![0.0; s[0] * s[1] * ps];
    for (o, d) in out.chunks_exact_mut(ps).zip(dense.chunks_exact(hw)) {
        o[..hw].copy_from_slice(d);
    }
    out.into()
}

/// The inverse of `pad_planes`: `padded` holds a tensor of shape `s` in the layout.
pub fn unpad_planes(s: Shape, padded: &[f32]) -> Vec<f32> {
    let (hw, ps) = (s[2] * s[3], plane_stride(s[2] * s[3]));
    padded
        .chunks_exact(ps)
        .take(s[0] * s[1])
        .flat_map(|p| &p[..hw])
        .copied()
        .collect()
}

/// Place every float32 tensor of `g` (planes `plane_stride` apart) in one arena, reusing memory
/// between tensors whose lifetimes do not overlap.
pub fn plan_memory(g: &Graph, alignment: u64) -> MemoryPlan {
    plan_memory_with(g, alignment, false)
}

/// As `plan_memory`; with `keep_all`, every tensor lives to the end (no reuse), so all
/// intermediate values can be read back after a run (debugging, per-kernel tests).
pub fn plan_memory_with(g: &Graph, alignment: u64, keep_all: bool) -> MemoryPlan {
    let sizes = g.shapes.iter().map(|&s| f32_tensor_bytes(s)).collect();
    plan_memory_sized(g, alignment, keep_all, sizes)
}

/// As `plan_memory_with`, with each tensor's size in bytes given (layouts other than float32
/// NCHW: the int8 plan's packed, padded activations).
pub fn plan_memory_sized(g: &Graph, alignment: u64, keep_all: bool, sizes: Vec<u64>) -> MemoryPlan {
    plan_memory_temps(g, alignment, keep_all, sizes, &[])
}

/// As `plan_memory_sized`, plus scratch buffers that live during one op only: `temps[k] = (op,
/// bytes)` is placed as tensor `g.shapes.len() + k` (the Winograd convs' transformed tiles). They
/// share the arena's gaps with the tensors that are not live at that op.
pub fn plan_memory_temps(
    g: &Graph,
    alignment: u64,
    keep_all: bool,
    mut sizes: Vec<u64>,
    temps: &[(usize, u64)],
) -> MemoryPlan {
    let ng = g.shapes.len();
    let nt = ng + temps.len();
    let end = g.ops.len();
    let mut life = vec![(usize::MAX, 0usize); nt];
    for (k, &(op, bytes)) in temps.iter().enumerate() {
        life[ng + k] = (op, op);
        sizes.push(bytes);
    }
    life[g.input] = (0, 0);
    for (i, op) in g.ops.iter().enumerate() {
        let o = op.output();
        life[o].0 = life[o].0.min(i);
        life[o].1 = life[o].1.max(i);
        for t in op.inputs() {
            life[t].1 = life[t].1.max(i);
        }
    }
    life[g.output].1 = end;
    if keep_all {
        life.iter_mut().for_each(|l| l.1 = end);
    }
    place_by_size(sizes, life, alignment)
}

/// Greedy-by-size placement of buffers given their sizes in bytes and their lifetimes (first,
/// last step, inclusive): the core of every plan here, also used directly by engines whose
/// graphs are not a `Graph` (`gpu::graph`).
pub fn place_by_size(sizes: Vec<u64>, life: Vec<(usize, usize)>, alignment: u64) -> MemoryPlan {
    let nt = sizes.len();
    let mut order: Vec<TensorId> = (0..nt).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(sizes[t]), t));
    let mut offsets = vec![0u64; nt];
    let mut placed: Vec<TensorId> = Vec::with_capacity(nt);
    let mut arena = 0u64;
    for t in order {
        let (a0, a1) = life[t];
        let mut busy: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| life[p].0 <= a1 && a0 <= life[p].1)
            .map(|&p| (offsets[p], offsets[p] + align(sizes[p], alignment)))
            .collect();
        busy.sort_unstable();
        let need = align(sizes[t], alignment);
        let mut at = 0u64;
        for (s, e) in busy {
            if at + need <= s {
                break;
            }
            at = at.max(e);
        }
        offsets[t] = at;
        arena = arena.max(at + need);
        placed.push(t);
    }
    MemoryPlan {
        offsets,
        sizes,
        lifetimes: life,
        arena_bytes: arena,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn planes_of_whole_pages_get_one_line_more_and_round_trip() {
        use super::{f32_tensor_bytes, pad_planes, plane_stride, unpad_planes};
        assert_eq!(plane_stride(256 * 256), 256 * 256 + 16);
        assert_eq!(plane_stride(32 * 32), 32 * 32 + 16);
        assert_eq!(plane_stride(16 * 16), 256);
        assert_eq!(plane_stride(40 * 32), 40 * 32);
        let s = [2, 3, 32, 64];
        assert_eq!(f32_tensor_bytes(s), 4 * 6 * (2048 + 16));
        let dense: Vec<f32> = (0..2 * 3 * 32 * 64).map(|v| v as f32).collect();
        let padded = pad_planes(s, &dense);
        assert_eq!(padded.len(), 6 * 2064);
        assert_eq!(padded[2064], 2048.0);
        assert_eq!(padded[2048..2064], [0.0; 16]);
        assert_eq!(unpad_planes(s, &padded), dense);
        let odd = [1, 2, 5, 7];
        let d: Vec<f32> = (0..70).map(|v| v as f32).collect();
        assert!(matches!(pad_planes(odd, &d), std::borrow::Cow::Borrowed(_)));
        assert_eq!(unpad_planes(odd, &d), d);
    }

    use super::*;
    use crate::model::UNetSpec;

    fn check_no_overlap(p: &MemoryPlan) {
        for a in 0..p.offsets.len() {
            for b in a + 1..p.offsets.len() {
                let (la, lb) = (p.lifetimes[a], p.lifetimes[b]);
                if la.0 <= lb.1 && lb.0 <= la.1 {
                    let (sa, sb) = (p.offsets[a], p.offsets[b]);
                    assert!(
                        sa + p.sizes[a] <= sb || sb + p.sizes[b] <= sa,
                        "tensors {a} and {b} overlap in time and space"
                    );
                }
            }
        }
    }

    #[test]
    fn live_tensors_never_share_bytes_and_memory_is_reused() {
        for (features, shape) in [
            (vec![4], [2, 3, 17, 23]),
            (vec![8, 16, 32, 64, 128], [1, 3, 67, 45]),
        ] {
            let spec = UNetSpec::new(3, 2, features);
            for fold in [true, false] {
                let g = Graph::build(&spec, shape, fold).unwrap();
                let p = plan_memory(&g, ARENA_ALIGN);
                check_no_overlap(&p);
                assert!(
                    p.arena_bytes < g.total_tensor_bytes(),
                    "{} vs {}",
                    p.arena_bytes,
                    g.total_tensor_bytes()
                );
                assert!(p.offsets.iter().all(|o| o % ARENA_ALIGN == 0));
            }
        }
    }

    #[test]
    fn reference_model_at_512_fits_in_200_mib() {
        let spec = UNetSpec::new(3, 1, vec![64, 128, 256, 512]);
        let g = Graph::build(&spec, [1, 3, 512, 512], true).unwrap();
        let p = plan_memory(&g, ARENA_ALIGN);
        check_no_overlap(&p);
        let mib = p.arena_bytes as f64 / (1 << 20) as f64;
        assert!(mib <= 200.0, "{mib} MiB");
    }
}
