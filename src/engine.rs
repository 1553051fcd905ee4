//! Models of every kind and the device policy, in one place for the CLI, the browser build and
//! other bindings: [`ModelFile`] reads any model file wunet takes (reference U-Net safetensors,
//! wunet-int8 safetensors, ONNX), [`choose`] is the one rule for where it runs, and (natively)
//! [`Engine`] runs it there, planning per input shape, falling back to the CPU where `auto` allows
//! and tiling images that exceed the device's limits or the memory budget.

use std::path::Path;

use crate::compress::{is_int8_file, FirstConv, QUNet};
use crate::graph::LayerGraph;
use crate::{Error, Result, UNet, UNetSpec};

/// Where the user asked a model to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A hardware GPU if there is one, else the CPU engines (which beat a software adapter such
    /// as lavapipe on the same cores).
    Auto,
    Gpu,
    Cpu,
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        match s {
            "auto" => Ok(Device::Auto),
            "gpu" => Ok(Device::Gpu),
            "cpu" => Ok(Device::Cpu),
            d => Err(Error::InvalidArgument(format!(
                "device must be auto, gpu or cpu, not {d:?}"
            ))),
        }
    }
}

/// A model file of any kind wunet reads.
#[allow(clippy::large_enum_variant)]
pub enum ModelFile {
    /// A reference U-Net `state_dict` (float).
    Float(UNet),
    /// A `wunet-int8` file.
    Int8(QUNet),
    /// An imported graph (ONNX), with the image-facing facts of it as a spec (channels,
    /// normalization; no encoder widths).
    Graph { graph: LayerGraph, spec: UNetSpec },
}

impl ModelFile {
    /// Reads `path` (external ONNX data is looked up beside it).
    pub fn load(path: &Path) -> Result<ModelFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let onnx = match ext.as_deref() {
            Some("onnx") => Some(true),
            Some("safetensors") => Some(false),
            _ => None,
        };
        ModelFile::from_bytes(&bytes, onnx, Some(dir)).map_err(|e| match e {
            Error::BadModel(r) if !r.starts_with(&path.display().to_string()) => {
                Error::BadModel(format!("{}: {r}", path.display()))
            }
            Error::NotSafetensors { reason, .. } => Error::NotSafetensors {
                path: path.to_path_buf(),
                reason,
            },
            e => Error::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        })
    }

    /// From bytes: ONNX or safetensors as `onnx` says (the file's extension), else by content:
    /// safetensors where the bytes start as its header does (8 bytes of length, then `{`),
    /// otherwise ONNX. `dir` holds ONNX external data (`None`: none may be referenced).
    pub fn from_bytes(bytes: &[u8], onnx: Option<bool>, dir: Option<&Path>) -> Result<ModelFile> {
        let looks_safetensors = bytes.len() > 8 && bytes[8] == b'{';
        match onnx {
            Some(true) => ModelFile::onnx(bytes, dir),
            Some(false) => ModelFile::safetensors(bytes),
            None if looks_safetensors => ModelFile::safetensors(bytes),
            // Neither by its look: ONNX, and where that does not parse either, both reasons.
            None => match ModelFile::onnx(bytes, dir) {
                Err(Error::BadModel(onnx)) if onnx.starts_with("not a readable ONNX model") => {
                    match ModelFile::safetensors(bytes) {
                        Err(Error::NotSafetensors { path, reason }) => Err(Error::NotSafetensors {
                            path,
                            reason: format!(
                                "{reason} (nor an ONNX model: {})",
                                onnx.trim_start_matches("not a readable ONNX model: ")
                            ),
                        }),
                        r => r,
                    }
                }
                r => r,
            },
        }
    }

    fn onnx(bytes: &[u8], dir: Option<&Path>) -> Result<ModelFile> {
        let graph = crate::graph::onnx::import(bytes, dir)?;
        let spec = graph_spec(&graph);
        Ok(ModelFile::Graph { graph, spec })
    }

    fn safetensors(bytes: &[u8]) -> Result<ModelFile> {
        if is_int8_file(bytes) {
            Ok(ModelFile::Int8(QUNet::from_safetensors(bytes)?))
        } else {
            Ok(ModelFile::Float(UNet::from_safetensors(bytes)?))
        }
    }

    pub fn spec(&self) -> &UNetSpec {
        match self {
            ModelFile::Float(m) => &m.spec,
            ModelFile::Int8(m) => &m.spec,
            ModelFile::Graph { spec, .. } => spec,
        }
    }

    /// "f32" or "int8".
    pub fn precision(&self) -> &'static str {
        match self {
            ModelFile::Int8(_) => "int8",
            _ => "f32",
        }
    }
}

