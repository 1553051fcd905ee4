// 7×7 convolution of the layer graph with stride 2, padding 3 at the top and left, no
// dilation, one group (the ResNet stem), float32 dense NCHW, input rows a multiple of 8 wide;
// epilogue `act(conv + bias + add)`. For adapters with subgroups of one fixed size
// (`gpu::fixed_subgroup_size`). As `conv3x3s2_sg_f32`: 4 output pixels × 8 output channels per
// invocation; per input row the lane's 4 pixels need the 13 values 2·x0 − 3 … 2·x0 + 9: two vec4
// loads, the three before from the lane to the left and the two after from the lane to the
// right by shuffles (the lanes at the ends of a patch row load them), where the general subgroup
// kernel loads 28 scalars. Weights [cout / 8][cin][ky][kx][8], a kernel row's 14 vec4s loaded
// by the lanes together and handed out by `subgroupShuffle` at constant lanes.
// Dispatch: (⌈ow / (4 XB)⌉ · cout / 8, ⌈oh / (SG / XB)⌉, n).

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, cog: u32,
    has_add: u32, act: u32, act_a: u32, act_b: u32,
    slope_off: u32, slope_per_ch: u32, _p0: u32, _p1: u32,
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

var<private> lane_id: u32;
var<private> first: bool; // first lane of its patch row
var<private> lok: bool; // first lane whose left values (from 2·x0 − 4) lie in the row
var<private> last: bool; // last lane of its patch row
var<private> rok: bool; // whether the values after the lane's 8 (2·x0 + 8) lie in the row

// Weight vec4 `q` (tap * 2 + j, 0–13) of the kernel row: lane q % SG of r[q / SG].
fn wt(q: u32, r: array<vec4<f32>, 4>) -> vec4<f32> {
    return subgroupShuffle(r[q / SG], q % SG);
}

// Kernel row `ky` (weights from vec4 `wb`) on the input row at vec4 `i` (`ok`: whether it
// exists).
fn krow(ky: u32, wb: u32, i: u32, ok: bool) {
    let va = select(vec4(0.0), src[i], ok);
    let vb = select(vec4(0.0), src[i + 1u], ok);
    // 2·x0 − 3 … 2·x0 − 1 and 2·x0 + 8, 2·x0 + 9 from the neighbours (every lane shuffles).
    var lv = vec3(
        subgroupShuffleUp(vb.y, 1u),
        subgroupShuffleUp(vb.z, 1u),
        subgroupShuffleUp(vb.w, 1u),
    );
    var rv = vec2(subgroupShuffleDown(va.x, 1u), subgroupShuffleDown(va.y, 1u));
    if (first) {
        lv = vec3(0.0);
        if (lok && ok) {
            lv = src[i - 1u].yzw;
        }
    }
    if (last) {
        rv = vec2(0.0);
        if (rok && ok) {
            rv = src[i + 2u].xy;
        }
    }
    rv = select(vec2(0.0), rv, rok);
    var r: array<vec4<f32>, 4>;
    let b = wb + ky * 14u;
    if (lane_id < 14u) {
        r[0] = weights[b + lane_id];
    }
    if (SG < 14u && lane_id + SG < 14u) {
        r[1] = weights[b + SG + lane_id];
    }
    if (2u * SG < 14u && lane_id + 2u * SG < 14u) {
        r[2] = weights[b + 2u * SG + lane_id];
    }
    if (3u * SG < 14u && lane_id + 3u * SG < 14u) {
        r[3] = weights[b + 3u * SG + lane_id];
    }
    sg_fma(vec4(lv.x, lv.z, va.y, va.w), wt(0u, r), wt(1u, r));
    sg_fma(vec4(lv.y, va.x, va.z, vb.x), wt(2u, r), wt(3u, r));
    sg_fma(vec4(lv.z, va.y, va.w, vb.y), wt(4u, r), wt(5u, r));
    sg_fma(vec4(va.x, va.z, vb.x, vb.z), wt(6u, r), wt(7u, r));
    sg_fma(vec4(va.y, va.w, vb.y, vb.w), wt(8u, r), wt(9u, r));
    sg_fma(vec4(va.z, vb.x, vb.z, rv.x), wt(10u, r), wt(11u, r));
    sg_fma(vec4(va.w, vb.y, vb.w, rv.y), wt(12u, r), wt(13u, r));
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    lane_id = lane;
    let g = wid.x % p.cog;
    let wx = wid.x / p.cog;
    let n = wid.z;
    let xb = lane % XB;
    let ox0 = (wx * XB + xb) * 4u;
    let oy = wid.y * (SG / XB) + lane / XB;
    let inside = ox0 < p.ow && oy < p.oh;
    // This lane's 8 input values from 2·x0 (clamped into the row: every lane loads and takes
    // part in the shuffles; what lies outside is zeroed), in vec4s.
    let x4 = min(2u * ox0, p.w - 8u) / 4u;
    let xin = 2u * ox0 < p.w;
    let hw4 = p.h * p.w / 4u;
    let w4 = p.w / 4u;
    // Rows 2·oy − 3 + ky: clamped, and whether they exist.
    let y0 = i32(2u * oy) - 3;
    let hi = i32(p.h) - 1;
    first = xb == 0u;
    last = xb == XB - 1u;
    lok = first && ox0 > 0u && xin;
    rok = 2u * ox0 + 8u < p.w;
    a0 = vec4(0.0);
    a1 = vec4(0.0);
    a2 = vec4(0.0);
    a3 = vec4(0.0);
    b0 = vec4(0.0);
    b1 = vec4(0.0);
    b2 = vec4(0.0);
    b3 = vec4(0.0);
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = (n * p.cin + ci) * hw4;
        let wb = (g * p.cin + ci) * 98u;
        for (var ky = 0u; ky < 7u; ky++) {
            let iy = y0 + i32(ky);
            let ok = inside && iy >= 0 && iy <= hi;
            krow(ky, wb, plane + u32(clamp(iy, 0, hi)) * w4 + x4, ok);
        }
    }
    if (!inside) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store_px4(n, co + k, oy, ox0, sg_channel(k));
    }
}
