//! Every WGSL source of `shaders/`, embedded at build time by `build.rs`, looked up by its path
//! under `shaders/` without the extension (e.g. `conv/conv3x3_bn_relu_f32`).

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// The source of shader `name`; panics on an unknown name (a broken internal invariant: names
/// are compile-time constants of this crate, checked by the tests).
pub fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no shader named {name:?} in shaders/"))
}
