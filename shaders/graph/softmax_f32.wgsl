// Softmax over channels, float32, dense NCHW: one invocation per (n, pixel) takes the max over
// channels, then `exp(x − max)` and their sum, then divides. Dispatch: linear over n · h · w in
// workgroups of WG.

struct Params {
    total: u32, c: u32, hw: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid, WG);
    if (i >= p.total) {
        return;
    }
    let base = (i / p.hw) * p.c * p.hw + i % p.hw;
    var m = -3.402823e38;
    for (var c = 0u; c < p.c; c++) {
        m = max(m, src[base + c * p.hw]);
    }
    var sum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let e = exp(src[base + c * p.hw] - m);
        dst[base + c * p.hw] = e;
        sum += e;
    }
    for (var c = 0u; c < p.c; c++) {
        dst[base + c * p.hw] /= sum;
    }
}
