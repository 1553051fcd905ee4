//! Magnitude pruning of a model's convolution weights.
//!
//! - `Scope::Layer` is the source article's recipe, identical to PyTorch's
//!   `torch.nn.utils.prune.l1_unstructured(module, "weight", amount)` + `prune.remove` on every
//!   3×3 conv and the 1×1 head: per tensor, the `round(amount · n)` weights of smallest |w| (Python's
//!   round, halves to even) become zero.
//! - `Scope::Global` ranks every pruned weight of the model together by its magnitude after
//!   BatchNorm is folded in, |w · γ/√(σ²+ε)|, and zeroes the `round(amount · total)` smallest: layers
//!   whose BatchNorm scales their output down do not keep weights that cannot matter.
//!
//! Transposed convs stay dense unless `prune_transposed` (PyTorch's ConvTranspose2d is not an
//! `nn.Conv2d`, so the article leaves them dense).

use crate::model::{ConvWeights, UNet};
use crate::plan::ConvRef;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Layer,
    Global,
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "layer" => Ok(Scope::Layer),
            "global" => Ok(Scope::Global),
            _ => Err(Error::InvalidArgument(format!(
                "unknown prune scope {s:?} (layer, global)"
            ))),
        }
    }
}

/// What global pruning ranks and zeroes: single weights, or blocks of 8 output × 4 input
/// channels at one tap (the unit the GPU's sparse int8 kernel skips: two `vec4<u32>` of weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Block {
    #[default]
    Weight,
    Co8Ci4,
}

