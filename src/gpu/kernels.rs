//! The compute kernels: which shader file each is, its workgroup shape, its pipeline, and how
//! weights are packed for it.

use crate::shaders;
use crate::UNetSpec;

/// Every kernel the float32 plan dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// 3×3 conv computing 4 output channels per invocation.
    Conv3x3Co4,
    /// 3×3 conv computing 8 output channels per invocation (wider layers).
    Conv3x3Co8,
    /// 3×3 conv, 4 px × 8 output channels per invocation, weights shared through subgroup
    /// shuffles (adapters with one fixed subgroup size; rows a multiple of 4 wide). The value is
    /// XB, the invocations along x per subgroup row (1: a column of SG rows; 2: a column of lane
    /// pairs, SG / 2 rows, SG ≥ 4; 4 or 8: patch rows). Weights grouped by 8 output channels
    /// (`pack_conv3x3_grouped`).
    Conv3x3Sg(u32),
    /// `Conv3x3Co8` on the grouped weights of `Conv3x3Sg`, for the layers packed for it whose
    /// rows it cannot take.
    Conv3x3Co8Grouped,
    /// Not a layer: the check behind `gpu::fixed_subgroup_size` that a workgroup of SG
    /// invocations runs as one full subgroup.
    SubgroupProbe,
    BnRelu,
    MaxPool,
    UpConv,
    /// Transposed conv, 2 input pixels × 4 taps × 4 output channels per invocation, weights
    /// shared through subgroup shuffles (adapters with one fixed subgroup size; any shape).
    /// Weights grouped by 4 output channels (`pack_upconv_grouped`).
    UpConvSg,
    Resize,
    Head,
    /// Winograd F(4×4, 3×3) (`gpu::winograd`): the input transform of a chunk of tile rows.
    WinoInput,
    /// The 36 products of the transformed weights with the transformed tiles, weights shared
    /// through subgroup shuffles (adapters with one fixed subgroup size).
    WinoGemm,
    /// The output transform, bias and ReLU.
    WinoOutput,
    /// int8 kernels (`shaders/int8/`): dense 3×3 conv, 4 px × 8 output channels per invocation.
    Conv3x3I8,
    /// Sparse int8 3×3 conv: lists of nonzero 8×4 weight blocks, 4 px × 8 channels per invocation.
    Conv3x3SparseI8,
    UpConvI8,
    MaxPoolI8,
    ResizeI8,
    /// Zero point into the borders of a packed int8 tensor.
    BorderI8,
    /// float32 logits from packed uint8 activations.
    HeadI8,
}

/// Invocations per workgroup of the element-wise kernels (WebGPU's default limit is 256).
pub(crate) const WG_LINEAR: u32 = 256;
/// Workgroup shape of conv3x3 (each invocation computes 4 pixels along x).
pub(crate) const CONV_WG: (u32, u32) = (8, 8);
/// Output pixels along x per conv3x3 invocation.
pub(crate) const CONV_PX: u32 = 4;

impl Kernel {
    pub const ALL: [Kernel; 7] = [
        Kernel::Conv3x3Co4,
        Kernel::Conv3x3Co8,
        Kernel::BnRelu,
        Kernel::MaxPool,
        Kernel::UpConv,
        Kernel::Resize,
        Kernel::Head,
    ];

    /// The kernels of the int8 plan.
    pub const INT8: [Kernel; 7] = [
        Kernel::Conv3x3I8,
        Kernel::Conv3x3SparseI8,
        Kernel::UpConvI8,
        Kernel::MaxPoolI8,
        Kernel::ResizeI8,
        Kernel::BorderI8,
        Kernel::HeadI8,
    ];

