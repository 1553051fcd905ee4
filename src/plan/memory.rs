//! Activation memory planning by tensor lifetime.
//!
//! Every tensor of a `Graph` gets an offset in one arena. A tensor lives from the op that writes
//! it to the last op that reads it (the input from before the first op, the output to the end),
//! so a skip connection stays live across the whole encoder-decoder span. Placement is the
//! "greedy by size" strategy of Pisarchyk & Lee, *Efficient Memory Management for Deep Neural Net
//! Inference* (2020): largest tensors first, each at the lowest offset that does not overlap a
//! placed tensor whose lifetime intersects its own.

use super::{Graph, TensorId};

/// Offsets are aligned to this (WebGPU's `minStorageBufferOffsetAlignment` is at most 256).
pub const ARENA_ALIGN: u64 = 256;

#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Byte offset of each tensor in the arena.
    pub offsets: Vec<u64>,
    /// Byte size of each tensor (unpadded).
    pub sizes: Vec<u64>,
    /// [first op, last op] during which each tensor must stay intact.
    pub lifetimes: Vec<(usize, usize)>,
    /// Arena size: the planned activation bytes.
    pub arena_bytes: u64,
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Place every tensor of `g` in one arena, reusing memory between tensors whose lifetimes do
/// not overlap.
pub fn plan_memory(g: &Graph, alignment: u64) -> MemoryPlan {
    plan_memory_with(g, alignment, false)
}

/// As `plan_memory`; with `keep_all`, every tensor lives to the end (no reuse), so all
/// intermediate values can be read back after a run (debugging, per-kernel tests).
pub fn plan_memory_with(g: &Graph, alignment: u64, keep_all: bool) -> MemoryPlan {
    let sizes = (0..g.shapes.len()).map(|t| g.bytes(t)).collect();
    plan_memory_sized(g, alignment, keep_all, sizes)
}

/// As `plan_memory_with`, with each tensor's size in bytes given (layouts other than float32
/// NCHW: the int8 plan's packed, padded activations).
pub fn plan_memory_sized(g: &Graph, alignment: u64, keep_all: bool, sizes: Vec<u64>) -> MemoryPlan {
    let nt = g.shapes.len();
    let end = g.ops.len();
    let mut life = vec![(usize::MAX, 0usize); nt];
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
