//! Lowering convs and transposed convs to the subgroup kernels of `shaders/graph/` (where the
//! adapter has one fixed subgroup size, `gpu::fixed_subgroup_size`): the per-layer choice, the
//! weights regrouped by 8 output channels, the dispatch geometry. `lower` falls back to the
//! plain kernels where these return `None`.

use super::lower::{conv_words, grid3, too_many, window_words, words, Dispatch};
use super::{Bind, ConstRef, ConstStore, GraphKernel};
use crate::graph::{Layer, Shaped};
use crate::Result;

/// A conv layer on a subgroup kernel, if one applies: `Conv3x3Sg` (3×3 stride 1), `Conv3x3S2Sg`
/// / `Conv7x7S2Sg` (ResNet's strided convs), else `Conv2dSg` (any conv of one group). `epi`:
/// activation code, its two parameters, the slopes' offset in `aux` and whether per channel;
/// `aux`: bias then slopes.
pub(super) fn conv(
    g: &Shaped,
    l: &Layer,
    epi: [u32; 5],
    aux: &[f32],
    store: &mut ConstStore,
    max_groups: u32,
    sg: Option<u32>,
) -> Result<Option<Dispatch>> {
    let sh = &g.shapes;
    let Layer::Conv {
        x,
        w,
        kernel,
        stride,
        groups,
        add,
        ..
    } = l
    else {
        return Ok(None);
    };
    let out = l.output();
    let [n, cin, h, wd] = sh[*x];
    let [_, oc, oh, ow] = sh[out];
    // Every form takes the same epilogue words and bindings: output, input, residual, packed
    // weights, bias and slopes.
    let epilogue = [add.is_some() as u32, epi[0], epi[1], epi[2], epi[3], epi[4]];
    let binds = |store: &mut ConstStore, packed: ConstRef| -> Result<Vec<Bind>> {
        Ok(vec![
            Bind::Arena(out),
            Bind::Arena(*x),
            add.map_or(Bind::Dummy, Bind::Arena),
            Bind::Const(packed),
            Bind::Const(store.push(aux, "conv bias and slopes")?),
        ])
    };
    if let Some(k) = conv3x3_sg_for(l, sh, sg) {
        let packed = store.push(
            &pack_conv_taps_grouped(&g.weights[*w].data, oc, cin, 9),
            &g.weights[*w].name,
        )?;
        let mut d = conv3x3_sg(k, sh[*x], sh[out], sg.unwrap_or(8), epilogue, max_groups)?;
        d.binds = binds(store, packed)?;
        return Ok(Some(d));
    }
    if let Some(k) = conv_s2_sg_for(l, sh, sg, max_groups) {
        let sg = sg.expect("subgroups");
        let xb = k.xb().expect("a subgroup kernel");
        let cog = oc.div_ceil(8);
        let packed = store.push(
            &pack_conv_taps_grouped(&g.weights[*w].data, oc, cin, kernel[0] * kernel[1]),
            &g.weights[*w].name,
        )?;
        let (px, py) = (
            ow.div_ceil(4 * xb as usize),
            oh.div_ceil((sg / xb) as usize),
        );
        return Ok(Some(Dispatch {
            kernel: k,
            params: words(
                &[
                    &conv_words([n, cin, h, wd], [oc, oh, ow])[..],
                    &[cog as u32][..],
                    &epilogue,
                ]
                .concat(),
            ),
            groups: grid3([px * cog, py, n], max_groups)?,
            binds: binds(store, packed)?,
        }));
    }
    if let Some(k) = conv1x1_sg_for(l, sh, sg, max_groups) {
        let sg = sg.expect("subgroups");
        let xb = k.xb().expect("a subgroup kernel");
        let cog = oc.div_ceil(8);
        let packed = store.push(
            &pack_conv1x1_grouped(&g.weights[*w].data, oc, cin),
            &g.weights[*w].name,
        )?;
        let (px, py) = (
            ow.div_ceil(4 * xb as usize),
            oh.div_ceil((sg / xb) as usize),
        );
        return Ok(Some(Dispatch {
            kernel: k,
            params: words(
                &[
                    &conv_words([n, cin, h, wd], [oc, oh, ow])[..],
                    &[stride[0] as u32, cog as u32][..],
                    &epilogue,
                ]
                .concat(),
            ),
            groups: grid3([px * cog, py, n], max_groups)?,
            binds: binds(store, packed)?,
        }));
    }
    if let (Some(sg), 1) = (sg, *groups) {
        let xb = conv2d_sg_xb(sg, ow);
        let cog = oc.div_ceil(8);
        let packed = store.push(
            &pack_conv_grouped(&g.weights[*w].data, oc, cin, kernel[0] * kernel[1]),
            &g.weights[*w].name,
        )?;
        let (px, py) = (
            ow.div_ceil(4 * xb as usize),
            oh.div_ceil((sg / xb) as usize),
        );
        // The blocks of one patch one after another, reading its input from cache
        // (the stem of smp ResNet-18 at 512²: 149-157 against 160-184 ms).
        let fast = px * cog <= max_groups as usize;
        let groups3 = if fast {
            [px * cog, py, n]
        } else {
            [px, py, n * cog]
        };
        return Ok(Some(Dispatch {
            kernel: GraphKernel::Conv2dSg(xb),
            params: words(
                &[
                    &conv_words([n, cin, h, wd], [oc, oh, ow])[..],
                    &window_words(l),
                    &[cog as u32][..],
                    &epilogue,
                    &[fast as u32],
                ]
                .concat(),
            ),
            groups: grid3(groups3, max_groups)?,
            binds: binds(store, packed)?,
        }));
    }
    Ok(None)
}