/// The image-facing facts of a graph: input channels (3 where the model leaves them dynamic),
/// output channels (as the model declares them, else from the graph at a probe size),
/// normalization.
pub fn graph_spec(g: &LayerGraph) -> UNetSpec {
    let cin = g.in_channels().unwrap_or(3);
    let probe = || {
        [256usize, 64, 37].iter().find_map(|&s| {
            let n = g.input_dims[0].unwrap_or(1);
            let h = g.input_dims[2].unwrap_or(s);
            let w = g.input_dims[3].unwrap_or(s);
            g.instantiate([n, cin, h, w])
                .ok()
                .map(|sh| sh.shapes[sh.output][1])
        })
    };
    let out = g.output_dims[1].or_else(probe).unwrap_or(1);
    let mut spec = UNetSpec::new(cin, out, Vec::new());
    spec.input_mean = g.input_mean.clone();
    spec.input_std = g.input_std.clone();
    spec
}

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Gpu,
    Cpu,
}

/// The adapter as the policy sees it.
pub struct AdapterView<'a> {
    pub name: &'a str,
    /// A software rasterizer on the CPU (lavapipe, SwiftShader).
    pub software: bool,
}

/// The one device rule. `adapter`: the best adapter, or why there is none. Returns the choice
/// and, where `auto` decided something the user should hear, a notice.
pub fn choose(
    device: Device,
    adapter: std::result::Result<AdapterView, &Error>,
    model: &ModelFile,
    browser: bool,
) -> Result<(Choice, Option<String>)> {
    let cpu_engine = match model {
        ModelFile::Int8(_) => "CPU int8 engine",
        _ => "CPU engine",
    };
    if device == Device::Cpu {
        return Ok((Choice::Cpu, None));
    }
    // What the GPU engines cannot run.
    let gpu_lacks = match model {
        ModelFile::Int8(q) if matches!(q.first, FirstConv::Float(_)) => {
            Some("this model keeps its first conv float32, which the GPU int8 engine does not run")
        }
        _ => None,
    };
    match (device, adapter) {
        (Device::Gpu, Err(e)) => Err(clone_err(e)),
        (Device::Gpu, Ok(_)) => Ok((Choice::Gpu, None)),
        (_, Err(_)) => Ok((
            Choice::Cpu,
            Some(format!("no GPU adapter found, running on the {cpu_engine}")),
        )),
        (_, Ok(a)) => {
            if let Some(why) = gpu_lacks {
                return Ok((
                    Choice::Cpu,
                    Some(format!("running on the {cpu_engine} ({why})")),
                ));
            }
            // In a page, WebGPU is the fast path even on a software adapter (the wasm CPU
            // engines are no faster); natively, the CPU engines beat a software adapter.
            if a.software && !browser {
                return Ok((
                    Choice::Cpu,
                    Some(format!(
                        "the best GPU adapter is a software one ({}); running on the {cpu_engine} (--device gpu to force it)",
                        a.name
                    )),
                ));
            }
            Ok((Choice::Gpu, None))
        }
    }
}

fn clone_err(e: &Error) -> Error {
    match e {
        Error::NoAdapter => Error::NoAdapter,
        e => Error::Gpu(e.to_string()),
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::Engine;
