//! The adapter's float32 FMA peak, measured with `shaders/bench/fma_peak_f32.wgsl`: the
//! denominator of every "% of peak" that `bench` prints.

use web_time::Instant;

use super::exec::map_read_async;
use super::scoped_async;
use crate::shaders;
use crate::Result;

const WG: u32 = 64;
const FLOP_PER_ITER: f64 = 64.0;

/// Measured peak in GFLOP/s: grows the workload until one dispatch takes at least ~0.2 s, then
/// keeps the best of three.
#[cfg(not(target_arch = "wasm32"))]
pub fn measure_fma_peak(device: &wgpu::Device, queue: &wgpu::Queue) -> Result<f64> {
    pollster::block_on(measure_fma_peak_async(device, queue))
}

/// `measure_fma_peak` for callers that cannot block (the browser).
pub async fn measure_fma_peak_async(device: &wgpu::Device, queue: &wgpu::Queue) -> Result<f64> {
    let groups = 2048u32;
    let (pipeline, sink, read) = scoped_async(device, "measuring the FMA peak", || {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("fma peak"),
            source: wgpu::ShaderSource::Wgsl(shaders::source("bench/fma_peak_f32").into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("fma peak"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[("WG", WG as f64)],
                ..Default::default()
            },
            cache: None,
        });
        let sink = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fma sink"),
            size: (groups * WG * 16) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fma read"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        (pipeline, sink, read)
    })
    .await?;
    // One dispatch of `iters` iterations per invocation: GFLOP/s.
    let run = |iters: u32| {
        let params = super::buffer_with(
            device,
            queue,
            "fma params",
            bytemuck::cast_slice(&[iters, 0, 0, 0]),
            wgpu::BufferUsages::UNIFORM,
        );
        let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fma"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: sink.as_entire_binding(),
                },
            ],
        });
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        }
        enc.copy_buffer_to_buffer(&sink, 0, &read, 0, 16);
        let read = read.clone();
        async move {
            let t = Instant::now();
            queue.submit([enc.finish()]);
            map_read_async(device, &[(read, 16)]).await?;
            let secs = t.elapsed().as_secs_f64();
            Ok::<f64, crate::Error>(
                (groups * WG) as f64 * iters as f64 * FLOP_PER_ITER / secs / 1e9,
            )
        }
    };
    // Grow until a run is long enough that submission overhead does not matter.
    let mut iters = 64u32;
    loop {
        let t = Instant::now();
        run(iters).await?;
        if t.elapsed().as_secs_f64() > 0.2 || iters >= 1 << 24 {
            break;
        }
        iters *= 4;
    }
    let mut best = 0f64;
    for _ in 0..3 {
        best = best.max(run(iters).await?);
    }
    Ok(best)
}
