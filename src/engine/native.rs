//! The native engine: a model on the device `choose` picked, with its plans per input shape.

use std::collections::HashMap;

use super::{choose, AdapterView, Choice, Device, ModelFile};
use crate::cpu::{self, graph::GraphCpu, int8::Int8Model, CpuModel};
use crate::gpu::graph::{GpuGraphModel, GpuGraphOptions, GraphPlan};
use crate::gpu::{request_gpu, GpuInt8Model, GpuInt8Options, GpuModel, GpuOptions, Plan};
use crate::plan::Shape;
use crate::{Error, Result, Tensor, UNetSpec};

/// Why a run failed: making the plan for its shape, or running it.
enum Failure {
    Planning(Error),
    Running(Error),
}
use Failure::{Planning, Running};

enum Kind {
    Gpu {
        model: GpuModel,
        plans: HashMap<Shape, Plan>,
    },
    Cpu(CpuModel),
    Int8(Int8Model),
    GpuInt8 {
        model: GpuInt8Model,
        plans: HashMap<Shape, Plan>,
    },
    Graph(GraphCpu),
    GpuGraph {
        model: GpuGraphModel,
        plans: HashMap<Shape, GraphPlan>,
    },
}

/// A model on its device.
pub struct Engine {
    kind: Kind,
    name: String,
    spec: UNetSpec,
    notices: Vec<String>,
    /// `planned_bytes` per input shape: each image of a folder asks again.
    planned: std::sync::Mutex<HashMap<Shape, u64>>,
    /// With `auto` on a float32 GPU engine: the model again, for the CPU engine if the GPU
    /// fails at plan time.
    fallback: Option<Box<(ModelFile, bool)>>,
}

/// The CPU engine for `model`, and its name for reports.
fn cpu_kind(model: ModelFile, fold: bool) -> Result<(Kind, String)> {
    Ok(match model {
        ModelFile::Float(m) => {
            let m = CpuModel::new(m, fold);
            let name = m.kernel().to_string();
            (Kind::Cpu(m), name)
        }
        ModelFile::Int8(q) => (
            Kind::Int8(Int8Model::new(&q)?),
            format!("cpu int8 ({})", cpu::int8::kernels::qgemm_name()),
        ),
        ModelFile::Graph { graph, .. } => (
            Kind::Graph(GraphCpu::new(graph, fold)),
            "cpu f32 (graph)".into(),
        ),
    })
}

impl Engine {
    /// `model` where `device` and `choose` put it; `fold` = false keeps BatchNorm (and, for
    /// graphs, every activation) as its own op.
    pub fn new(model: ModelFile, device: Device, fold: bool) -> Result<Engine> {
        let spec = model.spec().clone();
        let gpu = if device == Device::Cpu {
            Err(Error::NoAdapter)
        } else {
            request_gpu()
        };
        let view = gpu.as_ref().map(|g| AdapterView {
            name: &g.info.name,
            software: g.info.device_type == wgpu::DeviceType::Cpu,
        });
        let (choice, notice) = choose(device, view, &model, false)?;
        let notices: Vec<String> = notice.into_iter().collect();
        let mut fallback = None;
        let (kind, name) = match (choice, model) {
            (Choice::Cpu, model) => cpu_kind(model, fold)?,
            (Choice::Gpu, ModelFile::Graph { graph, .. }) => {
                let g = gpu?;
                if device == Device::Auto {
                    let spec = spec.clone();
                    fallback = Some(Box::new((
                        ModelFile::Graph {
                            graph: graph.clone(),
                            spec,
                        },
                        fold,
                    )));
                }
                let opts = GpuGraphOptions {
                    fuse: fold,
                    ..Default::default()
                };
                let model = GpuGraphModel::new(&g.device, &g.queue, graph, opts)?;
                (
                    Kind::GpuGraph {
                        model,
                        plans: HashMap::new(),
                    },
                    format!("gpu f32 (graph) {}", g.info.name),
                )
            }
            (Choice::Gpu, ModelFile::Float(m)) => {
                let g = gpu?;
                let model = GpuModel::new(
                    &g.device,
                    &g.queue,
                    &m,
                    GpuOptions {
                        fold_bn: fold,
                        ..Default::default()
                    },
                )?;
                if device == Device::Auto {
                    fallback = Some(Box::new((ModelFile::Float(m), fold)));
                }
                (
                    Kind::Gpu {
                        model,
                        plans: HashMap::new(),
                    },
                    format!("gpu {}", g.info.name),
                )
            }
            (Choice::Gpu, ModelFile::Int8(q)) => {
                let g = gpu?;
                let model = GpuInt8Model::new(
                    &g.device,
                    &g.queue,
                    &q,
                    GpuInt8Options {
                        dot4: g.dot4(),
                        ..Default::default()
                    },
                )?;
                (
                    Kind::GpuInt8 {
                        model,
                        plans: HashMap::new(),
                    },
                    format!("gpu int8 {}", g.info.name),
                )
            }
        };
        Ok(Engine {
            kind,
            name,
            spec,
            notices,
            planned: Default::default(),
            fallback,
        })
    }

    /// What runs, for reports: "gpu NVIDIA …", "cpu f32 (direct, avx512)", …
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &UNetSpec {
        &self.spec
    }

