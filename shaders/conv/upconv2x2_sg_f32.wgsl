// ConvTranspose2d(kernel 2, stride 2) with bias, NCHW float32 (planes `plane_stride` apart), for
// adapters with subgroups of one fixed size:
// output pixel (2y + dy, 2x + dx) = bias + Σ_ci in[ci, y, x] · W[ci, co, dy, dx].
//
// Each invocation takes 2 neighbouring input pixels and computes all 4 taps of both (a 2 × 4
// output patch) for 4 output channels: 8 named vec4 accumulators (vec4 over channels). The
// weights every lane needs are the same (the channel block comes from the workgroup id), so the
// lanes of a subgroup load the 8 weight vec4s of two input channels cooperatively, one per lane,
// and hand them out with `subgroupShuffle` at constant lane indices (see conv3x3_sg_f32.wgsl for
// why loads, not arithmetic, bound SIMD-style devices). No alignment is assumed: any width.
//
// Workgroup = one subgroup; invocation i of the dispatch takes pixel pair i of the input in
// raster order (pairs do not cross rows). Workgroups: x · y of them cover the pairs (folded into y
// past the per-dimension limit), z = n · cog.
// Weights grouped by 4 output channels: vec4 index (g * cin + ci) * 4 + dy * 2 + dx holds
// channels 4g ..+ 4 (zero past cout); bias: vec4 g.

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    cog: u32, // output-channel blocks of 4
    h: u32,   // input height
    w: u32,   // input width
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// The adapter's subgroup size (its minimum and maximum agree), at least 4.
override SG: u32 = 8u;

// Accumulators a<dy><k>: output row 2y + dy, column 2 x0 + k, 4 output channels.
var<private> a00: vec4<f32>;
var<private> a01: vec4<f32>;
var<private> a02: vec4<f32>;
var<private> a03: vec4<f32>;
var<private> a10: vec4<f32>;
var<private> a11: vec4<f32>;
var<private> a12: vec4<f32>;
var<private> a13: vec4<f32>;

// One input channel's pixels u0, u1 through its 4 taps w<dy><dx>.
fn taps(u0: f32, u1: f32, w00: vec4<f32>, w01: vec4<f32>, w10: vec4<f32>, w11: vec4<f32>) {
    a00 = fma(vec4(u0), w00, a00);
    a01 = fma(vec4(u0), w01, a01);
    a02 = fma(vec4(u1), w00, a02);
    a03 = fma(vec4(u1), w01, a03);
    a10 = fma(vec4(u0), w10, a10);
    a11 = fma(vec4(u0), w11, a11);
    a12 = fma(vec4(u1), w10, a12);
    a13 = fma(vec4(u1), w11, a13);
}

// Weight vec4 `q` (of the pair of input channels) from lane q % SG of r0 or r1.
fn wt(q: u32, r0: vec4<f32>, r1: vec4<f32>) -> vec4<f32> {
    return subgroupShuffle(select(r1, r0, q < SG), q % SG);
}

fn store(n: u32, co0: u32, oy: u32, ox: u32, v: vec4<f32>) {
    let ow = 2u * p.w;
    if (ox >= ow || co0 >= p.cout) {
        return;
    }
    let ohw = plane_stride(4u * p.h * p.w);
    let o = (n * p.cout + co0) * ohw + oy * ow + ox;
    let left = p.cout - co0;
    dst[o] = v.x;
    if (left > 1u) { dst[o + ohw] = v.y; }
    if (left > 2u) { dst[o + 2u * ohw] = v.z; }
    if (left > 3u) { dst[o + 3u * ohw] = v.w; }
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let pairs = (p.w + 1u) / 2u;
    let i = (wid.y * nwg.x + wid.x) * SG + lane;
    let y = i / pairs;
    let x0 = (i % pairs) * 2u;
    let n = wid.z / p.cog;
    let g = wid.z % p.cog;
    let inside = y < p.h;
    let hw = plane_stride(p.h * p.w);
    // Every lane loads (clamped, zeroed outside) so that all take part in the shuffles.
    let yc = min(y, p.h - 1u);
    let ok1 = inside && x0 + 1u < p.w;
    let s = n * p.cin * hw + yc * p.w + x0;
    let s1 = select(s, s + 1u, ok1);

    let b = bias[g];
    a00 = b;
    a01 = b;
    a02 = b;
    a03 = b;
    a10 = b;
    a11 = b;
    a12 = b;
    a13 = b;
    let wg = g * p.cin * 4u;
    let last = p.cin * 4u - 1u;
    for (var ci = 0u; ci < p.cin; ci += 2u) {
        // The 8 weight vec4s of channels ci and ci + 1 (clamped past the last channel, whose
        // input is zero), one per lane; a load inside a branch costs only the lanes taking it.
        var r0 = vec4(0.0);
        var r1 = vec4(0.0);
        if (lane < 8u) {
            r0 = weights[wg + min(ci * 4u + lane, last)];
        }
        if (SG < 8u && lane + SG < 8u) {
            r1 = weights[wg + min(ci * 4u + SG + lane, last)];
        }
        let has2 = ci + 1u < p.cin;
        let o = s + ci * hw;
        let o1 = s1 + ci * hw;
        let u0 = select(0.0, src[o], inside);
        let u1 = select(0.0, src[o1], ok1);
        // (Past the last channel the address stays on this one: both sides of a select are read.)
        let step = select(0u, hw, has2);
        let v0 = select(0.0, src[o + step], inside && has2);
        let v1 = select(0.0, src[o1 + step], ok1 && has2);
        // Channel ci: taps (dy, dx) are q = dy * 2 + dx; channel ci + 1: q + 4.
        taps(u0, u1, wt(0u, r0, r1), wt(1u, r0, r1), wt(2u, r0, r1), wt(3u, r0, r1));
        taps(v0, v1, wt(4u, r0, r1), wt(5u, r0, r1), wt(6u, r0, r1), wt(7u, r0, r1));
    }
    if (!inside) {
        return;
    }
    let co = g * 4u;
    let oy = 2u * y;
    let ox = 2u * x0;
    store(n, co, oy, ox, a00);
    store(n, co, oy, ox + 1u, a01);
    store(n, co, oy, ox + 2u, a02);
    store(n, co, oy, ox + 3u, a03);
    store(n, co, oy + 1u, ox, a10);
    store(n, co, oy + 1u, ox + 1u, a11);
    store(n, co, oy + 1u, ox + 2u, a12);
    store(n, co, oy + 1u, ox + 3u, a13);
}
