//! The CPU float32 engine: the same graph as the GPU plan, executed with the `generic` kernels.
//! It is the oracle of the kernel tests and what `--device auto` runs when there is no GPU.

pub mod generic;

use crate::model::{fold_bn, UNet};
use crate::plan::{Graph, Op};
use crate::tensor::Tensor;
use crate::Result;

/// Run `model` on `input` (NCHW). `fold_bn` selects the folded or the standalone-BN graph.
pub fn forward(model: &UNet, input: &Tensor, fold: bool) -> Result<Tensor> {
    let g = Graph::build(&model.spec, input.shape, fold)?;
    let eps = model.spec.bn_eps;
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
        let get = |t: usize| vals[t].as_ref().expect("graph order: inputs computed first");
        let out = match op {
            Op::Conv3x3 { a, b, conv, fused, .. } => {
                let (w, bn) = conv.weights(model);
                if *fused {
                    generic::conv3x3(get(*a), b.map(get), &fold_bn(w, bn, eps), true)
                } else {
                    generic::conv3x3(get(*a), b.map(get), w, false)
                }
            }
            Op::BnRelu { x, conv, .. } => {
                let (scale, shift) = conv.weights(model).1.scale_shift(eps);
                generic::bn_relu(get(*x), &scale, &shift)
            }
            Op::MaxPool { x, .. } => generic::maxpool2x2(get(*x)),
            Op::UpConv { x, level, .. } => generic::upconv2x2(get(*x), &model.ups[*level].up),
            Op::Resize { x, out } => {
                let [_, _, h, w] = g.shapes[*out];
                generic::resize_bilinear_ac(get(*x), h, w)
            }
            Op::Head { x, .. } => generic::conv1x1(get(*x), &model.head),
        };
        debug_assert_eq!(out.shape, g.shapes[op.output()]);
        vals[op.output()] = Some(out);
        for t in op.inputs() {
            if last_use[t] == i && t != g.output {
                vals[t] = None;
            }
        }
    }
    Ok(vals[g.output].take().expect("output computed"))
}
