//! A dense NCHW float32 tensor on the host: what goes in and comes out of a plan.

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// [N, C, H, W]
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::BadInput {
                shape: shape.to_vec(),
                reason: format!("holds {} values, the shape needs {n}", data.len()),
            });
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(shape: [usize; 4]) -> Self {
        Tensor {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn n(&self) -> usize {
        self.shape[0]
    }
    pub fn c(&self) -> usize {
        self.shape[1]
    }
    pub fn h(&self) -> usize {
        self.shape[2]
    }
    pub fn w(&self) -> usize {
        self.shape[3]
    }

    /// Values of image `n`, channel `c` (one H×W plane).
    pub fn plane(&self, n: usize, c: usize) -> &[f32] {
        let hw = self.h() * self.w();
        let o = (n * self.c() + c) * hw;
        &self.data[o..o + hw]
    }

    /// max |self - other| and max |other|: the two numbers every error budget uses.
    pub fn max_abs_diff(&self, other: &Tensor) -> (f32, f32) {
        assert_eq!(
            self.shape, other.shape,
            "comparing tensors of different shapes"
        );
        let mut d = 0f32;
        let mut m = 0f32;
        for (a, b) in self.data.iter().zip(&other.data) {
            d = d.max((a - b).abs());
            m = m.max(b.abs());
        }
        (d, m)
    }
}
