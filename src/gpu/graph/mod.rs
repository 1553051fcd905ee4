//! Any layer graph on the GPU, float32. `GpuGraphModel` holds a `LayerGraph` and the pipelines
//! of the `shaders/graph/` kernels (created once, the subgroup kernels' by the first plan that
//! runs them; shapes live in uniforms, so they serve every input size). Where the adapter has
//! one fixed subgroup size, convs and transposed convs run on subgroup kernels (`lower_sg`: 4
//! pixels × 8 output channels per invocation, weights handed out by shuffles), the plain kernels
//! elsewhere. `GpuGraphModel::plan(shape)` instantiates and fuses the graph for one input
//! shape, uploads its weights (with the per-layer bias, scale/shift and PRelu vectors) into
//! constant buffers, plans the activation arena by tensor lifetimes (`plan::place_by_size`,
//! greedy by size) and lowers every layer (`lower`) into dispatches with one uniform buffer and
//! one bind group each: a `GraphPlan`. `GraphPlan::run` writes the input, records the whole
//! network into one compute pass of one command buffer, submits once and reads back the output.
//!
//! Layout: tensors in this arena are plain dense NCHW (no padded channel planes as in the
//! U-Net engine's `plan::plane_stride`): the general kernels index planes of any size, and the
//! input and output go in and out without repacking.
//!
//! This is a small executor beside `step::Plan` rather than a use of it: `Plan` is typed by the
//! U-Net `plan::Graph` (its ops, padded planes, int8 inputs) and 8-word parameters, while these
//! kernels take up to 32 words and a `Shaped` graph.

mod lower;
mod lower_sg;
mod profile;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::exec::{read_run, readback_for, record_run};
use super::{buffer_with, scoped_async};
use crate::gpu::exec::Timing;
use crate::graph::{fuse, LayerGraph, Shaped};
use crate::plan::{place_by_size, MemoryPlan, ARENA_ALIGN};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// The kernels of graph plans (`shaders/graph/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GraphKernel {
    /// Any conv: 4 output pixels × 4 output channels per invocation; bias, residual, activation.
    Conv2d,
    /// 3×3 conv, stride 1, padding 1, one group, rows a multiple of 4 wide: 4 pixels × 8 output
    /// channels per invocation, weights shared through subgroup shuffles (adapters with one
    /// fixed subgroup size). The value is XB, the invocations along x per subgroup row, as the
    /// U-Net engine's `Kernel::Conv3x3Sg` (1, 2: columns; 4, 8: patch rows).
    Conv3x3Sg(u32),
    /// Any conv of one group, where `Conv3x3Sg` does not apply: 4 output pixels × 8 output
    /// channels per invocation, weights shared through subgroup shuffles (adapters with one
    /// fixed subgroup size). The value is XB, the invocations along x per subgroup row.
    Conv2dSg(u32),
    /// 3×3 conv, stride 2, padding 1 at the top and left, one group, input rows a multiple of 8
    /// wide (ResNet's downsampling convs): as `Conv2dSg`, but each input row segment is two vec4
    /// loads and a shuffle. The value is XB.
    Conv3x3S2Sg(u32),
    /// 7×7 conv, stride 2, padding 3 at the top and left, one group, input rows a multiple of 8
    /// wide (the ResNet stem): as `Conv3x3S2Sg`, the row's ends from both neighbours. XB.
    Conv7x7S2Sg(u32),
    /// 1×1 conv, stride 1 or 2, no padding, one group, input rows a multiple of 4 (8) wide: one
    /// vec4 (two) per input channel and 4 pixels, weights by shuffles. XB.
    Conv1x1Sg(u32),
    /// Transposed conv whose kernel equals its stride (no padding, dilation, output padding;
    /// one group; input rows a multiple of 4 wide): per tap a 1×1 conv, 4 input pixels × 8
    /// output channels per invocation, weights shared through subgroup shuffles. The value is
    /// XB, the invocations along x per subgroup row.
    ConvTranspose2dSg(u32),
    /// Grouped conv with one input channel per group (depthwise, any multiplier): 4 output
    /// pixels of one channel per invocation.
    DepthwiseConv2d,
    /// Any transposed conv, gather form: 1 output pixel × 4 output channels per invocation.
    ConvTranspose2d,
    /// Affine (per-channel scale and shift) and activations.
    Unary,
    /// Add, Sub, Mul, Div with broadcasting (constant operands from weight buffers).
    Binary,
    /// One input of a channel concatenation.
    Concat,
    Pad,
    Pool,
    /// Mean or max over channels and/or H, W.
    Reduce,
    InstanceNorm,
    /// Softmax over channels.
    Softmax,
    Resize,
}

