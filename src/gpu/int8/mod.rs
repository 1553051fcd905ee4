//! The int8 GPU engine: the int8 model of `compress --int8` run as integer shaders end to end,
//! bit-exact with the CPU int8 engine.
//!
//! Activations stay uint8 on the device in the CPU engine's layout (`cpu::int8::QAct`: 4
//! channels per u32, planes with a border of the zero point), so the host quantizes and packs the
//! input once and reads back float logits from the head. Weights are the CPU engine's prepared
//! GEMM rows (`Int8Model`) regrouped for the shaders: one u32 per (output channel, 4 input
//! channels, tap). Every kernel requantizes with the CPU rule (`lib/int8_common.wgsl`); the
//! kernels write tensor interiors, and a border pass puts the zero point around each tensor
//! (arena memory is reused). The plan is the float engine's: one command buffer, one submit.

mod pack;
#[cfg(not(target_arch = "wasm32"))]
mod timing;

use std::collections::HashMap;

use super::kernels::{linear_groups, Kernel, CONV_PX, CONV_WG};
use super::scoped_async;
use super::step::{assemble, check_limits, Binding, Plan, StepSpec};
use crate::compress::{FirstConv, QParams, QUNet};
use crate::cpu::int8::Int8Model;
use crate::model::UNetSpec;
use crate::plan::{plan_memory_sized, ConvRef, Graph, Op, Shape, ARENA_ALIGN};
use crate::{Error, Result};
use pack::{pack_upconv, Packed3x3};
#[cfg(not(target_arch = "wasm32"))]
pub use timing::{time_conv_kernels, KernelTiming};

/// How the int8 kernels take 4-lane dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dot4 {
    /// WGSL's `dot4I8Packed` (the `packed_4x8_integer_dot_product` language extension).
    Packed,
    /// Unpacked with shifts: for implementations without the extension. Same results.
    Unpacked,
}

impl Dot4 {
    /// `Packed` where the WGSL implementation has the extension (`WUNET_DOT4=unpacked` forces
    /// the fallback, for comparisons).
    pub fn detect(features: wgpu::WgslLanguageFeatures) -> Dot4 {
        if std::env::var("WUNET_DOT4").is_ok_and(|v| v == "unpacked") {
            return Dot4::Unpacked;
        }
        if features.contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct) {
            Dot4::Packed
        } else {
            Dot4::Unpacked
        }
    }
}

/// How a 3×3 conv layer picks its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvChoice {
    /// Time the dense and the sparse kernel on the layer (at `GpuInt8Options::probe`) and keep
    /// the faster; layers without a zero 8×4 block stay dense.
    Measure,
    Dense,
    Sparse,
}

/// Options of the int8 GPU engine.
#[derive(Clone, Debug)]
pub struct GpuInt8Options {
    pub dot4: Dot4,
    /// Give every tensor its own memory so `Plan::run_all_raw` can read back all of them.
    pub keep_intermediates: bool,
    pub conv: ConvChoice,
    /// The input size (h, w) at which `ConvChoice::Measure` times each layer's kernels.
    pub probe: (usize, usize),
}

impl Default for GpuInt8Options {
    fn default() -> Self {
        GpuInt8Options {
            dot4: Dot4::Packed,
            keep_intermediates: false,
            conv: ConvChoice::Measure,
            probe: (128, 128),
        }
    }
}

/// A layer's weights and requantization constants on the device.
struct Layer {
    weights: wgpu::Buffer,
    rq: wgpu::Buffer,
    /// The sparse kernel's entry lists; `None`: the dense kernel.
    entries: Option<wgpu::Buffer>,
    /// Output blocks (3×3 convs: of 8 channels) or groups (transposed conv: of 4).
    blocks: u32,
    /// Output zero point | lowest output << 8.
    zl: u32,
}

