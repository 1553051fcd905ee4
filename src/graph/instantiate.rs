//! Instantiation: a layer graph for one input shape. One walk over the nodes: an op whose inputs
//! are all constants is evaluated (`fold`), `Shape` of an activation is a constant, and every other
//! op becomes a runtime `Layer` with resolved parameters and an inferred NCHW shape.

use std::collections::HashMap;
use std::sync::Arc;

use super::fold;
use super::ops::Window;
use super::shaped::{Layer, Operand, Shape, Shaped, TensorId, Weight, WeightId};
use super::{bad_graph, Act, Const, ConstData, LayerGraph, Op, PadMode, ValueId};
use crate::{Error, Result};

/// What a graph value is at plan time.
#[derive(Clone, Debug)]
enum Val {
    Const(Const),
    Tensor(TensorId),
}

struct Builder<'g> {
    g: &'g LayerGraph,
    vals: Vec<Option<Val>>,
    out: Shaped,
    /// Weights made from graph constants, by value id (shared, not copied, per use).
    weight_of: HashMap<ValueId, WeightId>,
}

pub(super) fn instantiate(g: &LayerGraph, input: Shape) -> Result<Shaped> {
    if input.contains(&0) {
        return Err(Error::BadInput {
            shape: input.to_vec(),
            reason: "zero-sized input".into(),
        });
    }
    for (k, (&d, want)) in input.iter().zip(g.input_dims).enumerate() {
        if let Some(want) = want {
            if d != want {
                let reason = match k {
                    1 => format!("the model takes {want} input channels, the input has {d}"),
                    _ => {
                        let what = ["batch", "channels", "height", "width"][k];
                        format!("the model's input has a fixed {what} of {want}, the input has {d}")
                    }
                };
                return Err(Error::BadInput {
                    shape: input.to_vec(),
                    reason,
                });
            }
        }
    }
    let mut b = Builder {
        g,
        vals: g.consts.iter().map(|c| c.clone().map(Val::Const)).collect(),
        out: Shaped {
            shapes: vec![input],
            layers: Vec::new(),
            names: Vec::new(),
            weights: Vec::new(),
            input: 0,
            output: 0,
        },
        weight_of: HashMap::new(),
    };
    b.vals[g.input] = Some(Val::Tensor(0));
    for node in &g.nodes {
        let v = b.node(node).map_err(|e| match e {
            Error::BadModel(r) => {
                Error::BadModel(format!("node `{}` ({}): {r}", node.name, node.op.name()))
            }
            e => e,
        })?;
        b.vals[node.outputs[0]] = Some(v);
    }
    match b.vals[g.output].clone() {
        Some(Val::Tensor(t)) => b.out.output = t,
        Some(Val::Const(_)) => {
            return Err(bad_graph("the graph's output does not depend on its input"))
        }
        None => return Err(bad_graph("nothing computes the graph's output")),
    }
    if b.out.output == b.out.input {
        return Err(bad_graph("the graph's output is its input"));
    }
    Ok(b.out)
}

fn shape_err(reason: impl Into<String>) -> Error {
    Error::BadModel(reason.into())
}

