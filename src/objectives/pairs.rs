//! What the preference objectives (`dpo`, `simpo`, `cpo`) share: the
//! sequence scores of a [`PairBatch`], the pairwise logistic loss, and the
//! map from per-row score coefficients to logit gradients.
//!
//! Each of them is `L = mean_i softplus(-h_i) + c · NLL(chosen)` for a
//! pair margin `h_i` built from the rows' completion log-probabilities
//! `s_r = Σ_{t ∈ completion(r)} log p_t`; the NLL of the chosen rows is
//! the mean over their completion tokens (TRL's CPO regulariser). Since
//! `∂s_r/∂z_t = onehot(y_t) - softmax(z_t)` on row r's completion
//! positions, the gradient is one cross-entropy backward pass with the
//! per-position coefficient `∂L/∂s_r`.

use super::{sequence_logprobs, ObjectiveError};
use crate::data::{BatchKind, PairBatch, TrainBatch};
use crate::kernels::ops::{cross_entropy_backward, log_softmax_pick};

/// The pair batch of `batch`, or the error naming `objective`.
pub(crate) fn pair_batch<'a>(
    objective: &'static str,
    batch: &'a TrainBatch,
) -> Result<&'a PairBatch, ObjectiveError> {
    match batch {
        TrainBatch::Pairs(p) => Ok(p),
        other => Err(ObjectiveError::WrongBatch {
            objective,
            expected: BatchKind::Pairs,
            got: other.kind(),
        }),
    }
}

/// Completion log-probabilities `s_r` and completion lengths of every row.
pub(crate) fn scores(
    logits: &[f32],
    p: &PairBatch,
) -> Result<(Vec<f64>, Vec<f64>), ObjectiveError> {
    let s = sequence_logprobs(logits, &p.rows)?;
    let b = &p.rows;
    let mut len = vec![0.0f64; b.batch];
    for (at, &c) in b.completion.iter().enumerate() {
        len[at / b.seq] += c as u8 as f64;
    }
    Ok((s, len))
}

/// `softplus(-h) = -log σ(h)`, stable for any h.
pub(crate) fn neg_log_sigmoid(h: f64) -> f64 {
    if h > 0.0 {
        (-h).exp().ln_1p()
    } else {
        -h + h.exp().ln_1p()
    }
}

/// `σ(-h)`: minus the derivative of [`neg_log_sigmoid`].
pub(crate) fn sigmoid_neg(h: f64) -> f64 {
    1.0 / (1.0 + h.exp())
}

/// Adds `weight · NLL(chosen)` (mean over the chosen rows' completion
/// tokens) to `loss` and its score coefficients to `coef`.
pub(crate) fn add_chosen_nll(
    weight: f64,
    p: &PairBatch,
    s: &[f64],
    len: &[f64],
    loss: &mut f64,
    coef: &mut [f64],
) {
    if weight == 0.0 {
        return;
    }
    let n: f64 = len[..p.pairs].iter().sum();
    if n == 0.0 {
        return;
    }
    *loss += -weight * s[..p.pairs].iter().sum::<f64>() / n;
    for c in &mut coef[..p.pairs] {
        *c -= weight / n;
    }
}

/// The logit gradient of a loss whose derivative with respect to row r's
/// completion log-probability is `coef[r]`.
pub(crate) fn grad_from_scores(logits: &[f32], p: &PairBatch, coef: &[f64]) -> Vec<f32> {
    let b = &p.rows;
    let (lse, _) = log_softmax_pick(logits, &b.targets);
    let per_pos: Vec<f32> = (0..b.targets.len())
        .map(|at| {
            if b.completion[at] {
                coef[at / b.seq] as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut dz = vec![0.0f32; logits.len()];
    cross_entropy_backward(logits, &b.targets, &lse, &per_pos, &mut dz);
    dz
}
