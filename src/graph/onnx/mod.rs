//! ONNX import: a `.onnx` file (and, for dynamo exports, the external data beside it) → a
//! [`LayerGraph`]. The protobuf is read by our own small reader (`proto`); initializers become
//! constants (float weights widened to f32, integers to i64), nodes become typed [`Op`]s with their
//! attributes checked here, so an unsupported op or attribute is named before anything runs.

pub mod proto;

use std::collections::HashMap;
use std::path::{Component, Path};

use super::ops::{NearestRound, Window};
use super::{
    Act, BinOp, Const, LayerGraph, Op, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode,
    ValueId,
};
use crate::{Error, Result};
use proto::{AttributeProto, NodeProto, TensorProto};

/// The op types the importer accepts (the message of an unsupported op lists them).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Div",
    "Dropout",
    "Equal",
    "Expand",
    "Floor",
    "Gather",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "InstanceNormalization",
    "LeakyRelu",
    "MaxPool",
    "Mul",
    "Neg",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "ReduceMax",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "Upsample",
    "Where",
];

/// Reads `path`; external data is looked up in the model's folder and may not leave it.
pub fn load(path: &Path) -> Result<LayerGraph> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    import(&bytes, Some(dir)).map_err(|e| match e {
        Error::BadModel(reason) => Error::BadModel(format!("{}: {reason}", path.display())),
        e => e,
    })
}

