//! The CPU float32 engines. `CpuModel` is what `--device cpu` and the no-GPU fallback run for a
//! reference U-Net: its layer graph (`graph::reference`) on the graph engine (`graph`), the one
//! that runs every imported model (the direct GEMM of `direct_f32`, Winograd, phase planes for
//! strided convs). `forward` runs the reference U-Net's own op list with the convolutions
//! through the `gemm` crate (`gemm_f32`): what int8 calibration observes. `apply` runs one op
//! with the plain `generic` kernels, the oracle of the tests.

pub mod direct_f32;
pub mod gemm_f32;
pub mod generic;
pub mod graph;
pub mod int8;

use crate::model::{fold_bn, UNet, UNetSpec};
use crate::plan::{Graph, Op};
use crate::tensor::Tensor;
use crate::Result;

/// A raw output pointer that tasks writing disjoint ranges may share.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so closures capture the whole (Send) wrapper, not the raw field.
    pub(crate) fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// Output rows per task of the implicit-GEMM engines: `m` rows split into blocks (multiples of
/// `multiple`, at least 32 rows) so that `tiles` column tiles × the blocks give every thread
/// several tasks (deep layers have few columns).
pub(crate) fn row_block(m: usize, tiles: usize, multiple: usize) -> usize {
    let want = (4 * rayon::current_num_threads()).div_ceil(tiles);
    let blocks = want.min(m.div_ceil(32)).max(1);
    m.div_ceil(blocks).div_ceil(multiple) * multiple
}

/// A reference U-Net on the CPU graph engine.
pub struct CpuModel {
    spec: UNetSpec,
    engine: graph::GraphCpu,
}

impl CpuModel {
    /// `fold` = false keeps BatchNorm as its own layer.
    pub fn new(model: UNet, fold: bool) -> CpuModel {
        CpuModel {
            engine: graph::GraphCpu::new(crate::graph::reference::from_unet(&model), fold),
            spec: model.spec,
        }
    }

    /// Which engine runs, for reports.
    pub fn kernel(&self) -> &'static str {
        "cpu f32 (graph)"
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// The graph engine that runs it.
    pub fn engine(&self) -> &graph::GraphCpu {
        &self.engine
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_timed(input)?.0)
    }

    /// `forward`, also returning each layer's wall time in milliseconds (the layers of the
    /// engine's graph).
    pub fn forward_timed(&self, input: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        // The U-Net's own input rules, in its own words (channels, the smallest side).
        crate::plan::check_input(&self.spec, input.shape)?;
        self.engine.forward_timed(input)
    }
}

/// Run `model` on `input` (NCHW) with `gemm_f32`. `fold` selects the folded or the
/// standalone-BN graph.
pub fn forward(model: &UNet, input: &Tensor, fold: bool) -> Result<Tensor> {
    Ok(forward_timed(model, input, fold)?.0)
}

/// `forward`, also returning the wall time of each op of the graph in milliseconds.
pub fn forward_timed(model: &UNet, input: &Tensor, fold: bool) -> Result<(Tensor, Vec<f64>)> {
    forward_observed(model, input, fold, &mut |_, _| {})
}

/// `forward_timed`, calling `observe(op, output)` after each op (calibration reads the ranges of
/// the intermediate tensors this way).
pub fn forward_observed(
    model: &UNet,
    input: &Tensor,
    fold: bool,
    observe: &mut dyn FnMut(&Op, &Tensor),
) -> Result<(Tensor, Vec<f64>)> {
    let g = Graph::build(&model.spec, input.shape, fold)?;
    let mut times = Vec::with_capacity(g.ops.len());
    // Free each tensor after its last reader.
    let last_use = g.last_uses();
    let mut vals: Vec<Option<Tensor>> = vec![None; g.shapes.len()];
    vals[g.input] = Some(input.clone());
    for (i, op) in g.ops.iter().enumerate() {
        let args: Vec<&Tensor> = op
            .inputs()
            .iter()
            .map(|&t| {
                vals[t]
                    .as_ref()
                    .expect("graph order: inputs computed first")
            })
            .collect();
        let t0 = web_time::Instant::now();
        let out = apply_with(model, &g, op, &args, true);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        observe(op, &out);
        vals[op.output()] = Some(out);
        for t in op.inputs() {
            if last_use[t] == i && t != g.output {
                vals[t] = None;
            }
        }
    }
    Ok((vals[g.output].take().expect("output computed"), times))
}

