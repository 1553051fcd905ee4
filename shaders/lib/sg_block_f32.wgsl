// The register block of the layer graph's subgroup conv kernels (`shaders/graph/*_sg_f32.wgsl`):
// 4 output pixels × 8 output channels per invocation, a0–a3 holding channels 0–3 of pixels 0–3
// and b0–b3 channels 4–7, and the weights every lane needs loaded by the lanes together and
// handed out by `subgroupShuffle`. Prepended by `shaders::compose` to the kernels that call
// `sg_fma`; they declare `override SG` (the adapter's fixed subgroup size).

var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;
var<private> b0: vec4<f32>;
var<private> b1: vec4<f32>;
var<private> b2: vec4<f32>;
var<private> b3: vec4<f32>;

// Weight vec4 `q` (0 to 2 SG − 1) of what the lanes loaded: lane q % SG of r0 (q < SG) or r1.
fn sg_wt(q: u32, r0: vec4<f32>, r1: vec4<f32>) -> vec4<f32> {
    return subgroupShuffle(select(r1, r0, q < SG), q % SG);
}

// One input value per pixel (`x`, pixels 0–3) times the 8 channels' weights `w0` (0–3), `w1`
// (4–7), into the block.
fn sg_fma(x: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
    a0 = fma(vec4(x.x), w0, a0);
    a1 = fma(vec4(x.y), w0, a1);
    a2 = fma(vec4(x.z), w0, a2);
    a3 = fma(vec4(x.w), w0, a3);
    b0 = fma(vec4(x.x), w1, b0);
    b1 = fma(vec4(x.y), w1, b1);
    b2 = fma(vec4(x.z), w1, b2);
    b3 = fma(vec4(x.w), w1, b3);
}

// Output channel k (0–7) of the block: its 4 pixels.
fn sg_channel(k: u32) -> vec4<f32> {
    switch k {
        case 0u: { return vec4(a0.x, a1.x, a2.x, a3.x); }
        case 1u: { return vec4(a0.y, a1.y, a2.y, a3.y); }
        case 2u: { return vec4(a0.z, a1.z, a2.z, a3.z); }
        case 3u: { return vec4(a0.w, a1.w, a2.w, a3.w); }
        case 4u: { return vec4(b0.x, b1.x, b2.x, b3.x); }
        case 5u: { return vec4(b0.y, b1.y, b2.y, b3.y); }
        case 6u: { return vec4(b0.z, b1.z, b2.z, b3.z); }
        default: { return vec4(b0.w, b1.w, b2.w, b3.w); }
    }
}
