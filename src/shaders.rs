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

/// Whether kernel source `src` calls the int8 library (`lib/int8_common.wgsl`).
pub fn needs_int8_lib(src: &str) -> bool {
    src.contains("dot4x4(") || src.contains("requant4(") || src.contains("dot4i8(")
}

/// The source of kernel `name` ready to compile: float32 kernels that address channel planes
/// get the layout's `plane_stride` (`lib/layout_f32.wgsl`) prepended, the Winograd transforms
/// their tile numbering (`lib/winograd_tiles.wgsl`), the layer-graph kernels their activation
/// epilogue (`lib/act_f32.wgsl`), their subgroup conv kernels the register block
/// (`lib/sg_block_f32.wgsl`) and the dense-row store (`lib/graph_store_f32.wgsl`); kernels calling the int8
/// library get it, after the dot-product variant: `packed_dot` selects WGSL's
/// `packed_4x8_integer_dot_product` builtin, else the unpacking fallback.
pub fn compose(name: &str, packed_dot: bool) -> String {
    let src = source(name);
    let mut out = String::new();
    if src.contains("plane_stride(") {
        out.push_str(source("lib/layout_f32"));
        out.push('\n');
    }
    if src.contains("apply_act(") || src.contains("linear_index(") || src.contains("store_px4(") {
        out.push_str(source("lib/act_f32"));
        out.push('\n');
    }
    if src.contains("sg_fma(") || src.contains("sg_wt(") || src.contains("sg_channel(") {
        out.push_str(source("lib/sg_block_f32"));
        out.push('\n');
    }
    if src.contains("store_px4(") {
        out.push_str(source("lib/graph_store_f32"));
        out.push('\n');
    }
    if src.contains("wino_tile(") {
        out.push_str(source("lib/winograd_tiles"));
        out.push('\n');
    }
    if needs_int8_lib(src) {
        let dot = if packed_dot {
            "lib/int8_dot4_builtin"
        } else {
            "lib/int8_dot4_unpacked"
        };
        out.push_str(source(dot));
        out.push('\n');
        out.push_str(source("lib/int8_common"));
        out.push('\n');
    }
    out.push_str(src);
    out
}
