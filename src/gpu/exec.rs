//! Executing a `Plan`: one encoder, one compute pass with every dispatch, one submit, and a
//! readback of only what was asked for. Profiling (timestamps around each dispatch) and
//! debugging (read back every tensor) are options of that one loop.

use std::sync::atomic::Ordering;

use super::step::Plan;
use super::{oneshot, scoped_async};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// How per-dispatch times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingMode {
    /// Timestamps written between dispatches inside the one compute pass.
    InsidePass,
    /// Profiling mode for adapters without timestamps inside passes: one compute pass per
    /// dispatch (still one command buffer and one submit), timestamps at pass boundaries.
    PassPerDispatch,
}

/// GPU time of each step of a plan, from timestamp queries.
#[derive(Clone, Debug)]
pub struct Profile {
    pub mode: TimingMode,
    /// Milliseconds per step, in `Plan::steps` order.
    pub step_ms: Vec<f64>,
}

/// The query set and buffers of one profiled run (the float, int8 and graph plans share them).
pub(crate) struct Timing {
    pub(crate) mode: TimingMode,
    pub(crate) queries: wgpu::QuerySet,
    pub(crate) resolve: wgpu::Buffer,
    pub(crate) read: wgpu::Buffer,
}

impl Timing {
    /// How `device` can time dispatches: timestamps inside one compute pass, one pass per
    /// dispatch, or not at all.
    pub(crate) fn mode_of(device: &wgpu::Device) -> Option<TimingMode> {
        let f = device.features();
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

    /// Queries and buffers for `steps` dispatches, or why the device cannot time them.
    pub(crate) fn new(device: &wgpu::Device, steps: usize) -> Result<Timing> {
        let mode = Timing::mode_of(device).ok_or_else(|| {
            Error::Gpu(
                "the device has no TIMESTAMP_QUERY feature: per-dispatch times are unavailable"
                    .into(),
            )
        })?;
        let n = steps as u32;
        let count = match mode {
            TimingMode::InsidePass => n + 1,
            TimingMode::PassPerDispatch => 2 * n,
        };
        let bytes = 8 * count as u64;
        Ok(Timing {
            mode,
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("dispatch timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            read: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        })
    }

    /// Each of `steps` dispatches' time in milliseconds from the raw ticks.
    pub(crate) fn step_ms(&self, ticks: &[u64], steps: usize, queue: &wgpu::Queue) -> Vec<f64> {
        let period_ms = queue.get_timestamp_period() as f64 * 1e-6;
        (0..steps)
            .map(|i| {
                let (a, b) = match self.mode {
                    TimingMode::InsidePass => (ticks[i], ticks[i + 1]),
                    TimingMode::PassPerDispatch => (ticks[2 * i], ticks[2 * i + 1]),
                };
                b.saturating_sub(a) as f64 * period_ms
            })
            .collect()
    }
}

impl Plan {
    /// Run one inference: upload the input, record every dispatch into one encoder, copy the
    /// output out, submit once, read back only the output.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, input: &Tensor) -> Result<Tensor> {
        pollster::block_on(self.run_async(input))
    }

    /// `run` for callers that cannot block (the browser).
    pub async fn run_async(&self, input: &Tensor) -> Result<Tensor> {
        let (offset, bytes) = (
            self.mem.offsets[self.graph.output],
            self.mem.sizes[self.graph.output],
        );
        let (data, _) = self.execute(input, offset, bytes, None).await?;
        Tensor::new(self.output_shape(), self.output_values(&data))
    }

    /// The output tensor's values from its bytes in the arena: float32 plans keep channel planes
    /// `plan::plane_stride` apart; int8 plans write their float output densely.
    fn output_values(&self, data: &[u8]) -> Vec<f32> {
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(data);
        match self.input_quant {
            None => crate::plan::unpad_planes(self.output_shape(), &v),
            Some(_) => v,
        }
    }

    /// Run one inference and read back the raw bytes of every tensor of the graph (indexed by
    /// `TensorId`; float32 planes `plan::plane_stride` apart, int8 activations packed, see
    /// `cpu::int8::QAct`). Needs a plan made with `keep_intermediates`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_all_raw(&self, input: &Tensor) -> Result<Vec<Vec<u8>>> {
        let end = self.graph.ops.len();
        if self.mem.lifetimes.iter().any(|l| l.1 != end) {
            return Err(Error::InvalidArgument(
                "run_all_raw needs a plan made with keep_intermediates".into(),
            ));
        }
        let (data, _) = pollster::block_on(self.execute(input, 0, self.mem.arena_bytes, None))?;
        Ok((0..self.graph.shapes.len())
            .map(|t| {
                let o = self.mem.offsets[t] as usize;
                data[o..o + self.mem.sizes[t] as usize].to_vec()
            })
            .collect())
    }

    /// Run one inference and read back every tensor of the graph (indexed by `TensorId`).
    /// Needs a plan made with `GpuOptions::keep_intermediates`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_all(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        let end = self.graph.ops.len();
        if self.mem.lifetimes.iter().any(|l| l.1 != end) {
            return Err(Error::InvalidArgument(
                "run_all needs a plan made with keep_intermediates".into(),
            ));
        }
        if self.input_quant.is_some() {
            return Err(Error::InvalidArgument(
                "run_all reads float tensors: use run_all_raw on an int8 plan".into(),
            ));
        }
        let (data, _) = pollster::block_on(self.execute(input, 0, self.mem.arena_bytes, None))?;
        let data: Vec<f32> = bytemuck::pod_collect_to_vec(&data);
        (0..self.graph.shapes.len())
            .map(|t| {
                let o = (self.mem.offsets[t] / 4) as usize;
                let s = self.graph.shapes[t];
                Tensor::new(
                    s,
                    crate::plan::unpad_planes(s, &data[o..o + (self.mem.sizes[t] / 4) as usize]),
                )
            })
            .collect()
    }

    /// Whether `run_profiled` can time dispatches on this device, and how.
    pub fn timing_mode(&self) -> Option<TimingMode> {
        Timing::mode_of(&self.device)
    }

    /// Run one inference with a GPU timestamp around every dispatch.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_profiled(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        pollster::block_on(self.run_profiled_async(input))
    }

