//! Replays the fuzz targets' corpora and every crash, timeout or out-of-memory input they found
//! (`fuzz/corpus/TARGET/`, `fuzz/artifacts/TARGET/`) through the same entry points
//! (`wunet::fuzz`), on stable: none may panic. Bounded in time (the corpora are minimized with
//! `cargo fuzz cmin`).

use std::path::Path;
use std::time::Instant;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("artifacts").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{target}: {} panics", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_corpora_and_findings_replay_without_panics() {
    let t = Instant::now();
    let counts = [
        (
            "model_reader",
            replay("model_reader", wunet::fuzz::model_bytes),
        ),
        ("npy_reader", replay("npy_reader", wunet::fuzz::npy_bytes)),
        ("image_path", replay("image_path", wunet::fuzz::image_bytes)),
        (
            "onnx_reader",
            replay("onnx_reader", wunet::fuzz::onnx_bytes),
        ),
    ];
    eprintln!("replayed {counts:?} in {:.1} s", t.elapsed().as_secs_f64());
    for (target, n) in counts {
        assert!(n > 0, "no corpus for {target}");
    }
    assert!(
        t.elapsed().as_secs() < 300,
        "the replay must stay bounded in time"
    );
}
