//! One ONNX node → a typed [`Op`]: attributes read with their ONNX defaults and checked, so an
//! unsupported op, mode or attribute is named at import, before anything runs.

use std::collections::HashMap;

use super::proto::{AttributeProto, NodeProto};
use super::{bad, unsupported};
use crate::graph::ops::{NearestRound, Window};
use crate::graph::{Act, BinOp, Op, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode};
use crate::Result;

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
pub(super) fn convert(n: &NodeProto, label: &str, opset: i64) -> Result<Op> {
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
