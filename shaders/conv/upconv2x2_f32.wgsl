// ConvTranspose2d(kernel 2, stride 2) with bias, NCHW float32. Output pixel (oy, ox) takes input
// pixel (oy / 2, ox / 2) through kernel tap (oy % 2, ox % 2), so each output is a dot product over
// the input channels. One invocation per output pixel and group of 4 output channels.
// Weights: vec4 over output channels, index ((ci * 4 + ky * 2 + kx) * cog + g).

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    cog: u32,
    h: u32,   // input height
    w: u32,   // input width
    total: u32, // n * cog * (2h) * (2w)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let ow = 2u * p.w;
    let oh = 2u * p.h;
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let g = (i / (ow * oh)) % p.cog;
    let n = i / (ow * oh * p.cog);
    let hw = p.h * p.w;
    let s = n * p.cin * hw + (oy / 2u) * p.w + ox / 2u;
    let tap = (oy % 2u) * 2u + ox % 2u;
    var acc = bias[g];
    for (var ci = 0u; ci < p.cin; ci++) {
        acc += src[s + ci * hw] * weights[(ci * 4u + tap) * p.cog + g];
    }
    let ohw = oh * ow;
    let o = (n * p.cout + g * 4u) * ohw + oy * ow + ox;
    let left = p.cout - g * 4u;
    dst[o] = acc.x;
    if (left > 1u) { dst[o + ohw] = acc.y; }
    if (left > 2u) { dst[o + 2u * ohw] = acc.z; }
    if (left > 3u) { dst[o + 3u * ohw] = acc.w; }
}
