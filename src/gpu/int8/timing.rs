//! Timing the int8 conv kernels on a layer: the per-layer choice of `ConvChoice::Measure` and
//! `wunet bench --kernels --int8` (native only: a browser has no blocking wait).

use std::collections::HashMap;

use super::pack::Packed3x3;
use super::{conv_dispatch, packed_bytes, Dot4, Layer};
use crate::compress::QParams;
use crate::cpu::int8::PConv;
use crate::gpu::kernels::Kernel;
use crate::gpu::step::Binding;
use crate::model::UNetSpec;
use crate::plan::{Graph, Op, Shape};
use crate::{Error, Result};

/// Milliseconds of one dispatch of `op` (a 3×3 conv of `g`) with layer `l` on scratch
/// activations: the best of 3 timed submissions after a warm-up, each waited for on the host.
pub(super) fn time_conv(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    pipelines: &HashMap<Kernel, wgpu::ComputePipeline>,
    g: &Graph,
    op: &Op,
    l: &Layer,
) -> Result<f64> {
    let Op::Conv3x3 { a, b, out, .. } = op else {
        unreachable!("a conv")
    };
    // Scratch tensors, each its own buffer (bound whole): any contents will do.
    let bufs: HashMap<usize, wgpu::Buffer> = [*a]
        .into_iter()
        .chain(*b)
        .chain([*out])
        .map(|t| {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel probe"),
                size: packed_bytes(g.shapes[t]).max(4),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            (t, buffer)
        })
        .collect();
    let (kernel, params, groups, bindings) = conv_dispatch(l, g, *a, *b, *out);
    let ubuf = crate::gpu::buffer_with(
        device,
        queue,
        "kernel probe params",
        bytemuck::cast_slice(&params),
        wgpu::BufferUsages::UNIFORM,
    );
    let pipeline = &pipelines[&kernel];
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: ubuf.as_entire_binding(),
    }];
    let unused = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("unused binding"),
        size: 256,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    for (i, bnd) in bindings.iter().enumerate() {
        let buffer = match bnd {
            Binding::Arena(t) => &bufs[t],
            Binding::Weights(w) => *w,
            Binding::Unused => &unused,
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: buffer.as_entire_binding(),
        });
    }
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("kernel probe"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut best = f64::INFINITY;
    for i in 0..4 {
        let t = web_time::Instant::now();
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("timing a kernel: {e}")))?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(best)
}

/// One layer of `time_conv_kernels`.
#[derive(Clone, Debug)]
pub struct KernelTiming {
    pub layer: String,
    /// Output shape.
    pub shape: Shape,
    pub flops: u64,
    /// Fraction of the 8×4 weight blocks set to zero.
    pub sparsity: f64,
    pub dense_ms: f64,
    pub sparse_ms: f64,
}

/// Time the dense and the sparse int8 conv kernels on every 3×3 conv of `spec` at input size
/// `(h, w)`, with random int8 weights of which exactly `sparsity` of the 8×4 blocks (per layer)
/// are zero: the kernel comparison of `wunet bench --kernels --int8`.
pub fn time_conv_kernels(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dot4: Dot4,
    spec: &UNetSpec,
    (h, w): (usize, usize),
    sparsity: f64,
) -> Result<Vec<KernelTiming>> {
    use crate::compress::QConv;
    let packed = dot4 == Dot4::Packed;
    let pipelines: HashMap<Kernel, wgpu::ComputePipeline> =
        [Kernel::Conv3x3I8, Kernel::Conv3x3SparseI8]
            .iter()
            .map(|&k| (k, k.pipeline_with(device, packed)))
            .collect();
    let g = Graph::build(spec, [1, spec.in_channels, h, w], true)?;
    let mut rng = crate::model::init::Rng::new(7);
    let q = QParams {
        scale: 0.02,
        zero: 3,
    };
    let mut out = Vec::new();
    for op in &g.ops {
        let Op::Conv3x3 {
            a, b, out: o, conv, ..
        } = op
        else {
            continue;
        };
        let parts: Vec<usize> = [*a].into_iter().chain(*b).map(|t| g.shapes[t][1]).collect();
        let cin: usize = parts.iter().sum();
        let cout = g.shapes[*o][1];
        let mut weight: Vec<i8> = (0..cout * cin * 9)
            .map(|_| rng.range(-127.0, 127.0) as i8)
            .collect();
        // Zero a random `sparsity` of the 8×4 blocks (in the kernels' channel grouping).
        let mut units: Vec<(usize, usize, usize)> = Vec::new();
        let mut c0 = 0;
        for &c in &parts {
            for co0 in (0..cout).step_by(8) {
                for ci0 in (c0..c0 + c).step_by(4) {
                    for tap in 0..9 {
                        units.push((co0, ci0, tap));
                    }
                }
            }
            c0 += c;
        }
        let zero_units = (sparsity * units.len() as f64).round() as usize;
        for i in 0..zero_units {
            let j = i + (rng.next_u64() as usize) % (units.len() - i);
            units.swap(i, j);
            let (co0, ci0, tap) = units[i];
            let c_end = parts
                .iter()
                .scan(0, |s, &c| {
                    *s += c;
                    Some(*s)
                })
                .find(|&e| e > ci0)
                .unwrap_or(cin);
            for co in co0..(co0 + 8).min(cout) {
                for ci in ci0..(ci0 + 4).min(c_end) {
                    weight[(co * cin + ci) * 9 + tap] = 0;
                }
            }
        }
        let qc = QConv {
            shape: [cout, cin, 3, 3],
            weight,
            w_scale: vec![0.01; cout],
            bias: vec![0.1; cout],
            out: q,
        };
        let pc = PConv::conv3x3(&qc, q, &parts);
        let packed = Packed3x3::new(&pc);
        let (dense, sparse) = (
            packed.dense(device, queue, "probe"),
            packed.sparse(device, queue, "probe"),
        );
        out.push(KernelTiming {
            layer: conv.name(),
            shape: g.shapes[*o],
            flops: g.flops(op),
            sparsity,
            dense_ms: time_conv(device, queue, &pipelines, &g, op, &dense)?,
            sparse_ms: time_conv(device, queue, &pipelines, &g, op, &sparse)?,
        });
    }
    Ok(out)
}
