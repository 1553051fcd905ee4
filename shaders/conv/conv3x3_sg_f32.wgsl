// 3×3 convolution, padding 1, stride 1, NCHW float32, BatchNorm folded, ReLU fused, the skip
// concatenation read in place from `src_a` then `src_b` (as conv3x3_bn_relu_f32), for adapters
// with subgroups of one fixed size and rows whose width is a multiple of 4.
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
// Mapping: a subgroup covers XB × (SG / XB) invocations (XB along x, each 4 pixels); a workgroup
// of WG invocations (the host uses one subgroup: small deep layers keep every lane busy) covers
// 4·XB pixels × WG / XB rows. Positions come from `subgroup_id` and `subgroup_invocation_id`, so
// the shuffles are right however the hardware numbers its lanes.
//
// Weights grouped by 8 output channels: vec4 index ((g * cin + ci) * 9 + tap) * 2 + j holds
// channels 8g + 4j ..+ 4, so one channel's 18 vec4s are contiguous (lanes load neighbouring
// vec4s, not 9 scattered rows).

struct Params {
    n: u32,
    cin_a: u32,
    cin_b: u32,
    cout: u32,
    h: u32,
    w: u32,
    relu: u32,
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
// Invocations along x per subgroup row (a power of two, 2 ≤ XB ≤ SG).
override XB: u32 = 8u;
override WG: u32 = 64u;

// Accumulators: a* output channels 0–3, b* 4–7, for the 4 pixels.
var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;
var<private> b0: vec4<f32>;
var<private> b1: vec4<f32>;
var<private> b2: vec4<f32>;
var<private> b3: vec4<f32>;

// Weight vec4 `q` (tap * 2 + j) of the channel being processed: lane q % SG of register q / SG.
fn wt(q: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>) -> vec4<f32> {
    let k = q / SG;
    let r = select(select(r2, r1, k == 1u), r0, k == 0u);
    return subgroupShuffle(r, q % SG);
}

// The 3 taps of kernel row `ky` on the 6-value input row segment i0..i5.
fn row(
    ky: u32,
    i0: f32, i1: f32, i2: f32, i3: f32, i4: f32, i5: f32,
    r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>,
) {
    let q = ky * 6u;
    let w0 = wt(q, r0, r1, r2);
    let w1 = wt(q + 2u, r0, r1, r2);
    let w2 = wt(q + 4u, r0, r1, r2);
    a0 = fma(vec4(i0), w0, fma(vec4(i1), w1, fma(vec4(i2), w2, a0)));
    a1 = fma(vec4(i1), w0, fma(vec4(i2), w1, fma(vec4(i3), w2, a1)));
    a2 = fma(vec4(i2), w0, fma(vec4(i3), w1, fma(vec4(i4), w2, a2)));
    a3 = fma(vec4(i3), w0, fma(vec4(i4), w1, fma(vec4(i5), w2, a3)));
    let u0 = wt(q + 1u, r0, r1, r2);
    let u1 = wt(q + 3u, r0, r1, r2);
    let u2 = wt(q + 5u, r0, r1, r2);
    b0 = fma(vec4(i0), u0, fma(vec4(i1), u1, fma(vec4(i2), u2, b0)));
    b1 = fma(vec4(i1), u0, fma(vec4(i2), u1, fma(vec4(i3), u2, b1)));
    b2 = fma(vec4(i2), u0, fma(vec4(i3), u1, fma(vec4(i4), u2, b2)));
    b3 = fma(vec4(i3), u0, fma(vec4(i4), u1, fma(vec4(i5), u2, b3)));
}

// Vec4 `i` of input channel `ci` (of `src_a`, then `src_b`), relative to that channel's tensor.
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
    if (p.relu != 0u) {
        v = max(v, vec4(0.0));
    }
    dst[(((n * p.cout + co) * p.h + y) * p.w + x0) / 4u] = v;
}

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let xb = lane % XB;
    let x0 = (wid.x * XB + xb) * 4u;
    let y = wid.y * (WG / XB) + sid * (SG / XB) + lane / XB;
    let n = wid.z / p.cog;
    let g = wid.z % p.cog;
    let inside = x0 < p.w && y < p.h;
    let gv = g * 2u;
    let hw = p.h * p.w;
    // Addresses are clamped into the image so that every lane can load (no lane leaves before
    // the shuffles); what lies outside is zeroed.
    let x4 = min(x0, p.w - 4u) / 4u;
    // Rows y - 1, y, y + 1: clamped, and whether they exist.
    let yc = min(y, p.h - 1u);
    let rtop = select(0u, yc - 1u, yc > 0u);
    let rbot = min(yc + 1u, p.h - 1u);
    let rv0 = y < p.h && y > 0u;
    let rv1 = y < p.h;
    let rv2 = y + 1u < p.h;
    let ok0 = inside && rv0;
    let ok1 = inside && rv1;
    let ok2 = inside && rv2;
    let w4 = p.w / 4u;
    // XB < 8: the edge column this lane needs, left of the patch row, right of it, or (unused)
    // its own; in vec4 units.
    let hxi = select(select(i32(x0), i32(x0) + 4, xb == XB - 1u), i32(x0) - 1, xb == 0u);
    let hm = hxi >= 0 && hxi < i32(p.w);
    let h4 = u32(clamp(hxi, 0, i32(p.w) - 1)) / 4u;
    // XB = 8: lane k < 6 of a patch row fetches the edge value of row k / 2, left of the patch
    // (k even) or right of it (k odd), for the lanes at the edges.
    let hr = min(xb / 2u, 2u);
    let hright = (xb & 1u) == 1u;
    let hrow = select(select(rbot, yc, hr == 1u), rtop, hr == 0u);
    let hrv = select(select(rv2, rv1, hr == 1u), rv0, hr == 0u);
    let hci = select(i32(wid.x * XB) - 1, i32((wid.x + 1u) * XB), hright);
    let hm8 = xb < 6u && hrv && hci >= 0 && hci < i32(w4);
    let hc4 = u32(clamp(hci, 0, i32(w4) - 1));
    // The first lane of this patch row, and which of a fetching pair this lane reads.
    let pb = select((lane / XB) * XB, 0u, SG == XB);
    let side = select(0u, 1u, xb == XB - 1u);

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

    let first = xb == 0u;
    let last = xb == XB - 1u;
    let cin = p.cin_a + p.cin_b;
    for (var ci = 0u; ci < cin; ci++) {
        // This channel's 18 weight vec4s, spread over the lanes.
        let wb = (g * cin + ci) * 18u;
        let r0 = weights[wb + min(lane, 17u)];
        var r1 = vec4(0.0);
        var r2 = vec4(0.0);
        if (SG < 18u) {
            r1 = weights[wb + min(SG + lane, 17u)];
        }
        // (A load inside a branch costs only the lanes that take it on SIMD-style devices.)
        if (2u * SG < 18u && 2u * SG + lane < 18u) {
            r2 = weights[wb + 2u * SG + lane];
        }
        let base = select(
            (n * p.cin_b + ci - p.cin_a) * hw,
            (n * p.cin_a + ci) * hw,
            ci < p.cin_a,
        );
        let t4 = (base + rtop * p.w) / 4u;
        let m4 = (base + yc * p.w) / 4u;
        let b4 = (base + rbot * p.w) / 4u;
        let v0 = select(vec4(0.0), ld(ci, t4 + x4), ok0);
        let v1 = select(vec4(0.0), ld(ci, m4 + x4), ok1);
        let v2 = select(vec4(0.0), ld(ci, b4 + x4), ok2);
        // This lane's edge value of each row (meaningful at the patch edges only).
        var h0: f32;
        var h1: f32;
        var h2: f32;
        if (XB == 8u) {
            // Scalar loads, taken by the fetching lanes only.
            var hval = 0.0;
            if (hm8) {
                let i = (base + hrow * p.w) / 4u + hc4;
                if (hright) {
                    hval = ld_x(ci, i);
                } else {
                    hval = ld_w(ci, i);
                }
            }
            h0 = subgroupShuffle(hval, pb + side);
            h1 = subgroupShuffle(hval, pb + 2u + side);
            h2 = subgroupShuffle(hval, pb + 4u + side);
        } else {
            let g0 = ld(ci, t4 + h4);
            let g1 = ld(ci, m4 + h4);
            let g2 = ld(ci, b4 + h4);
            h0 = select(0.0, select(g0.x, g0.w, first), ok0 && hm);
            h1 = select(0.0, select(g1.x, g1.w, first), ok1 && hm);
            h2 = select(0.0, select(g2.x, g2.w, first), ok2 && hm);
        }
        let l0 = select(subgroupShuffleUp(v0.w, 1u), h0, first);
        let e0 = select(subgroupShuffleDown(v0.x, 1u), h0, last);
        let l1 = select(subgroupShuffleUp(v1.w, 1u), h1, first);
        let e1 = select(subgroupShuffleDown(v1.x, 1u), h1, last);
        let l2 = select(subgroupShuffleUp(v2.w, 1u), h2, first);
        let e2 = select(subgroupShuffleDown(v2.x, 1u), h2, last);
        row(0u, l0, v0.x, v0.y, v0.z, v0.w, e0, r0, r1, r2);
        row(1u, l1, v1.x, v1.y, v1.z, v1.w, e1, r0, r1, r2);
        row(2u, l2, v2.x, v2.y, v2.z, v2.w, e2, r0, r1, r2);
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
