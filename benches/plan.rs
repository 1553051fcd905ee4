//! End-to-end timing of a GPU plan (upload, one submit, readback) for the reference U-Net shape
//! with random weights, printing GFLOP/s beside the time. `cargo bench --bench plan`;
//! `WUNET_BENCH_SIZE=128` and `WUNET_BENCH_FEATURES=32,64,128,256` pick the workload.

use std::time::Instant;

use wunet::gpu::{request_gpu, GpuModel, GpuOptions};
use wunet::model::{init_random, InitOptions};
use wunet::{Tensor, UNetSpec};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return Ok(()); // `cargo test --benches` only checks that this builds.
    }
    let size: usize = std::env::var("WUNET_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let features: Vec<usize> = std::env::var("WUNET_BENCH_FEATURES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 128, 256, 512]);
    let gpu = request_gpu()?;
    let model = init_random(
        &UNetSpec::new(3, 1, features.clone()),
        &InitOptions { seed: 0 },
    );
    let t0 = Instant::now();
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &model, GpuOptions::default())?;
    let plan = gm.plan([1, 3, size, size])?;
    let x = Tensor::zeros([1, 3, size, size]);
    plan.run(&x)?;
    let first = t0.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        plan.run(&x)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let flops = plan.graph().total_flops() as f64;
    println!(
        "{} features {features:?} {size}x{size}: first run {:.1} ms, median {:.1} ms, min {:.1} ms, {:.1} GFLOP/s, {} dispatches, {:.1} MiB planned",
        gpu.info.name,
        first * 1e3,
        times[2] * 1e3,
        times[0] * 1e3,
        flops / times[2] / 1e9,
        plan.dispatch_count(),
        plan.planned_bytes() as f64 / (1 << 20) as f64
    );
    Ok(())
}
