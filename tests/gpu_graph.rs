//! The layer-graph GPU engine (`gpu::graph`): every layer kind and conv geometry against the
//! CPU layer (`cpu::graph::run_layer`) applied to the GPU's own inputs (a plan that keeps every
//! tensor, so errors cannot compound), within 1e-5 · max|ref|, with every subgroup conv variant
//! proven to run where the adapter has fixed-size subgroups; and every ONNX fixture family, both
//! exports, end to end against PyTorch's output within 1e-4 · max|ref|, one submit per inference.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::{assert_close, random_tensor};
use wunet::cpu::graph::run_layer;
use wunet::gpu::graph::{GpuGraphModel, GpuGraphOptions, GraphKernel};
use wunet::graph::ops::NearestRound;
use wunet::graph::{
    Act, BinOp, Layer, LayerGraph, Operand, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode,
    Shaped, Weight,
};
use wunet::io::read_npy;

/// Builds a `Shaped` graph layer by layer, with random weights.
struct Builder {
    g: Shaped,
    seed: u64,
}

impl Builder {
    fn new(input: [usize; 4]) -> Self {
        Builder {
            g: Shaped {
                shapes: vec![input],
                layers: vec![],
                names: vec![],
                weights: vec![],
                input: 0,
                output: 0,
            },
            seed: 7,
        }
    }

    fn tensor(&mut self, s: [usize; 4]) -> usize {
        self.g.shapes.push(s);
        self.g.shapes.len() - 1
    }

    fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        self.seed += 1;
        random_tensor([1, 1, 1, n], self.seed)
            .data
            .iter()
            .map(|v| lo + (v + 1.0) * 0.5 * (hi - lo))
            .collect()
    }

    fn weight(&mut self, shape: Vec<usize>, lo: f32, hi: f32) -> usize {
        let data = self.values(shape.iter().product(), lo, hi);
        self.g.weights.push(Weight {
            name: format!("w{}", self.g.weights.len()),
            shape,
            data: Arc::new(data),
        });
        self.g.weights.len() - 1
    }

    fn push(&mut self, l: Layer) -> usize {
        let o = l.output();
        self.g.names.push(format!("l{}", self.g.layers.len()));
        self.g.layers.push(l);
        self.g.output = o;
        o
    }

    fn shape(&self, t: usize) -> [usize; 4] {
        self.g.shapes[t]
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: usize,
        cout: usize,
        k: [usize; 2],
        s: [usize; 2],
        pad: [usize; 4],
        dil: [usize; 2],
        groups: usize,
        act: Act,
        add: Option<usize>,
    ) -> usize {
        let [n, cin, h, w] = self.shape(x);
        let oh = (h + pad[0] + pad[2] - dil[0] * (k[0] - 1) - 1) / s[0] + 1;
        let ow = (w + pad[1] + pad[3] - dil[1] * (k[1] - 1) - 1) / s[1] + 1;
        let out = self.tensor([n, cout, oh, ow]);
        let wi = self.weight(vec![cout, cin / groups, k[0], k[1]], -0.5, 0.5);
        let b = Some(self.weight(vec![cout], -0.5, 0.5));
        self.push(Layer::Conv {
            x,
            out,
            w: wi,
            b,
            kernel: k,
            stride: s,
            pad,
            dil,
            groups,
            act,
            add,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_t(
        &mut self,
        x: usize,
        cout: usize,
        k: [usize; 2],
        s: [usize; 2],
        pad: [usize; 4],
        dil: [usize; 2],
        op: usize,
        groups: usize,
        act: Act,
    ) -> usize {
        let [n, cin, h, w] = self.shape(x);
        let oh = (h - 1) * s[0] + dil[0] * (k[0] - 1) + 1 + op - pad[0] - pad[2];
        let ow = (w - 1) * s[1] + dil[1] * (k[1] - 1) + 1 + op - pad[1] - pad[3];
        let out = self.tensor([n, cout, oh, ow]);
        let wi = self.weight(vec![cin, cout / groups, k[0], k[1]], -0.5, 0.5);
        let b = Some(self.weight(vec![cout], -0.5, 0.5));
        self.push(Layer::ConvTranspose {
            x,
            out,
            w: wi,
            b,
            kernel: k,
            stride: s,
            pad,
            dil,
            groups,
            act,
        })
    }

    fn same(&mut self, x: usize) -> usize {
        let s = self.shape(x);
        self.tensor(s)
    }
}

/// Runs `g` on the GPU keeping every tensor; compares each layer with the CPU layer on the
/// GPU's inputs. Returns the layer kinds and the kernels seen.
fn check_layers(
    gpu: &wunet::gpu::Gpu,
    what: &str,
    g: Shaped,
    x: &wunet::Tensor,
) -> (Vec<String>, BTreeSet<GraphKernel>) {
    let model = GpuGraphModel::new(
        &gpu.device,
        &gpu.queue,
        LayerGraph::default(),
        GpuGraphOptions {
            fuse: false,
            keep_intermediates: true,
        },
    )
    .unwrap();
    let plan = model.plan_shaped(g).unwrap();
    let got = plan.run_all(x).unwrap();
    assert_eq!(plan.submit_count(), 1);
    let kernels: BTreeSet<GraphKernel> = plan.steps().iter().map(|s| s.kernel).collect();
    let g = plan.shaped();
    let mut kinds = Vec::new();
    for (i, l) in g.layers.iter().enumerate() {
        let args: Vec<&wunet::Tensor> = l.inputs().iter().map(|&t| &got[t]).collect();
        let want = run_layer(g, l, &args);
        assert_close(
            &format!("{what}: layer {i} {}", l.kind()),
            &got[l.output()],
            &want,
            1e-5,
        );
        kinds.push(
            format!("{l:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string(),
        );
    }
    (kinds, kernels)
}

#[test]
fn every_layer_kind_and_conv_geometry_matches_the_cpu_layer() {
    let Some(gpu) = common::gpu("every_layer_kind_and_conv_geometry_matches_the_cpu_layer") else {
        return;
    };
    let input = [2, 5, 13, 11];
    let mut b = Builder::new(input);
    let x = 0;
    let slopes6 = b.values(6, 0.05, 0.3);
    // convs: k3 s1 p1, k1, k7 s2 asymmetric pads, dilation 2, groups 2, depthwise (×1, ×2),
    // residual add, every activation
    let c3 = b.conv(x, 6, [3, 3], [1, 1], [1; 4], [1, 1], 1, Act::Relu, None);
    let c1 = b.conv(
        c3,
        7,
        [1, 1],
        [1, 1],
        [0; 4],
        [1, 1],
        1,
        Act::LeakyRelu(0.1),
        None,
    );
    b.conv(
        x,
        9,
        [7, 7],
        [2, 2],
        [3, 2, 1, 3],
        [1, 1],
        1,
        Act::Sigmoid,
        None,
    );
    b.conv(c3, 6, [3, 3], [1, 1], [2; 4], [2, 2], 1, Act::Tanh, None);
    b.conv(
        c3,
        10,
        [3, 3],
        [2, 1],
        [1, 0, 2, 1],
        [1, 1],
        2,
        Act::Clip(-0.2, 0.4),
        None,
    );
    b.conv(
        c3,
        6,
        [3, 3],
        [2, 2],
        [1; 4],
        [1, 1],
        6,
        Act::PRelu(slopes6.clone()),
        None,
    );
    b.conv(
        c3,
        12,
        [5, 3],
        [1, 1],
        [2, 1, 2, 1],
        [1, 2],
        6,
        Act::None,
        None,
    );
    b.conv(
        c1,
        7,
        [3, 3],
        [1, 1],
        [1; 4],
        [1, 1],
        1,
        Act::PRelu(vec![0.2]),
        Some(c1),
    );
    b.conv(
        c3,
        3,
        [2, 4],
        [1, 3],
        [0, 1, 1, 0],
        [1, 1],
        1,
        Act::None,
        None,
    );
    // transposed: k2 s2, k3 s2 p1 op1, groups 2 with dilation 2
    b.conv_t(c3, 5, [2, 2], [2, 2], [0; 4], [1, 1], 0, 1, Act::Relu);
    b.conv_t(c3, 7, [3, 3], [2, 2], [1; 4], [1, 1], 1, 1, Act::None);
    b.conv_t(c3, 4, [3, 3], [1, 2], [1, 0, 0, 1], [2, 1], 0, 2, Act::Tanh);
    // element-wise
    let scale = b.values(6, 0.5, 1.5);
    let shift = b.values(6, -0.5, 0.5);
    let o = b.same(c3);
    b.push(Layer::Affine {
        x: c3,
        out: o,
        scale,
        shift,
        act: Act::LeakyRelu(0.2),
    });
    for act in [
        Act::Relu,
        Act::Sigmoid,
        Act::Tanh,
        Act::Clip(-0.1, 0.3),
        Act::PRelu(b.values(5, 0.05, 0.3)),
        Act::PRelu(vec![0.25]),
    ] {
        let o = b.same(x);
        b.push(Layer::Act { x, out: o, act });
    }
    let o = b.same(c3);
    let (sc, bi) = (b.values(6, 0.5, 1.5), b.values(6, -0.5, 0.5));
    b.push(Layer::InstanceNorm {
        x: c3,
        out: o,
        scale: Some(sc),
        bias: Some(bi),
        eps: 1e-5,
        act: Act::Relu,
    });
    let o = b.same(x);
    b.push(Layer::InstanceNorm {
        x,
        out: o,
        scale: None,
        bias: None,
        eps: 1e-3,
        act: Act::None,
    });
    // pools
    let mut pooled = 0;
    for (kind, k, s, pad, dil) in [
        (PoolKind::Max, [2, 2], [2, 2], [0; 4], [1, 1]),
        (PoolKind::Max, [3, 3], [2, 2], [1; 4], [1, 1]),
        (
            PoolKind::Avg {
                count_include_pad: true,
            },
            [3, 3],
            [2, 2],
            [1, 1, 1, 1],
            [1, 1],
        ),
        (
            PoolKind::Avg {
                count_include_pad: false,
            },
            [3, 2],
            [1, 2],
            [1, 0, 1, 1],
            [1, 1],
        ),
        (PoolKind::Max, [2, 3], [1, 1], [0; 4], [2, 2]),
    ] {
        let [n, c, h, w] = b.shape(x);
        let oh = (h + pad[0] + pad[2] - dil[0] * (k[0] - 1) - 1) / s[0] + 1;
        let ow = (w + pad[1] + pad[3] - dil[1] * (k[1] - 1) - 1) / s[1] + 1;
        let o = b.tensor([n, c, oh, ow]);
        b.push(Layer::Pool {
            x,
            out: o,
            kind,
            kernel: k,
            stride: s,
            pad,
            dil,
        });
        if pooled == 0 {
            pooled = o;
        }
    }
    // short planes (the first pool's 6 × 5): reduced by one invocation each
    let [n, c, _, _] = b.shape(pooled);
    let o = b.tensor([n, c, 1, 1]);
    b.push(Layer::Reduce {
        x: pooled,
        out: o,
        kind: ReduceKind::Max,
        channels: false,
        spatial: true,
    });
    // reductions
    let mut reduced = 0;
    for (kind, channels, spatial) in [
        (ReduceKind::Mean, true, false),
        (ReduceKind::Max, true, false),
        (ReduceKind::Mean, false, true),
        (ReduceKind::Max, false, true),
        (ReduceKind::Mean, true, true),
    ] {
        let [n, c, h, w] = b.shape(x);
        let s = [
            n,
            if channels { 1 } else { c },
            if spatial { 1 } else { h },
            if spatial { 1 } else { w },
        ];
        let o = b.tensor(s);
        b.push(Layer::Reduce {
            x,
            out: o,
            kind,
            channels,
            spatial,
        });
        if channels && !spatial && kind == ReduceKind::Mean {
            reduced = o;
        }
    }
    // resize: every rounding and coordinate mode
    let [n, c, h, w] = b.shape(x);
    for (mode, coord, out_hw) in [
        (
            ResizeMode::Nearest(NearestRound::Floor),
            ResizeCoord::Asymmetric,
            [2 * h, 2 * w],
        ),
        (ResizeMode::Linear, ResizeCoord::HalfPixel, [2 * h, 2 * w]),
        (
            ResizeMode::Linear,
            ResizeCoord::AlignCorners,
            [2 * h + 1, 3 * w - 2],
        ),
        (
            ResizeMode::Linear,
            ResizeCoord::PytorchHalfPixel,
            [h + 7, 1],
        ),
        (
            ResizeMode::Nearest(NearestRound::RoundPreferFloor),
            ResizeCoord::HalfPixel,
            [3 * h / 2, 3 * w / 2],
        ),
        (
            ResizeMode::Nearest(NearestRound::RoundPreferCeil),
            ResizeCoord::PytorchHalfPixel,
            [2 * h, 2 * w],
        ),
        (
            ResizeMode::Nearest(NearestRound::Ceil),
            ResizeCoord::AlignCorners,
            [h + 3, w - 4],
        ),
        (
            ResizeMode::Nearest(NearestRound::Floor),
            ResizeCoord::HalfPixel,
            [h / 2, w / 2],
        ),
    ] {
        let o = b.tensor([n, c, out_hw[0], out_hw[1]]);
        let scale = [out_hw[0] as f32 / h as f32, out_hw[1] as f32 / w as f32];
        b.push(Layer::Resize {
            x,
            out: o,
            mode,
            coord,
            scale,
        });
    }
    // ties: half_pixel at scale 1/4 puts every source coordinate at 4·o + 1.5, where round
    // half down, round half up and round half to even all differ
    for r in [
        NearestRound::RoundPreferFloor,
        NearestRound::RoundPreferCeil,
    ] {
        let o = b.tensor([n, c, h / 4, w / 4]);
        b.push(Layer::Resize {
            x,
            out: o,
            mode: ResizeMode::Nearest(r),
            coord: ResizeCoord::HalfPixel,
            scale: [0.25, 0.25],
        });
    }
    // pad and crop
    for (mode, pads) in [
        (PadMode::Constant, [1i64, 2, 3, 0]),
        (PadMode::Edge, [2, 1, 0, 3]),
        (PadMode::Reflect, [2, 3, 1, 2]),
        (PadMode::Constant, [-1, 2, -2, -3]),
    ] {
        let oh = (h as i64 + pads[0] + pads[2]) as usize;
        let ow = (w as i64 + pads[1] + pads[3]) as usize;
        let o = b.tensor([n, c, oh, ow]);
        b.push(Layer::Pad {
            x,
            out: o,
            mode,
            pads,
            value: 0.75,
        });
    }
    // concat of three
    let o = b.tensor([n, 5 + 6 + 7, h, w]);
    b.push(Layer::Concat {
        xs: vec![x, c3, c1],
        out: o,
    });
    // binary: same shapes, constant per channel, runtime broadcast, scalar constant
    let o = b.same(c3);
    b.push(Layer::Binary {
        a: Operand::T(c3),
        b: Operand::T(c3),
        out: o,
        op: BinOp::Add,
        act: Act::None,
    });
    let wc = b.weight(vec![1, 5, 1, 1], 0.5, 1.5);
    let o = b.same(x);
    b.push(Layer::Binary {
        a: Operand::T(x),
        b: Operand::W(wc),
        out: o,
        op: BinOp::Mul,
        act: Act::Relu,
    });
    let o = b.same(x);
    b.push(Layer::Binary {
        a: Operand::T(reduced),
        b: Operand::T(x),
        out: o,
        op: BinOp::Sub,
        act: Act::None,
    });
    let ws = b.weight(vec![1, 1, 1, 1], 1.5, 2.5);
    let o = b.same(x);
    b.push(Layer::Binary {
        a: Operand::T(x),
        b: Operand::W(ws),
        out: o,
        op: BinOp::Div,
        act: Act::Sigmoid,
    });
    let wr = b.weight(vec![1, 1, h, 1], 0.5, 1.5);
    let o = b.same(x);
    let act = Act::PRelu(b.values(5, 0.1, 0.2));
    b.push(Layer::Binary {
        a: Operand::W(wr),
        b: Operand::T(x),
        out: o,
        op: BinOp::Sub,
        act,
    });
    // softmax
    let o = b.same(c3);
    b.push(Layer::Softmax { x: c3, out: o });

    let xin = random_tensor(input, 3);
    let (kinds, kernels) = check_layers(gpu, "battery", b.g, &xin);
    let seen: BTreeSet<String> = kinds.into_iter().collect();
    for k in GraphKernel::ALL {
        assert!(kernels.contains(&k), "kernel {k:?} never ran");
    }
    for k in [
        "Conv",
        "ConvTranspose",
        "Affine",
        "InstanceNorm",
        "Act",
        "Pool",
        "Reduce",
        "Resize",
        "Pad",
        "Concat",
        "Binary",
        "Softmax",
    ] {
        assert!(seen.contains(k), "{k} never ran: {seen:?}");
    }
}

/// The subgroup conv kernels (`Conv3x3Sg`, `Conv2dSg`, `ConvTranspose2dSg`, every XB) against
/// the CPU layer: 3×3
/// stride-1 layers at the shapes that pick each mode (columns, lane pairs, patch rows of 4 and
/// 8), and strided, dilated, 1×1, 7×7 and non-square kernels at widths that pick each XB of the
/// general kernel; batch 2, odd heights, channels not a multiple of 4 (nor of 8), residual adds
/// and activations; transposed convs whose kernel is their stride. Every kernel the per-layer
/// choice predicts for the adapter's subgroup size must have run; at 8 lanes (lavapipe) that is
/// every one of `GraphKernel::SUBGROUP`.
#[test]
fn subgroup_conv_kernels_match_the_cpu_layer() {
    let Some(gpu) = common::gpu("subgroup_conv_kernels_match_the_cpu_layer") else {
        return;
    };
    let sg = GpuGraphModel::new(
        &gpu.device,
        &gpu.queue,
        LayerGraph::default(),
        GpuGraphOptions::default(),
    )
    .unwrap()
    .subgroup_size();
    let Some(sg) = sg else {
        eprintln!(
            "SKIPPED subgroup_conv_kernels_match_the_cpu_layer: the adapter has no fixed subgroup \
             size (or WUNET_SUBGROUPS=0); the plain kernels are checked by the battery"
        );
        return;
    };
    let mut seen = BTreeSet::new();
    let mut expected = BTreeSet::new();
    // (h, w): columns (h ≥ SG), lane pairs, patch rows of 4 and 8 (h < SG / 2), 17 rows
    for (i, [h, w]) in [
        [9, 4],
        [13, 12],
        [3, 20],
        [3, 36],
        [17, 4],
        [5, 8],
        [7, 16],
        [4, 32],
        [3, 64],
    ]
    .into_iter()
    .enumerate()
    {
        let input = [2, 5, h, w];
        let mut b = Builder::new(input);
        let slopes = b.values(11, 0.05, 0.3);
        let c = b.conv(0, 11, [3, 3], [1, 1], [1; 4], [1, 1], 1, Act::Relu, None);
        b.conv(c, 3, [3, 3], [1, 1], [1; 4], [1, 1], 1, Act::None, None);
        b.conv(
            c,
            11,
            [3, 3],
            [1, 1],
            [1; 4],
            [1, 1],
            1,
            Act::PRelu(slopes),
            Some(c),
        );
        // the general kernel: stride 2 (the stride-2 kernel where rows are a multiple of 8;
        // with a residual, and padded only at the top and left), stride 3, 7×7 asymmetric, 1×1,
        // dilation, 5×3
        let s2 = b.conv(0, 9, [3, 3], [2, 2], [1; 4], [1, 1], 1, Act::Relu, None);
        b.conv(0, 9, [3, 3], [2, 2], [1; 4], [1, 1], 1, Act::Tanh, Some(s2));
        b.conv(
            0,
            10,
            [3, 3],
            [2, 2],
            [1, 1, 0, 0],
            [1, 1],
            1,
            Act::None,
            None,
        );
        // the stem: 7×7 stride 2 padded 3, with a residual and an activation
        let s7 = b.conv(0, 12, [7, 7], [2, 2], [3; 4], [1, 1], 1, Act::Relu, None);
        b.conv(
            0,
            12,
            [7, 7],
            [2, 2],
            [3; 4],
            [1, 1],
            1,
            Act::LeakyRelu(0.1),
            Some(s7),
        );
        b.conv(0, 13, [3, 3], [3, 3], [1; 4], [1, 1], 1, Act::Sigmoid, None);
        b.conv(
            0,
            6,
            [7, 7],
            [2, 2],
            [3, 2, 1, 3],
            [1, 1],
            1,
            Act::None,
            None,
        );
        b.conv(c, 7, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::Tanh, None);
        // 1×1: stride 2 with a residual (ResNet's downsampling), one output channel
        let d = b.conv(c, 9, [1, 1], [2, 2], [0; 4], [1, 1], 1, Act::None, None);
        b.conv(c, 9, [1, 1], [2, 2], [0; 4], [1, 1], 1, Act::Relu, Some(d));
        b.conv(c, 1, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::Sigmoid, None);
        b.conv(
            c,
            5,
            [3, 3],
            [1, 1],
            [2; 4],
            [2, 2],
            1,
            Act::LeakyRelu(0.1),
            None,
        );
        b.conv(
            0,
            11,
            [5, 3],
            [1, 1],
            [2, 1, 2, 1],
            [1, 1],
            1,
            Act::Clip(-0.2, 0.4),
            Some(c),
        );
        // transposed convs whose kernel is their stride: 2×2 (5 input channels), 3×2
        b.conv_t(0, 11, [2, 2], [2, 2], [0; 4], [1, 1], 0, 1, Act::Relu);
        b.conv_t(c, 6, [3, 2], [3, 2], [0; 4], [1, 1], 0, 1, Act::None);
        for l in &b.g.layers {
            expected.insert(subgroup_kernel(&b.g, l, sg));
        }
        let x = random_tensor(input, 11 + i as u64);
        let (_, k) = check_layers(gpu, &format!("subgroup convs at {h}×{w}"), b.g, &x);
        seen.extend(k);
    }
    for k in &expected {
        assert!(
            seen.contains(k),
            "{k:?} never ran (subgroups of {sg}): {seen:?}"
        );
    }
    if sg == 8 {
        for k in GraphKernel::SUBGROUP {
            assert!(seen.contains(&k), "{k:?} never ran at 8 lanes: {seen:?}");
        }
    }
}

/// The subgroup kernel the plan's rule picks for conv layer `l` with subgroups of `sg` lanes:
/// `Conv3x3Sg` in the U-Net engine's mode (`gpu::Kernel::conv3x3_sg_for`) for 3×3 stride-1
/// padding-1 layers where it applies, else `Conv2dSg` with the fewest lanes along x that cover
/// a row of output (4 pixels each, at most min(SG, 8)), or `Conv3x3S2Sg` / `Conv7x7S2Sg` for
/// 3×3 / 7×7 stride-2 layers padded 1 / 3 at the top and left on rows a multiple of 8 wide, the
/// output half as wide, or `Conv1x1Sg` for unpadded 1×1 layers of stride 1 (rows a multiple of
/// 4) or 2 (of 8, output half as wide); transposed convs (kernel =
/// stride) `ConvTranspose2dSg` with the XB of the input's width.
fn subgroup_kernel(g: &Shaped, l: &Layer, sg: u32) -> GraphKernel {
    let xb = |w: usize| (w.div_ceil(4).next_power_of_two() as u32).clamp(1, sg.min(8));
    if let Layer::ConvTranspose { x, .. } = l {
        return GraphKernel::ConvTranspose2dSg(xb(g.shapes[*x][3]));
    }
    if let Layer::Conv {
        x,
        out,
        kernel: [1, 1],
        stride,
        pad: [0, 0, 0, 0],
        groups: 1,
        ..
    } = l
    {
        let (w, ow) = (g.shapes[*x][3], g.shapes[*out][3]);
        let fits = match stride {
            [1, 1] => w % 4 == 0 && ow == w,
            [2, 2] => w % 8 == 0 && 2 * ow == w,
            _ => false,
        };
        if fits {
            return GraphKernel::Conv1x1Sg(xb(ow));
        }
    }
    if let Layer::Conv {
        x,
        out,
        kernel,
        stride: [2, 2],
        pad: [pt, pl, _, _],
        dil: [1, 1],
        groups: 1,
        ..
    } = l
    {
        let (w, ow) = (g.shapes[*x][3], g.shapes[*out][3]);
        if w % 8 == 0 && 2 * ow == w {
            match (kernel, pt, pl) {
                ([3, 3], 1, 1) => return GraphKernel::Conv3x3S2Sg(xb(ow)),
                ([7, 7], 3, 3) => return GraphKernel::Conv7x7S2Sg(xb(ow)),
                _ => {}
            }
        }
    }
    let Layer::Conv {
        x,
        out,
        kernel,
        stride,
        pad,
        dil,
        groups,
        ..
    } = l
    else {
        panic!("not a conv: {l:?}");
    };
    let [_, _, h, w] = g.shapes[*x];
    let ow = g.shapes[*out][3];
    if *kernel == [3, 3] && *stride == [1, 1] && *pad == [1; 4] && *dil == [1, 1] && *groups == 1 {
        if let Some(wunet::gpu::Kernel::Conv3x3Sg(xb)) =
            wunet::gpu::Kernel::conv3x3_sg_for(Some(sg), h, w)
        {
            return GraphKernel::Conv3x3Sg(xb);
        }
    }
    GraphKernel::Conv2dSg(xb(ow))
}

/// Every family of `tests/fixtures/onnx`, both exports, end to end on the GPU against
/// PyTorch's output within 1e-4 · max|ref|; one submit per inference.
#[test]
fn onnx_families_match_pytorch_on_the_gpu() {
    let Some(gpu) = common::gpu("onnx_families_match_pytorch_on_the_gpu") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let x = read_npy(&dir.join("input.npy")).unwrap();
        let want = read_npy(&dir.join("output.npy")).unwrap();
        for export in ["torchscript", "dynamo"] {
            ran += 1;
            let r = wunet::graph::onnx::load(&dir.join(format!("{export}.onnx"))).and_then(|g| {
                let m = GpuGraphModel::new(&gpu.device, &gpu.queue, g, GpuGraphOptions::default())?;
                let plan = m.plan(x.shape)?;
                let got = plan.run(&x)?;
                assert_eq!(
                    plan.submit_count(),
                    1,
                    "{name}/{export}: one submit per inference"
                );
                Ok(got)
            });
            match r {
                Ok(got) => {
                    let (d, s) = got.max_abs_diff(&want);
                    eprintln!("{name}/{export}: max rel error {:.2e}", d / s);
                    // (NaN-safe: a NaN difference is not within budget)
                    let within = d <= 1e-4 * s;
                    if !within || got.shape != want.shape {
                        failures.push(format!("{name}/{export}: max diff {d:e} vs max {s:e}"));
                    }
                }
                Err(e) => failures.push(format!("{name}/{export}: {e}")),
            }
        }
    }
    assert!(ran >= 20, "only {ran} exports found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each fixture family's layers (fused, as the engine runs them) against the CPU layer on the
/// GPU's inputs: the ops and geometries real exports produce.
#[test]
fn onnx_family_layers_match_the_cpu_layers() {
    let Some(gpu) = common::gpu("onnx_family_layers_match_the_cpu_layers") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let x = read_npy(&dir.join("input.npy")).unwrap();
        let g = wunet::graph::onnx::load(&dir.join("torchscript.onnx")).unwrap();
        let shaped = wunet::graph::fuse(g.instantiate(x.shape).unwrap());
        let _ = check_layers(gpu, &name, shaped, &x);
    }
}