    /// What the policy decided that the user should hear (printed by the CLI), since the last
    /// call.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// One input, whole.
    pub fn run(&mut self, x: &Tensor) -> Result<Tensor> {
        match self.run_on_device(x) {
            // auto: a GPU failure at plan time (out of memory, a lost device, a driver error)
            // moves to the CPU engine, saying so. Inputs beyond the device's limits are tiled
            // instead (`run_maybe_tiled`).
            Err(Planning(err))
                if self.fallback.is_some() && !matches!(err, Error::ExceedsLimit { .. }) =>
            {
                let (model, fold) = *self.fallback.take().expect("checked");
                self.notices
                    .push(format!("the GPU failed ({err}); running on the CPU engine"));
                (self.kind, self.name) = cpu_kind(model, fold)?;
                self.run(x)
            }
            Err(Planning(err) | Running(err)) => Err(err),
            Ok(y) => Ok(y),
        }
    }

    /// `run` where the engine is, telling a failure to plan from one to run.
    fn run_on_device(&mut self, x: &Tensor) -> std::result::Result<Tensor, Failure> {
        fn planned<'p, P>(
            plans: &'p mut HashMap<Shape, P>,
            shape: Shape,
            plan: impl FnOnce() -> Result<P>,
        ) -> std::result::Result<&'p P, Failure> {
            if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(shape) {
                e.insert(plan().map_err(Planning)?);
            }
            Ok(&plans[&shape])
        }
        match &mut self.kind {
            Kind::Gpu { model, plans } => planned(plans, x.shape, || model.plan(x.shape))?.run(x),
            Kind::GpuInt8 { model, plans } => {
                planned(plans, x.shape, || model.plan(x.shape))?.run(x)
            }
            Kind::GpuGraph { model, plans } => {
                planned(plans, x.shape, || model.plan(x.shape))?.run(x)
            }
            Kind::Cpu(m) => m.forward(x),
            Kind::Int8(m) => m.forward(x),
            Kind::Graph(m) => m.forward(x),
        }
        .map_err(Running)
    }

    /// The overlap-tile geometry for `shape`: (receptive radius, window alignment), or why tiles
    /// cannot reproduce the whole image's result.
    pub fn tile_geometry(&self, shape: Shape) -> Result<(usize, usize)> {
        match &self.kind {
            Kind::Graph(_) | Kind::GpuGraph { .. } => self.shaped_graph(shape)?.tile_geometry().ok_or_else(|| {
                Error::InvalidArgument("this model cannot run in tiles: an op mixes every pixel of the image (a global pool, a normalization over the whole image, or an align_corners resize), so tiles would not reproduce the whole image's result".into())
            }),
            _ => Ok((crate::plan::receptive_radius(&self.spec), 1 << self.spec.depth())),
        }
    }

    /// An imported graph for `shape`, fused.
    fn shaped_graph(&self, shape: Shape) -> Result<crate::graph::Shaped> {
        let g = match &self.kind {
            Kind::Graph(m) => m.graph(),
            Kind::GpuGraph { model, .. } => model.graph(),
            _ => unreachable!("only graphs"),
        };
        Ok(crate::graph::fuse(g.instantiate(shape)?))
    }

    /// Activation memory a whole-image plan of `shape` needs (the float plan's arena; the int8
    /// one needs less; graphs: the peak of live tensors).
    pub fn planned_bytes(&self, shape: Shape) -> u64 {
        let mut memo = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        *memo.entry(shape).or_insert_with(|| match &self.kind {
            // The shaped graph only: no weights packed, no plan cache displaced.
            Kind::Graph(_) | Kind::GpuGraph { .. } => {
                self.shaped_graph(shape).map_or(0, |g| g.peak_live_bytes())
            }
            _ => crate::plan::Graph::build(&self.spec, shape, true)
                .map(|g| crate::plan::plan_memory(&g, crate::plan::ARENA_ALIGN).arena_bytes)
                .unwrap_or(0),
        })
    }

    /// Run `x`, in tiles when `tile` is given, when its activations exceed `max_memory` bytes,
    /// or when the device cannot hold the whole image (the tile then halves from 1024 until a
    /// window fits).
    pub fn run_maybe_tiled(
        &mut self,
        x: &Tensor,
        tile: Option<usize>,
        margin: Option<usize>,
        max_memory: u64,
    ) -> Result<Tensor> {
        let over = tile.is_none() && self.planned_bytes(x.shape) > max_memory;
        if tile.is_none() && !over {
            match self.run(x) {
                Err(e @ Error::ExceedsLimit { .. }) => {
                    let (radius, align) = self.tile_geometry(x.shape)?;
                    let margin = margin.unwrap_or(radius);
                    let mut t = 1024;
                    loop {
                        self.notices
                            .push(format!("{e}; running in tiles of {t} px (margin {margin})"));
                        match crate::plan::run_tiled(x, t, margin, align, |w| self.run(w)) {
                            Err(Error::ExceedsLimit { .. }) if t > 2 * align => t /= 2,
                            r => return r,
                        }
                    }
                }
                r => return r,
            }
        }
        let (radius, align) = self.tile_geometry(x.shape)?;
        let margin = margin.unwrap_or(radius);
        let t = match tile {
            Some(t) => t,
            None => {
                // The largest tile (from 1024 px down) whose window fits the budget.
                let mut t = 1024;
                let [n, c, _, _] = x.shape;
                while t > 2 * align {
                    let side = (t + 2 * margin).div_ceil(align) * align;
                    if self.planned_bytes([n, c, side, side]) <= max_memory {
                        break;
                    }
                    t /= 2;
                }
                self.notices.push(format!(
                    "{:.0} MiB of activations exceed --max-memory {:.0} MiB: running in tiles of {t} px (margin {margin})",
                    self.planned_bytes(x.shape) as f64 / 1048576.0,
                    max_memory as f64 / 1048576.0
                ));
                t
            }
        };
        crate::plan::run_tiled(x, t, margin, align, |w| self.run(w))
    }
}
