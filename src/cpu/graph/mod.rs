//! The CPU float32 engine for any layer graph: instantiate for the input's shape, fuse, then run
//! each layer with the kernels of `conv` (implicit GEMM through the `gemm` crate) and `layers`,
//! freeing every tensor after its last reader. `run_layer` is also the oracle that the GPU op
//! tests compare against.

mod buffers;
pub mod conv;
pub mod layers;
mod winograd;

use std::sync::{Arc, Mutex};

use crate::graph::{fuse, Layer, LayerGraph, Operand, Shaped};
use crate::tensor::Tensor;
use crate::Result;

use crate::cpu::direct_f32::Packed;
use conv::{Epilogue, Geom};
use layers::View;
use winograd::Wino;

/// A layer graph prepared for the CPU; plans are cached per input shape.
pub struct GraphCpu {
    graph: LayerGraph,
    fuse: bool,
    cache: Mutex<Option<([usize; 4], Arc<Prepared>)>>,
    /// Activation buffers recycled from one layer and run to the next.
    pool: buffers::Pool,
}

/// A shaped graph prepared for the CPU: the weights of its one-group convs and non-overlapping
/// transposed convs packed for the direct kernel (3×3 convs with enough channels and pixels
/// for Winograd), and the concatenations those convs read in place.
pub struct Prepared {
    pub shaped: Shaped,
    packs: Vec<Option<Pack>>,
    /// Per layer: a direct conv reading a concatenation's parts instead of its output.
    parts: Vec<Option<Vec<usize>>>,
    /// Per layer: a concatenation that is never built (its one reader takes the parts).
    virtual_concat: Vec<bool>,
}

/// How a conv layer runs here, its weights packed for it.
enum Pack {
    /// The direct micro-kernel on padded planes (`conv::conv2d_direct`) or, for a transposed
    /// conv, one GEMM scattered (`conv::conv_transpose2d_direct`).
    Direct(Packed),
    Winograd(Wino),
}

impl Prepared {
    pub fn new(shaped: Shaped) -> Prepared {
        let packs: Vec<Option<Pack>> = shaped
            .layers
            .iter()
            .map(|l| match l {
                Layer::Conv { x, out, w, b, .. } => {
                    let geom = Geom::of(l).expect("a conv layer");
                    let bias = b.map(|b| shaped.weights[b].data.as_slice());
                    let ([_, cout, oh, ow], cin) = (shaped.shapes[*out], shaped.shapes[*x][1]);
                    let w = &shaped.weights[*w].data;
                    Wino::new(w, bias, [cout, cin], geom, [oh, ow])
                        .map(Pack::Winograd)
                        .or_else(|| conv::pack_direct(w, bias, cout, cin, geom).map(Pack::Direct))
                }
                Layer::ConvTranspose {
                    x,
                    out,
                    w,
                    b,
                    kernel,
                    ..
                } => {
                    let geom = Geom::of(l).expect("a conv layer");
                    let bias = b.map(|b| shaped.weights[b].data.as_slice());
                    let ([_, _, h, wd], [_, cout, oh, ow]) =
                        (shaped.shapes[*x], shaped.shapes[*out]);
                    // Output padding (extra rows of bias only) stays on the plain path.
                    if (oh, ow) != (h * kernel[0], wd * kernel[1]) {
                        return None;
                    }
                    conv::pack_direct_transposed(
                        &shaped.weights[*w].data,
                        bias,
                        cout,
                        shaped.shapes[*x][1],
                        geom,
                    )
                    .map(Pack::Direct)
                }
                _ => None,
            })
            .collect();
        let readers = shaped.readers();
        let mut parts = vec![None; shaped.layers.len()];
        let mut virtual_concat = vec![false; shaped.layers.len()];
        for (j, l) in shaped.layers.iter().enumerate() {
            let (Layer::Conv { x, .. }, Some(_)) = (l, &packs[j]) else {
                continue;
            };
            if readers[*x] != 1 {
                continue;
            }
            if let Some(c) = shaped
                .layers
                .iter()
                .position(|c| matches!(c, Layer::Concat { out, .. } if out == x))
            {
                if let Layer::Concat { xs, .. } = &shaped.layers[c] {
                    parts[j] = Some(xs.clone());
                    virtual_concat[c] = true;
                }
            }
        }
        Prepared {
            shaped,
            packs,
            parts,
            virtual_concat,
        }
    }

