// 2×2 max-pool, stride 2, NCHW float32 (planes `plane_stride` apart); odd input sizes drop their
// last row/column (floor). One invocation per output element.

struct Params {
    total: u32,
    h: u32,
    w: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let ow = p.w / 2u;
    let oh = p.h / 2u;
    let x = i % ow;
    let y = (i / ow) % oh;
    let plane = i / (ow * oh);
    let s = plane * plane_stride(p.h * p.w) + 2u * y * p.w + 2u * x;
    dst[plane * plane_stride(ow * oh) + y * ow + x] = max(max(src[s], src[s + 1u]), max(src[s + p.w], src[s + p.w + 1u]));
}