impl GraphKernel {
    pub const ALL: [GraphKernel; 12] = [
        GraphKernel::Conv2d,
        GraphKernel::DepthwiseConv2d,
        GraphKernel::ConvTranspose2d,
        GraphKernel::Unary,
        GraphKernel::Binary,
        GraphKernel::Concat,
        GraphKernel::Pad,
        GraphKernel::Pool,
        GraphKernel::Reduce,
        GraphKernel::InstanceNorm,
        GraphKernel::Softmax,
        GraphKernel::Resize,
    ];

    /// The subgroup kernels, created where the adapter has one fixed subgroup size (those
    /// whose XB does not exceed it).
    pub const SUBGROUP: [GraphKernel; 24] = [
        GraphKernel::Conv3x3Sg(1),
        GraphKernel::Conv3x3Sg(2),
        GraphKernel::Conv3x3Sg(4),
        GraphKernel::Conv3x3Sg(8),
        GraphKernel::Conv2dSg(1),
        GraphKernel::Conv2dSg(2),
        GraphKernel::Conv2dSg(4),
        GraphKernel::Conv2dSg(8),
        GraphKernel::Conv3x3S2Sg(1),
        GraphKernel::Conv3x3S2Sg(2),
        GraphKernel::Conv3x3S2Sg(4),
        GraphKernel::Conv3x3S2Sg(8),
        GraphKernel::Conv7x7S2Sg(1),
        GraphKernel::Conv7x7S2Sg(2),
        GraphKernel::Conv7x7S2Sg(4),
        GraphKernel::Conv7x7S2Sg(8),
        GraphKernel::Conv1x1Sg(1),
        GraphKernel::Conv1x1Sg(2),
        GraphKernel::Conv1x1Sg(4),
        GraphKernel::Conv1x1Sg(8),
        GraphKernel::ConvTranspose2dSg(1),
        GraphKernel::ConvTranspose2dSg(2),
        GraphKernel::ConvTranspose2dSg(4),
        GraphKernel::ConvTranspose2dSg(8),
    ];

    /// XB of a subgroup kernel (invocations along x per subgroup row).
    fn xb(self) -> Option<u32> {
        match self {
            GraphKernel::Conv3x3Sg(xb)
            | GraphKernel::Conv2dSg(xb)
            | GraphKernel::Conv3x3S2Sg(xb)
            | GraphKernel::Conv7x7S2Sg(xb)
            | GraphKernel::Conv1x1Sg(xb)
            | GraphKernel::ConvTranspose2dSg(xb) => Some(xb),
            _ => None,
        }
    }

