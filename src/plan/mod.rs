//! From a model and an input shape to a schedule: the list of ops in execution order over
//! numbered tensors (`Graph`), and where each tensor lives in one activation arena (`memory`).
//! Both executors, GPU and CPU, walk the same graph.

mod memory;
mod tile;

pub use memory::{
    f32_tensor_bytes, pad_planes, place_by_size, plan_memory, plan_memory_sized, plan_memory_temps,
    plan_memory_with, plane_stride, unpad_planes, MemoryPlan, ARENA_ALIGN,
};
pub use tile::{receptive_radius, run_tiled, tiles, TileRect};

use crate::model::{BatchNorm, ConvWeights, UNet, UNetSpec};
use crate::{Error, Result};

pub type TensorId = usize;

/// Which 3×3 conv (and its BatchNorm) of the model an op uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvRef {
    /// Encoder level, conv 1 or 2.
    Down(usize, u8),
    Bottleneck(u8),
    /// Decoder level (index into `UNet::ups`, deepest first), conv 1 or 2.
    Up(usize, u8),
}

impl ConvRef {
    /// The state_dict prefix, e.g. `downs.0.conv1`.
    pub fn name(&self) -> String {
        match *self {
            ConvRef::Down(l, i) => format!("downs.{l}.conv{i}"),
            ConvRef::Bottleneck(i) => format!("bottleneck.conv{i}"),
            ConvRef::Up(l, i) => format!("ups.{}.conv{i}", 2 * l + 1),
        }
    }

    pub fn weights<'m>(&self, m: &'m UNet) -> (&'m ConvWeights, &'m BatchNorm) {
        let (dc, i) = match *self {
            ConvRef::Down(l, i) => (&m.downs[l], i),
            ConvRef::Bottleneck(i) => (&m.bottleneck, i),
            ConvRef::Up(l, i) => (&m.ups[l].conv, i),
        };
        if i == 1 {
            (&dc.conv1, &dc.bn1)
        } else {
            (&dc.conv2, &dc.bn2)
        }
    }
}

/// One step of the network.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// 3×3 conv, padding 1, over the channels of `a` then `b` (the skip concatenation, read in
    /// place). With `fused`, BatchNorm is folded in and ReLU applied; without, a `BnRelu` follows.
    Conv3x3 {
        a: TensorId,
        b: Option<TensorId>,
        out: TensorId,
        conv: ConvRef,
        fused: bool,
    },
    /// Standalone BatchNorm + ReLU (only when folding is off).
    BnRelu {
        x: TensorId,
        out: TensorId,
        conv: ConvRef,
    },
    /// 2×2 max-pool, stride 2, floor.
    MaxPool { x: TensorId, out: TensorId },
    /// 2×2 stride-2 transposed conv with bias, `UNet::ups[level].up`.
    UpConv {
        x: TensorId,
        out: TensorId,
        level: usize,
    },
    /// Bilinear resize, align_corners=True.
    Resize { x: TensorId, out: TensorId },
    /// 1×1 conv with bias: the logits.
    Head { x: TensorId, out: TensorId },
}

impl Op {
    pub fn inputs(&self) -> Vec<TensorId> {
        match *self {
            Op::Conv3x3 { a, b, .. } => std::iter::once(a).chain(b).collect(),
            Op::BnRelu { x, .. }
            | Op::MaxPool { x, .. }
            | Op::UpConv { x, .. }
            | Op::Resize { x, .. }
            | Op::Head { x, .. } => vec![x],
        }
    }

    pub fn output(&self) -> TensorId {
        match *self {
            Op::Conv3x3 { out, .. }
            | Op::BnRelu { out, .. }
            | Op::MaxPool { out, .. }
            | Op::UpConv { out, .. }
            | Op::Resize { out, .. }
            | Op::Head { out, .. } => out,
        }
    }

    /// A short label for reports: the layer's state_dict name or the op kind.
    pub fn label(&self) -> String {
        match self {
            Op::Conv3x3 { conv, .. } => conv.name(),
            Op::BnRelu { conv, .. } => format!("{} bn+relu", conv.name()),
            Op::MaxPool { .. } => "maxpool".into(),
            Op::UpConv { level, .. } => format!("ups.{}", 2 * level),
            Op::Resize { .. } => "resize".into(),
            Op::Head { .. } => "final_conv".into(),
        }
    }
}

/// A tensor's shape, NCHW.
pub type Shape = [usize; 4];

/// The network unrolled for one input shape.
#[derive(Clone, Debug)]
pub struct Graph {
    pub shapes: Vec<Shape>,
    pub ops: Vec<Op>,
    pub input: TensorId,
    pub output: TensorId,
}

