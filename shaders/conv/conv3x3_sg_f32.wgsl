// 3×3 convolution, padding 1, stride 1, NCHW float32 (planes `plane_stride` apart), BatchNorm
// folded, ReLU fused, the skip concatenation read in place from `src_a` then `src_b` (as
// conv3x3_bn_relu_f32), for adapters with subgroups of one fixed size and rows whose width is a
// multiple of 4.
//
// Why subgroups: on SIMD-style implementations (lavapipe, SwiftShader) every load instruction
// costs about the same per lane whether or not its address is uniform, so the v2 kernel's six
// uniform weight loads per input row pay for 8 lanes each and deliver one vec4. Here the lanes of
// a subgroup load the 18 weight vec4s of one input channel cooperatively (one vec4 per lane per
// load) and hand them out with `subgroupShuffle` at constant lane indices, which compiles to a
// register broadcast. The input row is one vec4 load per lane (4 pixels); the two neighbouring
// columns come from the adjacent lanes with `subgroupShuffleUp/Down`, and only lanes at the edge
// of the subgroup's patch need them from memory: with 8 lanes per patch row, six lanes fetch the
// six edge values of the three rows in one load and shuffle them to the edges; narrower patch
// rows load one more vec4 per row.
// Every activation access is a vec4: WebGPU forbids a second (scalar) view of the same range,
// since the arena must be bound read_write.
//
// Register block: 4 consecutive pixels × 8 output channels per invocation, named accumulators.
// Mapping: a workgroup is one subgroup of SG lanes (the host checks that such a workgroup runs as
// one full subgroup: `gpu::fixed_subgroup_size`), XB lanes along x (each 4 pixels) × SG / XB rows;
// positions come from `subgroup_invocation_id`, so the shuffles are right however the hardware
// numbers its invocations. XB = 1 and 2 are columns (SG rows × 4 pixels, or SG / 2 rows × 8
// pixels as lane pairs; rows y ± 1 come from the lanes above and below too); XB = 4, 8 are patch
// rows.
// Workgroup order: x patches × y patches × (image, output-channel block), or, where the host sets
// flag bit 1 (layers whose input is larger than their weights), (x patch, block) × y patches ×
// image, so that the blocks of one patch read the same input rows one after another.

struct Params {
    n: u32,
    cin_a: u32,
    cin_b: u32,
    cout: u32,
    h: u32,
    w: u32,
    flags: u32, // bit 0: ReLU; bit 1: output-channel blocks vary fastest (along x)
    cog: u32, // output-channel blocks of 8
}

@group(0) @binding(0) var<uniform> p: Params;
// Activations live in one arena that several bindings alias, so all are read_write.
@group(0) @binding(1) var<storage, read_write> src_a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> src_b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dst: array<vec4<f32>>;

// The adapter's subgroup size (its minimum and maximum agree).
override SG: u32 = 8u;
// Invocations along x per subgroup row (1, 2, 4 or 8, at most SG; 2 needs SG ≥ 4, so that the
// first and last rows of lanes differ).
override XB: u32 = 8u;

// Accumulators: a* output channels 0–3, b* 4–7, for the 4 pixels.
var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;
var<private> b0: vec4<f32>;
var<private> b1: vec4<f32>;
var<private> b2: vec4<f32>;
var<private> b3: vec4<f32>;

// Per-invocation constants of the position (set once by `main`, read by `step` and `column`).
var<private> lane_id: u32;
var<private> x4: u32; // this lane's 4 pixels, in vec4s from the row start (clamped)
var<private> h4: u32; // XB = 4: the vec4 holding this lane's edge value
var<private> hm: bool; // XB = 4: whether that edge column lies inside the image
var<private> first: bool; // first lane of its patch row
var<private> last: bool; // last lane of its patch row
var<private> hsrc: u32; // XB = 8: the lane that fetched this lane's edge value of kernel row 0
// Columns: the row `yc`, whether this lane uses it, whether its left / right neighbour columns
// exist; for the lanes of the first and last rows, the row above / below the column and whether
// it exists.
var<private> yc: u32;
var<private> ok1: bool;
var<private> hl_ok: bool;
var<private> hr_ok: bool;
var<private> h_ok: bool; // XB = 2: whether the lane's outer side value exists
var<private> top_row: bool; // in the first row of lanes
var<private> bot_row: bool; // in the last row of lanes
var<private> erow: u32;
var<private> e_ok: bool;