    /// Path under `shaders/` without extension.
    pub fn shader(self) -> &'static str {
        match self {
            GraphKernel::Conv2d => "graph/conv2d_f32",
            GraphKernel::Conv3x3Sg(_) => "graph/conv3x3_sg_f32",
            GraphKernel::Conv2dSg(_) => "graph/conv2d_sg_f32",
            GraphKernel::Conv3x3S2Sg(_) => "graph/conv3x3s2_sg_f32",
            GraphKernel::Conv7x7S2Sg(_) => "graph/conv7x7s2_sg_f32",
            GraphKernel::Conv1x1Sg(_) => "graph/conv1x1_sg_f32",
            GraphKernel::ConvTranspose2dSg(_) => "graph/conv_transpose2d_sg_f32",
            GraphKernel::DepthwiseConv2d => "graph/depthwise_conv2d_f32",
            GraphKernel::ConvTranspose2d => "graph/conv_transpose2d_f32",
            GraphKernel::Unary => "graph/unary_f32",
            GraphKernel::Binary => "graph/binary_f32",
            GraphKernel::Concat => "graph/concat_f32",
            GraphKernel::Pad => "graph/pad_f32",
            GraphKernel::Pool => "graph/pool_f32",
            GraphKernel::Reduce => "graph/reduce_f32",
            GraphKernel::InstanceNorm => "graph/instance_norm_f32",
            GraphKernel::Softmax => "graph/softmax_f32",
            GraphKernel::Resize => "graph/resize_f32",
        }
    }

    /// The shader's file name (`conv2d_f32`) and mode, as benchmarks print it.
    pub fn name(self) -> String {
        let file = self.shader().trim_start_matches("graph/");
        match self.xb() {
            Some(xb) => format!("{file} xb{xb}"),
            None => file.to_string(),
        }
    }

    /// The workgroup-size override constants (`sg`: the subgroup size, subgroup kernels).
    fn constants(self, sg: u32) -> Vec<(&'static str, f64)> {
        match self {
            GraphKernel::Conv3x3Sg(xb)
            | GraphKernel::Conv2dSg(xb)
            | GraphKernel::Conv3x3S2Sg(xb)
            | GraphKernel::Conv7x7S2Sg(xb)
            | GraphKernel::Conv1x1Sg(xb)
            | GraphKernel::ConvTranspose2dSg(xb) => vec![("SG", sg as f64), ("XB", xb as f64)],
            GraphKernel::Conv2d
            | GraphKernel::DepthwiseConv2d
            | GraphKernel::ConvTranspose2d
            | GraphKernel::Resize
            | GraphKernel::Pool => {
                vec![
                    ("WX", lower::CONV_WG.0 as f64),
                    ("WY", lower::CONV_WG.1 as f64),
                ]
            }
            _ => vec![("WG", lower::WG_LINEAR as f64)],
        }
    }

    fn pipeline(self, device: &wgpu::Device, sg: u32) -> wgpu::ComputePipeline {
        crate::gpu::kernels::compute_pipeline(device, self.shader(), true, sg, &self.constants(sg))
    }
}

/// Options of a `GpuGraphModel`.
#[derive(Clone, Debug)]
pub struct GpuGraphOptions {
    /// Fuse BatchNorm, activations and residual Adds into the op before them (`graph::fuse`).
    pub fuse: bool,
    /// Every tensor lives to the end of the run (no reuse), so `GraphPlan::run_all` can read
    /// back all of them (per-op tests, debugging).
    pub keep_intermediates: bool,
}

impl Default for GpuGraphOptions {
    fn default() -> Self {
        GpuGraphOptions {
            fuse: true,
            keep_intermediates: false,
        }
    }
}

/// A layer graph prepared for the GPU: its pipelines, created once for every input shape.
pub struct GpuGraphModel {
    device: wgpu::Device,
    queue: wgpu::Queue,
    graph: LayerGraph,
    opts: GpuGraphOptions,
    /// The plain kernels' pipelines (created with the model) and the subgroup kernels' (created
    /// by the first plan that runs each: each compile costs tens of milliseconds on lavapipe,
    /// and a plan needs few of the twenty).
    pipelines: Mutex<HashMap<GraphKernel, wgpu::ComputePipeline>>,
    /// The fixed subgroup size the subgroup kernels run with (`None`: they do not run).
    sg: Option<u32>,
}

