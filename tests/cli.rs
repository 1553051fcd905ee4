//! The `wunet` binary end to end: the happy paths of `init`, `info` and `infer`, and every kind
//! of bad input getting a clear error that names the problem, exit code 2, and no panic.

mod common;

use std::path::{Path, PathBuf};

use wunet::io::{read_npy, write_npy};
use wunet::model::{init_random, save_safetensors, InitOptions, StoreDtype};
use wunet::{Tensor, UNetSpec};

use common::{expect_error, tmp, wunet};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn small_model(features: Vec<usize>, cin: usize) -> wunet::UNet {
    init_random(&UNetSpec::new(cin, 1, features), &InitOptions { seed: 1 })
}

fn write_model(name: &str, m: &wunet::UNet) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, save_safetensors(m, StoreDtype::F32).unwrap()).unwrap();
    p
}

/// A safetensors file with the model's tensors, edited by `edit` (name → shape, f32 values).
fn write_edited(name: &str, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> PathBuf {
    let bytes = save_safetensors(&small_model(vec![4, 8], 3), StoreDtype::F32).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.shape().to_vec(),
                bytemuck::pod_collect_to_vec::<u8, f32>(v.data()),
            )
        })
        .collect();
    edit(&mut t);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .into_iter()
        .map(|(k, s, v)| (k, s, bytemuck::cast_slice(&v).to_vec()))
        .collect();
    let views: Vec<_> = raw
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let p = tmp(name);
    std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
    p
}

fn npy(name: &str, shape: [usize; 4]) -> PathBuf {
    let p = tmp(name);
    write_npy(&p, &common::random_tensor(shape, 2)).unwrap();
    p
}

