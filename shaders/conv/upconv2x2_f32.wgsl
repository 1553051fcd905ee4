// ConvTranspose2d(kernel 2, stride 2) with bias, NCHW float32 (planes `plane_stride` apart), as a
// GEMM per kernel tap: output pixel (2y + dy, 2x + dx) = bias + Σ_ci in[ci, y, x] · W[ci, co, dy, dx].
//
// Each invocation computes one output row (fixing dy) × 4 consecutive output pixels (input pixels
// x0, x0 + 1, both taps dx) × 8 output channels, in 8 named vec4 accumulators: per input channel
// 2 input loads and 4 weight vec4 loads feed 32 multiply-adds. The output-channel block comes from
// the workgroup id, so weight addresses are uniform across the workgroup.
// Weights: vec4 over output channels, index (ci * 4 + dy * 2 + dx) * wrow + g * 2 + j,
// wrow = 2 * cog vec4 per row, zero-padded to blocks of 8.

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    cog: u32, // output-channel blocks of 8
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

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

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

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let x0 = gid.x * 2u;
    let oy = gid.y;
    let n = wid.z / p.cog;
    let g = wid.z % p.cog;
    if (x0 >= p.w || oy >= 2u * p.h) {
        return;
    }
    let y = oy / 2u;
    let dy = oy % 2u;
    let hw = plane_stride(p.h * p.w);
    let wrow = 2u * p.cog;
    let x1ok = x0 + 1u < p.w;
    let x1 = select(x0, x0 + 1u, x1ok);
    let s = n * p.cin * hw + y * p.w;

    let b0 = bias[2u * g];
    let b1 = bias[2u * g + 1u];
    // a<pixel><dx><block>: input pixel x0 / x0 + 1, tap dx, channels g*8 + 0..3 / 4..7.
    var a000 = b0;
    var a001 = b1;
    var a010 = b0;
    var a011 = b1;
    var a100 = b0;
    var a101 = b1;
    var a110 = b0;
    var a111 = b1;
    for (var ci = 0u; ci < p.cin; ci++) {
        let v0 = src[s + ci * hw + x0];
        let v1 = src[s + ci * hw + x1];
        let wb = (ci * 4u + dy * 2u) * wrow + 2u * g;
        let w00 = weights[wb];
        let w01 = weights[wb + 1u];
        let w10 = weights[wb + wrow];
        let w11 = weights[wb + wrow + 1u];
        a000 += v0 * w00;
        a001 += v0 * w01;
        a010 += v0 * w10;
        a011 += v0 * w11;
        a100 += v1 * w00;
        a101 += v1 * w01;
        a110 += v1 * w10;
        a111 += v1 * w11;
    }
    let co = g * 8u;
    let ox = 2u * x0;
    store(n, co, oy, ox, a000);
    store(n, co + 4u, oy, ox, a001);
    store(n, co, oy, ox + 1u, a010);
    store(n, co + 4u, oy, ox + 1u, a011);
    if (x1ok) {
        store(n, co, oy, ox + 2u, a100);
        store(n, co + 4u, oy, ox + 2u, a101);
        store(n, co, oy, ox + 3u, a110);
        store(n, co + 4u, oy, ox + 3u, a111);
    }
}
