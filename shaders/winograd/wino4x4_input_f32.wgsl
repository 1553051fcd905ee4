// Winograd F(4×4, 3×3), step 1 of 3: the input transform V = Bᵀ d B of every 6 × 6 input patch
// d (rows 4ty − 1 ..= 4ty + 4, columns 4tx − 1 ..= 4tx + 4, zero outside the image) of one source
// tensor, NCHW float32 (planes `plane_stride` apart; h and w multiples of 4).
// Tiles are numbered in raster order over (image, tile row, tile column); one dispatch handles the
// tiles of a chunk of whole tile rows, from flattened tile row `r0`. Output: the scratch matrix
// V[(ξ · cinp + ci0 + ci) · tstride + t] for the 36 frequencies ξ = 6i + k, tile t of the chunk.
// One invocation per (tile, input channel): 18 vec4 loads, 36 stores.

struct Params {
    cin: u32,     // channels of this source (0: zero V's padding channels instead)
    ci0: u32,     // its first channel in V (the skip's channels come first)
    cinp: u32,    // channels of V (padded)
    h: u32,
    w: u32,
    r0: u32,      // first tile row of the chunk (over image × tile rows)
    tiles: u32,   // tiles in the chunk
    tstride: u32, // tiles between V's rows (a multiple of the GEMM's block)
}

@group(0) @binding(0) var<uniform> p: Params;
// Both live in the activation arena, which several bindings alias: all read_write.
@group(0) @binding(1) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;

override WG: u32 = 64u;

// Bᵀ applied to a column of 6 (each lane of the vectors a separate column).
fn bt4(r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, r4: vec4<f32>, r5: vec4<f32>) -> array<vec4<f32>, 6> {
    return array(
        4.0 * r0 - 5.0 * r2 + r4,
        -4.0 * (r1 + r2) + r3 + r4,
        4.0 * (r1 - r2) - r3 + r4,
        2.0 * (r3 - r1) - r2 + r4,
        2.0 * (r1 - r3) - r2 + r4,
        4.0 * r1 - 5.0 * r3 + r5,
    );
}

fn bt2(r0: vec2<f32>, r1: vec2<f32>, r2: vec2<f32>, r3: vec2<f32>, r4: vec2<f32>, r5: vec2<f32>) -> array<vec2<f32>, 6> {
    return array(
        4.0 * r0 - 5.0 * r2 + r4,
        -4.0 * (r1 + r2) + r3 + r4,
        4.0 * (r1 - r2) - r3 + r4,
        2.0 * (r3 - r1) - r2 + r4,
        2.0 * (r1 - r3) - r2 + r4,
        4.0 * r1 - 5.0 * r3 + r5,
    );
}

// One patch row: the tile's 4 columns (`c`), and the columns left and right of it (`s`).
struct Row {
    c: vec4<f32>,
    s: vec2<f32>,
}

// Patch row `y` (zero outside the image) of the plane at vec4 `base`, tile column `tx`.
fn patch_row(base: u32, y: i32, tx: u32) -> Row {
    if (y < 0 || y >= i32(p.h)) {
        return Row(vec4(0.0), vec2(0.0));
    }
    let w4 = p.w / 4u;
    let row = base + u32(y) * w4 + tx;
    var l = 0.0;
    var r = 0.0;
    if (tx > 0u) {
        l = src[row - 1u].w;
    }
    if (tx + 1u < w4) {
        r = src[row + 1u].x;
    }
    return Row(src[row], vec2(l, r));
}

// One row of Bᵀ d (patch columns d0 = s.x, d1..d4 = c, d5 = s.y) through Bᵀ along x, stored as
// frequencies 6i .. 6i + 5 from V index `o` (`step` apart).
fn store_row(o: u32, step: u32, c: vec4<f32>, s: vec2<f32>) {
    let d0 = s.x;
    let d1 = c.x;
    let d2 = c.y;
    let d3 = c.z;
    let d4 = c.w;
    let d5 = s.y;
    v[o] = 4.0 * d0 - 5.0 * d2 + d4;
    v[o + step] = -4.0 * (d1 + d2) + d3 + d4;
    v[o + 2u * step] = 4.0 * (d1 - d2) - d3 + d4;
    v[o + 3u * step] = 2.0 * (d3 - d1) - d2 + d4;
    v[o + 4u * step] = 2.0 * (d1 - d3) - d2 + d4;
    v[o + 5u * step] = 4.0 * d1 - 5.0 * d3 + d5;
}

// Straight-line code throughout (no loops, no dynamically indexed arrays): SwiftShader does not
// unroll loops, and the version with loops over the rows took 3.5–4.4× as long there.
@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Flat over (channel, tile), folded into y past the per-dimension limit: layers with few
    // tiles still fill whole workgroups.
    let i = gid.x + gid.y * nwg.x * WG;
    // A source of no channels zero-fills V's padding channels, ci0 .. cinp.
    let channels = select(p.cin, p.cinp - p.ci0, p.cin == 0u);
    if (i >= p.tiles * channels) {
        return;
    }
    let t = i % p.tiles;
    let ci = i / p.tiles;
    let step = p.cinp * p.tstride;
    let o = (p.ci0 + ci) * p.tstride + t;
    if (p.cin == 0u) {
        for (var k = 0u; k < 36u; k++) {
            v[o + k * step] = 0.0;
        }
        return;
    }
    let tile = wino_tile(t, p.r0, p.h, p.w);
    let n = tile.x;
    let ty = tile.y;
    let tx = tile.z;
    let base = (n * p.cin + ci) * plane_stride(p.h * p.w) / 4u;
    let y0 = i32(4u * ty) - 1;
    let q0 = patch_row(base, y0, tx);
    let q1 = patch_row(base, y0 + 1, tx);
    let q2 = patch_row(base, y0 + 2, tx);
    let q3 = patch_row(base, y0 + 3, tx);
    let q4 = patch_row(base, y0 + 4, tx);
    let q5 = patch_row(base, y0 + 5, tx);
    // Down the columns: patch columns 1–4 (c) and 0, 5 (s); then each row along x.
    let vc = bt4(q0.c, q1.c, q2.c, q3.c, q4.c, q5.c);
    let vs = bt2(q0.s, q1.s, q2.s, q3.s, q4.s, q5.s);
    store_row(o, step, vc[0], vs[0]);
    store_row(o + 6u * step, step, vc[1], vs[1]);
    store_row(o + 12u * step, step, vc[2], vs[2]);
    store_row(o + 18u * step, step, vc[3], vs[3]);
    store_row(o + 24u * step, step, vc[4], vs[4]);
    store_row(o + 30u * step, step, vc[5], vs[5]);
}
