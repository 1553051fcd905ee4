//! The CPU float32 engine: the same graph as the GPU plan, executed with the `generic` kernels.
//! It is the oracle of the kernel tests and what `--device auto` runs when there is no GPU.

pub mod generic;

use crate::model::{fold_bn, UNet};
use crate::plan::{Graph, Op};
use crate::tensor::Tensor;
use crate::Result;

/// Run `model` on `input` (NCHW). `fold` selects the folded or the standalone-BN graph.
pub fn forward(model: &UNet, input: &Tensor, fold: bool) -> Result<Tensor> {
    let g = Graph::build(&model.spec, input.shape, fold)?;
    // Free each tensor after its last reader.
    let mut last_use = vec![0usize; g.shapes.len()];
    for (i, op) in g.ops.iter().enumerate() {
        for t in op.inputs() {
            last_use[t] = i;
        }
    }
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
        let out = apply(model, &g, op, &args);
        vals[op.output()] = Some(out);
        for t in op.inputs() {
            if last_use[t] == i && t != g.output {
                vals[t] = None;
            }
        }
    }
    Ok(vals[g.output].take().expect("output computed"))
}

/// One op of `g` on its input tensors (in `Op::inputs` order).
pub fn apply(model: &UNet, g: &Graph, op: &Op, args: &[&Tensor]) -> Tensor {
    let eps = model.spec.bn_eps;
    let out = match op {
        Op::Conv3x3 { conv, fused, .. } => {
            let (w, bn) = conv.weights(model);
            if *fused {
                generic::conv3x3(args[0], args.get(1).copied(), &fold_bn(w, bn, eps), true)
            } else {
                generic::conv3x3(args[0], args.get(1).copied(), w, false)
            }
        }
        Op::BnRelu { conv, .. } => {
            let (scale, shift) = conv.weights(model).1.scale_shift(eps);
            generic::bn_relu(args[0], &scale, &shift)
        }
        Op::MaxPool { .. } => generic::maxpool2x2(args[0]),
        Op::UpConv { level, .. } => generic::upconv2x2(args[0], &model.ups[*level].up),
        Op::Resize { out, .. } => {
            let [_, _, h, w] = g.shapes[*out];
            generic::resize_bilinear_ac(args[0], h, w)
        }
        Op::Head { .. } => generic::conv1x1(args[0], &model.head),
    };
    debug_assert_eq!(out.shape, g.shapes[op.output()]);
    out
}
