//! Per-dispatch GPU times of a `GraphPlan` from timestamp queries, as `Plan::run_profiled`:
//! timestamps between dispatches inside the one compute pass where the adapter has
//! TIMESTAMP_QUERY_INSIDE_PASSES, else one pass per dispatch; one command buffer, one submit
//! either way (`GraphPlan::execute` records both).

use super::GraphPlan;
use crate::gpu::exec::Timing;
use crate::gpu::{Profile, TimingMode};
use crate::tensor::Tensor;
use crate::Result;

impl GraphPlan {
    /// Whether `run_profiled` can time dispatches on this device, and how (as `Plan`).
    pub fn timing_mode(&self) -> Option<TimingMode> {
        Timing::mode_of(&self.device)
    }

    /// One inference with a GPU timestamp around every dispatch (`steps` order): inside the
    /// one compute pass, or one pass per dispatch where the adapter only has pass-boundary
    /// timestamps; one command buffer, one submit either way.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_profiled(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        pollster::block_on(self.run_profiled_async(input))
    }

    pub async fn run_profiled_async(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        let timing = Timing::new(&self.device, self.steps.len())?;
        let o = self.graph.output;
        let (data, ticks) = self
            .execute(input, self.mem.offsets[o], self.mem.sizes[o], Some(&timing))
            .await?;
        let ticks = ticks.expect("timestamps were recorded");
        let step_ms = timing.step_ms(&ticks, self.steps.len(), &self.queue);
        let mode = timing.mode;
        Ok((self.output_tensor(&data)?, Profile { mode, step_ms }))
    }
}
