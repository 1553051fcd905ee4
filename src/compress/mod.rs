//! Model compression: magnitude pruning (per layer, as the source article does, or global and
//! BatchNorm-aware).

mod prune;

pub use prune::{prune, sparsity, PruneOptions, Scope};