impl GpuGraphModel {
    /// Creates every pipeline (an error names the one the device rejects).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        graph: LayerGraph,
        opts: GpuGraphOptions,
    ) -> Result<Self> {
        pollster::block_on(Self::new_async(device, queue, graph, opts))
    }

    /// `new` for callers that cannot block (the browser).
    pub async fn new_async(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        graph: LayerGraph,
        opts: GpuGraphOptions,
    ) -> Result<Self> {
        let mut pipelines = HashMap::new();
        for k in GraphKernel::ALL {
            let p = scoped_async(device, k.shader(), || k.pipeline(device, 0)).await?;
            pipelines.insert(k, p);
        }
        let sg = super::fixed_subgroup_size_async(device, queue).await;
        Ok(GpuGraphModel {
            device: device.clone(),
            queue: queue.clone(),
            graph,
            opts,
            pipelines: Mutex::new(pipelines),
            sg,
        })
    }

    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// The subgroup size the subgroup kernels run with here (`None`: only the plain kernels).
    pub fn subgroup_size(&self) -> Option<u32> {
        self.sg
    }

    /// Instantiates (and fuses, unless turned off) the graph for one NCHW input shape and
    /// compiles it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn plan(&self, input: [usize; 4]) -> Result<GraphPlan> {
        pollster::block_on(self.plan_async(input))
    }

    pub async fn plan_async(&self, input: [usize; 4]) -> Result<GraphPlan> {
        let g = self.graph.instantiate(input)?;
        let g = if self.opts.fuse { fuse(g) } else { g };
        self.plan_shaped_async(g).await
    }

    /// Compiles a runtime graph made elsewhere (tests, other importers), as it is.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn plan_shaped(&self, g: Shaped) -> Result<GraphPlan> {
        pollster::block_on(self.plan_shaped_async(g))
    }

    pub async fn plan_shaped_async(&self, g: Shaped) -> Result<GraphPlan> {
        let device = &self.device;
        let limits = device.limits();
        // Arena: dense NCHW float32 tensors, placed by lifetime.
        let end = g.layers.len();
        let sizes: Vec<u64> = g
            .shapes
            .iter()
            .map(|s| 4 * (s.iter().product::<usize>() as u64).max(1))
            .collect();
        let mut life = vec![(usize::MAX, 0usize); g.shapes.len()];
        life[g.input] = (0, 0);
        for (i, l) in g.layers.iter().enumerate() {
            let o = l.output();
            life[o].0 = life[o].0.min(i);
            life[o].1 = life[o].1.max(i);
            for t in l.inputs() {
                life[t].1 = life[t].1.max(i);
            }
        }
        life[g.output].1 = end;
        if self.opts.keep_intermediates {
            life.iter_mut().for_each(|l| {
                l.0 = l.0.min(end);
                l.1 = end;
            });
        }
        let mem = place_by_size(sizes, life, ARENA_ALIGN);
        let max_bind = limits.max_storage_buffer_binding_size;
        for (t, &s) in mem.sizes.iter().enumerate() {
            if s > max_bind {
                return Err(Error::ExceedsLimit {
                    what: format!("tensor {:?}", g.shapes[t]),
                    needed: s,
                    limit: "max_storage_buffer_binding_size",
                    max: max_bind,
                });
            }
        }
        if mem.arena_bytes > limits.max_buffer_size {
            return Err(Error::ExceedsLimit {
                what: "the activation arena".into(),
                needed: mem.arena_bytes,
                limit: "max_buffer_size",
                max: limits.max_buffer_size,
            });
        }

        // Dispatches, with the weights and per-layer vectors in the constant store.
        let mut store = ConstStore::new(limits.max_buffer_size.min(max_bind));
        let mut weight_refs = HashMap::new();
        let mut dispatches = Vec::new();
        for (i, l) in g.layers.iter().enumerate() {
            let label = format!("{} {}", g.names.get(i).map_or("", |s| s), l.kind());
            let ds = lower::lower(
                &g,
                l,
                &mut store,
                &mut weight_refs,
                limits.max_compute_workgroups_per_dimension,
                self.sg,
            )?;
            dispatches.extend(ds.into_iter().map(|d| (i, label.clone(), d)));
        }
        // The subgroup kernels this plan runs that no plan has run yet.
        let missing: Vec<GraphKernel> = {
            let have = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
            let mut m: Vec<GraphKernel> = dispatches
                .iter()
                .map(|d| d.2.kernel)
                .filter(|k| !have.contains_key(k))
                .collect();
            m.sort();
            m.dedup();
            m
        };
        for k in missing {
            let sg = self
                .sg
                .expect("subgroup kernels are chosen only with subgroups");
            let p = scoped_async(device, k.shader(), || k.pipeline(device, sg)).await?;
            self.pipelines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(k, p);
        }
        let pipelines = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();

        let queue = &self.queue;
        let built = scoped_async(device, "compiling the graph plan", || {
            let consts: Vec<wgpu::Buffer> = store
                .chunks
                .iter()
                .map(|c| {
                    buffer_with(
                        device,
                        queue,
                        "graph constants",
                        c,
                        wgpu::BufferUsages::STORAGE,
                    )
                })
                .collect();
            let arena = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("graph activation arena"),
                size: mem.arena_bytes.max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let dummy = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("unused binding"),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let ustride = (limits.min_uniform_buffer_offset_alignment as u64).max(PARAM_BYTES);
            let mut uniforms = vec![0u8; (ustride as usize) * dispatches.len().max(1)];
            for (k, (_, _, d)) in dispatches.iter().enumerate() {
                let o = k * ustride as usize;
                uniforms[o..o + PARAM_BYTES as usize]
                    .copy_from_slice(bytemuck::cast_slice(&d.params));
            }
            let ubuf = buffer_with(
                device,
                queue,
                "graph plan uniforms",
                &uniforms,
                wgpu::BufferUsages::UNIFORM,
            );
            let steps: Vec<GraphStep> = dispatches
                .iter()
                .enumerate()
                .map(|(k, (layer, label, d))| {
                    let pipeline = pipelines[&d.kernel].clone();
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &ubuf,
                            offset: k as u64 * ustride,
                            size: wgpu::BufferSize::new(PARAM_BYTES),
                        }),
                    }];
                    for (j, b) in d.binds.iter().enumerate() {
                        let resource = match *b {
                            Bind::Arena(t) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &arena,
                                offset: mem.offsets[t],
                                size: wgpu::BufferSize::new(mem.sizes[t]),
                            }),
                            Bind::Const(r) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &consts[r.buffer],
                                offset: r.offset,
                                size: wgpu::BufferSize::new(r.size),
                            }),
                            Bind::Dummy => dummy.as_entire_binding(),
                        };
                        entries.push(wgpu::BindGroupEntry {
                            binding: j as u32 + 1,
                            resource,
                        });
                    }
                    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(label),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                    GraphStep {
                        kernel: d.kernel,
                        layer: *layer,
                        label: label.clone(),
                        workgroups: d.groups,
                        pipeline,
                        bind_group,
                    }
                })
                .collect();
            let readback = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("graph readback"),
                size: mem.sizes[g.output],
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (consts, arena, steps, readback)
        })
        .await?;
        let (consts, arena, steps, readback) = built;
        Ok(GraphPlan {
            device: self.device.clone(),
            queue: self.queue.clone(),
            keep_all: self.opts.keep_intermediates,
            graph: g,
            mem,
            arena,
            readback,
            _consts: consts,
            steps,
            submits: AtomicU64::new(0),
            run_lock: Mutex::new(()),
        })
    }
}

