// General 2-D transposed convolution of the layer graph, float32, dense NCHW, in gather form:
// each invocation computes one output pixel × 4 output channels of one group, summing the input
// pixels and taps that land on it (oy = iy · sh + ky · dh − pt). Weights [cin, cout / groups,
// kh, kw]; epilogue `act(sum + bias)`. Dispatch: (⌈ow / WX⌉, ⌈oh / WY⌉, n · groups · cblocks).

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, dh: u32, dw: u32, groups: u32,
    cin_g: u32, cout_g: u32, cblocks: u32, _p3: u32,
    act: u32, act_a: u32, act_b: u32, slope_off: u32,
    slope_per_ch: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read> wts: array<f32>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(4) var<storage, read> aux: array<f32>;

override WX: u32 = 8u;
override WY: u32 = 8u;

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ox = gid.x;
    let oy = gid.y;
    let cb = gid.z % p.cblocks;
    let t = gid.z / p.cblocks;
    let g = t % p.groups;
    let n = t / p.groups;
    if (ox >= p.ow || oy >= p.oh) {
        return;
    }
    let kk = p.kh * p.kw;
    let c0 = cb * 4u;
    let last = p.cout_g - 1u;
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(oy + p.pt) - i32(ky * p.dh);
        if (ty < 0 || ty % i32(p.sh) != 0) {
            continue;
        }
        let iy = u32(ty) / p.sh;
        if (iy >= p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let tx = i32(ox + p.pl) - i32(kx * p.dw);
            if (tx < 0 || tx % i32(p.sw) != 0) {
                continue;
            }
            let ix = u32(tx) / p.sw;
            if (ix >= p.w) {
                continue;
            }
            let tap = ky * p.kw + kx;
            for (var ci = 0u; ci < p.cin_g; ci++) {
                let cg = g * p.cin_g + ci;
                let xv = src[((n * p.cin + cg) * p.h + iy) * p.w + ix];
                let wr = cg * p.cout_g;
                let wv = vec4<f32>(
                    wts[(wr + min(c0, last)) * kk + tap],
                    wts[(wr + min(c0 + 1u, last)) * kk + tap],
                    wts[(wr + min(c0 + 2u, last)) * kk + tap],
                    wts[(wr + min(c0 + 3u, last)) * kk + tap],
                );
                acc += xv * wv;
            }
        }
    }
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    for (var k = 0u; k < 4u; k++) {
        let c = c0 + k;
        if (c >= p.cout_g) {
            break;
        }
        let co = g * p.cout_g + c;
        let slope = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
        let v = acc[k] + aux[co];
        dst[((n * p.cout + co) * p.oh + oy) * p.ow + ox] = apply_act(v, p.act, a, b, slope);
    }
}
