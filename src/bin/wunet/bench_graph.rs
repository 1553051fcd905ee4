//! `wunet bench` of an imported graph: end-to-end time and per-layer wall times on the CPU
//! graph engine, reported as every benchmark is (`bench::report`).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};

use wunet::cpu::graph::GraphCpu;
use wunet::graph::LayerGraph;

use crate::bench::{input, median, report, BenchArgs, Layer, Measured};

pub(crate) fn bench_graph(model_path: &Path, graph: LayerGraph, a: &BenchArgs) -> Result<()> {
    if !a.cpu {
        bail!("imported (ONNX) models run on the CPU engine in this build (use --device cpu or auto)");
    }
    let (h, w) = a.size;
    let cin = graph.in_channels().unwrap_or(3);
    let shape = [a.batch, cin, h, w];
    let x = input(shape);
    let weight_bytes = 4 * graph.param_count() as u64;
    let t = Instant::now();
    let engine = GraphCpu::new(graph, true);
    engine.forward(&x)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::new();
    for i in 0..a.warmup + a.runs {
        let t = Instant::now();
        engine.forward(&x)?;
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let prep = engine.prepared(shape)?;
    let g = &prep.shaped;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); g.layers.len()];
    for _ in 0..a.runs.clamp(1, 3) {
        for (v, ms) in per.iter_mut().zip(engine.forward_timed(&x)?.1) {
            v.push(ms);
        }
    }
    let bytes = |t: usize| 4 * g.numel(t) as u64;
    let layers = g
        .layers
        .iter()
        .zip(&g.names)
        .zip(per)
        .map(|((l, name), mut v)| Layer {
            name: name.clone(),
            kernel: format!("cpu {}", l.kind()),
            shape: g.shapes[l.output()],
            flops: g.flops(l),
            bytes: l.inputs().iter().chain([&l.output()]).map(|&t| bytes(t)).sum(),
            ms: median(&mut v),
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
