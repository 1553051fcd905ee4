//! `wunet eval`: Dice and IoU against ground-truth masks, and agreement with a reference model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use wunet::io::{self, load_image, Overlap};

use crate::{load_any, Device, Engine};

/// Ground truth classes of a mask PNG: one-class models read 0/255 (threshold 127), others read
/// class ids.
fn read_truth(path: &Path, classes: usize) -> Result<Vec<usize>> {
    let img = image::open(path)
        .with_context(|| format!("{}: cannot read mask", path.display()))?
        .to_luma8();
    Ok(img
        .pixels()
        .map(|p| {
            if classes == 1 {
                (p.0[0] > 127) as usize
            } else {
                p.0[0] as usize
            }
        })
        .collect())
}

pub(crate) fn eval(
    model: Option<&Path>,
    data: &Path,
    reference: Option<&Path>,
    device: Device,
    json: bool,
) -> Result<()> {
    let (_, m) = load_any(model)?;
    let classes = m.spec().out_channels;
    let mut engine = Engine::for_model(m, device, true)?;
    let mut ref_engine = match reference {
        Some(p) => Some(Engine::for_model(load_any(Some(p))?.1, device, true)?),
        None => None,
    };
    let mut images: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("reading {}", data.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            matches!(ext.as_str(), "png" | "jpg" | "jpeg") && !stem.ends_with("_mask")
        })
        .collect();
    images.sort();
    let (mut total, mut vs_ref) = (Overlap::default(), Overlap::default());
    let mut per_image = Vec::new();
    for img_path in &images {
        let stem = img_path.file_stem().unwrap().to_string_lossy().into_owned();
        let mask_path = img_path.with_file_name(format!("{stem}_mask.png"));
        if !mask_path.exists() {
            continue;
        }
        let img = load_image(img_path, engine.spec())?;
        let pred = io::classes(&engine.run(&img.tensor)?, 0);
        let truth = read_truth(&mask_path, classes)?;
        if truth.len() != pred.len() {
            bail!("{}: mask size differs from its image", mask_path.display());
        }
        let o = Overlap::of(&pred, &truth);
        total.add(&o);
        if let Some(r) = ref_engine.as_mut() {
            let rp = io::classes(&r.run(&img.tensor)?, 0);
            vs_ref.add(&Overlap::of(&pred, &rp));
        }
        per_image.push((stem, o));
    }
    if per_image.is_empty() {
        bail!(
            "{}: no image has a NAME_mask.png ground truth beside it",
            data.display()
        );
    }
    let mean_dice = per_image.iter().map(|(_, o)| o.dice()).sum::<f64>() / per_image.len() as f64;
    if json {
        let r = if reference.is_some() {
            format!(
                ",\"reference_agreement\":{:.6},\"reference_dice\":{:.6}",
                vs_ref.agreement(),
                vs_ref.dice()
            )
        } else {
            String::new()
        };
        println!(
            "{{\"images\":{},\"dice\":{:.6},\"iou\":{:.6},\"mean_dice\":{mean_dice:.6},\"pixel_accuracy\":{:.6}{r}}}",
            per_image.len(),
            total.dice(),
            total.iou(),
            total.agreement()
        );
        return Ok(());
    }
    for (name, o) in &per_image {
        println!("{name:<24} Dice {:.4}  IoU {:.4}", o.dice(), o.iou());
    }
    println!(
        "{} images on {}: Dice {:.4}, IoU {:.4} (pixels pooled); mean Dice per image {mean_dice:.4}; pixel accuracy {:.4}",
        per_image.len(),
        engine.name(),
        total.dice(),
        total.iou(),
        total.agreement()
    );
    if reference.is_some() {
        println!(
            "against the reference model's masks: pixel agreement {:.4}, Dice {:.4}",
            vs_ref.agreement(),
            vs_ref.dice()
        );
    }
    Ok(())
}
