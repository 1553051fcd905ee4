// Winograd F(4×4, 3×3), step 3 of 3: the output transform Y = Aᵀ M A of each tile's 36
// products (from wino4x4_gemm_sg_f32), plus the bias (BatchNorm folded), ReLU where flagged,
// written as the tile's 4 × 4 pixels of one output channel, NCHW float32 (planes `plane_stride`
// apart; h and w multiples of 4). One invocation per (tile of the chunk, output channel).

struct Params {
    cout: u32,
    coutp: u32,
    h: u32,
    w: u32,
    r0: u32,      // first tile row of the chunk (over image × tile rows)
    tiles: u32,   // tiles in the chunk
    tstride: u32,
    flags: u32,   // bit 0: ReLU
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

override WG: u32 = 64u;

// Aᵀ applied down 6 rows (each lane of the vectors a separate column).
fn at4(r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, r4: vec4<f32>, r5: vec4<f32>) -> array<vec4<f32>, 4> {
    let s12 = r1 + r2;
    let d12 = r1 - r2;
    let s34 = r3 + r4;
    let d34 = r3 - r4;
    return array(r0 + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + r5);
}

fn at2(r0: vec2<f32>, r1: vec2<f32>, r2: vec2<f32>, r3: vec2<f32>, r4: vec2<f32>, r5: vec2<f32>) -> array<vec2<f32>, 4> {
    let s12 = r1 + r2;
    let d12 = r1 - r2;
    let s34 = r3 + r4;
    let d34 = r3 - r4;
    return array(r0 + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + r5);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Flat over (channel, tile), folded into y past the per-dimension limit: layers with few
    // tiles still fill whole workgroups.
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.tiles * p.cout) {
        return;
    }
    let t = i % p.tiles;
    let co = i / p.tiles;
    // The 6 × 6 products as rows of 4 + 2 (frequency columns 0–3 and 4–5).
    let step = p.coutp * p.tstride;
    var mi = co * p.tstride + t;
    var a: array<vec4<f32>, 6>;
    var b: array<vec2<f32>, 6>;
    for (var i = 0u; i < 6u; i++) {
        let q0 = m[mi];
        let q1 = m[mi + step];
        let q2 = m[mi + 2u * step];
        let q3 = m[mi + 3u * step];
        let q4 = m[mi + 4u * step];
        let q5 = m[mi + 5u * step];
        mi += 6u * step;
        a[i] = vec4(q0, q1, q2, q3);
        b[i] = vec2(q4, q5);
    }
    // Down the columns, then along each of the 4 rows.
    let ya = at4(a[0], a[1], a[2], a[3], a[4], a[5]);
    let yb = at2(b[0], b[1], b[2], b[3], b[4], b[5]);
    let tx_n = p.w / 4u;
    let ty_n = p.h / 4u;
    let r = p.r0 + t / tx_n;
    let tx = t % tx_n;
    let ty = r % ty_n;
    let n = r / ty_n;
    let bv = bias[co];
    var o = ((n * p.cout + co) * plane_stride(p.h * p.w) + 4u * ty * p.w) / 4u + tx;
    for (var i = 0u; i < 4u; i++) {
        let r0 = ya[i].x;
        let s12 = ya[i].y + ya[i].z;
        let d12 = ya[i].y - ya[i].z;
        let s34 = ya[i].w + yb[i].x;
        let d34 = ya[i].w - yb[i].x;
        var y = vec4(r0 + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + yb[i].y) + bv;
        if ((p.flags & 1u) != 0u) {
            y = max(y, vec4(0.0));
        }
        dst[o] = y;
        o += p.w / 4u;
    }
}
