// Sparse int8 3×3 convolution, padding 1, on packed uint8 activations, requantization and ReLU
// fused; reads the compressed weights directly and skips zeros. Inputs as conv3x3_i8 (skip and
// upsampled tensors in place).
//
// Unit of sparsity: the 16 weights of 4 output × 4 input channels at one tap, one vec4<u32>
// (what `compress --prune-block 4x4` zeroes whole). Per output group (4 channels), `entries`
// lists the nonzero units as (k = input group · 9 + tap) and `weights` their vec4s;
// `offsets[group] .. offsets[group + 1]` is its range. Each invocation computes 8 consecutive
// pixels of a row × one output group and walks its group's list (uniform across the workgroup,
// whose group comes from the workgroup id): per entry, 8 activation words and 32 dot4. The work
// is proportional to the nonzero units.

struct Params {
    n: u32,
    ga: u32,
    gb: u32,
    h: u32,
    w: u32,
    gout: u32,
    zl: u32,     // output zero point | lowest output value << 8
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src_a: array<u32>;
@group(0) @binding(2) var<storage, read_write> src_b: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> entries: array<u32>; // offsets[gout + 1], then k per entry
@group(0) @binding(5) var<storage, read> rq: array<vec4<u32>>;   // per group: bias, multipliers
@group(0) @binding(6) var<storage, read_write> dst: array<u32>;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

fn load(n: u32, g: u32, i: u32, plane: u32) -> u32 {
    if (g < p.ga) {
        return src_a[(n * p.ga + g) * plane + i] ^ FLIP;
    }
    return src_b[(n * p.gb + g - p.ga) * plane + i] ^ FLIP;
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let x0 = gid.x * 8u;
    let y = gid.y;
    let n = wid.z / p.gout;
    let grp = wid.z % p.gout;
    if (x0 >= p.w || y >= p.h) {
        return;
    }
    let pw = p.w + 2u;
    let plane = (p.h + 2u) * pw;
    var a0 = vec4<i32>(0); var a1 = vec4<i32>(0); var a2 = vec4<i32>(0); var a3 = vec4<i32>(0);
    var a4 = vec4<i32>(0); var a5 = vec4<i32>(0); var a6 = vec4<i32>(0); var a7 = vec4<i32>(0);
    let first = entries[grp];
    let last = entries[grp + 1u];
    let list = p.gout + 1u;
    for (var e = first; e < last; e++) {
        let k = entries[list + e];
        let g = k / 9u;
        let tap = k % 9u;
        let r = (y + tap / 3u) * pw + x0 + tap % 3u;
        let wv = weights[e];
        a0 += dot4x4(load(n, g, r, plane), wv);
        a1 += dot4x4(load(n, g, r + 1u, plane), wv);
        a2 += dot4x4(load(n, g, r + 2u, plane), wv);
        a3 += dot4x4(load(n, g, r + 3u, plane), wv);
        a4 += dot4x4(load(n, g, r + 4u, plane), wv);
        a5 += dot4x4(load(n, g, r + 5u, plane), wv);
        a6 += dot4x4(load(n, g, r + 6u, plane), wv);
        a7 += dot4x4(load(n, g, r + 7u, plane), wv);
    }
    let b = bitcast<vec4<i32>>(rq[grp * 2u]);
    let m = bitcast<vec4<f32>>(rq[grp * 2u + 1u]);
    let zero = i32(p.zl & 0xFFu);
    let lo = i32(p.zl >> 8u);
    let o = (n * p.gout + grp) * plane + (y + 1u) * pw + x0 + 1u;
    let left = p.w - x0;
    dst[o] = requant4(a0, b, m, zero, lo);
    if (left > 1u) { dst[o + 1u] = requant4(a1, b, m, zero, lo); }
    if (left > 2u) { dst[o + 2u] = requant4(a2, b, m, zero, lo); }
    if (left > 3u) { dst[o + 3u] = requant4(a3, b, m, zero, lo); }
    if (left > 4u) { dst[o + 4u] = requant4(a4, b, m, zero, lo); }
    if (left > 5u) { dst[o + 5u] = requant4(a5, b, m, zero, lo); }
    if (left > 6u) { dst[o + 6u] = requant4(a6, b, m, zero, lo); }
    if (left > 7u) { dst[o + 7u] = requant4(a7, b, m, zero, lo); }
}
