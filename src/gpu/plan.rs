//! Compile once, execute many: `GpuModel` (weights and pipelines, shape-independent) and its
//! `Plan` for one input shape (the dispatch list, assembled by `step.rs`).

use std::collections::HashMap;

use super::kernels::{
    linear_groups, pack_conv3x3_grouped, pack_rows, pack_upconv_grouped, pack_vec4, Kernel,
    CONV_PX, CONV_WG,
};
use super::scoped_async;
use super::step::{assemble, check_limits, Binding, Plan, StepSpec};
use super::winograd;
use crate::model::{fold_bn, ConvWeights, UNet, UNetSpec};
use crate::plan::{plan_memory_temps, ConvRef, Graph, MemoryPlan, Op, Shape, ARENA_ALIGN};
use crate::{Error, Result};

/// Options of the GPU engine.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Fold BatchNorm into the conv weights (default). Off: conv, then a standalone BN+ReLU.
    pub fold_bn: bool,
    /// Give every tensor its own memory so `Plan::run_all` can read back all of them
    /// (debugging and per-kernel tests; uses much more memory).
    pub keep_intermediates: bool,
    /// Use this 3×3 conv variant for every layer instead of the per-layer choice
    /// (`bench --kernels` compares them). `Conv3x3Sg(_)`: the subgroup kernel wherever it
    /// applies (its XB chosen per layer), `Conv3x3Co8Grouped` elsewhere.
    pub conv3x3: Option<Kernel>,
    /// Run the 3×3 convs of wide, shallow layers as Winograd F(4×4, 3×3) where the subgroup
    /// kernels run and a layer has enough tiles (`gpu::winograd`; default on). Ignored when
    /// `conv3x3` forces a kernel.
    pub winograd: bool,
    /// The most bytes of Winograd scratch (transformed tiles and products) per chunk of tile rows
    /// (default `winograd::CHUNK_BYTES`; smaller: more, smaller dispatches).
    pub winograd_chunk_bytes: u64,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            fold_bn: true,
            keep_intermediates: false,
            conv3x3: None,
            // `WUNET_WINOGRAD=0` (native) turns it off, for comparisons.
            winograd: !(cfg!(not(target_arch = "wasm32"))
                && std::env::var("WUNET_WINOGRAD").is_ok_and(|v| v == "0")),
            winograd_chunk_bytes: winograd::CHUNK_BYTES,
        }
    }
}

/// A layer's weights on the device: the packed weights and a second per-channel buffer (the
/// bias; for a standalone BatchNorm, scale and shift).
struct LayerBuffers {
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    /// The kernel variant the weights were packed for.
    kernel: Kernel,
    /// 3×3 convs that may run as Winograd: the transformed weights (`winograd::pack_u`).
    wino: Option<wgpu::Buffer>,
}

/// A model's weights uploaded and its pipelines created, ready to plan for any input shape.
pub struct GpuModel {
    device: wgpu::Device,
    queue: wgpu::Queue,
    spec: UNetSpec,
    opts: GpuOptions,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    /// The fixed subgroup size the subgroup conv runs with, if it runs here.
    sg: Option<u32>,
    convs: HashMap<ConvRef, LayerBuffers>,
    bns: HashMap<ConvRef, LayerBuffers>,
    ups: Vec<LayerBuffers>,
    head: LayerBuffers,
    weight_bytes: u64,
}

fn storage(device: &wgpu::Device, queue: &wgpu::Queue, label: &str, data: &[f32]) -> wgpu::Buffer {
    super::buffer_with(
        device,
        queue,
        label,
        bytemuck::cast_slice(data),
        wgpu::BufferUsages::STORAGE,
    )
}

/// 3×3 conv weights `[cout, cin, 3, 3]` → rows indexed `ci * 9 + tap` of `cout` padded to the
/// kernel's output block.
/// For `Conv3x3Sg` (and its fallback), grouped by 8 output channels instead.
fn pack_conv3x3(w: &ConvWeights, kernel: Kernel) -> (Vec<f32>, Vec<f32>) {
    let [cout, cin, _, _] = w.shape;
    let block = kernel.out_block();
    let packed = match kernel {
        Kernel::Conv3x3Sg(_) => pack_conv3x3_grouped(&w.weight, cout, cin),
        _ => pack_rows(cin * 9, cout, block, |r, co| w.weight[co * cin * 9 + r]),
    };
    let bias = pack_rows(1, cout, block, |_, co| {
        w.bias.as_ref().map_or(0.0, |b| b[co])
    });
    (packed, bias)
}

