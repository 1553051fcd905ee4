// Transposed 2-D convolution of the layer graph whose kernel equals its stride (no padding,
// dilation or output padding; one group; input rows a multiple of 4 wide), float32 dense NCHW:
// each tap (ty, tx) is then a 1×1 conv of the input written to the output pixels
// (iy · sh + ty, ix · sw + tx). For adapters with subgroups of one fixed size
// (`gpu::fixed_subgroup_size`). Register block: 4 input pixels (one vec4 load) × 8 output
// channels of one tap per invocation; per chunk of 4 input channels lanes 0–7 load the 8 weight
// vec4s once and `subgroupShuffle` at constant lanes hands them out (docs/PERF.md, "conv3x3 v3").
// A workgroup is one subgroup: XB lanes along x × SG / XB input rows. Epilogue `act(sum + bias)`.
// Weights: [cout / 8][tap][cin padded to a multiple of 4][8], zero past cout and cin.
// Dispatch: (⌈w / (4 XB)⌉, ⌈h / (SG / XB)⌉, n · cout / 8 · taps), or with flag bit 0
// (⌈w / (4 XB)⌉ · cout / 8 · taps, ⌈h / (SG / XB)⌉, n): the blocks and taps of one input patch
// one after another, so that they read it from cache.

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, cog: u32, act: u32, act_a: u32,
    act_b: u32, slope_off: u32, slope_per_ch: u32,
    flags: u32, // bit 0: (output-channel block, tap) vary fastest, along x

}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<f32>>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(4) var<storage, read> aux: array<f32>;

// The adapter's subgroup size (its minimum and maximum agree).
override SG: u32 = 8u;
// Invocations along x per subgroup row (a power of two, at most SG).
override XB: u32 = 8u;


// Output channel `co` of input pixels ix0..ix0 + 3 of row iy at tap (ty, tx).
fn store(n: u32, co: u32, iy: u32, ix0: u32, ty: u32, tx: u32, v: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    let row = ((n * p.cout + co) * p.oh + iy * p.kh + ty) * p.ow + tx;
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    let bias = aux[co];
    let s = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
    dst[row + ix0 * p.kw] = apply_act(v.x + bias, p.act, a, b, s);
    dst[row + (ix0 + 1u) * p.kw] = apply_act(v.y + bias, p.act, a, b, s);
    dst[row + (ix0 + 2u) * p.kw] = apply_act(v.z + bias, p.act, a, b, s);
    dst[row + (ix0 + 3u) * p.kw] = apply_act(v.w + bias, p.act, a, b, s);
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let kk = p.kh * p.kw;
    let fast = (p.flags & 1u) != 0u;
    let bt = select(wid.z % (kk * p.cog), wid.x % (kk * p.cog), fast);
    let wx = select(wid.x, wid.x / (kk * p.cog), fast);
    let n = select(wid.z / (kk * p.cog), wid.z, fast);
    let t = bt % kk;
    let g = bt / kk;
    let ty = t / p.kw;
    let tx = t % p.kw;
    let xb = lane % XB;
    let ix0 = (wx * XB + xb) * 4u;
    let iy = wid.y * (SG / XB) + lane / XB;
    let ok = ix0 < p.w && iy < p.h;
    // Clamped so that every lane loads (all take part in the shuffles); outside is zeroed.
    let off = (min(iy, p.h - 1u) * p.w + min(ix0, p.w - 4u)) / 4u;
    let hw4 = p.h * p.w / 4u;
    let cinp = (p.cin + 3u) / 4u * 4u;
    var wb = ((g * kk + t) * cinp) * 2u;
    a0 = vec4(0.0);
    a1 = vec4(0.0);
    a2 = vec4(0.0);
    a3 = vec4(0.0);
    b0 = vec4(0.0);
    b1 = vec4(0.0);
    b2 = vec4(0.0);
    b3 = vec4(0.0);
    let plane0 = n * p.cin * hw4 + off;
    for (var c = 0u; c < p.cin; c += 4u) {
        var r0 = vec4(0.0);
        var r1 = vec4(0.0);
        if (lane < 8u) {
            r0 = weights[wb + lane];
        }
        if (SG < 8u && lane + SG < 8u) {
            r1 = weights[wb + SG + lane];
        }
        wb += 8u;
        let i = plane0 + c * hw4;
        sg_fma(select(vec4(0.0), src[i], ok), sg_wt(0u, r0, r1), sg_wt(1u, r0, r1));
        if (c + 1u < p.cin) {
            sg_fma(select(vec4(0.0), src[i + hw4], ok), sg_wt(2u, r0, r1), sg_wt(3u, r0, r1));
        }
        if (c + 2u < p.cin) {
            sg_fma(select(vec4(0.0), src[i + 2u * hw4], ok), sg_wt(4u, r0, r1), sg_wt(5u, r0, r1));
        }
        if (c + 3u < p.cin) {
            sg_fma(select(vec4(0.0), src[i + 3u * hw4], ok), sg_wt(6u, r0, r1), sg_wt(7u, r0, r1));
        }
    }
    if (!ok) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store(n, co + k, iy, ix0, ty, tx, sg_channel(k));
    }
}
