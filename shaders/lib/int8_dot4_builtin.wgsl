// int8 dot product of 4 packed lanes through WGSL's packed_4x8_integer_dot_product extension
// (hardware dot-product instructions where the device has them). Prepended to the int8 kernels
// where the implementation has the extension (`wgsl_language_features`).
requires packed_4x8_integer_dot_product;

fn dot4i8(a: u32, b: u32) -> i32 {
    return dot4I8Packed(a, b);
}