impl GpuModel {
    /// The subgroup size the subgroup kernels run with here (`None`: the kernels without
    /// subgroups run).
    pub fn subgroup_size(&self) -> Option<u32> {
        self.sg
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        model: &UNet,
        opts: GpuOptions,
    ) -> Result<GpuModel> {
        pollster::block_on(GpuModel::new_async(device, queue, model, opts))
    }

    /// `new` for callers that cannot block (the browser).
    pub async fn new_async(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        model: &UNet,
        opts: GpuOptions,
    ) -> Result<GpuModel> {
        let sg = match opts.conv3x3 {
            None | Some(Kernel::Conv3x3Sg(_)) => {
                super::fixed_subgroup_size_async(device, queue).await
            }
            Some(_) => None,
        };
        scoped_async(device, "uploading the model", || {
            GpuModel::build(device, queue, model, opts, sg)
        })
        .await?
    }

    fn build(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        model: &UNet,
        opts: GpuOptions,
        sg: Option<u32>,
    ) -> Result<GpuModel> {
        let limits = device.limits();
        let mut weight_bytes = 0u64;
        let mut upload = |label: &str, data: &[f32]| -> Result<wgpu::Buffer> {
            let bytes = 4 * data.len() as u64;
            if bytes > limits.max_storage_buffer_binding_size {
                return Err(Error::ExceedsLimit {
                    what: format!("weights of {label}"),
                    needed: bytes,
                    limit: "max_storage_buffer_binding_size",
                    max: limits.max_storage_buffer_binding_size,
                });
            }
            weight_bytes += bytes;
            Ok(storage(device, queue, label, data))
        };
        let eps = model.spec.bn_eps;
        let g = Graph::build(
            &model.spec,
            [
                1,
                model.spec.in_channels,
                1 << model.spec.depth(),
                1 << model.spec.depth(),
            ],
            opts.fold_bn,
        )?;
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        for op in &g.ops {
            if let Op::Conv3x3 { conv, fused, .. } = op {
                let (w, bn) = conv.weights(model);
                let name = conv.name();
                // Layers of 8 channels and more are packed for the subgroup kernel where it runs;
                // its XB (or its fallback on rows it cannot take) is picked per plan.
                let kernel = match opts.conv3x3 {
                    Some(Kernel::Conv3x3Sg(_)) | None if sg.is_some() && w.shape[0] >= 8 => {
                        Kernel::Conv3x3Sg(0)
                    }
                    Some(Kernel::Conv3x3Sg(_) | Kernel::Conv3x3Co8Grouped) | None => {
                        Kernel::conv3x3_for(w.shape[0])
                    }
                    Some(k @ (Kernel::Conv3x3Co4 | Kernel::Conv3x3Co8)) => k,
                    Some(k) => {
                        return Err(Error::InvalidArgument(format!(
                            "{k:?} is not a float32 3×3 conv kernel"
                        )))
                    }
                };
                let folded;
                let w = if *fused {
                    folded = fold_bn(w, bn, eps);
                    &folded
                } else {
                    w
                };
                let (packed, bias) = pack_conv3x3(w, kernel);
                let [cout, cin, _, _] = w.shape;
                let wino = if opts.winograd
                    && opts.conv3x3.is_none()
                    && kernel == Kernel::Conv3x3Sg(0)
                    && winograd::wants(cin, cout)
                {
                    let u = winograd::pack_u(&w.weight, cout, cin);
                    Some(upload(&format!("{name} (winograd)"), &u)?)
                } else {
                    None
                };
                convs.insert(
                    *conv,
                    LayerBuffers {
                        a: upload(&name, &packed)?,
                        b: upload(&name, &bias)?,
                        kernel,
                        wino,
                    },
                );
                if !*fused {
                    let (scale, shift) = bn.scale_shift(eps);
                    bns.insert(
                        *conv,
                        LayerBuffers {
                            a: upload(&name, &scale)?,
                            b: upload(&name, &shift)?,
                            kernel: Kernel::BnRelu,
                            wino: None,
                        },
                    );
                }
            }
        }
        let ups = model
            .ups
            .iter()
            .enumerate()
            .map(|(l, u)| {
                let [cin, cout, _, _] = u.up.shape;
                // PyTorch layout [cin, cout, ky, kx] → rows ci * 4 + tap (or grouped for the
                // subgroup kernel).
                let kernel = if sg.is_some() {
                    Kernel::UpConvSg
                } else {
                    Kernel::UpConv
                };
                let blk = if sg.is_some() {
                    4
                } else {
                    Kernel::UpConv.out_block()
                };
                let packed = match kernel {
                    Kernel::UpConvSg => pack_upconv_grouped(&u.up.weight, cin, cout),
                    _ => pack_rows(cin * 4, cout, blk, |r, co| {
                        u.up.weight[((r / 4) * cout + co) * 4 + r % 4]
                    }),
                };
                let bias = pack_rows(1, cout, blk, |_, co| u.up.bias.as_ref().expect("bias")[co]);
                let name = format!("ups.{}", 2 * l);
                Ok(LayerBuffers {
                    a: upload(&name, &packed)?,
                    b: upload(&name, &bias)?,
                    kernel,
                    wino: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let [cout, cin, _, _] = model.head.shape;
        let hw = pack_vec4(cin, cout, |ci, co| model.head.weight[co * cin + ci]);
        let hb = pack_vec4(1, cout, |_, co| model.head.bias.as_ref().expect("bias")[co]);
        let head = LayerBuffers {
            a: upload("final_conv", &hw)?,
            b: upload("final_conv", &hb)?,
            kernel: Kernel::Head,
            wino: None,
        };
        let mut pipelines: HashMap<_, _> = Kernel::ALL
            .iter()
            .map(|&k| (k, k.pipeline(device)))
            .collect();
        if let Some(sg) = sg {
            for xb in [1, 2, 4, 8].into_iter().filter(|&xb| xb <= sg) {
                let k = Kernel::Conv3x3Sg(xb);
                pipelines.insert(k, k.pipeline_sg(device, sg));
            }
            let k = Kernel::Conv3x3Co8Grouped;
            pipelines.insert(k, k.pipeline(device));
            pipelines.insert(Kernel::UpConvSg, Kernel::UpConvSg.pipeline_sg(device, sg));
            if convs.values().any(|c| c.wino.is_some()) {
                for k in [Kernel::WinoInput, Kernel::WinoOutput] {
                    pipelines.insert(k, k.pipeline(device));
                }
                pipelines.insert(Kernel::WinoGemm, Kernel::WinoGemm.pipeline_sg(device, sg));
            }
        }
        Ok(GpuModel {
            device: device.clone(),
            queue: queue.clone(),
            spec: model.spec.clone(),
            opts,
            pipelines,
            sg,
            convs,
            bns,
            ups,
            head,
            weight_bytes,
        })
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Compile the network for one NCHW input shape.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn plan(&self, input: Shape) -> Result<Plan> {
        pollster::block_on(self.plan_async(input))
    }

    /// `plan` for callers that cannot block (the browser).
    pub async fn plan_async(&self, input: Shape) -> Result<Plan> {
        let graph = Graph::build(&self.spec, input, self.opts.fold_bn)?;
        let align =
            ARENA_ALIGN.max(self.device.limits().min_storage_buffer_offset_alignment as u64);
        // The Winograd layers, and their scratch (V, M) as tensors alive during their op only.
        let (wino, temps) = winograd::plan_layers(
            &graph,
            |conv| self.convs[conv].wino.is_some(),
            self.sg,
            self.opts.winograd_chunk_bytes,
            self.device.limits().max_storage_buffer_binding_size,
        );
        let sizes = graph
            .shapes
            .iter()
            .map(|&s| crate::plan::f32_tensor_bytes(s))
            .collect();
        let mem = plan_memory_temps(&graph, align, self.opts.keep_intermediates, sizes, &temps);
        check_limits(&self.device.limits(), &graph, &mem)?;
        scoped_async(&self.device, "compiling the plan", || {
            self.build_plan(graph, mem, &wino)
        })
        .await?
    }

    fn build_plan(
        &self,
        graph: Graph,
        mem: MemoryPlan,
        wino: &[Option<winograd::WinoLayer>],
    ) -> Result<Plan> {
        let device = &self.device;
        let limits = device.limits();
        let maxd = limits.max_compute_workgroups_per_dimension;

        // Per op: kernel, params (8 words), workgroups, and bind group entries.
        let mut specs = Vec::with_capacity(graph.ops.len());
        for (i, op) in graph.ops.iter().enumerate() {
            if let (
                Some((l, scratch)),
                Op::Conv3x3 {
                    a,
                    b,
                    out,
                    conv,
                    fused,
                },
            ) = (&wino[i], op)
            {
                let wb = &self.convs[conv];
                let [_, c, h, w] = graph.shapes[*out].map(|v| v as u32);
                let srcs: Vec<_> = std::iter::once(*a)
                    .chain(*b)
                    .map(|t| (t, graph.shapes[t][1] as u32))
                    .collect();
                specs.extend(l.steps(
                    self.sg.expect("winograd runs with subgroups"),
                    maxd,
                    &srcs,
                    *out,
                    [c, h, w],
                    wb.wino.as_ref().expect("transformed weights"),
                    &wb.b,
                    *scratch,
                    *fused,
                    &op.label(),
                    graph.flops(op),
                ));
                continue;
            }
            let shape = |t: usize| graph.shapes[t].map(|v| v as u32);
            let [n, c, h, w] = shape(op.output());
            let total = |v: u32| v as u64 * h as u64 * w as u64;
            let cog = c.div_ceil(4);
            let (kernel, params, groups, bufs): (Kernel, [u32; 8], [u32; 3], Vec<Binding>) =
                match op {
                    Op::Conv3x3 {
                        a,
                        b,
                        out,
                        conv,
                        fused,
                    } => {
                        let ca = shape(*a)[1];
                        let cb = b.map_or(0, |b| shape(b)[1]);
                        let wb = &self.convs[conv];
                        let kernel = match wb.kernel {
                            Kernel::Conv3x3Sg(_) => {
                                Kernel::conv3x3_sg_for(self.sg, h as usize, w as usize)
                                    .unwrap_or(Kernel::Conv3x3Co8Grouped)
                            }
                            k => k,
                        };
                        let blocks = c.div_ceil(kernel.out_block() as u32);
                        let (groups, blocks_fast) = match kernel {
                            Kernel::Conv3x3Sg(xb) => {
                                let px = w.div_ceil(CONV_PX * xb);
                                let py = h.div_ceil(self.sg.unwrap_or(8) / xb);
                                // The output-channel blocks fastest where the layer's input is
                                // larger than its weights: the blocks of one patch then read the
                                // same input rows one after another, from cache, and only the
                                // (smaller) weights stream.
                                if h as u64 * w as u64 > c as u64 * 9
                                    && px as u64 * blocks as u64 <= maxd as u64
                                {
                                    ([px * blocks, py, n], true)
                                } else {
                                    ([px, py, n * blocks], false)
                                }
                            }
                            _ => (
                                [
                                    w.div_ceil(CONV_PX).div_ceil(CONV_WG.0),
                                    h.div_ceil(CONV_WG.1),
                                    n * blocks,
                                ],
                                false,
                            ),
                        };
                        let bufs = vec![
                            Binding::Arena(*a),
                            b.map_or(Binding::Unused, Binding::Arena),
                            Binding::Weights(&wb.a),
                            Binding::Weights(&wb.b),
                            Binding::Arena(*out),
                        ];
                        (
                            kernel,
                            [
                                n,
                                ca,
                                cb,
                                c,
                                h,
                                w,
                                *fused as u32 | (blocks_fast as u32) << 1,
                                blocks,
                            ],
                            groups,
                            bufs,
                        )
                    }
                    Op::BnRelu { x, out, conv } => {
                        let t = total(n * c);
                        let bb = &self.bns[conv];
                        let bufs = vec![
                            Binding::Arena(*x),
                            Binding::Weights(&bb.a),
                            Binding::Weights(&bb.b),
                            Binding::Arena(*out),
                        ];
                        (
                            Kernel::BnRelu,
                            [t as u32, c, h * w, 0, 0, 0, 0, 0],
                            linear_groups(t, maxd),
                            bufs,
                        )
                    }
                    Op::MaxPool { x, out } => {
                        let [_, _, ih, iw] = shape(*x);
                        let t = total(n * c);
                        (
                            Kernel::MaxPool,
                            [t as u32, ih, iw, 0, 0, 0, 0, 0],
                            linear_groups(t, maxd),
                            vec![Binding::Arena(*x), Binding::Arena(*out)],
                        )
                    }
                    Op::UpConv { x, out, level } => {
                        let [_, cin, ih, iw] = shape(*x);
                        let lb = &self.ups[*level];
                        let blocks = c.div_ceil(lb.kernel.out_block() as u32);
                        let groups = match lb.kernel {
                            // One subgroup per workgroup, one input pixel pair per invocation.
                            Kernel::UpConvSg => {
                                let wgs = (ih as u64 * iw.div_ceil(2) as u64)
                                    .div_ceil(self.sg.unwrap_or(8) as u64);
                                let x = wgs.min(maxd as u64);
                                [x as u32, wgs.div_ceil(x) as u32, n * blocks]
                            }
                            _ => [
                                iw.div_ceil(2).div_ceil(CONV_WG.0),
                                (2 * ih).div_ceil(CONV_WG.1),
                                n * blocks,
                            ],
                        };
                        let bufs = vec![
                            Binding::Arena(*x),
                            Binding::Weights(&lb.a),
                            Binding::Weights(&lb.b),
                            Binding::Arena(*out),
                        ];
                        (lb.kernel, [n, cin, c, blocks, ih, iw, 0, 0], groups, bufs)
                    }
                    Op::Resize { x, out } => {
                        let [_, _, ih, iw] = shape(*x);
                        let t = total(n * c);
                        let scale = |i: u32, o: u32| {
                            if o > 1 {
                                (i as f32 - 1.0) / (o as f32 - 1.0)
                            } else {
                                0.0
                            }
                        };
                        let params = [
                            t as u32,
                            ih,
                            iw,
                            h,
                            w,
                            scale(ih, h).to_bits(),
                            scale(iw, w).to_bits(),
                            0,
                        ];
                        (
                            Kernel::Resize,
                            params,
                            linear_groups(t, maxd),
                            vec![Binding::Arena(*x), Binding::Arena(*out)],
                        )
                    }
                    Op::Head { x, out } => {
                        let cin = shape(*x)[1];
                        let t = total(n * cog);
                        let bufs = vec![
                            Binding::Arena(*x),
                            Binding::Weights(&self.head.a),
                            Binding::Weights(&self.head.b),
                            Binding::Arena(*out),
                        ];
                        (
                            Kernel::Head,
                            [n, cin, c, cog, h * w, t as u32, 0, 0],
                            linear_groups(t, maxd),
                            bufs,
                        )
                    }
                };
            specs.push(StepSpec {
                kernel,
                params,
                groups,
                bufs,
                label: op.label(),
                flops: graph.flops(op),
                tensors: op.inputs().into_iter().chain([op.output()]).collect(),
                output: op.output(),
            });
        }
        // Every dispatch (the Winograd layers' several per op too) within the per-dimension limit.
        if let Some(s) = specs.iter().find(|s| s.groups.iter().any(|&g| g > maxd)) {
            return Err(Error::ExceedsLimit {
                what: format!("{} dispatch of {:?} workgroups", s.label, s.groups),
                needed: *s.groups.iter().max().unwrap() as u64,
                limit: "max_compute_workgroups_per_dimension",
                max: maxd as u64,
            });
        }
        Ok(assemble(
            device,
            &self.queue,
            graph,
            mem,
            specs,
            &self.pipelines,
            None,
        ))
    }
}
