// Winograd F(4×4, 3×3), step 2 of 3: for each of the 36 frequencies ξ, the product
// M[ξ] (cout × tiles) = U[ξ] (cout × cin) · V[ξ] (cin × tiles), a 1 × 1 convolution over the
// chunk's tiles: 36 multiply-adds per 16 output pixels per channel pair where the direct 3×3 conv
// has 144, so 4× fewer. For adapters with subgroups of one fixed size (see conv3x3_sg_f32.wgsl
// for why the weights are shared through shuffles).
//
// Register block: 4 consecutive tiles (one vec4 of V) × 8 output channels per invocation; named
// vec4 accumulators over the tiles, one per channel. A workgroup is one subgroup of SG lanes: SG
// × 4 tiles × 8 channels of one frequency. The lanes load the weights of SG / 2 input channels
// cooperatively (one vec4 each: U is grouped so that the 2 vec4s of 8 output channels of one
// input channel are adjacent) and hand them out with `subgroupShuffle` at constant lane indices.
// Workgroups: tile blocks × output-channel groups of 8 × frequencies.
// U: vec4 index ((g · 36 + ξ) · cinp + ci) · 2 + j holds output channels 8g + 4j ..+ 4 of input
// channel ci (zero past cout and cin). V and M are read and written whole: tstride is a multiple
// of 4 · SG, cinp of SG / 2. V's padding tiles (past the chunk's) only make products of padding
// tiles, which no output transform reads; its padding channels are zeroed by the input transform
// (U's rows there are zero, but stale Inf or NaN in the arena would still poison the sums).

struct Params {
    cinp: u32,
    coutp: u32, // output channels of M (a multiple of 8)
    tstride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> u: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;

// The adapter's subgroup size (its minimum and maximum agree), at least 4.
override SG: u32 = 8u;

// Accumulators: output channel j of the block, the lane's 4 tiles.
var<private> c0: vec4<f32>;
var<private> c1: vec4<f32>;
var<private> c2: vec4<f32>;
var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>;
var<private> c5: vec4<f32>;
var<private> c6: vec4<f32>;
var<private> c7: vec4<f32>;

// One input channel: the lane's 4 tiles `x` times the 8 channels' weights `wa`, `wb`.
fn mac(x: vec4<f32>, wa: vec4<f32>, wb: vec4<f32>) {
    c0 = fma(x, vec4(wa.x), c0);
    c1 = fma(x, vec4(wa.y), c1);
    c2 = fma(x, vec4(wa.z), c2);
    c3 = fma(x, vec4(wa.w), c3);
    c4 = fma(x, vec4(wb.x), c4);
    c5 = fma(x, vec4(wb.y), c5);
    c6 = fma(x, vec4(wb.z), c6);
    c7 = fma(x, vec4(wb.w), c7);
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let xi = wid.z;
    let g = wid.y;
    let ts4 = p.tstride / 4u;
    let t4 = wid.x * SG + lane;
    var vi = xi * p.cinp * ts4 + t4;
    var ui = (g * 36u + xi) * p.cinp * 2u + lane;
    for (var ci = 0u; ci < p.cinp; ci += SG / 2u) {
        // The weights of SG / 2 input channels, one vec4 per lane: those of step k are lanes
        // 2k, 2k + 1. At 4 and 8 lanes the steps are written out, with every shuffle's lane a
        // literal: SwiftShader does not unroll loops, and the loop (its 2 steps and their lanes
        // computed from k) took 1.5× as long there.
        let wl = u[ui];
        ui += SG;
        if (SG == 4u) {
            mac(v[vi], subgroupShuffle(wl, 0u), subgroupShuffle(wl, 1u));
            mac(v[vi + ts4], subgroupShuffle(wl, 2u), subgroupShuffle(wl, 3u));
            vi += 2u * ts4;
        } else if (SG == 8u) {
            mac(v[vi], subgroupShuffle(wl, 0u), subgroupShuffle(wl, 1u));
            mac(v[vi + ts4], subgroupShuffle(wl, 2u), subgroupShuffle(wl, 3u));
            mac(v[vi + 2u * ts4], subgroupShuffle(wl, 4u), subgroupShuffle(wl, 5u));
            mac(v[vi + 3u * ts4], subgroupShuffle(wl, 6u), subgroupShuffle(wl, 7u));
            vi += 4u * ts4;
        } else {
            for (var k = 0u; k < SG / 2u; k++) {
                mac(v[vi], subgroupShuffle(wl, 2u * k), subgroupShuffle(wl, 2u * k + 1u));
                vi += ts4;
            }
        }
    }
    // M[(ξ · coutp + co) · tstride + t], 4 tiles per vec4.
    var o = (xi * p.coutp + g * 8u) * ts4 + t4;
    m[o] = c0;
    o += ts4;
    m[o] = c1;
    o += ts4;
    m[o] = c2;
    o += ts4;
    m[o] = c3;
    o += ts4;
    m[o] = c4;
    o += ts4;
    m[o] = c5;
    o += ts4;
    m[o] = c6;
    o += ts4;
    m[o] = c7;
}
