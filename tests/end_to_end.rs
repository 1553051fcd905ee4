//! Whole models against PyTorch: every fixture in `tests/fixtures/` (made by
//! `tools/export_torch.py`) on the GPU and on the CPU reference, BatchNorm folded and not.
//! Budget: max |ours − PyTorch| ≤ 1e-4 · max |PyTorch|. Also the planner's promises: one submit
//! per inference, one dispatch per op, planned bytes below the sum of all tensor sizes.

mod common;

use std::path::{Path, PathBuf};

use wunet::gpu::{GpuModel, GpuOptions};
use wunet::io::read_npy;
use wunet::model::{init_random, InitOptions};
use wunet::{cpu, UNet, UNetSpec};

const BUDGET: f32 = 1e-4;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 4,
        "expected the committed PyTorch fixtures in {}",
        dir.display()
    );
    v
}

fn fixture(p: &Path) -> (String, UNet, wunet::Tensor, wunet::Tensor) {
    let name = p.file_stem().unwrap().to_string_lossy().into_owned();
    let model = UNet::load(p).unwrap();
    let x = read_npy(&p.with_file_name(format!("{name}_input.npy"))).unwrap();
    let y = read_npy(&p.with_file_name(format!("{name}_output.npy"))).unwrap();
    (name, model, x, y)
}

#[test]
fn cpu_reference_matches_pytorch() {
    for p in fixtures() {
        let (name, model, x, want) = fixture(&p);
        for fold in [true, false] {
            let got = cpu::forward(&model, &x, fold).unwrap();
            common::assert_close(&format!("cpu {name} fold={fold}"), &got, &want, BUDGET);
            let (d, m) = got.max_abs_diff(&want);
            eprintln!(
                "cpu {name} fold={fold}: max|diff| {d:.3e}, max|ref| {m:.3e}, ratio {:.3e}",
                d / m
            );
        }
        // The engine `--device cpu` runs (the direct AVX-512 one where the CPU has it).
        let engine = cpu::CpuModel::new(model, true);
        let got = engine.forward(&x).unwrap();
        common::assert_close(&format!("{} {name}", engine.kernel()), &got, &want, BUDGET);
        let (d, m) = got.max_abs_diff(&want);
        eprintln!("{} {name}: ratio {:.3e}", engine.kernel(), d / m);
    }
}

#[test]
fn gpu_matches_pytorch() {
    let Some(gpu) = common::gpu("gpu_matches_pytorch") else {
        return;
    };
    for p in fixtures() {
        let (name, model, x, want) = fixture(&p);
        for fold in [true, false] {
            let gm = GpuModel::new(
                &gpu.device,
                &gpu.queue,
                &model,
                GpuOptions {
                    fold_bn: fold,
                    ..Default::default()
                },
            )
            .unwrap();
            let plan = gm.plan(x.shape).unwrap();
            let got = plan.run(&x).unwrap();
            common::assert_close(&format!("gpu {name} fold={fold}"), &got, &want, BUDGET);
            let (d, m) = got.max_abs_diff(&want);
            eprintln!(
                "gpu {name} fold={fold}: max|diff| {d:.3e}, max|ref| {m:.3e}, ratio {:.3e}",
                d / m
            );
        }
    }
}

