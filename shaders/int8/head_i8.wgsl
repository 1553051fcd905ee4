// The 1×1 head on packed uint8 activations, float32 logits out (NCHW):
// y_o = base_o + Σ_c ws_oc · q_c, with ws = s · w and base = b − s · z · Σ_c w_oc folded by the
// host. One invocation per pixel, every output channel.

struct Params {
    total: u32, // n · h · w
    gin: u32,
    h: u32,
    w: u32,
    cout: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<u32>;
@group(0) @binding(2) var<storage, read> ws: array<vec4<f32>>; // [cout][gin]
@group(0) @binding(3) var<storage, read> base: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let n = i / (p.w * p.h);
    let pw = p.w + 2u;
    let plane = (p.h + 2u) * pw;
    let s = n * p.gin * plane + (y + 1u) * pw + x + 1u;
    for (var o = 0u; o < p.cout; o++) {
        var acc = base[o];
        for (var g = 0u; g < p.gin; g++) {
            let q = vec4<f32>((vec4<u32>(src[s + g * plane]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu));
            acc += dot(ws[o * p.gin + g], q);
        }
        dst[((n * p.cout + o) * p.h + y) * p.w + x] = acc;
    }
}
