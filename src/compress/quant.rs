//! Post-training int8 quantization and the int8 model file.
//!
//! BatchNorm is folded first. Weights: int8, symmetric, one scale per output channel
//! (`q = round(w / s)`, `s = max|w| / 127`). Activations: uint8 per tensor, `x ≈ s · (q − z)`, with
//! scale and zero point from the value range seen on calibration inputs (ReLU outputs get z = 0).
//! Accumulation in int32; requantization in float32 with ReLU fused. The first conv (it reads the
//! float image, 3 channels: little work, much accuracy) and the 1×1 head (logits) stay float32;
//! the file names them in its metadata. See docs/FORMAT.md.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::model::{fold_bn, ConvWeights, UNet, UNetSpec};
use crate::plan::{ConvRef, Op};
use crate::tensor::Tensor;
use crate::{cpu, Error, Result};

/// `format` metadata value of an int8 model file.
pub const FORMAT: &str = "wunet-int8";
/// `format_version` this build reads and writes.
pub const FORMAT_VERSION: &str = "1";

/// Quantization of one activation tensor: `x ≈ scale · (q − zero)`, q in 0..=255.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero: u8,
}

impl QParams {
    /// From an observed range (widened to include 0).
    pub fn from_range(min: f32, max: f32) -> QParams {
        let (min, max) = (min.min(0.0), max.max(0.0));
        if max - min <= f32::MIN_POSITIVE {
            return QParams {
                scale: 1.0,
                zero: 0,
            };
        }
        let scale = (max - min) / 255.0;
        let zero = (-min / scale).round().clamp(0.0, 255.0) as u8;
        QParams { scale, zero }
    }

    #[inline]
    pub fn quantize(&self, x: f32) -> u8 {
        // Clamped first, a value rounds half to even by adding and subtracting 1.5 · 2²³
        // (baseline x86-64 has no rounding instruction: `round_ties_even` would be a libm call).
        const ROUND: f32 = 12_582_912.0;
        let v = (x / self.scale).clamp(-512.0, 512.0);
        (((v + ROUND) - ROUND) + self.zero as f32).clamp(0.0, 255.0) as u8
    }

    #[inline]
    pub fn dequantize(&self, q: u8) -> f32 {
        self.scale * (q as i32 - self.zero as i32) as f32
    }
}

/// An int8 convolution (3×3 `[cout, cin, 3, 3]` or transposed `[cin, cout, 2, 2]`, PyTorch layouts).
#[derive(Clone, Debug)]
pub struct QConv {
    pub shape: [usize; 4],
    pub weight: Vec<i8>,
    /// Per output channel.
    pub w_scale: Vec<f32>,
    /// Float bias (BatchNorm folded), per output channel.
    pub bias: Vec<f32>,
    pub out: QParams,
}

/// How a quantized model's first conv (`downs.0.conv1`) runs.
#[derive(Clone, Debug)]
pub enum FirstConv {
    /// float32 (BatchNorm folded) on the float input; its output quantized with `first_out`.
    Float(ConvWeights),
    /// int8 like the others (in `QUNet::convs`), on the input quantized with these parameters:
    /// the network is then integer from the input to the head.
    Int8(QParams),
}

/// Options of `quantize_with`.
#[derive(Clone, Debug, Default)]
pub struct QuantOptions {
    /// Keep the first conv in float32 (`FirstConv::Float`).
    pub float_first: bool,
}

/// A quantized model.
#[derive(Clone, Debug)]
pub struct QUNet {
    pub spec: UNetSpec,
    /// How `downs.0.conv1` runs.
    pub first: FirstConv,
    /// The quantization of `downs.0.conv1`'s output.
    pub first_out: QParams,
    pub convs: HashMap<ConvRef, QConv>,
    /// Transposed convs, deepest first.
    pub ups: Vec<QConv>,
    /// The 1×1 head, float32.
    pub head: ConvWeights,
}

