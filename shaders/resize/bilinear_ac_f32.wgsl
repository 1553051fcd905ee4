// Bilinear resize with align_corners=True, NCHW float32 (planes `plane_stride` apart), computed as
// PyTorch's CPU kernel does:
// src = dst * (in - 1) / (out - 1); i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0.
// One invocation per output element.

struct Params {
    total: u32,
    ih: u32,
    iw: u32,
    oh: u32,
    ow: u32,
    scale_h: f32,
    scale_w: f32,
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
    let x = i % p.ow;
    let y = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);

    let sy = p.scale_h * f32(y);
    let y0 = min(u32(sy), p.ih - 1u);
    let y1 = min(y0 + 1u, p.ih - 1u);
    let ly1 = sy - f32(y0);
    let ly0 = 1.0 - ly1;
    let sx = p.scale_w * f32(x);
    let x0 = min(u32(sx), p.iw - 1u);
    let x1 = min(x0 + 1u, p.iw - 1u);
    let lx1 = sx - f32(x0);
    let lx0 = 1.0 - lx1;

    let b = plane * plane_stride(p.ih * p.iw);
    let r0 = b + y0 * p.iw;
    let r1 = b + y1 * p.iw;
    dst[plane * plane_stride(p.oh * p.ow) + y * p.ow + x] = ly0 * (lx0 * src[r0 + x0] + lx1 * src[r0 + x1]) + ly1 * (lx0 * src[r1 + x0] + lx1 * src[r1 + x1]);
}
