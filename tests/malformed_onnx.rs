//! Broken ONNX models (`tests/fixtures/onnx_bad/`, made by `tools/make_bad_onnx.py`): each must
//! give one clear error naming the problem, never a panic; through the CLI, exit code 2, one
//! `wunet: error:` line and no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

use wunet::cpu::graph::GraphCpu;
use wunet::Tensor;

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx_bad")
        .join(name)
}

/// Import `name` and run it on a 1×2×9×11 input.
fn run(name: &str) -> wunet::Result<Tensor> {
    let g = wunet::graph::onnx::load(&bad(name))?;
    let x = Tensor::new(
        [1, 2, 9, 11],
        (0..198).map(|i| (i as f32 * 0.37).sin()).collect(),
    )?;
    GraphCpu::new(g, true).forward(&x)
}

const CASES: &[(&str, &str)] = &[
    ("truncated.onnx", "not a readable ONNX model"),
    ("corrupted.onnx", "not a readable ONNX model"),
    (
        "unsupported_op.onnx",
        "unsupported op `Einsum` (node `the_einsum`); supported ops: Add",
    ),
    (
        "nan_weights.onnx",
        "non-finite value (NaN) at flat index 26",
    ),
    ("weight_shape.onnx", "does not fit an input of 2 channels"),
    (
        "dangling.onnx",
        "reads `ghost`, which no node, initializer or input defines",
    ),
    ("cycle.onnx", "reads `b2`, which no node"),
    ("two_inputs.onnx", "the graph has 2 inputs (x, x2)"),
    ("unresolvable_shape.onnx", "unresolvable at plan time"),
    ("external_short.onnx", "the tensor needs bytes 304..592"),
    ("external_missing.onnx", "cannot read external data"),
    (
        "external_escape.onnx",
        "leaves the model's folder (refused)",
    ),
];

#[test]
fn each_broken_model_names_its_problem() {
    let good = run("good.onnx").expect("the unbroken model runs");
    assert_eq!(good.shape, [1, 4, 9, 11]);
    let ext = run("external.onnx").expect("external data beside the model loads");
    assert_eq!(ext, good, "external data reads the same weights");
    for (name, want) in CASES {
        let r = std::panic::catch_unwind(|| run(name));
        let e = match r {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => panic!("{name}: accepted"),
            Err(_) => panic!("{name}: panicked"),
        };
        println!("{name:<28} {e}");
        assert!(e.contains(want), "{name}: `{e}` does not say `{want}`");
    }
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let bytes = std::fs::read(bad("good.onnx")).unwrap();
    let x = Tensor::new([1, 2, 5, 4], vec![0.5; 40]).unwrap();
    for cut in 0..bytes.len() {
        let r = std::panic::catch_unwind(|| {
            wunet::graph::onnx::import(&bytes[..cut], None).map(|_| ())
        });
        assert!(r.is_ok(), "panic on a cut at {cut}");
    }
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            let r = std::panic::catch_unwind(|| {
                if let Ok(g) = wunet::graph::onnx::import(&b, None) {
                    let _ = GraphCpu::new(g, true).forward(&x);
                }
            });
            assert!(r.is_ok(), "panic with byte {i} ^ {bit:#x}");
        }
    }
}

#[test]
fn the_cli_exits_2_with_one_line_and_no_output() {
    let dir = std::env::temp_dir().join(format!("wunet-bad-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = dir.join("x.npy");
    wunet::io::write_npy(&x, &Tensor::new([1, 2, 8, 8], vec![0.25; 128]).unwrap()).unwrap();
    for (name, want) in CASES {
        let out = dir.join(format!("{name}.npy"));
        let o = Command::new(env!("CARGO_BIN_EXE_wunet"))
            .args(["infer", "-m"])
            .arg(bad(name))
            .arg(&x)
            .arg("-o")
            .arg(&out)
            .args(["--device", "cpu"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert!(
            lines[0].starts_with("wunet: error:") && lines[0].contains(want),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}: wrote an output");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
