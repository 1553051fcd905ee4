//! Lowering one layer of a `Shaped` graph to dispatches of the `shaders/graph/` kernels: the
//! kernel, its parameters (the `Params` struct of the shader, 32 words at most), its workgroup
//! counts and its bindings. Per-layer vectors (bias, per-channel scale and shift, PRelu slopes)
//! go to the plan's constant store beside the weights.

use std::collections::HashMap;

use super::{lower_sg, Bind, ConstRef, ConstStore, GraphKernel};
use crate::graph::ops::NearestRound;
use crate::graph::{
    Act, BinOp, Geom, Layer, Operand, PadMode, PoolKind, ReduceKind, ResizeCoord, ResizeMode,
    Shaped,
};
use crate::{Error, Result};

/// Invocations per workgroup of the linear kernels (WebGPU's default limit is 256; the
/// reductions' workgroup memory is sized for it).
pub(super) const WG_LINEAR: u32 = 256;
/// Workgroup shape of the conv kernels.
pub(super) const CONV_WG: (u32, u32) = (8, 8);
/// Output pixels along x per `conv2d_f32` invocation; output channels per conv invocation.
const CONV_PX: usize = 4;
const CONV_CO: usize = 4;

/// One dispatch to be.
pub(super) struct Dispatch {
    pub(super) kernel: GraphKernel,
    pub(super) params: [u32; 32],
    pub(super) groups: [u32; 3],
    pub(super) binds: Vec<Bind>,
}

/// The activation as the shaders' epilogue takes it: code (`lib/act_f32.wgsl`), two float
/// parameters, the PRelu slopes (one zero where there are none) and whether they are per
/// channel.
pub(super) fn act_params(act: &Act) -> (u32, f32, f32, Vec<f32>, bool) {
    match act {
        Act::None => (0, 0.0, 0.0, vec![0.0], false),
        Act::Relu => (1, 0.0, 0.0, vec![0.0], false),
        Act::LeakyRelu(a) => (2, *a, 0.0, vec![0.0], false),
        Act::Sigmoid => (3, 0.0, 0.0, vec![0.0], false),
        Act::Tanh => (4, 0.0, 0.0, vec![0.0], false),
        Act::Clip(lo, hi) => (5, *lo, *hi, vec![0.0], false),
        Act::PRelu(s) => (6, 0.0, 0.0, s.clone(), s.len() > 1),
    }
}

/// Workgroups for `count` workgroups of a linear kernel, as a 2-D grid within `max` per
/// dimension (the kernels guard the excess).
fn grid(count: usize, max: u32) -> Result<[u32; 3]> {
    let count = count.max(1) as u64;
    let gx = count.min(max as u64);
    let gy = count.div_ceil(gx);
    if gy > max as u64 {
        return Err(too_many(gy, max));
    }
    Ok([gx as u32, gy as u32, 1])
}

pub(super) fn too_many(count: u64, max: u32) -> Error {
    Error::ExceedsLimit {
        what: format!("a dispatch of {count} workgroups along one dimension"),
        needed: count,
        limit: "max_compute_workgroups_per_dimension",
        max: max as u64,
    }
}

/// Workgroups `g` of a 3-D dispatch, each within `max`.
pub(super) fn grid3(g: [usize; 3], max: u32) -> Result<[u32; 3]> {
    if let Some(&v) = g.iter().find(|&&v| v > max as usize) {
        return Err(too_many(v as u64, max));
    }
    Ok(g.map(|v| v.max(1) as u32))
}

fn linear(total: usize, max: u32) -> Result<[u32; 3]> {
    grid(total.div_ceil(WG_LINEAR as usize), max)
}

/// The words a conv kernel's parameters start with: n, cin, h, w (the input), cout, oh, ow.
pub(super) fn conv_words([n, cin, h, w]: [usize; 4], [cout, oh, ow]: [usize; 3]) -> [u32; 7] {
    [n, cin, h, w, cout, oh, ow].map(|v| v as u32)
}

/// A conv's window words: kernel, stride, padding (top, left) and dilation, y then x.
pub(super) fn window_words(l: &Layer) -> [u32; 8] {
    let g = Geom::of(l).expect("a conv layer");
    [
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
        g.dil[0],
        g.dil[1],
    ]
    .map(|v| v as u32)
}

pub(super) fn words(v: &[u32]) -> [u32; 32] {
    let mut p = [0u32; 32];
    p[..v.len()].copy_from_slice(v);
    p
}

