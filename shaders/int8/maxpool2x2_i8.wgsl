// 2×2 max-pool, stride 2, on packed uint8 activations (4 channels per word, padded planes); the
// quantization is unchanged. Odd sizes drop their last row/column. One invocation per output word.

struct Params {
    total: u32, // output words without borders: planes · oh · ow
    h: u32,     // input size
    w: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

override WG: u32 = 256u;

fn bytes(a: u32) -> vec4<u32> {
    return (vec4<u32>(a) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
}

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
    let ipw = p.w + 2u;
    let s = plane * (p.h + 2u) * ipw + (2u * y + 1u) * ipw + 2u * x + 1u;
    let m = max(max(bytes(src[s]), bytes(src[s + 1u])), max(bytes(src[s + ipw]), bytes(src[s + ipw + 1u])));
    let opw = ow + 2u;
    dst[plane * (oh + 2u) * opw + (y + 1u) * opw + x + 1u] = m.x | (m.y << 8u) | (m.z << 16u) | (m.w << 24u);
}
