// Element-wise `act(x · scale[c] + shift[c])` (Affine: a BatchNorm that did not fold) or
// `act(x)` (Act), float32, dense NCHW. `aux`: scale (c values), shift (c values), then the
// PRelu slopes. Dispatch: linear over n · c · h · w in workgroups of WG.

struct Params {
    total: u32, hw: u32, c: u32, affine: u32,
    act: u32, act_a: u32, act_b: u32, slope_off: u32,
    slope_per_ch: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;

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
    let c = (i / p.hw) % p.c;
    var v = src[i];
    if (p.affine == 1u) {
        v = v * aux[c] + aux[p.c + c];
    }
    let slope = aux[p.slope_off + select(0u, c, p.slope_per_ch == 1u)];
    dst[i] = apply_act(v, p.act, bitcast<f32>(p.act_a), bitcast<f32>(p.act_b), slope);
}