/// Reads ONNX bytes. `dir` is where external data files live (`None`: none may be referenced,
/// as for bytes handed over by a browser page).
pub fn import(bytes: &[u8], dir: Option<&Path>) -> Result<LayerGraph> {
    let m = proto::model(bytes)
        .map_err(|e| Error::BadModel(format!("not a readable ONNX model: {}", e.0)))?;
    let opset = m
        .opsets
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map_or(0, |&(_, v)| v);
    if opset == 0 {
        return Err(bad(
            "the model imports no default-domain opset (not an ONNX model?)",
        ));
    }
    if !(7..=23).contains(&opset) {
        return Err(bad(format!("opset {opset} is not supported (7 to 23 are)")));
    }
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| bad("the model has no graph"))?;
    if g.sparse_initializers > 0 {
        return Err(bad("sparse initializers are not supported"));
    }
    let mut lg = LayerGraph {
        source: format!(
            "onnx ({}, opset {opset})",
            if m.producer.is_empty() {
                "unknown producer"
            } else {
                &m.producer
            }
        ),
        ..Default::default()
    };
    let mut ids: HashMap<String, ValueId> = HashMap::new();
    let mut ext = ExternalData::new(dir);
    for t in &g.initializers {
        let c = tensor_const(t, &mut ext)?;
        if ids.contains_key(&t.name) {
            return Err(bad(format!("initializer `{}` is defined twice", t.name)));
        }
        let id = lg.value(t.name.clone(), Some(c));
        ids.insert(t.name.clone(), id);
    }
    let inputs: Vec<_> = g
        .inputs
        .iter()
        .filter(|i| !ids.contains_key(&i.name))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(bad("the graph has no input")),
        several => {
            return Err(bad(format!(
                "the graph has {} inputs ({}); wunet runs models with one image input",
                several.len(),
                several
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    if input.elem_type != 1 && input.elem_type != 0 {
        return Err(bad(format!(
            "the input `{}` has element type {} ({}); wunet's input is float32",
            input.name,
            input.elem_type,
            dtype_name(input.elem_type)
        )));
    }
    if let Some(dims) = &input.dims {
        if dims.len() != 4 {
            return Err(bad(format!(
                "the input `{}` has rank {}; wunet runs 2-D models on NCHW inputs",
                input.name,
                dims.len()
            )));
        }
        for (k, d) in dims.iter().enumerate() {
            lg.input_dims[k] = d.filter(|&v| v > 0).map(|v| v as usize);
        }
    }
    lg.input = lg.value(input.name.clone(), None);
    ids.insert(input.name.clone(), lg.input);
    let output = match g.outputs.as_slice() {
        [one] => one,
        [] => return Err(bad("the graph has no output")),
        several => {
            return Err(bad(format!(
                "the graph has {} outputs; wunet runs models with one output",
                several.len()
            )))
        }
    };
    if let Some(dims) = output.dims.as_ref().filter(|d| d.len() == 4) {
        for (k, d) in dims.iter().enumerate() {
            lg.output_dims[k] = d.filter(|&v| v > 0).map(|v| v as usize);
        }
    }
    for (k, n) in g.nodes.iter().enumerate() {
        let label = if n.name.is_empty() {
            format!("#{k}")
        } else {
            n.name.clone()
        };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(unsupported(&format!("{}.{}", n.domain, n.op_type), &label));
        }
        if n.op_type == "Constant" {
            let c = constant_node(n, &label, &mut ext)?;
            let out = n
                .outputs
                .first()
                .ok_or_else(|| bad(format!("Constant `{label}` has no output")))?;
            define(&mut lg, &mut ids, out, Some(c), &label)?;
            continue;
        }
        let op = convert(n, &label, opset)?;
        let inputs = n
            .inputs
            .iter()
            .map(|name| {
                if name.is_empty() {
                    Ok(None)
                } else {
                    ids.get(name).copied().map(Some).ok_or_else(|| {
                        bad(format!(
                            "node `{label}` ({}) reads `{name}`, which no node, initializer or input defines (or a cycle)",
                            n.op_type
                        ))
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        // Extra outputs (BatchNorm's running stats, Dropout's mask, MaxPool's indices) are never
        // computed; a node that reads one finds no writer.
        let out = n
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad(format!("node `{label}` has no output")))?;
        let out = define(&mut lg, &mut ids, out, None, &label)?;
        lg.node(label, op, inputs, vec![out]);
    }
    lg.output = *ids.get(&output.name).ok_or_else(|| {
        bad(format!(
            "nothing defines the graph output `{}`",
            output.name
        ))
    })?;
    lg.validate()?;
    Ok(lg)
}

fn define(
    lg: &mut LayerGraph,
    ids: &mut HashMap<String, ValueId>,
    name: &str,
    c: Option<Const>,
    label: &str,
) -> Result<ValueId> {
    if ids.contains_key(name) {
        return Err(bad(format!(
            "node `{label}` writes `{name}`, which is already defined"
        )));
    }
    let id = lg.value(name, c);
    ids.insert(name.to_string(), id);
    Ok(id)
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadModel(reason.into())
}

fn unsupported(op: &str, node: &str) -> Error {
    Error::UnsupportedOp {
        op: op.to_string(),
        node: node.to_string(),
        supported: SUPPORTED_OPS.join(", "),
    }
}

fn dtype_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        16 => "bfloat16",
        _ => "other",
    }
}

/// Reads external data files once each, confined to the model's folder.
struct ExternalData<'d> {
    dir: Option<&'d Path>,
    files: HashMap<String, Vec<u8>>,
}

impl<'d> ExternalData<'d> {
    fn new(dir: Option<&'d Path>) -> Self {
        ExternalData {
            dir,
            files: HashMap::new(),
        }
    }

    fn read(&mut self, t: &TensorProto, info: &HashMap<String, String>) -> Result<Vec<u8>> {
        let loc = info.get("location").ok_or_else(|| {
            bad(format!(
                "tensor `{}`: external data without a location",
                t.name
            ))
        })?;
        let rel = Path::new(loc);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad(format!(
                "tensor `{}`: external data path `{loc}` leaves the model's folder (refused)",
                t.name
            )));
        }
        let dir = self.dir.ok_or_else(|| {
            bad(format!(
                "tensor `{}` keeps its data in the external file `{loc}`, which bytes alone cannot reach (load the file from disk, or save the model with its weights inside)",
                t.name
            ))
        })?;
        if !self.files.contains_key(loc) {
            let p = dir.join(rel);
            let data = std::fs::read(&p).map_err(|e| {
                bad(format!(
                    "tensor `{}`: cannot read external data {}: {e}",
                    t.name,
                    p.display()
                ))
            })?;
            self.files.insert(loc.clone(), data);
        }
        let file = &self.files[loc];
        let num = |k: &str| -> Result<Option<usize>> {
            info.get(k)
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| bad(format!("tensor `{}`: bad external {k} `{v}`", t.name)))
                })
                .transpose()
        };
        let offset = num("offset")?.unwrap_or(0);
        let length = match num("length")? {
            Some(l) => l,
            None => file.len().saturating_sub(offset),
        };
        if offset
            .checked_add(length)
            .is_none_or(|end| end > file.len())
        {
            return Err(bad(format!(
                "tensor `{}`: external data `{loc}` is {} bytes, the tensor needs bytes {offset}..{}",
                t.name,
                file.len(),
                offset.saturating_add(length)
            )));
        }
        Ok(file[offset..offset + length].to_vec())
    }
}

