//! The browser API (wasm32, feature `web`): `Model.load`, `segment`, `infer`, `info`, bound
//! with wasm-bindgen. Same shaders, planner and one-command-buffer plans as native, through
//! wgpu's WebGPU backend; where the page has no WebGPU adapter, the CPU engines compiled to wasm.
//! One JS↔wasm crossing per call: the whole network runs inside.
//!
//! ```js
//! import init, { Model } from "./pkg/wunet.js";
//! await init();
//! const model = await Model.load(new Uint8Array(await (await fetch("unet.safetensors")).arrayBuffer()));
//! const mask = await model.segment(imageData);      // ImageData in, RGBA mask ImageData out
//! const logits = await model.infer(float32Array, [1, 3, h, w]);
//! ```
//! Errors reject the promises with the CLI's messages.

/// `initThreadPool(n)` in JavaScript (threaded build only): starts rayon's pool of `n` Web
/// Workers sharing this module's memory; call it once after `init()`.
#[cfg(feature = "web-threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::cpu::{graph::GraphCpu, int8::Int8Model, CpuModel};
use crate::engine::{choose, AdapterView, Choice, Device, ModelFile};
use crate::gpu::graph::{GpuGraphModel, GpuGraphOptions, GraphPlan};
use crate::gpu::{
    request_gpu_async, Dot4, GpuInt8Model, GpuInt8Options, GpuModel, GpuOptions, Plan,
};
use crate::plan::Shape;
use crate::{Tensor, UNetSpec};

enum Engine {
    Gpu {
        model: GpuModel,
        plans: HashMap<Shape, Plan>,
    },
    GpuInt8 {
        model: GpuInt8Model,
        plans: HashMap<Shape, Plan>,
    },
    Cpu(CpuModel),
    CpuInt8(Int8Model),
    /// An imported (ONNX) graph on the CPU graph engine.
    Graph(GraphCpu),
    /// An imported (ONNX) graph on WebGPU.
    GpuGraph {
        model: GpuGraphModel,
        plans: HashMap<Shape, GraphPlan>,
    },
}

struct Inner {
    engine: Engine,
    spec: UNetSpec,
    /// What runs: "webgpu" or "cpu", and the adapter's name.
    path: &'static str,
    adapter: String,
    precision: &'static str,
    dot4: Option<Dot4>,
    /// float32 WebGPU: the layers the last inference ran as Winograd.
    winograd_layers: Option<usize>,
}

/// The adapter's name, or what the browser lets us say about it.
fn adapter_name(g: &crate::gpu::Gpu) -> String {
    let i = &g.info;
    if !i.name.is_empty() {
        i.name.clone()
    } else if !i.driver.is_empty() || !i.driver_info.is_empty() {
        format!("{} {}", i.driver, i.driver_info).trim().to_string()
    } else {
        "a WebGPU adapter (its name hidden by the browser)".into()
    }
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

impl Inner {
    async fn run(&mut self, x: &Tensor) -> crate::Result<Tensor> {
        match &mut self.engine {
            Engine::Gpu { model, plans } => {
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(x.shape) {
                    e.insert(model.plan_async(x.shape).await?);
                }
                self.winograd_layers = Some(plans[&x.shape].winograd_layers());
                plans[&x.shape].run_async(x).await
            }
            Engine::GpuInt8 { model, plans } => {
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(x.shape) {
                    e.insert(model.plan_async(x.shape).await?);
                }
                plans[&x.shape].run_async(x).await
            }
            Engine::Cpu(m) => m.forward(x),
            Engine::CpuInt8(m) => m.forward(x),
            Engine::Graph(m) => m.forward(x),
            Engine::GpuGraph { model, plans } => {
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(x.shape) {
                    e.insert(model.plan_async(x.shape).await?);
                }
                plans[&x.shape].run_async(x).await
            }
        }
    }
}

/// The model for one call; a second call while one is in flight is refused (await the first).
fn busy(inner: &Rc<RefCell<Inner>>) -> Result<std::cell::RefMut<'_, Inner>, JsError> {
    inner
        .try_borrow_mut()
        .map_err(|_| js_err("the model is busy with another call: await it first"))
}

/// A U-Net loaded in the page.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<RefCell<Inner>>,
}

