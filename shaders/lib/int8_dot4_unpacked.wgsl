// int8 dot product of 4 packed lanes, unpacked by shifts: the fallback for implementations
// without the packed_4x8_integer_dot_product extension. Same results (exact integer sums).

fn unpack_i8x4(a: u32) -> vec4<i32> {
    return vec4<i32>(
        bitcast<i32>(a << 24u) >> 24u,
        bitcast<i32>(a << 16u) >> 24u,
        bitcast<i32>(a << 8u) >> 24u,
        bitcast<i32>(a) >> 24u,
    );
}

fn dot4i8(a: u32, b: u32) -> i32 {
    return dot(unpack_i8x4(a), unpack_i8x4(b));
}
