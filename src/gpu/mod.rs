//! The GPU engine: WGSL kernels on wgpu. `GpuModel` uploads a model's weights and creates its
//! pipelines once; `GpuModel::plan` compiles it for an input shape into a `Plan` whose `run`
//! records the whole network into one command encoder and submits once.

mod adapter;
mod exec;
mod int8;
mod kernels;
mod peak;
mod plan;

pub use adapter::{request_gpu, request_gpu_async, Gpu};
pub use exec::{Profile, TimingMode};
pub use int8::{
    time_conv_kernels, ConvChoice, Dot4, GpuInt8Model, GpuInt8Options, KernelTiming, LayerChoice,
};
pub use kernels::{packed_weight_bytes, Kernel};
pub use peak::measure_fma_peak;
pub use plan::{GpuModel, GpuOptions, Plan, Step};

/// Run a GPU operation under validation and out-of-memory error scopes; the first error
/// becomes an `Error::Gpu` naming `what`.
pub(crate) fn scoped<T>(
    device: &wgpu::Device,
    what: &str,
    f: impl FnOnce() -> T,
) -> crate::Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let val = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let e1 = pollster::block_on(val.pop());
    let e2 = pollster::block_on(oom.pop());
    match e1.or(e2) {
        Some(e) => Err(crate::Error::Gpu(format!("{what}: {e}"))),
        None => Ok(out),
    }
}
