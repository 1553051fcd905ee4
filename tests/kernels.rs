//! Each GPU kernel against the CPU reference kernel, on the inputs the GPU itself produced (so an
//! error in one kernel cannot hide in or leak into another), over whole random models: odd H/W,
//! channel counts that are not multiples of 4, batch 2, 1-level and 5-level models, BatchNorm
//! folded and standalone. Budget: max |gpu − ref| ≤ 1e-4 · max |ref| per kernel.

mod common;

use std::collections::BTreeSet;

use wunet::gpu::{GpuModel, GpuOptions, Kernel};
use wunet::model::{init_random, InitOptions};
use wunet::plan::Op;
use wunet::{cpu, UNetSpec};

const BUDGET: f32 = 1e-4;

fn kind(op: &Op) -> &'static str {
    match op {
        Op::Conv3x3 { b: Some(_), .. } => "conv3x3 (two inputs)",
        Op::Conv3x3 { fused: true, .. } => "conv3x3 + bn + relu",
        Op::Conv3x3 { .. } => "conv3x3",
        Op::BnRelu { .. } => "bn + relu",
        Op::MaxPool { .. } => "maxpool",
        Op::UpConv { .. } => "upconv",
        Op::Resize { .. } => "resize",
        Op::Head { .. } => "conv1x1",
    }
}

fn check_model(
    features: Vec<usize>,
    cin: usize,
    cout: usize,
    shape: [usize; 4],
    fold: bool,
    seen: &mut BTreeSet<&'static str>,
) {
    check_variant(features, cin, cout, shape, fold, None, seen)
}

fn check_variant(
    features: Vec<usize>,
    cin: usize,
    cout: usize,
    shape: [usize; 4],
    fold: bool,
    conv3x3: Option<Kernel>,
    seen: &mut BTreeSet<&'static str>,
) {
    let opts = GpuOptions {
        fold_bn: fold,
        conv3x3,
        ..Default::default()
    };
    check_opts(features, cin, cout, shape, opts, seen);
}

/// Every op of a random model's plan against the CPU; returns the kernels the plan ran.
fn check_opts(
    features: Vec<usize>,
    cin: usize,
    cout: usize,
    shape: [usize; 4],
    opts: GpuOptions,
    seen: &mut BTreeSet<&'static str>,
) -> BTreeSet<Kernel> {
    let Some(gpu) = common::gpu("kernels") else {
        return BTreeSet::new();
    };
    let model = init_random(
        &UNetSpec::new(cin, cout, features.clone()),
        &InitOptions { seed: 11 },
    );
    let what = format!("{features:?} {shape:?} {opts:?}");
    let gm = GpuModel::new(
        &gpu.device,
        &gpu.queue,
        &model,
        GpuOptions {
            keep_intermediates: true,
            ..opts
        },
    )
    .unwrap();
    let plan = gm.plan(shape).unwrap();
    let input = common::random_tensor(shape, 5);
    let all = plan.run_all(&input).unwrap();
    common::assert_close("input round trip", &all[plan.graph().input], &input, 0.0);
    for (i, op) in plan.graph().ops.iter().enumerate() {
        let args: Vec<_> = op.inputs().iter().map(|&t| &all[t]).collect();
        let want = cpu::apply(&model, plan.graph(), op, &args);
        let what = format!("{what} op {i} {} ({})", op.label(), kind(op));
        common::assert_close(&what, &all[op.output()], &want, BUDGET);
        seen.insert(kind(op));
    }
    plan.steps().iter().map(|s| s.kernel).collect()
}

