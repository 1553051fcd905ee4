//! `wunet info` of an imported graph: where it came from, its input, parameters, the receptive
//! field computed from its ops, and per layer (after fusion, at the given size) the op, output
//! shape, parameters and FLOPs.

use anyhow::Result;

use wunet::graph::{fuse, Layer, LayerGraph, Shaped};

use crate::mib;

pub(crate) fn info_graph(g: &LayerGraph, (h, w): (usize, usize), batch: usize) -> Result<()> {
    let dims: Vec<String> = g
        .input_dims
        .iter()
        .zip(["N", "C", "H", "W"])
        .map(|(d, n)| d.map_or(n.to_string(), |v| v.to_string()))
        .collect();
    println!("graph: {}, {} nodes", g.source, g.nodes.len());
    println!("input: {} ({})", g.names[g.input], dims.join("x"));
    let params = g.param_count();
    println!("parameters: {params} ({} as f32)", mib(4 * params as u64));
    let cin = g.in_channels().unwrap_or(3);
    let shape = [g.input_dims[0].unwrap_or(batch), cin, h, w];
    let s = fuse(g.instantiate(shape)?);
    match s.tile_geometry() {
        Some((r, align)) => println!(
            "receptive field: {r} px on each side (the default --margin of tiled inference; tile windows aligned to {align} px)"
        ),
        None => println!("receptive field: the whole image (an op mixes every pixel): tiled inference is refused"),
    }
    let [n, c, oh, ow] = s.shapes[s.output];
    println!("\nlayers at {}x{cin}x{h}x{w} → {n}x{c}x{oh}x{ow} (BatchNorm, activations and residual adds fused):", shape[0]);
    layer_table(&s);
    let total: u64 = (0..s.shapes.len()).map(|t| 4 * s.numel(t) as u64).sum();
    println!("activations: {} in all tensors", mib(total));
    Ok(())
}

/// Per layer of `s`: the op, output shape, FLOPs, parameters and, for convs, the share of zero
/// weights (pruned models); then the FLOPs in all and in convs.
pub(crate) fn layer_table(s: &Shaped) {
    println!(
        "{:<40} {:<26} {:>18} {:>12} {:>10} {:>9}",
        "layer (first node)", "op", "output", "MFLOP", "params", "sparsity"
    );
    for (l, name) in s.layers.iter().zip(&s.names) {
        let [n, c, oh, ow] = s.shapes[l.output()];
        let p = s.params(l);
        let sparsity = match l {
            Layer::Conv { w, .. } | Layer::ConvTranspose { w, .. } => {
                let d = &s.weights[*w].data;
                let zeros = d.iter().filter(|&&v| v == 0.0).count();
                format!("{:.1} %", 100.0 * zeros as f64 / d.len().max(1) as f64)
            }
            _ => String::new(),
        };
        println!(
            "{:<40} {:<26} {:>18} {:>12.1} {:>10} {:>9}",
            trim(name, 40),
            l.kind(),
            format!("{n}x{c}x{oh}x{ow}"),
            s.flops(l) as f64 / 1e6,
            if p > 0 { p.to_string() } else { String::new() },
            sparsity
        );
    }
    let conv: u64 = s
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::Conv { .. } | Layer::ConvTranspose { .. }))
        .map(|l| s.flops(l))
        .sum();
    println!(
        "\nFLOPs: {:.3} G ({:.3} G in convs), {} layers",
        s.total_flops() as f64 / 1e9,
        conv as f64 / 1e9,
        s.layers.len()
    );
}

/// The last `n` characters of a long node name.
fn trim(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n {
        s.to_string()
    } else {
        format!("…{}", c[c.len() - (n - 1)..].iter().collect::<String>())
    }
}
