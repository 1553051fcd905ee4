//! Reading and writing a reference U-Net's `state_dict` as safetensors.
//!
//! Keys are PyTorch's, unchanged. The architecture is inferred from the shapes; f32, f16 and
//! bf16 tensors are accepted and widened to f32; `num_batches_tracked` is ignored. Metadata
//! (string → string): `bn_eps`, and per-channel `input_mean` / `input_std` as comma-separated
//! numbers (a JSON-style `[..]` list is accepted too).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::{BatchNorm, ConvWeights, DoubleConv, UNet, UNetSpec, UpLevel};
use crate::{Error, Result};

impl UNet {
    /// Load a model from a safetensors file.
    pub fn load(path: impl AsRef<Path>) -> Result<UNet> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        UNet::from_safetensors(&bytes).map_err(|e| match e {
            Error::NotSafetensors { reason, .. } => Error::NotSafetensors {
                path: path.into(),
                reason,
            },
            e => e,
        })
    }

    /// Load a model from the bytes of a safetensors file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<UNet> {
        let bad = |e: safetensors::SafeTensorError| Error::NotSafetensors {
            path: "<memory>".into(),
            reason: e.to_string(),
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
        if crate::compress::is_int8_file(bytes) {
            return Err(Error::InvalidArgument(
                "this is an int8 model (format wunet-int8), not a float state_dict: read it with QUNet::from_safetensors".into(),
            ));
        }
        let st = SafeTensors::deserialize(bytes).map_err(bad)?;
        let reader = Reader { st: &st };
        let spec = infer_spec(&reader, meta.metadata().as_ref())?;
        for (key, shape) in spec.expected_tensors() {
            reader.check_shape(&key, &shape)?;
        }
        let dc = |p: &str| -> Result<DoubleConv> {
            Ok(DoubleConv {
                conv1: reader.conv(&format!("{p}.conv1"), false)?,
                bn1: reader.bn(&format!("{p}.bn1"))?,
                conv2: reader.conv(&format!("{p}.conv2"), false)?,
                bn2: reader.bn(&format!("{p}.bn2"))?,
            })
        };
        let downs = (0..spec.depth())
            .map(|i| dc(&format!("downs.{i}")))
            .collect::<Result<_>>()?;
        let bottleneck = dc("bottleneck")?;
        let ups = (0..spec.depth())
            .map(|k| {
                Ok(UpLevel {
                    up: reader.conv(&format!("ups.{}", 2 * k), true)?,
                    conv: dc(&format!("ups.{}", 2 * k + 1))?,
                })
            })
            .collect::<Result<_>>()?;
        let head = reader.conv("final_conv", true)?;
        Ok(UNet {
            spec,
            downs,
            bottleneck,
            ups,
            head,
        })
    }
}

struct Reader<'a, 'd> {
    st: &'a SafeTensors<'d>,
}

impl Reader<'_, '_> {
    fn shape(&self, key: &str) -> Result<Vec<usize>> {
        self.st
            .tensor(key)
            .map(|t| t.shape().to_vec())
            .map_err(|_| Error::MissingTensor { key: key.into() })
    }

    fn check_shape(&self, key: &str, expected: &[usize]) -> Result<()> {
        let found = self.shape(key)?;
        if found != expected {
            return Err(Error::ShapeMismatch {
                key: key.into(),
                expected: expected.to_vec(),
                found,
            });
        }
        Ok(())
    }

    /// A tensor widened to f32, rejecting NaN and infinities.
    fn f32s(&self, key: &str) -> Result<Vec<f32>> {
        let t = self
            .st
            .tensor(key)
            .map_err(|_| Error::MissingTensor { key: key.into() })?;
        let d = t.data();
        let v: Vec<f32> = match t.dtype() {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    key: key.into(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite {
                key: key.into(),
                index,
                value,
            });
        }
        Ok(v)
    }

