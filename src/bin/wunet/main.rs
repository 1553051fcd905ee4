//! The `wunet` command line: `infer`, `info`, `init`, `bench`.

mod bench;
mod bench_graph;
mod compress;
mod eval;
mod infer;
mod info;
mod info_graph;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use wunet::gpu::request_gpu;
use wunet::io::read_npy;
use wunet::model::{init_random, save_safetensors, InitOptions, StoreDtype};
use wunet::{Error, Tensor, UNet, UNetSpec};

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

/// Any model file (reference U-Net, wunet-int8, ONNX): the library's.
pub(crate) use wunet::engine::ModelFile as AnyModel;

/// `-m` (or the demo model), of any kind.
pub(crate) fn load_any(path: Option<&Path>) -> Result<(PathBuf, AnyModel)> {
    let path = model_path(path);
    let m = AnyModel::load(&path)?;
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

/// The library's engine (device policy, plans, fallback, tiling), printing its notices.
pub(crate) struct Engine(wunet::engine::Engine);

impl From<Device> for wunet::engine::Device {
    fn from(d: Device) -> Self {
        match d {
            Device::Auto => wunet::engine::Device::Auto,
            Device::Gpu => wunet::engine::Device::Gpu,
            Device::Cpu => wunet::engine::Device::Cpu,
        }
    }
}

impl Engine {
    pub(crate) fn for_model(model: AnyModel, device: Device, fold: bool) -> Result<Engine> {
        let mut e = Engine(wunet::engine::Engine::new(model, device.into(), fold)?);
        e.notices();
        Ok(e)
    }

    fn notices(&mut self) {
        for n in self.0.take_notices() {
            eprintln!("wunet: {n}");
        }
    }

    pub(crate) fn name(&self) -> String {
        self.0.name().to_string()
    }

    pub(crate) fn spec(&self) -> &UNetSpec {
        self.0.spec()
    }

    /// `run`, in tiles when asked or needed (see `wunet::engine::Engine::run_maybe_tiled`).
    pub(crate) fn run_maybe_tiled(
        &mut self,
        x: &Tensor,
        tile: Option<usize>,
        margin: Option<usize>,
        max_memory: u64,
    ) -> Result<Tensor> {
        let r = self.0.run_maybe_tiled(x, tile, margin, max_memory);
        self.notices();
        Ok(r?)
    }

    pub(crate) fn run(&mut self, x: &Tensor) -> Result<Tensor> {
        let r = self.0.run(x);
        self.notices();
        Ok(r?)
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