    /// `run_profiled` for callers that cannot block (the browser).
    pub async fn run_profiled_async(&self, input: &Tensor) -> Result<(Tensor, Profile)> {
        let timing = Timing::new(&self.device, self.steps.len())?;
        let (offset, size) = (
            self.mem.offsets[self.graph.output],
            self.mem.sizes[self.graph.output],
        );
        let (data, ticks) = self.execute(input, offset, size, Some(&timing)).await?;
        let ticks = ticks.expect("timestamps were recorded");
        let step_ms = timing.step_ms(&ticks, self.steps.len(), &self.queue);
        let mode = timing.mode;
        Ok((
            Tensor::new(self.output_shape(), self.output_values(&data))?,
            Profile { mode, step_ms },
        ))
    }

    /// Upload, one encoder with every dispatch and the copy of `bytes` at `offset` of the arena,
    /// one submit, read back (and the raw timestamps, when timing).
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
        scoped_async(&self.device, "running the plan", || {
            let (packed, padded);
            let input_bytes: &[u8] = match self.input_quant {
                // int8 plans take the input quantized and packed (`QAct`) by the host.
                Some(q) => {
                    packed = crate::cpu::int8::QAct::from_f32(input, q).data;
                    &packed[..self.mem.sizes[self.graph.input] as usize]
                }
                None => {
                    padded = crate::plan::pad_planes(input.shape, &input.data);
                    bytemuck::cast_slice(&padded)
                }
            };
            self.queue
                .write_buffer(&self.arena, self.mem.offsets[self.graph.input], input_bytes);
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wunet inference"),
                });
            record_run(
                &mut enc,
                "u-net",
                self.steps.len(),
                &|i| &self.steps[i].label,
                &|pass, i| self.dispatch(pass, &self.steps[i]),
                timing,
                (&self.arena, offset, &readback, bytes),
            );
            self.queue.submit([enc.finish()]);
            self.submits.fetch_add(1, Ordering::Relaxed);
        })
        .await?;
        read_run(&self.device, &readback, bytes, timing).await
    }

    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, s: &super::Step) {
        pass.set_pipeline(&s.pipeline);
        pass.set_bind_group(0, &s.bind_group, &[]);
        pass.dispatch_workgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
    }
}

