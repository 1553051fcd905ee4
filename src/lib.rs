//! wunet: U-Net segmentation models trained in PyTorch, run on wgpu compute shaders, with a
//! CPU float32 reference of the same network.
//!
//! Data path: safetensors `state_dict` → [`model::UNet`] → [`plan::Graph`] for an input shape →
//! [`gpu::Plan`] (pipelines, bind groups, one arena planned by tensor lifetimes; one command
//! buffer per inference) or [`cpu::forward`].

pub mod cpu;
mod error;
pub mod gpu;
pub mod io;
pub mod model;
pub mod plan;
pub mod shaders;
mod tensor;

pub use error::{Error, Result};
pub use model::{UNet, UNetSpec};
pub use tensor::Tensor;
