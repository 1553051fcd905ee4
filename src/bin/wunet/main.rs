//! The `wunet` command line: `infer`, `info`, `init`, `bench`.

mod bench;
mod bench_graph;
mod compress;
mod eval;
mod infer;
mod info;
mod info_graph;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use wunet::compress::{is_int8_file, QUNet};
use wunet::cpu::int8::kernels::qgemm_name;
use wunet::gpu::{request_gpu, GpuInt8Model, GpuInt8Options, GpuModel, GpuOptions, Plan};
use wunet::io::read_npy;
use wunet::model::{init_random, save_safetensors, InitOptions, StoreDtype};
use wunet::plan::Shape;
use wunet::cpu::graph::GraphCpu;
use wunet::graph::LayerGraph;
use wunet::{cpu, Error, Tensor, UNet, UNetSpec};

/// The model used when `-m` is not given.
const DEFAULT_MODEL: &str = "assets/demo_unet.safetensors";

#[derive(Parser)]
#[command(
    name = "wunet",
    version,
    about = "Run PyTorch U-Net segmentation models on the GPU (wgpu) or the CPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// CPU threads for the CPU engines and image decoding (default: every core, or
    /// RAYON_NUM_THREADS)
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Device {
    /// The GPU if an adapter exists, else the CPU (with a notice).
    Auto,
    Gpu,
    Cpu,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Png,
    Npy,
}