impl std::str::FromStr for Block {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "1" | "weight" => Ok(Block::Weight),
            "8x4" => Ok(Block::Co8Ci4),
            _ => Err(Error::InvalidArgument(format!(
                "unknown prune block {s:?} (1, 8x4)"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Fraction of weights to zero, in [0, 1).
    pub amount: f64,
    pub scope: Scope,
    pub prune_transposed: bool,
    /// The unit of global pruning.
    pub block: Block,
}

/// Python's `round`: halves go to the even neighbour.
pub(crate) fn round_half_even(x: f64) -> usize {
    let f = x.floor();
    let d = x - f;
    let r = if d > 0.5 || (d == 0.5 && f % 2.0 != 0.0) {
        f + 1.0
    } else {
        f
    };
    r as usize
}

/// A tensor to prune, with the BatchNorm scale per output channel that global ranking folds in.
struct Target<'m> {
    w: &'m mut ConvWeights,
    scale: Option<Vec<f32>>,
}

fn every_conv(model: &UNet) -> Vec<ConvRef> {
    let d = model.spec.depth();
    (0..d)
        .flat_map(|l| [ConvRef::Down(l, 1), ConvRef::Down(l, 2)])
        .chain([ConvRef::Bottleneck(1), ConvRef::Bottleneck(2)])
        .chain((0..d).flat_map(|l| [ConvRef::Up(l, 1), ConvRef::Up(l, 2)]))
        .collect()
}

/// Zero the smallest weights of `model` in place; returns (zeroed, total) over the pruned tensors.
pub fn prune(model: &mut UNet, opts: &PruneOptions) -> Result<(usize, usize)> {
    if !(0.0..1.0).contains(&opts.amount) {
        return Err(Error::InvalidArgument(format!(
            "--prune {} is outside [0, 1)",
            opts.amount
        )));
    }
    let eps = model.spec.bn_eps;
    let convs = every_conv(model);
    // BatchNorm scales, computed before borrowing the weights mutably.
    let scales: Vec<Vec<f32>> = convs
        .iter()
        .map(|c| c.weights(model).1.scale_shift(eps).0)
        .collect();
    let mut targets: Vec<Target> = Vec::new();
    {
        let UNet {
            downs,
            bottleneck,
            ups,
            head,
            ..
        } = model;
        let mut dcs: Vec<&mut crate::model::DoubleConv> = downs
            .iter_mut()
            .chain(std::iter::once(bottleneck))
            .collect();
        let mut up_ws = Vec::new();
        for u in ups.iter_mut() {
            dcs.push(&mut u.conv);
            up_ws.push(&mut u.up);
        }
        for (dc, pair) in dcs.into_iter().zip(scales.chunks(2)) {
            targets.push(Target {
                w: &mut dc.conv1,
                scale: Some(pair[0].clone()),
            });
            targets.push(Target {
                w: &mut dc.conv2,
                scale: Some(pair[1].clone()),
            });
        }
        targets.push(Target {
            w: head,
            scale: None,
        });
        if opts.prune_transposed {
            for w in up_ws {
                targets.push(Target { w, scale: None });
            }
        }
    }
    let total: usize = targets.iter().map(|t| t.w.weight.len()).sum();
    if opts.block != Block::Weight && opts.scope == Scope::Layer {
        return Err(Error::InvalidArgument(
            "block pruning ranks globally: use --prune-scope global".into(),
        ));
    }
    let mut zeroed = 0;
    match opts.scope {
        Scope::Layer => {
            for t in &mut targets {
                let n = t.w.weight.len();
                let k = round_half_even(opts.amount * n as f64);
                zeroed += zero_smallest(&mut t.w.weight, k);
            }
        }
        Scope::Global if opts.block == Block::Co8Ci4 => {
            zeroed = prune_blocks(&mut targets, round_half_even(opts.amount * total as f64));
        }
        Scope::Global => {
            // (magnitude, tensor, index) of every weight; the k smallest become zero.
            let mut all: Vec<(f32, u32, u32)> = Vec::with_capacity(total);
            for (ti, t) in targets.iter().enumerate() {
                let per_out = per_output(t.w);
                for (i, v) in t.w.weight.iter().enumerate() {
                    let s = t.scale.as_ref().map_or(1.0, |s| s[i / per_out].abs());
                    all.push(((v * s).abs(), ti as u32, i as u32));
                }
            }
            let k = round_half_even(opts.amount * total as f64);
            if k > 0 {
                all.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
                for &(_, ti, i) in &all[..k] {
                    targets[ti as usize].w.weight[i as usize] = 0.0;
                }
                zeroed = k;
            }
        }
    }
    Ok((zeroed, total))
}

/// The indices of every block of 8 output × 4 input channels at one tap of `w` (fewer at
/// channel tails): PyTorch layouts `[cout, cin, kh, kw]`, or `[cin, cout, kh, kw]` (`transposed`).
fn blocks(w: &ConvWeights, transposed: bool) -> Vec<Vec<u32>> {
    let [a, b, kh, kw] = w.shape;
    let (cout, cin) = if transposed { (b, a) } else { (a, b) };
    let taps = kh * kw;
    let mut out = Vec::new();
    for co0 in (0..cout).step_by(8) {
        for ci0 in (0..cin).step_by(4) {
            for tap in 0..taps {
                let mut blk = Vec::with_capacity(32);
                for co in co0..(co0 + 8).min(cout) {
                    for ci in ci0..(ci0 + 4).min(cin) {
                        let i = if transposed {
                            (ci * cout + co) * taps + tap
                        } else {
                            (co * cin + ci) * taps + tap
                        };
                        blk.push(i as u32);
                    }
                }
                out.push(blk);
            }
        }
    }
    out
}

/// Global block pruning: blocks ranked by their mean BatchNorm-folded magnitude, the smallest
/// zeroed until `k` weights are zero (the last block may overshoot by up to 31). Returns the
/// weights zeroed.
fn prune_blocks(targets: &mut [Target], k: usize) -> usize {
    let mut all: Vec<(f32, u32, Vec<u32>)> = Vec::new();
    for (ti, t) in targets.iter().enumerate() {
        // Transposed convs are the 2×2 targets without a BatchNorm scale.
        let transposed = t.scale.is_none() && t.w.shape[2] == 2;
        let per_out = per_output(t.w);
        for blk in blocks(t.w, transposed) {
            let sum: f32 = blk
                .iter()
                .map(|&i| {
                    let co = i as usize / per_out;
                    let s = t.scale.as_ref().map_or(1.0, |s| s[co].abs());
                    (t.w.weight[i as usize] * s).abs()
                })
                .sum();
            all.push((sum / blk.len() as f32, ti as u32, blk));
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut zeroed = 0;
    for (_, ti, blk) in all {
        if zeroed >= k {
            break;
        }
        for i in blk {
            targets[ti as usize].w.weight[i as usize] = 0.0;
            zeroed += 1;
        }
    }
    zeroed
}

/// Weights per output channel (the BatchNorm scale's unit). For a transposed conv (no BN) any
/// value works since its scale is 1.
fn per_output(w: &ConvWeights) -> usize {
    w.shape[1] * w.shape[2] * w.shape[3]
}

/// Zero the `k` entries of smallest magnitude; returns `k`.
fn zero_smallest(w: &mut [f32], k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    let mut idx: Vec<(f32, usize)> = w.iter().enumerate().map(|(i, &v)| (v.abs(), i)).collect();
    idx.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    for &(_, i) in &idx[..k] {
        w[i] = 0.0;
    }
    k
}

/// Fraction of exactly-zero weights of a tensor.
pub fn sparsity(w: &[f32]) -> f64 {
    if w.is_empty() {
        return 0.0;
    }
    w.iter().filter(|v| **v == 0.0).count() as f64 / w.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_random, InitOptions};
    use crate::UNetSpec;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(0.3 * 36.0), 11);
        assert_eq!(round_half_even(7.49), 7);
    }

    #[test]
    fn layer_scope_prunes_each_tensor_and_global_hits_the_total() {
        let spec = UNetSpec::new(3, 2, vec![4, 8]);
        let base = init_random(&spec, &InitOptions { seed: 2 });
        let mut m = base.clone();
        let (z, total) = prune(
            &mut m,
            &PruneOptions {
                amount: 0.3,
                scope: Scope::Layer,
                prune_transposed: false,
                block: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(
            z,
            m.double_convs()
                .map(|d| round_half_even(0.3 * d.conv1.weight.len() as f64)
                    + round_half_even(0.3 * d.conv2.weight.len() as f64))
                .sum::<usize>()
                + round_half_even(0.3 * m.head.weight.len() as f64)
        );
        assert!(total > z);
        assert_eq!(
            sparsity(&m.ups[0].up.weight),
            0.0,
            "transposed convs stay dense"
        );
        let d = &m.downs[1].conv2.weight;
        let kept_min = d
            .iter()
            .filter(|v| **v != 0.0)
            .map(|v| v.abs())
            .fold(f32::MAX, f32::min);
        let orig = &base.downs[1].conv2.weight;
        let pruned_max = orig
            .iter()
            .zip(d)
            .filter(|(_, p)| **p == 0.0)
            .map(|(o, _)| o.abs())
            .fold(0.0, f32::max);
        assert!(pruned_max <= kept_min);
        let mut g = base.clone();
        let (zg, tg) = prune(
            &mut g,
            &PruneOptions {
                amount: 0.8,
                scope: Scope::Global,
                prune_transposed: true,
                block: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(zg, round_half_even(0.8 * tg as f64));
        assert!(prune(
            &mut g,
            &PruneOptions {
                amount: 1.0,
                scope: Scope::Global,
                prune_transposed: false,
                block: Block::Weight,
            }
        )
        .is_err());
        assert!(prune(
            &mut g,
            &PruneOptions {
                amount: -0.1,
                scope: Scope::Layer,
                prune_transposed: false,
                block: Block::Weight,
            }
        )
        .is_err());
    }

    /// Block pruning zeroes whole 8 × 4 blocks (a block is all zero or untouched) and reaches
    /// the requested amount; it refuses the per-layer scope.
    #[test]
    fn block_pruning_zeroes_whole_blocks() {
        let mut m = init_random(&UNetSpec::new(3, 1, vec![8, 16]), &InitOptions { seed: 3 });
        let opts = PruneOptions {
            amount: 0.6,
            scope: Scope::Global,
            prune_transposed: false,
            block: Block::Co8Ci4,
        };
        let (z, t) = prune(&mut m, &opts).unwrap();
        assert!(z >= round_half_even(0.6 * t as f64) && z < round_half_even(0.6 * t as f64) + 32);
        for dc in m.double_convs() {
            for w in [&dc.conv1, &dc.conv2] {
                for blk in blocks(w, false) {
                    let zeros = blk.iter().filter(|&&i| w.weight[i as usize] == 0.0).count();
                    assert!(zeros == 0 || zeros == blk.len(), "a partly zeroed block");
                }
            }
        }
        assert!(prune(
            &mut m,
            &PruneOptions {
                scope: Scope::Layer,
                ..opts
            }
        )
        .is_err());
    }
}