    fn conv(&self, prefix: &str, with_bias: bool) -> Result<ConvWeights> {
        let key = format!("{prefix}.weight");
        let s = self.shape(&key)?;
        let shape = [s[0], s[1], s[2], s[3]];
        let weight = self.f32s(&key)?;
        let bias = if with_bias {
            Some(self.f32s(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(ConvWeights {
            shape,
            weight,
            bias,
        })
    }

    fn bn(&self, prefix: &str) -> Result<BatchNorm> {
        let var = self.f32s(&format!("{prefix}.running_var"))?;
        if let Some((index, &value)) = var.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(Error::BadMetadata {
                key: format!("{prefix}.running_var"),
                value: format!("[{index}] = {value}"),
                reason: "a variance cannot be negative".into(),
            });
        }
        Ok(BatchNorm {
            gamma: self.f32s(&format!("{prefix}.weight"))?,
            beta: self.f32s(&format!("{prefix}.bias"))?,
            mean: self.f32s(&format!("{prefix}.running_mean"))?,
            var,
        })
    }
}

fn dims(r: &Reader, key: &str, rank: usize) -> Result<Vec<usize>> {
    let s = r.shape(key)?;
    if s.len() != rank {
        let mut expected = vec![0; rank];
        expected[..s.len().min(rank)].copy_from_slice(&s[..s.len().min(rank)]);
        return Err(Error::ShapeMismatch {
            key: key.into(),
            expected,
            found: s,
        });
    }
    Ok(s)
}

/// Depth, widths and channel counts from the tensor shapes; eps and normalization from metadata.
fn infer_spec(r: &Reader, meta: Option<&HashMap<String, String>>) -> Result<UNetSpec> {
    let mut features = Vec::new();
    while r
        .st
        .tensor(&format!("downs.{}.conv1.weight", features.len()))
        .is_ok()
    {
        let s = dims(r, &format!("downs.{}.conv1.weight", features.len()), 4)?;
        features.push(s[0]);
    }
    if features.is_empty() {
        return Err(Error::MissingTensor {
            key: "downs.0.conv1.weight".into(),
        });
    }
    for level in 1..features.len() {
        if features[level] != 2 * features[level - 1] {
            return Err(Error::WidthsDoNotDouble {
                features: features.clone(),
                level,
                expected: 2 * features[level - 1],
                found: features[level],
            });
        }
    }
    let in_channels = dims(r, "downs.0.conv1.weight", 4)?[1];
    let out_channels = dims(r, "final_conv.weight", 4)?[0];
    if in_channels == 0 || out_channels == 0 || features.contains(&0) {
        return Err(Error::ShapeMismatch {
            key: "downs.0.conv1.weight".into(),
            expected: vec![features[0].max(1), in_channels.max(1), 3, 3],
            found: r.shape("downs.0.conv1.weight")?,
        });
    }
    let mut spec = UNetSpec::new(in_channels, out_channels, features);
    if let Some(meta) = meta {
        if let Some(v) = meta.get("bn_eps") {
            spec.bn_eps = parse_floats("bn_eps", v, Some(1))?[0];
            if spec.bn_eps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(bad_meta("bn_eps", v, "must be a positive number"));
            }
        }
        if let Some(v) = meta.get("input_mean") {
            spec.input_mean = Some(parse_floats("input_mean", v, Some(in_channels))?);
        }
        if let Some(v) = meta.get("input_std") {
            let std = parse_floats("input_std", v, Some(in_channels))?;
            if std.contains(&0.0) {
                return Err(bad_meta("input_std", v, "a standard deviation of 0"));
            }
            spec.input_std = Some(std);
        }
    }
    Ok(spec)
}

fn bad_meta(key: &str, value: &str, reason: &str) -> Error {
    Error::BadMetadata {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// "0.5,0.4,0.3" or "[0.5, 0.4, 0.3]" → floats; a single value is broadcast to `want`.
fn parse_floats(key: &str, value: &str, want: Option<usize>) -> Result<Vec<f32>> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    let v = inner
        .split(',')
        .map(|s| s.trim().parse::<f32>().ok().filter(|x| x.is_finite()))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| bad_meta(key, value, "expected comma-separated numbers"))?;
    match want {
        Some(n) if v.len() == 1 => Ok(vec![v[0]; n]),
        Some(n) if v.len() != n => Err(bad_meta(
            key,
            value,
            &format!("expected {n} values, found {}", v.len()),
        )),
        _ => Ok(v),
    }
}

/// How `save_safetensors` stores the float tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreDtype {
    F32,
    F16,
    BF16,
}

impl std::str::FromStr for StoreDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(StoreDtype::F32),
            "f16" | "float16" => Ok(StoreDtype::F16),
            "bf16" | "bfloat16" => Ok(StoreDtype::BF16),
            _ => Err(Error::InvalidArgument(format!(
                "unknown dtype {s:?} (f32, f16, bf16)"
            ))),
        }
    }
}

