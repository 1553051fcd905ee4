// Grouped 2-D convolution with one input channel per group (depthwise, any channel
// multiplier), float32, dense NCHW: each invocation computes 4 output pixels along x of one
// output channel, whose kernel (kh · kw weights) is uniform across the workgroup. Any kernel,
// stride, padding [top, left] and dilation; epilogue `act(conv + bias + add)`. Same parameters
// and bindings as `conv2d_f32`. Dispatch: (⌈⌈ow / 4⌉ / WX⌉, ⌈oh / WY⌉, n · cout).

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, dh: u32, dw: u32, groups: u32,
    cin_g: u32, cout_g: u32, cblocks: u32, has_add: u32,
    act: u32, act_a: u32, act_b: u32, slope_off: u32,
    slope_per_ch: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> addend: array<f32>;
@group(0) @binding(4) var<storage, read> wts: array<f32>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(5) var<storage, read> aux: array<f32>;

override WX: u32 = 8u;
override WY: u32 = 8u;

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox0 = gid.x * 4u;
    let oy = gid.y;
    let co = gid.z % p.cout;
    let n = gid.z / p.cout;
    if (ox0 >= p.ow || oy >= p.oh) {
        return;
    }
    let ci = co / p.cout_g;
    let plane = (n * p.cin + ci) * p.h * p.w;
    let wk = co * p.kh * p.kw;
    let iy0 = i32(oy * p.sh) - i32(p.pt);
    let hi = i32(p.h);
    let wi = i32(p.w);
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = iy0 + i32(ky * p.dh);
        let row_ok = iy >= 0 && iy < hi;
        let row = plane + u32(clamp(iy, 0, hi - 1)) * p.w;
        for (var kx = 0u; kx < p.kw; kx++) {
            let wv = wts[wk + ky * p.kw + kx];
            for (var j = 0u; j < 4u; j++) {
                let ix = i32((ox0 + j) * p.sw + kx * p.dw) - i32(p.pl);
                let ok = row_ok && ix >= 0 && ix < wi;
                acc[j] += select(0.0, src[row + u32(clamp(ix, 0, wi - 1))], ok) * wv;
            }
        }
    }
    // epilogue: bias, residual, activation
    let bias = aux[co];
    let slope = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
    let base = ((n * p.cout + co) * p.oh + oy) * p.ow;
    for (var j = 0u; j < 4u; j++) {
        let ox = ox0 + j;
        if (ox < p.ow) {
            var v = acc[j] + bias;
            if (p.has_add == 1u) {
                v += addend[base + ox];
            }
            dst[base + ox] = apply_act(v, p.act, bitcast<f32>(p.act_a), bitcast<f32>(p.act_b), slope);
        }
    }
}
