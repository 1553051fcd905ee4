//! A layer graph instantiated for one input shape: shape arithmetic folded to constants, every
//! runtime tensor's NCHW shape known, and only runtime layers left. This is what engines lower.

use std::sync::Arc;

use super::{Act, BinOp, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode};

pub type TensorId = usize;
pub type WeightId = usize;
pub type Shape = [usize; 4];

/// A constant a runtime layer reads (conv weights, a broadcast operand), float32.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Arc<Vec<f32>>,
}

/// A binary op's operand: a runtime tensor, or a constant broadcast to NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    T(TensorId),
    W(WeightId),
}

/// One runtime op. Every tensor is NCHW float32; `pad` is [top, left, bottom, right].
#[derive(Clone, Debug)]
pub enum Layer {
    /// `out = act(conv(x, w) + b + add)`; `w`: [cout, cin / groups, kh, kw].
    Conv {
        x: TensorId,
        out: TensorId,
        w: WeightId,
        b: Option<WeightId>,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        dil: [usize; 2],
        groups: usize,
        act: Act,
        add: Option<TensorId>,
    },
    /// `w`: [cin, cout / groups, kh, kw]; the output shape carries output_padding.
    ConvTranspose {
        x: TensorId,
        out: TensorId,
        w: WeightId,
        b: Option<WeightId>,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        dil: [usize; 2],
        groups: usize,
        act: Act,
    },
    /// Per-channel `act(x · scale + shift)`: a BatchNorm that did not fold into a conv.
    Affine {
        x: TensorId,
        out: TensorId,
        scale: Vec<f32>,
        shift: Vec<f32>,
        act: Act,
    },
    /// Per image and channel: `act((x − mean) / √(var + eps) · scale + bias)`.
    InstanceNorm {
        x: TensorId,
        out: TensorId,
        scale: Option<Vec<f32>>,
        bias: Option<Vec<f32>>,
        eps: f32,
        act: Act,
    },
    Act {
        x: TensorId,
        out: TensorId,
        act: Act,
    },
    Pool {
        x: TensorId,
        out: TensorId,
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        dil: [usize; 2],
    },
    /// Mean or max over channels (`channels`) and/or over H and W (`spatial`), dims kept.
    Reduce {
        x: TensorId,
        out: TensorId,
        kind: ReduceKind,
        channels: bool,
        spatial: bool,
    },
    /// `scale`: the (h, w) factors the coordinate transform divides by.
    Resize {
        x: TensorId,
        out: TensorId,
        mode: ResizeMode,
        coord: ResizeCoord,
        scale: [f32; 2],
    },
    /// Spatial padding (negative: cropping).
    Pad {
        x: TensorId,
        out: TensorId,
        mode: PadMode,
        pads: [i64; 4],
        value: f32,
    },
    /// On channels.
    Concat { xs: Vec<TensorId>, out: TensorId },
    /// NumPy broadcasting of two NCHW operands.
    Binary {
        a: Operand,
        b: Operand,
        out: TensorId,
        op: BinOp,
        act: Act,
    },
    /// Over channels.
    Softmax { x: TensorId, out: TensorId },
}

