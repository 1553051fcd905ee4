//! The CPU float32 engines: the same graph as the GPU plan. `CpuModel` is what `--device cpu`
//! and the no-GPU fallback run: the direct implicit-GEMM engine (`direct_f32`) on AVX-512
//! machines, else `forward`, which runs the convolutions as GEMMs through the `gemm` crate
//! (`gemm_f32`). `apply` runs one op with the plain `generic` kernels, the oracle of the tests.

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

/// A float model prepared for the fastest CPU engine here.
pub enum CpuModel {
    /// BatchNorm folded, weights packed: AVX-512 machines.
    Direct(Box<direct_f32::F32Model>),
    /// `forward` on the `gemm` crate; `fold` selects the folded or the standalone-BN graph.
    Gemm { model: Box<UNet>, fold: bool },
}

impl CpuModel {
    /// The direct engine where the CPU has it and BatchNorm is folded, else the `gemm` one.
    pub fn new(model: UNet, fold: bool) -> CpuModel {
        if fold && direct_f32::available() {
            CpuModel::Direct(Box::new(direct_f32::F32Model::new(&model)))
        } else {
            CpuModel::Gemm {
                model: Box::new(model),
                fold,
            }
        }
    }

    /// Which engine runs, for reports.
    pub fn kernel(&self) -> &'static str {
        match self {
            CpuModel::Direct(_) => "cpu f32 (direct, avx512)",
            CpuModel::Gemm { .. } => "cpu f32 (gemm)",
        }
    }

    pub fn spec(&self) -> &UNetSpec {
        match self {
            CpuModel::Direct(m) => m.spec(),
            CpuModel::Gemm { model, .. } => &model.spec,
        }
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_timed(input)?.0)
    }

    /// `forward`, also returning each op's wall time in milliseconds (graph order).
    pub fn forward_timed(&self, input: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        match self {
            CpuModel::Direct(m) => m.forward_timed(input),
            CpuModel::Gemm { model, fold } => forward_timed(model, input, *fold),
        }
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
