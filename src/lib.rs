//! wunet: U-Net segmentation models trained in PyTorch, run on wgpu compute shaders, with a
//! CPU float32 reference of the same network.
//!
//! Data path: safetensors `state_dict` → [`model::UNet`] → [`plan::Graph`] for an input shape →
//! [`gpu::Plan`] (pipelines, bind groups, one arena planned by tensor lifetimes; one command
//! buffer per inference) or [`cpu::forward`].
//!
//! ```
//! use wunet::model::{init_random, InitOptions};
//! use wunet::{cpu, Tensor, UNetSpec};
//!
//! // A 2-level model with random weights; `UNet::load("model.safetensors")` reads a real one.
//! let model = init_random(&UNetSpec::new(3, 1, vec![4, 8]), &InitOptions { seed: 0 });
//! let x = Tensor::new([1, 3, 20, 24], vec![0.5; 3 * 20 * 24])?;
//! let logits = cpu::forward(&model, &x, true)?;
//! assert_eq!(logits.shape, [1, 1, 20, 24]);
//! // On a GPU: `GpuModel::new(&device, &queue, &model, Default::default())?.plan(x.shape)?.run(&x)?`.
//! # Ok::<(), wunet::Error>(())
//! ```

pub mod compress;
pub mod cpu;
pub mod engine;
mod error;
pub mod fuzz;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod model;
pub mod plan;
pub mod shaders;
mod tensor;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;
mod winograd;

pub use error::{Error, Result};
pub use model::{UNet, UNetSpec};
pub use tensor::Tensor;