/// An initializer or constant as a `Const`: floats (f32, f16, bf16, f64) as f32, integers and
/// bools as i64. Float weights must be finite.
fn tensor_const(t: &TensorProto, ext: &mut ExternalData) -> Result<Const> {
    if t.segmented {
        return Err(bad(format!(
            "tensor `{}` is segmented (not supported)",
            t.name
        )));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| bad(format!("tensor `{}` has a negative dim {d}", t.name)))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c as u64 <= (isize::MAX as u64) / 8)
            .ok_or_else(|| {
                bad(format!(
                    "tensor `{}` has an absurd shape {:?}",
                    t.name, t.dims
                ))
            })?;
        shape.push(d);
    }
    let external;
    let raw: Option<&[u8]> = match &t.external {
        Some(info) => {
            external = ext.read(t, info)?;
            Some(&external)
        }
        None => t.raw,
    };
    let width = match t.data_type {
        1 | 6 => 4,
        7 | 11 => 8,
        10 | 16 | 5 => 2,
        2 | 3 | 9 => 1,
        dt => {
            return Err(bad(format!(
                "tensor `{}` has element type {dt} ({}), not supported",
                t.name,
                dtype_name(dt)
            )))
        }
    };
    let dims = t.dims.clone();
    let wrong = |got: usize| {
        bad(format!(
            "tensor `{}` holds {got} values, its shape {dims:?} needs {count}",
            t.name
        ))
    };
    let c = if let Some(raw) = raw {
        if raw.len() != count * width {
            return Err(wrong(raw.len() / width));
        }
        match t.data_type {
            1 => Const::f32(
                shape,
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            11 => Const::f32(
                shape,
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
            ),
            10 => Const::f32(
                shape,
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            16 => Const::f32(
                shape,
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            6 => Const::i64(
                shape,
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                    .collect(),
            ),
            7 => Const::i64(
                shape,
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            5 => Const::i64(
                shape,
                raw.chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
                    .collect(),
            ),
            3 => Const::i64(shape, raw.iter().map(|&b| b as i8 as i64).collect()),
            _ => Const::i64(shape, raw.iter().map(|&b| b as i64).collect()),
        }
    } else {
        let c = match t.data_type {
            1 => Const::f32(shape, t.floats.clone()),
            11 => Const::f32(shape, t.doubles.iter().map(|&v| v as f32).collect()),
            10 => Const::f32(
                shape,
                t.int32s
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            16 => Const::f32(
                shape,
                t.int32s
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            7 => Const::i64(shape, t.int64s.clone()),
            _ => Const::i64(shape, t.int32s.clone()),
        };
        if c.len() != count {
            return Err(wrong(c.len()));
        }
        c
    };
    if let super::ConstData::F32(v) = &c.data {
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite {
                key: t.name.clone(),
                index,
                value,
            });
        }
    }
    Ok(c)
}

fn constant_node(n: &NodeProto, label: &str, ext: &mut ExternalData) -> Result<Const> {
    let a = n
        .attributes
        .first()
        .ok_or_else(|| bad(format!("Constant `{label}` has no value")))?;
    match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| bad(format!("Constant `{label}`: `value` is not a tensor")))?;
            tensor_const(t, ext)
        }
        "value_float" => Ok(Const::f32(vec![], vec![a.f.unwrap_or(0.0)])),
        "value_floats" => Ok(Const::f32(vec![a.floats.len()], a.floats.clone())),
        "value_int" => Ok(Const::i64(vec![], vec![a.i.unwrap_or(0)])),
        "value_ints" => Ok(Const::i64(vec![a.ints.len()], a.ints.clone())),
        other => Err(bad(format!(
            "Constant `{label}`: value kind `{other}` is not supported"
        ))),
    }
}