impl Layer {
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Layer::Conv { x, add, .. } => std::iter::once(*x).chain(*add).collect(),
            Layer::ConvTranspose { x, .. }
            | Layer::Affine { x, .. }
            | Layer::InstanceNorm { x, .. }
            | Layer::Act { x, .. }
            | Layer::Pool { x, .. }
            | Layer::Reduce { x, .. }
            | Layer::Resize { x, .. }
            | Layer::Pad { x, .. }
            | Layer::Softmax { x, .. } => vec![*x],
            Layer::Concat { xs, .. } => xs.clone(),
            Layer::Binary { a, b, .. } => [a, b]
                .iter()
                .filter_map(|o| match o {
                    Operand::T(t) => Some(*t),
                    Operand::W(_) => None,
                })
                .collect(),
        }
    }

    pub fn output(&self) -> TensorId {
        match self {
            Layer::Conv { out, .. }
            | Layer::ConvTranspose { out, .. }
            | Layer::Affine { out, .. }
            | Layer::InstanceNorm { out, .. }
            | Layer::Act { out, .. }
            | Layer::Pool { out, .. }
            | Layer::Reduce { out, .. }
            | Layer::Resize { out, .. }
            | Layer::Pad { out, .. }
            | Layer::Concat { out, .. }
            | Layer::Binary { out, .. }
            | Layer::Softmax { out, .. } => *out,
        }
    }

    /// The op kind, with a fused epilogue: `conv3x3+relu`, `conv1x1s2+add+relu`, `resize`.
    pub fn kind(&self) -> String {
        let with = |s: String, act: &Act| {
            if matches!(act, Act::None) {
                s
            } else {
                format!("{s}+{}", act.name())
            }
        };
        match self {
            Layer::Conv {
                kernel,
                stride,
                groups,
                act,
                add,
                dil,
                ..
            } => {
                let mut s = format!("conv{}x{}", kernel[0], kernel[1]);
                if stride != &[1, 1] {
                    s += &format!("s{}", stride[0]);
                }
                if dil != &[1, 1] {
                    s += &format!("d{}", dil[0]);
                }
                if *groups > 1 {
                    s += &format!("g{groups}");
                }
                if add.is_some() {
                    s += "+add";
                }
                with(s, act)
            }
            Layer::ConvTranspose {
                kernel,
                stride,
                act,
                ..
            } => with(
                format!("convT{}x{}s{}", kernel[0], kernel[1], stride[0]),
                act,
            ),
            Layer::Affine { act, .. } => with("batchnorm".into(), act),
            Layer::InstanceNorm { act, .. } => with("instancenorm".into(), act),
            Layer::Act { act, .. } => act.name().to_string(),
            Layer::Pool { kind, kernel, .. } => match kind {
                PoolKind::Max => format!("maxpool{}x{}", kernel[0], kernel[1]),
                PoolKind::Avg { .. } => format!("avgpool{}x{}", kernel[0], kernel[1]),
            },
            Layer::Reduce {
                kind,
                channels,
                spatial,
                ..
            } => format!(
                "reduce_{}({}{})",
                if *kind == ReduceKind::Mean {
                    "mean"
                } else {
                    "max"
                },
                if *channels { "c" } else { "" },
                if *spatial { "hw" } else { "" }
            ),
            Layer::Resize { mode, .. } => match mode {
                ResizeMode::Linear => "resize_linear".into(),
                ResizeMode::Nearest(_) => "resize_nearest".into(),
            },
            Layer::Pad { .. } => "pad".into(),
            Layer::Concat { .. } => "concat".into(),
            Layer::Binary { op, act, .. } => with(format!("{op:?}").to_lowercase(), act),
            Layer::Softmax { .. } => "softmax".into(),
        }
    }
}

/// A graph for one input shape: runtime layers in execution order, NCHW shapes per tensor.
#[derive(Clone, Debug)]
pub struct Shaped {
    pub shapes: Vec<Shape>,
    pub layers: Vec<Layer>,
    /// The graph node each layer came from (its first, where ops fused).
    pub names: Vec<String>,
    pub weights: Vec<Weight>,
    pub input: TensorId,
    pub output: TensorId,
}

