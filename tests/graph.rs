//! The layer graph and its CPU engine: the reference U-Net through the graph against PyTorch's
//! fixtures and the dedicated engine, with and without fusion.

mod common;

use std::path::Path;

use common::assert_close;
use wunet::cpu::graph::GraphCpu;
use wunet::graph::reference::from_unet;
use wunet::io::read_npy;
use wunet::UNet;

fn fixture(name: &str) -> (UNet, wunet::Tensor, wunet::Tensor) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    (
        UNet::load(d.join(format!("{name}.safetensors"))).unwrap(),
        read_npy(&d.join(format!("{name}_input.npy"))).unwrap(),
        read_npy(&d.join(format!("{name}_output.npy"))).unwrap(),
    )
}

#[test]
fn reference_unet_as_a_graph_matches_pytorch() {
    for name in ["d1_odd", "d2_c5", "d3_odd", "d4_f16", "d5"] {
        let (m, x, want) = fixture(name);
        for fuse in [true, false] {
            let e = GraphCpu::new(from_unet(&m), fuse);
            let got = e.forward(&x).unwrap();
            assert_close(&format!("{name} fuse={fuse}"), &got, &want, 1e-4);
        }
        let g = from_unet(&m).instantiate(x.shape).unwrap();
        let fused = wunet::graph::fuse(g.clone());
        assert!(fused.layers.len() < g.layers.len(), "{name}: nothing fused");
    }
}

/// Every family of `tests/fixtures/onnx` (made by `tools/make_onnx_fixtures.py`), both exports,
/// on the CPU graph engine against PyTorch's output: within 1e-4 · max|ref|, or 10× PyTorch's
/// own float32-vs-float64 difference where that is larger.
#[test]
fn onnx_families_match_pytorch_on_the_cpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let mut failures = Vec::new();
    let (mut ran, mut winograd) = (0, 0);
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let x = read_npy(&dir.join("input.npy")).unwrap();
        let want = read_npy(&dir.join("output.npy")).unwrap();
        for export in ["torchscript", "dynamo"] {
            let r = wunet::graph::onnx::load(&dir.join(format!("{export}.onnx"))).and_then(|g| {
                let e = GraphCpu::new(g, true);
                let p = e.prepared(x.shape)?;
                winograd += (0..p.shaped.layers.len())
                    .filter(|&i| p.kernel(i) == "wino4x4")
                    .count();
                e.forward(&x)
            });
            ran += 1;
            match r {
                Ok(got) => {
                    let (d, s) = got.max_abs_diff(&want);
                    if !(d <= 1e-4 * s) || got.shape != want.shape {
                        failures.push(format!("{name}/{export}: max diff {d:e} vs max {s:e}"));
                    }
                }
                Err(e) => failures.push(format!("{name}/{export}: {e}")),
            }
        }
    }
    assert!(ran >= 20, "only {ran} exports found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if wunet::cpu::direct_f32::available() {
        assert!(winograd > 0, "no layer ran Winograd");
    }
    eprintln!("{winograd} Winograd layers over {ran} exports");
}

/// Overlap-tile inference of an imported graph equals the whole image's result where the graph
/// allows tiles (margin and alignment from its receptive field and strides), and is refused with
/// the reason where an op mixes every pixel.
#[test]
fn tiles_of_an_imported_graph_equal_the_whole_image() {
    use wunet::engine::{Device, Engine, ModelFile};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let x = common::random_tensor([1, 3, 90, 101], 7);
    let m = ModelFile::load(&root.join("milesial_transposed/dynamo.onnx")).unwrap();
    let mut e = Engine::new(m, Device::Cpu, true).unwrap();
    let (radius, align) = e.tile_geometry(x.shape).unwrap();
    assert_eq!(align, 16, "4 poolings");
    assert!(radius > 40, "receptive radius {radius}");
    let whole = e.run(&x).unwrap();
    let tiled = e.run_maybe_tiled(&x, Some(32), None, u64::MAX).unwrap();
    assert_close("milesial tiled vs whole", &tiled, &whole, 1e-6);
    let m = ModelFile::load(&root.join("smp_resnet18_scse/dynamo.onnx")).unwrap();
    let mut e = Engine::new(m, Device::Cpu, true).unwrap();
    let err = e
        .run_maybe_tiled(&x, Some(32), None, u64::MAX)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot run in tiles"), "{err}");
}