#[test]
fn init_info_and_infer_on_cpu_and_gpu_agree() {
    let m = tmp("init.safetensors");
    let out = wunet(&[
        "init",
        "--features",
        "4,8,16",
        "--in",
        "3",
        "--out",
        "2",
        "--seed",
        "3",
        "-o",
        s(&m),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = wunet(&["info", "-m", s(&m), "--size", "64x48"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    for needle in [
        "features [4, 8, 16]",
        "parameters:",
        "FLOPs:",
        "activation memory:",
        "downs.0.conv1",
        "final_conv",
    ] {
        assert!(text.contains(needle), "info lacks {needle:?}:\n{text}");
    }
    let x = npy("x.npy", [2, 3, 37, 29]);
    let (yc, yg) = (tmp("yc.npy"), tmp("yg.npy"));
    let cpu = wunet(&["infer", "-m", s(&m), s(&x), "-o", s(&yc), "--device", "cpu"]);
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    let c = read_npy(&yc).unwrap();
    assert_eq!(c.shape, [2, 2, 37, 29]);
    if common::gpu("init_info_and_infer_on_cpu_and_gpu_agree (gpu part)").is_some() {
        let gpu = wunet(&["infer", "-m", s(&m), s(&x), "-o", s(&yg), "--device", "gpu"]);
        assert!(
            gpu.status.success(),
            "{}",
            String::from_utf8_lossy(&gpu.stderr)
        );
        common::assert_close("cli gpu vs cpu", &read_npy(&yg).unwrap(), &c, 1e-4);
    }
}

#[test]
fn infer_writes_masks_and_overlays_for_images() {
    let m = write_model("img.safetensors", &small_model(vec![4, 8], 3));
    let img = tmp("in.png");
    image::RgbImage::from_fn(40, 33, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 7) as u8, 128])
    })
    .save(&img)
    .unwrap();
    let gray = tmp("gray.png");
    image::GrayImage::from_fn(40, 33, |x, y| image::Luma([(x * y) as u8]))
        .save(&gray)
        .unwrap();
    let (mask, ov) = (tmp("mask.png"), tmp("overlay.png"));
    let out = wunet(&[
        "infer",
        "-m",
        s(&m),
        s(&img),
        "-o",
        s(&mask),
        "--overlay",
        s(&ov),
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mk = image::open(&mask).unwrap();
    assert_eq!((mk.width(), mk.height()), (40, 33));
    assert!(mk.to_luma8().pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    assert_eq!(image::open(&ov).unwrap().width(), 40);
    // Several inputs (a gray one converted to RGB) into a directory, one plan per size.
    let dir = tmp("outdir");
    let out = wunet(&[
        "infer",
        "-m",
        s(&m),
        s(&img),
        s(&gray),
        "-o",
        s(&dir),
        "--format",
        "npy",
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_npy(&dir.join("gray.npy")).unwrap().shape,
        [1, 1, 33, 40]
    );
    assert!(dir.join("in.npy").exists());
}

#[test]
fn bad_models_get_clear_errors() {
    let x = npy("bx.npy", [1, 3, 16, 16]);
    let run = |m: &Path, needles: &[&str]| {
        expect_error(
            &[
                "infer",
                "-m",
                s(m),
                s(&x),
                "-o",
                s(&tmp("o.npy")),
                "--device",
                "cpu",
            ],
            needles,
        )
    };
    run(
        &tmp("does-not-exist.safetensors"),
        &["does-not-exist.safetensors"],
    );
    let text = tmp("text.safetensors");
    std::fs::write(&text, "this is not a model").unwrap();
    run(
        &text,
        &["text.safetensors", "not a readable safetensors file"],
    );
    let good = std::fs::read(write_model("good.safetensors", &small_model(vec![4, 8], 3))).unwrap();
    let trunc = tmp("trunc.safetensors");
    std::fs::write(&trunc, &good[..good.len() * 2 / 3]).unwrap();
    run(
        &trunc,
        &["trunc.safetensors", "not a readable safetensors file"],
    );
    let missing = write_edited("missing.safetensors", |t| {
        t.retain(|(k, _, _)| k != "downs.1.bn2.running_var")
    });
    run(&missing, &["missing tensor `downs.1.bn2.running_var`"]);
    let misshaped = write_edited("misshaped.safetensors", |t| {
        let e = t
            .iter_mut()
            .find(|(k, _, _)| k == "downs.0.conv2.weight")
            .unwrap();
        e.1 = vec![4, 4, 3, 2];
        e.2.truncate(96);
    });
    run(
        &misshaped,
        &[
            "downs.0.conv2.weight",
            "[4, 4, 3, 2]",
            "expected [4, 4, 3, 3]",
        ],
    );
    let nan = write_edited("nan.safetensors", |t| {
        t.iter_mut()
            .find(|(k, _, _)| k == "ups.0.weight")
            .unwrap()
            .2[5] = f32::NAN
    });
    run(&nan, &["ups.0.weight", "non-finite", "index 5"]);
    let inf = write_edited("inf.safetensors", |t| {
        t.iter_mut()
            .find(|(k, _, _)| k == "final_conv.bias")
            .unwrap()
            .2[0] = f32::INFINITY
    });
    run(&inf, &["final_conv.bias", "non-finite"]);
    let widths = write_model("widths.safetensors", &small_model(vec![4, 6], 3));
    run(&widths, &["must double", "[4, 6]"]);
}

/// A PNG whose header declares a 0×0 image (with valid chunk CRCs).
fn zero_sized_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        png.extend(&body);
        png.extend(common::crc32(&body).to_be_bytes());
    };
    chunk(b"IHDR", &[0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0]);
    chunk(b"IEND", &[]);
    png
}

#[test]
fn bad_inputs_get_clear_errors() {
    let m = write_model("in.safetensors", &small_model(vec![4, 8], 3));
    let o = tmp("o.png");
    let run = |input: &Path, needles: &[&str]| {
        expect_error(
            &[
                "infer",
                "-m",
                s(&m),
                s(input),
                "-o",
                s(&o),
                "--device",
                "cpu",
            ],
            needles,
        )
    };
    let junk = tmp("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    run(&junk, &["junk.png", "cannot read image"]);
    let zero = tmp("zero.png");
    std::fs::write(&zero, zero_sized_png()).unwrap();
    run(&zero, &["zero.png"]);
    run(&tmp("nope.png"), &["nope.png"]);
    run(
        &npy("c1.npy", [1, 1, 16, 16]),
        &["3 input channels", "has 1"],
    );
    run(
        &npy("tiny.npy", [1, 3, 3, 16]),
        &["too small", "at least 4"],
    );
    let z = tmp("z.npy");
    write_npy(&z, &Tensor::new([1, 3, 0, 5], vec![]).unwrap()).unwrap();
    run(&z, &["zero-sized"]);
    let bad_npy = tmp("bad.npy");
    std::fs::write(&bad_npy, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8'}").unwrap();
    run(&bad_npy, &["bad.npy"]);
}

#[test]
fn inputs_beyond_the_adapter_limits_are_tiled() {
    let Some(gpu) = common::gpu("inputs_beyond_the_adapter_limits_are_tiled") else {
        return;
    };
    let limit = gpu.device.limits().max_storage_buffer_binding_size as f64;
    // A 64-channel first conv output of S×S floats exceeds the per-binding limit.
    let side = ((limit / 256.0).sqrt() as usize + 2) / 2 * 2;
    let m = write_model("wide.safetensors", &small_model(vec![64], 1));
    let x = tmp("big.npy");
    write_npy(&x, &common::random_tensor([1, 1, side, side], 9)).unwrap();
    let run = |dev: &str, out: &str| {
        let o = wunet(&[
            "infer",
            "-m",
            s(&m),
            s(&x),
            "-o",
            s(&tmp(out)),
            "--device",
            dev,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8_lossy(&o.stderr).into_owned(),
            read_npy(&tmp(out)).unwrap(),
        )
    };
    // The GPU cannot hold the whole image: it says which limit, and runs in tiles.
    let (err, gpu_out) = run("gpu", "big_gpu.npy");
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains("tiles"),
        "{err}"
    );
    let (_, cpu_out) = run("cpu", "big_cpu.npy");
    let (d, mx) = gpu_out.max_abs_diff(&cpu_out);
    assert!(d <= 1e-4 * mx.max(1e-6), "tiled GPU vs CPU: {d} of {mx}");
    std::fs::remove_file(&x).ok();
}

#[test]
fn eval_scores_the_default_model_on_its_test_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("tests/data/cells_test");
    let out = wunet(&["eval", "--data", s(&data), "--device", "cpu", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let dice: f64 = text
        .split("\"dice\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dice > 0.95, "{text}");
    assert!(text.contains("\"images\":16"), "{text}");
    let empty = tmp("empty_dir");
    std::fs::create_dir_all(&empty).unwrap();
    expect_error(
        &["eval", "--data", s(&empty), "--device", "cpu"],
        &["no image has a NAME_mask.png"],
    );
}

/// `bench --device cpu` on a float and an int8 model: the JSON fields users' scripts read, and
/// `--threads` honoured.
#[test]
fn cpu_bench_reports_json_and_honours_threads() {
    let f = write_model("bench_f32.safetensors", &small_model(vec![8, 16], 3));
    let q = tmp("bench_q.safetensors");
    let c = wunet(&["compress", "-m", s(&f), "--int8", "-o", s(&q)]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    for (m, precision) in [(&f, "f32"), (&q, "int8")] {
        let o = wunet(&[
            "bench",
            "-m",
            s(m),
            "--device",
            "cpu",
            "--size",
            "32x48",
            "--runs",
            "2",
            "--threads",
            "1",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j = String::from_utf8_lossy(&o.stdout);
        for field in [
            "\"device\":\"cpu\"".to_string(),
            format!("\"precision\":\"{precision}\""),
            "\"size\":\"32x48\"".to_string(),
            "\"median_ms\":".to_string(),
            "\"min_ms\":".to_string(),
        ] {
            assert!(j.contains(&field), "{precision}: {field} missing in {j}");
        }
        assert!(
            j.contains("\"threads\":1,"),
            "{precision}: --threads 1 not honoured: {j}"
        );
    }
    expect_error(
        &["bench", "-m", s(&q), "--device", "cpu", "--threads", "0"],
        &["--threads"],
    );
}

/// Overlap-tile inference (`--tile`, default margin = the receptive field) equals the untiled
/// result: on the CPU engines (float32 and int8) exactly, on the GPU within the budget.
#[test]
fn tiled_inference_matches_untiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let img = root.join("assets/cells.png");
    let demo = root.join("assets/demo_unet.safetensors");
    let q = tmp("tile_q.safetensors");
    let c = wunet(&["compress", "-m", s(&demo), "--int8", "-o", s(&q)]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let mut devices = vec!["cpu"];
    if common::gpu("tiled inference on the GPU").is_some() {
        devices.push("gpu");
    }
    for model in [&demo, &q] {
        for dev in &devices {
            let run = |extra: &[&str], out: &str| {
                let out = tmp(out);
                let mut args = vec![
                    "infer",
                    "-m",
                    s(model),
                    s(&img),
                    "-o",
                    s(&out),
                    "--device",
                    dev,
                ];
                args.extend_from_slice(extra);
                let o = wunet(&args);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                read_npy(&out).unwrap()
            };
            let whole = run(&[], "tile_whole.npy");
            let tiled = run(&["--tile", "96"], "tile_tiled.npy");
            let (d, m) = tiled.max_abs_diff(&whole);
            assert!(
                d <= 1e-4 * m,
                "{dev} {}: tiled vs untiled {d} of {m}",
                model.display()
            );
        }
    }
}

/// A folder of inputs: broken files are reported and skipped (exit 1), the rest are written;
/// existing outputs are kept without --force, replaced with it; no temporary file is left.
#[test]
fn folders_skip_broken_files_and_keep_outputs_without_force() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp("folder_in");
    let out = tmp("folder_out");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["a.png", "c.png"] {
        std::fs::copy(
            root.join("tests/data/cells_test/img_00.png"),
            dir.join(name),
        )
        .or_else(|_| std::fs::copy(root.join("assets/cells.png"), dir.join(name)))
        .unwrap();
    }
    std::fs::write(dir.join("b.png"), b"not a png").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["infer", s(&dir), "-o", s(&out), "--device", "cpu"];
        args.extend_from_slice(extra);
        wunet(&args)
    };
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("b.png") && err.contains("skipped"), "{err}");
    assert!(err.contains("2 of 3 inputs done"), "{err}");
    assert!(out.join("a.png").exists() && out.join("c.png").exists());
    assert!(!out.join("b.png").exists());
    let written = std::fs::metadata(out.join("a.png"))
        .unwrap()
        .modified()
        .unwrap();
    // Again without --force: the outputs exist, nothing is overwritten.
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::metadata(out.join("a.png"))
            .unwrap()
            .modified()
            .unwrap(),
        written
    );
    // With --force and only good files: exit 0.
    std::fs::remove_file(dir.join("b.png")).unwrap();
    let o = run(&["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
