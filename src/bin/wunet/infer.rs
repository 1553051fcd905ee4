//! `wunet infer`: images or arrays in, masks or logits out; one file, several, or folders.
//!
//! With several inputs (or a folder) the outputs go to a directory, a thread decodes the next
//! input while the engine runs the current one, plans are reused per input size, a broken file is
//! reported and skipped (exit code 1 at the end if any failed), existing outputs are kept unless
//! `--force`, and every output is written to a temporary name and renamed into place.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

use wunet::io::{load_image, mask_image, overlay, read_npy, save_image, write_npy};
use wunet::{Tensor, UNetSpec};

use crate::{is_npy, load_any, numbered, Device, Engine, Format};

/// What `infer` was asked, as the command line spells it.
pub(crate) struct InferArgs<'a> {
    pub inputs: &'a [PathBuf],
    pub model: Option<&'a Path>,
    pub output: &'a Path,
    pub overlay: Option<&'a Path>,
    pub format: Format,
    pub device: Device,
    pub fold: bool,
    pub tile: Option<usize>,
    pub margin: Option<usize>,
    pub force: bool,
    /// Activation memory budget in bytes; larger images are tiled.
    pub max_memory: u64,
}

/// Some inputs of a batch failed (each already reported): exit code 1.
#[derive(Debug)]
pub(crate) struct SomeFailed(pub String);

impl std::fmt::Display for SomeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SomeFailed {}

/// Inputs, with folders replaced by the images and `.npy` arrays they hold (sorted).
fn expand(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, bool)> {
    let mut files = Vec::new();
    let mut folder = false;
    for p in inputs {
        if p.is_dir() {
            folder = true;
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.extension().is_some_and(|e| {
                            let e = e.to_string_lossy().to_ascii_lowercase();
                            matches!(e.as_str(), "png" | "jpg" | "jpeg" | "npy")
                        })
                })
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        bail!("no images or .npy arrays in {inputs:?}");
    }
    Ok((files, folder))
}

/// A decoded input: the tensor, and the picture for overlays.
type Decoded = wunet::Result<(Tensor, Option<RgbImage>)>;

fn decode(path: &Path, spec: &UNetSpec) -> Decoded {
    if is_npy(path) {
        Ok((read_npy(path)?, None))
    } else {
        let img = load_image(path, spec)?;
        Ok((img.tensor, Some(img.rgb)))
    }
}

/// Write through `f` to a temporary name beside `path` (same extension), then rename.
fn atomic(path: &Path, f: impl FnOnce(&Path) -> wunet::Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}{ext}", std::process::id()));
    let r = f(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|_| std::fs::rename(&tmp, path).map_err(Into::into));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn infer(a: InferArgs) -> Result<()> {
    let (_, model) = load_any(a.model)?;
    let (files, folder) = expand(a.inputs)?;
    let many = files.len() > 1 || folder || a.output.is_dir();
    if many {
        std::fs::create_dir_all(a.output)
            .with_context(|| format!("creating {}", a.output.display()))?;
        if let Some(o) = a.overlay {
            std::fs::create_dir_all(o).with_context(|| format!("creating {}", o.display()))?;
        }
    }
    let mut engine = Engine::for_model(model, a.device, a.fold)?;
    let spec = engine.spec().clone();
    // Decode one input ahead of the engine.
    let (tx, rx) = mpsc::sync_channel::<(PathBuf, Decoded)>(1);
    let todo = files.clone();
    let decoder = std::thread::spawn(move || {
        for f in todo {
            let d = decode(&f, &spec);
            if tx.send((f, d)).is_err() {
                break;
            }
        }
    });
    let bar = if many {
        let b = ProgressBar::new(files.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} (eta {eta}) {msg}")
                .expect("a valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let t_all = Instant::now();
    let mut failed = Vec::new();
    for (input, decoded) in rx {
        let r = decoded
            .map_err(anyhow::Error::from)
            .and_then(|(x, picture)| one(&a, &mut engine, many, &input, x, picture));
        match r {
            Ok(line) => say(&bar, line),
            Err(e) if many => {
                say(&bar, format!("wunet: {}: {e:#} (skipped)", input.display()));
                failed.push(input.clone());
            }
            Err(e) => return Err(e),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    decoder.join().ok();
    if many {
        eprintln!(
            "{} of {} inputs done in {:.1} s on {}{}",
            files.len() - failed.len(),
            files.len(),
            t_all.elapsed().as_secs_f64(),
            engine.name(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; {} failed", failed.len())
            }
        );
    }
    if !failed.is_empty() {
        return Err(SomeFailed(format!(
            "{} of {} inputs failed: {}",
            failed.len(),
            files.len(),
            failed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    Ok(())
}

/// A line above the progress bar (on stderr as is where the bar is hidden: not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Run and write one input; the report line.
fn one(
    a: &InferArgs,
    engine: &mut Engine,
    many: bool,
    input: &Path,
    x: Tensor,
    picture: Option<RgbImage>,
) -> Result<String> {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let out = if many {
        a.output.join(format!(
            "{stem}.{}",
            if a.format == Format::Npy {
                "npy"
            } else {
                "png"
            }
        ))
    } else {
        a.output.to_path_buf()
    };
    let overlay_out = a.overlay.map(|o| {
        if many {
            o.join(format!("{stem}.png"))
        } else {
            o.to_path_buf()
        }
    });
    if a.overlay.is_some() && picture.is_none() {
        bail!(
            "--overlay needs an image input, {} is an array",
            input.display()
        );
    }
    if many && !a.force {
        for p in [Some(&out), overlay_out.as_ref()].into_iter().flatten() {
            if p.exists() {
                bail!("{} exists (--force overwrites)", p.display());
            }
        }
    }
    let t0 = Instant::now();
    let y = engine.run_maybe_tiled(&x, a.tile, a.margin, a.max_memory)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if is_npy(&out) {
        atomic(&out, |t| write_npy(t, &y))?;
    } else {
        for n in 0..y.n() {
            atomic(&numbered(&out, n, y.n()), |t| {
                save_image(&mask_image(&y, n), t)
            })?;
        }
    }
    if let (Some(o), Some(picture)) = (&overlay_out, &picture) {
        atomic(o, |t| save_image(&overlay(picture, &y, 0).into(), t))?;
    }
    let [_, _, h, w] = x.shape;
    Ok(format!(
        "{} -> {} ({h}x{w}, {}, {ms:.1} ms)",
        input.display(),
        out.display(),
        engine.name()
    ))
}