/// Bytes of a dispatch's parameters (the shaders' `Params`, 32 words at most).
const PARAM_BYTES: u64 = 128;

/// A binding of a dispatch (after the uniform at binding 0).
#[derive(Clone, Copy, Debug)]
pub(super) enum Bind {
    /// A tensor's range of the arena.
    Arena(usize),
    /// A range of a constant buffer.
    Const(ConstRef),
    /// A small buffer for a binding the kernel does not read (a conv without a residual):
    /// WebGPU forbids binding an arena range twice where one binding is writable.
    Dummy,
}

/// Where a constant lives: buffer, byte offset, byte size.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConstRef {
    buffer: usize,
    offset: u64,
    size: u64,
}

/// Weights and per-layer vectors packed into as few buffers as the device's limits allow,
/// each entry at a 256-byte aligned offset (storage bindings need it).
pub(super) struct ConstStore {
    chunks: Vec<Vec<u8>>,
    max: u64,
}

impl ConstStore {
    fn new(max: u64) -> Self {
        ConstStore {
            chunks: vec![Vec::new()],
            max,
        }
    }

    fn push(&mut self, data: &[f32], name: &str) -> Result<ConstRef> {
        let size = (4 * data.len() as u64).max(16);
        if size > self.max {
            return Err(Error::ExceedsLimit {
                what: format!("constant `{name}`"),
                needed: size,
                limit: "max_storage_buffer_binding_size",
                max: self.max,
            });
        }
        let cur = self.chunks.last().expect("one chunk").len() as u64;
        let mut offset = cur.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        if offset + size > self.max {
            self.chunks.push(Vec::new());
            offset = 0;
        }
        let chunk = self.chunks.last_mut().expect("one chunk");
        chunk.resize(offset as usize, 0);
        chunk.extend_from_slice(bytemuck::cast_slice(data));
        chunk.resize((offset + size) as usize, 0);
        Ok(ConstRef {
            buffer: self.chunks.len() - 1,
            offset,
            size,
        })
    }
}

