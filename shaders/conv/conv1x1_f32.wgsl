// 1×1 convolution with bias (the head: logits), NCHW float32 (planes `plane_stride` apart). One
// invocation per pixel and group of 4 output channels. Weights: vec4 over output channels, index
// (ci * cog + g).

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    cog: u32,
    hw: u32,
    total: u32, // n * cog * hw
    _pad0: u32,
    _pad1: u32,
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
    let px = i % p.hw;
    let g = (i / p.hw) % p.cog;
    let n = i / (p.hw * p.cog);
    let ps = plane_stride(p.hw);
    let s = n * p.cin * ps + px;
    var acc = bias[g];
    for (var ci = 0u; ci < p.cin; ci++) {
        acc += src[s + ci * ps] * weights[ci * p.cog + g];
    }
    let o = (n * p.cout + g * 4u) * ps + px;
    let left = p.cout - g * 4u;
    dst[o] = acc.x;
    if (left > 1u) { dst[o + ps] = acc.y; }
    if (left > 2u) { dst[o + 2u * ps] = acc.z; }
    if (left > 3u) { dst[o + 3u * ps] = acc.w; }
}
