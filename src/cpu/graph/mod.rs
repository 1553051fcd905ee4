//! The CPU float32 engine for any layer graph: instantiate for the input's shape, fuse, then run
//! each layer with the kernels of `conv` (implicit GEMM through the `gemm` crate) and `layers`,
//! freeing every tensor after its last reader. `run_layer` is also the oracle that the GPU op
//! tests compare against.

pub mod conv;
pub mod layers;

use std::sync::{Arc, Mutex};

use crate::graph::{fuse, Layer, LayerGraph, Operand, Shaped};
use crate::tensor::Tensor;
use crate::Result;

use conv::{Epilogue, Geom};
use layers::View;

/// A layer graph prepared for the CPU; plans are cached per input shape.
pub struct GraphCpu {
    graph: LayerGraph,
    fuse: bool,
    cache: Mutex<Option<([usize; 4], Arc<Shaped>)>>,
}

impl GraphCpu {
    /// `fuse` = false keeps every op its own layer (BatchNorm, activations).
    pub fn new(graph: LayerGraph, fuse: bool) -> Self {
        GraphCpu {
            graph,
            fuse,
            cache: Mutex::new(None),
        }
    }

    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// The runtime graph for one input shape (fused unless made with `fuse` = false).
    pub fn shaped(&self, shape: [usize; 4]) -> Result<Arc<Shaped>> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, g)) = c.as_ref() {
            if *s == shape {
                return Ok(g.clone());
            }
        }
        let g = self.graph.instantiate(shape)?;
        let g = Arc::new(if self.fuse { fuse(g) } else { g });
        *c = Some((shape, g.clone()));
        Ok(g)
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_timed(input)?.0)
    }

    /// `forward`, also returning each layer's wall time in milliseconds.
    pub fn forward_timed(&self, input: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        let g = self.shaped(input.shape)?;
        run(&g, input, &mut |_, _| {})
    }
}

/// Runs a shaped graph, calling `observe(layer index, output)` after each layer.
pub fn run(g: &Shaped, input: &Tensor, observe: &mut dyn FnMut(usize, &Tensor)) -> Result<(Tensor, Vec<f64>)> {
    if input.shape != g.shapes[g.input] {
        return Err(crate::Error::BadInput {
            shape: input.shape.to_vec(),
            reason: format!("the plan was made for {:?}", g.shapes[g.input]),
        });
    }
    let last = g.last_uses();
    let mut vals: Vec<Option<Tensor>> = vec![None; g.shapes.len()];
    vals[g.input] = Some(input.clone());
    let mut times = Vec::with_capacity(g.layers.len());
    for (i, l) in g.layers.iter().enumerate() {
        let t0 = web_time::Instant::now();
        let out = {
            let args: Vec<&Tensor> = l
                .inputs()
                .iter()
                .map(|&t| vals[t].as_ref().expect("graph order: inputs computed first"))
                .collect();
            run_layer(g, l, &args)
        };
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        debug_assert_eq!(out.shape, g.shapes[l.output()], "layer {i} ({})", l.kind());
        observe(i, &out);
        vals[l.output()] = Some(out);
        for t in l.inputs() {
            if last[t] == i {
                vals[t] = None;
            }
        }
    }
    Ok((vals[g.output].take().expect("output computed"), times))
}

/// One layer on its inputs (in `Layer::inputs` order).
pub fn run_layer(g: &Shaped, l: &Layer, args: &[&Tensor]) -> Tensor {
    let out = g.shapes[l.output()];
    let w = |id: usize| g.weights[id].data.as_slice();
    match l {
        Layer::Conv { w: wi, b, kernel, stride, pad, dil, groups, act, add, .. } => {
            let epi = Epilogue { bias: b.map(w), add: add.map(|_| args[1]), act };
            let geom = Geom { kernel: *kernel, stride: *stride, pad: *pad, dil: *dil, groups: *groups };
            conv::conv2d(args[0], w(*wi), out[1], geom, out[2], out[3], &epi)
        }
        Layer::ConvTranspose { w: wi, b, kernel, stride, pad, dil, groups, act, .. } => {
            let epi = Epilogue { bias: b.map(w), add: None, act };
            let geom = Geom { kernel: *kernel, stride: *stride, pad: *pad, dil: *dil, groups: *groups };
            conv::conv_transpose2d(args[0], w(*wi), out[1], geom, out[2], out[3], &epi)
        }
        Layer::Affine { scale, shift, act, .. } => layers::affine(args[0], scale, shift, act),
        Layer::InstanceNorm { scale, bias, eps, act, .. } => {
            layers::instance_norm(args[0], scale.as_deref(), bias.as_deref(), *eps, act)
        }
        Layer::Act { act, .. } => layers::act(args[0], act),
        Layer::Pool { kind, kernel, stride, pad, dil, .. } => layers::pool(args[0], out, *kind, *kernel, *stride, *pad, *dil),
        Layer::Reduce { kind, channels, spatial, .. } => layers::reduce(args[0], out, *kind, *channels, *spatial),
        Layer::Resize { mode, coord, scale, .. } => layers::resize(args[0], out, *mode, *coord, *scale),
        Layer::Pad { mode, pads, value, .. } => layers::pad(args[0], out, *mode, *pads, *value),
        Layer::Concat { .. } => layers::concat(args, out),
        Layer::Binary { a, b, op, act, .. } => {
            let mut next = args.iter();
            let mut view = |o: &Operand| match *o {
                Operand::T(t) => {
                    let x = next.next().expect("one arg per tensor operand");
                    View { data: &x.data, shape: g.shapes[t] }
                }
                Operand::W(id) => View {
                    data: w(id),
                    shape: g.weights[id].shape.as_slice().try_into().expect("operands are 4-D"),
                },
            };
            let (va, vb) = (view(a), view(b));
            layers::binary(va, vb, out, *op, act)
        }
        Layer::Softmax { .. } => layers::softmax_channels(args[0]),
    }
}
