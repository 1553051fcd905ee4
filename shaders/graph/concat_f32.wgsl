// One input of a channel concatenation: copies x [n, cx, h, w] into channels
// [coff, coff + cx) of the output [n, cout, h, w] (one dispatch per input), float32, dense NCHW.
// Dispatch: linear over x in workgroups of WG.

struct Params {
    total: u32, cx: u32, hw: u32, cout: u32,
    coff: u32, _p0: u32, _p1: u32, _p2: u32,
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
    let q = i % p.hw;
    let c = (i / p.hw) % p.cx;
    let n = i / (p.hw * p.cx);
    dst[(n * p.cout + p.coff + c) * p.hw + q] = src[i];
}
