//! ONNX import: a `.onnx` file (and, for dynamo exports, the external data beside it) → a
//! [`LayerGraph`]. The protobuf is read by our own small reader (`proto`); initializers become
//! constants (float weights widened to f32, integers to i64), nodes become typed [`Op`]s with their
//! attributes checked here, so an unsupported op or attribute is named before anything runs.

mod convert;
pub mod proto;
mod tensor;

use std::collections::HashMap;
use std::path::Path;

use super::{Const, LayerGraph, ValueId};
use crate::{Error, Result};
use convert::convert;
use tensor::{constant_node, tensor_const, ExternalData};

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
