// 3×3 convolution, padding 1, stride 1, NCHW float32, with BatchNorm folded into the weights and
// bias and ReLU fused in the epilogue. The input channels are those of `src_a` followed by those
// of `src_b`: the decoder's skip concatenation is read in place, never built.
//
// Each invocation computes a 4-channel × 4-pixel (along x) register block: per input channel and
// kernel row it loads 6 input values and 3 vec4 weights for 48 multiply-adds.
// Weights: vec4 over output channels, index ((ci * 9 + ky * 3 + kx) * cog + g), zero-padded
// to cog = ceil(cout / 4) groups.

struct Params {
    n: u32,
    cin_a: u32,
    cin_b: u32,
    cout: u32,
    h: u32,
    w: u32,
    relu: u32,
    cog: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Activations live in one arena that several bindings alias, so all are read_write.
@group(0) @binding(1) var<storage, read_write> src_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> src_b: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

// Input value of channel `ci` (over a then b) at (y, x); zero outside the image.
fn ld(base_a: u32, base_b: u32, ci: u32, y: i32, x: i32) -> f32 {
    if (y < 0 || y >= i32(p.h) || x < 0 || x >= i32(p.w)) {
        return 0.0;
    }
    let off = u32(y) * p.w + u32(x);
    if (ci < p.cin_a) {
        return src_a[base_a + ci * p.h * p.w + off];
    }
    return src_b[base_b + (ci - p.cin_a) * p.h * p.w + off];
}

fn store(n: u32, g: u32, y: u32, x: u32, v_in: vec4<f32>) {
    if (x >= p.w) {
        return;
    }
    var v = v_in;
    if (p.relu != 0u) {
        v = max(v, vec4<f32>(0.0));
    }
    let hw = p.h * p.w;
    let base = (n * p.cout + g * 4u) * hw + y * p.w + x;
    let left = p.cout - g * 4u;
    dst[base] = v.x;
    if (left > 1u) { dst[base + hw] = v.y; }
    if (left > 2u) { dst[base + 2u * hw] = v.z; }
    if (left > 3u) { dst[base + 3u * hw] = v.w; }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x0 = gid.x * 4u;
    let y = gid.y;
    let n = gid.z / p.cog;
    let g = gid.z % p.cog;
    if (x0 >= p.w || y >= p.h || n >= p.n) {
        return;
    }
    let hw = p.h * p.w;
    let base_a = n * p.cin_a * hw;
    let base_b = n * p.cin_b * hw;
    let xi = i32(x0);

    // Accumulators start at the folded bias.
    let b = bias[g];
    var acc0 = b;
    var acc1 = b;
    var acc2 = b;
    var acc3 = b;
    let cin = p.cin_a + p.cin_b;
    for (var ci = 0u; ci < cin; ci++) {
        for (var ky = 0u; ky < 3u; ky++) {
            let yy = i32(y) + i32(ky) - 1;
            // Load the 6 input values of this row.
            let v0 = ld(base_a, base_b, ci, yy, xi - 1);
            let v1 = ld(base_a, base_b, ci, yy, xi);
            let v2 = ld(base_a, base_b, ci, yy, xi + 1);
            let v3 = ld(base_a, base_b, ci, yy, xi + 2);
            let v4 = ld(base_a, base_b, ci, yy, xi + 3);
            let v5 = ld(base_a, base_b, ci, yy, xi + 4);
            // Load the 3 weight vectors (4 output channels each) of this kernel row.
            let wb = (ci * 9u + ky * 3u) * p.cog + g;
            let w0 = weights[wb];
            let w1 = weights[wb + p.cog];
            let w2 = weights[wb + 2u * p.cog];
            // Multiply-accumulate the 4×4 block.
            acc0 += v0 * w0 + v1 * w1 + v2 * w2;
            acc1 += v1 * w0 + v2 * w1 + v3 * w2;
            acc2 += v2 * w0 + v3 * w1 + v4 * w2;
            acc3 += v3 * w0 + v4 * w1 + v5 * w2;
        }
    }
    store(n, g, y, x0, acc0);
    store(n, g, y, x0 + 1u, acc1);
    store(n, g, y, x0 + 2u, acc2);
    store(n, g, y, x0 + 3u, acc3);
}
