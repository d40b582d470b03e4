//! Maximum likelihood (behavioural cloning): weighted token cross-entropy.
//!
//! `L = -Σ_t w_t · log softmax(z_t)[y_t] / Σ_t w_t`
//!
//! where `z_t` are the logits at position t, `y_t` the target token and `w_t`
//! its loss weight (0 for prompt and padding). dfdx 0.13 has no
//! index-target cross-entropy with weights, so it is built from
//! `log_softmax` + `select`.

use dfdx::prelude::*;

/// A batch's targets and loss weights on `dev`, each `(batch, seq)`.
pub fn targets_on<D: Device<f32>>(
    b: &crate::data::Batch,
    dev: &D,
) -> (
    Tensor<(usize, usize), usize, D>,
    Tensor<(usize, usize), f32, D>,
) {
    (
        dev.tensor_from_vec(b.targets.clone(), (b.batch, b.seq)),
        dev.tensor_from_vec(b.weights.clone(), (b.batch, b.seq)),
    )
}

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

/// [`mle_loss`] on the CPU as one fused op: one pass computes every row's
/// log-sum-exp and the loss, and a hand-written backward op adds
/// `w_t / Σw · (softmax(z_t) - onehot(y_t))` (times the loss's gradient)
/// to the logits' gradient. The fused training step uses it; `tests/fused.rs`
/// checks it against [`mle_loss`] (value and gradient).
///
/// `targets` and `weights` are the `(batch, seq)` host arrays of
/// [`crate::data::Batch`].
pub fn mle_loss_cpu(
    logits: Tensor<(usize, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>,
    targets: &[usize],
    weights: &[f32],
    weight_sum: f32,
) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
    use crate::kernels::ops::{cross_entropy_backward, log_softmax_pick};
    let (b, s, v) = *logits.shape();
    assert_eq!(targets.len(), b * s, "targets must be (batch, seq)");
    assert_eq!(weights.len(), b * s, "weights must be (batch, seq)");
    if let Some(&y) = targets.iter().find(|&&y| y >= v) {
        panic!("target id {y} out of range (vocab {v})");
    }
    let (logits, mut tape) = logits.split_tape();
    let z = logits.as_vec();
    let (lse, logp) = log_softmax_pick(&z, targets);
    let scale = -1.0 / weight_sum.max(f32::MIN_POSITIVE);
    let total: f32 = logp.iter().zip(weights).map(|(l, w)| l * w).sum();
    let out = logits.device().tensor_from_vec(vec![total * scale], ());
    let (out_id, z_id) = (out.ghost(), logits.ghost());
    let (targets, coef): (Vec<usize>, Vec<f32>) = (
        targets.to_vec(),
        weights.iter().map(|w| w * scale).collect(),
    );
    tape.add_backward_op(move |grads| {
        let g = grads.get_or_alloc_mut(&out_id)?[0];
        let coef: Vec<f32> = coef.iter().map(|c| c * g).collect();
        let dz = grads.get_or_alloc_mut(&z_id)?;
        cross_entropy_backward(&z, &targets, &lse, &coef, dz);
        Ok(())
    });
    out.put_tape(tape)
}
