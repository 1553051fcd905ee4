// 3×3 convolution of the layer graph with stride 2, padding 1 at the top and left, no
// dilation, one group (ResNet's downsampling convs), float32 dense NCHW, input rows a multiple
// of 8 wide; epilogue `act(conv + bias + add)`. For adapters with subgroups of one fixed size
// (`gpu::fixed_subgroup_size`). Register block: 4 output pixels × 8 output channels per
// invocation. Per input row the lane's 4 pixels need the 9 values 2·x0 − 1 … 2·x0 + 7: two vec4
// loads, and the one before from the lane to the left by a shuffle (the first lane of a patch
// row loads it); where the general subgroup kernel loads 12 scalars. Weights as
// `conv3x3_sg_f32` ([cout / 8][cin][ky][kx][8]), handed out by `subgroupShuffle` at constant
// lanes. A workgroup is one subgroup: XB lanes along x × SG / XB output rows.
// Dispatch: (⌈ow / (4 XB)⌉ · cout / 8, ⌈oh / (SG / XB)⌉, n): the blocks of one patch one after
// another, reading its input from cache.

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
var<private> lok: bool; // first lane whose left value (2·x0 − 1) lies in the row

// Kernel row `ky` (weights from vec4 `wb`) on the row values: `l` at 2·x0 − 1, `va`, `vb` the
// 8 from 2·x0.
fn row(ky: u32, wb: u32, l: f32, va: vec4<f32>, vb: vec4<f32>) {
    var r0 = vec4(0.0);
    var r1 = vec4(0.0);
    if (lane_id < 6u) {
        r0 = weights[wb + ky * 6u + lane_id];
    }
    if (SG < 6u && lane_id + SG < 6u) {
        r1 = weights[wb + ky * 6u + SG + lane_id];
    }
    sg_fma(vec4(l, va.y, va.w, vb.y), sg_wt(0u, r0, r1), sg_wt(1u, r0, r1));
    sg_fma(vec4(va.x, va.z, vb.x, vb.z), sg_wt(2u, r0, r1), sg_wt(3u, r0, r1));
    sg_fma(vec4(va.y, va.w, vb.y, vb.w), sg_wt(4u, r0, r1), sg_wt(5u, r0, r1));
}

// Kernel row `ky` on the input row at vec4 `i` (`ok`: whether it exists): the lane's two vec4s,
// the value before them from the lane to the left (or loaded, by the first lane).
fn krow(ky: u32, wb: u32, i: u32, ok: bool) {
    let va = select(vec4(0.0), src[i], ok);
    let vb = select(vec4(0.0), src[i + 1u], ok);
    var l = subgroupShuffleUp(vb.w, 1u);
    if (first) {
        l = 0.0;
        if (lok && ok) {
            l = src[i - 1u].w;
        }
    }
    row(ky, wb, l, va, vb);
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
    // Rows 2·oy − 1 + ky: clamped, and whether they exist.
    let y0 = i32(2u * oy) - 1;
    let hi = i32(p.h) - 1;
    let ok0 = inside && y0 >= 0 && y0 <= hi;
    let ok1 = inside && y0 + 1 <= hi;
    let ok2 = inside && y0 + 2 <= hi;
    let r0 = u32(clamp(y0, 0, hi)) * w4 + x4;
    let r1 = u32(clamp(y0 + 1, 0, hi)) * w4 + x4;
    let r2 = u32(clamp(y0 + 2, 0, hi)) * w4 + x4;
    first = xb == 0u;
    lok = first && ox0 > 0u && xin;
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
        let wb = (g * p.cin + ci) * 18u;
        krow(0u, wb, plane + r0, ok0);
        krow(1u, wb, plane + r1, ok1);
        krow(2u, wb, plane + r2, ok2);
    }
    if (!inside) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store_px4(n, co + k, oy, ox0, sg_channel(k));
    }
}
