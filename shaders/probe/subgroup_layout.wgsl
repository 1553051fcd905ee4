// Whether a workgroup of SG invocations runs as one full subgroup of SG lanes, numbered 0 .. SG - 1,
// whose shuffles reach their neighbours: what the subgroup kernels (conv/*_sg_f32) rely on and
// neither Vulkan nor WebGPU promises. Each invocation writes 1 where all of that holds for it.

@group(0) @binding(0) var<storage, read_write> ok: array<u32>;

override SG: u32 = 8u;

@compute @workgroup_size(SG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
) {
    let lanes = subgroupAdd(1u);
    let up = subgroupShuffleUp(lane, 1u);
    let down = subgroupShuffleDown(lane, 1u);
    let far = subgroupShuffle(lane, SG - 1u);
    let good = size == SG && lanes == SG && lane < SG && far == SG - 1u
        && (lane == 0u || up == lane - 1u) && (lane == SG - 1u || down == lane + 1u);
    ok[wid.x * SG + li] = select(0u, 1u, good);
}