/// One dispatch of a graph plan.
pub struct GraphStep {
    pub kernel: GraphKernel,
    /// The index of the layer it belongs to in `GraphPlan::shaped().layers`.
    pub layer: usize,
    pub label: String,
    pub workgroups: [u32; 3],
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

/// A layer graph compiled for one input shape.
pub struct GraphPlan {
    device: wgpu::Device,
    queue: wgpu::Queue,
    keep_all: bool,
    graph: Shaped,
    mem: MemoryPlan,
    arena: wgpu::Buffer,
    readback: wgpu::Buffer,
    _consts: Vec<wgpu::Buffer>,
    steps: Vec<GraphStep>,
    submits: AtomicU64,
    run_lock: Mutex<()>,
}

impl GraphPlan {
    /// The runtime graph it runs (after fusion).
    pub fn shaped(&self) -> &Shaped {
        &self.graph
    }
    pub fn input_shape(&self) -> [usize; 4] {
        self.graph.shapes[self.graph.input]
    }
    pub fn output_shape(&self) -> [usize; 4] {
        self.graph.shapes[self.graph.output]
    }
    pub fn steps(&self) -> &[GraphStep] {
        &self.steps
    }
    /// Dispatches recorded per inference.
    pub fn dispatch_count(&self) -> usize {
        self.steps.len()
    }
    /// Queue submissions made by this plan so far (one per run).
    pub fn submit_count(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }
    /// Bytes of the activation arena.
    pub fn planned_bytes(&self) -> u64 {
        self.mem.arena_bytes
    }
    pub fn memory(&self) -> &MemoryPlan {
        &self.mem
    }

    /// One inference: the whole network in one command buffer, one submit; reads back the
    /// output.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, input: &Tensor) -> Result<Tensor> {
        pollster::block_on(self.run_async(input))
    }

    pub async fn run_async(&self, input: &Tensor) -> Result<Tensor> {
        let o = self.graph.output;
        let (data, _) = self
            .execute(input, self.mem.offsets[o], self.mem.sizes[o], None)
            .await?;
        self.output_tensor(&data)
    }

    fn output_tensor(&self, data: &[u8]) -> Result<Tensor> {
        let n: usize = self.output_shape().iter().product();
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(data);
        Tensor::new(self.output_shape(), v[..n].to_vec())
    }

    /// One inference reading back every tensor (indexed by `TensorId`; tensors no layer
    /// writes come back as whatever the arena held). Needs `keep_intermediates`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_all(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        pollster::block_on(self.run_all_async(input))
    }

    pub async fn run_all_async(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        if !self.keep_all {
            return Err(Error::InvalidArgument(
                "run_all needs a plan made with keep_intermediates".into(),
            ));
        }
        let (data, _) = self
            .execute(input, 0, self.mem.arena_bytes.max(4), None)
            .await?;
        let data: Vec<f32> = bytemuck::pod_collect_to_vec(&data);
        self.graph
            .shapes
            .iter()
            .enumerate()
            .map(|(t, &s)| {
                let o = (self.mem.offsets[t] / 4) as usize;
                let n: usize = s.iter().product();
                Tensor::new(s, data[o..o + n].to_vec())
            })
            .collect()
    }

    /// Upload the input, one encoder with every dispatch in one compute pass and the copy of
    /// `bytes` at `offset` of the arena, one submit, read back.
    // The lock spans the readback on purpose: a run owns the arena until its output is out.
    #[allow(clippy::await_holding_lock)]
    async fn execute(
        &self,
        input: &Tensor,
        offset: u64,
        bytes: u64,
        timing: Option<&Timing>,
    ) -> Result<(Vec<u8>, Option<Vec<u64>>)> {
        if input.shape != self.input_shape() {
            return Err(Error::BadInput {
                shape: input.shape.to_vec(),
                reason: format!("this plan was compiled for {:?}", self.input_shape()),
            });
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let readback = readback_for(&self.device, &self.readback, bytes);
        scoped_async(&self.device, "running the graph plan", || {
            self.queue.write_buffer(
                &self.arena,
                self.mem.offsets[self.graph.input],
                bytemuck::cast_slice(&input.data),
            );
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wunet graph inference"),
                });
            record_run(
                &mut enc,
                "graph",
                self.steps.len(),
                &|i| &self.steps[i].label,
                &|pass, i| self.steps[i].dispatch(pass),
                timing,
                (&self.arena, offset, &readback, bytes),
            );
            self.queue.submit([enc.finish()]);
            self.submits.fetch_add(1, Ordering::Relaxed);
        })
        .await?;
        read_run(&self.device, &readback, bytes, timing).await
    }
}

impl GraphStep {
    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}
