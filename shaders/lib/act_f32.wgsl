// Activation epilogue of the layer-graph kernels (`shaders/graph/`), the codes of
// `gpu::graph::act_code`: 0 none, 1 relu, 2 leaky relu (a), 3 sigmoid, 4 tanh, 5 clip (a, b),
// 6 prelu (`slope`, read by the caller for the channel).
fn apply_act(v: f32, code: u32, a: f32, b: f32, slope: f32) -> f32 {
    switch code {
        case 1u: { return max(v, 0.0); }
        case 2u: { return select(v, v * a, v < 0.0); }
        case 3u: { return 1.0 / (1.0 + exp(-v)); }
        // tanh(±15) is ±1 in f32; the clamp keeps exp-based tanh from inf / inf.
        case 4u: { return tanh(clamp(v, -15.0, 15.0)); }
        case 5u: { return min(max(v, a), b); }
        case 6u: { return select(v, v * slope, v < 0.0); }
        default: { return v; }
    }
}

// The linear invocation index of a 1-D problem dispatched as a 2-D grid of WG-wide workgroups
// (more than 65535 workgroups need the second dimension).
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg + lid;
}
