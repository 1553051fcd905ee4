//! Recycled activation buffers for the CPU graph engine. A fresh allocation of megabytes costs
//! a page fault and a page clear per 4 KiB at its first touch (7–8 % of a U-Net's run was the
//! kernel clearing pages), so a run hands back every tensor it frees and the kernels take their
//! outputs from here: `zeros` (cleared) and `filled` (old contents, for outputs every element of
//! which the kernel writes). The pool lives in the engine between runs and is lent to the thread
//! that runs the graph; outside a run (the layer oracle, tests) both allocate afresh.

use std::cell::RefCell;
use std::sync::Mutex;

use crate::tensor::Tensor;

/// Buffers kept at most (a run frees one tensor per layer, most of them reused right away); when
/// full, a bigger buffer displaces the smallest.
const KEEP: usize = 32;
/// Smaller buffers are not kept: the allocator serves them from memory it already has.
const MIN_FLOATS: usize = 1 << 14;

thread_local! {
    static LENT: RefCell<Option<Vec<Vec<f32>>>> = const { RefCell::new(None) };
}

/// An engine's buffers between runs.
#[derive(Default)]
pub(crate) struct Pool(Mutex<Vec<Vec<f32>>>);

impl Pool {
    /// `f` with the pool lent to this thread (where it is not already lent one).
    pub(crate) fn lend<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Return<'a>(&'a Pool, bool);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let bufs = LENT.with(|l| l.borrow_mut().take()).unwrap_or_default();
                    *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = bufs;
                }
            }
        }
        let bufs = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let lent = LENT.with(|l| {
            let mut l = l.borrow_mut();
            l.is_none().then(|| *l = Some(bufs)).is_some()
        });
        let _back = Return(self, lent);
        f()
    }
}

/// Hands a buffer back to the pool lent to this thread (if any).
pub(crate) fn give(buf: Vec<f32>) {
    if buf.capacity() < MIN_FLOATS {
        return;
    }
    LENT.with(|l| {
        if let Some(bufs) = l.borrow_mut().as_mut() {
            if bufs.len() < KEEP {
                bufs.push(buf);
            } else if let Some(small) = bufs.iter_mut().min_by_key(|b| b.capacity()) {
                if small.capacity() < buf.capacity() {
                    *small = buf;
                }
            }
        }
    })
}

/// A buffer of `len` floats: the smallest lent one that holds it without wasting more than
/// half, else a new one. `clear`: every element 0, else whatever it held.
fn take(len: usize, clear: bool) -> Vec<f32> {
    if len < MIN_FLOATS {
        return vec![0.0; len];
    }
    let reused = LENT.with(|l| {
        let mut l = l.borrow_mut();
        let bufs = l.as_mut()?;
        let (i, _) = bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| (len..=2 * len).contains(&b.capacity()))
            .min_by_key(|(_, b)| b.capacity())?;
        Some(bufs.swap_remove(i))
    });
    match reused {
        Some(mut v) => {
            if clear {
                v.clear();
            }
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// A tensor of zeros.
pub(crate) fn zeros(shape: [usize; 4]) -> Tensor {
    Tensor {
        shape,
        data: take(shape.iter().product(), true),
    }
}

/// A tensor with arbitrary contents, for a kernel that writes every element.
pub(crate) fn filled(shape: [usize; 4]) -> Tensor {
    Tensor {
        shape,
        data: take(shape.iter().product(), false),
    }
}

/// A scratch vector with arbitrary contents, for a kernel that writes every element it reads.
pub(crate) fn scratch(len: usize) -> Vec<f32> {
    take(len, false)
}
