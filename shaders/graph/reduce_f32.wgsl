// Mean or max over segments of a float32 tensor: segment s holds `len` values at
// `(s / inner) · outer_stride + (s % inner) + k · stride`, k < len. Over channels: one segment
// per (n, pixel), inner = h · w, stride = h · w; over H and W (and channels): one contiguous
// segment per (n, c) plane (or per image). Short segments (`per_invocation` = 1) are summed by
// one invocation each; long ones by one workgroup each (WG ≤ 256), with a tree reduction in
// workgroup memory. kind: 0 mean, 1 max. Dispatch: linear over segments (per invocation) or
// one workgroup per segment, in a 2-D grid.

struct Params {
    segments: u32, len: u32, stride: u32, inner: u32,
    outer_stride: u32, kind: u32, per_invocation: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WG: u32 = 256u;

var<workgroup> part: array<f32, 256>;

fn combine(a: f32, b: f32) -> f32 {
    return select(a + b, max(a, b), p.kind == 1u);
}

fn finish(acc: f32) -> f32 {
    return select(acc / f32(p.len), acc, p.kind == 1u);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let init = select(0.0, -3.402823e38, p.kind == 1u);
    if (p.per_invocation == 1u) {
        let s = linear_index(wid, nwg, lid, WG);
        if (s < p.segments) {
            let base = (s / p.inner) * p.outer_stride + s % p.inner;
            var acc = init;
            for (var k = 0u; k < p.len; k++) {
                acc = combine(acc, src[base + k * p.stride]);
            }
            dst[s] = finish(acc);
        }
    } else {
        let s = wid.y * nwg.x + wid.x;
        let base = (s / p.inner) * p.outer_stride + s % p.inner;
        var acc = init;
        if (s < p.segments) {
            for (var k = lid; k < p.len; k += WG) {
                acc = combine(acc, src[base + k * p.stride]);
            }
        }
        part[lid] = acc;
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half /= 2u) {
            if (lid < half) {
                part[lid] = combine(part[lid], part[lid + half]);
            }
            workgroupBarrier();
        }
        if (lid == 0u && s < p.segments) {
            dst[s] = finish(part[0]);
        }
    }
}
