// Spatial padding, float32, dense NCHW: mode 0 constant (`value`), 1 edge, 2 reflect; negative
// pads crop. `pt`, `pl` are signed (two's complement). Dispatch: linear over the output in
// workgroups of WG.

struct Params {
    total: u32, c: u32, h: u32, w: u32,
    oh: u32, ow: u32, pt: u32, pl: u32,
    mode: u32, value: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WG: u32 = 256u;

// The source index of padded index `i` along an axis of `len`; -1: outside (constant mode).
fn source_index(i: i32, len: i32) -> i32 {
    switch p.mode {
        case 0u: { return select(-1, i, i >= 0 && i < len); }
        case 1u: { return clamp(i, 0, len - 1); }
        default: {
            var r = i;
            if (i < 0) {
                r = -i;
            } else if (i >= len) {
                r = 2 * (len - 1) - i;
            }
            return clamp(r, 0, len - 1);
        }
    }
}

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
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let iy = source_index(i32(oy) - bitcast<i32>(p.pt), i32(p.h));
    let ix = source_index(i32(ox) - bitcast<i32>(p.pl), i32(p.w));
    var v = bitcast<f32>(p.value);
    if (iy >= 0 && ix >= 0) {
        v = src[(plane * p.h + u32(iy)) * p.w + u32(ix)];
    }
    dst[i] = v;
}
