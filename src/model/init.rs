//! Random-weight models of any shape (for benchmarks and tests). Convolutions follow PyTorch's
//! default initialization (uniform in ±1/√fan_in); BatchNorm gets non-trivial statistics so that
//! folding bugs show.

use super::{BatchNorm, ConvWeights, DoubleConv, UNet, UNetSpec, UpLevel};

#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    pub seed: u64,
}

/// SplitMix64: small, seedable, good enough for weights.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }
}

/// `bias_len`: output channels when the conv has a bias.
fn conv(rng: &mut Rng, shape: [usize; 4], fan_in: usize, bias_len: Option<usize>) -> ConvWeights {
    let b = 1.0 / (fan_in as f32).sqrt();
    let n = shape.iter().product();
    ConvWeights {
        shape,
        weight: (0..n).map(|_| rng.range(-b, b)).collect(),
        bias: bias_len.map(|c| (0..c).map(|_| rng.range(-b, b)).collect()),
    }
}

fn bn(rng: &mut Rng, c: usize) -> BatchNorm {
    BatchNorm {
        gamma: (0..c).map(|_| rng.range(0.75, 1.25)).collect(),
        beta: (0..c).map(|_| rng.range(-0.1, 0.1)).collect(),
        mean: (0..c).map(|_| rng.range(-0.1, 0.1)).collect(),
        var: (0..c).map(|_| rng.range(0.75, 1.25)).collect(),
    }
}

fn double_conv(rng: &mut Rng, cin: usize, cout: usize) -> DoubleConv {
    DoubleConv {
        conv1: conv(rng, [cout, cin, 3, 3], cin * 9, None),
        bn1: bn(rng, cout),
        conv2: conv(rng, [cout, cout, 3, 3], cout * 9, None),
        bn2: bn(rng, cout),
    }
}

/// A model of the given shape with seeded random weights.
pub fn init_random(spec: &UNetSpec, opts: &InitOptions) -> UNet {
    let mut rng = Rng::new(opts.seed);
    let mut cin = spec.in_channels;
    let downs = spec
        .features
        .iter()
        .map(|&f| {
            let d = double_conv(&mut rng, cin, f);
            cin = f;
            d
        })
        .collect();
    let last = *spec.features.last().expect("at least one level");
    let bottleneck = double_conv(&mut rng, last, 2 * last);
    let ups = spec
        .features
        .iter()
        .rev()
        .map(|&f| UpLevel {
            // ConvTranspose2d's fan_in as PyTorch computes it: weight.size(1) * k * k.
            up: conv(&mut rng, [2 * f, f, 2, 2], f * 4, Some(f)),
            conv: double_conv(&mut rng, 2 * f, f),
        })
        .collect();
    let head = conv(
        &mut rng,
        [spec.out_channels, spec.features[0], 1, 1],
        spec.features[0],
        Some(spec.out_channels),
    );
    UNet {
        spec: spec.clone(),
        downs,
        bottleneck,
        ups,
        head,
    }
}
