//! The GPU engine: WGSL kernels on wgpu. `GpuModel` uploads a model's weights and creates its
//! pipelines once; `GpuModel::plan` compiles it for an input shape into a `Plan` whose `run`
//! records the whole network into one command encoder and submits once.

mod adapter;
mod exec;
pub mod graph;
mod int8;
mod kernels;
mod peak;
mod plan;
mod step;
mod winograd;

#[cfg(not(target_arch = "wasm32"))]
pub use adapter::request_gpu;
pub use adapter::{request_gpu_async, Gpu};
pub use exec::{Profile, TimingMode};
#[cfg(not(target_arch = "wasm32"))]
pub use int8::{time_conv_kernels, KernelTiming};
pub use int8::{ConvChoice, Dot4, GpuInt8Model, GpuInt8Options, LayerChoice};
pub use kernels::{packed_weight_bytes, Kernel};
#[cfg(not(target_arch = "wasm32"))]
pub use peak::measure_fma_peak;
pub use peak::measure_fma_peak_async;
pub use plan::{GpuModel, GpuOptions};
pub use step::{Plan, Step};
pub use winograd::CHUNK_BYTES as WINOGRAD_CHUNK_BYTES;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The subgroup size the subgroup kernels are specialized for: `Some` where the device has
/// subgroups of one fixed size, a power of two from 4 to 64 (lavapipe: 8, NVIDIA: 32, Chrome's
/// SwiftShader: 4), and a probe dispatch shows that a workgroup of that many invocations is one
/// full subgroup whose shuffles work (`shaders/probe/subgroup_layout.wgsl`); `None` elsewhere, or
/// when `WUNET_SUBGROUPS=0` (native): then the kernels without subgroups run.
#[cfg(not(target_arch = "wasm32"))]
pub fn fixed_subgroup_size(device: &wgpu::Device, queue: &wgpu::Queue) -> Option<u32> {
    pollster::block_on(fixed_subgroup_size_async(device, queue))
}

/// `fixed_subgroup_size` for callers that cannot block (the browser).
pub async fn fixed_subgroup_size_async(device: &wgpu::Device, queue: &wgpu::Queue) -> Option<u32> {
    if !has_subgroups(device) {
        return None;
    }
    let info = device.adapter_info();
    let sg = info.subgroup_min_size;
    if sg != info.subgroup_max_size || !sg.is_power_of_two() || !(4..=Kernel::SG_MAX).contains(&sg)
    {
        return None;
    }
    subgroup_layout_holds(device, queue, sg).await.then_some(sg)
}

/// Whether the device was created with subgroups (and they are not turned off).
fn has_subgroups(device: &wgpu::Device) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        // wgpu's WebGPU backend does not map the feature; the browser's device knows
        // (`adapter::browser` asked for it).
        #[cfg(feature = "web")]
        return device
            .as_webgpu()
            .is_some_and(|d| d.features().has("subgroups"));
        #[cfg(not(feature = "web"))]
        return false;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        device.features().contains(wgpu::Features::SUBGROUP)
            && !std::env::var("WUNET_SUBGROUPS").is_ok_and(|v| v == "0")
    }
}

/// Run the subgroup layout probe with workgroups of `sg` invocations; any failure (including a
/// GPU error) means no.
async fn subgroup_layout_holds(device: &wgpu::Device, queue: &wgpu::Queue, sg: u32) -> bool {
    const GROUPS: u32 = 4;
    let bytes = (GROUPS * sg * 4) as u64;
    let submit = || -> wgpu::Buffer {
        let pipeline = Kernel::SubgroupProbe.pipeline_sg(device, sg);
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("subgroup probe"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("subgroup probe readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("subgroup probe"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: out.as_entire_binding(),
            }],
        });
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(GROUPS, 1, 1);
        }
        enc.copy_buffer_to_buffer(&out, 0, &read, 0, bytes);
        queue.submit([enc.finish()]);
        read
    };
    let Ok(read) = scoped_async(device, "probing subgroups", submit).await else {
        return false;
    };
    match exec::map_read_async(device, &[(read, bytes)]).await {
        Ok(got) => got[0]
            .chunks_exact(4)
            .all(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == 1),
        Err(_) => false,
    }
}

/// A buffer holding `bytes` (zero-padded to a multiple of 4), written through the queue rather
/// than mapped at creation: on a lost device mapping fails and wgpu's `create_buffer_init`
/// panics, while a queue write only records an error for the surrounding error scope.
pub(crate) fn buffer_with(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let size = (bytes.len() as u64).div_ceil(4).max(1) * 4;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    if bytes.len().is_multiple_of(4) {
        queue.write_buffer(&buffer, 0, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(size as usize, 0);
        queue.write_buffer(&buffer, 0, &padded);
    }
    buffer
}

/// Run a GPU operation under validation and out-of-memory error scopes; the first error
/// becomes an `Error::Gpu` naming `what`. (Async: a browser cannot block on the scopes.)
pub(crate) async fn scoped_async<T>(
    device: &wgpu::Device,
    what: &str,
    f: impl FnOnce() -> T,
) -> crate::Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let val = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let e1 = val.pop().await;
    let e2 = oom.pop().await;
    match e1.or(e2) {
        Some(e) => Err(crate::Error::Gpu(format!("{what}: {e}"))),
        None => Ok(out),
    }
}

/// A value handed from a wgpu callback to the task awaiting it.
pub(crate) struct Oneshot<T>(Arc<Mutex<(Option<T>, Option<Waker>)>>);

/// The sending half of a `Oneshot`.
pub(crate) struct OneshotSender<T>(Arc<Mutex<(Option<T>, Option<Waker>)>>);

pub(crate) fn oneshot<T>() -> (OneshotSender<T>, Oneshot<T>) {
    let shared = Arc::new(Mutex::new((None, None)));
    (OneshotSender(shared.clone()), Oneshot(shared))
}

impl<T> OneshotSender<T> {
    pub(crate) fn send(self, v: T) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = Some(v);
        if let Some(w) = s.1.take() {
            w.wake();
        }
    }
}

impl<T> Future for Oneshot<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
