//! Segmentation metrics: Dice and IoU of predicted classes against ground truth, accumulated over
//! images (pixel counts summed, so every pixel weighs the same).

/// Confusion counts of one binary (foreground vs background) comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overlap {
    pub intersection: u64,
    pub predicted: u64,
    pub truth: u64,
    pub agree: u64,
    pub pixels: u64,
}

impl Overlap {
    /// Counts for per-pixel classes; foreground is every class > 0.
    pub fn of(pred: &[usize], truth: &[usize]) -> Overlap {
        assert_eq!(pred.len(), truth.len(), "mask sizes differ");
        let mut o = Overlap {
            pixels: pred.len() as u64,
            ..Default::default()
        };
        for (&p, &t) in pred.iter().zip(truth) {
            o.predicted += (p > 0) as u64;
            o.truth += (t > 0) as u64;
            o.intersection += (p > 0 && p == t) as u64;
            o.agree += (p == t) as u64;
        }
        o
    }

    pub fn add(&mut self, other: &Overlap) {
        self.intersection += other.intersection;
        self.predicted += other.predicted;
        self.truth += other.truth;
        self.agree += other.agree;
        self.pixels += other.pixels;
    }

    /// 2|P∩T| / (|P| + |T|); 1 when both are empty.
    pub fn dice(&self) -> f64 {
        let d = self.predicted + self.truth;
        if d == 0 {
            1.0
        } else {
            2.0 * self.intersection as f64 / d as f64
        }
    }

    /// |P∩T| / |P∪T|; 1 when both are empty.
    pub fn iou(&self) -> f64 {
        let u = self.predicted + self.truth - self.intersection;
        if u == 0 {
            1.0
        } else {
            self.intersection as f64 / u as f64
        }
    }

    /// Fraction of pixels whose class is the same.
    pub fn agreement(&self) -> f64 {
        self.agree as f64 / self.pixels.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_and_iou() {
        let o = Overlap::of(&[1, 1, 0, 0], &[1, 0, 1, 0]);
        assert_eq!(o.dice(), 0.5);
        assert!((o.iou() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(o.agreement(), 0.5);
        assert_eq!(Overlap::of(&[0, 0], &[0, 0]).dice(), 1.0);
        // A wrong foreground class is not an intersection.
        assert_eq!(Overlap::of(&[2], &[1]).dice(), 0.0);
    }
}
