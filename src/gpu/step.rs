//! The compiled form of a plan: its dispatches (`StepSpec` → `Step`), assembled with one uniform
//! buffer, one bind group per step and the activation arena into a `Plan` (the float32 and int8
//! engines both build theirs here); `Plan::execute` (`exec.rs`) records them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::kernels::Kernel;
use crate::plan::{Graph, MemoryPlan, Shape};
use crate::{Error, Result};

/// One dispatch to be: its kernel, 8 words of parameters, workgroups, bindings (after the
/// uniform at binding 0), and what the reports say about it.
pub(super) struct StepSpec<'a> {
    pub(super) kernel: Kernel,
    pub(super) params: [u32; 8],
    pub(super) groups: [u32; 3],
    pub(super) bufs: Vec<Binding<'a>>,
    pub(super) label: String,
    pub(super) flops: u64,
    /// Tensors it reads and writes (for the bytes-moved report; scratch included).
    pub(super) tensors: Vec<usize>,
    /// The graph tensor of the op it belongs to (what the reports show as its output).
    pub(super) output: usize,
}

/// A `Plan` from its dispatches: one uniform buffer for all parameters, a bind group per step,
/// the readback buffer for the output.
pub(super) fn assemble(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    graph: Graph,
    mem: MemoryPlan,
    specs: Vec<StepSpec>,
    pipelines: &HashMap<Kernel, wgpu::ComputePipeline>,
    input_quant: Option<crate::compress::QParams>,
) -> Plan {
    let limits = device.limits();
    let ustride = (limits.min_uniform_buffer_offset_alignment as u64).max(32);
    let mut uniforms = vec![0u8; (ustride * specs.len().max(1) as u64) as usize];
    let arena = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("activation arena"),
        size: mem.arena_bytes.max(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let unused = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("unused binding"),
        size: 256,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    {
        for (i, spec) in specs.iter().enumerate() {
            let o = i * ustride as usize;
            uniforms[o..o + 32].copy_from_slice(bytemuck::cast_slice(&spec.params));
        }
        let ubuf = super::buffer_with(
            device,
            queue,
            "plan uniforms",
            &uniforms,
            wgpu::BufferUsages::UNIFORM,
        );
        let steps = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let StepSpec {
                    kernel,
                    groups,
                    bufs,
                    label,
                    flops,
                    tensors,
                    output,
                    ..
                } = spec;
                let pipeline = pipelines[&kernel].clone();
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &ubuf,
                        offset: i as u64 * ustride,
                        size: wgpu::BufferSize::new(32),
                    }),
                }];
                for (j, b) in bufs.iter().enumerate() {
                    let resource = match *b {
                        Binding::Arena(t) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &arena,
                            offset: mem.offsets[t],
                            size: wgpu::BufferSize::new(mem.sizes[t]),
                        }),
                        Binding::Weights(buf) => buf.as_entire_binding(),
                        Binding::Unused => unused.as_entire_binding(),
                    };
                    entries.push(wgpu::BindGroupEntry {
                        binding: j as u32 + 1,
                        resource,
                    });
                }
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(kernel.shader()),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                });
                let weight_bytes: u64 = bufs
                    .iter()
                    .map(|b| match b {
                        Binding::Weights(w) => w.size(),
                        Binding::Arena(_) | Binding::Unused => 0,
                    })
                    .sum();
                let act_bytes: u64 = tensors.iter().map(|&t| mem.sizes[t]).sum();
                Step {
                    kernel,
                    label,
                    output,
                    workgroups: groups,
                    flops,
                    bytes: act_bytes + weight_bytes,
                    pipeline,
                    bind_group,
                }
            })
            .collect();
        let out_bytes = mem.sizes[graph.output];
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Plan {
            device: device.clone(),
            queue: queue.clone(),
            graph,
            mem,
            arena,
            readback,
            steps,
            submits: AtomicU64::new(0),
            run_lock: Mutex::new(()),
            input_quant,
        }
    }
}

pub(super) enum Binding<'a> {
    Arena(usize),
    Weights(&'a wgpu::Buffer),
    /// A small scratch buffer for a binding the kernel never reads (a conv's second input when
    /// it has one): WebGPU forbids binding the same range twice where one binding is writable.
    Unused,
}

/// Every tensor binding within `max_storage_buffer_binding_size`, the arena within
/// `max_buffer_size`.
pub(super) fn check_limits(limits: &wgpu::Limits, g: &Graph, mem: &MemoryPlan) -> Result<()> {
    let max_bind = limits.max_storage_buffer_binding_size;
    for (t, &size) in mem.sizes.iter().enumerate() {
        if size > max_bind {
            return Err(Error::ExceedsLimit {
                what: match g.shapes.get(t) {
                    Some(s) => format!("tensor {s:?}"),
                    None => "Winograd scratch".into(),
                },
                needed: size,
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
    Ok(())
}

/// One dispatch of a plan.
pub struct Step {
    pub kernel: Kernel,
    pub label: String,
    /// The tensor it writes.
    pub output: usize,
    pub workgroups: [u32; 3],
    pub flops: u64,
    /// Bytes the dispatch must read or write at least once: its tensors and weights.
    pub bytes: u64,
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) bind_group: wgpu::BindGroup,
}

/// The network compiled for one input shape.
pub struct Plan {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) graph: Graph,
    pub(super) mem: MemoryPlan,
    pub(super) arena: wgpu::Buffer,
    pub(super) readback: wgpu::Buffer,
    pub(super) steps: Vec<Step>,
    pub(super) submits: AtomicU64,
    pub(super) run_lock: Mutex<()>,
    /// int8 plans: the input's quantization (the host quantizes and packs it on upload).
    pub(super) input_quant: Option<crate::compress::QParams>,
}

impl Plan {
    pub fn input_shape(&self) -> Shape {
        self.graph.shapes[self.graph.input]
    }
    pub fn output_shape(&self) -> Shape {
        self.graph.shapes[self.graph.output]
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// Layers this plan runs as Winograd F(4×4, 3×3) (`gpu::winograd`).
    pub fn winograd_layers(&self) -> usize {
        let mut outs: Vec<_> = self
            .steps
            .iter()
            .filter(|s| s.kernel == Kernel::WinoGemm)
            .map(|s| s.output)
            .collect();
        outs.dedup();
        outs.len()
    }
    /// Dispatches recorded per inference.
    pub fn dispatch_count(&self) -> usize {
        self.steps.len()
    }
    /// Queue submissions made by this plan so far (one per `run`).
    pub fn submit_count(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }
    /// Activation bytes of the arena (all intermediate tensors, input and output).
    pub fn planned_bytes(&self) -> u64 {
        self.mem.arena_bytes
    }
    pub fn memory(&self) -> &MemoryPlan {
        &self.mem
    }
}