    /// Path under `shaders/` without extension.
    pub fn shader(self) -> &'static str {
        match self {
            Kernel::Conv3x3I8 => "int8/conv3x3_i8",
            Kernel::Conv3x3SparseI8 => "int8/conv3x3_sparse_i8",
            Kernel::UpConvI8 => "int8/upconv2x2_i8",
            Kernel::MaxPoolI8 => "int8/maxpool2x2_i8",
            Kernel::ResizeI8 => "int8/resize_i8",
            Kernel::BorderI8 => "int8/border_i8",
            Kernel::HeadI8 => "int8/head_i8",
            Kernel::Conv3x3Co4 | Kernel::Conv3x3Co8 | Kernel::Conv3x3Co8Grouped => {
                "conv/conv3x3_bn_relu_f32"
            }
            Kernel::Conv3x3Sg(_) => "conv/conv3x3_sg_f32",
            Kernel::BnRelu => "norm/bn_relu_f32",
            Kernel::MaxPool => "pool/maxpool2x2_f32",
            Kernel::UpConv => "conv/upconv2x2_f32",
            Kernel::UpConvSg => "conv/upconv2x2_sg_f32",
            Kernel::SubgroupProbe => "probe/subgroup_layout",
            Kernel::Resize => "resize/bilinear_ac_f32",
            Kernel::Head => "conv/conv1x1_f32",
            Kernel::WinoInput => "winograd/wino4x4_input_f32",
            Kernel::WinoGemm => "winograd/wino4x4_gemm_sg_f32",
            Kernel::WinoOutput => "winograd/wino4x4_output_f32",
        }
    }

    /// The 3×3 conv variant for a layer: 8 output channels per invocation from 8 channels up.
    pub fn conv3x3_for(cout: usize) -> Kernel {
        if cout >= 8 {
            Kernel::Conv3x3Co8
        } else {
            Kernel::Conv3x3Co4
        }
    }

    /// Output channels per invocation (conv kernels).
    pub fn out_block(self) -> usize {
        match self {
            Kernel::Conv3x3Co8
            | Kernel::Conv3x3Co8Grouped
            | Kernel::Conv3x3Sg(_)
            | Kernel::UpConv => 8,
            _ => 4,
        }
    }

    /// The subgroup variant for a row `w` wide on an adapter whose subgroups are `sg` lanes
    /// (`None` where it does not apply: no fixed subgroup size, or `w` not a multiple of 4, or a
    /// layer both lower than a subgroup and narrower than 8).
    pub fn conv3x3_sg_for(sg: Option<u32>, h: usize, w: usize) -> Option<Kernel> {
        let sg = sg?;
        if !w.is_multiple_of(4) {
            return None;
        }
        // Columns share rows between lanes as well as weights: the most reuse, where the layer
        // is tall enough to keep every lane busy. Pairs of lanes (8 pixels wide, SG / 2 rows)
        // load one side value per lane where a single column (4 pixels, SG rows) loads two:
        // 3–7 % faster with 8 lanes, no different with 4.
        if sg >= 8 && w >= 8 && h >= sg as usize / 2 {
            return Some(Kernel::Conv3x3Sg(2));
        }
        if h >= sg as usize {
            return Some(Kernel::Conv3x3Sg(1));
        }
        // Else the widest patch row that still has work for every lane, up to 8 (32 pixels), or
        // a column pair (which needs at least 2 rows of lanes).
        let xb = [8u32, 4, 2]
            .into_iter()
            .find(|&xb| xb <= sg && w >= 4 * xb as usize && (xb != 2 || sg >= 4))?;
        Some(Kernel::Conv3x3Sg(xb))
    }

    /// The largest subgroup the subgroup conv accepts (its workgroup is one subgroup).
    pub(crate) const SG_MAX: u32 = 64;

    /// Values of the shader's `override` constants.
    fn constants(self, sg: u32) -> Vec<(&'static str, f64)> {
        match self {
            Kernel::UpConvSg | Kernel::SubgroupProbe => vec![("SG", sg as f64)],
            Kernel::WinoGemm => vec![("SG", sg as f64)],
            Kernel::Conv3x3Sg(xb) => vec![("SG", sg as f64), ("XB", xb as f64)],
            Kernel::UpConv | Kernel::Conv3x3I8 | Kernel::Conv3x3SparseI8 | Kernel::UpConvI8 => {
                vec![("WG_X", CONV_WG.0 as f64), ("WG_Y", CONV_WG.1 as f64)]
            }
            Kernel::Conv3x3Co4 | Kernel::Conv3x3Co8 | Kernel::Conv3x3Co8Grouped => vec![
                ("WG_X", CONV_WG.0 as f64),
                ("WG_Y", CONV_WG.1 as f64),
                ("CO8", (self != Kernel::Conv3x3Co4) as u32 as f64),
                ("GROUPED", (self == Kernel::Conv3x3Co8Grouped) as u32 as f64),
            ],
            _ => vec![("WG", WG_LINEAR as f64)],
        }
    }

    pub(crate) fn pipeline(self, device: &wgpu::Device) -> wgpu::ComputePipeline {
        self.pipeline_with(device, true)
    }

    /// The pipeline of a subgroup kernel for subgroups of `sg` lanes.
    pub(crate) fn pipeline_sg(self, device: &wgpu::Device, sg: u32) -> wgpu::ComputePipeline {
        self.build_pipeline(device, true, sg)
    }

    /// The pipeline; int8 kernels with WGSL's packed dot product (`packed_dot`) or the
    /// unpacking fallback.
    pub(crate) fn pipeline_with(
        self,
        device: &wgpu::Device,
        packed_dot: bool,
    ) -> wgpu::ComputePipeline {
        self.build_pipeline(device, packed_dot, 0)
    }

    fn build_pipeline(
        self,
        device: &wgpu::Device,
        packed_dot: bool,
        sg: u32,
    ) -> wgpu::ComputePipeline {
        compute_pipeline(device, self.shader(), packed_dot, sg, &self.constants(sg))
    }
}

