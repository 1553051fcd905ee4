//! `wunet compress`: pruning and int8 quantization of a float model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use wunet::compress::{prune, quantize_with, Block, PruneOptions, QuantOptions, Scope};
use wunet::io::{load_image, read_npy};
use wunet::model::{save_safetensors, StoreDtype};
use wunet::{Tensor, UNetSpec};

use crate::{load_model, mib, model_path, write_atomic};

/// Calibration inputs: every image (not `*_mask.*`) and `.npy` of `dir`, or the demo sample.
fn calibration_inputs(dir: Option<&Path>, spec: &UNetSpec) -> Result<Vec<Tensor>> {
    let Some(dir) = dir else {
        let sample = model_path(None).with_file_name("cells.png");
        eprintln!(
            "wunet: warning: no --calibrate folder; calibrating on {} alone",
            sample.display()
        );
        return Ok(vec![load_image(&sample, spec)?.tensor]);
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let ext = f
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let t = match ext.as_str() {
            "npy" => read_npy(&f),
            "png" | "jpg" | "jpeg" if !stem.ends_with("_mask") => {
                load_image(&f, spec).map(|i| i.tensor)
            }
            _ => continue,
        };
        match t {
            Ok(t)
                if t.c() == spec.in_channels
                    && t.h() >= spec.min_input_side()
                    && t.w() >= spec.min_input_side() =>
            {
                out.push(t)
            }
            Ok(t) => eprintln!(
                "wunet: skipping {} for calibration: shape {:?}",
                f.display(),
                t.shape
            ),
            Err(e) => eprintln!("wunet: skipping {} for calibration: {e}", f.display()),
        }
    }
    if out.is_empty() {
        bail!(
            "{}: the calibration folder has no usable images or .npy arrays",
            dir.display()
        );
    }
    Ok(out)
}

/// What `compress` was asked, as the command line spells it.
pub(crate) struct CompressArgs<'a> {
    pub model: Option<&'a Path>,
    pub amount: Option<f64>,
    pub scope: &'a str,
    pub block: &'a str,
    pub transposed: bool,
    /// `None` keeps float32; `Some(dir)` quantizes to int8 with inputs from `dir`.
    pub calibrate: Option<Option<&'a Path>>,
    pub float_first: bool,
    pub out: &'a Path,
}

pub(crate) fn compress(a: CompressArgs) -> Result<()> {
    let CompressArgs {
        model,
        amount,
        scope,
        block,
        transposed,
        calibrate,
        float_first,
        out,
    } = a;
    let scope: Scope = scope.parse()?;
    let block: Block = block.parse()?;
    if float_first && calibrate.is_none() {
        bail!("--float-first applies to --int8 only");
    }
    if amount.is_none() && calibrate.is_none() {
        bail!("nothing to do: give --prune AMOUNT and/or --int8");
    }
    if model.is_some_and(|p| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    }) {
        bail!("compressing imported (ONNX) models is not supported yet: `compress` runs on reference U-Net safetensors files (infer, info, bench and eval take .onnx)");
    }
    let (_, mut m) = load_model(model)?;
    if let Some(amount) = amount {
        let (zeroed, total) = prune(
            &mut m,
            &PruneOptions {
                amount,
                scope,
                prune_transposed: transposed,
                block,
            },
        )?;
        eprintln!(
            "pruned {zeroed} of {total} weights ({:.1} %, {scope:?} scope)",
            100.0 * zeroed as f64 / total.max(1) as f64
        );
    }
    let bytes = match calibrate {
        None => save_safetensors(&m, StoreDtype::F32)?,
        Some(dir) => {
            let calib = calibration_inputs(dir, &m.spec)?;
            eprintln!("calibrating int8 activations on {} input(s)", calib.len());
            quantize_with(&m, &calib, &QuantOptions { float_first })?.to_safetensors()?
        }
    };
    write_atomic(out, &bytes)?;
    eprintln!("wrote {} ({})", out.display(), mib(bytes.len() as u64));
    Ok(())
}
