//! The architecture of a reference U-Net, inferred from weight shapes, and its costs.

/// In/out channels, the encoder widths (each twice the previous) and BatchNorm's epsilon.
#[derive(Clone, Debug, PartialEq)]
pub struct UNetSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub features: Vec<usize>,
    pub bn_eps: f32,
    /// Per-channel image normalization `(x - mean) / std`, applied after scaling to [0, 1].
    pub input_mean: Option<Vec<f32>>,
    pub input_std: Option<Vec<f32>>,
}

impl UNetSpec {
    pub fn new(in_channels: usize, out_channels: usize, features: Vec<usize>) -> Self {
        UNetSpec {
            in_channels,
            out_channels,
            features,
            bn_eps: 1e-5,
            input_mean: None,
            input_std: None,
        }
    }

    /// Number of pooling levels.
    pub fn depth(&self) -> usize {
        self.features.len()
    }

    /// Every input side must survive `depth` floor-halvings without reaching zero.
    pub fn min_input_side(&self) -> usize {
        1 << self.depth()
    }

    /// Expected state_dict keys and shapes, in the reference's order (without
    /// `num_batches_tracked`).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let dc = |prefix: &str, cin: usize, cout: usize, out: &mut Vec<(String, Vec<usize>)>| {
            for (i, ci) in [(1, cin), (2, cout)] {
                out.push((format!("{prefix}.conv{i}.weight"), vec![cout, ci, 3, 3]));
                for p in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{prefix}.bn{i}.{p}"), vec![cout]));
                }
            }
        };
        let mut cin = self.in_channels;
        for (i, &f) in self.features.iter().enumerate() {
            dc(&format!("downs.{i}"), cin, f, &mut out);
            cin = f;
        }
        let last = *self
            .features
            .last()
            .expect("a U-Net has at least one level");
        dc("bottleneck", last, 2 * last, &mut out);
        for (k, &f) in self.features.iter().rev().enumerate() {
            out.push((format!("ups.{}.weight", 2 * k), vec![2 * f, f, 2, 2]));
            out.push((format!("ups.{}.bias", 2 * k), vec![f]));
            dc(&format!("ups.{}", 2 * k + 1), 2 * f, f, &mut out);
        }
        out.push((
            "final_conv.weight".into(),
            vec![self.out_channels, self.features[0], 1, 1],
        ));
        out.push(("final_conv.bias".into(), vec![self.out_channels]));
        out
    }

    /// Parameter count (BatchNorm's running statistics included, as in the state_dict).
    pub fn param_count(&self) -> usize {
        self.expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_model_has_31m_parameters() {
        let s = UNetSpec::new(3, 1, vec![64, 128, 256, 512]);
        let p = s.param_count();
        assert!((31_000_000..31_100_000).contains(&p), "{p}");
    }
}