/// A transposed conv on `ConvTranspose2dSg`, if it applies (kernel equal to stride, see
/// `conv_transpose_sg_for`); `epi` and `aux` as `conv`.
pub(super) fn conv_transpose(
    g: &Shaped,
    l: &Layer,
    epi: [u32; 5],
    aux: &[f32],
    store: &mut ConstStore,
    max_groups: u32,
    sg: Option<u32>,
) -> Result<Option<Dispatch>> {
    let sh = &g.shapes;
    let Layer::ConvTranspose { x, w, kernel, .. } = l else {
        return Ok(None);
    };
    let out = l.output();
    let [n, cin, h, wd] = sh[*x];
    let [_, oc, oh, ow] = sh[out];
    if let Some(GraphKernel::ConvTranspose2dSg(xb)) = conv_transpose_sg_for(l, sh, sg) {
        let sg = sg.expect("subgroups");
        let kk = kernel[0] * kernel[1];
        let cog = oc.div_ceil(8);
        // The blocks and taps of one input patch one after another (they share its
        // input rows in cache), where the grid allows: ups.4 and ups.6 of the reference
        // model at 256² 51-57 against 64-83 ms, alternating.
        let (px, py) = (wd.div_ceil(4 * xb as usize), h.div_ceil((sg / xb) as usize));
        let fast = px * cog * kk <= max_groups as usize;
        let groups3 = if fast {
            [px * cog * kk, py, n]
        } else {
            [px, py, n * cog * kk]
        };
        let packed = store.push(
            &pack_conv_transpose_grouped(&g.weights[*w].data, cin, oc, kk),
            &g.weights[*w].name,
        )?;
        return Ok(Some(Dispatch {
            kernel: GraphKernel::ConvTranspose2dSg(xb),
            params: words(
                &[
                    &conv_words([n, cin, h, wd], [oc, oh, ow])[..],
                    &[
                        kernel[0] as u32,
                        kernel[1] as u32,
                        cog as u32,
                        epi[0],
                        epi[1],
                        epi[2],
                        epi[3],
                        epi[4],
                        fast as u32,
                    ][..],
                ]
                .concat(),
            ),
            groups: grid3(groups3, max_groups)?,
            binds: vec![
                Bind::Arena(out),
                Bind::Arena(*x),
                Bind::Const(packed),
                Bind::Const(store.push(aux, "transposed conv bias and slopes")?),
            ],
        }));
    }
    Ok(None)
}

/// The subgroup 3×3 kernel for conv layer `l`, where it applies: the adapter has fixed-size
/// subgroups (`sg`), the layer is 3×3, stride 1, padding 1 all round, no dilation, one group,
/// and its rows are a multiple of 4 wide; the mode (XB) by the U-Net engine's rule
/// (`gpu::Kernel::conv3x3_sg_for`: columns where the layer is tall enough, else patch rows).
pub(super) fn conv3x3_sg_for(l: &Layer, sh: &[[usize; 4]], sg: Option<u32>) -> Option<GraphKernel> {
    let Layer::Conv {
        x,
        kernel,
        stride,
        pad,
        dil,
        groups,
        ..
    } = l
    else {
        return None;
    };
    let [_, _, h, w] = sh[*x];
    if *kernel != [3, 3] || *stride != [1, 1] || *pad != [1; 4] || *dil != [1, 1] || *groups != 1 {
        return None;
    }
    match crate::gpu::Kernel::conv3x3_sg_for(sg, h, w)? {
        crate::gpu::Kernel::Conv3x3Sg(xb) => Some(GraphKernel::Conv3x3Sg(xb)),
        _ => None,
    }
}

