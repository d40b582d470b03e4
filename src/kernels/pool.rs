//! Reusable host buffers for the fused path's activations and gradients.
//!
//! A training step allocates the same few dozen large buffers every time.
//! Fresh allocations of that size come from the operating system as zeroed
//! pages; before this pool, the page faults and zeroing took about a fifth
//! of a quickstart training step. Buffers taken from the pool skip both. A
//! [`Buf`] goes back to the pool when dropped.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Free buffers, any order.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// At most this many free buffers are kept (more are freed).
const MAX_FREE: usize = 256;

/// At most this many `f32`s are kept free in all (1 GiB; more are freed).
const MAX_FREE_ELEMS: usize = 1 << 28;

/// Smaller buffers go back to the allocator (cheap at that size).
const MIN_POOLED: usize = 4096;

/// A host `f32` buffer that returns to the pool when dropped. The vector
/// always has `len == capacity` (so reuse never writes); `len` is the part
/// in use.
pub(crate) struct Buf {
    v: Vec<f32>,
    len: usize,
}

impl Buf {
    /// A buffer of `len` elements whose contents are unspecified (stale
    /// values of an earlier use): for outputs that are fully overwritten.
    pub(crate) fn uninit(len: usize) -> Self {
        if len < MIN_POOLED {
            return Self::from(vec![0.0; len]);
        }
        let reused = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            // the smallest free buffer that is large enough
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.len() >= len)
                .min_by_key(|(_, v)| v.len())
                .map(|(i, _)| i);
            best.map(|i| pool.swap_remove(i))
        };
        Self {
            v: reused.unwrap_or_else(|| vec![0.0; len]),
            len,
        }
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut b = Self::uninit(len);
        b.fill(0.0);
        b
    }

    /// An empty buffer (for activations that are not kept).
    pub(crate) fn empty() -> Self {
        Self::from(Vec::new())
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.v.len() < MIN_POOLED || self.v.len() != self.v.capacity() {
            return;
        }
        let v = std::mem::take(&mut self.v);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pool.iter().map(Vec::len).sum();
        if pool.len() < MAX_FREE && held + v.len() <= MAX_FREE_ELEMS {
            pool.push(v);
        }
    }
}

impl From<Vec<f32>> for Buf {
    fn from(v: Vec<f32>) -> Self {
        let len = v.len();
        Self { v, len }
    }
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.v[..self.len]
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.v[..self.len]
    }
}
