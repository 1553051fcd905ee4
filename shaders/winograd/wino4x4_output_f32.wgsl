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

// Frequencies 6i .. 6i + 5 of one (tile, channel) from M index `o` (`step` apart), as columns
// 0–3 and 4–5.
struct Row {
    a: vec4<f32>,
    b: vec2<f32>,
}

fn load_row(o: u32, step: u32) -> Row {
    return Row(
        vec4(m[o], m[o + step], m[o + 2u * step], m[o + 3u * step]),
        vec2(m[o + 4u * step], m[o + 5u * step]),
    );
}

// One row of Aᵀ M through Aᵀ along x (columns `a`, `b`): 4 output pixels, plus the bias, ReLU
// where flagged.
fn out_row(a: vec4<f32>, b: vec2<f32>, bv: f32) -> vec4<f32> {
    let s12 = a.y + a.z;
    let d12 = a.y - a.z;
    let s34 = a.w + b.x;
    let d34 = a.w - b.x;
    var y = vec4(a.x + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + b.y) + bv;
    if ((p.flags & 1u) != 0u) {
        y = max(y, vec4(0.0));
    }
    return y;
}

// Straight-line code throughout (no loops, no dynamically indexed arrays): SwiftShader does not
// unroll loops, and the version with loops over the rows took 3.2× as long there.
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
    let mi = co * p.tstride + t;
    let q0 = load_row(mi, step);
    let q1 = load_row(mi + 6u * step, step);
    let q2 = load_row(mi + 12u * step, step);
    let q3 = load_row(mi + 18u * step, step);
    let q4 = load_row(mi + 24u * step, step);
    let q5 = load_row(mi + 30u * step, step);
    // Down the columns, then along each of the 4 rows.
    let ya = at4(q0.a, q1.a, q2.a, q3.a, q4.a, q5.a);
    let yb = at2(q0.b, q1.b, q2.b, q3.b, q4.b, q5.b);
    let tile = wino_tile(t, p.r0, p.h, p.w);
    let n = tile.x;
    let ty = tile.y;
    let tx = tile.z;
    let bv = bias[co];
    let w4 = p.w / 4u;
    let o = ((n * p.cout + co) * plane_stride(p.h * p.w) + 4u * ty * p.w) / 4u + tx;
    dst[o] = out_row(ya[0], yb[0], bv);
    dst[o + w4] = out_row(ya[1], yb[1], bv);
    dst[o + 2u * w4] = out_row(ya[2], yb[2], bv);
    dst[o + 3u * w4] = out_row(ya[3], yb[3], bv);
}
