// Sparse int8 3×3 convolution, padding 1, on packed uint8 activations, requantization and ReLU
// fused; reads the compressed weights directly and skips zeros. Inputs as conv3x3_i8 (skip and
// upsampled tensors in place).
//
// Unit of sparsity: the 32 weights of 8 output × 4 input channels at one tap, two vec4<u32> (what
// `compress --prune-block 8x4` zeroes whole). Per block of 8 output channels, `entries` lists the
// nonzero units as k = input group · 9 + tap, and `weights` holds their vec4 pairs;
// `entries[blk] .. entries[blk + 1]` is the block's range. Each invocation computes 4 consecutive
// pixels of a row × 8 output channels, as the dense kernel does, but walks its block's list
// (uniform across the workgroup, whose block comes from the workgroup id): per entry 4 activation
// words, 2 weight loads, 32 dot4. The work is proportional to the nonzero units.

struct Params {
    n: u32,
    ga: u32,
    gb: u32,
    h: u32,
    w: u32,
    gout: u32,
    blocks: u32,
    zl: u32,     // output zero point | lowest output value << 8
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src_a: array<u32>;
@group(0) @binding(2) var<storage, read_write> src_b: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> entries: array<u32>; // offsets[blocks + 1], then k per entry
@group(0) @binding(5) var<storage, read> rq: array<vec4<u32>>;   // as conv3x3_i8
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
    let x0 = gid.x * 4u;
    let y = gid.y;
    let n = wid.z / p.blocks;
    let blk = wid.z % p.blocks;
    if (x0 >= p.w || y >= p.h) {
        return;
    }
    let pw = p.w + 2u;
    let plane = (p.h + 2u) * pw;
    var a0l = vec4<i32>(0); var a0h = vec4<i32>(0);
    var a1l = vec4<i32>(0); var a1h = vec4<i32>(0);
    var a2l = vec4<i32>(0); var a2h = vec4<i32>(0);
    var a3l = vec4<i32>(0); var a3h = vec4<i32>(0);
    let first = entries[blk];
    let last = entries[blk + 1u];
    let list = p.blocks + 1u;
    for (var e = first; e < last; e++) {
        let k = entries[list + e];
        let g = k / 9u;
        let tap = k % 9u;
        let r = (y + tap / 3u) * pw + x0 + tap % 3u;
        let wl = weights[2u * e];
        let wh = weights[2u * e + 1u];
        let s0 = load(n, g, r, plane);
        let s1 = load(n, g, r + 1u, plane);
        let s2 = load(n, g, r + 2u, plane);
        let s3 = load(n, g, r + 3u, plane);
        a0l += dot4x4(s0, wl); a0h += dot4x4(s0, wh);
        a1l += dot4x4(s1, wl); a1h += dot4x4(s1, wh);
        a2l += dot4x4(s2, wl); a2h += dot4x4(s2, wh);
        a3l += dot4x4(s3, wl); a3h += dot4x4(s3, wh);
    }
    let bl = bitcast<vec4<i32>>(rq[blk * 4u]);
    let bh = bitcast<vec4<i32>>(rq[blk * 4u + 1u]);
    let ml = bitcast<vec4<f32>>(rq[blk * 4u + 2u]);
    let mh = bitcast<vec4<f32>>(rq[blk * 4u + 3u]);
    let zero = i32(p.zl & 0xFFu);
    let lo = i32(p.zl >> 8u);
    let o = (n * p.gout + 2u * blk) * plane + (y + 1u) * pw + x0 + 1u;
    let hi = 2u * blk + 1u < p.gout;
    dst[o] = requant4(a0l, bl, ml, zero, lo);
    if (hi) { dst[o + plane] = requant4(a0h, bh, mh, zero, lo); }
    if (x0 + 1u < p.w) {
        dst[o + 1u] = requant4(a1l, bl, ml, zero, lo);
        if (hi) { dst[o + plane + 1u] = requant4(a1h, bh, mh, zero, lo); }
    }
    if (x0 + 2u < p.w) {
        dst[o + 2u] = requant4(a2l, bl, ml, zero, lo);
        if (hi) { dst[o + plane + 2u] = requant4(a2h, bh, mh, zero, lo); }
    }
    if (x0 + 3u < p.w) {
        dst[o + 3u] = requant4(a3l, bl, ml, zero, lo);
        if (hi) { dst[o + plane + 3u] = requant4(a3h, bh, mh, zero, lo); }
    }
}
