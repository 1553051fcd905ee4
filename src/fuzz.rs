//! The entry points of the fuzz targets (`fuzz/`, `cargo +nightly fuzz run TARGET`), shared with
//! the test that replays their corpus and every crash they found (`tests/fuzz_corpus.rs`) on
//! stable. Each takes arbitrary bytes and must return without panicking, whatever they hold.

use crate::compress::QUNet;
use crate::cpu;
use crate::model::UNetSpec;
use crate::tensor::Tensor;
use crate::UNet;

/// A model file of either kind; an accepted one runs once on a tiny input.
pub fn model_bytes(data: &[u8]) {
    if let Ok(m) = UNet::from_safetensors(data) {
        let side = 1usize << m.spec.depth().min(4);
        if m.spec.param_count() < 1 << 20 && m.spec.depth() <= 4 {
            let x = Tensor::zeros([1, m.spec.in_channels, side, side]);
            let _ = cpu::forward(&m, &x, true);
        }
    }
    if let Ok(q) = QUNet::from_safetensors(data) {
        if let Ok(e) = cpu::int8::Int8Model::new(&q) {
            let side = 1usize << q.spec.depth().min(4);
            if q.spec.param_count() < 1 << 20 && q.spec.depth() <= 4 {
                let _ = e.forward(&Tensor::zeros([1, q.spec.in_channels, side, side]));
            }
        }
    }
}

/// A `.npy` array.
pub fn npy_bytes(data: &[u8]) {
    let _ = crate::io::npy_from_bytes(data);
}

/// An image file: decoded with the CLI's limits, then converted for a 3-channel model.
pub fn image_bytes(data: &[u8]) {
    let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format()
    else {
        return;
    };
    let mut reader = reader;
    reader.limits(crate::io::image_limits());
    if let Ok(img) = reader.decode() {
        let _ = crate::io::image_tensor(&img, &UNetSpec::new(3, 1, vec![4, 8]));
    }
}

/// An ONNX model: imported from bytes (no external data); an accepted one is planned at a few
/// small sizes and, where the plan is small, run once on the CPU graph engine.
pub fn onnx_bytes(data: &[u8]) {
    let Ok(g) = crate::graph::onnx::import(data, None) else {
        return;
    };
    if g.param_count() > 1 << 20 || g.nodes.len() > 1000 {
        return;
    }
    let c = g.in_channels().unwrap_or(3).min(64);
    for side in [1usize, 7, 16] {
        let Ok(s) = g.instantiate([1, c, side, side]) else {
            continue;
        };
        let elems: usize = (0..s.shapes.len()).map(|t| s.numel(t)).sum();
        if elems < 1 << 22 && s.total_flops() < 1 << 28 {
            let x = Tensor::new([1, c, side, side], vec![0.5; c * side * side]).expect("sized");
            let _ = crate::graph::fuse(s.clone());
            let _ = cpu::graph::run(&s, &x, &mut |_, _| {});
        }
    }
}
