//! Model compression: magnitude pruning (per layer, as the source article does, or global and
//! BatchNorm-aware) and int8 post-training quantization with its file format.

mod prune;
mod quant;

pub use prune::{prune, sparsity, Block, PruneOptions, Scope};
pub use quant::{
    is_int8_file, quantize, quantize_with, FirstConv, QConv, QParams, QUNet, QuantOptions, FORMAT,
    FORMAT_VERSION,
};
