//! Overlap-tile inference (the original U-Net paper's strategy) for images larger than a device
//! or a memory budget allows: the image is cut into tiles whose windows reach `margin` pixels
//! past the tile on every side, start on multiples of 2^depth (so every max-pool groups the same
//! pixels as on the whole image), each window runs through the network, and only each tile's
//! core is kept. With a margin of at least the receptive-field radius (`receptive_radius`) the
//! result equals the untiled one up to float rounding, for images whose sides are multiples of
//! 2^depth (elsewhere the decoder's align-corners resize depends on the whole size).

use crate::model::UNetSpec;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// How far (in input pixels, on each side) an output pixel can see: the receptive field of the
/// reference U-Net, from the 3×3 convs (1 pixel each at their scale) and the 2×2 pools (1 more
/// at theirs); the transposed convs add none.
pub fn receptive_radius(spec: &UNetSpec) -> usize {
    let d = spec.depth();
    // Receptive field size: each k-wide op at stride product j adds (k − 1) · j.
    let mut size = 1usize;
    for l in 0..d {
        size += 2 * 2 * (1 << l); // two 3×3 convs
        size += 1 << l; // the 2×2 pool
    }
    size += 2 * 2 * (1 << d); // the bottleneck
    for l in (0..d).rev() {
        size += 2 * 2 * (1 << l); // the decoder's two convs
    }
    size.div_ceil(2)
}

/// Tiles of `tile × tile` output pixels (the last ones smaller) over an `h × w` image, each with
/// its input window `[y0, y1) × [x0, x1)`: the tile grown by `margin` on each side, its ends
/// moved out to multiples of `align` (2^depth: no odd sizes inside the network), clipped to the
/// image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileRect {
    /// The tile (output pixels kept).
    pub core: [usize; 4],
    /// The window run through the network.
    pub window: [usize; 4],
}

pub fn tiles(h: usize, w: usize, tile: usize, margin: usize, align: usize) -> Vec<TileRect> {
    let mut out = Vec::new();
    let axis = |n: usize| -> Vec<(usize, usize, usize, usize)> {
        (0..n)
            .step_by(tile)
            .map(|c0| {
                let c1 = (c0 + tile).min(n);
                let w0 = c0.saturating_sub(margin) / align * align;
                let w1 = ((c1 + margin).div_ceil(align) * align).min(n);
                (c0, c1, w0, w1)
            })
            .collect()
    };
    for &(cy0, cy1, wy0, wy1) in &axis(h) {
        for &(cx0, cx1, wx0, wx1) in &axis(w) {
            out.push(TileRect {
                core: [cy0, cy1, cx0, cx1],
                window: [wy0, wy1, wx0, wx1],
            });
        }
    }
    out
}

/// Run `run` over the tiles of `input` (NCHW) and stitch the cores of its outputs. `tile` and
/// `margin` in pixels; `tile` is rounded up to a multiple of `align`.
pub fn run_tiled(
    input: &Tensor,
    tile: usize,
    margin: usize,
    align: usize,
    mut run: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if tile == 0 {
        return Err(Error::InvalidArgument("--tile must be positive".into()));
    }
    let tile = tile.div_ceil(align) * align;
    let [n, c, h, w] = input.shape;
    let mut out: Option<Tensor> = None;
    for t in tiles(h, w, tile, margin, align) {
        let [wy0, wy1, wx0, wx1] = t.window;
        let (wh, ww) = (wy1 - wy0, wx1 - wx0);
        let mut win = Tensor::zeros([n, c, wh, ww]);
        for plane in 0..n * c {
            for y in 0..wh {
                let src = &input.data[(plane * h + wy0 + y) * w + wx0..][..ww];
                win.data[(plane * wh + y) * ww..][..ww].copy_from_slice(src);
            }
        }
        let y = run(&win)?;
        let [yn, yc, yh, yw] = y.shape;
        if (yn, yh, yw) != (n, wh, ww) {
            return Err(Error::InvalidArgument(format!(
                "a tile's output has shape {:?} for a {wh}×{ww} window",
                y.shape
            )));
        }
        let o = out.get_or_insert_with(|| Tensor::zeros([n, yc, h, w]));
        let [cy0, cy1, cx0, cx1] = t.core;
        for plane in 0..n * yc {
            for yy in cy0..cy1 {
                let src = &y.data[(plane * wh + yy - wy0) * ww + cx0 - wx0..][..cx1 - cx0];
                o.data[(plane * h + yy) * w + cx0..][..cx1 - cx0].copy_from_slice(src);
            }
        }
    }
    out.ok_or_else(|| Error::InvalidArgument("an empty image has no tiles".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::model::{init_random, InitOptions};

    #[test]
    fn tiles_cover_the_image_once_with_aligned_windows() {
        let ts = tiles(100, 70, 32, 20, 8);
        let mut seen = vec![0u8; 100 * 70];
        for t in &ts {
            let [y0, y1, x0, x1] = t.core;
            let [wy0, wy1, wx0, wx1] = t.window;
            assert!(
                wy0 % 8 == 0 && wx0 % 8 == 0 && wy0 <= y0 && wy1 >= y1 && wx0 <= x0 && wx1 >= x1
            );
            assert!(y0 - wy0 >= 20.min(y0) && wy1 - y1 >= 20.min(100 - y1));
            for y in y0..y1 {
                for x in x0..x1 {
                    seen[y * 70 + x] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&v| v == 1));
    }

    /// With a margin of the receptive radius, tiled equals untiled (float rounding aside).
    #[test]
    fn tiled_equals_untiled_with_the_receptive_margin() {
        let spec = UNetSpec::new(3, 2, vec![4, 8, 16]);
        let m = init_random(&spec, &InitOptions { seed: 5 });
        let r = receptive_radius(&spec);
        assert_eq!(r, 48);
        let x = Tensor {
            shape: [1, 3, 128, 96],
            data: (0..3 * 128 * 96)
                .map(|i| ((i * 7919) % 997) as f32 / 500.0 - 1.0)
                .collect(),
        };
        let whole = cpu::forward(&m, &x, true).unwrap();
        let tiled = run_tiled(&x, 32, r, 8, |t| cpu::forward(&m, t, true)).unwrap();
        let (d, mx) = tiled.max_abs_diff(&whole);
        assert!(d <= 1e-4 * mx, "max diff {d} vs max {mx}");
        // A margin far below the receptive field shows the seams.
        let seams = run_tiled(&x, 32, 4, 8, |t| cpu::forward(&m, t, true)).unwrap();
        let (d2, _) = seams.max_abs_diff(&whole);
        eprintln!("tiled vs untiled: margin {r}: {d:.3e}, margin 4: {d2:.3e} (max {mx:.3e})");
        assert!(
            d2 > 100.0 * d.max(1e-9),
            "a small margin should differ: {d2} vs {d}"
        );
    }
}
