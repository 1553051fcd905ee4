// 3×3 convolution of the layer graph (`gpu::graph`), stride 1, padding 1, dilation 1, one group,
// float32 dense NCHW, rows a multiple of 4 wide; epilogue `act(conv + bias + add)`. For adapters
// with subgroups of one fixed size (`gpu::fixed_subgroup_size`). The U-Net engine's
// `conv/conv3x3_sg_f32` (see it and docs/PERF.md, "conv3x3 v3", for why each step is so) on
// dense planes and one input: the lanes of a subgroup load the 18 weight vec4s of one input
// channel cooperatively and hand them out with `subgroupShuffle` at constant lanes; activations
// are vec4 loads, neighbouring columns (and, in column mode, rows) come from neighbouring lanes.
// Register block: 4 consecutive pixels × 8 output channels per invocation. A workgroup is one
// subgroup: XB lanes along x × SG / XB rows (XB = 1, 2: columns; 4, 8: patch rows).
// Weights: grouped by 8 output channels, [cout / 8][cin][ky][kx][8] (zero past cout).
// Workgroup order: x patches × y patches × (image, output-channel block), or, with flag bit 1,
// (x patch, block) × y patches × image.

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    flags: u32, // bit 1: output-channel blocks vary fastest (along x)
    cog: u32, // output-channel blocks of 8
    has_add: u32,
    act: u32,
    act_a: u32,
    act_b: u32,
    slope_off: u32,
    slope_per_ch: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Activations live in one arena that several bindings alias, so all are read_write.
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> addend: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> weights: array<vec4<f32>>;
// bias (cout values) then the PRelu slopes
@group(0) @binding(5) var<storage, read> aux: array<f32>;

// The adapter's subgroup size (its minimum and maximum agree).
override SG: u32 = 8u;
// Invocations along x per subgroup row (1, 2, 4 or 8, at most SG; 2 needs SG ≥ 4).
override XB: u32 = 8u;

// Accumulators: a* output channels 0–3, b* 4–7, for the 4 pixels.

// Per-invocation constants of the position (set once by `main`).
var<private> lane_id: u32;
var<private> x4: u32; // this lane's 4 pixels, in vec4s from the row start (clamped)
var<private> h4: u32; // XB = 4: the vec4 holding this lane's edge value
var<private> hm: bool; // XB = 4: whether that edge column lies inside the image
var<private> first: bool; // first lane of its patch row
var<private> last: bool; // last lane of its patch row
var<private> hsrc: u32; // XB = 8: the lane that fetched this lane's edge value of kernel row 0
var<private> yc: u32;
var<private> ok1: bool;
var<private> hl_ok: bool;
var<private> hr_ok: bool;
var<private> h_ok: bool; // XB = 2: whether the lane's outer side value exists
var<private> top_row: bool; // in the first row of lanes
var<private> bot_row: bool; // in the last row of lanes
var<private> erow: u32;
var<private> e_ok: bool;

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
    let w0 = sg_wt(0u, r0, r1);
    let w1 = sg_wt(2u, r0, r1);
    let w2 = sg_wt(4u, r0, r1);
    a0 = fma(vec4(i0), w0, fma(vec4(i1), w1, fma(vec4(i2), w2, a0)));
    a1 = fma(vec4(i1), w0, fma(vec4(i2), w1, fma(vec4(i3), w2, a1)));
    a2 = fma(vec4(i2), w0, fma(vec4(i3), w1, fma(vec4(i4), w2, a2)));
    a3 = fma(vec4(i3), w0, fma(vec4(i4), w1, fma(vec4(i5), w2, a3)));
    let u0 = sg_wt(1u, r0, r1);
    let u1 = sg_wt(3u, r0, r1);
    let u2 = sg_wt(5u, r0, r1);
    b0 = fma(vec4(i0), u0, fma(vec4(i1), u1, fma(vec4(i2), u2, b0)));
    b1 = fma(vec4(i1), u0, fma(vec4(i2), u1, fma(vec4(i3), u2, b1)));
    b2 = fma(vec4(i2), u0, fma(vec4(i3), u1, fma(vec4(i4), u2, b2)));
    b3 = fma(vec4(i3), u0, fma(vec4(i4), u1, fma(vec4(i5), u2, b3)));
}