/// The readback buffer for `bytes`: the plan's own where it is big enough, else a new one (a
/// run that keeps every tensor).
pub(crate) fn readback_for(device: &wgpu::Device, kept: &wgpu::Buffer, bytes: u64) -> wgpu::Buffer {
    if bytes <= kept.size() {
        return kept.clone();
    }
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback (all tensors)"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// One run's `n` dispatches recorded into `enc` (the float, int8 and graph plans share it): one
/// compute pass named `pass`, with a timestamp before each dispatch and after the last where
/// `timing` is inside passes, or one pass per dispatch (`label(i)`) where the device times pass
/// boundaries only; then the copy of `bytes` at `offset` of the arena into `readback`, and the
/// timestamps resolved for reading.
pub(crate) fn record_run<'a>(
    enc: &mut wgpu::CommandEncoder,
    pass: &str,
    n: usize,
    label: &dyn Fn(usize) -> &'a str,
    dispatch: &dyn Fn(&mut wgpu::ComputePass<'_>, usize),
    timing: Option<&Timing>,
    (arena, offset, readback, bytes): (&wgpu::Buffer, u64, &wgpu::Buffer, u64),
) {
    match timing.map(|t| t.mode) {
        Some(TimingMode::PassPerDispatch) => {
            let qs = &timing.expect("timing").queries;
            for i in 0..n {
                let mut p = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label(i)),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: qs,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                dispatch(&mut p, i);
            }
        }
        mode => {
            let mut p = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(pass),
                timestamp_writes: None,
            });
            let qs =
                (mode == Some(TimingMode::InsidePass)).then(|| &timing.expect("timing").queries);
            for i in 0..n {
                if let Some(qs) = qs {
                    p.write_timestamp(qs, i as u32);
                }
                dispatch(&mut p, i);
            }
            if let Some(qs) = qs {
                p.write_timestamp(qs, n as u32);
            }
        }
    }
    enc.copy_buffer_to_buffer(arena, offset, readback, 0, bytes);
    if let Some(t) = timing {
        enc.resolve_query_set(&t.queries, 0..t.queries.count(), &t.resolve, 0);
        enc.copy_buffer_to_buffer(&t.resolve, 0, &t.read, 0, t.read.size());
    }
}

/// A submitted run's `bytes` of `readback`, and its raw timestamps where it was timed.
pub(crate) async fn read_run(
    device: &wgpu::Device,
    readback: &wgpu::Buffer,
    bytes: u64,
    timing: Option<&Timing>,
) -> Result<(Vec<u8>, Option<Vec<u64>>)> {
    let mut bufs = vec![(readback.clone(), bytes)];
    if let Some(t) = timing {
        bufs.push((t.read.clone(), t.read.size()));
    }
    let mut out = map_read_async(device, &bufs).await?;
    let ticks =
        timing.map(|_| bytemuck::pod_collect_to_vec::<u8, u64>(&out.pop().expect("timestamps")));
    Ok((out.swap_remove(0), ticks))
}

/// Map each `(buffer, bytes)` for reading, wait, and copy the bytes out. Native code polls the
/// device; in a browser the mapping resolves from the event loop while this awaits.
pub(crate) async fn map_read_async(
    device: &wgpu::Device,
    bufs: &[(wgpu::Buffer, u64)],
) -> Result<Vec<Vec<u8>>> {
    let mut pending = Vec::with_capacity(bufs.len());
    for (b, n) in bufs {
        let (tx, rx) = oneshot();
        b.slice(..*n)
            .map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        pending.push(rx);
    }
    #[cfg(not(target_arch = "wasm32"))]
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    #[cfg(target_arch = "wasm32")]
    let _ = device;
    for (i, rx) in pending.into_iter().enumerate() {
        rx.await
            .map_err(|e| Error::Gpu(format!("reading buffer {i} back: {e}")))?;
    }
    bufs.iter()
        .map(|(b, n)| {
            let bytes = {
                let view = b
                    .slice(..*n)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu(format!("mapping a readback: {e}")))?;
                view.to_vec()
            };
            b.unmap();
            Ok(bytes)
        })
        .collect()
}