/// A node's attributes by name.
struct Attrs<'n, 'a> {
    map: HashMap<&'n str, &'n AttributeProto<'a>>,
    label: &'n str,
    op: &'n str,
}

impl<'n, 'a> Attrs<'n, 'a> {
    fn new(n: &'n NodeProto<'a>, label: &'n str) -> Result<Self> {
        let mut map = HashMap::new();
        for a in &n.attributes {
            if a.has_graph {
                return Err(unsupported(
                    &format!("{} with a subgraph", n.op_type),
                    label,
                ));
            }
            map.insert(a.name.as_str(), a);
        }
        Ok(Attrs {
            map,
            label,
            op: &n.op_type,
        })
    }

    fn int(&self, k: &str, default: i64) -> i64 {
        self.map.get(k).and_then(|a| a.i).unwrap_or(default)
    }

    fn float(&self, k: &str, default: f32) -> f32 {
        self.map.get(k).and_then(|a| a.f).unwrap_or(default)
    }

    fn ints(&self, k: &str) -> Option<Vec<i64>> {
        self.map.get(k).map(|a| a.ints.clone())
    }

    fn floats(&self, k: &str) -> Option<Vec<f32>> {
        self.map.get(k).map(|a| a.floats.clone())
    }

    fn string(&self, k: &str, default: &str) -> String {
        self.map
            .get(k)
            .and_then(|a| a.s)
            .map_or(default.to_string(), |s| {
                String::from_utf8_lossy(s).into_owned()
            })
    }

    fn usizes(&self, k: &str) -> Result<Vec<usize>> {
        self.ints(k)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                    bad(format!(
                        "{} `{}`: attribute {k} has a non-positive value {v}",
                        self.op, self.label
                    ))
                })
            })
            .collect()
    }

    fn window(&self) -> Result<Window> {
        let win = Window {
            kernel: self.usizes("kernel_shape")?,
            strides: self.usizes("strides")?,
            pads: self.ints("pads").unwrap_or_default(),
            dilations: self.usizes("dilations")?,
            auto_pad: self.string("auto_pad", "NOTSET"),
            ceil_mode: self.int("ceil_mode", 0) != 0,
        };
        let two = |v: &[usize], what: &str| {
            if !v.is_empty() && v.len() != 2 {
                Err(bad(format!(
                    "{} `{}`: {what} {v:?} is not 2-D (wunet runs 2-D models)",
                    self.op, self.label
                )))
            } else {
                Ok(())
            }
        };
        two(&win.kernel, "kernel_shape")?;
        two(&win.strides, "strides")?;
        two(&win.dilations, "dilations")?;
        if !win.pads.is_empty() && win.pads.len() != 4 {
            return Err(bad(format!(
                "{} `{}`: pads {:?} are not 2-D",
                self.op, self.label, win.pads
            )));
        }
        if win.pads.iter().any(|&p| p < 0) {
            return Err(bad(format!(
                "{} `{}`: negative pads {:?}",
                self.op, self.label, win.pads
            )));
        }
        if !matches!(
            win.auto_pad.as_str(),
            "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID"
        ) {
            return Err(bad(format!(
                "{} `{}`: unknown auto_pad `{}`",
                self.op, self.label, win.auto_pad
            )));
        }
        Ok(win)
    }
}

