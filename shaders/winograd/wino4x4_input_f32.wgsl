// Winograd F(4×4, 3×3), step 1 of 3: the input transform V = Bᵀ d B of every 6 × 6 input patch
// d (rows 4ty − 1 ..= 4ty + 4, columns 4tx − 1 ..= 4tx + 4, zero outside the image) of one source
// tensor, NCHW float32 (planes `plane_stride` apart; h and w multiples of 4).
// Tiles are numbered in raster order over (image, tile row, tile column); one dispatch handles the
// tiles of a chunk of whole tile rows, from flattened tile row `r0`. Output: the scratch matrix
// V[(ξ · cinp + ci0 + ci) · tstride + t] for the 36 frequencies ξ = 6i + k, tile t of the chunk.
// One invocation per (tile, input channel): 18 vec4 loads, 36 stores.

struct Params {
    cin: u32,     // channels of this source
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

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Flat over (channel, tile), folded into y past the per-dimension limit: layers with few
    // tiles still fill whole workgroups.
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.tiles * p.cin) {
        return;
    }
    let t = i % p.tiles;
    let ci = i / p.tiles;
    let tx_n = p.w / 4u;
    let ty_n = p.h / 4u;
    let r = p.r0 + t / tx_n;
    let tx = t % tx_n;
    let ty = r % ty_n;
    let n = r / ty_n;
    let w4 = p.w / 4u;
    let base = (n * p.cin + ci) * plane_stride(p.h * p.w) / 4u;
    // Each patch row: the vec4 of the tile's 4 columns (c), the column left of it (.w of the vec4
    // before) and right of it (.x of the vec4 after); as columns of 6 rows, 4 + 2 wide.
    var c: array<vec4<f32>, 6>;
    var s: array<vec2<f32>, 6>;
    for (var i = 0u; i < 6u; i++) {
        let y = i32(4u * ty + i) - 1;
        if (y < 0 || y >= i32(p.h)) {
            c[i] = vec4(0.0);
            s[i] = vec2(0.0);
            continue;
        }
        let row = base + u32(y) * w4 + tx;
        c[i] = src[row];
        var l = 0.0;
        var rr = 0.0;
        if (tx > 0u) {
            l = src[row - 1u].w;
        }
        if (tx + 1u < w4) {
            rr = src[row + 1u].x;
        }
        s[i] = vec2(l, rr);
    }
    // Down the columns: patch columns 1–4 (c) and 0, 5 (s).
    let vc = bt4(c[0], c[1], c[2], c[3], c[4], c[5]);
    let vs = bt2(s[0], s[1], s[2], s[3], s[4], s[5]);
    // Along each row: the row (s.x, c.x, c.y, c.z, c.w, s.y) through Bᵀ.
    let ts = p.tstride;
    var o = (p.ci0 + ci) * ts + t;
    let step = p.cinp * ts;
    for (var i = 0u; i < 6u; i++) {
        let d0 = vs[i].x;
        let d1 = vc[i].x;
        let d2 = vc[i].y;
        let d3 = vc[i].z;
        let d4 = vc[i].w;
        let d5 = vs[i].y;
        v[o] = 4.0 * d0 - 5.0 * d2 + d4;
        o += step;
        v[o] = -4.0 * (d1 + d2) + d3 + d4;
        o += step;
        v[o] = 4.0 * (d1 - d2) - d3 + d4;
        o += step;
        v[o] = 2.0 * (d3 - d1) - d2 + d4;
        o += step;
        v[o] = 2.0 * (d1 - d3) - d2 + d4;
        o += step;
        v[o] = 4.0 * d1 - 5.0 * d3 + d5;
        o += step;
    }
}
