//! Plan-time evaluation of ops whose inputs are all constants: the shape arithmetic of ONNX
//! exports (`Shape → Gather → Unsqueeze → Concat → Resize`'s sizes, milesial's pad amounts, …)
//! and constant subgraphs. Small N-D tensors, computed in f64 (exact for the integers of shapes
//! and for float32 values).

use super::instantiate::norm_axis;
use super::{BinOp, Const, ConstData, Op};
use crate::{Error, Result};

/// A constant during folding: values as f64, with whether it is an integer tensor.
#[derive(Clone, Debug)]
struct T {
    shape: Vec<usize>,
    v: Vec<f64>,
    int: bool,
}

impl T {
    fn from(c: &Const) -> T {
        match &c.data {
            ConstData::F32(v) => T {
                shape: c.shape.clone(),
                v: v.iter().map(|&x| x as f64).collect(),
                int: false,
            },
            ConstData::I64(v) => T {
                shape: c.shape.clone(),
                v: v.iter().map(|&x| x as f64).collect(),
                int: true,
            },
        }
    }

    fn into_const(self) -> Const {
        if self.int {
            Const::i64(self.shape, self.v.iter().map(|&x| x as i64).collect())
        } else {
            Const::f32(self.shape, self.v.iter().map(|&x| x as f32).collect())
        }
    }

    fn scalar(&self) -> Result<f64> {
        match self.v.as_slice() {
            [x] => Ok(*x),
            _ => Err(fold_err(format!(
                "expected one value, got shape {:?}",
                self.shape
            ))),
        }
    }
}

fn fold_err(reason: impl Into<String>) -> Error {
    Error::BadModel(reason.into())
}

/// Shape arithmetic makes small tensors: anything over 2^24 values is refused, not allocated.
fn check_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= 1 << 24)
        .ok_or_else(|| {
            fold_err(format!(
                "a constant of shape {shape:?} is too large to fold"
            ))
        })
}

/// `Shape` with its `start`/`end` attributes.
pub(super) fn shape_of(shape: &[usize], start: i64, end: Option<i64>) -> Const {
    let r = shape.len() as i64;
    let clamp = |a: i64| if a < 0 { (a + r).max(0) } else { a.min(r) } as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    let dims: Vec<i64> = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
    Const::i64(vec![dims.len()], dims)
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// NumPy broadcasting of several shapes.
fn broadcast_shape(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        for (k, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + k];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(fold_err(format!("shapes {shapes:?} do not broadcast")));
            }
        }
    }
    Ok(out)
}

/// `t`'s values broadcast to `shape`.
fn expand_to(t: &T, shape: &[usize]) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let rank = shape.len();
    let ts = strides(&t.shape);
    let os = strides(shape);
    (0..n)
        .map(|i| {
            let mut off = 0;
            for k in 0..t.shape.len() {
                let ok = rank - t.shape.len() + k;
                let idx = (i / os[ok]) % shape[ok];
                if t.shape[k] != 1 {
                    off += idx * ts[k];
                }
            }
            t.v[off]
        })
        .collect()
}

fn elementwise(ts: &[&T], int: bool, f: impl Fn(&[f64]) -> f64) -> Result<T> {
    let shape = broadcast_shape(&ts.iter().map(|t| t.shape.as_slice()).collect::<Vec<_>>())?;
    check_numel(&shape)?;
    let cols: Vec<Vec<f64>> = ts.iter().map(|t| expand_to(t, &shape)).collect();
    let n: usize = shape.iter().product();
    let mut args = vec![0.0; ts.len()];
    let v = (0..n)
        .map(|i| {
            for (a, c) in args.iter_mut().zip(&cols) {
                *a = c[i];
            }
            f(&args)
        })
        .collect();
    Ok(T { shape, v, int })
}

fn axes_of(attr: &Option<Vec<i64>>, input: Option<&T>) -> Option<Vec<i64>> {
    attr.clone()
        .or_else(|| input.map(|t| t.v.iter().map(|&x| x as i64).collect()))
}

