//! Inputs and outputs of the CLI: `.npy` tensors, images in, masks and overlays out.

mod eval;
mod image;
mod npy;

pub use self::image::{
    classes, image_limits, image_tensor, load_image, mask_image, overlay, palette, save_image,
    LoadedImage,
};
pub use eval::Overlap;
pub use npy::{npy_from_bytes, read_npy, write_npy};
