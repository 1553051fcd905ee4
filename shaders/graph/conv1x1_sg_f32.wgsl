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

var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;
var<private> b0: vec4<f32>;
var<private> b1: vec4<f32>;
var<private> b2: vec4<f32>;
var<private> b3: vec4<f32>;

// Weight vec4 `q` (0–7) of the chunk: lane q % SG of r0 (q < SG) or r1.
fn wt(q: u32, r0: vec4<f32>, r1: vec4<f32>) -> vec4<f32> {
    return subgroupShuffle(select(r1, r0, q < SG), q % SG);
}

// One input channel: the 4 pixels' values `x` times the 8 channels' weights `w0` (0–3), `w1`.
fn chan(x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
    a0 = fma(vec4(x.x), w0, a0);
    a1 = fma(vec4(x.y), w0, a1);
    a2 = fma(vec4(x.z), w0, a2);
    a3 = fma(vec4(x.w), w0, a3);
    b0 = fma(vec4(x.x), w1, b0);
    b1 = fma(vec4(x.y), w1, b1);
    b2 = fma(vec4(x.z), w1, b2);
    b3 = fma(vec4(x.w), w1, b3);
}

// The lane's 4 input values of the channel at vec4 `i` (`ok`: whether the lane has pixels).
fn inputs(i: u32, ok: bool) -> vec4<f32> {
    if (p.s == 1u) {
        return select(vec4(0.0), src[i], ok);
    }
    let va = select(vec4(0.0), src[i], ok);
    let vb = select(vec4(0.0), src[i + 1u], ok);
    return vec4(va.x, va.z, vb.x, vb.z);
}

fn store(n: u32, co: u32, oy: u32, ox0: u32, v_in: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    let base = ((n * p.cout + co) * p.oh + oy) * p.ow;
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    let bias = aux[co];
    let s = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
    for (var j = 0u; j < 4u; j++) {
        var v = v_in[j] + bias;
        if (p.has_add == 1u) {
            v += addend[base + ox0 + j];
        }
        dst[base + ox0 + j] = apply_act(v, p.act, a, b, s);
    }
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
        chan(inputs(i, ok), wt(0u, r0, r1), wt(1u, r0, r1));
        if (c + 1u < p.cin) {
            chan(inputs(i + hw4, ok), wt(2u, r0, r1), wt(3u, r0, r1));
        }
        if (c + 2u < p.cin) {
            chan(inputs(i + 2u * hw4, ok), wt(4u, r0, r1), wt(5u, r0, r1));
        }
        if (c + 3u < p.cin) {
            chan(inputs(i + 3u * hw4, ok), wt(6u, r0, r1), wt(7u, r0, r1));
        }
    }
    if (!ok) {
        return;
    }
    let co = g * 8u;
    store(n, co, oy, ox0, vec4(a0.x, a1.x, a2.x, a3.x));
    store(n, co + 1u, oy, ox0, vec4(a0.y, a1.y, a2.y, a3.y));
    store(n, co + 2u, oy, ox0, vec4(a0.z, a1.z, a2.z, a3.z));
    store(n, co + 3u, oy, ox0, vec4(a0.w, a1.w, a2.w, a3.w));
    store(n, co + 4u, oy, ox0, vec4(b0.x, b1.x, b2.x, b3.x));
    store(n, co + 5u, oy, ox0, vec4(b0.y, b1.y, b2.y, b3.y));
    store(n, co + 6u, oy, ox0, vec4(b0.z, b1.z, b2.z, b3.z));
    store(n, co + 7u, oy, ox0, vec4(b0.w, b1.w, b2.w, b3.w));
}
