//! Images in (PNG/JPEG, any bit depth, gray or color → the model's channels, [0, 1], then the
//! model's normalization) and masks out (1 class: sigmoid > 0.5; more: argmax, palette colors).

use std::path::Path;

use image::{DynamicImage, GrayImage, ImageReader, Rgb, RgbImage};

use crate::model::UNetSpec;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// A decoded image: the model input and the picture (for overlays).
pub struct LoadedImage {
    pub tensor: Tensor,
    pub rgb: RgbImage,
}

/// Decode `path` into a [1, C, H, W] tensor for `spec`.
pub fn load_image(path: &Path, spec: &UNetSpec) -> Result<LoadedImage> {
    let err = |reason: String| Error::Image {
        path: path.into(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    reader.limits(image_limits());
    let img: DynamicImage = reader.decode().map_err(|e| err(e.to_string()))?;
    Ok(LoadedImage {
        tensor: image_tensor(&img, spec).map_err(|e| match e {
            Error::Image { reason, .. } => err(reason),
            e => e,
        })?,
        rgb: img.to_rgb8(),
    })
}

/// What a decoder may allocate: sides up to 65 536 px, 2 GiB in all (a 16 384² RGBA image),
/// so a header that lies about its size is refused instead of exhausting memory.
pub fn image_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(1 << 16);
    l.max_image_height = Some(1 << 16);
    l.max_alloc = Some(2 << 30);
    l
}

/// A decoded image as a [1, C, H, W] tensor for `spec`: the model's channels, [0, 1], then its
/// normalization.
pub fn image_tensor(img: &DynamicImage, spec: &UNetSpec) -> Result<Tensor> {
    let err = |reason: String| Error::Image {
        path: "<image>".into(),
        reason,
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(err("zero-sized image".into()));
    }
    let c = spec.in_channels;
    let interleaved: Vec<f32> = match c {
        1 => img.to_luma32f().into_raw(),
        3 => img.to_rgb32f().into_raw(),
        4 => img.to_rgba32f().into_raw(),
        _ => {
            return Err(err(format!(
                "the model takes {c} input channels; images give 1 (gray), 3 (RGB) or 4 (RGBA)"
            )))
        }
    };
    let mut data = vec![0f32; c * h * w];
    for (i, px) in interleaved.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            let mean = spec.input_mean.as_ref().map_or(0.0, |m| m[ch]);
            let std = spec.input_std.as_ref().map_or(1.0, |s| s[ch]);
            data[ch * h * w + i] = (v - mean) / std;
        }
    }
    Tensor::new([1, c, h, w], data)
}

/// Color of class `k` (class 0 is black): bit-interleaved like the PASCAL VOC palette.
pub fn palette(k: usize) -> [u8; 3] {
    let mut c = [0u8; 3];
    let mut v = k;
    let mut shift = 7;
    while v > 0 && shift >= 0 {
        for (j, ch) in c.iter_mut().enumerate() {
            *ch |= (((v >> j) & 1) as u8) << shift;
        }
        v >>= 3;
        shift -= 1;
    }
    c
}

/// Per-pixel class of image `n` of a logits tensor: 1 channel → logit > 0 (sigmoid > 0.5);
/// more → argmax (first maximum wins).
pub fn classes(logits: &Tensor, n: usize) -> Vec<usize> {
    let hw = logits.h() * logits.w();
    if logits.c() == 1 {
        return logits
            .plane(n, 0)
            .iter()
            .map(|&v| (v > 0.0) as usize)
            .collect();
    }
    (0..hw)
        .map(|i| {
            (0..logits.c())
                .fold((0, f32::NEG_INFINITY), |(bk, bv), k| {
                    let v = logits.plane(n, k)[i];
                    if v > bv {
                        (k, v)
                    } else {
                        (bk, bv)
                    }
                })
                .0
        })
        .collect()
}

/// The mask of image `n`: gray 0/255 for one class, palette colors for more.
pub fn mask_image(logits: &Tensor, n: usize) -> DynamicImage {
    let (w, h) = (logits.w() as u32, logits.h() as u32);
    let cls = classes(logits, n);
    if logits.c() == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
            image::Luma([255 * cls[(y * w + x) as usize] as u8])
        }))
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            Rgb(palette(cls[(y * w + x) as usize]))
        }))
    }
}

/// The mask blended over the picture: foreground classes tinted at 50 %, background untouched.
pub fn overlay(picture: &RgbImage, logits: &Tensor, n: usize) -> RgbImage {
    let w = picture.width();
    let cls = classes(logits, n);
    let mut out = picture.clone();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let k = cls[(y * w + x) as usize];
        if k > 0 {
            let tint = if logits.c() == 1 {
                [255, 40, 40]
            } else {
                palette(k)
            };
            for (c, t) in px.0.iter_mut().zip(tint) {
                *c = ((*c as u16 + t as u16) / 2) as u8;
            }
        }
    }
    out
}

/// Write an image, naming the path on failure.
pub fn save_image(img: &DynamicImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Image {
        path: path.into(),
        reason: format!("cannot write: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_distinct_and_starts_black() {
        assert_eq!(palette(0), [0, 0, 0]);
        assert_eq!(palette(1), [128, 0, 0]);
        let colors: std::collections::HashSet<_> = (0..21).map(palette).collect();
        assert_eq!(colors.len(), 21);
    }

    #[test]
    fn argmax_and_threshold() {
        let t = Tensor::new([1, 3, 1, 2], vec![0.0, 5.0, 1.0, 2.0, -1.0, 9.0]).unwrap();
        assert_eq!(classes(&t, 0), vec![1, 2]);
        let b = Tensor::new([1, 1, 1, 3], vec![-0.1, 0.0, 0.1]).unwrap();
        assert_eq!(classes(&b, 0), vec![0, 0, 1]);
    }
}