/// Lowers layer `l` of `g`; `weights` caches each weight's place in the constant store.
pub(super) fn lower(
    g: &Shaped,
    l: &Layer,
    store: &mut ConstStore,
    weights: &mut HashMap<usize, ConstRef>,
    max_groups: u32,
    sg: Option<u32>,
) -> Result<Vec<Dispatch>> {
    let sh = &g.shapes;
    let mut weight = |id: usize, store: &mut ConstStore| -> Result<ConstRef> {
        if let Some(r) = weights.get(&id) {
            return Ok(*r);
        }
        let r = store.push(&g.weights[id].data, &g.weights[id].name)?;
        weights.insert(id, r);
        Ok(r)
    };
    let out = l.output();
    let [n, oc, oh, ow] = sh[out];
    let total = n * oc * oh * ow;
    let d = match l {
        Layer::Conv { x, w, b, act, .. } | Layer::ConvTranspose { x, w, b, act, .. } => {
            let groups = Geom::of(l).expect("a conv layer").groups;
            let (transposed, add) = match l {
                Layer::Conv { add, .. } => (false, *add),
                _ => (true, None),
            };
            let [_, cin, h, wd] = sh[*x];
            let (cin_g, cout_g) = (cin / groups, oc / groups);
            let cblocks = cout_g.div_ceil(CONV_CO);
            let (code, a0, a1, slopes, per_ch) = act_params(act);
            let mut aux = match b {
                Some(b) => g.weights[*b].data.to_vec(),
                None => vec![0.0; oc],
            };
            let slope_off = aux.len();
            aux.extend(slopes);
            let epi = [
                code,
                a0.to_bits(),
                a1.to_bits(),
                slope_off as u32,
                per_ch as u32,
            ];
            let sg = if transposed {
                lower_sg::conv_transpose(g, l, epi, &aux, store, max_groups, sg)?
            } else {
                lower_sg::conv(g, l, epi, &aux, store, max_groups, sg)?
            };
            if let Some(d) = sg {
                return Ok(vec![d]);
            }
            let params = words(
                &[
                    &conv_words([n, cin, h, wd], [oc, oh, ow])[..],
                    &window_words(l),
                    &[
                        groups as u32,
                        cin_g as u32,
                        cout_g as u32,
                        cblocks as u32,
                        add.is_some() as u32,
                        code,
                        a0.to_bits(),
                        a1.to_bits(),
                        slope_off as u32,
                        per_ch as u32,
                    ][..],
                ]
                .concat(),
            );
            // Depthwise (one input channel per group, as the CPU engine splits them): one
            // output channel per invocation; else blocks of 4 channels of a group. The conv
            // kernels take CONV_PX pixels of a row per invocation, the transposed one a pixel.
            let depthwise = !transposed && cin_g == 1 && groups > 1;
            let (kernel, px) = match (transposed, depthwise) {
                (true, _) => (GraphKernel::ConvTranspose2d, 1),
                (false, true) => (GraphKernel::DepthwiseConv2d, CONV_PX),
                (false, false) => (GraphKernel::Conv2d, CONV_PX),
            };
            let z = if depthwise {
                n * oc
            } else {
                n * groups * cblocks
            };
            let groups3 = [
                ow.div_ceil(px).div_ceil(CONV_WG.0 as usize) as u32,
                oh.div_ceil(CONV_WG.1 as usize) as u32,
                z as u32,
            ];
            if groups3.iter().any(|&v| v > max_groups) {
                return Err(too_many(z as u64, max_groups));
            }
            let mut binds = vec![Bind::Arena(out), Bind::Arena(*x)];
            if !transposed {
                binds.push(add.map_or(Bind::Dummy, Bind::Arena));
            }
            binds.push(Bind::Const(weight(*w, store)?));
            binds.push(Bind::Const(store.push(&aux, "conv bias and slopes")?));
            vec![Dispatch {
                kernel,
                params,
                groups: groups3,
                binds,
            }]
        }
        Layer::Affine {
            x,
            scale,
            shift,
            act,
            ..
        } => vec![unary(
            *x,
            out,
            sh[out],
            Some((scale, shift)),
            act,
            store,
            max_groups,
        )?],
        Layer::Act { x, act, .. } => {
            vec![unary(*x, out, sh[out], None, act, store, max_groups)?]
        }
        Layer::InstanceNorm {
            x,
            scale,
            bias,
            eps,
            act,
            ..
        } => {
            let (code, a0, a1, slopes, per_ch) = act_params(act);
            let mut aux = scale.clone().unwrap_or_else(|| vec![1.0; oc]);
            aux.extend(bias.clone().unwrap_or_else(|| vec![0.0; oc]));
            let slope_off = aux.len();
            aux.extend(slopes);
            let planes = n * oc;
            vec![Dispatch {
                kernel: GraphKernel::InstanceNorm,
                params: words(&[
                    planes as u32,
                    (oh * ow) as u32,
                    oc as u32,
                    eps.to_bits(),
                    code,
                    a0.to_bits(),
                    a1.to_bits(),
                    slope_off as u32,
                    per_ch as u32,
                ]),
                groups: grid(planes, max_groups)?,
                binds: vec![
                    Bind::Arena(out),
                    Bind::Arena(*x),
                    Bind::Const(store.push(&aux, "instance norm scale, bias and slopes")?),
                ],
            }]
        }
        Layer::Pool {
            x,
            kind,
            kernel,
            stride,
            pad,
            dil,
            ..
        } => {
            let [_, _, h, wd] = sh[*x];
            let k = match kind {
                PoolKind::Max => 0,
                PoolKind::Avg {
                    count_include_pad: false,
                } => 1,
                PoolKind::Avg {
                    count_include_pad: true,
                } => 2,
            };
            vec![Dispatch {
                kernel: GraphKernel::Pool,
                params: words(&[
                    total as u32,
                    h as u32,
                    wd as u32,
                    oh as u32,
                    ow as u32,
                    kernel[0] as u32,
                    kernel[1] as u32,
                    stride[0] as u32,
                    stride[1] as u32,
                    pad[0] as u32,
                    pad[1] as u32,
                    pad[2] as u32,
                    pad[3] as u32,
                    dil[0] as u32,
                    dil[1] as u32,
                    k,
                ]),
                groups: grid3(
                    [
                        ow.div_ceil(CONV_WG.0 as usize),
                        oh.div_ceil(CONV_WG.1 as usize),
                        n * oc,
                    ],
                    max_groups,
                )?,
                binds: vec![Bind::Arena(out), Bind::Arena(*x)],
            }]
        }
        Layer::Reduce {
            x,
            kind,
            channels,
            spatial,
            ..
        } => {
            let [_, c, h, wd] = sh[*x];
            let hw = h * wd;
            // (segments, len, stride, inner, outer stride, one invocation per segment)
            let (segs, len, stride, inner, outer, per_inv) = match (channels, spatial) {
                (true, false) => (n * hw, c, hw, hw, c * hw, true),
                (false, true) => (n * c, hw, 1, 1, hw, hw < 64),
                (true, true) => (n, c * hw, 1, 1, c * hw, false),
                (false, false) => (n * c * hw, 1, 1, 1, 1, true),
            };
            let k = match kind {
                ReduceKind::Mean => 0,
                ReduceKind::Max => 1,
            };
            vec![Dispatch {
                kernel: GraphKernel::Reduce,
                params: words(&[
                    segs as u32,
                    len as u32,
                    stride as u32,
                    inner as u32,
                    outer as u32,
                    k,
                    per_inv as u32,
                ]),
                groups: if per_inv {
                    linear(segs, max_groups)?
                } else {
                    grid(segs, max_groups)?
                },
                binds: vec![Bind::Arena(out), Bind::Arena(*x)],
            }]
        }
        Layer::Resize {
            x,
            mode,
            coord,
            scale,
            ..
        } => {
            let [_, _, h, wd] = sh[*x];
            let m = match mode {
                ResizeMode::Linear => 0,
                ResizeMode::Nearest(NearestRound::Floor) => 1,
                ResizeMode::Nearest(NearestRound::Ceil) => 2,
                ResizeMode::Nearest(NearestRound::RoundPreferFloor) => 3,
                ResizeMode::Nearest(NearestRound::RoundPreferCeil) => 4,
            };
            let c = match coord {
                ResizeCoord::HalfPixel => 0,
                ResizeCoord::PytorchHalfPixel => 1,
                ResizeCoord::AlignCorners => 2,
                ResizeCoord::Asymmetric => 3,
            };
            vec![Dispatch {
                kernel: GraphKernel::Resize,
                params: words(&[
                    total as u32,
                    h as u32,
                    wd as u32,
                    oh as u32,
                    ow as u32,
                    m,
                    c,
                    scale[0].to_bits(),
                    scale[1].to_bits(),
                ]),
                groups: grid3(
                    [
                        ow.div_ceil(CONV_PX).div_ceil(CONV_WG.0 as usize),
                        oh.div_ceil(CONV_WG.1 as usize),
                        n * oc,
                    ],
                    max_groups,
                )?,
                binds: vec![Bind::Arena(out), Bind::Arena(*x)],
            }]
        }
        Layer::Pad {
            x,
            mode,
            pads,
            value,
            ..
        } => {
            let [_, _, h, wd] = sh[*x];
            let m = match mode {
                PadMode::Constant => 0,
                PadMode::Edge => 1,
                PadMode::Reflect => 2,
            };
            vec![Dispatch {
                kernel: GraphKernel::Pad,
                params: words(&[
                    total as u32,
                    oc as u32,
                    h as u32,
                    wd as u32,
                    oh as u32,
                    ow as u32,
                    pads[0] as i32 as u32,
                    pads[1] as i32 as u32,
                    m,
                    value.to_bits(),
                ]),
                groups: linear(total, max_groups)?,
                binds: vec![Bind::Arena(out), Bind::Arena(*x)],
            }]
        }
        Layer::Concat { xs, .. } => {
            let mut coff = 0;
            let mut v = Vec::with_capacity(xs.len());
            for &t in xs {
                let [_, cx, h, wd] = sh[t];
                let tot = n * cx * h * wd;
                v.push(Dispatch {
                    kernel: GraphKernel::Concat,
                    params: words(&[
                        tot as u32,
                        cx as u32,
                        (h * wd) as u32,
                        oc as u32,
                        coff as u32,
                    ]),
                    groups: grid3(
                        [(h * wd).div_ceil(4 * WG_LINEAR as usize), cx, n],
                        max_groups,
                    )?,
                    binds: vec![Bind::Arena(out), Bind::Arena(t)],
                });
                coff += cx;
            }
            v
        }
        Layer::Binary { a, b, op, act, .. } => {
            let mut operand = |o: &Operand, store: &mut ConstStore| -> Result<([usize; 4], Bind)> {
                Ok(match *o {
                    Operand::T(t) => (sh[t], Bind::Arena(t)),
                    Operand::W(id) => {
                        let s: [usize; 4] =
                            g.weights[id].shape.as_slice().try_into().map_err(|_| {
                                Error::BadModel(format!(
                                    "binary operand `{}` is not 4-D: {:?}",
                                    g.weights[id].name, g.weights[id].shape
                                ))
                            })?;
                        (s, Bind::Const(weight(id, store)?))
                    }
                })
            };
            let (sa, ba) = operand(a, store)?;
            let (sb, bb) = operand(b, store)?;
            // One tensor on both sides (x + x): bound once, read twice (`same`).
            let same = matches!((a, b), (Operand::T(x), Operand::T(y)) if x == y);
            let strides = |s: [usize; 4]| -> [u32; 4] {
                let full = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
                std::array::from_fn(|k| if s[k] == 1 { 0 } else { full[k] as u32 })
            };
            let (ta, tb) = (strides(sa), strides(sb));
            let (code, a0, a1, slopes, per_ch) = act_params(act);
            let o = match op {
                BinOp::Add => 0,
                BinOp::Sub => 1,
                BinOp::Mul => 2,
                BinOp::Div => 3,
            };
            vec![Dispatch {
                kernel: GraphKernel::Binary,
                params: words(&[
                    total as u32,
                    oc as u32,
                    oh as u32,
                    ow as u32,
                    ta[0],
                    ta[1],
                    ta[2],
                    ta[3],
                    tb[0],
                    tb[1],
                    tb[2],
                    tb[3],
                    o,
                    code,
                    a0.to_bits(),
                    a1.to_bits(),
                    0,
                    per_ch as u32,
                    same as u32,
                ]),
                groups: linear(total, max_groups)?,
                binds: vec![
                    Bind::Arena(out),
                    ba,
                    if same { Bind::Dummy } else { bb },
                    Bind::Const(store.push(&slopes, "binary slopes")?),
                ],
            }]
        }
        Layer::Softmax { x, .. } => {
            let px = n * oh * ow;
            vec![Dispatch {
                kernel: GraphKernel::Softmax,
                params: words(&[px as u32, oc as u32, (oh * ow) as u32]),
                groups: linear(px, max_groups)?,
                binds: vec![Bind::Arena(out), Bind::Arena(*x)],
            }]
        }
    };
    Ok(d)
}

/// Affine (`scale_shift`) or plain activation.
fn unary(
    x: usize,
    out: usize,
    s: [usize; 4],
    scale_shift: Option<(&Vec<f32>, &Vec<f32>)>,
    act: &Act,
    store: &mut ConstStore,
    max_groups: u32,
) -> Result<Dispatch> {
    let [n, c, h, w] = s;
    let total = n * c * h * w;
    let (code, a0, a1, slopes, per_ch) = act_params(act);
    let mut aux = Vec::new();
    if let Some((sc, sf)) = scale_shift {
        aux.extend_from_slice(sc);
        aux.extend_from_slice(sf);
    }
    let slope_off = aux.len();
    aux.extend(slopes);
    Ok(Dispatch {
        kernel: GraphKernel::Unary,
        params: words(&[
            total as u32,
            (h * w) as u32,
            c as u32,
            scale_shift.is_some() as u32,
            code,
            a0.to_bits(),
            a1.to_bits(),
            slope_off as u32,
            per_ch as u32,
        ]),
        groups: linear(total, max_groups)?,
        binds: vec![
            Bind::Arena(out),
            Bind::Arena(x),
            Bind::Const(store.push(&aux, "affine and slopes")?),
        ],
    })
}