/// The dispatch of a `conv3x3_sg_f32` layer (bindings left to the caller): input `[n, cin, h,
/// w]`, output `[n, cout, h, w]`, `epilogue` the last six words of its parameters.
fn conv3x3_sg(
    k: GraphKernel,
    [n, cin, h, w]: [usize; 4],
    [_, cout, _, _]: [usize; 4],
    sg: u32,
    epilogue: [u32; 6],
    max_groups: u32,
) -> Result<Dispatch> {
    let GraphKernel::Conv3x3Sg(xb) = k else {
        panic!("conv3x3_sg called with {k:?}");
    };
    let cog = cout.div_ceil(8);
    let px = w.div_ceil(4 * xb as usize);
    let py = h.div_ceil((sg / xb) as usize);
    // The output-channel blocks fastest where the input is larger than the weights (as the
    // U-Net engine): the blocks of one patch then read its input rows from cache.
    let blocks_fast = h * w > cout * 9 && px * cog <= max_groups as usize;
    let groups = if blocks_fast {
        [px * cog, py, n]
    } else {
        [px, py, n * cog]
    };
    if let Some(&v) = groups.iter().find(|&&v| v > max_groups as usize) {
        return Err(too_many(v as u64, max_groups));
    }
    let mut params = vec![
        n as u32,
        cin as u32,
        cout as u32,
        h as u32,
        w as u32,
        (blocks_fast as u32) << 1,
        cog as u32,
    ];
    params.extend(epilogue);
    Ok(Dispatch {
        kernel: k,
        params: words(&params),
        groups: groups.map(|v| v as u32),
        binds: Vec::new(),
    })
}

/// Conv weights `[cout][cin][kk]` grouped by 8 output channels: `[cout / 8][cin][kk][8]`, zero
/// past `cout` (the layout of `conv3x3_sg_f32`, `conv3x3s2_sg_f32`, `conv7x7s2_sg_f32`).
fn pack_conv_taps_grouped(w: &[f32], cout: usize, cin: usize, kk: usize) -> Vec<f32> {
    let cog = cout.div_ceil(8);
    let mut out = vec![0.0; cog * cin * kk * 8];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                out[(((co / 8) * cin + ci) * kk + t) * 8 + co % 8] = w[(co * cin + ci) * kk + t];
            }
        }
    }
    out
}

/// XB of `conv2d_sg_f32` for rows `ow` wide: the fewest lanes along x that cover a row (4
/// pixels each), at most the subgroup; the other lanes take further rows.
pub(super) fn conv2d_sg_xb(sg: u32, ow: usize) -> u32 {
    (ow.div_ceil(4).next_power_of_two() as u32).clamp(1, sg.min(8))
}

/// Conv weights `[cout][cin][kk]` grouped by 8 output channels, taps padded to a multiple of 4:
/// `[cout / 8][cin][⌈kk / 4⌉ · 4][8]`, zero past `cout` and `kk` (the layout of
/// `conv2d_sg_f32`).
fn pack_conv_grouped(w: &[f32], cout: usize, cin: usize, kk: usize) -> Vec<f32> {
    let cog = cout.div_ceil(8);
    let kp = kk.div_ceil(4) * 4;
    let mut out = vec![0.0; cog * cin * kp * 8];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                out[(((co / 8) * cin + ci) * kp + t) * 8 + co % 8] = w[(co * cin + ci) * kk + t];
            }
        }
    }
    out
}

/// The subgroup transposed conv for layer `l`, where it applies: fixed-size subgroups, kernel
/// equal to the stride, no padding or dilation, one group, input rows a multiple of 4 wide, and
/// an output of exactly stride × input (no output padding); XB as `conv2d_sg_f32`'s, over the
/// input's width.
pub(super) fn conv_transpose_sg_for(
    l: &Layer,
    sh: &[[usize; 4]],
    sg: Option<u32>,
) -> Option<GraphKernel> {
    let sg = sg?;
    let Layer::ConvTranspose {
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
        return None;
    };
    let [_, _, h, w] = sh[*x];
    let [_, _, oh, ow] = sh[*out];
    let fits = kernel == stride
        && *pad == [0; 4]
        && *dil == [1, 1]
        && *groups == 1
        && w % 4 == 0
        && oh == h * stride[0]
        && ow == w * stride[1];
    fits.then(|| GraphKernel::ConvTranspose2dSg(conv2d_sg_xb(sg, w)))
}

