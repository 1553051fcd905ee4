//! The ops of the layer graph and their attributes. Tensor-valued parameters (Resize's sizes,
//! Pad's pads, Reduce's axes in newer opsets, Clip's bounds) are inputs that must fold to
//! constants for a concrete input shape; everything else is an attribute here.

/// An activation, standalone or fused into the epilogue of the op before it.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Clip(f32, f32),
    /// Per-channel slopes (one value broadcast to all channels where the model has one).
    PRelu(Vec<f32>),
}

impl Act {
    #[inline]
    pub fn apply(&self, v: f32, channel: usize) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::LeakyRelu(a) => {
                if v < 0.0 {
                    v * a
                } else {
                    v
                }
            }
            Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Act::Tanh => v.tanh(),
            Act::Clip(lo, hi) => v.max(*lo).min(*hi),
            Act::PRelu(s) => {
                if v < 0.0 {
                    v * s[if s.len() == 1 { 0 } else { channel }]
                } else {
                    v
                }
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Act::None => "",
            Act::Relu => "relu",
            Act::LeakyRelu(_) => "leaky_relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
            Act::Clip(..) => "clip",
            Act::PRelu(_) => "prelu",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// `count_include_pad`: divide by the whole window, padding included.
    Avg {
        count_include_pad: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Mean,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest with ONNX's `nearest_mode` (`floor`, the PyTorch export; or round half down/up,
    /// ceil).
    Nearest(NearestRound),
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestRound {
    Floor,
    Ceil,
    RoundPreferFloor,
    RoundPreferCeil,
}

/// ONNX's `coordinate_transformation_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeCoord {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Edge,
    Reflect,
}

/// Conv and pooling window geometry: `pads` are [top, left, bottom, right].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Window {
    /// Empty: taken from the weight's shape (Conv).
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<i64>,
    pub dilations: Vec<usize>,
    /// ONNX `auto_pad`: "NOTSET", "SAME_UPPER", "SAME_LOWER" or "VALID".
    pub auto_pad: String,
    pub ceil_mode: bool,
}

/// One op. The comment after each says its inputs (`?`: optional; `const`: must fold to a
/// constant for a concrete input shape).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// x, w (const), b? (const)
    Conv {
        win: Window,
        groups: usize,
    },
    /// x, w (const), b? (const)
    ConvTranspose {
        win: Window,
        groups: usize,
        output_padding: Vec<usize>,
        output_shape: Vec<usize>,
    },
    /// x, scale, bias, mean, var (all const)
    BatchNorm {
        eps: f32,
    },
    /// x, scale? (const), bias? (const)
    InstanceNorm {
        eps: f32,
    },
    /// x (Relu, LeakyRelu, Sigmoid, Tanh); x, min? max? (const, Clip); x, slope (const, PRelu)
    Act(Act),
    /// x; `Clip` of opset 11+ and `PRelu` take their parameters from inputs.
    Clip,
    PRelu,
    /// x
    Pool {
        kind: PoolKind,
        win: Window,
    },
    /// x
    GlobalPool(ReduceKind),
    /// x, axes? (const, opset 18 / ReduceMean 18, ReduceMax 18)
    Reduce {
        kind: ReduceKind,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// x, roi? scales? sizes? (const). Upsample: x, scales (const) or the `scales` attribute.
    Resize {
        mode: ResizeMode,
        coord: ResizeCoord,
        scales: Option<Vec<f32>>,
    },
    /// x, pads? (const), value? (const), axes? (const); opset < 11 has pads as an attribute.
    Pad {
        mode: PadMode,
        pads: Option<Vec<i64>>,
        value: f32,
    },
    /// any count
    Concat {
        axis: i64,
    },
    /// a, b (NumPy broadcasting)
    Binary(BinOp),
    /// x (Identity, Dropout in inference)
    Identity,
    /// x; `legacy` (opset < 13): over all dims from `axis` on, flattened.
    Softmax {
        axis: i64,
        legacy: bool,
    },
    // Shape arithmetic, folded at plan time (never run on activations).
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    /// data, starts, ends, axes?, steps? (opset 10+); attributes in opset < 10.
    Slice {
        attr: Option<(Vec<i64>, Vec<i64>, Vec<i64>)>,
    },
    Cast {
        to_float: bool,
    },
    /// data, axes? (opset 13+) or the attribute.
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Reshape,
    Transpose {
        perm: Option<Vec<i64>>,
    },
    ConstantOfShape {
        value: Option<(bool, f64)>,
    },
    Range,
    Floor,
    Ceil,
    Sqrt,
    Neg,
    Equal,
    Where,
    Expand,
    Pow,
}

impl Op {
    /// The ONNX name of the op kind, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::InstanceNorm { .. } => "InstanceNormalization",
            Op::Act(Act::None) => "Identity",
            Op::Act(Act::Relu) => "Relu",
            Op::Act(Act::LeakyRelu(_)) => "LeakyRelu",
            Op::Act(Act::Sigmoid) => "Sigmoid",
            Op::Act(Act::Tanh) => "Tanh",
            Op::Act(Act::Clip(..)) | Op::Clip => "Clip",
            Op::Act(Act::PRelu(_)) | Op::PRelu => "PRelu",
            Op::Pool {
                kind: PoolKind::Max,
                ..
            } => "MaxPool",
            Op::Pool { .. } => "AveragePool",
            Op::GlobalPool(ReduceKind::Mean) => "GlobalAveragePool",
            Op::GlobalPool(ReduceKind::Max) => "GlobalMaxPool",
            Op::Reduce {
                kind: ReduceKind::Mean,
                ..
            } => "ReduceMean",
            Op::Reduce { .. } => "ReduceMax",
            Op::Resize { .. } => "Resize",
            Op::Pad { .. } => "Pad",
            Op::Concat { .. } => "Concat",
            Op::Binary(BinOp::Add) => "Add",
            Op::Binary(BinOp::Sub) => "Sub",
            Op::Binary(BinOp::Mul) => "Mul",
            Op::Binary(BinOp::Div) => "Div",
            Op::Identity => "Identity",
            Op::Softmax { .. } => "Softmax",
            Op::Shape { .. } => "Shape",
            Op::Gather { .. } => "Gather",
            Op::Slice { .. } => "Slice",
            Op::Cast { .. } => "Cast",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Squeeze { .. } => "Squeeze",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::Floor => "Floor",
            Op::Ceil => "Ceil",
            Op::Sqrt => "Sqrt",
            Op::Neg => "Neg",
            Op::Equal => "Equal",
            Op::Where => "Where",
            Op::Expand => "Expand",
            Op::Pow => "Pow",
        }
    }
}
