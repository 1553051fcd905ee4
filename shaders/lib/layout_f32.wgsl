// The float32 activation layout of the arena: NCHW, channel planes `plane_stride(h * w)` floats
// apart, one 64-byte line more than `h * w` where a plane is a whole number of 4 KiB pages, so
// that the same pixel of consecutive channels does not map to one cache set. The host's rule is
// `plan::plane_stride`.
fn plane_stride(hw: u32) -> u32 {
    return select(hw, hw + 16u, hw % 1024u == 0u);
}