/// Transposed-conv weights `[cin][cout][kk]` grouped by 8 output channels per tap, input
/// channels padded to a multiple of 4: `[cout / 8][kk][⌈cin / 4⌉ · 4][8]` (the layout of
/// `conv_transpose2d_sg_f32`).
fn pack_conv_transpose_grouped(w: &[f32], cin: usize, cout: usize, kk: usize) -> Vec<f32> {
    let cog = cout.div_ceil(8);
    let cinp = cin.div_ceil(4) * 4;
    let mut out = vec![0.0; cog * kk * cinp * 8];
    for ci in 0..cin {
        for co in 0..cout {
            for t in 0..kk {
                out[(((co / 8) * kk + t) * cinp + ci) * 8 + co % 8] = w[(ci * cout + co) * kk + t];
            }
        }
    }
    out
}

/// The stride-2 subgroup kernels for conv layer `l`, where they apply: fixed-size subgroups,
/// 3×3 padded 1 (`Conv3x3S2Sg`) or 7×7 padded 3 (`Conv7x7S2Sg`) at the top and left, stride 2,
/// no dilation, one group, input rows a multiple of 8 wide and output rows half as wide (every
/// row segment two whole vec4s); XB as `conv2d_sg_f32`'s.
pub(super) fn conv_s2_sg_for(
    l: &Layer,
    sh: &[[usize; 4]],
    sg: Option<u32>,
    max_groups: u32,
) -> Option<GraphKernel> {
    let sg = sg?;
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
        return None;
    };
    let [_, _, _, w] = sh[*x];
    let [_, oc, _, ow] = sh[*out];
    let xb = conv2d_sg_xb(sg, ow);
    let k = match (kernel, pad[0], pad[1]) {
        ([3, 3], 1, 1) => GraphKernel::Conv3x3S2Sg(xb),
        ([7, 7], 3, 3) => GraphKernel::Conv7x7S2Sg(xb),
        _ => return None,
    };
    let fits = *stride == [2, 2]
        && *dil == [1, 1]
        && *groups == 1
        && w % 8 == 0
        && 2 * ow == w
        && ow.div_ceil(4 * xb as usize) * oc.div_ceil(8) <= max_groups as usize;
    fits.then_some(k)
}

/// The 1×1 subgroup kernel for conv layer `l`, where it applies: fixed-size subgroups, 1×1,
/// stride 1 (rows a multiple of 4 wide) or 2 (a multiple of 8, output half as wide) on both
/// axes, no padding, one group; XB as `conv2d_sg_f32`'s.
pub(super) fn conv1x1_sg_for(
    l: &Layer,
    sh: &[[usize; 4]],
    sg: Option<u32>,
    max_groups: u32,
) -> Option<GraphKernel> {
    let sg = sg?;
    let Layer::Conv {
        x,
        out,
        kernel,
        stride,
        pad,
        groups,
        ..
    } = l
    else {
        return None;
    };
    let [_, _, _, w] = sh[*x];
    let [_, oc, _, ow] = sh[*out];
    let xb = conv2d_sg_xb(sg, ow);
    let rows = match stride {
        [1, 1] => w % 4 == 0 && ow == w,
        [2, 2] => w % 8 == 0 && 2 * ow == w,
        _ => false,
    };
    let fits = *kernel == [1, 1]
        && *pad == [0; 4]
        && *groups == 1
        && rows
        && ow.div_ceil(4 * xb as usize) * oc.div_ceil(8) <= max_groups as usize;
    fits.then_some(GraphKernel::Conv1x1Sg(xb))
}

/// 1×1 weights `[cout][cin]` grouped by 8 output channels, input channels padded to a multiple
/// of 4: `[cout / 8][⌈cin / 4⌉ · 4][8]` (the layout of `conv1x1_sg_f32`).
fn pack_conv1x1_grouped(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let cinp = cin.div_ceil(4) * 4;
    let mut out = vec![0.0; cout.div_ceil(8) * cinp * 8];
    for co in 0..cout {
        for ci in 0..cin {
            out[((co / 8) * cinp + ci) * 8 + co % 8] = w[co * cin + ci];
        }
    }
    out
}
