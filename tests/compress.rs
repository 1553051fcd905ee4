//! `wunet compress`: per-layer pruning gives exactly PyTorch's `l1_unstructured` + `remove`
//! masks (fixtures made by `tools/prune_fixture.py`); global pruning hits its total; bad
//! arguments leave no output file.

mod common;

use std::path::Path;

use common::{tmp, wunet};

fn tensors(p: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| {
            (
                k,
                t.shape().to_vec(),
                bytemuck::pod_collect_to_vec::<u8, f32>(t.data()),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn compress(args: &[&str]) -> std::process::Output {
    wunet(&[&["compress"], args].concat())
}

#[test]
fn layer_scope_equals_pytorch_l1_unstructured() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (model, amount, torch) in [
        ("d3_odd", "0.3", "d3_odd_l1_30"),
        ("d5", "0.55", "d5_l1_55"),
    ] {
        let out = tmp(&format!("{model}.safetensors"));
        let m = fx.join(format!("{model}.safetensors"));
        let r = compress(&[
            "-m",
            m.to_str().unwrap(),
            "--prune",
            amount,
            "--prune-scope",
            "layer",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let (ours, theirs) = (
            tensors(&out),
            tensors(&fx.join(format!("prune/{torch}.safetensors"))),
        );
        assert_eq!(ours.len(), theirs.len());
        let mut zeros = 0;
        for ((k, s, a), (k2, s2, b)) in ours.iter().zip(&theirs) {
            assert_eq!((k, s), (k2, s2));
            // Same mask, same surviving values (ties aside: random weights have none).
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x, y, "{model}: {k}[{i}]: wunet {x}, PyTorch {y}");
            }
            zeros += a.iter().filter(|v| **v == 0.0).count();
        }
        assert!(zeros > 0);
    }
}

#[test]
fn global_scope_and_bad_arguments() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_unet.safetensors");
    let out = tmp("g80.safetensors");
    let r = compress(&[
        "-m",
        demo.to_str().unwrap(),
        "--prune",
        "0.8",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let t = tensors(&out);
    let conv: Vec<&(String, Vec<usize>, Vec<f32>)> = t
        .iter()
        .filter(|(k, s, _)| {
            s.len() == 4
                && !k.starts_with("ups.0.")
                && !k.starts_with("ups.2.")
                && !k.starts_with("ups.4.")
                && !k.starts_with("ups.6.")
        })
        .collect();
    let (z, n) = conv.iter().fold((0, 0), |(z, n), (_, _, v)| {
        (z + v.iter().filter(|x| **x == 0.0).count(), n + v.len())
    });
    let frac = z as f64 / n as f64;
    assert!((frac - 0.8).abs() < 1e-3, "global sparsity {frac}");
    for bad in ["1.0", "-0.2", "nan"] {
        let o = tmp(&format!("bad{bad}.safetensors"));
        let r = compress(&[
            "-m",
            demo.to_str().unwrap(),
            "--prune",
            bad,
            "-o",
            o.to_str().unwrap(),
        ]);
        assert_eq!(r.status.code(), Some(2), "--prune {bad}");
        assert!(!o.exists(), "--prune {bad} left an output file");
    }
    let r = compress(&[
        "-m",
        demo.to_str().unwrap(),
        "--prune",
        "0.5",
        "--prune-scope",
        "tensor",
        "-o",
        tmp("x.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
}
