// Standalone inference BatchNorm + ReLU, NCHW float32 (planes `plane_stride` apart):
// y = max(x * scale[c] + shift[c], 0). Used when BatchNorm is not folded into the preceding conv.
// One invocation per element.

struct Params {
    total: u32,
    c: u32,
    hw: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let plane = i / p.hw;
    let c = plane % p.c;
    let o = plane * plane_stride(p.hw) + i % p.hw;
    dst[o] = max(src[o] * scale[c] + shift[c], 0.0);
}
