// General 2-D convolution of the layer graph (`gpu::graph`), float32, dense NCHW:
// any kernel, stride, padding [top, left], dilation and groups; epilogue
// `act(conv + bias + add)`. Each invocation computes a register block of 4 output pixels along
// x × 4 output channels of one group; the channel block comes from the workgroup id, so weight
// addresses are uniform across a workgroup. Out-of-range taps read a clamped address and select
// zero; channels past the group's end compute on a clamped weight row and are not stored.
// Dispatch: (⌈⌈ow / 4⌉ / WX⌉, ⌈oh / WY⌉, n · groups · cblocks).

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
    let cb = gid.z % p.cblocks;
    let t = gid.z / p.cblocks;
    let g = t % p.groups;
    let n = t / p.groups;
    if (ox0 >= p.ow || oy >= p.oh) {
        return;
    }
    let kk = p.kh * p.kw;
    let c0 = cb * 4u;
    // weight rows of the 4 channels (clamped to the group's last one)
    let last = p.cout_g - 1u;
    let r0 = (g * p.cout_g + min(c0, last)) * p.cin_g * kk;
    let r1 = (g * p.cout_g + min(c0 + 1u, last)) * p.cin_g * kk;
    let r2 = (g * p.cout_g + min(c0 + 2u, last)) * p.cin_g * kk;
    let r3 = (g * p.cout_g + min(c0 + 3u, last)) * p.cin_g * kk;
    let iy0 = i32(oy * p.sh) - i32(p.pt);
    var ix0: array<i32, 4>;
    for (var j = 0u; j < 4u; j++) {
        ix0[j] = i32((ox0 + j) * p.sw) - i32(p.pl);
    }
    let hi = i32(p.h);
    let wi = i32(p.w);
    var acc: array<vec4<f32>, 4>;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let plane = (n * p.cin + g * p.cin_g + ci) * p.h * p.w;
        let wc = ci * kk;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = iy0 + i32(ky * p.dh);
            let row_ok = iy >= 0 && iy < hi;
            let row = plane + u32(clamp(iy, 0, hi - 1)) * p.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                let k = wc + ky * p.kw + kx;
                let wv = vec4<f32>(wts[r0 + k], wts[r1 + k], wts[r2 + k], wts[r3 + k]);
                let off = i32(kx * p.dw);
                for (var j = 0u; j < 4u; j++) {
                    let ix = ix0[j] + off;
                    let ok = row_ok && ix >= 0 && ix < wi;
                    let xv = select(0.0, src[row + u32(clamp(ix, 0, wi - 1))], ok);
                    acc[j] += xv * wv;
                }
            }
        }
    }
    // epilogue: bias, residual, activation
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    for (var k = 0u; k < 4u; k++) {
        let c = c0 + k;
        if (c >= p.cout_g) {
            break;
        }
        let co = g * p.cout_g + c;
        let bias = aux[co];
        let slope = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
        let base = ((n * p.cout + co) * p.oh + oy) * p.ow;
        for (var j = 0u; j < 4u; j++) {
            let ox = ox0 + j;
            if (ox < p.ow) {
                var v = acc[j][k] + bias;
                if (p.has_add == 1u) {
                    v += addend[base + ox];
                }
                dst[base + ox] = apply_act(v, p.act, a, b, slope);
            }
        }
    }
}
