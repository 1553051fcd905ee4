// Shared by the int8 kernels (prepended after a dot4i8 variant).
//
// Activations: 4 channels of one pixel in one u32 (channel 4g + k in byte k), planes
// [n][c/4][h+2][w+2] with a border of the zero point. Weights: 4 input channels of one output
// channel and tap in one u32, signed bytes. Activations are uint8: `dot4i8(x ^ FLIP, w)` is
// Σ (x − 128) · w, and the host adds 128 · Σw back into the bias.

const FLIP: u32 = 0x80808080u;

// The dot products of one activation word with the words of 4 output channels.
fn dot4x4(x: u32, w: vec4<u32>) -> vec4<i32> {
    return vec4<i32>(dot4i8(x, w.x), dot4i8(x, w.y), dot4i8(x, w.z), dot4i8(x, w.w));
}

// int32 → f32 rounded to nearest even on every implementation: both halves convert exactly, the
// product by 65536 is exact, and the one addition rounds (an FMA gives the same result).
fn exact_f32(v: vec4<i32>) -> vec4<f32> {
    return vec4<f32>(v >> vec4<u32>(16u)) * 65536.0 + vec4<f32>(v & vec4<i32>(0xFFFF));
}

// The requantization rule of the CPU kernels (`cpu::int8::kernels::requantize`), for the 4
// channels of one output word, packed.
fn requant4(acc: vec4<i32>, bias: vec4<i32>, mult: vec4<f32>, zero: i32, lo: i32) -> u32 {
    let v = clamp(exact_f32(acc + bias) * mult, vec4<f32>(-512.0), vec4<f32>(512.0));
    let q = vec4<u32>(clamp(vec4<i32>(round(v)) + vec4<i32>(zero), vec4<i32>(lo), vec4<i32>(255)));
    return q.x | (q.y << 8u) | (q.z << 16u) | (q.w << 24u);
}
