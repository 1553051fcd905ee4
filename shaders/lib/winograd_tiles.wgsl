// Winograd F(4×4, 3×3) tiles (`gpu::winograd`): 4 × 4 output pixels, numbered in raster order over
// (image, tile row, tile column) of an h × w layer (multiples of 4); a chunk starts at tile row r0
// of that order. Tile t of the chunk → (image, tile row, tile column). Prepended by
// `shaders::compose` to the kernels that call it.
fn wino_tile(t: u32, r0: u32, h: u32, w: u32) -> vec3<u32> {
    let tx_n = w / 4u;
    let ty_n = h / 4u;
    let r = r0 + t / tx_n;
    return vec3(r / ty_n, r % ty_n, t % tx_n);
}
