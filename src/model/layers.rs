//! Composite layers with runtime dims (linear, layer norm) over parameter
//! tensors, and dropout.

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A 2-d f32 tensor on device `D` without a tape: how every parameter is stored.
pub type Tensor2<D> = Tensor<(usize, usize), f32, D>;

/// A `(1, n)` parameter row broadcast to `(b, s, n)`, on tape `T`.
fn row<D: Device<f32>, T: Tape<f32, D>>(
    p: &Tensor2<D>,
    (b, s): (usize, usize),
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let n = p.shape().1;
    // reshaping a contiguous tensor keeps its id, so the gradient reaches `p`
    p.retaped::<T>()
        .reshape_like(&(n,))
        .broadcast_like::<_, Axes2<0, 1>>(&(b, s, n))
}

/// `x · W + b` for `x: (b, s, in)`.
pub(crate) fn linear<D: Device<f32>, T: Tape<f32, D> + Merge<NoneTape>>(
    x: Tensor<(usize, usize, usize), f32, D, T>,
    weight: &Tensor2<D>,
    bias: &Tensor2<D>,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let (b, s, _) = *x.shape();
    x.matmul(weight.retaped::<T>()) + row::<D, T>(bias, (b, s))
}

/// Layer norm over the last axis (eps 1e-5, as PyTorch's default).
pub(crate) fn layer_norm<D: Device<f32>, T: Tape<f32, D> + Merge<NoneTape>>(
    x: Tensor<(usize, usize, usize), f32, D, T>,
    gain: &Tensor2<D>,
    bias: &Tensor2<D>,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let (b, s, _) = *x.shape();
    x.normalize::<Axis<2>>(1e-5) * row::<D, T>(gain, (b, s)) + row::<D, T>(bias, (b, s))
}

/// Inverted dropout whose masks come from a host RNG, so a run is
/// reproducible across devices and resumable: the trainer seeds it from
/// (run seed, step), so no RNG state needs to be checkpointed.
pub struct Dropout {
    p: f32,
    rng: Option<StdRng>,
}

impl Dropout {
    /// Dropout that does nothing (inference, or p = 0).
    pub fn off() -> Self {
        Self { p: 0.0, rng: None }
    }

    /// Dropout with probability `p` of zeroing each activation.
    pub fn new(p: f32, seed: u64) -> Self {
        if p <= 0.0 {
            return Self::off();
        }
        Self {
            p,
            rng: Some(StdRng::seed_from_u64(seed)),
        }
    }

    /// Whether this dropout changes anything (p > 0).
    pub fn is_active(&self) -> bool {
        self.rng.is_some()
    }

    /// Zeroes each element with probability p and scales the rest by 1/(1-p).
    pub fn apply<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
        &mut self,
        x: Tensor<S, f32, D, T>,
    ) -> Tensor<S, f32, D, T> {
        let Some(rng) = self.rng.as_mut() else {
            return x;
        };
        let keep = 1.0 / (1.0 - self.p);
        let n = x.shape().num_elements();
        let mask: Vec<f32> = (0..n)
            .map(|_| if rng.gen::<f32>() < self.p { 0.0 } else { keep })
            .collect();
        let mask = x.device().tensor_from_vec(mask, *x.shape());
        x * mask
    }
}
