//! NumPy `.npy` files: float32 (f64 and f16 are converted), C order; shapes NCHW, CHW or HW.

use std::path::Path;

use crate::tensor::Tensor;
use crate::{Error, Result};

/// Read an array as an NCHW tensor: HW becomes [1, 1, H, W], CHW becomes [1, C, H, W].
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|reason| Error::Npy {
        path: path.into(),
        reason,
    })
}

/// Parse the bytes of a `.npy` file (as `read_npy`; the fuzz target's entry).
pub fn npy_from_bytes(b: &[u8]) -> Result<Tensor> {
    parse_npy(b).map_err(|reason| Error::Npy {
        path: "<memory>".into(),
        reason,
    })
}

fn parse_npy(b: &[u8]) -> std::result::Result<Tensor, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, hstart) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = b.get(hstart..hstart + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |name: &str| -> std::result::Result<&str, String> {
        let key = format!("'{name}':");
        let at = header.find(&key).ok_or(format!("header has no {name}"))? + key.len();
        Ok(header[at..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .get(1..)
        .and_then(|d| d.split('\'').next())
        .ok_or("bad descr")?;
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered arrays are not supported (use np.ascontiguousarray)".into());
    }
    let shape_txt = field("shape")?;
    let inner = shape_txt
        .strip_prefix('(')
        .and_then(|t| t.split_once(')'))
        .map(|(inner, _)| inner)
        .ok_or("bad shape: expected a tuple")?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s:?}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let shape = match dims[..] {
        [h, w] => [1, 1, h, w],
        [c, h, w] => [1, c, h, w],
        [n, c, h, w] => [n, c, h, w],
        _ => return Err(format!("shape {dims:?}: expected HW, CHW or NCHW")),
    };
    if dims.contains(&0) {
        return Err(format!("shape {dims:?}: a zero-sized array"));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let data = &b[hstart + hlen..];
    let (size, conv): (usize, fn(&[u8]) -> f32) = match descr {
        "<f4" | "=f4" => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        "<f8" | "=f8" => (8, |c| f64::from_le_bytes(c.try_into().unwrap()) as f32),
        "<f2" | "=f2" => (2, |c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        d => return Err(format!("dtype {d:?} is not supported (float32 expected)")),
    };
    let need = count.checked_mul(size).ok_or("shape overflows")?;
    if data.len() < need {
        return Err(format!(
            "truncated: shape {dims:?} needs {need} bytes of data, the file has {}",
            data.len()
        ));
    }
    let values = data[..need].chunks_exact(size).map(conv).collect();
    Tensor::new(shape, values).map_err(|e| e.to_string())
}

/// Write an NCHW tensor as float32 `.npy` (version 1.0).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let s = t.shape;
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        s[0], s[1], s[2], s[3]
    );
    // Pad so the data starts on a 64-byte boundary, header ends with '\n'.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * t.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytemuck::cast_slice(&t.data));
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("wunet-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.npy");
        let t = Tensor::new(
            [2, 3, 4, 5],
            (0..120).map(|i| i as f32 * 0.5 - 3.0).collect(),
        )
        .unwrap();
        write_npy(&p, &t).unwrap();
        assert_eq!(read_npy(&p).unwrap(), t);
        let bytes = std::fs::read(&p).unwrap();
        assert!(parse_npy(&bytes[..bytes.len() - 4])
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_npy(b"PK\x03\x04 not numpy")
            .unwrap_err()
            .contains("magic"));
        std::fs::remove_dir_all(dir).ok();
    }
}