impl Shaped {
    /// For each tensor, the index of the last layer reading it (the output: `layers.len()`).
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0usize; self.shapes.len()];
        for (i, l) in self.layers.iter().enumerate() {
            for t in l.inputs() {
                last[t] = i;
            }
        }
        last[self.output] = self.layers.len();
        last
    }

    /// How many layers read each tensor (the output counts once more).
    pub fn readers(&self) -> Vec<usize> {
        let mut n = vec![0usize; self.shapes.len()];
        for l in &self.layers {
            for t in l.inputs() {
                n[t] += 1;
            }
        }
        n[self.output] += 1;
        n
    }

    /// The most float32 activation bytes alive at once when each tensor lives from the layer
    /// that writes it to its last reader (what an engine without arena padding needs).
    pub fn peak_live_bytes(&self) -> u64 {
        let last = self.last_uses();
        let mut born = vec![0usize; self.shapes.len()];
        for (i, l) in self.layers.iter().enumerate() {
            born[l.output()] = i;
        }
        (0..self.layers.len())
            .map(|i| {
                (0..self.shapes.len())
                    .filter(|&t| born[t] <= i && last[t] >= i)
                    .map(|t| 4 * self.numel(t) as u64)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    pub fn numel(&self, t: TensorId) -> usize {
        self.shapes[t].iter().product()
    }

    /// Multiply-adds × 2 of one layer (other layers: one op per output value, roughly).
    pub fn flops(&self, l: &Layer) -> u64 {
        let out = self.numel(l.output()) as u64;
        match l {
            Layer::Conv { w, .. } | Layer::ConvTranspose { w, .. } => {
                let ws = &self.weights[*w].shape;
                let per = (ws[1] * ws[2] * ws[3]) as u64;
                match l {
                    Layer::Conv { .. } => 2 * out * per,
                    _ => 2 * self.numel(l.inputs()[0]) as u64 * per,
                }
            }
            Layer::Pool { kernel, .. } => out * (kernel[0] * kernel[1]) as u64,
            Layer::Reduce { x, .. } => self.numel(*x) as u64,
            Layer::Resize { .. } => 6 * out,
            Layer::InstanceNorm { .. } | Layer::Softmax { .. } => 4 * out,
            _ => out,
        }
    }

    /// Parameters of one layer (its weights and bias).
    pub fn params(&self, l: &Layer) -> usize {
        let w = |id: &WeightId| self.weights[*id].data.len();
        match l {
            Layer::Conv { w: wi, b, .. } | Layer::ConvTranspose { w: wi, b, .. } => {
                w(wi) + b.as_ref().map_or(0, w)
            }
            Layer::Affine { scale, .. } => 2 * scale.len(),
            Layer::InstanceNorm { scale, bias, .. } => {
                scale.as_ref().map_or(0, Vec::len) + bias.as_ref().map_or(0, Vec::len)
            }
            Layer::Binary { a, b, .. } => [a, b]
                .iter()
                .map(|o| match o {
                    Operand::W(id) => w(id),
                    Operand::T(_) => 0,
                })
                .sum(),
            _ => 0,
        }
    }

    pub fn total_flops(&self) -> u64 {
        self.layers.iter().map(|l| self.flops(l)).sum()
    }

    /// The receptive field's radius in input pixels (`None`: a layer mixes every pixel or is
    /// not shift-equivariant, so tiles cannot reproduce the whole image's result).
    pub fn receptive_radius(&self) -> Option<usize> {
        self.tile_geometry().map(|(r, _)| r)
    }

    /// What overlap-tile inference needs: the receptive radius, and the alignment of tile
    /// windows (the largest stride of any tensor against the input, a power of two) so that every
    /// pool and strided conv groups the same pixels in a window as on the whole image. `None`
    /// where tiles cannot reproduce the whole image's result.
    pub fn tile_geometry(&self) -> Option<(usize, usize)> {
        // Per tensor: (radius in input pixels, input pixels per tensor pixel).
        let mut rf: Vec<Option<(f64, f64)>> = vec![None; self.shapes.len()];
        rf[self.input] = Some((0.0, 1.0));
        for l in &self.layers {
            let ins: Vec<(f64, f64)> = l
                .inputs()
                .iter()
                .map(|&t| rf[t])
                .collect::<Option<Vec<_>>>()?;
            let (r, j) = ins
                .iter()
                .fold((0.0f64, 0.0f64), |(r, j), &(ri, ji)| (r.max(ri), j.max(ji)));
            let j = if j == 0.0 { 1.0 } else { j };
            let reach = |k: usize, d: usize, p: usize| {
                let span = (k - 1) * d;
                p.max(span.saturating_sub(p)) as f64
            };
            let next = match l {
                Layer::Conv {
                    kernel,
                    stride,
                    pad,
                    dil,
                    ..
                }
                | Layer::Pool {
                    kernel,
                    stride,
                    pad,
                    dil,
                    ..
                } => {
                    let e = reach(kernel[0], dil[0], pad[0]).max(reach(kernel[1], dil[1], pad[1]));
                    (r + e * j, j * stride[0].max(stride[1]) as f64)
                }
                Layer::ConvTranspose { kernel, stride, .. } => {
                    let jn = j / stride[0].max(1) as f64;
                    (r + (kernel[0].max(kernel[1]) as f64) * jn, jn)
                }
                Layer::Resize { x, out, coord, .. } => {
                    let (si, so) = (self.shapes[*x], self.shapes[*out]);
                    if *coord == ResizeCoord::AlignCorners && (si[2] != so[2] || si[3] != so[3]) {
                        return None;
                    }
                    let jn = j * (si[2] as f64 / so[2] as f64).max(si[3] as f64 / so[3] as f64);
                    (r + 2.0 * j, jn)
                }
                Layer::Reduce { spatial: true, .. } => return None,
                Layer::InstanceNorm { .. } => return None,
                Layer::Pad { pads, .. } => (
                    r + pads.iter().map(|p| p.unsigned_abs()).max().unwrap_or(0) as f64 * j,
                    j,
                ),
                _ => (r, j),
            };
            rf[l.output()] = Some(next);
        }
        let jump = rf.iter().flatten().map(|&(_, j)| j).fold(1.0f64, f64::max);
        let align = (jump.ceil() as usize).next_power_of_two();
        rf[self.output].map(|(r, _)| (r.ceil() as usize, align))
    }
}

/// A conv's or transposed conv's geometry, as every engine's lowering reads it: `pad` is
/// [top, left, bottom, right].
#[derive(Clone, Copy, Debug)]
pub struct Geom {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub dil: [usize; 2],
    pub groups: usize,
}

impl Geom {
    /// A conv or transposed conv layer's geometry.
    pub fn of(l: &Layer) -> Option<Geom> {
        match *l {
            Layer::Conv {
                kernel,
                stride,
                pad,
                dil,
                groups,
                ..
            }
            | Layer::ConvTranspose {
                kernel,
                stride,
                pad,
                dil,
                groups,
                ..
            } => Some(Geom {
                kernel,
                stride,
                pad,
                dil,
                groups,
            }),
            _ => None,
        }
    }
}