impl Builder<'_> {
    fn val(&self, id: ValueId) -> Result<&Val> {
        self.vals[id]
            .as_ref()
            .ok_or_else(|| shape_err(format!("`{}` has no value", self.g.names[id])))
    }

    fn konst(&self, id: Option<ValueId>, what: &str) -> Result<Option<Const>> {
        match id {
            None => Ok(None),
            Some(id) => match self.val(id)? {
                Val::Const(c) => Ok(Some(c.clone())),
                Val::Tensor(_) => Err(shape_err(format!(
                    "its {what} `{}` depends on the image's values, not only on shapes (unresolvable at plan time)",
                    self.g.names[id]
                ))),
            },
        }
    }

    fn need_const(&self, id: Option<ValueId>, what: &str) -> Result<Const> {
        self.konst(id, what)?
            .ok_or_else(|| shape_err(format!("missing {what}")))
    }

    fn weight(&mut self, id: ValueId) -> Result<WeightId> {
        if let Some(&w) = self.weight_of.get(&id) {
            return Ok(w);
        }
        let c = self.need_const(Some(id), "weight")?;
        let data = match c.data {
            ConstData::F32(v) => v,
            ConstData::I64(v) => Arc::new(v.iter().map(|&x| x as f32).collect()),
        };
        self.out.weights.push(Weight {
            name: self.g.names[id].clone(),
            shape: c.shape,
            data,
        });
        let w = self.out.weights.len() - 1;
        self.weight_of.insert(id, w);
        Ok(w)
    }

    fn tensor(&mut self, shape: Vec<usize>, what: &str) -> Result<TensorId> {
        let s: Shape = shape.as_slice().try_into().map_err(|_| {
            shape_err(format!(
                "{what} would be an activation of shape {shape:?}; wunet runs NCHW (rank-4) activations"
            ))
        })?;
        if s.contains(&0) {
            return Err(shape_err(format!("{what} would be empty: shape {shape:?}")));
        }
        if s.iter()
            .try_fold(4usize, |a, &d| a.checked_mul(d))
            .is_none_or(|b| b > isize::MAX as usize / 2)
        {
            return Err(shape_err(format!(
                "{what} would be absurdly large: shape {shape:?}"
            )));
        }
        self.out.shapes.push(s);
        Ok(self.out.shapes.len() - 1)
    }

    fn push(&mut self, name: &str, l: Layer) -> Val {
        let out = l.output();
        self.out.layers.push(l);
        self.out.names.push(name.to_string());
        Val::Tensor(out)
    }

    fn node(&mut self, node: &super::Node) -> Result<Val> {
        let ins = &node.inputs;
        let first = ins.first().copied().flatten();
        // All inputs constant: fold (shape arithmetic, or constant subgraphs).
        let all_const = ins
            .iter()
            .flatten()
            .all(|&i| matches!(self.vals[i], Some(Val::Const(_))));
        if let Op::Shape { start, end } = node.op {
            let shape: Vec<usize> = match self.val(first.ok_or_else(|| shape_err("no input"))?)? {
                Val::Const(c) => c.shape.clone(),
                Val::Tensor(t) => self.out.shapes[*t].to_vec(),
            };
            return Ok(Val::Const(fold::shape_of(&shape, start, end)));
        }
        if all_const && !ins.is_empty() {
            let cs: Vec<Option<Const>> = ins
                .iter()
                .map(|i| {
                    i.map(|i| match &self.vals[i] {
                        Some(Val::Const(c)) => c.clone(),
                        _ => unreachable!("checked constant"),
                    })
                })
                .collect();
            return fold::eval(&node.op, &cs).map(Val::Const);
        }
        let x = match self.val(first.ok_or_else(|| shape_err("no input"))?)? {
            Val::Tensor(t) => *t,
            Val::Const(_)
                if matches!(
                    node.op,
                    Op::Binary(_) | Op::Concat { .. } | Op::Where | Op::Expand
                ) =>
            {
                usize::MAX
            }
            Val::Const(_) => {
                return Err(shape_err(
                    "its data input is a constant while other inputs depend on the image",
                ))
            }
        };
        let xs = if x == usize::MAX {
            [0; 4]
        } else {
            self.out.shapes[x]
        };
        let [n, c, h, w] = xs;
        let name = node.name.as_str();
        match &node.op {
            Op::Conv { win, groups } => {
                let wid = self.weight(ins.get(1).copied().flatten().ok_or_else(|| shape_err("no weight"))?)?;
                let ws = self.out.weights[wid].shape.clone();
                if ws.len() != 4 || ws.contains(&0) {
                    return Err(shape_err(format!("weight of shape {ws:?} is not a non-empty 2-D kernel")));
                }
                if c != ws[1] * groups || ws[0] % groups != 0 {
                    return Err(shape_err(format!(
                        "weight {ws:?} with {groups} groups does not fit an input of {c} channels"
                    )));
                }
                let kernel = [ws[2], ws[3]];
                if !win.kernel.is_empty() && win.kernel != kernel {
                    return Err(shape_err(format!("kernel_shape {:?} differs from the weight's {kernel:?}", win.kernel)));
                }
                let b = self.bias(ins.get(2).copied().flatten(), ws[0])?;
                let (stride, dil) = (pair(&win.strides), pair(&win.dilations));
                let pad = conv_pads(win, [h, w], kernel, stride, dil)?;
                let oh = out_size(h, kernel[0], stride[0], pad[0] + pad[2], dil[0], false)?;
                let ow = out_size(w, kernel[1], stride[1], pad[1] + pad[3], dil[1], false)?;
                let out = self.tensor(vec![n, ws[0], oh, ow], "the conv's output")?;
                Ok(self.push(name, Layer::Conv { x, out, w: wid, b, kernel, stride, pad, dil, groups: *groups, act: Act::None, add: None }))
            }
            Op::ConvTranspose { win, groups, output_padding, output_shape } => {
                let wid = self.weight(ins.get(1).copied().flatten().ok_or_else(|| shape_err("no weight"))?)?;
                let ws = self.out.weights[wid].shape.clone();
                if ws.len() != 4 || ws.contains(&0) || ws[0] != c || c % groups != 0 {
                    return Err(shape_err(format!("weight {ws:?} does not fit an input of {c} channels")));
                }
                let cout = ws[1] * groups;
                if !output_shape.is_empty() && output_shape.len() < 2 {
                    return Err(shape_err(format!("output_shape {output_shape:?} is not 2-D")));
                }
                let b = self.bias(ins.get(2).copied().flatten(), cout)?;
                let kernel = [ws[2], ws[3]];
                let (stride, dil) = (pair(&win.strides), pair(&win.dilations));
                let op = [output_padding.first().copied().unwrap_or(0), output_padding.get(1).copied().unwrap_or(0)];
                let full = |i: usize, k: usize| stride[i] * ([h, w][i] - 1) + op[i] + (k - 1) * dil[i] + 1;
                let mut pad = [0usize; 4];
                if !output_shape.is_empty() || win.auto_pad.starts_with("SAME") {
                    for i in 0..2 {
                        let target = if output_shape.is_empty() {
                            [h, w][i] * stride[i]
                        } else {
                            output_shape[output_shape.len() - 2 + i]
                        };
                        let total = full(i, kernel[i]).checked_sub(target).ok_or_else(|| shape_err("output_shape too large"))?;
                        let (lo, hi) = if win.auto_pad == "SAME_UPPER" { (total / 2, total - total / 2) } else { (total - total / 2, total / 2) };
                        pad[i] = lo;
                        pad[i + 2] = hi;
                    }
                } else if !win.pads.is_empty() {
                    for (p, &v) in pad.iter_mut().zip(&win.pads) {
                        *p = v as usize;
                    }
                }
                let oh = full(0, kernel[0]).checked_sub(pad[0] + pad[2]).filter(|&v| v > 0);
                let ow = full(1, kernel[1]).checked_sub(pad[1] + pad[3]).filter(|&v| v > 0);
                let (Some(oh), Some(ow)) = (oh, ow) else {
                    return Err(shape_err("the padding removes the whole output"));
                };
                let out = self.tensor(vec![n, cout, oh, ow], "the transposed conv's output")?;
                Ok(self.push(name, Layer::ConvTranspose { x, out, w: wid, b, kernel, stride, pad, dil, groups: *groups, act: Act::None }))
            }
            Op::BatchNorm { eps } => {
                let get = |s: &Self, k: usize, what: &str| -> Result<Vec<f32>> {
                    let v = s.need_const(ins.get(k).copied().flatten(), what)?.as_f32();
                    if v.len() != c {
                        return Err(shape_err(format!("{what} has {} values for {c} channels", v.len())));
                    }
                    Ok(v)
                };
                let (g, bt, m, v) = (get(self, 1, "scale")?, get(self, 2, "bias")?, get(self, 3, "mean")?, get(self, 4, "var")?);
                let scale: Vec<f32> = g.iter().zip(&v).map(|(g, v)| g / (v + eps).sqrt()).collect();
                let shift = bt.iter().zip(&m).zip(&scale).map(|((b, m), s)| b - m * s).collect();
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::Affine { x, out, scale, shift, act: Act::None }))
            }
            Op::InstanceNorm { eps } => {
                let opt = |s: &Self, k: usize, what: &str| -> Result<Option<Vec<f32>>> {
                    let v = s.konst(ins.get(k).copied().flatten(), what)?.map(|c| c.as_f32());
                    if v.as_ref().is_some_and(|v| v.len() != c) {
                        return Err(shape_err(format!("{what} does not have {c} values")));
                    }
                    Ok(v)
                };
                let (scale, bias) = (opt(self, 1, "scale")?, opt(self, 2, "bias")?);
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::InstanceNorm { x, out, scale, bias, eps: *eps, act: Act::None }))
            }
            Op::Act(a) => {
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::Act { x, out, act: a.clone() }))
            }
            Op::Clip => {
                let lo = self.konst(ins.get(1).copied().flatten(), "min")?.map_or(f32::NEG_INFINITY, |c| c.as_f32()[0]);
                let hi = self.konst(ins.get(2).copied().flatten(), "max")?.map_or(f32::INFINITY, |c| c.as_f32()[0]);
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::Act { x, out, act: Act::Clip(lo, hi) }))
            }
            Op::PRelu => {
                let s = self.need_const(ins.get(1).copied().flatten(), "slope")?;
                let v = s.as_f32();
                let per_channel = s.shape.iter().rev().skip(2).product::<usize>() == v.len()
                    && s.shape.iter().rev().take(2).all(|&d| d == 1);
                if !(v.len() == 1 || (v.len() == c && (per_channel || s.shape == [c]))) {
                    return Err(shape_err(format!("slope of shape {:?} is neither one value nor one per channel", s.shape)));
                }
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::Act { x, out, act: Act::PRelu(v) }))
            }
            Op::Pool { kind, win } => {
                if win.kernel.len() != 2 {
                    return Err(shape_err("no 2-D kernel_shape"));
                }
                let kernel = [win.kernel[0], win.kernel[1]];
                let (stride, dil) = (pair(&win.strides), pair(&win.dilations));
                let pad = conv_pads(win, [h, w], kernel, stride, dil)?;
                let oh = out_size(h, kernel[0], stride[0], pad[0] + pad[2], dil[0], win.ceil_mode)?;
                let ow = out_size(w, kernel[1], stride[1], pad[1] + pad[3], dil[1], win.ceil_mode)?;
                let (oh, ow) = (
                    ceil_fix(oh, h, stride[0], pad[0], win.ceil_mode),
                    ceil_fix(ow, w, stride[1], pad[1], win.ceil_mode),
                );
                let out = self.tensor(vec![n, c, oh, ow], "the pool's output")?;
                Ok(self.push(name, Layer::Pool { x, out, kind: *kind, kernel, stride, pad, dil }))
            }
            Op::GlobalPool(kind) => {
                let out = self.tensor(vec![n, c, 1, 1], "")?;
                Ok(self.push(name, Layer::Reduce { x, out, kind: *kind, channels: false, spatial: true }))
            }
            Op::Reduce { kind, axes, keepdims, noop_with_empty_axes } => {
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => self.konst(ins.get(1).copied().flatten(), "axes")?.map(|c| c.as_i64()).unwrap_or_default(),
                };
                if axes.is_empty() && *noop_with_empty_axes {
                    return Ok(Val::Tensor(x));
                }
                let mut set = [axes.is_empty(); 4];
                for &a in &axes {
                    set[norm_axis(a, 4)?] = true;
                }
                if set[0] || set[2] != set[3] || !(set[1] || set[2]) {
                    return Err(shape_err(format!("reducing over axes {axes:?} (supported: channels, H and W together, or all three)")));
                }
                if !keepdims {
                    return Err(shape_err("keepdims=0 would drop activation dims (keep them: keepdim=True)"));
                }
                let (channels, spatial) = (set[1], set[2]);
                let out = self.tensor(vec![n, if channels { 1 } else { c }, if spatial { 1 } else { h }, if spatial { 1 } else { w }], "")?;
                Ok(self.push(name, Layer::Reduce { x, out, kind: *kind, channels, spatial }))
            }
            Op::Resize { mode, coord, scales } => {
                // Resize 11+: x, roi, scales, sizes; Resize 10 / Upsample 9: x, scales.
                let (sc, sz) = if ins.len() <= 2 {
                    (self.konst(ins.get(1).copied().flatten(), "scales")?, None)
                } else {
                    (
                        self.konst(ins.get(2).copied().flatten(), "scales")?,
                        self.konst(ins.get(3).copied().flatten(), "sizes")?,
                    )
                };
                let sc = sc.map(|c| c.as_f32()).filter(|v| !v.is_empty()).or(scales.clone());
                let sz = sz.map(|c| c.as_i64()).filter(|v| !v.is_empty());
                let (oh, ow, scale) = if let Some(sz) = sz {
                    if sz.len() != 4 || sz[0] as usize != n || sz[1] as usize != c || sz[2] <= 0 || sz[3] <= 0 {
                        return Err(shape_err(format!("sizes {sz:?} must keep N and C of {xs:?}")));
                    }
                    let (oh, ow) = (sz[2] as usize, sz[3] as usize);
                    (oh, ow, [oh as f32 / h as f32, ow as f32 / w as f32])
                } else if let Some(s) = sc {
                    if s.len() != 4 || s[0] != 1.0 || s[1] != 1.0 || !(s[2] > 0.0 && s[3] > 0.0) {
                        return Err(shape_err(format!("scales {s:?} must be 1 for N and C and positive for H and W")));
                    }
                    ((h as f32 * s[2]).floor() as usize, (w as f32 * s[3]).floor() as usize, [s[2], s[3]])
                } else {
                    return Err(shape_err("neither scales nor sizes"));
                };
                if oh == h && ow == w && scale == [1.0, 1.0] {
                    return Ok(Val::Tensor(x));
                }
                let out = self.tensor(vec![n, c, oh, ow], "the resize's output")?;
                Ok(self.push(name, Layer::Resize { x, out, mode: *mode, coord: *coord, scale }))
            }
            Op::Pad { mode, pads, value } => {
                let p = match pads {
                    Some(p) => p.clone(),
                    None => self.need_const(ins.get(1).copied().flatten(), "pads")?.as_i64(),
                };
                let value = match self.konst(ins.get(2).copied().flatten(), "constant_value")? {
                    Some(v) if !v.is_empty() => v.as_f32()[0],
                    _ => *value,
                };
                let axes: Vec<usize> = match self.konst(ins.get(3).copied().flatten(), "axes")? {
                    Some(a) => a.as_i64().iter().map(|&a| norm_axis(a, 4)).collect::<Result<_>>()?,
                    None => (0..4).collect(),
                };
                if p.len() != 2 * axes.len() {
                    return Err(shape_err(format!("{} pads for {} axes", p.len(), axes.len())));
                }
                let mut full = [0i64; 8];
                for (k, &a) in axes.iter().enumerate() {
                    full[a] = p[k];
                    full[a + 4] = p[k + axes.len()];
                }
                if full[0] != 0 || full[1] != 0 || full[4] != 0 || full[5] != 0 {
                    return Err(shape_err(format!("padding N or C ({p:?}); wunet pads H and W")));
                }
                let pads4 = [full[2], full[3], full[6], full[7]];
                let oh = h as i64 + pads4[0] + pads4[2];
                let ow = w as i64 + pads4[1] + pads4[3];
                if oh <= 0 || ow <= 0 {
                    return Err(shape_err("the pads remove the whole image"));
                }
                if *mode == PadMode::Reflect && (pads4[0].max(pads4[2]) >= h as i64 || pads4[1].max(pads4[3]) >= w as i64) {
                    return Err(shape_err("reflect padding as wide as the image"));
                }
                if pads4 == [0; 4] {
                    return Ok(Val::Tensor(x));
                }
                let out = self.tensor(vec![n, c, oh as usize, ow as usize], "")?;
                Ok(self.push(name, Layer::Pad { x, out, mode: *mode, pads: pads4, value }))
            }
            Op::Concat { axis } => {
                let mut xs_t = Vec::new();
                for &i in ins.iter().flatten() {
                    match self.val(i)? {
                        Val::Tensor(t) => xs_t.push(*t),
                        Val::Const(_) => return Err(shape_err("concatenating a constant with activations")),
                    }
                }
                let s0 = self.out.shapes[xs_t[0]];
                if norm_axis(*axis, 4)? != 1 {
                    return Err(shape_err(format!("concatenating activations on axis {axis} (wunet: channels)")));
                }
                let mut ct = 0;
                for &t in &xs_t {
                    let s = self.out.shapes[t];
                    if (s[0], s[2], s[3]) != (s0[0], s0[2], s0[3]) {
                        return Err(shape_err(format!("inputs of shapes {s0:?} and {s:?} do not concatenate on channels")));
                    }
                    ct += s[1];
                }
                if xs_t.len() == 1 {
                    return Ok(Val::Tensor(xs_t[0]));
                }
                let out = self.tensor(vec![s0[0], ct, s0[2], s0[3]], "")?;
                Ok(self.push(name, Layer::Concat { xs: xs_t, out }))
            }
            Op::Binary(op) => {
                let a = self.operand(ins[0])?;
                let b = self.operand(ins.get(1).copied().flatten())?;
                let sa = self.operand_shape(a);
                let sb = self.operand_shape(b);
                let mut s = [0usize; 4];
                for k in 0..4 {
                    s[k] = match (sa[k], sb[k]) {
                        (x, y) if x == y => x,
                        (1, y) => y,
                        (x, 1) => x,
                        _ => return Err(shape_err(format!("shapes {sa:?} and {sb:?} do not broadcast"))),
                    };
                }
                let out = self.tensor(s.to_vec(), "")?;
                Ok(self.push(name, Layer::Binary { a, b, out, op: *op, act: Act::None }))
            }
            Op::Identity => Ok(Val::Tensor(x)),
            Op::Softmax { axis, legacy } => {
                let ax = norm_axis(*axis, 4)?;
                // Before opset 13, Softmax normalizes over every dim from `axis` on: over
                // channels only where the image is 1 × 1.
                if ax != 1 || (*legacy && h * w != 1) {
                    return Err(shape_err(format!(
                        "softmax over axis {axis}{} (wunet: over channels; export with opset 13 or later)",
                        if *legacy { " of an opset < 13 model, i.e. over C·H·W flattened" } else { "" }
                    )));
                }
                let out = self.tensor(xs.to_vec(), "")?;
                Ok(self.push(name, Layer::Softmax { x, out }))
            }
            Op::Reshape | Op::Unsqueeze { .. } | Op::Squeeze { .. } | Op::Expand | Op::Cast { .. } | Op::Transpose { .. } => {
                // Only as no-ops on activations (a reshape to the same shape, a cast to float).
                if let Op::Cast { to_float: true } = node.op {
                    return Ok(Val::Tensor(x));
                }
                if let (Op::Reshape, Some(Some(t))) = (&node.op, ins.get(1)) {
                    let target = self.need_const(Some(*t), "shape")?.as_i64();
                    let same = target.len() == 4
                        && target.iter().zip(xs).all(|(&t, d)| t == d as i64 || t == 0 || t == -1);
                    if same && target.iter().filter(|&&t| t == -1).count() <= 1 {
                        return Ok(Val::Tensor(x));
                    }
                }
                Err(shape_err(format!(
                    "{} of an activation of shape {xs:?}: an image-dependent value used as a shape or index is unresolvable at plan time (wunet runs NCHW activations; shape ops on shapes and constants only)",
                    node.op.name()
                )))
            }
            other => Err(shape_err(format!(
                "{} of an activation: an image-dependent value used as a shape or index is unresolvable at plan time (shape ops on shapes and constants only)",
                other.name()
            ))),
        }
    }

    fn bias(&mut self, id: Option<ValueId>, cout: usize) -> Result<Option<WeightId>> {
        let Some(id) = id else { return Ok(None) };
        let b = self.weight(id)?;
        if self.out.weights[b].data.len() != cout {
            return Err(shape_err(format!(
                "bias of {} values for {cout} output channels",
                self.out.weights[b].data.len()
            )));
        }
        Ok(Some(b))
    }

    fn operand(&mut self, id: Option<ValueId>) -> Result<Operand> {
        let id = id.ok_or_else(|| shape_err("missing operand"))?;
        match self.val(id)?.clone() {
            Val::Tensor(t) => Ok(Operand::T(t)),
            Val::Const(c) => {
                if c.shape.len() > 4 {
                    return Err(shape_err(format!(
                        "a constant of rank {} broadcast onto activations",
                        c.shape.len()
                    )));
                }
                let w = self.weight(id)?;
                let mut shape = vec![1; 4 - c.shape.len()];
                shape.extend(&c.shape);
                self.out.weights[w].shape = shape;
                Ok(Operand::W(w))
            }
        }
    }

    fn operand_shape(&self, o: Operand) -> Shape {
        match o {
            Operand::T(t) => self.out.shapes[t],
            Operand::W(w) => self.out.weights[w]
                .shape
                .as_slice()
                .try_into()
                .expect("operands are 4-D"),
        }
    }
}

