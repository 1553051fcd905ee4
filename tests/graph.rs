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