impl Graph {
    /// Unroll `spec` for an NCHW input. `fold_bn` = false keeps BatchNorm as its own op.
    /// For each tensor, the index of the last op reading it (0 if none): engines free a tensor
    /// after that op.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0usize; self.shapes.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.inputs() {
                last[t] = i;
            }
        }
        last
    }

    pub fn build(spec: &UNetSpec, input: Shape, fold_bn: bool) -> Result<Graph> {
        check_input(spec, input)?;
        let mut g = Graph {
            shapes: vec![input],
            ops: Vec::new(),
            input: 0,
            output: 0,
        };
        let n = input[0];
        let mut x = 0;
        let mut skips = Vec::new();
        for (l, &f) in spec.features.iter().enumerate() {
            x = g.double_conv(x, None, f, |i| ConvRef::Down(l, i), fold_bn);
            skips.push(x);
            let [_, c, h, w] = g.shapes[x];
            let out = g.tensor([n, c, h / 2, w / 2]);
            g.ops.push(Op::MaxPool { x, out });
            x = out;
        }
        let last = *spec.features.last().expect("at least one level");
        x = g.double_conv(x, None, 2 * last, ConvRef::Bottleneck, fold_bn);
        for (level, &f) in spec.features.iter().rev().enumerate() {
            let [_, _, h, w] = g.shapes[x];
            let out = g.tensor([n, f, 2 * h, 2 * w]);
            g.ops.push(Op::UpConv { x, out, level });
            x = out;
            let skip = skips.pop().expect("one skip per level");
            let [_, _, sh, sw] = g.shapes[skip];
            if (sh, sw) != (2 * h, 2 * w) {
                let out = g.tensor([n, f, sh, sw]);
                g.ops.push(Op::Resize { x, out });
                x = out;
            }
            x = g.double_conv(skip, Some(x), f, |i| ConvRef::Up(level, i), fold_bn);
        }
        let [_, _, h, w] = g.shapes[x];
        let out = g.tensor([n, spec.out_channels, h, w]);
        g.ops.push(Op::Head { x, out });
        g.output = out;
        Ok(g)
    }

    fn tensor(&mut self, shape: Shape) -> TensorId {
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    fn conv(
        &mut self,
        a: TensorId,
        b: Option<TensorId>,
        cout: usize,
        conv: ConvRef,
        fold: bool,
    ) -> TensorId {
        let [n, _, h, w] = self.shapes[a];
        let out = self.tensor([n, cout, h, w]);
        self.ops.push(Op::Conv3x3 {
            a,
            b,
            out,
            conv,
            fused: fold,
        });
        if fold {
            return out;
        }
        let bn = self.tensor([n, cout, h, w]);
        self.ops.push(Op::BnRelu {
            x: out,
            out: bn,
            conv,
        });
        bn
    }

    fn double_conv(
        &mut self,
        a: TensorId,
        b: Option<TensorId>,
        cout: usize,
        r: impl Fn(u8) -> ConvRef,
        fold: bool,
    ) -> TensorId {
        let x = self.conv(a, b, cout, r(1), fold);
        self.conv(x, None, cout, r(2), fold)
    }

    /// Multiply-adds × 2 of one op.
    pub fn flops(&self, op: &Op) -> u64 {
        let [n, c, h, w] = self.shapes[op.output()].map(|v| v as u64);
        let cin: u64 = op.inputs().iter().map(|&t| self.shapes[t][1] as u64).sum();
        match op {
            Op::Conv3x3 { .. } => 2 * 9 * cin * c * n * h * w,
            Op::UpConv { .. } => 2 * cin * c * n * h * w,
            Op::Head { .. } => 2 * cin * c * n * h * w,
            Op::BnRelu { .. } => 2 * n * c * h * w,
            Op::Resize { .. } => 6 * n * c * h * w,
            Op::MaxPool { .. } => 3 * n * c * h * w,
        }
    }

    pub fn total_flops(&self) -> u64 {
        self.ops.iter().map(|op| self.flops(op)).sum()
    }

    pub fn bytes(&self, t: TensorId) -> u64 {
        4 * self.shapes[t].iter().product::<usize>() as u64
    }

    /// Sum of every tensor's size: what a plan without reuse would allocate.
    pub fn total_tensor_bytes(&self) -> u64 {
        (0..self.shapes.len()).map(|t| self.bytes(t)).sum()
    }
}

/// The input must match the model's channels and survive `depth` halvings.
pub(crate) fn check_input(spec: &UNetSpec, s: Shape) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::BadInput {
            shape: s.to_vec(),
            reason,
        })
    };
    if s.contains(&0) {
        return bad("zero-sized input".into());
    }
    if s[1] != spec.in_channels {
        return bad(format!(
            "the model takes {} input channels, the input has {}",
            spec.in_channels, s[1]
        ));
    }
    let min = spec.min_input_side();
    if s[2] < min || s[3] < min {
        return bad(format!(
            "{}×{} is too small for a {}-level U-Net: each side needs at least {min} pixels",
            s[2],
            s[3],
            spec.depth()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_flops_match_the_model_card() {
        let spec = UNetSpec::new(3, 1, vec![64, 128, 256, 512]);
        let g = Graph::build(&spec, [1, 3, 256, 256], true).unwrap();
        let conv_flops: u64 = g
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Conv3x3 { .. } | Op::UpConv { .. } | Op::Head { .. }))
            .map(|op| g.flops(op))
            .sum();
        let gf = conv_flops as f64 / 1e9;
        assert!((96.0..96.6).contains(&gf), "{gf} GFLOP");
    }

    #[test]
    fn odd_sizes_insert_resizes() {
        let spec = UNetSpec::new(3, 2, vec![4, 8, 16]);
        let g = Graph::build(&spec, [2, 3, 37, 29], true).unwrap();
        let resizes = g
            .ops
            .iter()
            .filter(|o| matches!(o, Op::Resize { .. }))
            .count();
        assert!(resizes >= 2);
        assert_eq!(g.shapes[g.output], [2, 2, 37, 29]);
        let even = Graph::build(&spec, [1, 3, 32, 32], true).unwrap();
        assert_eq!(
            even.ops
                .iter()
                .filter(|o| matches!(o, Op::Resize { .. }))
                .count(),
            0
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let spec = UNetSpec::new(3, 1, vec![4, 8, 16]);
        let e = Graph::build(&spec, [1, 1, 32, 32], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 input channels"), "{e}");
        let e = Graph::build(&spec, [1, 3, 7, 32], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 8"), "{e}");
        assert!(Graph::build(&spec, [1, 3, 0, 32], true).is_err());
    }
}