/// One op of `g` on its input tensors (in `Op::inputs` order), with the `generic` kernels.
pub fn apply(model: &UNet, g: &Graph, op: &Op, args: &[&Tensor]) -> Tensor {
    apply_with(model, g, op, args, false)
}

/// One op; `fast` runs the convolutions through `gemm_f32`.
fn apply_with(model: &UNet, g: &Graph, op: &Op, args: &[&Tensor], fast: bool) -> Tensor {
    let eps = model.spec.bn_eps;
    let conv3x3 = if fast {
        gemm_f32::conv3x3
    } else {
        generic::conv3x3
    };
    let out = match op {
        Op::Conv3x3 { conv, fused, .. } => {
            let (w, bn) = conv.weights(model);
            if *fused {
                conv3x3(args[0], args.get(1).copied(), &fold_bn(w, bn, eps), true)
            } else {
                conv3x3(args[0], args.get(1).copied(), w, false)
            }
        }
        Op::BnRelu { conv, .. } => {
            let (scale, shift) = conv.weights(model).1.scale_shift(eps);
            generic::bn_relu(args[0], &scale, &shift)
        }
        Op::MaxPool { .. } => generic::maxpool2x2(args[0]),
        Op::UpConv { level, .. } if fast => gemm_f32::upconv2x2(args[0], &model.ups[*level].up),
        Op::UpConv { level, .. } => generic::upconv2x2(args[0], &model.ups[*level].up),
        Op::Resize { out, .. } => {
            let [_, _, h, w] = g.shapes[*out];
            generic::resize_bilinear_ac(args[0], h, w)
        }
        Op::Head { .. } if fast => gemm_f32::conv1x1(args[0], &model.head),
        Op::Head { .. } => generic::conv1x1(args[0], &model.head),
    };
    debug_assert_eq!(out.shape, g.shapes[op.output()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_random, InitOptions};

    /// The reference U-Net on the graph engine (direct kernel, Winograd, in-place concatenations
    /// where this CPU has them) against its own op list through the generic kernels: odd sizes
    /// (resize), channel counts not multiples of the panel, batch 2, deep and shallow models.
    #[test]
    fn graph_engine_matches_the_generic_ops() {
        for (features, shape) in [
            (vec![5, 10, 20], [2, 3, 37, 29]),
            (vec![3, 6], [1, 3, 18, 23]),
            (vec![16, 32, 64, 128], [1, 3, 64, 64]),
            (vec![12, 24, 48], [1, 1, 33, 35]),
        ] {
            let m = init_random(
                &UNetSpec::new(shape[1], 2, features.clone()),
                &InitOptions { seed: 9 },
            );
            let x = Tensor {
                shape,
                data: (0..shape.iter().product::<usize>())
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect(),
            };
            let got = CpuModel::new(m.clone(), true).forward(&x).unwrap();
            let g = Graph::build(&m.spec, shape, true).unwrap();
            let mut vals: Vec<Option<Tensor>> = vec![None; g.shapes.len()];
            vals[g.input] = Some(x.clone());
            for op in &g.ops {
                let args: Vec<&Tensor> = op
                    .inputs()
                    .iter()
                    .map(|&t| vals[t].as_ref().unwrap())
                    .collect();
                let out = apply(&m, &g, op, &args);
                vals[op.output()] = Some(out);
            }
            let want = vals[g.output].take().unwrap();
            let (d, mx) = got.max_abs_diff(&want);
            assert!(
                d <= 1e-4 * mx.max(1e-3),
                "{features:?}: max diff {d}, max {mx}"
            );
        }
    }
}
