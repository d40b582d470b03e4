//! Maximum likelihood (behavioural cloning): weighted token cross-entropy.
//!
//! `L = -Σ_t w_t · log softmax(z_t)[y_t] / Σ_t w_t`
//!
//! where `z_t` are the logits at position t, `y_t` the target token and `w_t`
//! its loss weight (0 for prompt and padding); L = 0 when every weight is 0.
//! The gradient is `∂L/∂z_t = -w_t / Σw · (onehot(y_t) - softmax(z_t))`.

use super::{vocab_of, Objective, ObjectiveError};
use crate::data::{Batch, BatchKind, TrainBatch};
use crate::kernels::ops::{cross_entropy_backward, log_softmax_pick};

/// Maximum likelihood on a token batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mle;

impl Objective for Mle {
    fn name(&self) -> &'static str {
        "mle"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Tokens
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        match batch {
            TrainBatch::Tokens(b) => mle(logits, b),
            // every row, successful or failed (plain next-token training)
            TrainBatch::Labelled(l) => mle(logits, &l.rows),
            // the imitated actions of the data rows carry the weights
            TrainBatch::Transitions(t) => mle(logits, &t.rows),
            other => Err(ObjectiveError::WrongBatch {
                objective: "mle",
                expected: BatchKind::Tokens,
                got: other.kind(),
            }),
        }
    }
}

/// The MLE loss and its gradient on a token batch, with the row-parallel
/// kernels (one pass for every row's log-sum-exp, one for the gradient).
///
/// # Shapes
/// `logits`: `(batch·seq, vocab)`; returns the loss and `(batch·seq, vocab)`.
pub fn mle(logits: &[f32], b: &Batch) -> Result<(f64, Vec<f32>), ObjectiveError> {
    weighted_nll(logits, &b.targets, &b.weights)
}

/// `-Σ_t w_t log softmax(z_t)[y_t] / Σ_t w_t` (0 when every weight is 0)
/// and its gradient, for per-position `targets` and `weights`.
pub fn weighted_nll(
    logits: &[f32],
    targets: &[usize],
    weights: &[f32],
) -> Result<(f64, Vec<f32>), ObjectiveError> {
    let v = vocab_of(logits, targets.len())?;
    if let Some(&target) = targets.iter().find(|&&y| y >= v) {
        return Err(ObjectiveError::Target { target, vocab: v });
    }
    let (lse, logp) = log_softmax_pick(logits, targets);
    let wsum: f32 = weights.iter().sum();
    let scale = -1.0 / wsum.max(f32::MIN_POSITIVE);
    let total: f32 = logp.iter().zip(weights).map(|(l, w)| l * w).sum();
    let coef: Vec<f32> = weights.iter().map(|w| w * scale).collect();
    let mut dz = vec![0.0f32; logits.len()];
    cross_entropy_backward(logits, targets, &lse, &coef, &mut dz);
    Ok(((total * scale) as f64, dz))
}