/// Evaluates `op` on constant inputs (`None`: an omitted optional input).
pub(super) fn eval(op: &Op, inputs: &[Option<Const>]) -> Result<Const> {
    let ts: Vec<Option<T>> = inputs.iter().map(|c| c.as_ref().map(T::from)).collect();
    let arg = |k: usize| -> Result<&T> {
        ts.get(k)
            .and_then(|t| t.as_ref())
            .ok_or_else(|| fold_err(format!("missing input {k}")))
    };
    let x = arg(0)?;
    let out = match op {
        Op::Identity => x.clone(),
        Op::Cast { to_float } => T {
            shape: x.shape.clone(),
            v: if *to_float {
                x.v.clone()
            } else {
                x.v.iter().map(|v| v.trunc()).collect()
            },
            int: !to_float,
        },
        Op::Binary(b) => {
            let y = arg(1)?;
            let int = x.int && y.int;
            let b = *b;
            // Integers exactly (Div truncates, as ONNX Runtime does); floats in float32.
            elementwise(&[x, y], int, |a| match (int, b) {
                (true, BinOp::Add) => a[0] + a[1],
                (true, BinOp::Sub) => a[0] - a[1],
                (true, BinOp::Mul) => a[0] * a[1],
                (true, BinOp::Div) => {
                    if a[1] == 0.0 {
                        0.0
                    } else {
                        (a[0] / a[1]).trunc()
                    }
                }
                (false, _) => b.apply(a[0] as f32, a[1] as f32) as f64,
            })?
        }
        Op::Pow => elementwise(&[x, arg(1)?], x.int, |a| a[0].powf(a[1]))?,
        Op::Equal => elementwise(&[x, arg(1)?], true, |a| (a[0] == a[1]) as i64 as f64)?,
        Op::Where => {
            let (a, b) = (arg(1)?, arg(2)?);
            elementwise(&[x, a, b], a.int && b.int, |v| {
                if v[0] != 0.0 {
                    v[1]
                } else {
                    v[2]
                }
            })?
        }
        Op::Floor => T {
            v: x.v.iter().map(|v| v.floor()).collect(),
            ..x.clone()
        },
        Op::Ceil => T {
            v: x.v.iter().map(|v| v.ceil()).collect(),
            ..x.clone()
        },
        Op::Sqrt => T {
            v: x.v.iter().map(|v| v.sqrt()).collect(),
            ..x.clone()
        },
        Op::Neg => T {
            v: x.v.iter().map(|v| -v).collect(),
            ..x.clone()
        },
        Op::Act(a) => T {
            v: x.v.iter().map(|&v| a.apply(v as f32, 0) as f64).collect(),
            ..x.clone()
        },
        Op::Clip => {
            let lo = ts
                .get(1)
                .and_then(|t| t.as_ref())
                .map_or(Ok(f64::NEG_INFINITY), T::scalar)?;
            let hi = ts
                .get(2)
                .and_then(|t| t.as_ref())
                .map_or(Ok(f64::INFINITY), T::scalar)?;
            T {
                v: x.v.iter().map(|v| v.max(lo).min(hi)).collect(),
                ..x.clone()
            }
        }
        Op::Gather { axis } => {
            let idx = arg(1)?;
            let r = x.shape.len();
            let ax = norm_axis(*axis, r)?;
            let dim = x.shape[ax];
            let outer: usize = x.shape[..ax].iter().product();
            let inner: usize = x.shape[ax + 1..].iter().product();
            let mut v = Vec::new();
            for o in 0..outer {
                for &i in &idx.v {
                    let i = i as i64;
                    let i = if i < 0 { i + dim as i64 } else { i };
                    if i < 0 || i >= dim as i64 {
                        return Err(fold_err(format!(
                            "Gather index {i} out of range for dim {dim}"
                        )));
                    }
                    let base = (o * dim + i as usize) * inner;
                    v.extend_from_slice(&x.v[base..base + inner]);
                }
            }
            let mut shape = x.shape[..ax].to_vec();
            shape.extend(&idx.shape);
            shape.extend(&x.shape[ax + 1..]);
            T {
                shape,
                v,
                int: x.int,
            }
        }
        Op::Slice { attr } => {
            let (starts, ends, axes, steps) = match attr {
                Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), vec![1; s.len()]),
                None => {
                    let ints = |k: usize| inputs.get(k).and_then(|c| c.as_ref()).map(Const::as_i64);
                    let starts = ints(1).ok_or_else(|| fold_err("Slice without starts"))?;
                    let ends = ints(2).ok_or_else(|| fold_err("Slice without ends"))?;
                    let axes = ints(3).unwrap_or_else(|| (0..starts.len() as i64).collect());
                    let steps = ints(4).unwrap_or_else(|| vec![1; starts.len()]);
                    (starts, ends, axes, steps)
                }
            };
            let r = x.shape.len();
            let mut ranges: Vec<(i64, i64, i64)> =
                x.shape.iter().map(|&d| (0, d as i64, 1)).collect();
            for k in 0..starts.len() {
                let ax = norm_axis(*axes.get(k).ok_or_else(|| fold_err("Slice axes"))?, r)?;
                let d = x.shape[ax] as i64;
                let step = *steps.get(k).unwrap_or(&1);
                if step == 0 {
                    return Err(fold_err("Slice step 0"));
                }
                let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
                let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (s, e) = (
                    fix(starts[k]),
                    fix(*ends.get(k).ok_or_else(|| fold_err("Slice ends"))?),
                );
                ranges[ax] = if step > 0 {
                    (clampi(s, 0, d), clampi(e, 0, d), step)
                } else {
                    (clampi(s, 0, d - 1), clampi(e, -1, d - 1), step)
                };
            }
            let idx: Vec<Vec<usize>> = ranges
                .iter()
                .map(|&(s, e, st)| {
                    let mut v = Vec::new();
                    let mut i = s;
                    while (st > 0 && i < e) || (st < 0 && i > e) {
                        v.push(i as usize);
                        i += st;
                    }
                    v
                })
                .collect();
            let shape: Vec<usize> = idx.iter().map(Vec::len).collect();
            let xs = strides(&x.shape);
            let n: usize = shape.iter().product();
            let os = strides(&shape);
            let v = (0..n)
                .map(|i| {
                    let off: usize = (0..r).map(|k| idx[k][(i / os[k]) % shape[k]] * xs[k]).sum();
                    x.v[off]
                })
                .collect();
            T {
                shape,
                v,
                int: x.int,
            }
        }
        Op::Unsqueeze { axes } => {
            let axes = axes_of(axes, ts.get(1).and_then(|t| t.as_ref()))
                .ok_or_else(|| fold_err("Unsqueeze without axes"))?;
            let r = x.shape.len() + axes.len();
            let mut ax: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<Result<_>>()?;
            ax.sort_unstable();
            let mut shape = x.shape.clone();
            for a in ax {
                shape.insert(a.min(shape.len()), 1);
            }
            T { shape, ..x.clone() }
        }
        Op::Squeeze { axes } => {
            let r = x.shape.len();
            let shape = match axes_of(axes, ts.get(1).and_then(|t| t.as_ref())) {
                Some(a) => {
                    let ax: Vec<usize> =
                        a.iter().map(|&a| norm_axis(a, r)).collect::<Result<_>>()?;
                    x.shape
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| !ax.contains(k))
                        .map(|(_, &d)| d)
                        .collect()
                }
                None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
            };
            T { shape, ..x.clone() }
        }
        Op::Reshape => {
            let target = arg(1)?;
            let n = x.v.len();
            let mut shape: Vec<i64> = target.v.iter().map(|&v| v as i64).collect();
            for (k, s) in shape.iter_mut().enumerate() {
                if *s == 0 {
                    *s = *x
                        .shape
                        .get(k)
                        .ok_or_else(|| fold_err("Reshape 0 past the rank"))?
                        as i64;
                }
            }
            let known: i64 = shape.iter().filter(|&&s| s != -1).product();
            if let Some(p) = shape.iter().position(|&s| s == -1) {
                shape[p] = if known == 0 { 0 } else { n as i64 / known };
            }
            let shape: Vec<usize> = shape.iter().map(|&s| s.max(0) as usize).collect();
            if shape.iter().product::<usize>() != n {
                return Err(fold_err(format!("Reshape of {:?} to {shape:?}", x.shape)));
            }
            T { shape, ..x.clone() }
        }
        Op::Transpose { perm } => {
            let r = x.shape.len();
            let perm: Vec<usize> = match perm {
                Some(p) => p.iter().map(|&a| norm_axis(a, r)).collect::<Result<_>>()?,
                None => (0..r).rev().collect(),
            };
            if perm.len() != r {
                return Err(fold_err(format!("Transpose perm {perm:?} for rank {r}")));
            }
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let (xs, os) = (strides(&x.shape), strides(&shape));
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| {
                    x.v[(0..r)
                        .map(|k| (i / os[k]) % shape[k] * xs[perm[k]])
                        .sum::<usize>()]
                })
                .collect();
            T {
                shape,
                v,
                int: x.int,
            }
        }
        Op::ConstantOfShape { value } => {
            let shape: Vec<usize> = x.v.iter().map(|&v| v.max(0.0) as usize).collect();
            let n = check_numel(&shape)?;
            let (float, val) = value.unwrap_or((true, 0.0));
            T {
                shape,
                v: vec![val; n],
                int: !float,
            }
        }
        Op::Range => {
            let (s, l, d) = (x.scalar()?, arg(1)?.scalar()?, arg(2)?.scalar()?);
            if d == 0.0 {
                return Err(fold_err("Range with delta 0"));
            }
            let n = ((l - s) / d).ceil().max(0.0) as usize;
            if n > 1 << 20 {
                return Err(fold_err("Range of more than 2^20 values"));
            }
            T {
                shape: vec![n],
                v: (0..n).map(|i| s + i as f64 * d).collect(),
                int: x.int,
            }
        }
        Op::Expand => {
            let target: Vec<usize> = arg(1)?.v.iter().map(|&v| v.max(0.0) as usize).collect();
            let shape = broadcast_shape(&[&x.shape, &target])?;
            check_numel(&shape)?;
            T {
                v: expand_to(x, &shape),
                shape,
                int: x.int,
            }
        }
        Op::Concat { axis } => {
            let parts: Vec<&T> = ts.iter().flatten().collect();
            let r = parts[0].shape.len();
            let ax = norm_axis(*axis, r)?;
            let outer: usize = parts[0].shape[..ax].iter().product();
            let mut shape = parts[0].shape.clone();
            shape[ax] = parts
                .iter()
                .map(|p| p.shape.get(ax).copied().unwrap_or(0))
                .sum();
            for p in &parts {
                if p.shape.len() != r
                    || p.shape[..ax] != shape[..ax]
                    || p.shape[ax + 1..] != shape[ax + 1..]
                {
                    return Err(fold_err(format!(
                        "Concat of {:?} and {:?}",
                        parts[0].shape, p.shape
                    )));
                }
            }
            let mut v = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let chunk: usize = p.shape[ax..].iter().product();
                    v.extend_from_slice(&p.v[o * chunk..(o + 1) * chunk]);
                }
            }
            T {
                shape,
                v,
                int: parts.iter().all(|p| p.int),
            }
        }
        other => {
            return Err(fold_err(format!(
                "{} of constants cannot be folded",
                other.name()
            )))
        }
    };
    Ok(out.into_const())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_gather_slice_concat() {
        let s = shape_of(&[2, 3, 37, 45], 0, None);
        let idx = Const::i64(vec![], vec![2]);
        let h = eval(&Op::Gather { axis: 0 }, &[Some(s.clone()), Some(idx)]).unwrap();
        assert_eq!(h, Const::i64(vec![], vec![37]));
        let hw = eval(
            &Op::Slice { attr: None },
            &[
                Some(s),
                Some(Const::i64(vec![1], vec![2])),
                Some(Const::i64(vec![1], vec![i64::MAX])),
            ],
        )
        .unwrap();
        assert_eq!(hw, Const::i64(vec![2], vec![37, 45]));
        let u = eval(
            &Op::Unsqueeze {
                axes: Some(vec![0]),
            },
            &[Some(h)],
        )
        .unwrap();
        let c = eval(&Op::Concat { axis: 0 }, &[Some(u.clone()), Some(u)]).unwrap();
        assert_eq!(c, Const::i64(vec![2], vec![37, 37]));
        let d = eval(
            &Op::Binary(BinOp::Div),
            &[
                Some(Const::i64(vec![], vec![7])),
                Some(Const::i64(vec![], vec![2])),
            ],
        )
        .unwrap();
        assert_eq!(d.as_i64(), [3]);
    }
}
