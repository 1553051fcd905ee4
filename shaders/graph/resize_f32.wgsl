// Resize of the layer graph, float32, dense NCHW, ONNX's formulas in f32 exactly as the CPU
// engine (`cpu::graph::layers::resize`): coord 0 half_pixel, 1 pytorch_half_pixel,
// 2 align_corners, 3 asymmetric; mode 0 linear, 1 nearest floor, 2 ceil, 3 round half down
// (prefer floor), 4 round half up (prefer ceil). `scale_*`: the factors the transform divides
// by. Each invocation computes 4 output pixels along x of one row; row and plane come from the
// invocation id (no index divisions: on lavapipe an integer division is a scalar loop over
// lanes); nearest modes read one value per pixel, linear four.
// Dispatch: (⌈⌈ow / 4⌉ / WX⌉, ⌈oh / WY⌉, planes).

struct Params {
    total: u32, h: u32, w: u32, oh: u32,
    ow: u32, mode: u32, coord: u32, scale_h: u32,
    scale_w: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WX: u32 = 8u;
override WY: u32 = 8u;

// Output index → input coordinate.
fn source_coord(o: u32, scale: f32, n_in: u32, n_out: u32) -> f32 {
    let fo = f32(o);
    switch p.coord {
        case 0u: { return (fo + 0.5) / scale - 0.5; }
        case 1u: { return select(0.0, (fo + 0.5) / scale - 0.5, n_out > 1u); }
        case 2u: { return select(0.0, (f32(n_in - 1u) / f32(n_out - 1u)) * fo, n_out > 1u); }
        default: { return fo / scale; }
    }
}

// (i0, i1, weight of i1) along an axis.
struct Taps {
    i0: u32,
    i1: u32,
    f: f32,
}

fn taps(o: u32, scale: f32, n_in: u32, n_out: u32) -> Taps {
    var s = source_coord(o, scale, n_in, n_out);
    let top = n_in - 1u;
    if (p.mode == 0u) {
        s = clamp(s, 0.0, f32(top));
        let i0 = min(u32(floor(s)), top);
        return Taps(i0, min(i0 + 1u, top), s - f32(i0));
    }
    var r: f32;
    switch p.mode {
        case 1u: { r = floor(s); }
        case 2u: { r = ceil(s); }
        case 3u: { r = select(round(s), floor(s), s - trunc(s) == 0.5); }
        default: { r = floor(s + 0.5); }
    }
    let i = min(u32(max(r, 0.0)), top);
    return Taps(i, i, 0.0);
}

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox0 = gid.x * 4u;
    let oy = gid.y;
    if (ox0 >= p.ow || oy >= p.oh) {
        return;
    }
    let plane = gid.z * p.h * p.w;
    let o = (gid.z * p.oh + oy) * p.ow;
    let ty = taps(oy, bitcast<f32>(p.scale_h), p.h, p.oh);
    let r0 = plane + ty.i0 * p.w;
    let r1 = plane + ty.i1 * p.w;
    let m = min(p.ow - ox0, 4u);
    for (var j = 0u; j < m; j++) {
        let ox = ox0 + j;
        let tx = taps(ox, bitcast<f32>(p.scale_w), p.w, p.ow);
        if (p.mode != 0u) {
            dst[o + ox] = src[r0 + tx.i0];
        } else {
            let top = src[r0 + tx.i0] + (src[r0 + tx.i1] - src[r0 + tx.i0]) * tx.f;
            let bot = src[r1 + tx.i0] + (src[r1 + tx.i1] - src[r1 + tx.i0]) * tx.f;
            dst[o + ox] = top + (bot - top) * ty.f;
        }
    }
}
