// int8 ConvTranspose2d(kernel 2, stride 2) on packed uint8 activations, requantization fused
// (no ReLU). Each invocation takes one input pixel × one output group (4 channels) and computes
// its 4 taps: per input group, one activation word and 4 weight vec4s (uniform across the
// workgroup: the output group comes from the workgroup id), 16 dot4.
//
// Weights: vec4 index (g · 4 + tap) · gout + group, tap = dy · 2 + dx. `rq`: per (tap, group),
// bias (i32 bits) then multipliers (f32 bits).

struct Params {
    n: u32,
    gin: u32,
    h: u32,      // input size
    w: u32,
    gout: u32,
    zero: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> rq: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let ix = gid.x;
    let iy = gid.y;
    let n = wid.z / p.gout;
    let grp = wid.z % p.gout;
    if (ix >= p.w || iy >= p.h) {
        return;
    }
    let ipw = p.w + 2u;
    let iplane = (p.h + 2u) * ipw;
    var a0 = vec4<i32>(0);
    var a1 = vec4<i32>(0);
    var a2 = vec4<i32>(0);
    var a3 = vec4<i32>(0);
    let s = (n * p.gin) * iplane + (iy + 1u) * ipw + ix + 1u;
    for (var g = 0u; g < p.gin; g++) {
        let x = src[s + g * iplane] ^ FLIP;
        let k = g * 4u * p.gout + grp;
        a0 += dot4x4(x, weights[k]);
        a1 += dot4x4(x, weights[k + p.gout]);
        a2 += dot4x4(x, weights[k + 2u * p.gout]);
        a3 += dot4x4(x, weights[k + 3u * p.gout]);
    }
    let opw = 2u * p.w + 2u;
    let o = (n * p.gout + grp) * (2u * p.h + 2u) * opw + (2u * iy + 1u) * opw + 2u * ix + 1u;
    let z = i32(p.zero);
    let r = grp * 2u;
    let st = p.gout * 2u;
    dst[o] = requant4(a0, bitcast<vec4<i32>>(rq[r]), bitcast<vec4<f32>>(rq[r + 1u]), z, 0);
    dst[o + 1u] = requant4(a1, bitcast<vec4<i32>>(rq[r + st]), bitcast<vec4<f32>>(rq[r + st + 1u]), z, 0);
    dst[o + opw] = requant4(a2, bitcast<vec4<i32>>(rq[r + 2u * st]), bitcast<vec4<f32>>(rq[r + 2u * st + 1u]), z, 0);
    dst[o + opw + 1u] = requant4(a3, bitcast<vec4<i32>>(rq[r + 3u * st]), bitcast<vec4<f32>>(rq[r + 3u * st + 1u]), z, 0);
}
