//! The reference U-Net: its shape (`UNetSpec`), its weights (`UNet`), loading from and saving to
//! a PyTorch `state_dict` stored as safetensors, and random initialization for benchmarks.

pub(crate) mod init;
mod spec;
mod weights;

pub use init::{init_random, InitOptions};
pub use spec::UNetSpec;
pub use weights::{save_safetensors, StoreDtype};

/// A convolution's weights in PyTorch layout (`[cout, cin, k, k]`, or `[cin, cout, 2, 2]` for a
/// transposed conv), with an optional bias.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    pub shape: [usize; 4],
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// BatchNorm2d in inference mode.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

impl BatchNorm {
    /// Per-channel (scale, shift) with `y = x * scale + shift`.
    pub fn scale_shift(&self, eps: f32) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift = self
            .beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        (scale, shift)
    }
}

/// Conv3x3 (no bias) → BN → ReLU, twice.
#[derive(Clone, Debug)]
pub struct DoubleConv {
    pub conv1: ConvWeights,
    pub bn1: BatchNorm,
    pub conv2: ConvWeights,
    pub bn2: BatchNorm,
}

/// One decoder level: the 2×2 stride-2 transposed conv, then a DoubleConv over [skip, up].
#[derive(Clone, Debug)]
pub struct UpLevel {
    pub up: ConvWeights,
    pub conv: DoubleConv,
}

/// A whole model, weights in float32 whatever the file stored.
#[derive(Clone, Debug)]
pub struct UNet {
    pub spec: UNetSpec,
    pub downs: Vec<DoubleConv>,
    pub bottleneck: DoubleConv,
    /// Deepest level first, as in the reference's `ups` list.
    pub ups: Vec<UpLevel>,
    pub head: ConvWeights,
}

/// A 3×3 conv with its BatchNorm folded in: `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`.
pub fn fold_bn(conv: &ConvWeights, bn: &BatchNorm, eps: f32) -> ConvWeights {
    let (scale, shift) = bn.scale_shift(eps);
    let per_out = conv.shape[1] * conv.shape[2] * conv.shape[3];
    let weight = conv
        .weight
        .chunks(per_out)
        .zip(&scale)
        .flat_map(|(w, s)| w.iter().map(move |v| v * s))
        .collect();
    ConvWeights {
        shape: conv.shape,
        weight,
        bias: Some(shift),
    }
}

impl UNet {
    /// All DoubleConvs in execution order: encoder, bottleneck, decoder.
    pub fn double_convs(&self) -> impl Iterator<Item = &DoubleConv> {
        self.downs
            .iter()
            .chain(std::iter::once(&self.bottleneck))
            .chain(self.ups.iter().map(|u| &u.conv))
    }
}