/// One node's op, its attributes checked.
fn convert(n: &NodeProto, label: &str, opset: i64) -> Result<Op> {
    let a = Attrs::new(n, label)?;
    let groups = |a: &Attrs| -> Result<usize> {
        let g = a.int("group", 1);
        usize::try_from(g)
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| bad(format!("{} `{label}`: group {g}", n.op_type)))
    };
    let reduce = |kind| -> Result<Op> {
        Ok(Op::Reduce {
            kind,
            axes: a.ints("axes"),
            keepdims: a.int("keepdims", 1) != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
        })
    };
    let op = match n.op_type.as_str() {
        "Conv" => Op::Conv {
            win: a.window()?,
            groups: groups(&a)?,
        },
        "ConvTranspose" => Op::ConvTranspose {
            win: a.window()?,
            groups: groups(&a)?,
            output_padding: a
                .ints("output_padding")
                .unwrap_or_default()
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect(),
            output_shape: a
                .ints("output_shape")
                .unwrap_or_default()
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect(),
        },
        "BatchNormalization" => {
            if a.int("training_mode", 0) != 0 || (opset < 7 && a.int("is_test", 1) == 0) {
                return Err(bad(format!("BatchNormalization `{label}` is in training mode; export the model in eval mode")));
            }
            Op::BatchNorm {
                eps: a.float("epsilon", 1e-5),
            }
        }
        "InstanceNormalization" => Op::InstanceNorm {
            eps: a.float("epsilon", 1e-5),
        },
        "Relu" => Op::Act(Act::Relu),
        "LeakyRelu" => Op::Act(Act::LeakyRelu(a.float("alpha", 0.01))),
        "Sigmoid" => Op::Act(Act::Sigmoid),
        "Tanh" => Op::Act(Act::Tanh),
        "Clip" if opset < 11 => Op::Act(Act::Clip(
            a.float("min", f32::MIN),
            a.float("max", f32::MAX),
        )),
        "Clip" => Op::Clip,
        "PRelu" => Op::PRelu,
        "MaxPool" => {
            if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
                return Err(unsupported("MaxPool with an indices output", label));
            }
            Op::Pool {
                kind: PoolKind::Max,
                win: a.window()?,
            }
        }
        "AveragePool" => Op::Pool {
            kind: PoolKind::Avg {
                count_include_pad: a.int("count_include_pad", 0) != 0,
            },
            win: a.window()?,
        },
        "GlobalAveragePool" => Op::GlobalPool(ReduceKind::Mean),
        "GlobalMaxPool" => Op::GlobalPool(ReduceKind::Max),
        "ReduceMean" => reduce(ReduceKind::Mean)?,
        "ReduceMax" => reduce(ReduceKind::Max)?,
        "Resize" | "Upsample" => {
            let mode = match a.string("mode", "nearest").as_str() {
                "nearest" => ResizeMode::Nearest(
                    match a.string("nearest_mode", "round_prefer_floor").as_str() {
                        _ if n.op_type == "Upsample" || opset < 11 => NearestRound::Floor,
                        "floor" => NearestRound::Floor,
                        "ceil" => NearestRound::Ceil,
                        "round_prefer_floor" => NearestRound::RoundPreferFloor,
                        "round_prefer_ceil" => NearestRound::RoundPreferCeil,
                        m => {
                            return Err(bad(format!(
                                "Resize `{label}`: nearest_mode `{m}` is not supported"
                            )))
                        }
                    },
                ),
                "linear" | "bilinear" => ResizeMode::Linear,
                m => return Err(unsupported(&format!("{} mode `{m}`", n.op_type), label)),
            };
            let coord = if n.op_type == "Upsample" || opset < 11 {
                ResizeCoord::Asymmetric
            } else {
                match a
                    .string("coordinate_transformation_mode", "half_pixel")
                    .as_str()
                {
                    "half_pixel" => ResizeCoord::HalfPixel,
                    "pytorch_half_pixel" => ResizeCoord::PytorchHalfPixel,
                    "align_corners" => ResizeCoord::AlignCorners,
                    "asymmetric" => ResizeCoord::Asymmetric,
                    m => {
                        return Err(unsupported(
                            &format!("Resize coordinate_transformation_mode `{m}`"),
                            label,
                        ))
                    }
                }
            };
            if a.int("antialias", 0) != 0 {
                return Err(unsupported("Resize with antialias", label));
            }
            if a.ints("axes")
                .is_some_and(|ax| ax != [2, 3] && ax != [-2, -1])
            {
                return Err(unsupported("Resize over axes other than H, W", label));
            }
            let kar = a.string("keep_aspect_ratio_policy", "stretch");
            if kar != "stretch" {
                return Err(unsupported(
                    &format!("Resize keep_aspect_ratio_policy `{kar}`"),
                    label,
                ));
            }
            Op::Resize {
                mode,
                coord,
                scales: a.floats("scales"),
            }
        }
        "Pad" => Op::Pad {
            mode: match a.string("mode", "constant").as_str() {
                "constant" => PadMode::Constant,
                "edge" => PadMode::Edge,
                "reflect" => PadMode::Reflect,
                m => return Err(unsupported(&format!("Pad mode `{m}`"), label)),
            },
            pads: if opset < 11 { a.ints("pads") } else { None },
            value: a.float("value", 0.0),
        },
        "Concat" => Op::Concat {
            axis: a.int("axis", 1),
        },
        "Add" | "Sub" | "Mul" | "Div" => {
            if opset < 7 && a.int("broadcast", 0) != 0 {
                return Err(unsupported("legacy broadcast attribute", label));
            }
            Op::Binary(match n.op_type.as_str() {
                "Add" => BinOp::Add,
                "Sub" => BinOp::Sub,
                "Mul" => BinOp::Mul,
                _ => BinOp::Div,
            })
        }
        "Identity" => Op::Identity,
        "Dropout" => {
            if n.inputs.get(2).is_some_and(|s| !s.is_empty()) {
                // training_mode input: only a constant false is fine; checked at plan time as
                // any other input would be, by ignoring it here would be wrong, so refuse.
                return Err(unsupported("Dropout with a training_mode input", label));
            }
            Op::Identity
        }
        "Softmax" => Op::Softmax {
            axis: a.int("axis", if opset < 13 { 1 } else { -1 }),
            legacy: opset < 13,
        },
        "Shape" => Op::Shape {
            start: a.int("start", 0),
            end: a.map.get("end").and_then(|x| x.i),
        },
        "Gather" => Op::Gather {
            axis: a.int("axis", 0),
        },
        "Slice" => Op::Slice {
            attr: if opset < 10 {
                let starts = a.ints("starts").unwrap_or_default();
                let ends = a.ints("ends").unwrap_or_default();
                let axes = a
                    .ints("axes")
                    .unwrap_or_else(|| (0..starts.len() as i64).collect());
                Some((starts, ends, axes))
            } else {
                None
            },
        },
        "Cast" => {
            let to = a.int("to", 1) as i32;
            Op::Cast {
                to_float: matches!(to, 1 | 10 | 11 | 16),
            }
        }
        "Unsqueeze" => Op::Unsqueeze {
            axes: a.ints("axes"),
        },
        "Squeeze" => Op::Squeeze {
            axes: a.ints("axes"),
        },
        "Reshape" => Op::Reshape,
        "Transpose" => Op::Transpose {
            perm: a.ints("perm"),
        },
        "ConstantOfShape" => Op::ConstantOfShape {
            value: a.map.get("value").and_then(|v| v.t.as_ref()).map(|t| {
                let float = matches!(t.data_type, 1 | 10 | 11 | 16);
                let v = if let Some(r) = t.raw {
                    match (t.data_type, r.len()) {
                        (1, 4) => f32::from_le_bytes(r.try_into().unwrap()) as f64,
                        (11, 8) => f64::from_le_bytes(r.try_into().unwrap()),
                        (7, 8) => i64::from_le_bytes(r.try_into().unwrap()) as f64,
                        (6, 4) => i32::from_le_bytes(r.try_into().unwrap()) as f64,
                        (_, 1) => r[0] as f64,
                        _ => 0.0,
                    }
                } else {
                    t.floats
                        .first()
                        .map(|&v| v as f64)
                        .or(t.int64s.first().map(|&v| v as f64))
                        .or(t.int32s.first().map(|&v| v as f64))
                        .unwrap_or(0.0)
                };
                (float, v)
            }),
        },
        "Range" => Op::Range,
        "Floor" => Op::Floor,
        "Ceil" => Op::Ceil,
        "Sqrt" => Op::Sqrt,
        "Neg" => Op::Neg,
        "Equal" => Op::Equal,
        "Where" => Op::Where,
        "Expand" => Op::Expand,
        "Pow" => Op::Pow,
        other => return Err(unsupported(other, label)),
    };
    Ok(op)
}