#[derive(Subcommand)]
enum Cmd {
    /// Segment images (PNG/JPEG) or run `.npy` tensors; writes a mask `.png` or logits `.npy`.
    Infer {
        /// Input images or `.npy` arrays (float32; NCHW, CHW or HW).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Model (safetensors state_dict); default: the demo model in assets/.
        #[arg(short, long)]
        model: Option<PathBuf>,
        /// Output file (`.png` mask or `.npy` logits); a directory when there are several inputs.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the mask blended over the input image (a directory for several inputs).
        #[arg(long)]
        overlay: Option<PathBuf>,
        /// Output format when `--output` is a directory.
        #[arg(long, value_enum, default_value = "png")]
        format: Format,
        #[arg(long, value_enum, default_value = "auto")]
        device: Device,
        /// Keep BatchNorm as its own kernel instead of folding it into the convolutions.
        #[arg(long)]
        no_fold: bool,
        /// Run in tiles of this many pixels per side (overlap-tile: each tile's window reaches
        /// --margin further). Without it, images too large for the device are tiled anyway.
        #[arg(long)]
        tile: Option<usize>,
        /// Pixels each tile's window reaches past the tile (default: the receptive-field radius,
        /// which makes the tiled result equal the untiled one; less is faster).
        #[arg(long)]
        margin: Option<usize>,
        /// Overwrite existing outputs (with several inputs or a folder, they are kept otherwise).
        #[arg(long)]
        force: bool,
        /// Activation memory budget in MiB: larger images run in tiles.
        #[arg(long, default_value_t = 2048)]
        max_memory: u64,
    },
    /// Print the architecture, parameters, FLOPs and the planned GPU memory for an input size.
    Info {
        #[arg(short, long)]
        model: Option<PathBuf>,
        /// Input size, HxW.
        #[arg(long, default_value = "256x256", value_parser = parse_size)]
        size: (usize, usize),
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// Time a model: end to end, first inference, and per dispatch against the measured peak.
    Bench {
        #[arg(short, long)]
        model: Option<PathBuf>,
        /// Input size, HxW.
        #[arg(long, default_value = "256x256", value_parser = parse_size)]
        size: (usize, usize),
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Timed runs (after the warm-up).
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum, default_value = "gpu")]
        device: Device,
        /// Time every 3×3 conv variant on every layer (default model: the reference U-Net,
        /// features 64–512, random weights) instead of the whole network.
        #[arg(long)]
        kernels: bool,
        /// With --kernels: the int8 dense and sparse conv kernels instead, on every layer with
        /// random int8 weights at each --sparsity (fraction of zero 8×4 blocks).
        #[arg(long)]
        int8: bool,
        #[arg(long, value_delimiter = ',', default_value = "0,0.3,0.8,0.95")]
        sparsity: Vec<f64>,
    },
    /// Prune a model's convolution weights by magnitude (writes a float32 safetensors file).
    Compress {
        #[arg(short, long)]
        model: Option<PathBuf>,
        /// Fraction of the weights to zero, in [0, 1).
        #[arg(long)]
        prune: Option<f64>,
        /// `layer`: per tensor, as PyTorch's l1_unstructured (the article); `global`: one
        /// threshold over the model on BatchNorm-folded magnitudes.
        #[arg(long, default_value = "global")]
        prune_scope: String,
        /// Prune the transposed convolutions too (left dense by default, as in the article).
        #[arg(long)]
        prune_transposed: bool,
        /// The unit of global pruning: `1` (single weights) or `8x4` (blocks of 8 output × 4
        /// input channels at one tap, which the GPU's sparse int8 kernel skips whole).
        #[arg(long, default_value = "1")]
        prune_block: String,
        /// Quantize to int8 (after pruning), writing the int8 format (docs/FORMAT.md).
        #[arg(long)]
        int8: bool,
        /// Calibration inputs for --int8: a folder of images or `.npy` arrays (default: the
        /// demo model's sample image, with a warning).
        #[arg(long)]
        calibrate: Option<PathBuf>,
        /// With --int8: keep the first conv in float32 (by default it is int8 too, on the input
        /// quantized: the whole network runs integer; on the default model both score the same)
        #[arg(long)]
        float_first: bool,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Score a model on a folder of images with ground-truth masks (`NAME.png` beside
    /// `NAME_mask.png`: 0/255 for one class, class ids otherwise): Dice and IoU, and with
    /// `--reference` the agreement with another model's masks.
    Eval {
        #[arg(short, long)]
        model: Option<PathBuf>,
        /// Folder of images and `*_mask.png` ground truths.
        #[arg(long)]
        data: PathBuf,
        /// A second model (e.g. the uncompressed one) to compare masks with.
        #[arg(long)]
        reference: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        device: Device,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Compare two `.npy` tensors: max |got − want| against a budget relative to max |want|
    /// (exit code 1 when over budget). For checks on machines without Python.
    Compare {
        got: PathBuf,
        want: PathBuf,
        /// Budget: max |got − want| ≤ rel · max |want|.
        #[arg(long, default_value_t = 1e-4)]
        rel: f32,
    },
    /// Write a random-weight model of any shape (for benchmarks).
    Init {
        /// Encoder widths, each twice the previous.
        #[arg(long, value_delimiter = ',', default_value = "64,128,256,512")]
        features: Vec<usize>,
        #[arg(long = "in", default_value_t = 3)]
        in_channels: usize,
        #[arg(long = "out", default_value_t = 1)]
        out_channels: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Tensor dtype in the file: f32, f16 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or("expected HxW, e.g. 256x256")?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("bad size {s:?}: expected HxW"))
    };
    Ok((p(h)?, p(w)?))
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `wunet info | head` into a panic; die quietly instead,
    // like other command-line tools.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("wunet: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("wunet: cannot start {n} threads: {e}");
            return ExitCode::from(2);
        }
    }
    let r = match cli.cmd {
        Cmd::Infer {
            inputs,
            model,
            output,
            overlay,
            format,
            device,
            no_fold,
            tile,
            margin,
            force,
            max_memory,
        } => infer::infer(infer::InferArgs {
            inputs: &inputs,
            model: model.as_deref(),
            output: &output,
            overlay: overlay.as_deref(),
            format,
            device,
            fold: !no_fold,
            tile,
            margin,
            force,
            max_memory: max_memory << 20,
        }),
        Cmd::Info { model, size, batch } => info::info(model.as_deref(), size, batch),
        Cmd::Compare { got, want, rel } => compare(&got, &want, rel),
        Cmd::Eval {
            model,
            data,
            reference,
            device,
            json,
        } => eval::eval(model.as_deref(), &data, reference.as_deref(), device, json),
        Cmd::Compress {
            model,
            prune,
            prune_scope,
            prune_transposed,
            prune_block,
            int8,
            calibrate,
            float_first,
            output,
        } => compress::compress(compress::CompressArgs {
            model: model.as_deref(),
            amount: prune,
            scope: &prune_scope,
            block: &prune_block,
            transposed: prune_transposed,
            calibrate: int8.then_some(calibrate.as_deref()),
            float_first,
            out: &output,
        }),
        Cmd::Bench {
            model,
            size,
            json,
            kernels: true,
            int8: true,
            sparsity,
            ..
        } => {
            let spec = match model.as_deref() {
                Some(p) => load_any(Some(p)).map(|(_, m)| m.spec().clone()),
                None => Ok(UNetSpec::new(3, 1, vec![64, 128, 256, 512])),
            };
            spec.and_then(|s| bench::bench_kernels_int8(&s, size, &sparsity, json))
        }
        Cmd::Bench {
            model,
            size,
            batch,
            json,
            kernels: true,
            ..
        } => {
            // The reference U-Net unless a model is given; --runs, --warmup, --device do not apply.
            let m = match model.as_deref() {
                Some(p) => load_model(Some(p)).map(|(_, m)| m),
                None => Ok(init_random(
                    &UNetSpec::new(3, 1, vec![64, 128, 256, 512]),
                    &InitOptions { seed: 0 },
                )),
            };
            m.and_then(|m| bench::bench_kernels(m, size, batch, json))
        }
        Cmd::Bench {
            model,
            size,
            batch,
            runs,
            warmup,
            json,
            device,
            kernels: false,
            ..
        } => load_any(model.as_deref()).and_then(|(path, any)| {
            let cpu = match device {
                Device::Cpu => true,
                Device::Gpu => false,
                // As in `infer`: the CPU engine unless a hardware adapter exists.
                Device::Auto => {
                    request_gpu().map_or(true, |g| g.info.device_type == wgpu::DeviceType::Cpu)
                }
            };
            let args = bench::BenchArgs {
                size,
                batch,
                runs,
                warmup,
                json,
                cpu,
            };
            match any {
                AnyModel::Int8(q) if cpu => bench::bench_int8(&path, &q, &args),
                any => bench::bench(&path, any, &args),
            }
        }),
        Cmd::Init {
            features,
            in_channels,
            out_channels,
            seed,
            dtype,
            output,
        } => init(features, in_channels, out_channels, seed, &dtype, &output),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<OverBudget>() || e.is::<infer::SomeFailed>() => {
            eprintln!("wunet: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("wunet: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A model file of either kind (one per process: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyModel {
    Float(UNet),
    Int8(QUNet),
    /// An imported graph (ONNX), with what the image path needs to know of it as a spec
    /// (channels, normalization; no encoder widths).
    Graph {
        graph: Box<LayerGraph>,
        spec: UNetSpec,
    },
}

impl AnyModel {
    pub(crate) fn spec(&self) -> &UNetSpec {
        match self {
            AnyModel::Float(m) => &m.spec,
            AnyModel::Int8(m) => &m.spec,
            AnyModel::Graph { spec, .. } => spec,
        }
    }
}

/// An ONNX file: by extension, or bytes that do not start as a safetensors header does
/// (8 bytes of length, then `{`).
fn is_onnx(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) || (bytes.len() > 8 && bytes[8] != b'{')
}

/// The image-facing facts of a graph: input channels (3 where the model leaves them dynamic),
/// output channels (from the graph at a probe size), normalization.
pub(crate) fn graph_spec(g: &LayerGraph) -> UNetSpec {
    let cin = g.in_channels().unwrap_or(3);
    let out = [256usize, 64, 37]
        .iter()
        .find_map(|&s| {
            let n = g.input_dims[0].unwrap_or(1);
            let h = g.input_dims[2].unwrap_or(s);
            let w = g.input_dims[3].unwrap_or(s);
            g.instantiate([n, cin, h, w]).ok().map(|sh| sh.shapes[sh.output][1])
        })
        .unwrap_or(1);
    let mut spec = UNetSpec::new(cin, out, Vec::new());
    spec.input_mean = g.input_mean.clone();
    spec.input_std = g.input_std.clone();
    spec
}

/// `-m` (or the demo model), float or int8.
pub(crate) fn load_any(path: Option<&Path>) -> Result<(PathBuf, AnyModel)> {
    let path = model_path(path);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let m = if is_onnx(&path, &bytes) {
        let dir = path.parent().unwrap_or(Path::new("."));
        let graph = wunet::graph::onnx::import(&bytes, Some(dir))
            .with_context(|| path.display().to_string())?;
        let spec = graph_spec(&graph);
        AnyModel::Graph {
            graph: Box::new(graph),
            spec,
        }
    } else if is_int8_file(&bytes) {
        AnyModel::Int8(QUNet::from_safetensors(&bytes).with_context(|| path.display().to_string())?)
    } else {
        AnyModel::Float(UNet::load(&path)?)
    };
    Ok((path, m))
}

/// `-m`, or the demo model (looked up from the working directory, then from the source tree).
pub(crate) fn model_path(path: Option<&Path>) -> PathBuf {
    match path {
        Some(p) => p.to_path_buf(),
        None => {
            let local = PathBuf::from(DEFAULT_MODEL);
            if local.exists() {
                local
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL)
            }
        }
    }
}

/// `-m` (or the demo model) as a float model.
pub(crate) fn load_model(path: Option<&Path>) -> Result<(PathBuf, UNet)> {
    let path = model_path(path);
    let m = UNet::load(&path).with_context(|| path.display().to_string())?;
    Ok((path, m))
}

/// Where inference runs: the GPU with one plan per input shape, or the CPU reference.
pub(crate) enum Engine {
    Gpu {
        name: String,
        model: GpuModel,
        plans: HashMap<Shape, Plan>,
        /// With `--device auto`: the model again, for the CPU engine if the GPU fails at plan
        /// time.
        fallback: Option<Box<(UNet, bool)>>,
    },
    Cpu {
        model: cpu::CpuModel,
    },
    /// The CPU int8 engine.
    Int8 {
        model: cpu::int8::Int8Model,
    },
    /// An imported graph on the CPU float32 graph engine.
    Graph { model: GraphCpu, spec: UNetSpec },
    /// The GPU int8 engine.
    GpuInt8 {
        name: String,
        model: GpuInt8Model,
        plans: HashMap<Shape, Plan>,
    },
}

impl Engine {
    /// A float model on `device`; an int8 model on the GPU int8 engine (`--device gpu`, or auto
    /// with a hardware adapter) or the CPU int8 engine.
    pub(crate) fn for_model(model: AnyModel, device: Device, fold: bool) -> Result<Engine> {
        let q = match model {
            AnyModel::Float(m) => return Engine::new(m, device, fold),
            AnyModel::Int8(q) => q,
            AnyModel::Graph { graph, spec } => return Engine::graph(*graph, spec, device, fold),
        };
        let cpu = || -> Result<Engine> {
            Ok(Engine::Int8 {
                model: cpu::int8::Int8Model::new(&q)?,
            })
        };
        if device == Device::Cpu {
            return cpu();
        }
        let float_first = matches!(q.first, wunet::compress::FirstConv::Float(_));
        match request_gpu() {
            Ok(gpu)
                if device == Device::Auto
                    && (gpu.info.device_type == wgpu::DeviceType::Cpu || float_first) =>
            {
                eprintln!(
                    "wunet: running on the CPU int8 engine ({})",
                    if float_first {
                        "this model keeps its first conv float32, which the GPU int8 engine does not run"
                    } else {
                        "the best GPU adapter is a software one; --device gpu to force it"
                    }
                );
                cpu()
            }
            Ok(gpu) => {
                let model = GpuInt8Model::new(
                    &gpu.device,
                    &gpu.queue,
                    &q,
                    GpuInt8Options {
                        dot4: gpu.dot4(),
                        ..Default::default()
                    },
                )?;
                Ok(Engine::GpuInt8 {
                    name: format!("gpu int8 {}", gpu.info.name),
                    model,
                    plans: HashMap::new(),
                })
            }
            Err(Error::NoAdapter) if device == Device::Auto => {
                eprintln!("wunet: no GPU adapter found, running on the CPU int8 engine");
                cpu()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// An imported graph: the CPU graph engine (the GPU lowering of graphs is not in this build:
    /// `--device gpu` says so, auto says which engine runs).
    fn graph(graph: LayerGraph, spec: UNetSpec, device: Device, fold: bool) -> Result<Engine> {
        if device == Device::Gpu {
            bail!("imported (ONNX) models run on the CPU engine in this build; the GPU lowering of graph ops is not done yet (use --device cpu or auto)");
        }
        Ok(Engine::Graph {
            model: GraphCpu::new(graph, fold),
            spec,
        })
    }

    fn new(model: UNet, device: Device, fold: bool) -> Result<Engine> {
        if device == Device::Cpu {
            return Ok(Engine::Cpu {
                model: cpu::CpuModel::new(model, fold),
            });
        }
        match request_gpu() {
            // A software adapter (lavapipe, SwiftShader) runs shaders on this same CPU, several
            // times slower than the CPU engine: auto takes the CPU engine then.
            Ok(gpu) if device == Device::Auto && gpu.info.device_type == wgpu::DeviceType::Cpu => {
                eprintln!(
                    "wunet: the best GPU adapter is a software one ({}); running on the CPU engine (--device gpu to force it)",
                    gpu.info.name
                );
                Ok(Engine::Cpu {
                    model: cpu::CpuModel::new(model, fold),
                })
            }
            Ok(gpu) => {
                let gm = GpuModel::new(
                    &gpu.device,
                    &gpu.queue,
                    &model,
                    GpuOptions {
                        fold_bn: fold,
                        ..Default::default()
                    },
                )?;
                Ok(Engine::Gpu {
                    name: format!("gpu {}", gpu.info.name),
                    model: gm,
                    plans: HashMap::new(),
                    fallback: (device == Device::Auto).then(|| Box::new((model, fold))),
                })
            }
            Err(Error::NoAdapter) if device == Device::Auto => {
                eprintln!("wunet: no GPU adapter found, running on the CPU engine");
                Ok(Engine::Cpu {
                    model: cpu::CpuModel::new(model, fold),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn name(&self) -> String {
        match self {
            Engine::Gpu { name, .. } => name.clone(),
            Engine::Cpu { model } => model.kernel().into(),
            Engine::Int8 { .. } => format!("cpu int8 ({})", qgemm_name()),
            Engine::Graph { .. } => "cpu f32 (graph)".into(),
            Engine::GpuInt8 { name, .. } => name.clone(),
        }
    }

    pub(crate) fn spec(&self) -> &UNetSpec {
        match self {
            Engine::Gpu { model, .. } => model.spec(),
            Engine::Cpu { model } => model.spec(),
            Engine::Int8 { model } => model.spec(),
            Engine::Graph { spec, .. } => spec,
            Engine::GpuInt8 { model, .. } => model.spec(),
        }
    }

    /// Run `x`, in tiles when `tile` is given or when the device cannot hold the whole image
    /// (the tile then halves from 1024 until a window fits).
    pub(crate) fn run_maybe_tiled(
        &mut self,
        x: &Tensor,
        tile: Option<usize>,
        margin: Option<usize>,
        max_memory: u64,
    ) -> Result<Tensor> {
        if let Engine::Graph { model, .. } = self {
            let Some(t) = tile else {
                return Ok(model.forward(x)?);
            };
            let prep = model.prepared(x.shape)?;
            let (radius, align) = prep.shaped.tile_geometry().ok_or_else(|| {
                anyhow::anyhow!("this model cannot run in tiles: an op mixes every pixel of the image (a global pool, a normalization over the whole image, or an align_corners resize), so tiles would not reproduce the whole image's result")
            })?;
            let margin = margin.unwrap_or(radius);
            return Ok(wunet::plan::run_tiled(x, t, margin, align, |w| model.forward(w))?);
        }
        let spec = self.spec().clone();
        let margin = margin.unwrap_or_else(|| wunet::plan::receptive_radius(&spec));
        let align = 1 << spec.depth();
        // Activation memory the float plan would need (the int8 one needs less).
        let planned = |shape: Shape| -> u64 {
            wunet::plan::Graph::build(&spec, shape, true)
                .map(|g| wunet::plan::plan_memory(&g, wunet::plan::ARENA_ALIGN).arena_bytes)
                .unwrap_or(0)
        };
        let tile = tile.or_else(|| {
            if planned(x.shape) <= max_memory {
                return None;
            }
            // The largest tile (from 1024 px down) whose window fits the budget.
            let mut t = 1024;
            let [n, c, _, _] = x.shape;
            while t > 2 * align {
                let side = (t + 2 * margin).div_ceil(align) * align;
                if planned([n, c, side, side]) <= max_memory {
                    break;
                }
                t /= 2;
            }
            eprintln!(
                "wunet: {:.0} MiB of activations exceed --max-memory {:.0} MiB: running in tiles of {t} px (margin {margin})",
                planned(x.shape) as f64 / 1048576.0,
                max_memory as f64 / 1048576.0
            );
            Some(t)
        });
        if let Some(t) = tile {
            return Ok(wunet::plan::run_tiled(x, t, margin, align, |w| {
                self.run(w).map_err(to_lib_error)
            })?);
        }
        match self.run(x) {
            Err(e) if matches!(e.downcast_ref::<Error>(), Some(Error::ExceedsLimit { .. })) => {
                let mut t = 1024;
                loop {
                    eprintln!("wunet: {e}; running in tiles of {t} px (margin {margin})");
                    let r = wunet::plan::run_tiled(x, t, margin, align, |w| {
                        self.run(w).map_err(to_lib_error)
                    });
                    match r {
                        Err(Error::ExceedsLimit { .. }) if t > 2 * align => t /= 2,
                        r => return Ok(r?),
                    }
                }
            }
            r => r,
        }
    }

    pub(crate) fn run(&mut self, x: &Tensor) -> Result<Tensor> {
        match self {
            Engine::Gpu {
                model,
                plans,
                fallback,
                ..
            } => {
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(x.shape) {
                    match model.plan(x.shape) {
                        Ok(p) => {
                            e.insert(p);
                        }
                        // --device auto: a GPU failure at plan time (out of memory, a lost
                        // device, a driver error) moves to the CPU engine, saying so. Inputs
                        // beyond the device's limits are tiled instead (`run_maybe_tiled`).
                        Err(err)
                            if fallback.is_some() && !matches!(err, Error::ExceedsLimit { .. }) =>
                        {
                            let (m, fold) = *fallback.take().expect("checked");
                            eprintln!("wunet: the GPU failed ({err}); running on the CPU engine");
                            *self = Engine::Cpu {
                                model: cpu::CpuModel::new(m, fold),
                            };
                            return self.run(x);
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                Ok(plans[&x.shape].run(x)?)
            }
            Engine::Cpu { model } => Ok(model.forward(x)?),
            Engine::Int8 { model } => Ok(model.forward(x)?),
            Engine::Graph { model, .. } => Ok(model.forward(x)?),
            Engine::GpuInt8 { model, plans, .. } => {
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(x.shape) {
                    e.insert(model.plan(x.shape)?);
                }
                Ok(plans[&x.shape].run(x)?)
            }
        }
    }
}

/// Back to the library's error (tiles run through the engines' anyhow results).
fn to_lib_error(e: anyhow::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(e) => e,
        Err(e) => Error::InvalidArgument(e.to_string()),
    }
}

pub(crate) fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// `mask.png` for one image; `mask_0.png`, `mask_1.png`, … for a batch.
pub(crate) fn numbered(p: &Path, i: usize, n: usize) -> PathBuf {
    if n == 1 {
        return p.to_path_buf();
    }
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = p
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    p.with_file_name(format!("{stem}_{i}.{ext}"))
}

pub(crate) fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so a failure
/// never leaves a half-written output.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

#[derive(Debug)]
struct OverBudget(String);

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverBudget {}

fn compare(got: &Path, want: &Path, rel: f32) -> Result<()> {
    let (g, w) = (read_npy(got)?, read_npy(want)?);
    if g.shape != w.shape {
        bail!("shapes differ: {:?} vs {:?}", g.shape, w.shape);
    }
    let (d, m) = g.max_abs_diff(&w);
    let ratio = if m > 0.0 { d / m } else { d };
    let line = format!(
        "{}: max|diff| {d:.3e}, max|ref| {m:.3e}, ratio {ratio:.3e} (budget {rel:.0e})",
        got.display()
    );
    if ratio.is_nan() || ratio > rel {
        return Err(OverBudget(format!("{line}: OVER BUDGET")).into());
    }
    println!("{line}: ok");
    Ok(())
}

fn init(
    features: Vec<usize>,
    cin: usize,
    cout: usize,
    seed: u64,
    dtype: &str,
    out: &Path,
) -> Result<()> {
    if features.is_empty() || cin == 0 || cout == 0 || features.contains(&0) {
        bail!("features, --in and --out must be positive");
    }
    for l in 1..features.len() {
        if features[l] != 2 * features[l - 1] {
            return Err(Error::WidthsDoNotDouble {
                features: features.clone(),
                level: l,
                expected: 2 * features[l - 1],
                found: features[l],
            }
            .into());
        }
    }
    let dtype: StoreDtype = dtype.parse()?;
    let spec = UNetSpec::new(cin, cout, features);
    let m = init_random(&spec, &InitOptions { seed });
    let bytes = save_safetensors(&m, dtype)?;
    write_atomic(out, &bytes)?;
    eprintln!(
        "wrote {} ({} parameters, {})",
        out.display(),
        spec.param_count(),
        mib(bytes.len() as u64)
    );
    Ok(())
}
