//! `wunet bench`: end-to-end times (upload, one submit, readback), first-inference latency, and
//! per-dispatch GPU times from timestamp queries, against the adapter's measured FMA peak.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};

use wunet::gpu::{
    measure_fma_peak, request_gpu, GpuInt8Model, GpuInt8Options, GpuModel, GpuOptions, Kernel,
    Plan, TimingMode,
};
use wunet::plan::Graph;
use wunet::{cpu, Tensor, UNet};

use crate::AnyModel;

pub struct BenchArgs {
    pub size: (usize, usize),
    pub batch: usize,
    pub runs: usize,
    pub warmup: usize,
    pub json: bool,
    pub cpu: bool,
}

pub(crate) struct Layer {
    pub name: String,
    pub kernel: String,
    pub shape: [usize; 4],
    pub flops: u64,
    pub bytes: u64,
    pub ms: f64,
}

/// Wall times in milliseconds of `a.runs` calls of `f`, after `a.warmup` untimed ones.
pub(crate) fn time_runs(a: &BenchArgs, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(a.runs);
    for i in 0..a.warmup + a.runs {
        let t = Instant::now();
        f()?;
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Deterministic input in [-1, 1): benchmarks never run on zeros.
pub(crate) fn input(shape: [usize; 4]) -> Tensor {
    let data = (0..shape.iter().product::<usize>())
        .map(|i| ((i as f32) * 0.618_034).fract() * 2.0 - 1.0)
        .collect();
    Tensor::new(shape, data).expect("shape matches")
}

/// The GPU a benchmark runs on, its description for the report, and its FMA peak measured now
/// (GFLOP/s).
pub(crate) fn gpu_and_peak(a: &BenchArgs) -> Result<(wunet::gpu::Gpu, String, f64)> {
    let gpu = request_gpu()?;
    let adapter = format!(
        "{} ({:?}, {:?})",
        gpu.info.name, gpu.info.backend, gpu.info.device_type
    );
    if !a.json {
        eprintln!("adapter: {adapter}; measuring the FMA peak…");
    }
    let peak = measure_fma_peak(&gpu.device, &gpu.queue)?;
    Ok((gpu, adapter, peak))
}

/// A float model on the CPU or the GPU, or an int8 model on the GPU (the CPU int8 engine has
/// `bench_int8`).
pub fn bench(model_path: &Path, model: AnyModel, a: &BenchArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (h, w) = a.size;
    if let AnyModel::Graph { graph, .. } = model {
        return crate::bench_graph::bench_graph(model_path, graph, a);
    }
    if a.cpu {
        // The CPU runs a reference U-Net as its layer graph, like any imported model.
        let AnyModel::Float(m) = &model else {
            bail!("the CPU int8 engine is benchmarked by bench_int8");
        };
        let graph = wunet::graph::reference::from_unet(m);
        return crate::bench_graph::bench_graph(model_path, graph, a);
    }
    let spec = model.spec().clone();
    let precision = match model {
        AnyModel::Float(_) => "f32",
        AnyModel::Int8(_) => "int8",
        AnyModel::Graph { .. } => unreachable!("benchmarked by bench_graph"),
    };
    let shape = [a.batch, spec.in_channels, h, w];
    let graph = Graph::build(&spec, shape, true)?;
    let flops = graph.total_flops() as f64;
    let x = input(shape);
    let (device, adapter, peak, first_ms, weight_bytes, activation_bytes, times, layers, mode) = {
        let (gpu, adapter, peak) = gpu_and_peak(a)?;
        let t = Instant::now();
        let (plan, weight_bytes) = match &model {
            AnyModel::Float(m) => {
                let gm = GpuModel::new(&gpu.device, &gpu.queue, m, GpuOptions::default())?;
                (gm.plan(shape)?, gm.weight_bytes())
            }
            AnyModel::Graph { .. } => unreachable!("benchmarked by bench_graph"),
            AnyModel::Int8(q) => {
                let gm = GpuInt8Model::new(
                    &gpu.device,
                    &gpu.queue,
                    q,
                    GpuInt8Options {
                        dot4: gpu.dot4(),
                        ..Default::default()
                    },
                )?;
                if !a.json {
                    eprintln!("int8 kernels: {:?} dot products", gm.dot4());
                }
                (gm.plan(shape)?, gm.weight_bytes())
            }
        };
        let compile = t.elapsed().as_secs_f64() * 1e3;
        plan.run(&x)?;
        let first = t.elapsed().as_secs_f64() * 1e3;
        if !a.json {
            eprintln!("first inference {first:.1} ms (of which pipelines, weights and plan {compile:.1} ms)");
        }
        let times = time_runs(a, || {
            plan.run(&x)?;
            Ok(())
        })?;
        let mut layers = Vec::new();
        let mode = plan.timing_mode();
        if mode.is_some() {
            let ms = step_medians(&plan, &x, a.runs.clamp(1, 3))?;
            for (s, ms) in plan.steps().iter().zip(ms) {
                layers.push(Layer {
                    name: s.label.clone(),
                    kernel: s.kernel.shader().to_string(),
                    shape: plan.graph().shapes[s.output],
                    flops: s.flops,
                    bytes: s.bytes,
                    ms,
                });
            }
        }
        (
            "gpu".to_string(),
            adapter,
            Some(peak),
            first,
            weight_bytes,
            plan.planned_bytes(),
            times,
            layers,
            mode,
        )
    };
    report(
        Measured {
            device,
            adapter,
            peak,
            first_ms,
            weight_bytes,
            activation_bytes,
            times,
            layers,
            mode,
            flops,
        },
        model_path,
        precision,
        spec.in_channels,
        a,
    )
}

/// What a benchmark measured, for `report`.
pub(crate) struct Measured {
    pub device: String,
    pub adapter: String,
    pub peak: Option<f64>,
    pub first_ms: f64,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    pub times: Vec<f64>,
    pub layers: Vec<Layer>,
    pub mode: Option<TimingMode>,
    pub flops: f64,
}

/// Prints a benchmark as a table or as one JSON object (the fields the README lists).
pub(crate) fn report(
    m: Measured,
    model_path: &Path,
    precision: &str,
    in_channels: usize,
    a: &BenchArgs,
) -> Result<()> {
    let Measured {
        device,
        adapter,
        peak,
        first_ms,
        weight_bytes,
        activation_bytes,
        mut times,
        layers,
        mode,
        flops,
    } = m;
    let (h, w) = a.size;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let med = median(&mut times);
    let gflops = flops / (med * 1e-3) / 1e9;
    let pct = |g: f64| peak.map(|p| 100.0 * g / p);
    if a.json {
        let layers_json: Vec<String> = layers
            .iter()
            .map(|l| {
                let g = l.flops as f64 / (l.ms * 1e-3) / 1e9;
                format!(
                    "{{\"name\":{},\"kernel\":{},\"shape\":{:?},\"flops\":{},\"bytes\":{},\"ms\":{:.4},\"gflops\":{:.2},\"pct_peak\":{}}}",
                    json_str(&l.name),
                    json_str(&l.kernel),
                    l.shape,
                    l.flops,
                    l.bytes,
                    l.ms,
                    g,
                    opt(pct(g))
                )
            })
            .collect();
        println!(
            "{{\"device\":{},\"adapter\":{},\"precision\":\"{precision}\",\"model\":{},\"size\":\"{h}x{w}\",\"batch\":{},\"threads\":{},\"runs\":{},\"median_ms\":{med:.3},\"min_ms\":{min:.3},\"first_inference_ms\":{first_ms:.3},\"flops\":{flops},\"gflops\":{gflops:.3},\"peak_gflops\":{},\"pct_peak\":{},\"activation_bytes\":{activation_bytes},\"weight_bytes\":{weight_bytes},\"timing\":{},\"layers\":[{}]}}",
            json_str(&device),
            json_str(&adapter),
            json_str(&model_path.display().to_string()),
            a.batch,
            if a.cpu {
                rayon::current_num_threads().to_string()
            } else {
                "null".into()
            },
            a.runs,
            opt(peak),
            opt(pct(gflops)),
            json_str(match mode {
                Some(TimingMode::InsidePass) => "timestamps inside the one compute pass",
                Some(TimingMode::PassPerDispatch) => "profiling mode: one compute pass per dispatch",
                None => "none",
            }),
            layers_json.join(",")
        );
        return Ok(());
    }
    println!(
        "model {} at {}x{}x{h}x{w}, {precision}, {device}: {adapter}",
        model_path.display(),
        a.batch,
        in_channels
    );
    if let Some(p) = peak {
        println!("measured FMA peak: {p:.1} GFLOP/s");
    }
    if a.cpu {
        println!("first inference: {first_ms:.1} ms");
    } else {
        println!("first inference: {first_ms:.1} ms (shader compile, pipelines, weights upload, plan, one run)");
    }
    println!(
        "end to end over {} runs: median {med:.2} ms, min {min:.2} ms; {:.2} GFLOP → {gflops:.1} GFLOP/s{}",
        a.runs,
        flops / 1e9,
        pct(gflops).map_or(String::new(), |p| format!(" ({p:.1}% of peak)"))
    );
    println!(
        "activation memory planned: {:.2} MiB; weights: {:.2} MiB",
        mib(activation_bytes),
        mib(weight_bytes)
    );
    match mode {
        Some(TimingMode::InsidePass) => println!(
            "\nper dispatch (GPU timestamps inside the one compute pass, median of {} runs):",
            a.runs.clamp(1, 3)
        ),
        Some(TimingMode::PassPerDispatch) => println!(
            "\nper dispatch (profiling mode: one compute pass per dispatch, still one submit):"
        ),
        None if !a.cpu => println!("\n(no per-dispatch times: the adapter has no TIMESTAMP_QUERY)"),
        None => println!(
            "\nper op (wall clock, median of {} runs):",
            a.runs.clamp(1, 3)
        ),
    }
    if !layers.is_empty() {
        println!(
            "{:<20} {:<26} {:>18} {:>10} {:>9} {:>9} {:>10} {:>7}",
            "layer", "kernel", "output", "MFLOP", "ms", "GFLOP/s", "MB moved", "% peak"
        );
        let mut total = 0.0;
        for l in &layers {
            let g = l.flops as f64 / (l.ms * 1e-3) / 1e9;
            total += l.ms;
            let [n, c, oh, ow] = l.shape;
            println!(
                "{:<20} {:<26} {:>18} {:>10.1} {:>9.3} {:>9.1} {:>10.2} {:>7}",
                l.name,
                l.kernel,
                format!("{n}x{c}x{oh}x{ow}"),
                l.flops as f64 / 1e6,
                l.ms,
                g,
                l.bytes as f64 / 1e6,
                pct(g).map_or("-".into(), |p| format!("{p:.1}"))
            );
        }
        println!(
            "sum of dispatches: {total:.2} ms ({:.1} GFLOP/s)",
            flops / (total * 1e-3) / 1e9
        );
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn opt(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.3}"))
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Each dispatch's GPU time (timestamps), median over `reps` profiled runs.
fn step_medians(plan: &Plan, x: &Tensor, reps: usize) -> Result<Vec<f64>> {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); plan.steps().len()];
    for _ in 0..reps {
        let (_, prof) = plan.run_profiled(x)?;
        for (v, ms) in per.iter_mut().zip(prof.step_ms) {
            v.push(ms);
        }
    }
    Ok(per.iter_mut().map(|v| median(v)).collect())
}

/// `bench --kernels`: every 3×3 conv variant forced on every layer, GPU time per layer from
/// timestamps (median of 3), against the measured peak; then, where the subgroup kernels run,
/// the default plan ("Default": Winograd where it runs, its dispatches summed per layer); marks
/// the per-layer choice.
/// A `bench --kernels` column: the kernel, or `Conv3x3Sg` for the subgroup kernel in whatever
/// mode each layer takes.
fn variant_name(k: Kernel) -> String {
    match k {
        Kernel::Conv3x3Sg(_) => "Conv3x3Sg".to_string(),
        k => format!("{k:?}"),
    }
}

pub fn bench_kernels(model: UNet, (h, w): (usize, usize), batch: usize, json: bool) -> Result<()> {
    let gpu = request_gpu()?;
    let peak = measure_fma_peak(&gpu.device, &gpu.queue)?;
    let shape = [batch, model.spec.in_channels, h, w];
    let x = input(shape);
    // The subgroup kernel where the adapter has fixed-size subgroups, its mode picked per layer
    // (where a layer's shape rules it out, its column shows Conv3x3Co8Grouped). That column is
    // what the default per-layer choice runs.
    let subgroups = wunet::gpu::fixed_subgroup_size(&gpu.device, &gpu.queue).is_some();
    let mut variants = vec![Kernel::Conv3x3Co4, Kernel::Conv3x3Co8];
    if subgroups {
        variants.push(Kernel::Conv3x3Sg(0));
    }
    // Per conv3x3 step: label, output shape, FLOPs, ms per variant, the kernel the default runs,
    // its output tensor.
    type Row = (String, [usize; 4], u64, Vec<f64>, String, usize);
    let mut rows: Vec<Row> = Vec::new();
    for (vi, &k) in variants.iter().enumerate() {
        let gm = GpuModel::new(
            &gpu.device,
            &gpu.queue,
            &model,
            GpuOptions {
                conv3x3: Some(k),
                ..Default::default()
            },
        )?;
        let plan = gm.plan(shape)?;
        if plan.timing_mode().is_none() {
            bail!("the adapter has no TIMESTAMP_QUERY: per-kernel times are unavailable");
        }
        plan.run(&x)?;
        let per = step_medians(&plan, &x, 3)?;
        let mut r = 0;
        for ((s, op), ms) in plan.steps().iter().zip(&plan.graph().ops).zip(per) {
            if !matches!(
                s.kernel,
                Kernel::Conv3x3Co4
                    | Kernel::Conv3x3Co8
                    | Kernel::Conv3x3Co8Grouped
                    | Kernel::Conv3x3Sg(_)
            ) {
                continue;
            }
            if vi == 0 {
                let shape = plan.graph().shapes[op.output()];
                rows.push((
                    s.label.clone(),
                    shape,
                    s.flops,
                    Vec::new(),
                    format!("{:?}", Kernel::conv3x3_for(shape[1])),
                    op.output(),
                ));
            }
            if subgroups && vi == variants.len() - 1 {
                rows[r].4 = format!("{:?}", s.kernel);
            }
            rows[r].3.push(ms);
            r += 1;
        }
    }
    // The default plan (Winograd where it runs, `gpu::winograd`): each conv's time is the sum of
    // its dispatches (transforms and GEMMs of every chunk).
    let mut names: Vec<String> = variants.iter().map(|&k| variant_name(k)).collect();
    if subgroups {
        let gm = GpuModel::new(&gpu.device, &gpu.queue, &model, GpuOptions::default())?;
        let plan = gm.plan(shape)?;
        plan.run(&x)?;
        let per = step_medians(&plan, &x, 3)?;
        let times: Vec<(usize, Kernel, f64)> = plan
            .steps()
            .iter()
            .zip(per)
            .map(|(s, ms)| (s.output, s.kernel, ms))
            .collect();
        for row in &mut rows {
            let mine = times.iter().filter(|t| t.0 == row.5);
            row.3.push(mine.clone().map(|t| t.2).sum());
            if mine.clone().any(|t| t.1 == Kernel::WinoGemm) {
                row.4 = "Winograd".into();
            }
        }
        names.push("Default".into());
    }
    let gf = |flops: u64, ms: f64| flops as f64 / (ms * 1e-3) / 1e9;
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|(name, shape, flops, ms, chosen, _)| {
                let vs: Vec<String> = names
                    .iter()
                    .zip(ms)
                    .map(|(k, &t)| format!("{{\"kernel\":\"{k}\",\"ms\":{t:.4},\"gflops\":{:.2},\"pct_peak\":{:.2}}}", gf(*flops, t), 100.0 * gf(*flops, t) / peak))
                    .collect();
                format!("{{\"name\":{},\"shape\":{shape:?},\"flops\":{flops},\"chosen\":\"{chosen}\",\"variants\":[{}]}}", json_str(name), vs.join(","))
            })
            .collect();
        println!(
            "{{\"adapter\":{},\"peak_gflops\":{peak:.3},\"size\":\"{h}x{w}\",\"layers\":[{}]}}",
            json_str(&gpu.info.name),
            items.join(",")
        );
        return Ok(());
    }
    println!(
        "conv3x3 variants at {batch}x{}x{h}x{w} on {}; measured FMA peak {peak:.1} GFLOP/s",
        model.spec.in_channels, gpu.info.name
    );
    print!("{:<20} {:>18} {:>9}", "layer", "output", "MFLOP");
    for k in &names {
        print!(" {:>24}", format!("{k} ms / % peak"));
    }
    println!("  chosen");
    for (name, shape, flops, ms, chosen, _) in &rows {
        let [n, c, oh, ow] = *shape;
        print!(
            "{name:<20} {:>18} {:>9.1}",
            format!("{n}x{c}x{oh}x{ow}"),
            *flops as f64 / 1e6
        );
        for &t in ms {
            print!(
                " {:>24}",
                format!("{t:.2} / {:.1}%", 100.0 * gf(*flops, t) / peak)
            );
        }
        println!("  {chosen}");
    }
    Ok(())
}

