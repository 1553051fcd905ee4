//! Shared test harness: one GPU device per test binary, random data, error budgets.
#![allow(dead_code)]

use std::sync::OnceLock;

use wunet::gpu::{request_gpu, Gpu};
use wunet::Tensor;

/// The test GPU, or `None` (with a printed notice) when there is no adapter. Under
/// `WUNET_REQUIRE_GPU=1` (CI) a missing adapter fails the test instead.
pub fn gpu(test: &str) -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    let g = GPU.get_or_init(|| match request_gpu() {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var("WUNET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("WUNET_REQUIRE_GPU=1 but no GPU: {e}");
            }
            None
        }
    });
    if g.is_none() {
        eprintln!(
            "SKIPPED {test}: no GPU adapter (set WUNET_REQUIRE_GPU=1 to make this a failure)"
        );
    }
    g.as_ref()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn random_tensor(shape: [usize; 4], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::new(shape, data).unwrap()
}

/// Assert max |got − want| ≤ rel · max |want|; on failure print the first bad index and a grid
/// of values around it.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rel: f32) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let (diff, scale) = got.max_abs_diff(want);
    let budget = rel * scale;
    if diff <= budget && got.data.iter().all(|v| v.is_finite()) {
        return;
    }
    let bad = got
        .data
        .iter()
        .zip(&want.data)
        .position(|(a, b)| (a - b).is_nan() || (a - b).abs() > budget)
        .unwrap_or(0);
    let [_, c, h, w] = want.shape;
    let (n, ch, y, x) = (bad / (c * h * w), bad / (h * w) % c, bad / w % h, bad % w);
    let mut grid = String::new();
    for yy in y.saturating_sub(1)..(y + 2).min(h) {
        for xx in x.saturating_sub(2)..(x + 3).min(w) {
            let i = ((n * c + ch) * h + yy) * w + xx;
            grid += &format!(" {:>10.5}/{:<10.5}", got.data[i], want.data[i]);
        }
        grid += "\n";
    }
    panic!(
        "{what}: max |got - want| = {diff:e} > {budget:e} (= {rel:e} · max|want| {scale:e}); first bad at [n {n}, c {ch}, y {y}, x {x}]; got/want around it:\n{grid}"
    );
}

/// A path in this test process's own temporary folder.
pub fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Run the `wunet` binary.
pub fn wunet(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(args)
        .output()
        .expect("run wunet")
}

/// Exit code 2, no panic, and every `needles` in stderr.
pub fn expect_error(args: &[&str], needles: &[&str]) {
    let out = wunet(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: expected exit code 2; stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
}

/// CRC-32 (IEEE), bit by bit: PNG chunk checksums for hand-made broken images.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