// Weight vec4 `q` (tap * 2 + j) of the kernel row being processed: lane q % SG of r0 or r1.
fn wt(q: u32, r0: vec4<f32>, r1: vec4<f32>) -> vec4<f32> {
    return subgroupShuffle(select(r1, r0, q < SG), q % SG);
}

// One kernel row `ky` of input channel `ci` (weights from vec4 `wb`): its 3 taps × 8 output
// channels on the lane's input row segment: `l`, the 4 values of `v`, `e`.
fn taps(ky: u32, wb: u32, l: f32, v: vec4<f32>, e: f32) {
    // The row's 6 weight vec4s, one per lane (a load inside a branch costs only the lanes that
    // take it on SIMD-style devices).
    var r0 = vec4(0.0);
    var r1 = vec4(0.0);
    if (lane_id < 6u) {
        r0 = weights[wb + ky * 6u + lane_id];
    }
    if (SG < 6u && lane_id + SG < 6u) {
        r1 = weights[wb + ky * 6u + SG + lane_id];
    }
    let i0 = l;
    let i1 = v.x;
    let i2 = v.y;
    let i3 = v.z;
    let i4 = v.w;
    let i5 = e;
    let w0 = wt(0u, r0, r1);
    let w1 = wt(2u, r0, r1);
    let w2 = wt(4u, r0, r1);
    a0 = fma(vec4(i0), w0, fma(vec4(i1), w1, fma(vec4(i2), w2, a0)));
    a1 = fma(vec4(i1), w0, fma(vec4(i2), w1, fma(vec4(i3), w2, a1)));
    a2 = fma(vec4(i2), w0, fma(vec4(i3), w1, fma(vec4(i4), w2, a2)));
    a3 = fma(vec4(i3), w0, fma(vec4(i4), w1, fma(vec4(i5), w2, a3)));
    let u0 = wt(1u, r0, r1);
    let u1 = wt(3u, r0, r1);
    let u2 = wt(5u, r0, r1);
    b0 = fma(vec4(i0), u0, fma(vec4(i1), u1, fma(vec4(i2), u2, b0)));
    b1 = fma(vec4(i1), u0, fma(vec4(i2), u1, fma(vec4(i3), u2, b1)));
    b2 = fma(vec4(i2), u0, fma(vec4(i3), u1, fma(vec4(i4), u2, b2)));
    b3 = fma(vec4(i3), u0, fma(vec4(i4), u1, fma(vec4(i5), u2, b3)));
}

// Patch rows (XB = 4, 8): kernel row `ky` of input channel `ci` on the row at vec4 index `r4`
// (`ok`: whether it exists); the lane loads its 4 pixels and takes its neighbours' edge values by
// shuffles; `hval` is what this lane fetched for the patch edges (XB = 8).
fn step(ky: u32, ci: u32, wb: u32, r4: u32, ok: bool, hval: f32) {
    let v = select(vec4(0.0), ld(ci, r4 + x4), ok);
    var h: f32;
    if (XB == 8u) {
        h = subgroupShuffle(hval, hsrc + 2u * ky);
    } else {
        let g = ld(ci, r4 + h4);
        h = select(0.0, select(g.x, g.w, first), ok && hm);
    }
    let l = select(subgroupShuffleUp(v.w, 1u), h, first);
    let e = select(subgroupShuffleDown(v.x, 1u), h, last);
    taps(ky, wb, l, v, e);
}

// Columns (XB = 1: SG rows, 4 pixels wide; XB = 2: SG / 2 rows, 8 pixels wide, as lane pairs),
// one input channel (of `src_a` when `is_a`, at tensor offset `base`; weights from vec4 `wb`):
// each lane loads its own input row segment and the values beside it, the lanes of the first and
// last rows also the row above / below the column; the rows y - 1 and y + 1 of the others come
// from the lanes XB above and below by shuffles (the side values: `sides`).
fn column(is_a: bool, wb: u32, base: u32) {
    let o4 = (base + yc * p.w) / 4u + x4;
    let v = select(vec4(0.0), lda(is_a, o4), ok1);
    var ev = vec4(0.0);
    var e4 = 0u;
    if (e_ok) {
        e4 = (base + erow * p.w) / 4u + x4;
        ev = lda(is_a, e4);
    }
    let s = sides(is_a, ok1, o4, v);
    let es = sides(is_a, e_ok, e4, ev);
    let l = s.x;
    let r = s.y;
    let el = es.x;
    let er = es.y;
    taps(
        0u,
        wb,
        select(subgroupShuffleUp(l, XB), el, top_row),
        select(subgroupShuffleUp(v, XB), ev, top_row),
        select(subgroupShuffleUp(r, XB), er, top_row),
    );
    taps(1u, wb, l, v, r);
    taps(
        2u,
        wb,
        select(subgroupShuffleDown(l, XB), el, bot_row),
        select(subgroupShuffleDown(v, XB), ev, bot_row),
        select(subgroupShuffleDown(r, XB), er, bot_row),
    );
}