    /// The kernel family that runs layer `i` here, for reports: `wino4x4` (Winograd),
    /// `direct` (the packed micro-kernel), `in place` (a concatenation its reader takes in
    /// parts), or `plain` (the general kernels of `conv` and `layers`).
    pub fn kernel(&self, i: usize) -> &'static str {
        match &self.packs[i] {
            Some(Pack::Winograd(_)) => "wino4x4",
            Some(Pack::Direct(_)) => "direct",
            None if self.virtual_concat[i] => "in place",
            None => "plain",
        }
    }

    /// The most activation bytes alive at once while the engine runs.
    pub fn peak_bytes(&self) -> u64 {
        self.shaped.peak_live_bytes()
    }
}

impl GraphCpu {
    /// `fuse` = false keeps every op its own layer (BatchNorm, activations).
    pub fn new(graph: LayerGraph, fuse: bool) -> Self {
        GraphCpu {
            graph,
            fuse,
            cache: Mutex::new(None),
            pool: buffers::Pool::default(),
        }
    }

    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// The runtime graph for one input shape (fused unless made with `fuse` = false), with its
    /// packed weights.
    pub fn prepared(&self, shape: [usize; 4]) -> Result<Arc<Prepared>> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, g)) = c.as_ref() {
            if *s == shape {
                return Ok(g.clone());
            }
        }
        let g = self.graph.instantiate(shape)?;
        let g = Arc::new(Prepared::new(if self.fuse { fuse(g) } else { g }));
        *c = Some((shape, g.clone()));
        Ok(g)
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_timed(input)?.0)
    }

    /// `forward`, also returning each layer's wall time in milliseconds.
    pub fn forward_timed(&self, input: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        let p = self.prepared(input.shape)?;
        self.pool
            .lend(|| run_with(&p.shaped, Some(&p), input, &mut |_, _| {}))
    }
}

/// Runs a shaped graph with the plain kernels, calling `observe(layer index, output)` after each
/// layer.
pub fn run(
    g: &Shaped,
    input: &Tensor,
    observe: &mut dyn FnMut(usize, &Tensor),
) -> Result<(Tensor, Vec<f64>)> {
    run_with(g, None, input, observe)
}