// Patch rows (XB = 4, 8): kernel row `ky` of input channel `ci` on the row at vec4 index `r4`
// (`ok`: whether it exists); the lane loads its 4 pixels and takes its neighbours' edge values by
// shuffles; `hval` is what this lane fetched for the patch edges (XB = 8).
fn step(ky: u32, wb: u32, r4: u32, ok: bool, hval: f32) {
    let v = select(vec4(0.0), src[r4 + x4], ok);
    var h: f32;
    if (XB == 8u) {
        h = subgroupShuffle(hval, hsrc + 2u * ky);
    } else {
        let g = src[r4 + h4];
        h = select(0.0, select(g.x, g.w, first), ok && hm);
    }
    let l = select(subgroupShuffleUp(v.w, 1u), h, first);
    let e = select(subgroupShuffleDown(v.x, 1u), h, last);
    taps(ky, wb, l, v, e);
}

// Columns (XB = 1: SG rows, 4 pixels wide; XB = 2: SG / 2 rows, 8 pixels wide, as lane pairs),
// one input channel (at tensor offset `base`; weights from vec4 `wb`):
// each lane loads its own input row segment and the values beside it, the lanes of the first and
// last rows also the row above / below the column; the rows y - 1 and y + 1 of the others come
// from the lanes XB above and below by shuffles (the side values: `sides`).
fn column(wb: u32, base: u32) {
    let o4 = (base + yc * p.w) / 4u + x4;
    let v = select(vec4(0.0), src[o4], ok1);
    var ev = vec4(0.0);
    var e4 = 0u;
    if (e_ok) {
        e4 = (base + erow * p.w) / 4u + x4;
        ev = src[e4];
    }
    let s = sides(ok1, o4, v);
    let es = sides(e_ok, e4, ev);
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
fn sides(ok: bool, o4: u32, v: vec4<f32>) -> vec2<f32> {
    if (XB == 1u) {
        var l = 0.0;
        var r = 0.0;
        if (ok && hl_ok) {
            l = src[o4 - 1u].w;
        }
        if (ok && hr_ok) {
            r = src[o4 + 1u].x;
        }
        return vec2(l, r);
    }
    var h = 0.0;
    if (ok && h_ok) {
        h = src[select(o4 + 1u, o4 - 1u, first)][select(0u, 3u, first)];
    }
    let q = subgroupShuffleXor(select(v.x, v.w, first), 1u);
    return select(vec2(q, h), vec2(h, q), first);
}

// Output channel `co` at row `y`, pixels x0..x0 + 3: bias, residual, activation.
fn store(n: u32, co: u32, y: u32, x0: u32, v_in: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    let i = ((n * p.cout + co) * p.h * p.w + y * p.w + x0) / 4u;
    var v = v_in + vec4(aux[co]);
    if (p.has_add == 1u) {
        v += addend[i];
    }
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    let s = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
    dst[i] = vec4(
        apply_act(v.x, p.act, a, b, s),
        apply_act(v.y, p.act, a, b, s),
        apply_act(v.z, p.act, a, b, s),
        apply_act(v.w, p.act, a, b, s),
    );
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
    let hw = p.h * p.w;
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

    a0 = vec4(0.0);
    a1 = vec4(0.0);
    a2 = vec4(0.0);
    a3 = vec4(0.0);
    b0 = vec4(0.0);
    b1 = vec4(0.0);
    b2 = vec4(0.0);
    b3 = vec4(0.0);

    first = xb == 0u;
    last = xb == XB - 1u;
    h_ok = select(hr_ok, hl_ok, first);
    let cin = p.cin;
    if (XB <= 2u) {
        for (var c = 0u; c < cin; c++) {
            column((g * cin + c) * 18u, (n * cin + c) * hw);
        }
    } else {
        for (var ci = 0u; ci < cin; ci++) {
            let wb = (g * cin + ci) * 18u;
            let base = (n * cin + ci) * hw;
            // XB = 8: the patch edges of the three rows, scalar loads taken by the fetching lanes.
            var hval = 0.0;
            if (XB == 8u && hm8) {
                let i = (base + hrow * p.w) / 4u + hc4;
                if (hright) {
                    hval = src[i].x;
                } else {
                    hval = src[i].w;
                }
            }
            step(0u, wb, (base + rtop * p.w) / 4u, ok0, hval);
            step(1u, wb, (base + yc * p.w) / 4u, ok1, hval);
            step(2u, wb, (base + rbot * p.w) / 4u, ok2, hval);
        }
    }
    if (!inside) {
        return;
    }
    let co = g * 8u;
    for (var k = 0u; k < 8u; k++) {
        store(n, co + k, y, x0, sg_channel(k));
    }
}
