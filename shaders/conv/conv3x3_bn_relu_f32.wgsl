// 3×3 convolution, padding 1, stride 1, NCHW float32 (planes `plane_stride` apart), with BatchNorm
// folded into the weights and bias and ReLU fused in the epilogue. The input channels are those of
// `src_a` followed by those of `src_b`: the decoder's skip concatenation is read in place, never
// built.
//
// Register blocking: each invocation computes 4 consecutive pixels of a row × CO output channels
// (CO = 4, or 8 when CO8), in named vec4 accumulators. Per input channel and kernel row it loads
// one 6-pixel input row segment and reuses it for the 3 horizontal taps.
// The output-channel block comes from the workgroup id, so every invocation of a workgroup reads
// the same weights: their addresses are uniform (one scalar load broadcast to all lanes on
// SIMD-style implementations, a broadcast from cache on GPUs).
//
// Weights: vec4 over output channels, index (ci * 9 + ky * 3 + kx) * wrow + g * CO / 4 + j, with
// wrow = cog * CO / 4 vec4 per row, zero-padded; bias likewise, index g * CO / 4 + j.
// With GROUPED (CO8 only; the layout of conv3x3_sg_f32): index ((g * cin + ci) * 9 + tap) * 2 + j.

struct Params {
    n: u32,
    cin_a: u32,
    cin_b: u32,
    cout: u32,
    h: u32,
    w: u32,
    relu: u32,
    cog: u32, // output-channel blocks of CO
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
// 8 output channels per invocation instead of 4.
override CO8: bool = true;
// Weights grouped by output-channel block (see above).
override GROUPED: bool = false;

fn store(n: u32, co0: u32, y: u32, x: u32, v_in: vec4<f32>) {
    if (x >= p.w || co0 >= p.cout) {
        return;
    }
    var v = v_in;
    if (p.relu != 0u) {
        v = max(v, vec4<f32>(0.0));
    }
    let hw = plane_stride(p.h * p.w);
    let base = (n * p.cout + co0) * hw + y * p.w + x;
    let left = p.cout - co0;
    dst[base] = v.x;
    if (left > 1u) { dst[base + hw] = v.y; }
    if (left > 2u) { dst[base + 2u * hw] = v.z; }
    if (left > 3u) { dst[base + 3u * hw] = v.w; }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let x0 = gid.x * 4u;
    let y = gid.y;
    let n = wid.z / p.cog;
    let g = wid.z % p.cog;
    if (x0 >= p.w || y >= p.h) {
        return;
    }
    let vpb = select(1u, 2u, CO8); // vec4 per output-channel block
    let wrow = p.cog * vpb;
    let gv = g * vpb;
    let hw = plane_stride(p.h * p.w);
    let base_a = n * p.cin_a * hw;
    let base_b = n * p.cin_b * hw;

    // Column offsets of the 6-pixel segment, clamped into the image; `m*` zero what is outside.
    let xi = i32(x0);
    let wm1 = i32(p.w) - 1;
    let c0 = u32(clamp(xi - 1, 0, wm1));
    let c1 = u32(clamp(xi, 0, wm1));
    let c2 = u32(clamp(xi + 1, 0, wm1));
    let c3 = u32(clamp(xi + 2, 0, wm1));
    let c4 = u32(clamp(xi + 3, 0, wm1));
    let c5 = u32(clamp(xi + 4, 0, wm1));
    let m0 = xi >= 1;
    let m2 = xi + 1 <= wm1;
    let m3 = xi + 2 <= wm1;
    let m4 = xi + 3 <= wm1;
    let m5 = xi + 4 <= wm1;

    // Accumulators start at the folded bias.
    let b0 = bias[gv];
    var a00 = b0;
    var a01 = b0;
    var a02 = b0;
    var a03 = b0;
    var b1 = vec4<f32>(0.0);
    if (CO8) {
        b1 = bias[gv + 1u];
    }
    var a10 = b1;
    var a11 = b1;
    var a12 = b1;
    var a13 = b1;

    let cin = p.cin_a + p.cin_b;
    for (var ci = 0u; ci < cin; ci++) {
        for (var ky = 0u; ky < 3u; ky++) {
            let yy = i32(y) + i32(ky) - 1;
            let rm = yy >= 0 && yy < i32(p.h);
            let row = u32(clamp(yy, 0, i32(p.h) - 1)) * p.w;
            // Load the input row segment (zero outside the image).
            var v0: f32;
            var v1: f32;
            var v2: f32;
            var v3: f32;
            var v4: f32;
            var v5: f32;
            if (ci < p.cin_a) {
                let o = base_a + ci * hw + row;
                v0 = src_a[o + c0];
                v1 = src_a[o + c1];
                v2 = src_a[o + c2];
                v3 = src_a[o + c3];
                v4 = src_a[o + c4];
                v5 = src_a[o + c5];
            } else {
                let o = base_b + (ci - p.cin_a) * hw + row;
                v0 = src_b[o + c0];
                v1 = src_b[o + c1];
                v2 = src_b[o + c2];
                v3 = src_b[o + c3];
                v4 = src_b[o + c4];
                v5 = src_b[o + c5];
            }
            // select, not a multiply by 0/1: an infinity next to the border must not become NaN.
            v0 = select(0.0, v0, rm && m0);
            v1 = select(0.0, v1, rm);
            v2 = select(0.0, v2, rm && m2);
            v3 = select(0.0, v3, rm && m3);
            v4 = select(0.0, v4, rm && m4);
            v5 = select(0.0, v5, rm && m5);
            // Multiply-accumulate the 3 taps of this kernel row.
            let wb = select(
                (ci * 9u + ky * 3u) * wrow + gv,
                ((g * cin + ci) * 9u + ky * 3u) * 2u,
                GROUPED,
            );
            let ts = select(wrow, 2u, GROUPED); // vec4 from one tap to the next
            let w0 = weights[wb];
            let w1 = weights[wb + ts];
            let w2 = weights[wb + 2u * ts];
            a00 += v0 * w0 + v1 * w1 + v2 * w2;
            a01 += v1 * w0 + v2 * w1 + v3 * w2;
            a02 += v2 * w0 + v3 * w1 + v4 * w2;
            a03 += v3 * w0 + v4 * w1 + v5 * w2;
            if (CO8) {
                let u0 = weights[wb + 1u];
                let u1 = weights[wb + ts + 1u];
                let u2 = weights[wb + 2u * ts + 1u];
                a10 += v0 * u0 + v1 * u1 + v2 * u2;
                a11 += v1 * u0 + v2 * u1 + v3 * u2;
                a12 += v2 * u0 + v3 * u1 + v4 * u2;
                a13 += v3 * u0 + v4 * u1 + v5 * u2;
            }
        }
    }
    let co = g * 4u * vpb;
    store(n, co, y, x0, a00);
    store(n, co, y, x0 + 1u, a01);
    store(n, co, y, x0 + 2u, a02);
    store(n, co, y, x0 + 3u, a03);
    if (CO8) {
        store(n, co + 4u, y, x0, a10);
        store(n, co + 4u, y, x0 + 1u, a11);
        store(n, co + 4u, y, x0 + 2u, a12);
        store(n, co + 4u, y, x0 + 3u, a13);
    }
}
