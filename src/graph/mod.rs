//! The layer graph: one model representation that every importer produces and every engine
//! lowers. A [`LayerGraph`] is shape-independent: typed ops with their attributes, inputs and
//! outputs by value id, weights and other constants by the same ids. It may hold shape
//! arithmetic (`Shape`, `Gather`, `Concat` of sizes, … as ONNX exports write them); for one
//! concrete input shape, [`LayerGraph::instantiate`] folds all of that to constants, infers every
//! runtime tensor's NCHW shape and gives a [`Shaped`] graph of runtime layers only, which
//! [`fuse`] then rewrites the way a fast engine runs it (BatchNorm into the conv, activations and
//! residual Adds into its epilogue).
//!
//! Importers: [`onnx`] (`torch.onnx.export`, TorchScript and dynamo) and [`reference`] (the
//! safetensors reference U-Net).

mod fold;
pub mod fuse;
mod instantiate;
pub mod onnx;
pub mod ops;
pub mod reference;
mod shaped;

pub use fuse::fuse;
pub use ops::{Act, BinOp, Op, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode};
pub use shaped::{Geom, Layer, Operand, Shaped, Weight, WeightId};

use crate::{Error, Result};

/// A value's id in a [`LayerGraph`].
pub type ValueId = usize;

/// A constant: an initializer, a `Constant` node's value, or what plan-time folding computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub shape: Vec<usize>,
    pub data: ConstData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    /// Shared: plans made per input shape reference the weights, never copy them.
    F32(std::sync::Arc<Vec<f32>>),
    I64(Vec<i64>),
}

impl Const {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Const {
        Const {
            shape,
            data: ConstData::F32(std::sync::Arc::new(data)),
        }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Const {
        Const {
            shape,
            data: ConstData::I64(data),
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            ConstData::F32(v) => v.len(),
            ConstData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as float32 (integers converted).
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F32(v) => v.as_ref().clone(),
            ConstData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as int64 (floats truncated toward zero, as ONNX's Cast does).
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            ConstData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            ConstData::I64(v) => v.clone(),
        }
    }
}

/// One op of the graph: what it does, which values it reads (`None`: an omitted optional
/// input) and which it writes.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
}

/// A shape-independent model.
#[derive(Clone, Debug, Default)]
pub struct LayerGraph {
    /// Value names (ONNX tensor names, or state_dict-style names for the reference model).
    pub names: Vec<String>,
    /// Constant values by id (`None`: computed by a node, or the graph input).
    pub consts: Vec<Option<Const>>,
    /// Nodes in an order where every input is written before it is read.
    pub nodes: Vec<Node>,
    pub input: ValueId,
    pub output: ValueId,
    /// The input's dims as the model declares them (`None`: dynamic).
    pub input_dims: [Option<usize>; 4],
    /// The output's dims as the model declares them, where it does (`None`: dynamic or unsaid).
    pub output_dims: [Option<usize>; 4],
    /// Per-channel image normalization `(x - mean) / std`, applied after scaling to [0, 1].
    pub input_mean: Option<Vec<f32>>,
    pub input_std: Option<Vec<f32>>,
    /// Where it came from, for reports ("onnx (pytorch 2.9, opset 18)", "reference U-Net").
    pub source: String,
}

impl LayerGraph {
    /// A new value; `konst` makes it a constant.
    pub fn value(&mut self, name: impl Into<String>, konst: Option<Const>) -> ValueId {
        self.names.push(name.into());
        self.consts.push(konst);
        self.names.len() - 1
    }

    pub fn node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<ValueId>>,
        outputs: Vec<ValueId>,
    ) {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
            outputs,
        });
    }

    /// The input's channel count where the model fixes it.
    pub fn in_channels(&self) -> Option<usize> {
        self.input_dims[1]
    }

    /// Number of float parameters held as constants (every float initializer).
    pub fn param_count(&self) -> usize {
        self.consts
            .iter()
            .flatten()
            .filter(|c| matches!(c.data, ConstData::F32(_)))
            .map(|c| c.len())
            .sum()
    }

    /// Checks the graph's structure: every node input is a constant, the graph input or some
    /// node's output written earlier; every value is written once; the output is reachable.
    /// (A cycle shows up as a value read before it is written.)
    pub fn validate(&self) -> Result<()> {
        let n = self.names.len();
        let mut written = vec![false; n];
        for (v, c) in self.consts.iter().enumerate() {
            written[v] = c.is_some();
        }
        if self.input >= n || self.output >= n {
            return Err(bad_graph("graph input or output out of range"));
        }
        written[self.input] = true;
        for node in &self.nodes {
            for &i in node.inputs.iter().flatten() {
                if i >= n || !written[i] {
                    return Err(bad_graph(format!(
                        "node `{}` ({}) reads `{}` before anything writes it (a dangling name or a cycle)",
                        node.name,
                        node.op.name(),
                        self.names.get(i).map_or("?", |s| s)
                    )));
                }
            }
            for &o in &node.outputs {
                if o >= n || written[o] {
                    return Err(bad_graph(format!(
                        "node `{}` ({}) writes `{}`, which is already written",
                        node.name,
                        node.op.name(),
                        self.names.get(o).map_or("?", |s| s)
                    )));
                }
                written[o] = true;
            }
        }
        if !written[self.output] {
            return Err(bad_graph(format!(
                "nothing writes the graph output `{}`",
                self.names[self.output]
            )));
        }
        Ok(())
    }

    /// Folds shape arithmetic and infers shapes for one NCHW input: the runtime graph.
    pub fn instantiate(&self, input: [usize; 4]) -> Result<Shaped> {
        instantiate::instantiate(self, input)
    }

    /// The receptive field's radius in input pixels: how far an output pixel's value reaches,
    /// computed from the graph's ops (`None` where an op mixes all pixels, such as a global pool,
    /// so tiles cannot reproduce the whole image's result).
    pub fn receptive_radius(&self, input: [usize; 4]) -> Result<Option<usize>> {
        Ok(self.instantiate(input)?.receptive_radius())
    }
}

pub(crate) fn bad_graph(reason: impl Into<String>) -> Error {
    Error::BadModel(reason.into())
}
