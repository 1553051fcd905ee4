//! `wunet info`: architecture, parameters, FLOPs and the memory plan of a float model; per-layer
//! precision, size and sparsity of an int8 one.

use std::path::Path;

use anyhow::Result;

use wunet::compress::{sparsity, QUNet};
use wunet::gpu::packed_weight_bytes;
use wunet::graph::{fuse, reference::from_unet};
use wunet::plan::{plan_memory, Graph, ARENA_ALIGN};

use crate::{load_any, mib, AnyModel};

pub(crate) fn info(model: Option<&Path>, (h, w): (usize, usize), batch: usize) -> Result<()> {
    let m = match load_any(model)?.1 {
        AnyModel::Int8(q) => return info_int8(&q, (h, w)),
        AnyModel::Graph { graph, .. } => {
            return crate::info_graph::info_graph(&graph, (h, w), batch)
        }
        AnyModel::Float(m) => m,
    };
    let s = &m.spec;
    println!(
        "U-Net: in {} → out {}, features {:?} (depth {}), bottleneck {}",
        s.in_channels,
        s.out_channels,
        s.features,
        s.depth(),
        2 * s.features.last().unwrap()
    );
    println!("BatchNorm eps {}", s.bn_eps);
    println!(
        "receptive field: {} px on each side (the default --margin of tiled inference)",
        wunet::plan::receptive_radius(s)
    );
    if let (Some(mean), Some(std)) = (&s.input_mean, &s.input_std) {
        println!("input normalization: mean {mean:?}, std {std:?}");
    }
    let params = s.param_count();
    println!("parameters: {params} ({} as f32)", mib(4 * params as u64));
    let g = Graph::build(s, [batch, s.in_channels, h, w], true)?;
    let mem = plan_memory(&g, ARENA_ALIGN);
    // The layers as the CPU engine runs them: the model's layer graph, fused.
    let shaped = fuse(from_unet(&m).instantiate([batch, s.in_channels, h, w])?);
    println!(
        "\nlayers at {batch}x{}x{h}x{w} (the layer graph, BatchNorm folded):",
        s.in_channels
    );
    crate::info_graph::layer_table(&shaped);
    println!(
        "activation memory: {} planned for the GPU (sum of all tensors {}, input {}, output {})",
        mib(mem.arena_bytes),
        mib(g.total_tensor_bytes()),
        mib(g.bytes(g.input)),
        mib(g.bytes(g.output))
    );
    println!(
        "weight memory (GPU, BN folded, f32): {}; {} where the subgroup kernels and Winograd run",
        mib(packed_weight_bytes(s, true, false, false)),
        mib(packed_weight_bytes(s, true, true, true))
    );
    Ok(())
}

/// `info` of an int8 model: per layer, precision, weight bytes and sparsity.
fn info_int8(q: &QUNet, size: (usize, usize)) -> Result<()> {
    let s = &q.spec;
    println!(
        "int8 U-Net (format {} v{}): in {} → out {}, features {:?}",
        wunet::compress::FORMAT,
        wunet::compress::FORMAT_VERSION,
        s.in_channels,
        s.out_channels,
        s.features
    );
    println!(
        "receptive field: {} px on each side (the default --margin of tiled inference)",
        wunet::plan::receptive_radius(s)
    );
    println!(
        "{:<22} {:>9} {:>10} {:>12} {:>10} {:>24}",
        "layer", "precision", "weights", "bytes", "sparsity", "output scale / zero"
    );
    let zeros =
        |w: &[i8]| 100.0 * w.iter().filter(|v| **v == 0).count() as f64 / w.len().max(1) as f64;
    let mut total = 0usize;
    let mut row = |name: String, prec: &str, n: usize, bytes: usize, sp: f64, out: String| {
        total += bytes;
        println!(
            "{name:<22} {prec:>9} {n:>10} {bytes:>12} {:>9.1}% {out:>24}",
            sp
        );
    };
    match &q.first {
        wunet::compress::FirstConv::Float(w) => row(
            "downs.0.conv1".into(),
            "f32",
            w.weight.len(),
            4 * w.weight.len(),
            100.0 * sparsity(&w.weight),
            format!("{:.4e} / {}", q.first_out.scale, q.first_out.zero),
        ),
        wunet::compress::FirstConv::Int8(input) => println!(
            "{:<22} {:>9} {:>10} {:>12} {:>10} {:>24}",
            "input",
            "uint8",
            "",
            "",
            "",
            format!("{:.4e} / {}", input.scale, input.zero)
        ),
    }
    let mut refs: Vec<_> = q.convs.keys().collect();
    refs.sort_by_key(|r| r.name());
    for r in refs {
        let c = &q.convs[r];
        row(
            r.name(),
            "int8",
            c.weight.len(),
            c.weight.len() + 8 * c.bias.len(),
            zeros(&c.weight),
            format!("{:.4e} / {}", c.out.scale, c.out.zero),
        );
    }
    for (l, u) in q.ups.iter().enumerate() {
        row(
            format!("ups.{}", 2 * l),
            "int8",
            u.weight.len(),
            u.weight.len() + 8 * u.bias.len(),
            zeros(&u.weight),
            format!("{:.4e} / {}", u.out.scale, u.out.zero),
        );
    }
    row(
        "final_conv".into(),
        "f32",
        q.head.weight.len(),
        4 * q.head.weight.len(),
        100.0 * sparsity(&q.head.weight),
        "(float logits)".into(),
    );
    println!("weights and scales: {}", mib(total as u64));
    gpu_kernels(q, size);
    Ok(())
}

/// Where a GPU adapter exists, the int8 GPU engine's kernel per 3×3 conv: dense or sparse, picked
/// by timing both on the layer (at `size`, at most 128×128 to keep `info` quick).
fn gpu_kernels(q: &QUNet, (h, w): (usize, usize)) {
    if matches!(q.first, wunet::compress::FirstConv::Float(_)) {
        println!("GPU int8 engine: not for this model (its first conv is float32)");
        return;
    }
    let Ok(gpu) = wunet::gpu::request_gpu() else {
        println!("GPU int8 kernels: no GPU adapter here");
        return;
    };
    let probe = (h.min(128), w.min(128));
    let opts = wunet::gpu::GpuInt8Options {
        dot4: gpu.dot4(),
        probe,
        ..Default::default()
    };
    let gm = match wunet::gpu::GpuInt8Model::new(&gpu.device, &gpu.queue, q, opts) {
        Ok(gm) => gm,
        Err(e) => {
            println!("GPU int8 engine: {e}");
            return;
        }
    };
    println!(
        "GPU int8 kernels on {} ({:?} dot products; picked by timing at {}x{}), weights on the device {}:",
        gpu.info.name,
        gm.dot4(),
        probe.0,
        probe.1,
        mib(gm.weight_bytes())
    );
    println!(
        "{:<22} {:>24} {:>14} {:>10} {:>10}",
        "layer", "kernel", "nonzero 8×4", "dense ms", "sparse ms"
    );
    for c in gm.choices() {
        let (d, s) = c.ms.map_or(("-".into(), "-".into()), |(d, s)| {
            (format!("{d:.2}"), format!("{s:.2}"))
        });
        println!(
            "{:<22} {:>24} {:>13.1}% {:>10} {:>10}",
            c.name,
            c.kernel.shader(),
            100.0 * c.density,
            d,
            s
        );
    }
}