#[test]
fn every_kernel_matches_the_cpu_reference() {
    if common::gpu("every_kernel_matches_the_cpu_reference").is_none() {
        return;
    }
    let mut seen = BTreeSet::new();
    // 1 level, batch 2, odd sizes, 3 → 1 channels.
    check_model(vec![4], 3, 1, [2, 3, 17, 23], true, &mut seen);
    check_model(vec![4], 3, 1, [2, 3, 17, 23], false, &mut seen);
    // 3 levels, widths and classes not multiples of 4, odd sizes at every level (resizes).
    check_model(vec![5, 10, 20], 1, 3, [2, 1, 37, 29], true, &mut seen);
    check_model(vec![5, 10, 20], 1, 3, [1, 1, 37, 29], false, &mut seen);
    // Every conv3x3 variant on every layer, whatever the per-layer choice would be.
    for k in [Kernel::Conv3x3Co4, Kernel::Conv3x3Co8] {
        check_variant(
            vec![5, 10, 20],
            3,
            3,
            [2, 3, 23, 19],
            true,
            Some(k),
            &mut seen,
        );
    }
    // The subgroup kernel (where the adapter has fixed-size subgroups), every mode (see
    // `the_subgroup_conv_runs_where_it_applies`): 12 output channels (a partial block of 8),
    // odd heights, skips read from two inputs.
    // (72 × 16: column pairs of up to 32 rows, with a partial last one, on adapters with wide
    // subgroups, and a single column at 18 × 4 with up to 16 lanes; 12 × 48 at batch 2: its 3 × 12
    // level takes column pairs at 4 lanes, the last pair's right lane outside the image.)
    for shape in [
        [2, 3, 26, 48],
        [1, 3, 8, 128],
        [1, 3, 72, 16],
        [2, 3, 12, 48],
    ] {
        check_variant(
            vec![12, 24, 48],
            3,
            2,
            shape,
            true,
            Some(Kernel::Conv3x3Sg(8)),
            &mut seen,
        );
    }
    // Winograd F(4×4, 3×3) (where the subgroup kernels run): level 0 of 36 channels (not a
    // multiple of 8 or 32: padded output and input channels) at 44 × 40, batch 2: 220 tiles, and
    // the decoder's two-input conv (72 input channels); folded and standalone BatchNorm; in one
    // chunk, and in chunks of 6 tile rows that cross the images' boundary, the last ragged.
    let sg =
        common::gpu("kernels").and_then(|g| wunet::gpu::fixed_subgroup_size(&g.device, &g.queue));
    // And at 64 × 64, whose planes are whole pages (padded: `plan::plane_stride`).
    for (shape, fold, chunk) in [
        ([2, 3, 44, 40], true, wunet::gpu::WINOGRAD_CHUNK_BYTES),
        ([2, 3, 44, 40], false, wunet::gpu::WINOGRAD_CHUNK_BYTES),
        ([2, 3, 44, 40], true, 1 << 20),
        ([1, 3, 64, 64], true, wunet::gpu::WINOGRAD_CHUNK_BYTES),
    ] {
        let opts = GpuOptions {
            fold_bn: fold,
            winograd_chunk_bytes: chunk,
            ..Default::default()
        };
        let ran = check_opts(vec![36, 72], 3, 2, shape, opts, &mut seen);
        assert_eq!(
            ran.contains(&Kernel::WinoGemm),
            sg.is_some(),
            "Winograd runs exactly where the subgroup kernels do: {ran:?}"
        );
    }
    // 5 levels.
    check_model(vec![2, 4, 8, 16, 32], 3, 2, [1, 3, 67, 45], true, &mut seen);
    // Wider layers: 4-channel groups and long reduction loops.
    check_model(vec![24, 48], 3, 1, [1, 3, 21, 19], true, &mut seen);
    let all: BTreeSet<_> = [
        "conv3x3 (two inputs)",
        "conv3x3 + bn + relu",
        "conv3x3",
        "bn + relu",
        "maxpool",
        "upconv",
        "resize",
        "conv1x1",
    ]
    .into();
    assert_eq!(seen, all, "every kernel variant was checked");
}