// Columns: the values left and right of the row segment `v` at vec4 `o4` (`ok`: whether the
// row is this lane's to load). A single column loads both; in a pair each lane loads its outer
// side (.w of the vec4 before the left lane, .x of the vec4 after the right lane) and takes the
// inner one from its partner's edge value. Every lane takes part in the shuffle.
fn sides(is_a: bool, ok: bool, o4: u32, v: vec4<f32>) -> vec2<f32> {
    if (XB == 1u) {
        var l = 0.0;
        var r = 0.0;
        if (ok && hl_ok) {
            l = lda_c(is_a, o4 - 1u, 3u);
        }
        if (ok && hr_ok) {
            r = lda_c(is_a, o4 + 1u, 0u);
        }
        return vec2(l, r);
    }
    var h = 0.0;
    if (ok && h_ok) {
        h = lda_c(is_a, select(o4 + 1u, o4 - 1u, first), select(0u, 3u, first));
    }
    let q = subgroupShuffleXor(select(v.x, v.w, first), 1u);
    return select(vec2(q, h), vec2(h, q), first);
}

// Vec4 `i` of `src_a` (`is_a`) or `src_b`, and component `k` of it alone (one scalar load).
// `is_a` is a constant where these are called: no branch remains.
fn lda(is_a: bool, i: u32) -> vec4<f32> {
    if (is_a) {
        return src_a[i];
    }
    return src_b[i];
}

fn lda_c(is_a: bool, i: u32, k: u32) -> f32 {
    if (is_a) {
        return src_a[i][k];
    }
    return src_b[i][k];
}

// The same for input channel `ci` over both inputs (`src_a`'s channels, then `src_b`'s).
fn ld(ci: u32, i: u32) -> vec4<f32> {
    if (ci < p.cin_a) {
        return src_a[i];
    }
    return src_b[i];
}

// Component x (w) of vec4 `i`: one scalar load.
fn ld_x(ci: u32, i: u32) -> f32 {
    if (ci < p.cin_a) {
        return src_a[i].x;
    }
    return src_b[i].x;
}

fn ld_w(ci: u32, i: u32) -> f32 {
    if (ci < p.cin_a) {
        return src_a[i].w;
    }
    return src_b[i].w;
}

