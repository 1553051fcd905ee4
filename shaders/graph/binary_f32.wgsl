// `act(a op b)` with NumPy broadcasting over NCHW, float32: each operand is addressed through
// its own strides (0 on broadcast dims), so either may be a runtime tensor (a range of the
// arena) or a constant (a weight buffer). op: 0 add, 1 sub, 2 mul, 3 div. Dispatch: linear over
// the output in workgroups of WG.

struct Params {
    total: u32, c: u32, h: u32, w: u32,
    sa0: u32, sa1: u32, sa2: u32, sa3: u32,
    sb0: u32, sb1: u32, sb2: u32, sb3: u32,
    op: u32, act: u32, act_a: u32, act_b: u32,
    slope_off: u32, slope_per_ch: u32, same: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> lhs: array<f32>;
@group(0) @binding(3) var<storage, read_write> rhs: array<f32>;
// the PRelu slopes (read_write only because a constant operand may share its buffer: a buffer
// cannot be bound both read-only and writable in one dispatch)
@group(0) @binding(4) var<storage, read_write> aux: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid, WG);
    if (i >= p.total) {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let va = lhs[n * p.sa0 + c * p.sa1 + y * p.sa2 + x * p.sa3];
    // `same`: both operands are one tensor (x + x), bound once: WebGPU refuses two writable
    // bindings of one range.
    var vb: f32;
    if (p.same == 1u) {
        vb = lhs[n * p.sb0 + c * p.sb1 + y * p.sb2 + x * p.sb3];
    } else {
        vb = rhs[n * p.sb0 + c * p.sb1 + y * p.sb2 + x * p.sb3];
    }
    var v: f32;
    switch p.op {
        case 0u: { v = va + vb; }
        case 1u: { v = va - vb; }
        case 2u: { v = va * vb; }
        default: { v = va / vb; }
    }
    let slope = aux[p.slope_off + select(0u, c, p.slope_per_ch == 1u)];
    dst[i] = apply_act(v, p.act, bitcast<f32>(p.act_a), bitcast<f32>(p.act_b), slope);
}