fn quantize_weights(
    w: &[f32],
    cout: usize,
    per_out: impl Fn(usize) -> usize,
) -> (Vec<i8>, Vec<f32>) {
    let mut maxabs = vec![0f32; cout];
    for (i, v) in w.iter().enumerate() {
        let co = per_out(i);
        maxabs[co] = maxabs[co].max(v.abs());
    }
    let scale: Vec<f32> = maxabs
        .iter()
        .map(|m| if *m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (v / scale[per_out(i)])
                .round_ties_even()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    (q, scale)
}

/// Quantize `model` with activation ranges observed on `calib` (float inputs, NCHW).
pub fn quantize(model: &UNet, calib: &[Tensor]) -> Result<QUNet> {
    quantize_with(model, calib, &QuantOptions::default())
}

/// `quantize` with options.
pub fn quantize_with(model: &UNet, calib: &[Tensor], opts: &QuantOptions) -> Result<QUNet> {
    if calib.is_empty() {
        return Err(Error::InvalidArgument(
            "quantization needs at least one calibration input".into(),
        ));
    }
    // Observe every op output's range in the folded float network.
    let mut ranges: HashMap<String, (f32, f32)> = HashMap::new();
    for x in calib {
        cpu::forward_observed(model, x, true, &mut |op: &Op, t: &Tensor| {
            let key = match op {
                Op::Conv3x3 { conv, .. } => conv.name(),
                Op::UpConv { .. } => op.label(),
                _ => return,
            };
            let (lo, hi) = t
                .data
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            let e = ranges.entry(key).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        })?;
    }
    let eps = model.spec.bn_eps;
    let range = |k: &str| {
        ranges
            .get(k)
            .copied()
            .ok_or_else(|| Error::InvalidArgument(format!("no calibration range for {k}")))
    };
    let mut convs = HashMap::new();
    let d = model.spec.depth();
    let refs = (0..d)
        .flat_map(|l| [ConvRef::Down(l, 1), ConvRef::Down(l, 2)])
        .chain([ConvRef::Bottleneck(1), ConvRef::Bottleneck(2)])
        .chain((0..d).flat_map(|l| [ConvRef::Up(l, 1), ConvRef::Up(l, 2)]));
    for r in refs {
        if r == ConvRef::Down(0, 1) && opts.float_first {
            continue;
        }
        let (w, bn) = r.weights(model);
        let f = fold_bn(w, bn, eps);
        let per = f.shape[1] * 9;
        let (weight, w_scale) = quantize_weights(&f.weight, f.shape[0], |i| i / per);
        let (mut lo, mut hi) = range(&r.name())?;
        if let ConvRef::Down(l, 2) = r {
            // A skip: quantized like the upsampled tensor it is read with.
            let (ulo, uhi) = range(&format!("ups.{}", 2 * (d - 1 - l)))?;
            (lo, hi) = (lo.min(ulo), hi.max(uhi));
        }
        convs.insert(
            r,
            QConv {
                shape: f.shape,
                weight,
                w_scale,
                bias: f.bias.expect("folded bias"),
                out: QParams::from_range(lo, hi),
            },
        );
    }
    let ups = model
        .ups
        .iter()
        .enumerate()
        .map(|(l, u)| {
            let [_, cout, _, _] = u.up.shape;
            let (weight, w_scale) = quantize_weights(&u.up.weight, cout, |i| (i / 4) % cout);
            // Quantized like the skip it is read with (`share_skip_quantization`).
            let (lo, hi) = range(&format!("ups.{}", 2 * l))?;
            let (slo, shi) = range(&ConvRef::Down(d - 1 - l, 2).name())?;
            let (lo, hi) = (lo.min(slo), hi.max(shi));
            Ok(QConv {
                shape: u.up.shape,
                weight,
                w_scale,
                bias: u.up.bias.clone().expect("bias"),
                out: QParams::from_range(lo, hi),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (first_w, first_bn) = ConvRef::Down(0, 1).weights(model);
    let (lo, hi) = range(&ConvRef::Down(0, 1).name())?;
    let first = if opts.float_first {
        FirstConv::Float(fold_bn(first_w, first_bn, eps))
    } else {
        let (lo, hi) = calib
            .iter()
            .flat_map(|t| &t.data)
            .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        FirstConv::Int8(QParams::from_range(lo, hi))
    };
    Ok(QUNet {
        spec: model.spec.clone(),
        first,
        first_out: QParams::from_range(lo, hi),
        convs,
        ups,
        head: model.head.clone(),
    })
}

impl QUNet {
    /// Quantize each level's skip and upsampled tensors alike (the union of their ranges), so
    /// that the decoder's first conv reads both as one GEMM with one set of parameters.
    /// `quantize` writes models this way; the CPU engine applies it to files that differ.
    pub fn share_skip_quantization(&mut self) {
        let d = self.spec.depth();
        let range = |q: QParams| {
            (
                q.scale * -(q.zero as f32),
                q.scale * (255 - q.zero as i32) as f32,
            )
        };
        for level in 0..d {
            let skip = ConvRef::Down(d - 1 - level, 2);
            let (a, b) = (self.convs[&skip].out, self.ups[level].out);
            if a == b {
                continue;
            }
            let ((a0, a1), (b0, b1)) = (range(a), range(b));
            let q = QParams::from_range(a0.min(b0), a1.max(b1));
            self.convs.get_mut(&skip).expect("skip conv").out = q;
            self.ups[level].out = q;
        }
    }

    /// Serialize as a safetensors file (docs/FORMAT.md).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut t: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let qp = |q: &QParams| f32s(&[q.scale, q.zero as f32]);
        let push_q =
            |name: String, c: &QConv, t: &mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>| {
                // Dense, or a bitmap of the nonzeros plus their values where that is smaller.
                let nnz = c.weight.iter().filter(|v| **v != 0).count();
                if c.weight.len().div_ceil(8) + nnz < c.weight.len() {
                    let mut mask = vec![0u8; c.weight.len().div_ceil(8)];
                    for (i, v) in c.weight.iter().enumerate() {
                        mask[i / 8] |= ((*v != 0) as u8) << (i % 8);
                    }
                    let nz: Vec<u8> = c
                        .weight
                        .iter()
                        .filter(|v| **v != 0)
                        .map(|v| *v as u8)
                        .collect();
                    t.push((
                        format!("{name}.weight_mask"),
                        Dtype::U8,
                        vec![mask.len()],
                        mask,
                    ));
                    t.push((format!("{name}.weight_nz"), Dtype::I8, vec![nnz], nz));
                } else {
                    t.push((
                        format!("{name}.weight"),
                        Dtype::I8,
                        c.shape.to_vec(),
                        c.weight.iter().map(|v| *v as u8).collect(),
                    ));
                }
                t.push((
                    format!("{name}.weight_scale"),
                    Dtype::F32,
                    vec![c.w_scale.len()],
                    f32s(&c.w_scale),
                ));
                t.push((
                    format!("{name}.bias"),
                    Dtype::F32,
                    vec![c.bias.len()],
                    f32s(&c.bias),
                ));
                t.push((format!("{name}.out_quant"), Dtype::F32, vec![2], qp(&c.out)));
            };
        let mut keys: Vec<&ConvRef> = self.convs.keys().collect();
        keys.sort_by_key(|r| r.name());
        for r in keys {
            push_q(r.name(), &self.convs[r], &mut t);
        }
        for (l, u) in self.ups.iter().enumerate() {
            push_q(format!("ups.{}", 2 * l), u, &mut t);
        }
        let first = ConvRef::Down(0, 1).name();
        let float_layers = match &self.first {
            FirstConv::Float(fw) => {
                t.push((
                    format!("{first}.weight"),
                    Dtype::F32,
                    fw.shape.to_vec(),
                    f32s(&fw.weight),
                ));
                t.push((
                    format!("{first}.bias"),
                    Dtype::F32,
                    vec![fw.shape[0]],
                    f32s(fw.bias.as_ref().expect("bias")),
                ));
                t.push((
                    format!("{first}.out_quant"),
                    Dtype::F32,
                    vec![2],
                    qp(&self.first_out),
                ));
                format!("{first},final_conv")
            }
            FirstConv::Int8(input) => {
                t.push(("input_quant".into(), Dtype::F32, vec![2], qp(input)));
                "final_conv".to_string()
            }
        };
        t.push((
            "final_conv.weight".into(),
            Dtype::F32,
            self.head.shape.to_vec(),
            f32s(&self.head.weight),
        ));
        t.push((
            "final_conv.bias".into(),
            Dtype::F32,
            vec![self.head.shape[0]],
            f32s(self.head.bias.as_ref().expect("bias")),
        ));
        let views = t
            .iter()
            .map(|(k, d, s, b)| {
                Ok((
                    k.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b)
                        .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let s = &self.spec;
        let join = |v: &[f32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("in_channels".to_string(), s.in_channels.to_string()),
            ("out_channels".to_string(), s.out_channels.to_string()),
            (
                "features".to_string(),
                s.features
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("float_layers".to_string(), float_layers),
            ("bn_folded".to_string(), "true".to_string()),
        ]);
        if let (Some(m), Some(sd)) = (&s.input_mean, &s.input_std) {
            meta.insert("input_mean".into(), join(m));
            meta.insert("input_std".into(), join(sd));
        }
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Read and validate an int8 model file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<QUNet> {
        let bad = |reason: String| Error::NotSafetensors {
            path: "<memory>".into(),
            reason,
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k).cloned().ok_or_else(|| Error::BadMetadata {
                key: k.into(),
                value: String::new(),
                reason: "missing from an int8 model".into(),
            })
        };
        if get("format")? != FORMAT {
            return Err(Error::BadMetadata {
                key: "format".into(),
                value: get("format")?,
                reason: format!("expected {FORMAT}"),
            });
        }
        let v = get("format_version")?;
        if v != FORMAT_VERSION {
            return Err(Error::BadMetadata {
                key: "format_version".into(),
                value: v,
                reason: format!("this build reads version {FORMAT_VERSION}"),
            });
        }
        let num = |k: &str| -> Result<Vec<usize>> {
            let s = get(k)?;
            s.split(',')
                .map(|x| {
                    x.trim().parse().map_err(|_| Error::BadMetadata {
                        key: k.into(),
                        value: s.clone(),
                        reason: "expected integers".into(),
                    })
                })
                .collect()
        };
        let mut spec = UNetSpec::new(
            num("in_channels")?[0],
            num("out_channels")?[0],
            num("features")?,
        );
        if spec.features.is_empty()
            || spec.features.windows(2).any(|w| w[1] != 2 * w[0])
            || spec.in_channels == 0
            || spec.out_channels == 0
        {
            return Err(Error::BadMetadata {
                key: "features".into(),
                value: get("features")?,
                reason: "widths must be positive and double".into(),
            });
        }
        let floats = |k: &str| -> Result<Option<Vec<f32>>> {
            meta.get(k)
                .map(|s| {
                    s.split(',')
                        .map(|x| {
                            x.trim().parse::<f32>().map_err(|_| Error::BadMetadata {
                                key: k.into(),
                                value: s.clone(),
                                reason: "expected numbers".into(),
                            })
                        })
                        .collect()
                })
                .transpose()
        };
        spec.input_mean = floats("input_mean")?;
        spec.input_std = floats("input_std")?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let tensor = |k: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>> {
            let t = st
                .tensor(k)
                .map_err(|_| Error::MissingTensor { key: k.into() })?;
            if t.dtype() != dtype {
                return Err(Error::UnsupportedDtype {
                    key: k.into(),
                    dtype: format!("{:?} (expected {dtype:?})", t.dtype()),
                });
            }
            if t.shape() != shape {
                return Err(Error::ShapeMismatch {
                    key: k.into(),
                    expected: shape.to_vec(),
                    found: t.shape().to_vec(),
                });
            }
            Ok(t.data().to_vec())
        };
        let f32v = |k: &str, shape: &[usize], positive: bool| -> Result<Vec<f32>> {
            let v: Vec<f32> = tensor(k, Dtype::F32, shape)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some((index, &value)) = v
                .iter()
                .enumerate()
                .find(|(_, x)| !x.is_finite() || (positive && **x <= 0.0))
            {
                return Err(Error::NonFinite {
                    key: format!("{k} (scales must be finite and > 0)"),
                    index,
                    value,
                });
            }
            Ok(v)
        };
        let qparams = |k: &str| -> Result<QParams> {
            let v = f32v(k, &[2], false)?;
            if v[0].is_nan() || v[0] <= 0.0 || !(0.0..=255.0).contains(&v[1]) || v[1].fract() != 0.0
            {
                return Err(Error::BadMetadata {
                    key: k.into(),
                    value: format!("{v:?}"),
                    reason: "scale must be > 0 and the zero point an integer in 0..=255".into(),
                });
            }
            Ok(QParams {
                scale: v[0],
                zero: v[1] as u8,
            })
        };
        // int8 weights, dense (`NAME.weight`) or as a bitmap of nonzeros and their values.
        let qweights = |name: &str, shape: [usize; 4]| -> Result<Vec<i8>> {
            let dense = format!("{name}.weight");
            if st.tensor(&dense).is_ok() {
                return Ok(tensor(&dense, Dtype::I8, &shape)?
                    .into_iter()
                    .map(|b| b as i8)
                    .collect());
            }
            let n: usize = shape.iter().product();
            let mkey = format!("{name}.weight_mask");
            if st.tensor(&mkey).is_err() {
                return Err(Error::MissingTensor { key: dense });
            }
            let mask = tensor(&mkey, Dtype::U8, &[n.div_ceil(8)])?;
            let ones: usize = mask.iter().map(|b| b.count_ones() as usize).sum();
            let tail_bits = if n.is_multiple_of(8) {
                0
            } else {
                mask[n / 8] >> (n % 8)
            };
            let nzkey = format!("{name}.weight_nz");
            let nz = tensor(&nzkey, Dtype::I8, &[ones]).map_err(|e| match e {
                Error::ShapeMismatch { found, .. } => Error::ShapeMismatch {
                    key: nzkey.clone(),
                    expected: vec![ones],
                    found,
                },
                e => e,
            })?;
            if tail_bits != 0 {
                return Err(Error::BadMetadata {
                    key: mkey,
                    value: format!("{tail_bits:#x}"),
                    reason: format!("marks weights past the tensor's {n}"),
                });
            }
            let mut it = nz.into_iter();
            Ok((0..n)
                .map(|i| {
                    if mask[i / 8] >> (i % 8) & 1 == 1 {
                        it.next().expect("popcount checked") as i8
                    } else {
                        0
                    }
                })
                .collect())
        };
        let qconv = |name: String, shape: [usize; 4], cout: usize| -> Result<QConv> {
            Ok(QConv {
                shape,
                weight: qweights(&name, shape)?,
                w_scale: f32v(&format!("{name}.weight_scale"), &[cout], true)?,
                bias: f32v(&format!("{name}.bias"), &[cout], false)?,
                out: qparams(&format!("{name}.out_quant"))?,
            })
        };
        let first_name = ConvRef::Down(0, 1).name();
        let float_first = match get("float_layers")?.as_str() {
            v if v == format!("{first_name},final_conv") => true,
            "final_conv" => false,
            v => {
                return Err(Error::BadMetadata {
                    key: "float_layers".into(),
                    value: v.into(),
                    reason: format!(
                        "this build runs `{first_name},final_conv` or `final_conv` in float32"
                    ),
                })
            }
        };
        let mut convs = HashMap::new();
        let d = spec.depth();
        let mut cin = spec.in_channels;
        for (l, &f) in spec.features.iter().enumerate() {
            if l > 0 || !float_first {
                convs.insert(
                    ConvRef::Down(l, 1),
                    qconv(ConvRef::Down(l, 1).name(), [f, cin, 3, 3], f)?,
                );
            }
            convs.insert(
                ConvRef::Down(l, 2),
                qconv(ConvRef::Down(l, 2).name(), [f, f, 3, 3], f)?,
            );
            cin = f;
        }
        let last = spec.features[d - 1];
        convs.insert(
            ConvRef::Bottleneck(1),
            qconv(
                ConvRef::Bottleneck(1).name(),
                [2 * last, last, 3, 3],
                2 * last,
            )?,
        );
        convs.insert(
            ConvRef::Bottleneck(2),
            qconv(
                ConvRef::Bottleneck(2).name(),
                [2 * last, 2 * last, 3, 3],
                2 * last,
            )?,
        );
        let mut ups = Vec::new();
        for (l, &f) in spec.features.iter().rev().enumerate() {
            ups.push(qconv(format!("ups.{}", 2 * l), [2 * f, f, 2, 2], f)?);
            convs.insert(
                ConvRef::Up(l, 1),
                qconv(ConvRef::Up(l, 1).name(), [f, 2 * f, 3, 3], f)?,
            );
            convs.insert(
                ConvRef::Up(l, 2),
                qconv(ConvRef::Up(l, 2).name(), [f, f, 3, 3], f)?,
            );
        }
        let first = first_name;
        let f0 = spec.features[0];
        let (first_conv, first_out) = if float_first {
            let w = ConvWeights {
                shape: [f0, spec.in_channels, 3, 3],
                weight: f32v(
                    &format!("{first}.weight"),
                    &[f0, spec.in_channels, 3, 3],
                    false,
                )?,
                bias: Some(f32v(&format!("{first}.bias"), &[f0], false)?),
            };
            (FirstConv::Float(w), qparams(&format!("{first}.out_quant"))?)
        } else {
            let out = convs[&ConvRef::Down(0, 1)].out;
            (FirstConv::Int8(qparams("input_quant")?), out)
        };
        let oc = spec.out_channels;
        let head = ConvWeights {
            shape: [oc, f0, 1, 1],
            weight: f32v("final_conv.weight", &[oc, f0, 1, 1], false)?,
            bias: Some(f32v("final_conv.bias", &[oc], false)?),
        };
        Ok(QUNet {
            first_out,
            spec,
            first: first_conv,
            convs,
            ups,
            head,
        })
    }
}

/// Whether safetensors bytes declare the int8 format (`format` metadata).
pub fn is_int8_file(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().and_then(|m| m.get("format").cloned()))
        .is_some_and(|f| f == FORMAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{prune, PruneOptions, Scope};
    use crate::model::{init_random, InitOptions};

    #[test]
    fn sparse_weights_round_trip_and_bad_masks_are_rejected() {
        let mut m = init_random(&UNetSpec::new(3, 2, vec![4, 8]), &InitOptions { seed: 9 });
        prune(
            &mut m,
            &PruneOptions {
                amount: 0.85,
                scope: Scope::Global,
                prune_transposed: true,
                block: Default::default(),
            },
        )
        .unwrap();
        let x = Tensor::new(
            [1, 3, 12, 12],
            (0..432).map(|i| (i as f32 * 0.1).sin()).collect(),
        )
        .unwrap();
        let q = quantize(&m, std::slice::from_ref(&x)).unwrap();
        let bytes = q.to_safetensors().unwrap();
        let back = QUNet::from_safetensors(&bytes).unwrap();
        for (r, c) in &q.convs {
            assert_eq!(back.convs[r].weight, c.weight, "{}", r.name());
        }
        assert_eq!(back.ups[0].weight, q.ups[0].weight);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert!(
            st.tensor("bottleneck.conv2.weight_mask").is_ok(),
            "a sparse layer is stored as a bitmap"
        );
        // Flip one mask bit: the count of nonzeros no longer matches their values.
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(k, t)| (k, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        let e = tensors
            .iter_mut()
            .find(|t| t.0 == "bottleneck.conv2.weight_mask")
            .unwrap();
        e.3[0] ^= 1;
        let views: Vec<_> = tensors
            .iter()
            .map(|(k, d, s, b)| {
                (
                    k.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let bad = safetensors::serialize(views, meta.metadata().clone()).unwrap();
        let err = QUNet::from_safetensors(&bad).unwrap_err().to_string();
        assert!(err.contains("bottleneck.conv2.weight_nz"), "{err}");
    }
}
