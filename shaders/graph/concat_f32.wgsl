// One input of a channel concatenation: copies x [n, cx, h, w] into channels
// [coff, coff + cx) of the output [n, cout, h, w] (one dispatch per input), float32, dense NCHW.
// Each invocation copies 4 consecutive values of one plane; the plane comes from the workgroup
// id, so no index needs a division (on lavapipe an integer division is a scalar loop over lanes).
// Dispatch: (⌈hw / (4 WG)⌉, cx, n).

struct Params {
    total: u32, cx: u32, hw: u32, cout: u32,
    coff: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x * 4u;
    if (q >= p.hw) {
        return;
    }
    let c = gid.y;
    let n = gid.z;
    let s = (n * p.cx + c) * p.hw + q;
    let d = (n * p.cout + p.coff + c) * p.hw + q;
    let m = min(p.hw - q, 4u);
    for (var k = 0u; k < m; k++) {
        dst[d + k] = src[s + k];
    }
}
