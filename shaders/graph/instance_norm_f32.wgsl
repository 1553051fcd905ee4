// Instance normalization, float32, dense NCHW: one workgroup (WG ≤ 256, a power of two) per
// (n, c) plane computes the mean, then the biased variance around it (two passes, tree
// reductions in workgroup memory), and writes `act((x − mean) / √(var + eps) · scale[c] +
// bias[c])`. `aux`: scale (c values), bias (c values), then the PRelu slopes. Dispatch: one
// workgroup per plane, in a 2-D grid.

struct Params {
    planes: u32, hw: u32, c: u32, eps: u32,
    act: u32, act_a: u32, act_b: u32, slope_off: u32,
    slope_per_ch: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;

override WG: u32 = 256u;

var<workgroup> part: array<f32, 256>;

// The sum of every invocation's `v` over the workgroup.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            part[lid] += part[lid + half];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = wid.y * nwg.x + wid.x;
    let live = s < p.planes;
    let base = s * p.hw;
    // pass 1: mean
    var acc = 0.0;
    if (live) {
        for (var k = lid; k < p.hw; k += WG) {
            acc += src[base + k];
        }
    }
    let mean = workgroup_sum(lid, acc) / f32(p.hw);
    // pass 2: biased variance around the mean
    acc = 0.0;
    if (live) {
        for (var k = lid; k < p.hw; k += WG) {
            let d = src[base + k] - mean;
            acc += d * d;
        }
    }
    let variance = workgroup_sum(lid, acc) / f32(p.hw);
    if (!live) {
        return;
    }
    let c = s % p.c;
    let inv = 1.0 / sqrt(variance + bitcast<f32>(p.eps));
    let g = aux[c];
    let b = aux[p.c + c];
    let slope = aux[p.slope_off + select(0u, c, p.slope_per_ch == 1u)];
    let a0 = bitcast<f32>(p.act_a);
    let a1 = bitcast<f32>(p.act_b);
    for (var k = lid; k < p.hw; k += WG) {
        let v = ((src[base + k] - mean) * inv) * g + b;
        dst[base + k] = apply_act(v, p.act, a0, a1, slope);
    }
}