#[wasm_bindgen]
impl Model {
    /// Load a model from the bytes of a safetensors file (float or wunet-int8) or an ONNX file
    /// (its weights inside: a page cannot reach external data files). `device`:
    /// `"auto"` (default: the WebGPU adapter when the page has one, else the CPU engine), `"gpu"`
    /// or `"cpu"`.
    pub async fn load(bytes: Vec<u8>, device: Option<String>) -> Result<Model, JsError> {
        // The one device policy (`engine::choose`), as natively; in a page WebGPU is taken even
        // on a software adapter.
        let device: Device = device
            .as_deref()
            .unwrap_or("auto")
            .parse()
            .map_err(js_err)?;
        let model = ModelFile::from_bytes(&bytes, None, None).map_err(js_err)?;
        let gpu = if device == Device::Cpu {
            Err(crate::Error::NoAdapter)
        } else {
            request_gpu_async().await
        };
        let name = gpu.as_ref().map(adapter_name).unwrap_or_default();
        let view = gpu.as_ref().map(|g| AdapterView {
            name: &name,
            software: g.info.device_type == wgpu::DeviceType::Cpu,
        });
        let (choice, _) = choose(device, view, &model, true).map_err(js_err)?;
        let spec = model.spec().clone();
        let (engine, path, adapter, precision, dot4) = match (choice, model, gpu) {
            (Choice::Gpu, ModelFile::Int8(q), Ok(g)) => {
                let dot4 = g.dot4();
                let model = GpuInt8Model::new_async(
                    &g.device,
                    &g.queue,
                    &q,
                    GpuInt8Options {
                        dot4,
                        ..Default::default()
                    },
                )
                .await
                .map_err(js_err)?;
                let engine = Engine::GpuInt8 {
                    model,
                    plans: HashMap::new(),
                };
                (engine, "webgpu", name, "int8", Some(dot4))
            }
            (Choice::Gpu, ModelFile::Float(m), Ok(g)) => {
                let model = GpuModel::new_async(&g.device, &g.queue, &m, GpuOptions::default())
                    .await
                    .map_err(js_err)?;
                let engine = Engine::Gpu {
                    model,
                    plans: HashMap::new(),
                };
                (engine, "webgpu", name, "f32", None)
            }
            (_, ModelFile::Int8(q), _) => {
                let m = Int8Model::new(&q).map_err(js_err)?;
                (Engine::CpuInt8(m), "cpu", "wasm".into(), "int8", None)
            }
            (_, ModelFile::Float(m), _) => (
                Engine::Cpu(CpuModel::new(m, true)),
                "cpu",
                "wasm".into(),
                "f32",
                None,
            ),
            (Choice::Gpu, ModelFile::Graph { graph, .. }, Ok(g)) => {
                let model = GpuGraphModel::new_async(
                    &g.device,
                    &g.queue,
                    graph,
                    GpuGraphOptions::default(),
                )
                .await
                .map_err(js_err)?;
                let engine = Engine::GpuGraph {
                    model,
                    plans: HashMap::new(),
                };
                (engine, "webgpu", name, "f32", None)
            }
            (_, ModelFile::Graph { graph, .. }, _) => (
                Engine::Graph(GraphCpu::new(graph, true)),
                "cpu",
                "wasm".into(),
                "f32",
                None,
            ),
        };
        Ok(Model {
            inner: Rc::new(RefCell::new(Inner {
                engine,
                spec,
                path,
                adapter,
                precision,
                dot4,
                winograd_layers: None,
            })),
        })
    }

    /// Logits (NCHW float32) of an NCHW float32 input of `shape`.
    #[allow(clippy::await_holding_refcell_ref)] // one call at a time: see `busy`
    pub async fn infer(&self, data: Vec<f32>, shape: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let s: [usize; 4] = match shape.as_slice() {
            [n, c, h, w] => [*n as usize, *c as usize, *h as usize, *w as usize],
            _ => return Err(js_err(format!("shape must be [n, c, h, w], got {shape:?}"))),
        };
        let x = Tensor::new(s, data).map_err(js_err)?;
        let inner = self.inner.clone();
        let mut inner = busy(&inner)?;
        Ok(inner.run(&x).await.map_err(js_err)?.data)
    }