/// A compute pipeline of `shader` (composed with its libraries, `enable subgroups;` in the
/// browser where it uses them) with its `override` constants: every engine's kernels are built
/// here.
pub(crate) fn compute_pipeline(
    device: &wgpu::Device,
    shader: &'static str,
    packed_dot: bool,
    sg: u32,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let mut src = shaders::compose(shader, packed_dot);
    // Browsers require the extension to be enabled; naga (native) does not parse it.
    if cfg!(target_arch = "wasm32") && sg > 0 {
        src.insert_str(0, "enable subgroups;\n");
    }
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(shader),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(shader),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            ..Default::default()
        },
        cache: None,
    })
}

/// Repack weights into `rows` rows of `cout` values (`get(row, co)`), each zero-padded to a
/// multiple of `block` (a multiple of 4: whole vec4s).
pub(crate) fn pack_rows(
    rows: usize,
    cout: usize,
    block: usize,
    get: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let cp = cout.div_ceil(block) * block;
    let mut out = vec![0.0; rows * cp];
    for r in 0..rows {
        for co in 0..cout {
            out[r * cp + co] = get(r, co);
        }
    }
    out
}

/// 3×3 conv weights `[cout, cin, 3, 3]` grouped by 8 output channels for `Conv3x3Sg`: vec4
/// index `((g * cin + ci) * 9 + tap) * 2 + j` holds output channels `8g + 4j ..+ 4` (zero past
/// `cout`), so that the 18 vec4s of one group and input channel are contiguous.
pub(crate) fn pack_conv3x3_grouped(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let groups = cout.div_ceil(8);
    let mut out = vec![0.0; groups * cin * 9 * 8];
    for co in 0..cout {
        let (g, c) = (co / 8, co % 8);
        for ci in 0..cin {
            for tap in 0..9 {
                out[((g * cin + ci) * 9 + tap) * 8 + c] = weight[(co * cin + ci) * 9 + tap];
            }
        }
    }
    out
}

/// Transposed-conv weights `[cin, cout, 2, 2]` grouped by 4 output channels for `UpConvSg`:
/// vec4 index `(g * cin + ci) * 4 + tap` holds output channels `4g ..+ 4` (zero past `cout`).
pub(crate) fn pack_upconv_grouped(weight: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let groups = cout.div_ceil(4);
    let mut out = vec![0.0; groups * cin * 4 * 4];
    for ci in 0..cin {
        for co in 0..cout {
            for tap in 0..4 {
                out[((co / 4 * cin + ci) * 4 + tap) * 4 + co % 4] =
                    weight[(ci * cout + co) * 4 + tap];
            }
        }
    }
    out
}

/// Repack weights so that 4 consecutive output channels form one vec4: `rows` rows of `cout`
/// values (`get(row, co)`), each padded to `ceil(cout / 4) * 4`.
pub(crate) fn pack_vec4(rows: usize, cout: usize, get: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    pack_rows(rows, cout, 4, get)
}

/// Workgroup counts for `total` invocations of a 1-D kernel, folded into y past the per-dimension
/// limit (the shader recomputes the flat index from `num_workgroups`).
pub(crate) fn linear_groups(total: u64, max_per_dim: u32) -> [u32; 3] {
    let groups = total.div_ceil(WG_LINEAR as u64).max(1);
    let x = groups.min(max_per_dim as u64);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// Bytes of weights `GpuModel` uploads for `spec`: every conv packed with output channels padded
/// to its kernel's block, plus biases (and, unfolded, BatchNorm's scale and shift). `subgroups`:
/// packed for the subgroup kernels (transposed convs in blocks of 4 channels, not 8); with
/// `winograd` too (`GpuOptions::winograd`), the transformed weights of the layers
/// `winograd::wants`.
pub fn packed_weight_bytes(spec: &UNetSpec, fold_bn: bool, subgroups: bool, winograd: bool) -> u64 {
    let up_blk = if subgroups { 4 } else { 8 };
    let p4 = |c: usize| c.div_ceil(4) * 4;
    let bn = if fold_bn { 0 } else { 2 };
    let conv = |cin: usize, cout: usize| {
        let blk = Kernel::conv3x3_for(cout).out_block();
        // Where the subgroup kernels and Winograd run, wide shallow layers also keep their
        // transformed weights.
        let wino = if subgroups && winograd && crate::gpu::winograd::wants(cin, cout) {
            36 * cout.div_ceil(8)
                * 8
                * cin.div_ceil(crate::gpu::winograd::CIN_ALIGN)
                * crate::gpu::winograd::CIN_ALIGN
        } else {
            0
        };
        (cin * 9 + 1) * cout.div_ceil(blk) * blk + bn * cout + wino
    };
    let dc = |cin: usize, f: usize| conv(cin, f) + conv(f, f);
    let mut b = 0;
    let mut cin = spec.in_channels;
    for &f in &spec.features {
        b += dc(cin, f);
        cin = f;
    }
    let last = *spec.features.last().expect("at least one level");
    b += dc(last, 2 * last);
    for &f in spec.features.iter().rev() {
        b += (2 * f * 4 + 1) * f.div_ceil(up_blk) * up_blk + dc(2 * f, f);
    }
    b += (spec.features[0] + 1) * p4(spec.out_channels);
    4 * b as u64
}
