//! Per-dispatch GPU times of a `GraphPlan` from timestamp queries, as `Plan::run_profiled`:
//! timestamps between dispatches inside the one compute pass where the adapter has
//! TIMESTAMP_QUERY_INSIDE_PASSES, else one pass per dispatch; one command buffer, one submit
//! either way (`GraphPlan::execute` records both).

use super::GraphPlan;
use crate::gpu::{Profile, TimingMode};
use crate::tensor::Tensor;
use crate::{Error, Result};

impl GraphPlan {
    /// Whether `run_profiled` can time dispatches on this device, and how (as `Plan`).
    pub fn timing_mode(&self) -> Option<TimingMode> {
        let f = self.device.features();
        if f.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        ) {
            Some(TimingMode::InsidePass)
        } else if f.contains(wgpu::Features::TIMESTAMP_QUERY) {
            Some(TimingMode::PassPerDispatch)
        } else {
            None
        }
    }

    /// One inference with a GPU timestamp around every dispatch (`steps` order): inside the
    /// one compute pass, or one pass per dispatch where the adapter only has pass-boundary
    /// timestamps; one command buffer, one submit either way.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_profiled(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        pollster::block_on(self.run_profiled_async(input))
    }

    pub async fn run_profiled_async(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        let mode = self.timing_mode().ok_or_else(|| {
            Error::Gpu(
                "the device has no TIMESTAMP_QUERY feature: per-dispatch times are unavailable"
                    .into(),
            )
        })?;
        let n = self.steps.len() as u32;
        let count = match mode {
            TimingMode::InsidePass => n + 1,
            TimingMode::PassPerDispatch => 2 * n,
        };
        let bytes = 8 * count as u64;
        let timing = Timing {
            mode,
            queries: self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("graph dispatch timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("graph timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            read: self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("graph timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        let o = self.graph.output;
        let (data, ticks) = self
            .execute(input, self.mem.offsets[o], self.mem.sizes[o], Some(&timing))
            .await?;
        let ticks = ticks.expect("timestamps were recorded");
        let period_ms = self.queue.get_timestamp_period() as f64 * 1e-6;
        let step_ms = (0..n as usize)
            .map(|i| {
                let (a, b) = match mode {
                    TimingMode::InsidePass => (ticks[i], ticks[i + 1]),
                    TimingMode::PassPerDispatch => (ticks[2 * i], ticks[2 * i + 1]),
                };
                b.saturating_sub(a) as f64 * period_ms
            })
            .collect();
        Ok((self.output_tensor(&data)?, Profile { mode, step_ms }))
    }
}

/// The query set and buffers of one profiled run.
pub(super) struct Timing {
    pub(super) mode: TimingMode,
    pub(super) queries: wgpu::QuerySet,
    pub(super) resolve: wgpu::Buffer,
    pub(super) read: wgpu::Buffer,
}