/// `bench` of an int8 model on the CPU int8 engine: median and min over the runs, GOP/s.
pub fn bench_int8(model_path: &Path, model: &wunet::compress::QUNet, a: &BenchArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (h, w) = a.size;
    let shape = [a.batch, model.spec.in_channels, h, w];
    let ops = Graph::build(&model.spec, shape, true)?.total_flops() as f64;
    let x = input(shape);
    let t = Instant::now();
    let engine = cpu::int8::Int8Model::new(model)?;
    engine.forward(&x)?;
    let first = t.elapsed().as_secs_f64() * 1e3;
    let mut times = time_runs(a, || {
        engine.forward(&x)?;
        Ok(())
    })?;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let med = median(&mut times);
    let gops = ops / (med * 1e-3) / 1e9;
    let threads = rayon::current_num_threads();
    let kernel = cpu::int8::kernels::qgemm_name();
    if a.json {
        println!(
            "{{\"device\":\"cpu\",\"adapter\":{},\"precision\":\"int8\",\"model\":{},\"size\":\"{h}x{w}\",\"batch\":{},\"threads\":{threads},\"runs\":{},\"median_ms\":{med:.3},\"min_ms\":{min:.3},\"first_inference_ms\":{first:.3},\"gops\":{gops:.3},\"kernel\":{}}}",
            json_str(&format!("cpu int8, {threads} threads")),
            json_str(&model_path.display().to_string()),
            a.batch,
            a.runs,
            json_str(kernel)
        );
        return Ok(());
    }
    println!(
        "model {} at {}x{}x{h}x{w}, int8, cpu ({threads} threads, {kernel})",
        model_path.display(),
        a.batch,
        model.spec.in_channels
    );
    println!("first inference: {first:.1} ms");
    println!(
        "end to end over {} runs: median {med:.2} ms, min {min:.2} ms; {:.2} GOP → {gops:.1} GOP/s",
        a.runs,
        ops / 1e9
    );
    Ok(())
}

