// The epilogue store of the layer graph's subgroup conv kernels on dense NCHW rows: 4 pixels of
// output channel `co` (`v`, before bias) at row `oy`, columns `ox0 ..< ox0 + 4` (those inside
// the row), as `act(v + bias + add)`. Prepended by `shaders::compose` to the kernels that call
// `store_px4`; they bind `dst` and `addend` (array<f32>), `aux` (bias, then PRelu slopes) and
// a uniform `p` with cout, oh, ow, has_add and the activation words (act, act_a, act_b,
// slope_off, slope_per_ch).
fn store_px4(n: u32, co: u32, oy: u32, ox0: u32, v_in: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    let base = ((n * p.cout + co) * p.oh + oy) * p.ow;
    let a = bitcast<f32>(p.act_a);
    let b = bitcast<f32>(p.act_b);
    let bias = aux[co];
    let s = aux[p.slope_off + select(0u, co, p.slope_per_ch == 1u)];
    for (var j = 0u; j < 4u; j++) {
        let ox = ox0 + j;
        if (ox < p.ow) {
            var v = v_in[j] + bias;
            if (p.has_add == 1u) {
                v += addend[base + ox];
            }
            dst[base + ox] = apply_act(v, p.act, a, b, s);
        }
    }
}