fn store(n: u32, co: u32, y: u32, x0: u32, v_in: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    var v = v_in;
    if ((p.flags & 1u) != 0u) {
        v = max(v, vec4(0.0));
    }
    dst[((n * p.cout + co) * plane_stride(p.h * p.w) + y * p.w + x0) / 4u] = v;
}

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // Which workgroup computes what: x patches × y patches × (batch, output-channel block), or,
    // with the blocks fastest, (x patch, block) × y patches × batch.
    let blocks_fast = (p.flags & 2u) != 0u;
    let wx = select(wid.x, wid.x / p.cog, blocks_fast);
    let n = select(wid.z / p.cog, wid.z, blocks_fast);
    let g = select(wid.z, wid.x, blocks_fast) % p.cog;
    let xb = lane % XB;
    let x0 = (wx * XB + xb) * 4u;
    let y = wid.y * (SG / XB) + lane / XB;
    let inside = x0 < p.w && y < p.h;
    let gv = g * 2u;
    let hw = plane_stride(p.h * p.w);
    // Addresses are clamped into the image so that every lane can load (no lane leaves before
    // the shuffles); what lies outside is zeroed.
    lane_id = lane;
    x4 = min(x0, p.w - 4u) / 4u;
    // Rows y - 1, y, y + 1: clamped, and whether they exist.
    yc = min(y, p.h - 1u);
    let rtop = select(0u, yc - 1u, yc > 0u);
    let rbot = min(yc + 1u, p.h - 1u);
    let rv0 = y < p.h && y > 0u;
    let rv1 = y < p.h;
    let rv2 = y + 1u < p.h;
    let ok0 = inside && rv0;
    ok1 = inside && rv1;
    let ok2 = inside && rv2;
    let w4 = p.w / 4u;
    // XB = 4: the edge column this lane needs, left of the patch row, right of it, or (unused)
    // its own; in vec4 units.
    let hxi = select(select(i32(x0), i32(x0) + 4, xb == XB - 1u), i32(x0) - 1, xb == 0u);
    hm = hxi >= 0 && hxi < i32(p.w);
    h4 = u32(clamp(hxi, 0, i32(p.w) - 1)) / 4u;
    // XB = 8: lane k < 6 of a patch row fetches the edge value of row k / 2, left of the patch
    // (k even) or right of it (k odd), for the lanes at the edges.
    let hr = min(xb / 2u, 2u);
    let hright = (xb & 1u) == 1u;
    let hrow = select(select(rbot, yc, hr == 1u), rtop, hr == 0u);
    let hrv = select(select(rv2, rv1, hr == 1u), rv0, hr == 0u);
    let hci = select(i32(wx * XB) - 1, i32((wx + 1u) * XB), hright);
    let hm8 = xb < 6u && hrv && hci >= 0 && hci < i32(w4);
    let hc4 = u32(clamp(hci, 0, i32(w4) - 1));
    hl_ok = x0 > 0u;
    hr_ok = x0 + 4u < p.w;
    // Columns: the lanes of the first (last) row also load the row above (below) the column.
    top_row = lane < XB;
    bot_row = lane >= SG - XB;
    erow = select(y + 1u, y - 1u, top_row);
    e_ok = x0 < p.w && ((top_row && y > 0u && y - 1u < p.h) || (bot_row && y + 1u < p.h));
    // The fetching lane for this lane's edge (first lane of the patch row, + 1 on the right).
    hsrc = select((lane / XB) * XB, 0u, SG == XB) + select(0u, 1u, xb == XB - 1u);

    let bv0 = bias[gv];
    let bv1 = bias[gv + 1u];
    a0 = bv0;
    a1 = bv0;
    a2 = bv0;
    a3 = bv0;
    b0 = bv1;
    b1 = bv1;
    b2 = bv1;
    b3 = bv1;

    first = xb == 0u;
    last = xb == XB - 1u;
    h_ok = select(hr_ok, hl_ok, first);
    let cin = p.cin_a + p.cin_b;
    if (XB <= 2u) {
        // The skip's channels, then the upsampled ones: two loops, no per-load branch.
        for (var c = 0u; c < p.cin_a; c++) {
            column(true, (g * cin + c) * 18u, (n * p.cin_a + c) * hw);
        }
        for (var c = 0u; c < p.cin_b; c++) {
            column(false, (g * cin + p.cin_a + c) * 18u, (n * p.cin_b + c) * hw);
        }
    } else {
        // (Patch rows: one loop with the source chosen per load measured faster than two loops.)
        for (var ci = 0u; ci < cin; ci++) {
            let wb = (g * cin + ci) * 18u;
            let base = select(
                (n * p.cin_b + ci - p.cin_a) * hw,
                (n * p.cin_a + ci) * hw,
                ci < p.cin_a,
            );
            // XB = 8: the patch edges of the three rows, scalar loads taken by the fetching lanes.
            var hval = 0.0;
            if (XB == 8u && hm8) {
                let i = (base + hrow * p.w) / 4u + hc4;
                if (hright) {
                    hval = ld_x(ci, i);
                } else {
                    hval = ld_w(ci, i);
                }
            }
            step(0u, ci, wb, (base + rtop * p.w) / 4u, ok0, hval);
            step(1u, ci, wb, (base + yc * p.w) / 4u, ok1, hval);
            step(2u, ci, wb, (base + rbot * p.w) / 4u, ok2, hval);
        }
    }
    if (!inside) {
        return;
    }
    let co = g * 8u;
    store(n, co, y, x0, vec4(a0.x, a1.x, a2.x, a3.x));
    store(n, co + 1u, y, x0, vec4(a0.y, a1.y, a2.y, a3.y));
    store(n, co + 2u, y, x0, vec4(a0.z, a1.z, a2.z, a3.z));
    store(n, co + 3u, y, x0, vec4(a0.w, a1.w, a2.w, a3.w));
    store(n, co + 4u, y, x0, vec4(b0.x, b1.x, b2.x, b3.x));
    store(n, co + 5u, y, x0, vec4(b0.y, b1.y, b2.y, b3.y));
    store(n, co + 6u, y, x0, vec4(b0.z, b1.z, b2.z, b3.z));
    store(n, co + 7u, y, x0, vec4(b0.w, b1.w, b2.w, b3.w));
}
