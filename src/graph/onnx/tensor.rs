//! Initializers and `Constant` nodes as constants: element types widened (floats to f32,
//! integers and bools to i64), external data read once per file and confined to the model's
//! folder, float weights checked finite.

use std::collections::HashMap;
use std::path::{Component, Path};

use super::proto::{NodeProto, TensorProto};
use super::{bad, dtype_name};
use crate::graph::Const;
use crate::{Error, Result};

/// Reads external data files once each, confined to the model's folder.
pub(super) struct ExternalData<'d> {
    dir: Option<&'d Path>,
    files: HashMap<String, Vec<u8>>,
}

impl<'d> ExternalData<'d> {
    pub(super) fn new(dir: Option<&'d Path>) -> Self {
        ExternalData {
            dir,
            files: HashMap::new(),
        }
    }

    fn read(&mut self, t: &TensorProto, info: &HashMap<String, String>) -> Result<Vec<u8>> {
        let loc = info.get("location").ok_or_else(|| {
            bad(format!(
                "tensor `{}`: external data without a location",
                t.name
            ))
        })?;
        let rel = Path::new(loc);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad(format!(
                "tensor `{}`: external data path `{loc}` leaves the model's folder (refused)",
                t.name
            )));
        }
        let dir = self.dir.ok_or_else(|| {
            bad(format!(
                "tensor `{}` keeps its data in the external file `{loc}`, which bytes alone cannot reach (load the file from disk, or save the model with its weights inside)",
                t.name
            ))
        })?;
        if !self.files.contains_key(loc) {
            let p = dir.join(rel);
            let data = std::fs::read(&p).map_err(|e| {
                bad(format!(
                    "tensor `{}`: cannot read external data {}: {e}",
                    t.name,
                    p.display()
                ))
            })?;
            self.files.insert(loc.clone(), data);
        }
        let file = &self.files[loc];
        let num = |k: &str| -> Result<Option<usize>> {
            info.get(k)
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| bad(format!("tensor `{}`: bad external {k} `{v}`", t.name)))
                })
                .transpose()
        };
        let offset = num("offset")?.unwrap_or(0);
        let length = match num("length")? {
            Some(l) => l,
            None => file.len().saturating_sub(offset),
        };
        if offset
            .checked_add(length)
            .is_none_or(|end| end > file.len())
        {
            return Err(bad(format!(
                "tensor `{}`: external data `{loc}` is {} bytes, the tensor needs bytes {offset}..{}",
                t.name,
                file.len(),
                offset.saturating_add(length)
            )));
        }
        Ok(file[offset..offset + length].to_vec())
    }
}

/// An initializer or constant as a `Const`: floats (f32, f16, bf16, f64) as f32, integers and
/// bools as i64. Float weights must be finite.
pub(super) fn tensor_const(t: &TensorProto, ext: &mut ExternalData) -> Result<Const> {
    if t.segmented {
        return Err(bad(format!(
            "tensor `{}` is segmented (not supported)",
            t.name
        )));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| bad(format!("tensor `{}` has a negative dim {d}", t.name)))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c as u64 <= (isize::MAX as u64) / 8)
            .ok_or_else(|| {
                bad(format!(
                    "tensor `{}` has an absurd shape {:?}",
                    t.name, t.dims
                ))
            })?;
        shape.push(d);
    }
    let external;
    let raw: Option<&[u8]> = match &t.external {
        Some(info) => {
            external = ext.read(t, info)?;
            Some(&external)
        }
        None => t.raw,
    };
    let width = match t.data_type {
        1 | 6 => 4,
        7 | 11 => 8,
        10 | 16 | 5 => 2,
        2 | 3 | 9 => 1,
        dt => {
            return Err(bad(format!(
                "tensor `{}` has element type {dt} ({}), not supported",
                t.name,
                dtype_name(dt)
            )))
        }
    };
    let dims = t.dims.clone();
    let wrong = |got: usize| {
        bad(format!(
            "tensor `{}` holds {got} values, its shape {dims:?} needs {count}",
            t.name
        ))
    };
    let c = if let Some(raw) = raw {
        if raw.len() != count * width {
            return Err(wrong(raw.len() / width));
        }
        match t.data_type {
            1 => Const::f32(
                shape,
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            11 => Const::f32(
                shape,
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
            ),
            10 => Const::f32(
                shape,
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            16 => Const::f32(
                shape,
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            6 => Const::i64(
                shape,
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                    .collect(),
            ),
            7 => Const::i64(
                shape,
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            5 => Const::i64(
                shape,
                raw.chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
                    .collect(),
            ),
            3 => Const::i64(shape, raw.iter().map(|&b| b as i8 as i64).collect()),
            _ => Const::i64(shape, raw.iter().map(|&b| b as i64).collect()),
        }
    } else {
        let c = match t.data_type {
            1 => Const::f32(shape, t.floats.clone()),
            11 => Const::f32(shape, t.doubles.iter().map(|&v| v as f32).collect()),
            10 => Const::f32(
                shape,
                t.int32s
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            16 => Const::f32(
                shape,
                t.int32s
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            7 => Const::i64(shape, t.int64s.clone()),
            _ => Const::i64(shape, t.int32s.clone()),
        };
        if c.len() != count {
            return Err(wrong(c.len()));
        }
        c
    };
    if let crate::graph::ConstData::F32(v) = &c.data {
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite {
                key: t.name.clone(),
                index,
                value,
            });
        }
    }
    Ok(c)
}

pub(super) fn constant_node(n: &NodeProto, label: &str, ext: &mut ExternalData) -> Result<Const> {
    let a = n
        .attributes
        .first()
        .ok_or_else(|| bad(format!("Constant `{label}` has no value")))?;
    match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| bad(format!("Constant `{label}`: `value` is not a tensor")))?;
            tensor_const(t, ext)
        }
        "value_float" => Ok(Const::f32(vec![], vec![a.f.unwrap_or(0.0)])),
        "value_floats" => Ok(Const::f32(vec![a.floats.len()], a.floats.clone())),
        "value_int" => Ok(Const::i64(vec![], vec![a.i.unwrap_or(0)])),
        "value_ints" => Ok(Const::i64(vec![a.ints.len()], a.ints.clone())),
        other => Err(bad(format!(
            "Constant `{label}`: value kind `{other}` is not supported"
        ))),
    }
}