/// `run`, with the direct kernels and in-place concatenations of `prep` where given.
fn run_with(
    g: &Shaped,
    prep: Option<&Prepared>,
    input: &Tensor,
    observe: &mut dyn FnMut(usize, &Tensor),
) -> Result<(Tensor, Vec<f64>)> {
    if input.shape != g.shapes[g.input] {
        return Err(crate::Error::BadInput {
            shape: input.shape.to_vec(),
            reason: format!("the plan was made for {:?}", g.shapes[g.input]),
        });
    }
    // What each layer reads here: a virtual concatenation nothing, its reader the parts.
    let inputs: Vec<Vec<usize>> = g
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| match prep {
            Some(p) if p.virtual_concat[i] => Vec::new(),
            Some(Prepared { parts: pp, .. }) if pp[i].is_some() => {
                let mut v = pp[i].clone().expect("checked");
                v.extend(l.inputs().into_iter().skip(1));
                v
            }
            _ => l.inputs(),
        })
        .collect();
    let mut last = vec![0usize; g.shapes.len()];
    for (i, ins) in inputs.iter().enumerate() {
        for &t in ins {
            last[t] = i;
        }
    }
    last[g.output] = g.layers.len();
    let mut vals: Vec<Option<Tensor>> = vec![None; g.shapes.len()];
    vals[g.input] = Some(input.clone());
    let mut times = Vec::with_capacity(g.layers.len());
    for (i, l) in g.layers.iter().enumerate() {
        let t0 = web_time::Instant::now();
        if prep.is_some_and(|p| p.virtual_concat[i]) {
            times.push(0.0);
            continue;
        }
        let out = {
            let args: Vec<&Tensor> = inputs[i]
                .iter()
                .map(|&t| {
                    vals[t]
                        .as_ref()
                        .expect("graph order: inputs computed first")
                })
                .collect();
            let pack = prep.and_then(|p| p.packs[i].as_ref());
            match (pack, l) {
                (Some(pack), Layer::Conv { act, add, out, .. }) => {
                    let nparts = prep.and_then(|p| p.parts[i].as_ref()).map_or(1, Vec::len);
                    let epi = Epilogue {
                        bias: None,
                        add: add.map(|_| args[nparts]),
                        act,
                    };
                    let [_, _, oh, ow] = g.shapes[*out];
                    match pack {
                        Pack::Direct(p) => {
                            let geom = Geom::of(l).expect("a conv layer");
                            conv::conv2d_direct(&args[..nparts], p, geom, oh, ow, &epi)
                        }
                        Pack::Winograd(p) => winograd::conv(&args[..nparts], p, [oh, ow], &epi),
                    }
                }
                (
                    Some(Pack::Direct(p)),
                    Layer::ConvTranspose {
                        kernel, act, out, ..
                    },
                ) => conv::conv_transpose2d_direct(args[0], p, *kernel, g.shapes[*out], act),
                _ => run_layer(g, l, &args),
            }
        };
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        debug_assert_eq!(out.shape, g.shapes[l.output()], "layer {i} ({})", l.kind());
        observe(i, &out);
        vals[l.output()] = Some(out);
        for &t in &inputs[i] {
            if last[t] == i {
                if let Some(t) = vals[t].take() {
                    buffers::give(t.data);
                }
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
        Layer::Conv {
            w: wi, b, act, add, ..
        } => {
            let epi = Epilogue {
                bias: b.map(w),
                add: add.map(|_| args[1]),
                act,
            };
            let geom = Geom::of(l).expect("a conv layer");
            conv::conv2d(args[0], w(*wi), out[1], geom, out[2], out[3], &epi)
        }
        Layer::ConvTranspose { w: wi, b, act, .. } => {
            let epi = Epilogue {
                bias: b.map(w),
                add: None,
                act,
            };
            let geom = Geom::of(l).expect("a conv layer");
            conv::conv_transpose2d(args[0], w(*wi), out[1], geom, out[2], out[3], &epi)
        }
        Layer::Affine {
            scale, shift, act, ..
        } => layers::affine(args[0], scale, shift, act),
        Layer::InstanceNorm {
            scale,
            bias,
            eps,
            act,
            ..
        } => layers::instance_norm(args[0], scale.as_deref(), bias.as_deref(), *eps, act),
        Layer::Act { act, .. } => layers::act(args[0], act),
        Layer::Pool {
            kind,
            kernel,
            stride,
            pad,
            dil,
            ..
        } => layers::pool(args[0], out, *kind, *kernel, *stride, *pad, *dil),
        Layer::Reduce {
            kind,
            channels,
            spatial,
            ..
        } => layers::reduce(args[0], out, *kind, *channels, *spatial),
        Layer::Resize {
            mode, coord, scale, ..
        } => layers::resize(args[0], out, *mode, *coord, *scale),
        Layer::Pad {
            mode, pads, value, ..
        } => layers::pad(args[0], out, *mode, *pads, *value),
        Layer::Concat { .. } => layers::concat(args, out),
        Layer::Binary { a, b, op, act, .. } => {
            let mut next = args.iter();
            let mut view = |o: &Operand| match *o {
                Operand::T(t) => {
                    let x = next.next().expect("one arg per tensor operand");
                    View {
                        data: &x.data,
                        shape: g.shapes[t],
                    }
                }
                Operand::W(id) => View {
                    data: w(id),
                    shape: g.weights[id]
                        .shape
                        .as_slice()
                        .try_into()
                        .expect("operands are 4-D"),
                },
            };
            let (va, vb) = (view(a), view(b));
            layers::binary(va, vb, out, *op, act)
        }
        Layer::Softmax { .. } => layers::softmax_channels(args[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ops::Window;
    use crate::graph::{Act, BinOp, Const, Op};

    /// x → conv(k, pads, dilation, stride) → + x' (a 1×1 conv of x, as a residual) → act: the
    /// direct kernel (where this CPU has it; strided convs on phase planes) against the plain
    /// GEMM path.
    #[test]
    fn direct_convs_match_the_plain_path() {
        // Kernel, pads, dilation, stride.
        type Case = ([usize; 2], [i64; 4], [usize; 2], [usize; 2]);
        let cases: &[Case] = &[
            ([1, 1], [0, 0, 0, 0], [1, 1], [1, 1]),
            ([3, 3], [1, 1, 1, 1], [1, 1], [1, 1]),
            ([3, 3], [2, 2, 2, 2], [2, 2], [1, 1]),
            ([7, 7], [3, 3, 3, 3], [1, 1], [1, 1]),
            ([3, 5], [0, 2, 2, 1], [1, 2], [1, 1]),
            ([7, 7], [3, 3, 3, 3], [1, 1], [2, 2]),
            ([3, 3], [1, 1, 1, 1], [1, 1], [2, 2]),
            ([1, 1], [0, 0, 0, 0], [1, 1], [2, 2]),
            ([3, 3], [0, 2, 1, 0], [2, 1], [2, 3]),
            ([4, 4], [1, 1, 1, 1], [1, 1], [4, 4]),
        ];
        for (case, &(k, pads, dil, strides)) in cases.iter().enumerate() {
            let (cin, cout) = (5, 17); // panels of 8, 8 and 1 rows
            let mut g = LayerGraph::default();
            g.input = g.value("x", None);
            let wv = |n: usize, seed: usize| {
                (0..n)
                    .map(|i| ((i * 7919 + seed) % 97) as f32 / 97.0 - 0.5)
                    .collect::<Vec<_>>()
            };
            let w = g.value(
                "w",
                Some(Const::f32(
                    vec![cout, cin, k[0], k[1]],
                    wv(cout * cin * k[0] * k[1], 1),
                )),
            );
            let b = g.value("b", Some(Const::f32(vec![cout], wv(cout, 2))));
            let w1 = g.value(
                "w1",
                Some(Const::f32(vec![cout, cin, 1, 1], wv(cout * cin, 3))),
            );
            let c = g.value("c", None);
            let win = Window {
                pads: pads.to_vec(),
                dilations: dil.to_vec(),
                strides: strides.to_vec(),
                ..Default::default()
            };
            g.node(
                "conv",
                Op::Conv { win, groups: 1 },
                vec![Some(g.input), Some(w), Some(b)],
                vec![c],
            );
            let r = g.value("r", None);
            g.node(
                "res",
                Op::Conv {
                    win: Window::default(),
                    groups: 1,
                },
                vec![Some(g.input), Some(w1), None],
                vec![r],
            );
            let s = g.value("s", None);
            let y = g.value("y", None);
            // The residual only fits where the conv keeps the size.
            let same = (k[0] - 1) * dil[0] == (pads[0] + pads[2]) as usize
                && (k[1] - 1) * dil[1] == (pads[1] + pads[3]) as usize
                && strides == [1, 1];
            if same {
                g.node(
                    "add",
                    Op::Binary(BinOp::Add),
                    vec![Some(c), Some(r)],
                    vec![s],
                );
                g.node("act", Op::Act(Act::LeakyRelu(0.1)), vec![Some(s)], vec![y]);
            } else {
                g.node("act", Op::Act(Act::LeakyRelu(0.1)), vec![Some(c)], vec![y]);
            }
            g.output = y;
            let x = Tensor::new([2, cin, 13, 17], wv(2 * cin * 13 * 17, 5)).unwrap();
            let e = GraphCpu::new(g.clone(), true);
            let fast = e.forward(&x).unwrap();
            let plain = run(&fuse(g.instantiate(x.shape).unwrap()), &x, &mut |_, _| {})
                .unwrap()
                .0;
            let (d, m) = fast.max_abs_diff(&plain);
            assert!(d <= 1e-5 * m, "case {case}: {d} vs {m}");
        }
    }

    /// Two convs concatenated, read in place by a third, then a k2 s2 transposed conv with its
    /// activation: the direct paths against the plain ones.
    #[test]
    fn in_place_concat_and_direct_transposed_conv_match_the_plain_path() {
        let wv = |n: usize, seed: usize| {
            (0..n)
                .map(|i| ((i * 7919 + seed) % 89) as f32 / 89.0 - 0.5)
                .collect::<Vec<_>>()
        };
        let mut g = LayerGraph::default();
        g.input = g.value("x", None);
        let conv =
            |g: &mut LayerGraph, x: usize, cin: usize, cout: usize, seed: usize, name: &str| {
                let w = g.value(
                    format!("{name}.w"),
                    Some(Const::f32(vec![cout, cin, 3, 3], wv(cout * cin * 9, seed))),
                );
                let b = g.value(
                    format!("{name}.b"),
                    Some(Const::f32(vec![cout], wv(cout, seed + 1))),
                );
                let o = g.value(name, None);
                let win = Window {
                    pads: vec![1, 1, 1, 1],
                    ..Default::default()
                };
                g.node(
                    name,
                    Op::Conv { win, groups: 1 },
                    vec![Some(x), Some(w), Some(b)],
                    vec![o],
                );
                o
            };
        let x0 = g.input;
        let a = conv(&mut g, x0, 3, 6, 1, "a");
        let b = conv(&mut g, x0, 3, 5, 2, "b");
        let c = g.value("cat", None);
        g.node(
            "cat",
            Op::Concat { axis: 1 },
            vec![Some(a), Some(b)],
            vec![c],
        );
        let y = conv(&mut g, c, 11, 9, 3, "y");
        let wt = g.value("t.w", Some(Const::f32(vec![9, 7, 2, 2], wv(9 * 7 * 4, 4))));
        let bt = g.value("t.b", Some(Const::f32(vec![7], wv(7, 5))));
        let t = g.value("t", None);
        let win = Window {
            strides: vec![2, 2],
            ..Default::default()
        };
        let op = Op::ConvTranspose {
            win,
            groups: 1,
            output_padding: vec![],
            output_shape: vec![],
        };
        g.node("t", op, vec![Some(y), Some(wt), Some(bt)], vec![t]);
        let r = g.value("r", None);
        g.node("r", Op::Act(Act::Relu), vec![Some(t)], vec![r]);
        g.output = r;
        let x = Tensor::new([2, 3, 11, 13], wv(2 * 3 * 11 * 13, 6)).unwrap();
        let fast = GraphCpu::new(g.clone(), true).forward(&x).unwrap();
        let plain = run(&fuse(g.instantiate(x.shape).unwrap()), &x, &mut |_, _| {})
            .unwrap()
            .0;
        assert_eq!(fast.shape, [2, 7, 22, 26]);
        let (d, m) = fast.max_abs_diff(&plain);
        assert!(d <= 1e-5 * m, "{d} vs {m}");
        let p = GraphCpu::new(g, true).prepared(x.shape).unwrap();
        if crate::cpu::direct_f32::available() {
            assert!(
                p.virtual_concat.iter().any(|&v| v),
                "the concatenation was built"
            );
        }
    }
}
