// General 2-D convolution of the layer graph (`gpu::graph`), one group, float32 dense NCHW: any
// kernel, stride, padding [top, left] and dilation; epilogue `act(conv + bias + add)`. For
// adapters with subgroups of one fixed size (`gpu::fixed_subgroup_size`): where the 3×3 subgroup
// kernel does not apply (strides, other kernels, rows not a multiple of 4).
// Register block: 4 output pixels along x × 8 output channels per invocation. A workgroup is one
// subgroup: XB lanes along x × SG / XB rows. The lanes need the same weights (the channel block
// comes from the workgroup id): per input channel and chunk of 4 taps, lanes 0–7 load the 8
// weight vec4s (4 taps × 8 channels) once, one vec4 each, and `subgroupShuffle` at constant lanes
// hands them to every lane (see docs/PERF.md, "conv3x3 v3": on lavapipe every load costs per lane,
// a constant-lane shuffle one register permute). Inputs: 4 scalar loads per tap, out-of-range
// taps read a clamped address and select zero.
// Weights: [cout / 8][cin][taps padded to a multiple of 4][8], zero past cout and the taps.
// Dispatch: (⌈ow / (4 XB)⌉, ⌈oh / (SG / XB)⌉, n · cout / 8), or with flag bit 0
// (⌈ow / (4 XB)⌉ · cout / 8, ⌈oh / (SG / XB)⌉, n): the blocks of one patch one after another,
// reading its input from cache.

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pt: u32,
    pl: u32, dh: u32, dw: u32, cog: u32,
    has_add: u32, act: u32, act_a: u32, act_b: u32,
    slope_off: u32, slope_per_ch: u32,
    flags: u32, // bit 0: output-channel blocks vary fastest, along x
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> addend: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<vec4<f32>>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(5) var<storage, read> aux: array<f32>;

// The adapter's subgroup size (its minimum and maximum agree).
override SG: u32 = 8u;
// Invocations along x per subgroup row (a power of two, at most SG).
override XB: u32 = 8u;


// The 4 input values of tap (ky, kx) at plane offset `plane`: zero outside the image.
fn inputs(plane: u32, iy0: i32, ix0: i32, ky: u32, kx: u32) -> vec4<f32> {
    let iy = iy0 + i32(ky * p.dh);
    let row_ok = iy >= 0 && iy < i32(p.h);
    let row = plane + u32(clamp(iy, 0, i32(p.h) - 1)) * p.w;
    let ix = ix0 + i32(kx * p.dw);
    let s = i32(p.sw);
    let wi = i32(p.w);
    let x0 = ix;
    let x1 = ix + s;
    let x2 = ix + 2 * s;
    let x3 = ix + 3 * s;
    return vec4(
        select(0.0, src[row + u32(clamp(x0, 0, wi - 1))], row_ok && x0 >= 0 && x0 < wi),
        select(0.0, src[row + u32(clamp(x1, 0, wi - 1))], row_ok && x1 >= 0 && x1 < wi),
        select(0.0, src[row + u32(clamp(x2, 0, wi - 1))], row_ok && x2 >= 0 && x2 < wi),
        select(0.0, src[row + u32(clamp(x3, 0, wi - 1))], row_ok && x3 >= 0 && x3 < wi),
    );
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let fast = (p.flags & 1u) != 0u;
    let g = select(wid.z, wid.x, fast) % p.cog;
    let n = select(wid.z / p.cog, wid.z, fast);
    let wx = select(wid.x, wid.x / p.cog, fast);
    let xb = lane % XB;
    let ox0 = (wx * XB + xb) * 4u;
    let oy = wid.y * (SG / XB) + lane / XB;
    let iy0 = i32(oy * p.sh) - i32(p.pt);
    let ix0 = i32(ox0 * p.sw) - i32(p.pl);
    let kk = p.kh * p.kw;
    let chunks = (kk + 3u) / 4u;
    a0 = vec4(0.0);
    a1 = vec4(0.0);
    a2 = vec4(0.0);
    a3 = vec4(0.0);
    b0 = vec4(0.0);
    b1 = vec4(0.0);
    b2 = vec4(0.0);
    b3 = vec4(0.0);
    // Every lane runs every step (lanes outside the output compute on clamped addresses), so
    // that the shuffles see the whole subgroup.
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = (n * p.cin + ci) * p.h * p.w;
        var wb = (g * p.cin + ci) * chunks * 8u;
        // (ky, kx) of the chunk's first tap, advanced without divisions.
        var ky = 0u;
        var kx = 0u;
        for (var c = 0u; c < chunks; c++) {
            var r0 = vec4(0.0);
            var r1 = vec4(0.0);
            if (lane < 8u) {
                r0 = weights[wb + lane];
            }
            if (SG < 8u && lane + SG < 8u) {
                r1 = weights[wb + SG + lane];
            }
            wb += 8u;
            let t = c * 4u;
            sg_fma(inputs(plane, iy0, ix0, ky, kx), sg_wt(0u, r0, r1), sg_wt(1u, r0, r1));
            kx += 1u;
            if (kx == p.kw) {
                kx = 0u;
                ky += 1u;
            }
            if (t + 1u < kk) {
                sg_fma(inputs(plane, iy0, ix0, ky, kx), sg_wt(2u, r0, r1), sg_wt(3u, r0, r1));
                kx += 1u;
                if (kx == p.kw) {
                    kx = 0u;
                    ky += 1u;
                }
            }
            if (t + 2u < kk) {
                sg_fma(inputs(plane, iy0, ix0, ky, kx), sg_wt(4u, r0, r1), sg_wt(5u, r0, r1));
                kx += 1u;
                if (kx == p.kw) {
                    kx = 0u;
                    ky += 1u;
                }
            }
            if (t + 3u < kk) {
                sg_fma(inputs(plane, iy0, ix0, ky, kx), sg_wt(6u, r0, r1), sg_wt(7u, r0, r1));
                kx += 1u;
                if (kx == p.kw) {
                    kx = 0u;
                    ky += 1u;
                }
            }
        }
    }
    if (ox0 >= p.ow || oy >= p.oh) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store_px4(n, co + k, oy, ox0, sg_channel(k));
    }
}
