// 1×1 convolution of the layer graph with stride 1 or 2 (both axes alike), no padding, one
// group, float32 dense NCHW, input rows a multiple of 4 wide (8 with stride 2) and output rows
// exactly 1/stride as wide; epilogue `act(conv + bias + add)`. For adapters with subgroups of
// one fixed size (`gpu::fixed_subgroup_size`). Register block: 4 output pixels × 8 output
// channels per invocation; per input channel one vec4 load (stride 2: two, of which .x and .z),
// where the general subgroup kernel loads 4 scalars; per chunk of 4 input channels lanes 0–7 load
// the 8 weight vec4s once and `subgroupShuffle` at constant lanes hands them out.
// Weights: [cout / 8][cin padded to a multiple of 4][8], zero past cout and cin.
// Dispatch: (⌈ow / (4 XB)⌉ · cout / 8, ⌈oh / (SG / XB)⌉, n): the blocks of one patch one after
// another, reading its input from cache.

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, s: u32,
    cog: u32, has_add: u32, act: u32, act_a: u32,
    act_b: u32, slope_off: u32, slope_per_ch: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> addend: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<vec4<f32>>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(5) var<storage, read> aux: array<f32>;

// The adapter's subgroup size (its minimum and maximum agree).
override SG: u32 = 8u;
// Invocations along x per subgroup row (a power of two, at most SG).
override XB: u32 = 8u;


// The lane's 4 input values of the channel at vec4 `i` (`ok`: whether the lane has pixels).
fn inputs(i: u32, ok: bool) -> vec4<f32> {
    if (p.s == 1u) {
        return select(vec4(0.0), src[i], ok);
    }
    let va = select(vec4(0.0), src[i], ok);
    let vb = select(vec4(0.0), src[i + 1u], ok);
    return vec4(va.x, va.z, vb.x, vb.z);
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let g = wid.x % p.cog;
    let wx = wid.x / p.cog;
    let n = wid.z;
    let xb = lane % XB;
    let ox0 = (wx * XB + xb) * 4u;
    let oy = wid.y * (SG / XB) + lane / XB;
    let ok = ox0 < p.ow && oy < p.oh;
    // Clamped so that every lane loads (all take part in the shuffles); outside is zeroed.
    let row = min(oy, p.oh - 1u) * p.s;
    let x4 = min(ox0 * p.s, p.w - 4u * p.s) / 4u;
    let hw4 = p.h * p.w / 4u;
    let off = n * p.cin * hw4 + row * (p.w / 4u) + x4;
    let cinp = (p.cin + 3u) / 4u * 4u;
    var wb = g * cinp * 2u;
    a0 = vec4(0.0);
    a1 = vec4(0.0);
    a2 = vec4(0.0);
    a3 = vec4(0.0);
    b0 = vec4(0.0);
    b1 = vec4(0.0);
    b2 = vec4(0.0);
    b3 = vec4(0.0);
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
        let i = off + c * hw4;
        sg_fma(inputs(i, ok), sg_wt(0u, r0, r1), sg_wt(1u, r0, r1));
        if (c + 1u < p.cin) {
            sg_fma(inputs(i + hw4, ok), sg_wt(2u, r0, r1), sg_wt(3u, r0, r1));
        }
        if (c + 2u < p.cin) {
            sg_fma(inputs(i + 2u * hw4, ok), sg_wt(4u, r0, r1), sg_wt(5u, r0, r1));
        }
        if (c + 3u < p.cin) {
            sg_fma(inputs(i + 3u * hw4, ok), sg_wt(6u, r0, r1), sg_wt(7u, r0, r1));
        }
    }
    if (!ok) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store_px4(n, co + k, oy, ox0, sg_channel(k));
    }
}