fn pair(v: &[usize]) -> [usize; 2] {
    match v {
        [a, b] => [*a, *b],
        _ => [1, 1],
    }
}

pub(super) fn norm_axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(shape_err(format!("axis {a} out of range for rank {rank}")));
    }
    Ok(((a + r) % r) as usize)
}

/// [top, left, bottom, right] from explicit pads or `auto_pad`.
fn conv_pads(
    win: &Window,
    hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
) -> Result<[usize; 4]> {
    let mut pad = [0usize; 4];
    match win.auto_pad.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..2 {
                let out = hw[i].div_ceil(s[i]);
                let total = ((out - 1) * s[i] + (k[i] - 1) * d[i] + 1).saturating_sub(hw[i]);
                let (lo, hi) = if win.auto_pad == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                pad[i] = lo;
                pad[i + 2] = hi;
            }
        }
        "VALID" => {}
        _ => {
            for (p, &v) in pad.iter_mut().zip(&win.pads) {
                *p = v as usize;
            }
        }
    }
    Ok(pad)
}

fn out_size(i: usize, k: usize, s: usize, pads: usize, d: usize, ceil: bool) -> Result<usize> {
    let span = (k - 1) * d + 1;
    let total = i + pads;
    if total < span {
        return Err(shape_err(format!(
            "a window of {span} does not fit an input of {i} (+{pads} padding)"
        )));
    }
    Ok(if ceil {
        (total - span).div_ceil(s)
    } else {
        (total - span) / s
    } + 1)
}

/// PyTorch's (and ONNX's) ceil-mode rule: the last window must start inside the input or the
/// leading padding.
fn ceil_fix(o: usize, i: usize, s: usize, pad_begin: usize, ceil: bool) -> usize {
    if ceil && o > 1 && (o - 1) * s >= i + pad_begin {
        o - 1
    } else {
        o
    }
}