/// `bench --kernels --int8`: the dense and the sparse int8 conv kernels on every 3×3 conv of
/// `spec` at `size`, per sparsity of the weights' 8×4 blocks; and which the per-layer choice
/// (the faster) takes.
pub fn bench_kernels_int8(
    spec: &wunet::UNetSpec,
    size: (usize, usize),
    sparsities: &[f64],
    json: bool,
) -> Result<()> {
    let gpu = request_gpu()?;
    let dot4 = gpu.dot4();
    let adapter = format!("{} ({:?})", gpu.info.name, gpu.info.backend);
    let mut all = Vec::new();
    for &s in sparsities {
        if !(0.0..=1.0).contains(&s) {
            bail!("--sparsity {s} is outside [0, 1]");
        }
        all.push(wunet::gpu::time_conv_kernels(
            &gpu.device,
            &gpu.queue,
            dot4,
            spec,
            size,
            s,
        )?);
    }
    if json {
        let rows: Vec<String> = all
            .iter()
            .flatten()
            .map(|t| {
                format!(
                    "{{\"name\":{},\"shape\":{:?},\"flops\":{},\"sparsity\":{},\"dense_ms\":{:.4},\"sparse_ms\":{:.4}}}",
                    json_str(&t.layer),
                    t.shape,
                    t.flops,
                    t.sparsity,
                    t.dense_ms,
                    t.sparse_ms
                )
            })
            .collect();
        println!(
            "{{\"adapter\":{},\"dot4\":\"{dot4:?}\",\"size\":\"{}x{}\",\"layers\":[{}]}}",
            json_str(&adapter),
            size.0,
            size.1,
            rows.join(",")
        );
        return Ok(());
    }
    println!(
        "int8 conv kernels at {}x{} on {adapter} ({dot4:?} dot products); ms per dispatch, best of 3",
        size.0, size.1
    );
    for timings in &all {
        let s = timings.first().map_or(0.0, |t| t.sparsity);
        println!("\nsparsity {:.0} % (8×4 blocks)", 100.0 * s);
        println!(
            "{:<20} {:>16} {:>10} {:>10} {:>10} {:>8} {:>8}",
            "layer", "output", "GOP", "dense", "sparse", "speedup", "picked"
        );
        let (mut d, mut sp, mut best) = (0.0, 0.0, 0.0);
        for t in timings {
            d += t.dense_ms;
            sp += t.sparse_ms;
            best += t.dense_ms.min(t.sparse_ms);
            println!(
                "{:<20} {:>16} {:>10.3} {:>10.2} {:>10.2} {:>7.2}× {:>8}",
                t.layer,
                format!("{:?}", t.shape),
                t.flops as f64 / 1e9,
                t.dense_ms,
                t.sparse_ms,
                t.dense_ms / t.sparse_ms,
                if t.sparse_ms < t.dense_ms {
                    "sparse"
                } else {
                    "dense"
                }
            );
        }
        println!(
            "{:<20} {:>16} {:>10} {:>10.2} {:>10.2} {:>7.2}×  per-layer choice: {best:.2} ms",
            "all 3×3 convs",
            "",
            "",
            d,
            sp,
            d / sp
        );
    }
    Ok(())
}
