//! Layers with runtime dims: linear, layer norm, dropout.

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A 2-d f32 tensor on device `D` without a tape: how every parameter is stored.
pub type Tensor2<D> = Tensor<(usize, usize), f32, D>;

/// `y = x · weight + bias`, weight `(in, out)`, bias `(1, out)`.
#[derive(Clone, Debug)]
pub struct Linear<D: Device<f32>> {
    pub weight: Tensor2<D>,
    pub bias: Tensor2<D>,
}

impl<D: Device<f32>> Linear<D> {
    pub(crate) fn push_params<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Tensor2<D>)>) {
        out.push((format!("{prefix}.weight"), &self.weight));
        out.push((format!("{prefix}.bias"), &self.bias));
    }
}

/// Layer norm over the last axis with a learned gain and bias, both `(1, d)`.
#[derive(Clone, Debug)]
pub struct LayerNorm<D: Device<f32>> {
    pub gain: Tensor2<D>,
    pub bias: Tensor2<D>,
}

impl<D: Device<f32>> LayerNorm<D> {
    pub(crate) fn new(dev: &D, d: usize) -> Self {
        Self {
            gain: dev.ones_like(&(1, d)),
            bias: dev.zeros_like(&(1, d)),
        }
    }

    pub(crate) fn push_params<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Tensor2<D>)>) {
        out.push((format!("{prefix}.gain"), &self.gain));
        out.push((format!("{prefix}.bias"), &self.bias));
    }
}

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
    l: &Linear<D>,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let (b, s, _) = *x.shape();
    x.matmul(l.weight.retaped::<T>()) + row::<D, T>(&l.bias, (b, s))
}

/// Layer norm over the last axis (eps 1e-5, as PyTorch's default).
pub(crate) fn layer_norm<D: Device<f32>, T: Tape<f32, D> + Merge<NoneTape>>(
    x: Tensor<(usize, usize, usize), f32, D, T>,
    ln: &LayerNorm<D>,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let (b, s, _) = *x.shape();
    x.normalize::<Axis<2>>(1e-5) * row::<D, T>(&ln.gain, (b, s)) + row::<D, T>(&ln.bias, (b, s))
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