/// Serialize a model as the reference `state_dict` (same keys PyTorch writes).
pub fn save_safetensors(model: &UNet, dtype: StoreDtype) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let push_dc = |p: &str, d: &DoubleConv, t: &mut Vec<(String, Vec<usize>, Vec<f32>)>| {
        for (i, c, bn) in [(1, &d.conv1, &d.bn1), (2, &d.conv2, &d.bn2)] {
            t.push((
                format!("{p}.conv{i}.weight"),
                c.shape.to_vec(),
                c.weight.clone(),
            ));
            for (name, v) in [
                ("weight", &bn.gamma),
                ("bias", &bn.beta),
                ("running_mean", &bn.mean),
                ("running_var", &bn.var),
            ] {
                t.push((format!("{p}.bn{i}.{name}"), vec![v.len()], v.clone()));
            }
        }
    };
    for (i, d) in model.downs.iter().enumerate() {
        push_dc(&format!("downs.{i}"), d, &mut tensors);
    }
    push_dc("bottleneck", &model.bottleneck, &mut tensors);
    for (k, u) in model.ups.iter().enumerate() {
        let b = u.up.bias.clone().expect("transposed conv has a bias");
        tensors.push((
            format!("ups.{}.weight", 2 * k),
            u.up.shape.to_vec(),
            u.up.weight.clone(),
        ));
        tensors.push((format!("ups.{}.bias", 2 * k), vec![b.len()], b));
        push_dc(&format!("ups.{}", 2 * k + 1), &u.conv, &mut tensors);
    }
    let hb = model.head.bias.clone().expect("head has a bias");
    tensors.push((
        "final_conv.weight".into(),
        model.head.shape.to_vec(),
        model.head.weight.clone(),
    ));
    tensors.push(("final_conv.bias".into(), vec![hb.len()], hb));

    type Encode = fn(&[f32]) -> Vec<u8>;
    let (st_dtype, bytes): (Dtype, Encode) = match dtype {
        StoreDtype::F32 => (Dtype::F32, |v| {
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }),
        StoreDtype::F16 => (Dtype::F16, |v| {
            v.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect()
        }),
        StoreDtype::BF16 => (Dtype::BF16, |v| {
            v.iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect()
        }),
    };
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, s, v)| (k, s, bytes(&v)))
        .collect();
    let views = data
        .iter()
        .map(|(k, s, b)| {
            let view = safetensors::tensor::TensorView::new(st_dtype, s.clone(), b)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            Ok((k.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let spec = &model.spec;
    let mut meta = HashMap::new();
    let join = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if spec.bn_eps != 1e-5 {
        meta.insert("bn_eps".to_string(), spec.bn_eps.to_string());
    }
    if let Some(m) = &spec.input_mean {
        meta.insert("input_mean".to_string(), join(m));
    }
    if let Some(s) = &spec.input_std {
        meta.insert("input_std".to_string(), join(s));
    }
    safetensors::serialize(views, if meta.is_empty() { None } else { Some(meta) })
        .map_err(|e| Error::InvalidArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_random, InitOptions};

    #[test]
    fn round_trip_all_dtypes() {
        let mut m = init_random(&UNetSpec::new(2, 3, vec![4, 8]), &InitOptions { seed: 7 });
        m.spec.bn_eps = 1e-3;
        m.spec.input_mean = Some(vec![0.25, 0.5]);
        m.spec.input_std = Some(vec![0.5, 0.125]);
        for dt in [StoreDtype::F32, StoreDtype::F16, StoreDtype::BF16] {
            let bytes = save_safetensors(&m, dt).unwrap();
            let back = UNet::from_safetensors(&bytes).unwrap();
            assert_eq!(back.spec, m.spec);
            let tol = match dt {
                StoreDtype::F32 => 0.0,
                StoreDtype::F16 => 1e-3,
                StoreDtype::BF16 => 1e-2,
            };
            for (a, b) in back.downs[1]
                .conv2
                .weight
                .iter()
                .zip(&m.downs[1].conv2.weight)
            {
                assert!(
                    (a - b).abs() <= tol * b.abs().max(1e-3),
                    "{dt:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn metadata_lists_parse() {
        assert_eq!(
            parse_floats("k", "[0.5, 1]", Some(2)).unwrap(),
            vec![0.5, 1.0]
        );
        assert_eq!(parse_floats("k", "2", Some(3)).unwrap(), vec![2.0; 3]);
        assert!(parse_floats("k", "1,2", Some(3)).is_err());
        assert!(parse_floats("k", "a,b", None).is_err());
    }
}
