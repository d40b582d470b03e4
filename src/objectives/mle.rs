//! Maximum likelihood (behavioural cloning): weighted token cross-entropy.
//!
//! `L = -Σ_t w_t · log softmax(z_t)[y_t] / Σ_t w_t`
//!
//! where `z_t` are the logits at position t, `y_t` the target token and `w_t`
//! its loss weight (0 for prompt and padding). dfdx 0.13 has no
//! index-target cross-entropy with weights, so it is built from
//! `log_softmax` + `select`.

use dfdx::prelude::*;

/// Mean weighted negative log-likelihood.
///
/// # Shapes
/// `logits: (batch, seq, vocab)`, `targets` and `weights`: `(batch, seq)`.
/// `weight_sum` is `Σ weights` (computed on the host, where it is known); if
/// it is 0 the loss is 0.
pub fn mle_loss<D: Device<f32>, T: Tape<f32, D>>(
    logits: Tensor<(usize, usize, usize), f32, D, T>,
    targets: &Tensor<(usize, usize), usize, D>,
    weights: &Tensor<(usize, usize), f32, D>,
    weight_sum: f32,
) -> Tensor<Rank0, f32, D, T> {
    let logp = logits.log_softmax::<Axis<2>>().select(targets.clone()); // (batch, seq)
    (logp * weights.clone()).sum::<Rank0, _>() * (-1.0 / weight_sum.max(f32::MIN_POSITIVE))
}