#[test]
fn one_submit_per_inference_and_memory_is_reused() {
    let Some(gpu) = common::gpu("one_submit_per_inference_and_memory_is_reused") else {
        return;
    };
    let model = init_random(
        &UNetSpec::new(3, 2, vec![4, 8, 16, 32]),
        &InitOptions { seed: 3 },
    );
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &model, GpuOptions::default()).unwrap();
    assert_eq!(
        gm.weight_bytes(),
        wunet::gpu::packed_weight_bytes(
            &model.spec,
            true,
            wunet::gpu::fixed_subgroup_size(&gpu.device, &gpu.queue).is_some(),
            GpuOptions::default().winograd
        )
    );
    let plan = gm.plan([1, 3, 45, 61]).unwrap();
    let g = plan.graph();
    // 4 levels: 8 encoder convs + 4 pools, 2 bottleneck convs, 4 × (upconv + resize? + 2 convs), head.
    let resizes = g
        .ops
        .iter()
        .filter(|o| matches!(o, wunet::plan::Op::Resize { .. }))
        .count();
    assert_eq!(plan.dispatch_count(), 8 + 4 + 2 + 4 * 3 + resizes + 1);
    assert!(
        plan.planned_bytes() < g.total_tensor_bytes(),
        "{} >= {}",
        plan.planned_bytes(),
        g.total_tensor_bytes()
    );
    assert_eq!(plan.submit_count(), 0);
    let x = common::random_tensor([1, 3, 45, 61], 9);
    let a = plan.run(&x).unwrap();
    assert_eq!(plan.submit_count(), 1);
    let b = plan.run(&x).unwrap();
    assert_eq!(plan.submit_count(), 2);
    assert_eq!(
        a, b,
        "a plan gives the same answer twice (arena reuse leaves no stale state)"
    );
    let want = cpu::forward(&model, &x, true).unwrap();
    common::assert_close("planned run vs cpu", &a, &want, BUDGET);
    // A second shape from the same uploaded model.
    let plan2 = gm.plan([2, 3, 32, 32]).unwrap();
    let x2 = common::random_tensor([2, 3, 32, 32], 4);
    common::assert_close(
        "second plan",
        &plan2.run(&x2).unwrap(),
        &cpu::forward(&model, &x2, true).unwrap(),
        BUDGET,
    );
    assert!(plan.run(&x2).is_err(), "a plan rejects another input shape");
}

/// The default model on its sample image, through the image path (decode, [0, 1], the model's
/// normalization), against PyTorch's logits for the same PNG; and the mask against the ground
/// truth.
#[test]
fn demo_model_on_the_sample_matches_pytorch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = UNet::load(root.join("assets/demo_unet.safetensors")).unwrap();
    let img = wunet::io::load_image(&root.join("assets/cells.png"), &model.spec).unwrap();
    let want = read_npy(&root.join("tests/fixtures/demo_cells_logits.npy")).unwrap();
    let mut outs = vec![
        ("cpu", cpu::forward(&model, &img.tensor, true).unwrap()),
        (
            "cpu engine",
            cpu::CpuModel::new(model.clone(), true)
                .forward(&img.tensor)
                .unwrap(),
        ),
    ];
    if let Some(gpu) = common::gpu("demo_model_on_the_sample_matches_pytorch (gpu part)") {
        let gm = GpuModel::new(&gpu.device, &gpu.queue, &model, GpuOptions::default()).unwrap();
        outs.push((
            "gpu",
            gm.plan(img.tensor.shape).unwrap().run(&img.tensor).unwrap(),
        ));
    }
    let truth = image::open(root.join("assets/cells_mask.png"))
        .unwrap()
        .to_luma8();
    for (dev, got) in outs {
        common::assert_close(&format!("demo {dev}"), &got, &want, BUDGET);
        let (d, m) = got.max_abs_diff(&want);
        eprintln!(
            "demo {dev}: max|diff| {d:.3e}, max|ref| {m:.3e}, ratio {:.3e}",
            d / m
        );
        let mask = wunet::io::classes(&got, 0);
        let (mut inter, mut sum) = (0usize, 0usize);
        for (m, t) in mask.iter().zip(truth.pixels()) {
            let t = (t.0[0] > 127) as usize;
            inter += m * t;
            sum += m + t;
        }
        let dice = 2.0 * inter as f64 / sum as f64;
        eprintln!("demo {dev}: Dice vs ground truth {dice:.4}");
        assert!(dice > 0.95, "{dev}: Dice {dice}");
    }
}