/// What `GpuInt8Model` chose for one 3×3 conv layer.
#[derive(Clone, Debug)]
pub struct LayerChoice {
    pub name: String,
    pub kernel: Kernel,
    /// Fraction of its 8×4 weight blocks (8 output × 4 input channels, one tap) that are nonzero.
    pub density: f64,
    /// Measured milliseconds of (dense, sparse) at the probe size, where measured.
    pub ms: Option<(f64, f64)>,
}

/// An int8 model's weights uploaded and its pipelines created, ready to plan for any input shape.
pub struct GpuInt8Model {
    device: wgpu::Device,
    queue: wgpu::Queue,
    spec: UNetSpec,
    opts: GpuInt8Options,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    input: QParams,
    convs: HashMap<ConvRef, Layer>,
    ups: Vec<Layer>,
    head_w: wgpu::Buffer,
    head_base: wgpu::Buffer,
    weight_bytes: u64,
    choices: Vec<LayerChoice>,
}

/// Bytes of a packed uint8 tensor (`QAct` without its slack).
fn packed_bytes([n, c, h, w]: Shape) -> u64 {
    (n * c.div_ceil(4) * (h + 2) * (w + 2) * 4) as u64
}

impl GpuInt8Model {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        model: &QUNet,
        opts: GpuInt8Options,
    ) -> Result<GpuInt8Model> {
        pollster::block_on(GpuInt8Model::new_async(device, queue, model, opts))
    }

    /// `new` for callers that cannot block (the browser; there `ConvChoice::Measure` decides
    /// by block density instead of timing: the sparse kernel where at most 70 % of the blocks
    /// are nonzero).
    pub async fn new_async(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        model: &QUNet,
        opts: GpuInt8Options,
    ) -> Result<GpuInt8Model> {
        let FirstConv::Int8(input) = model.first else {
            return Err(Error::InvalidArgument(
                "the GPU int8 engine runs models whose first conv is int8 (what `wunet compress --int8` writes by default); this one keeps it float32 (--float-first): run it with --device cpu".into(),
            ));
        };
        let prepared = Int8Model::new(model)?;
        scoped_async(device, "uploading the int8 model", || {
            GpuInt8Model::build(device, queue, &prepared, input, opts)
        })
        .await?
    }

    fn build(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        m: &Int8Model,
        input: QParams,
        opts: GpuInt8Options,
    ) -> Result<GpuInt8Model> {
        let max = device.limits().max_storage_buffer_binding_size;
        let mut weight_bytes = 0u64;
        let packed = opts.dot4 == Dot4::Packed;
        let pipelines: HashMap<Kernel, wgpu::ComputePipeline> = Kernel::INT8
            .iter()
            .map(|&k| (k, k.pipeline_with(device, packed)))
            .collect();
        // Each layer's shapes at the probe size, for timing its kernels.
        #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
        let probe = Graph::build(
            &m.spec,
            [1, m.spec.in_channels, opts.probe.0, opts.probe.1],
            true,
        )?;
        let mut convs = HashMap::new();
        let mut choices = Vec::new();
        let mut refs: Vec<&ConvRef> = m.convs.keys().collect();
        refs.sort_by_key(|r| r.name());
        for r in refs {
            let pc = &m.convs[r];
            let name = r.name();
            let packed = Packed3x3::new(pc);
            let density = packed.density;
            let dense = || packed.dense(device, queue, &name);
            let sparse = || packed.sparse(device, queue, &name);
            let (layer, ms) = match opts.conv {
                ConvChoice::Dense => (dense(), None),
                ConvChoice::Sparse => (sparse(), None),
                ConvChoice::Measure if density >= 1.0 => (dense(), None),
                #[cfg(target_arch = "wasm32")]
                ConvChoice::Measure => (if density <= 0.7 { sparse() } else { dense() }, None),
                #[cfg(not(target_arch = "wasm32"))]
                ConvChoice::Measure => {
                    let op = probe
                        .ops
                        .iter()
                        .find(|op| matches!(op, Op::Conv3x3 { conv, .. } if conv == r))
                        .expect("every conv is in the graph");
                    let (d, sp) = (dense(), sparse());
                    let td = timing::time_conv(device, queue, &pipelines, &probe, op, &d)?;
                    let ts = timing::time_conv(device, queue, &pipelines, &probe, op, &sp)?;
                    (if ts < td { sp } else { d }, Some((td, ts)))
                }
            };
            let bytes = layer.weights.size()
                + layer.rq.size()
                + layer.entries.as_ref().map_or(0, |e| e.size());
            if bytes > max {
                return Err(Error::ExceedsLimit {
                    what: format!("weights of {name}"),
                    needed: bytes,
                    limit: "max_storage_buffer_binding_size",
                    max,
                });
            }
            weight_bytes += bytes;
            choices.push(LayerChoice {
                name,
                kernel: if layer.entries.is_some() {
                    Kernel::Conv3x3SparseI8
                } else {
                    Kernel::Conv3x3I8
                },
                density,
                ms,
            });
            convs.insert(*r, layer);
        }
        let mut upload = |label: &str, data: &[u8]| -> Result<wgpu::Buffer> {
            let bytes = data.len() as u64;
            if bytes > max {
                return Err(Error::ExceedsLimit {
                    what: format!("weights of {label}"),
                    needed: bytes,
                    limit: "max_storage_buffer_binding_size",
                    max,
                });
            }
            weight_bytes += bytes;
            Ok(make(device, queue, label, data))
        };
        let ups = m
            .ups
            .iter()
            .enumerate()
            .map(|(l, pc)| {
                let (w, rq, gout) = pack_upconv(pc);
                let name = format!("ups.{}", 2 * l);
                Ok(Layer {
                    weights: upload(&name, bytemuck::cast_slice(&w))?,
                    rq: upload(&name, bytemuck::cast_slice(&rq))?,
                    entries: None,
                    blocks: gout,
                    zl: pc.out.zero as u32,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The head: y_o = base_o + Σ_c (s · w_oc) · q_c, as the CPU engine computes it.
        let [cout, cin, _, _] = m.head.shape;
        let gin = cin.div_ceil(4);
        let s = m.head_in.scale;
        let mut ws = vec![0f32; cout * gin * 4];
        let mut base = vec![0f32; cout];
        for o in 0..cout {
            let row: Vec<f32> = m.head.weight[o * cin..(o + 1) * cin]
                .iter()
                .map(|v| s * v)
                .collect();
            ws[o * gin * 4..o * gin * 4 + cin].copy_from_slice(&row);
            let b = m.head.bias.as_ref().map_or(0.0, |b| b[o]);
            base[o] = b - m.head_in.zero as f32 * row.iter().sum::<f32>();
        }
        let head_w = upload("final_conv", bytemuck::cast_slice(&ws))?;
        let head_base = upload("final_conv", bytemuck::cast_slice(&base))?;
        Ok(GpuInt8Model {
            device: device.clone(),
            queue: queue.clone(),
            spec: m.spec.clone(),
            opts,
            pipelines,
            input,
            convs,
            ups,
            head_w,
            head_base,
            weight_bytes,
            choices,
        })
    }

    /// The kernel each 3×3 conv runs (name order), with its block density and timings.
    pub fn choices(&self) -> &[LayerChoice] {
        &self.choices
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// Bytes of weights (and requantization constants) on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// The dot-product variant the kernels were built with.
    pub fn dot4(&self) -> Dot4 {
        self.opts.dot4
    }

    /// Compile the network for one NCHW input shape.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn plan(&self, input: Shape) -> Result<Plan> {
        pollster::block_on(self.plan_async(input))
    }

    /// `plan` for callers that cannot block (the browser).
    pub async fn plan_async(&self, input: Shape) -> Result<Plan> {
        let graph = Graph::build(&self.spec, input, true)?;
        let sizes = (0..graph.shapes.len())
            .map(|t| {
                if t == graph.output {
                    graph.bytes(t)
                } else {
                    packed_bytes(graph.shapes[t])
                }
            })
            .collect();
        let align =
            ARENA_ALIGN.max(self.device.limits().min_storage_buffer_offset_alignment as u64);
        let mem = plan_memory_sized(&graph, align, self.opts.keep_intermediates, sizes);
        check_limits(&self.device.limits(), &graph, &mem)?;
        // The exact resize sums 255 · Dy · Dx in a u32.
        for op in &graph.ops {
            if let Op::Resize { out, .. } = op {
                let [_, _, h, w] = graph.shapes[*out];
                let d = (h.max(2) - 1) as u64 * (w.max(2) - 1) as u64;
                if 255 * d > u32::MAX as u64 {
                    return Err(Error::ExceedsLimit {
                        what: format!("the int8 resize to {h}×{w}"),
                        needed: 255 * d,
                        limit: "u32 range of the exact int8 resize",
                        max: u32::MAX as u64,
                    });
                }
            }
        }
        scoped_async(&self.device, "compiling the int8 plan", || {
            self.build_plan(graph, mem)
        })
        .await?
    }

    fn build_plan(&self, graph: Graph, mem: crate::plan::MemoryPlan) -> Result<Plan> {
        let maxd = self.device.limits().max_compute_workgroups_per_dimension;
        let mut specs = Vec::new();
        for op in &graph.ops {
            let shape = |t: usize| graph.shapes[t].map(|v| v as u32);
            let [n, c, h, w] = shape(op.output());
            let g4 = |c: u32| c.div_ceil(4);
            let words = |v: u32| n as u64 * g4(c) as u64 * v as u64;
            let (kernel, params, groups, bufs): (Kernel, [u32; 8], [u32; 3], Vec<Binding>) =
                match op {
                    Op::Conv3x3 {
                        a, b, out, conv, ..
                    } => conv_dispatch(&self.convs[conv], &graph, *a, *b, *out),
                    Op::UpConv { x, out, level } => {
                        let l = &self.ups[*level];
                        let [_, cin, ih, iw] = shape(*x);
                        (
                            Kernel::UpConvI8,
                            [n, g4(cin), ih, iw, l.blocks, l.zl, 0, 0],
                            [iw.div_ceil(CONV_WG.0), ih.div_ceil(CONV_WG.1), n * l.blocks],
                            vec![
                                Binding::Arena(*x),
                                Binding::Weights(&l.weights),
                                Binding::Weights(&l.rq),
                                Binding::Arena(*out),
                            ],
                        )
                    }
                    Op::MaxPool { x, out } => {
                        let [_, _, ih, iw] = shape(*x);
                        let t = words(h * w);
                        (
                            Kernel::MaxPoolI8,
                            [t as u32, ih, iw, 0, 0, 0, 0, 0],
                            linear_groups(t, maxd),
                            vec![Binding::Arena(*x), Binding::Arena(*out)],
                        )
                    }
                    Op::Resize { x, out } => {
                        let [_, _, ih, iw] = shape(*x);
                        let t = words(h * w);
                        (
                            Kernel::ResizeI8,
                            [t as u32, ih, iw, h, w, 0, 0, 0],
                            linear_groups(t, maxd),
                            vec![Binding::Arena(*x), Binding::Arena(*out)],
                        )
                    }
                    Op::Head { x, out } => {
                        let t = n as u64 * h as u64 * w as u64;
                        (
                            Kernel::HeadI8,
                            [t as u32, g4(shape(*x)[1]), h, w, c, 0, 0, 0],
                            linear_groups(t, maxd),
                            vec![
                                Binding::Arena(*x),
                                Binding::Weights(&self.head_w),
                                Binding::Weights(&self.head_base),
                                Binding::Arena(*out),
                            ],
                        )
                    }
                    Op::BnRelu { .. } => unreachable!("int8 graphs fold BatchNorm"),
                };
            if groups.iter().any(|&g| g > maxd) {
                return Err(Error::ExceedsLimit {
                    what: format!("{} dispatch of {groups:?} workgroups", op.label()),
                    needed: *groups.iter().max().unwrap() as u64,
                    limit: "max_compute_workgroups_per_dimension",
                    max: maxd as u64,
                });
            }
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
            // The border of every packed output (the head's is float and has none).
            if !matches!(op, Op::Head { .. }) {
                let t = words(2 * (w + 2) + 2 * h);
                let zero = match op {
                    Op::Conv3x3 { conv, .. } => self.convs[conv].zl & 0xFF,
                    Op::UpConv { level, .. } => self.ups[*level].zl,
                    Op::MaxPool { x, .. } | Op::Resize { x, .. } => {
                        // The zero point of the input, found at the producer of x.
                        self.zero_of(&graph, *x)
                    }
                    _ => unreachable!(),
                };
                specs.push(StepSpec {
                    kernel: Kernel::BorderI8,
                    params: [t as u32, h, w, zero * 0x0101_0101, 0, 0, 0, 0],
                    groups: linear_groups(t, maxd),
                    bufs: vec![Binding::Arena(op.output())],
                    label: format!("{} border", op.label()),
                    flops: 0,
                    tensors: vec![op.output()],
                    output: op.output(),
                });
            }
        }
        Ok(assemble(
            &self.device,
            &self.queue,
            graph,
            mem,
            specs,
            &self.pipelines,
            Some(self.input),
        ))
    }

    /// The zero point of tensor `t` (through pools and resizes, which keep it).
    fn zero_of(&self, g: &Graph, t: usize) -> u32 {
        if t == g.input {
            return self.input.zero as u32;
        }
        let op = g
            .ops
            .iter()
            .find(|op| op.output() == t)
            .expect("every tensor but the input has a producer");
        match op {
            Op::Conv3x3 { conv, .. } => self.convs[conv].zl & 0xFF,
            Op::UpConv { level, .. } => self.ups[*level].zl,
            Op::MaxPool { x, .. } | Op::Resize { x, .. } => self.zero_of(g, *x),
            _ => unreachable!("float tensors have no zero point"),
        }
    }
}

/// A storage buffer holding `data`.
fn make(device: &wgpu::Device, queue: &wgpu::Queue, label: &str, data: &[u8]) -> wgpu::Buffer {
    super::buffer_with(device, queue, label, data, wgpu::BufferUsages::STORAGE)
}

/// Kernel, parameters, workgroups and bindings of a 3×3 conv reading `a` (and `b`) into `out`.
fn conv_dispatch<'a>(
    l: &'a Layer,
    g: &Graph,
    a: usize,
    b: Option<usize>,
    out: usize,
) -> (Kernel, [u32; 8], [u32; 3], Vec<Binding<'a>>) {
    let [n, c, h, w] = g.shapes[out].map(|v| v as u32);
    let g4 = |t: usize| (g.shapes[t][1] as u32).div_ceil(4);
    let (ga, gb) = (g4(a), b.map_or(0, g4));
    // The sparse kernel binds its block lists between the weights and the requantization.
    let (kernel, entries) = match &l.entries {
        None => (Kernel::Conv3x3I8, None),
        Some(e) => (Kernel::Conv3x3SparseI8, Some(Binding::Weights(e))),
    };
    let bufs = [Binding::Arena(a), b.map_or(Binding::Unused, Binding::Arena)]
        .into_iter()
        .chain([Binding::Weights(&l.weights)])
        .chain(entries)
        .chain([Binding::Weights(&l.rq), Binding::Arena(out)])
        .collect();
    (
        kernel,
        [n, ga, gb, h, w, c.div_ceil(4), l.blocks, l.zl],
        [
            w.div_ceil(CONV_PX).div_ceil(CONV_WG.0),
            h.div_ceil(CONV_WG.1),
            n * l.blocks,
        ],
        bufs,
    )
}
