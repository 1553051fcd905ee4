// Write the zero point into the 1-pixel border of every plane of a packed uint8 tensor (the
// kernels write interiors only, and arena memory is reused). One invocation per border word.

struct Params {
    total: u32, // planes · (2 · (w + 2) + 2 · h)
    h: u32,
    w: u32,
    word: u32,  // the zero point in all 4 bytes
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let pw = p.w + 2u;
    let per = 2u * pw + 2u * p.h;
    let plane = i / per;
    let j = i % per;
    var row = 0u;
    var col = j;
    if (j >= 2u * pw) {
        let k = j - 2u * pw;
        row = 1u + k / 2u;
        col = (k % 2u) * (p.w + 1u);
    } else if (j >= pw) {
        row = p.h + 1u;
        col = j - pw;
    }
    dst[plane * (p.h + 2u) * pw + row * pw + col] = p.word;
}
