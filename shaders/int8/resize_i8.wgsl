// Bilinear resize (align corners) on packed uint8 activations, exactly: per axis, output d of o
// reads inputs i0 = ⌊d(i−1)/(o−1)⌋ and i0 + 1 with integer weights (D − f, f), D = o − 1; the
// 4-term sum over Dy·Dx is rounded half to even (the CPU engine's rule). The host checks that
// 255 · Dy · Dx fits in a u32. One invocation per output word.

struct Params {
    total: u32, // output words without borders
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

override WG: u32 = 256u;

fn bytes(a: u32) -> vec4<u32> {
    return (vec4<u32>(a) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
}

// (i0, i1, f, D) of output d along an axis of i inputs and o outputs.
fn taps(d: u32, i: u32, o: u32) -> vec4<u32> {
    let den = max(o, 2u) - 1u;
    let num = select(0u, d * (i - 1u), o > 1u);
    let i0 = num / den;
    return vec4<u32>(i0, min(i0 + 1u, i - 1u), num - i0 * den, den);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let x = i % p.ow;
    let y = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let ty = taps(y, p.h, p.oh);
    let tx = taps(x, p.w, p.ow);
    let ipw = p.w + 2u;
    let base = plane * (p.h + 2u) * ipw;
    let r0 = base + (ty.x + 1u) * ipw + 1u;
    let r1 = base + (ty.y + 1u) * ipw + 1u;
    let top = (tx.w - tx.z) * bytes(src[r0 + tx.x]) + tx.z * bytes(src[r0 + tx.y]);
    let bot = (tx.w - tx.z) * bytes(src[r1 + tx.x]) + tx.z * bytes(src[r1 + tx.y]);
    let num = (ty.w - ty.z) * top + ty.z * bot;
    let den = ty.w * tx.w;
    let q = num / vec4<u32>(den);
    let r = num - q * den;
    let up = (2u * r > vec4<u32>(den)) | ((2u * r == vec4<u32>(den)) & ((q & vec4<u32>(1u)) == vec4<u32>(1u)));
    let v = q + select(vec4<u32>(0u), vec4<u32>(1u), up);
    let opw = p.ow + 2u;
    dst[plane * (p.oh + 2u) * opw + (y + 1u) * opw + x + 1u] = v.x | (v.y << 8u) | (v.z << 16u) | (v.w << 24u);
}