/// Where the adapter has subgroups of one fixed size, the per-layer choice runs the subgroup
/// conv kernel (with every XB) on rows that are multiples of 4 wide, and the other kernels
/// elsewhere; the plain kernels run when asked for.
#[test]
fn the_subgroup_conv_runs_where_it_applies() {
    let Some(gpu) = common::gpu("the_subgroup_conv_runs_where_it_applies") else {
        return;
    };
    // Where the adapter reports one fixed subgroup size, the layout probe must accept it (else
    // the subgroup kernels would silently never run here).
    let info = &gpu.info;
    if gpu.device.features().contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == info.subgroup_max_size
        && (4..=64).contains(&info.subgroup_min_size)
        && std::env::var("WUNET_SUBGROUPS").map_or(true, |v| v != "0")
    {
        assert_eq!(
            wunet::gpu::fixed_subgroup_size(&gpu.device, &gpu.queue),
            Some(info.subgroup_min_size),
            "the subgroup probe fails on {}",
            info.name
        );
    }
    let Some(sg) = wunet::gpu::fixed_subgroup_size(&gpu.device, &gpu.queue) else {
        eprintln!("skipped: no fixed subgroup size on {}", gpu.info.name);
        return;
    };
    let model = init_random(
        &UNetSpec::new(3, 2, vec![12, 24, 48]),
        &InitOptions { seed: 3 },
    );
    let kernels = |conv3x3, shape| {
        let gm = GpuModel::new(
            &gpu.device,
            &gpu.queue,
            &model,
            GpuOptions {
                conv3x3,
                ..Default::default()
            },
        )
        .unwrap();
        let plan = gm.plan(shape).unwrap();
        plan.steps()
            .iter()
            .map(|s| s.kernel)
            .filter(|k| {
                matches!(
                    k,
                    Kernel::Conv3x3Co4
                        | Kernel::Conv3x3Co8
                        | Kernel::Conv3x3Co8Grouped
                        | Kernel::Conv3x3Sg(_)
                )
            })
            .collect::<BTreeSet<_>>()
    };
    // With 8 lanes: 26 × 48: levels 26 and 13 rows high take column pairs (XB = 2), the 6 × 12
    // level too; the 3 × 6 bottleneck cannot take the subgroup kernel and runs the plain one on
    // the same (grouped) weights. 8 × 128: column pairs at 8 × 128 and 4 × 64, then patch rows 8
    // invocations (32 pixels) wide at 2 × 32, 4 wide at 1 × 16. 64 × 8: a column pair, then a single
    // column (XB = 1) at 32 × 4.
    let got: BTreeSet<_> = [[1, 3, 26, 48], [1, 3, 8, 128], [1, 3, 64, 8]]
        .into_iter()
        .flat_map(|shape| kernels(None, shape))
        .collect();
    if sg == 8 {
        let want: BTreeSet<_> = [1, 2, 4, 8]
            .map(Kernel::Conv3x3Sg)
            .into_iter()
            .chain([Kernel::Conv3x3Co8Grouped])
            .collect();
        assert_eq!(got, want);
    }
    assert!(got.contains(&Kernel::Conv3x3Co8Grouped), "{got:?}");
    assert!(
        got.iter().any(|k| matches!(k, Kernel::Conv3x3Sg(_))),
        "{got:?}"
    );
    assert_eq!(
        kernels(Some(Kernel::Conv3x3Co8), [1, 3, 26, 48]),
        [Kernel::Conv3x3Co8].into()
    );
}

/// The Winograd convs' scratch lives in the arena, where earlier tensors (of this run or the
/// last) leave their values: a run after one whose input held Inf and NaN must give exactly what
/// a fresh plan gives (36 channels: V has padding channels, which the GEMM reads).
#[test]
fn winograd_scratch_never_leaks_between_runs() {
    let Some(gpu) = common::gpu("winograd_scratch_never_leaks_between_runs") else {
        return;
    };
    let Some(_) = wunet::gpu::fixed_subgroup_size(&gpu.device, &gpu.queue) else {
        eprintln!(
            "skipped: no fixed subgroup size on {} (no Winograd)",
            gpu.info.name
        );
        return;
    };
    let model = init_random(&UNetSpec::new(3, 2, vec![36, 72]), &InitOptions { seed: 4 });
    let shape = [1, 3, 64, 64];
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &model, GpuOptions::default()).unwrap();
    let plan = gm.plan(shape).unwrap();
    assert!(plan.winograd_layers() > 0, "no layer runs as Winograd");
    let x = common::random_tensor(shape, 6);
    let mut bad = x.clone();
    for (i, v) in bad.data.iter_mut().enumerate() {
        *v = [f32::INFINITY, f32::NAN, f32::MAX, -f32::INFINITY][i % 4];
    }
    plan.run(&bad).unwrap();
    let after = plan.run(&x).unwrap();
    let fresh = gm.plan(shape).unwrap().run(&x).unwrap();
    common::assert_close("after a run of Inf and NaN", &after, &fresh, 0.0);
    let want = cpu::forward(&model, &x, true).unwrap();
    common::assert_close("winograd model against the CPU", &after, &want, BUDGET);
}