    /// Segment an image: the model's input from its pixels (channels, [0, 1], the model's
    /// normalization, as `wunet infer` does), and back an RGBA mask of the same size: each
    /// foreground class in its palette color, opaque; background transparent.
    #[allow(clippy::await_holding_refcell_ref)] // one call at a time: see `busy`
    pub async fn segment(&self, image: web_sys::ImageData) -> Result<web_sys::ImageData, JsError> {
        let (w, h) = (image.width(), image.height());
        let rgba = image::RgbaImage::from_raw(w, h, image.data().0)
            .ok_or_else(|| js_err("ImageData size does not match its pixels"))?;
        let inner = self.inner.clone();
        let mut inner = busy(&inner)?;
        let x = crate::io::image_tensor(&image::DynamicImage::ImageRgba8(rgba), &inner.spec)
            .map_err(js_err)?;
        let logits = inner.run(&x).await.map_err(js_err)?;
        let classes = crate::io::classes(&logits, 0);
        let fg = if logits.c() == 1 {
            [255, 64, 64]
        } else {
            [0, 0, 0]
        };
        let mut out = vec![0u8; (w * h * 4) as usize];
        for (px, &k) in out.chunks_exact_mut(4).zip(&classes) {
            if k > 0 {
                let c = if logits.c() == 1 {
                    fg
                } else {
                    crate::io::palette(k)
                };
                px.copy_from_slice(&[c[0], c[1], c[2], 255]);
            }
        }
        // Copied into a JS-owned array: `ImageData` refuses a view of wasm memory when that
        // memory is shared (the threaded build).
        let data = js_sys::Uint8ClampedArray::new_with_length(out.len() as u32);
        data.copy_from(&out);
        web_sys::ImageData::new_with_js_u8_clamped_array_and_sh(&data, w, h)
            .map_err(|e| js_err(format!("{e:?}")))
    }

    /// What runs: `{graph, path: "webgpu"|"cpu", adapter, precision, dot4, subgroup_size,
    /// winograd_layers, threads, in_channels, out_channels, features}`; `graph`: an imported
    /// (ONNX) model on the graph engines; `subgroup_size`: the
    /// subgroup width the float32 kernels share their loads across, `null` where the kernels
    /// without subgroups run; `winograd_layers`: the 3×3 convs the last float32 WebGPU
    /// inference ran as Winograd F(4×4, 3×3) (`null` before one, and on the other paths);
    /// `threads`: the CPU engine's threads (more than 1 in the threaded build, `initThreadPool`),
    /// `null` on WebGPU.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let i = self.inner.borrow();
        let sg = match &i.engine {
            Engine::Gpu { model, .. } => model.subgroup_size(),
            _ => None,
        };
        let threads = match i.path {
            "cpu" => rayon::current_num_threads().to_string(),
            _ => "null".to_string(),
        };
        let graph = matches!(i.engine, Engine::Graph(_) | Engine::GpuGraph { .. });
        let json = format!(
            "{{\"graph\":{},\"path\":\"{}\",\"adapter\":{:?},\"precision\":\"{}\",\"dot4\":{},\"subgroup_size\":{},\"winograd_layers\":{},\"threads\":{},\"in_channels\":{},\"out_channels\":{},\"features\":{:?}}}",
            graph,
            i.path,
            i.adapter,
            i.precision,
            i.dot4.map_or("null".to_string(), |d| format!("\"{d:?}\"")),
            sg.map_or("null".to_string(), |s| s.to_string()),
            i.winograd_layers
                .map_or("null".to_string(), |n| n.to_string()),
            threads,
            i.spec.in_channels,
            i.spec.out_channels,
            i.spec.features
        );
        js_sys::JSON::parse(&json).map_err(|e| js_err(format!("{e:?}")))
    }
}

#[wasm_bindgen]
impl Model {
    /// FLOPs of one inference at `h × w` (batch 1): the benchmark page's numerator.
    pub fn flops(&self, h: u32, w: u32) -> Result<f64, JsError> {
        let i = self.inner.borrow();
        let shape = [1, i.spec.in_channels, h as usize, w as usize];
        match &i.engine {
            Engine::Graph(m) => {
                return Ok(m.prepared(shape).map_err(js_err)?.shaped.total_flops() as f64)
            }
            Engine::GpuGraph { model, .. } => {
                let g = crate::graph::fuse(model.graph().instantiate(shape).map_err(js_err)?);
                return Ok(g.total_flops() as f64);
            }
            _ => {}
        }
        let g = crate::plan::Graph::build(&i.spec, shape, true).map_err(js_err)?;
        Ok(g.total_flops() as f64)
    }
}

/// The adapter's float32 FMA peak in GFLOP/s, measured by the same micro-shader as `wunet
/// bench` (the benchmark page's denominator); `null` without WebGPU.
#[wasm_bindgen(js_name = measurePeak)]
pub async fn measure_peak() -> Result<JsValue, JsError> {
    match request_gpu_async().await {
        Ok(g) => {
            let p = crate::gpu::measure_fma_peak_async(&g.device, &g.queue)
                .await
                .map_err(js_err)?;
            Ok(JsValue::from_f64(p))
        }
        Err(_) => Ok(JsValue::NULL),
    }
}
