// Max or average pooling of any window, stride, padding [t, l, b, r] and dilation, float32,
// dense NCHW. kind: 0 max, 1 average over the taps inside the input, 2 average dividing by the
// window clipped to the padded extent (`count_include_pad`, PyTorch's divisor). One output
// pixel per invocation, its row and plane from the invocation id (no index divisions: on
// lavapipe an integer division is a scalar loop over lanes).
// Dispatch: (⌈ow / WX⌉, ⌈oh / WY⌉, planes).

struct Params {
    total: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, pt: u32, pl: u32, pb: u32,
    pr: u32, dh: u32, dw: u32, kind: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;

override WX: u32 = 8u;
override WY: u32 = 8u;

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    if (ox >= p.ow || oy >= p.oh) {
        return;
    }
    let i = (gid.z * p.oh + oy) * p.ow + ox;
    let plane = gid.z * p.h * p.w;
    let y0 = i32(oy * p.sh) - i32(p.pt);
    let x0 = i32(ox * p.sw) - i32(p.pl);
    var acc = select(0.0, -3.402823e38, p.kind == 0u);
    var count = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = y0 + i32(ky * p.dh);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = x0 + i32(kx * p.dw);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let v = src[plane + u32(iy) * p.w + u32(ix)];
            if (p.kind == 0u) {
                acc = max(acc, v);
            } else {
                acc += v;
            }
            count++;
        }
    }
    if (p.kind == 1u) {
        acc = acc / f32(max(count, 1u));
    } else if (p.kind == 2u) {
        let ye = min(y0 + i32(p.kh), i32(p.h + p.pb));
        let xe = min(x0 + i32(p.kw), i32(p.w + p.pr));
        acc = acc / f32(max((ye - y0) * (xe - x0), 1));
    }
    dst[i] = acc;
}
