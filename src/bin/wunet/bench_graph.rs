//! `wunet bench` of an imported graph: end-to-end time and per-layer times, on the CPU graph
//! engine (wall clock per layer) or the GPU graph engine (`gpu::graph`: timestamps per
//! dispatch, summed per layer), reported as every benchmark is (`bench::report`).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};

use wunet::cpu::graph::GraphCpu;
use wunet::gpu::graph::{GpuGraphModel, GpuGraphOptions, GraphPlan};
use wunet::graph::{LayerGraph, Shaped};
use wunet::Tensor;

use crate::bench::{input, median, report, time_runs, BenchArgs, Layer, Measured};

pub(crate) fn bench_graph(model_path: &Path, graph: LayerGraph, a: &BenchArgs) -> Result<()> {
    let (h, w) = a.size;
    let cin = graph.in_channels().unwrap_or(3);
    let shape = [a.batch, cin, h, w];
    let x = input(shape);
    let weight_bytes = 4 * graph.param_count() as u64;
    if !a.cpu {
        return bench_graph_gpu(model_path, graph, a, &x, weight_bytes);
    }
    let t = Instant::now();
    let engine = GraphCpu::new(graph, true);
    engine.forward(&x)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let times = time_runs(a, || {
        engine.forward(&x)?;
        Ok(())
    })?;
    let prep = engine.prepared(shape)?;
    let g = &prep.shaped;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); g.layers.len()];
    for _ in 0..a.runs.clamp(1, 3) {
        for (v, ms) in per.iter_mut().zip(engine.forward_timed(&x)?.1) {
            v.push(ms);
        }
    }
    let layers = g
        .layers
        .iter()
        .enumerate()
        .zip(per)
        .map(|((i, l), mut v)| {
            let kernel = format!("cpu {} {}", prep.kernel(i), l.kind());
            layer_row(g, i, kernel, median(&mut v))
        })
        .collect();
    let peak = prep.peak_bytes();
    let m = Measured {
        device: "cpu".into(),
        adapter: format!("cpu f32 (graph), {} threads", rayon::current_num_threads()),
        peak: None,
        first_ms,
        weight_bytes,
        activation_bytes: peak,
        times,
        layers,
        mode: None,
        flops: g.total_flops() as f64,
    };
    report(m, model_path, "f32", cin, a)
}

/// One row of the per-layer table: layer `i` of `g`, its FLOPs and the bytes of its tensors.
fn layer_row(g: &Shaped, i: usize, kernel: String, ms: f64) -> Layer {
    let l = &g.layers[i];
    let bytes = |t: usize| 4 * g.numel(t) as u64;
    Layer {
        name: g.names.get(i).cloned().unwrap_or_default(),
        kernel,
        shape: g.shapes[l.output()],
        flops: g.flops(l),
        bytes: l
            .inputs()
            .iter()
            .chain([&l.output()])
            .map(|&t| bytes(t))
            .sum(),
        ms,
    }
}

/// The GPU graph engine: FMA peak, first inference (pipelines, weights, plan, one run), end to
/// end over the runs, and per layer the sum of its dispatches' timestamps (median of a few
/// profiled runs).
fn bench_graph_gpu(
    model_path: &Path,
    graph: LayerGraph,
    a: &BenchArgs,
    x: &Tensor,
    weight_bytes: u64,
) -> Result<()> {
    let (gpu, adapter, peak) = crate::bench::gpu_and_peak(a)?;
    let cin = x.shape[1];
    let t = Instant::now();
    let model = GpuGraphModel::new(&gpu.device, &gpu.queue, graph, GpuGraphOptions::default())?;
    let plan = model.plan(x.shape)?;
    let compile = t.elapsed().as_secs_f64() * 1e3;
    plan.run(x)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    if !a.json {
        eprintln!(
            "first inference {first_ms:.1} ms (of which pipelines, weights and plan {compile:.1} ms)"
        );
    }
    let times = time_runs(a, || {
        plan.run(x)?;
        Ok(())
    })?;
    let mode = plan.timing_mode();
    let mut layers = Vec::new();
    if mode.is_some() {
        let per = step_medians(&plan, x, a.runs.clamp(1, 3))?;
        let g = plan.shaped();
        // Per layer: the sum of its dispatches and their kernels' names.
        let mut ms = vec![0.0; g.layers.len()];
        let mut kernels: Vec<Vec<String>> = vec![Vec::new(); g.layers.len()];
        for (s, t) in plan.steps().iter().zip(per) {
            ms[s.layer] += t;
            let k = s.kernel.name();
            if !kernels[s.layer].contains(&k) {
                kernels[s.layer].push(k);
            }
        }
        for (i, k) in kernels.iter().enumerate() {
            if !k.is_empty() {
                layers.push(layer_row(g, i, k.join("+"), ms[i]));
            }
        }
    }
    let m = Measured {
        device: "gpu".into(),
        adapter,
        peak: Some(peak),
        first_ms,
        weight_bytes,
        activation_bytes: plan.planned_bytes(),
        times,
        layers,
        mode,
        flops: plan.shaped().total_flops() as f64,
    };
    report(m, model_path, "f32", cin, a)
}

/// Each dispatch's GPU time (timestamps), median over `reps` profiled runs.
fn step_medians(plan: &GraphPlan, x: &Tensor, reps: usize) -> Result<Vec<f64>> {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); plan.steps().len()];
    for _ in 0..reps {
        let (_, prof) = plan.run_profiled(x)?;
        for (v, ms) in per.iter_mut().zip(prof.step_ms) {
            v.push(ms);
        }
    }
    if per.iter().any(|v| v.is_empty()) {
        bail!("a profiled run returned fewer times than dispatches");
    }
    Ok(per.iter_mut().map(|v| median(v)).collect())
}
