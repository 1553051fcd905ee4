//! The reference U-Net (a safetensors `state_dict`, [`UNet`]) as a layer graph: the ops its
//! PyTorch `forward` runs, named by its state_dict keys. The decoder's resize to the skip's size
//! is written as an ONNX export writes it (`Shape` of both tensors → `Concat` → `Resize` with
//! sizes), so it folds away where the sizes already match.

use super::ops::Window;
use super::{Act, Const, LayerGraph, Op, ResizeCoord, ResizeMode, ValueId};
use crate::model::{BatchNorm, ConvWeights, UNet};

/// The graph of a reference U-Net.
pub fn from_unet(m: &UNet) -> LayerGraph {
    let spec = &m.spec;
    let mut g = LayerGraph {
        source: "reference U-Net (safetensors)".into(),
        input_mean: spec.input_mean.clone(),
        input_std: spec.input_std.clone(),
        input_dims: [None, Some(spec.in_channels), None, None],
        ..Default::default()
    };
    g.input = g.value("input", None);
    let eps = spec.bn_eps;
    let mut x = g.input;
    let mut skips = Vec::new();
    for (l, dc) in m.downs.iter().enumerate() {
        x = double_conv(&mut g, x, dc, &format!("downs.{l}"), eps);
        skips.push(x);
        let out = g.value(format!("downs.{l}.pool"), None);
        let win = Window {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            ..Default::default()
        };
        g.node(
            format!("pool{l}"),
            Op::Pool {
                kind: super::PoolKind::Max,
                win,
            },
            vec![Some(x)],
            vec![out],
        );
        x = out;
    }
    x = double_conv(&mut g, x, &m.bottleneck, "bottleneck", eps);
    for (k, up) in m.ups.iter().enumerate() {
        let name = format!("ups.{}", 2 * k);
        let w = weight(&mut g, &format!("{name}.weight"), &up.up);
        let b = bias(&mut g, &format!("{name}.bias"), &up.up);
        let out = g.value(&name, None);
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
        g.node(&name, op, vec![Some(x), Some(w), b], vec![out]);
        x = out;
        let skip = skips.pop().expect("one skip per level");
        // sizes = Shape(x)[0:2] ++ Shape(skip)[2:4]
        let nc = g.value(format!("{name}.shape_nc"), None);
        g.node(
            format!("{name}.shape_nc"),
            Op::Shape {
                start: 0,
                end: Some(2),
            },
            vec![Some(x)],
            vec![nc],
        );
        let hw = g.value(format!("{name}.shape_hw"), None);
        g.node(
            format!("{name}.shape_hw"),
            Op::Shape {
                start: 2,
                end: None,
            },
            vec![Some(skip)],
            vec![hw],
        );
        let sizes = g.value(format!("{name}.sizes"), None);
        g.node(
            format!("{name}.sizes"),
            Op::Concat { axis: 0 },
            vec![Some(nc), Some(hw)],
            vec![sizes],
        );
        let resized = g.value(format!("{name}.resized"), None);
        let op = Op::Resize {
            mode: ResizeMode::Linear,
            coord: ResizeCoord::AlignCorners,
            scales: None,
        };
        g.node(
            format!("{name}.resize"),
            op,
            vec![Some(x), None, None, Some(sizes)],
            vec![resized],
        );
        let cat = g.value(format!("{name}.cat"), None);
        g.node(
            format!("{name}.cat"),
            Op::Concat { axis: 1 },
            vec![Some(skip), Some(resized)],
            vec![cat],
        );
        x = double_conv(&mut g, cat, &up.conv, &format!("ups.{}", 2 * k + 1), eps);
    }
    let w = weight(&mut g, "final_conv.weight", &m.head);
    let b = bias(&mut g, "final_conv.bias", &m.head);
    let out = g.value("logits", None);
    g.node(
        "final_conv",
        Op::Conv {
            win: Window::default(),
            groups: 1,
        },
        vec![Some(x), Some(w), b],
        vec![out],
    );
    g.output = out;
    g
}

fn weight(g: &mut LayerGraph, key: &str, c: &ConvWeights) -> ValueId {
    g.value(key, Some(Const::f32(c.shape.to_vec(), c.weight.clone())))
}

fn bias(g: &mut LayerGraph, key: &str, c: &ConvWeights) -> Option<ValueId> {
    c.bias
        .as_ref()
        .map(|b| g.value(key, Some(Const::f32(vec![b.len()], b.clone()))))
}

fn conv_bn_relu(
    g: &mut LayerGraph,
    x: ValueId,
    c: &ConvWeights,
    bn: &BatchNorm,
    conv: &str,
    bnk: &str,
    eps: f32,
) -> ValueId {
    let w = weight(g, &format!("{conv}.weight"), c);
    let out = g.value(conv, None);
    let win = Window {
        pads: vec![1, 1, 1, 1],
        ..Default::default()
    };
    g.node(
        conv,
        Op::Conv { win, groups: 1 },
        vec![Some(x), Some(w), None],
        vec![out],
    );
    let n = bn.gamma.len();
    let p = |g: &mut LayerGraph, k: &str, v: &[f32]| {
        Some(g.value(format!("{bnk}.{k}"), Some(Const::f32(vec![n], v.to_vec()))))
    };
    let ins = vec![
        Some(out),
        p(g, "weight", &bn.gamma),
        p(g, "bias", &bn.beta),
        p(g, "running_mean", &bn.mean),
        p(g, "running_var", &bn.var),
    ];
    let y = g.value(bnk, None);
    g.node(bnk, Op::BatchNorm { eps }, ins, vec![y]);
    let r = g.value(format!("{bnk}.relu"), None);
    g.node(
        format!("{bnk}.relu"),
        Op::Act(Act::Relu),
        vec![Some(y)],
        vec![r],
    );
    r
}

fn double_conv(
    g: &mut LayerGraph,
    x: ValueId,
    dc: &crate::model::DoubleConv,
    prefix: &str,
    eps: f32,
) -> ValueId {
    let y = conv_bn_relu(
        g,
        x,
        &dc.conv1,
        &dc.bn1,
        &format!("{prefix}.conv1"),
        &format!("{prefix}.bn1"),
        eps,
    );
    conv_bn_relu(
        g,
        y,
        &dc.conv2,
        &dc.bn2,
        &format!("{prefix}.conv2"),
        &format!("{prefix}.bn2"),
        eps,
    )
}
