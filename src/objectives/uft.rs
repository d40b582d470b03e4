//! Unlikelihood fine-tuning (UFT, Ni et al. 2025): likelihood on the
//! successful paths (D+) and unlikelihood on the failed ones (D-):
//!
//! `L = (1 - α) · L_SFT + α · L_UL`,
//! `L_SFT = -Σ_{t ∈ C+} log p_t / |C+|` (`objectives::sft`),
//! `L_UL = Σ_{t ∈ C-} -log(1 - p_t + ε) / |C-|`, ε = 1e-8,
//!
//! with `p_t = softmax(z_t)[y_t]`, `C±` the completion positions of the
//! successful / failed rows, each term 0 when its set is empty. This is
//! the token-level form of the paper's code (`uft_trainer.py`: mean over
//! valid completion tokens of each batch, D+ and D- drawn together every
//! step), not the sequence-level `-log(1 - π(y|x))` of its text.
//!
//! `1 - p_t` is computed as `Σ_{j ≠ y} softmax(z_t)_j` in f64, which keeps
//! its relative precision as `p_t → 1` (`1 - exp(logp)` in f32 would be
//! mostly rounding error there); ε bounds the term by `-ln ε ≈ 18.4`.
//! Gradient of one UL token: `∂/∂z = p/(1 - p + ε) · (onehot(y) - softmax(z))`.
//! With α = 0 the loss and gradient are SFT's exactly: the UL part is
//! scaled by 0 and added, and its coefficients are finite.

use super::sft::{row_mask, sft};
use super::{vocab_of, Objective, ObjectiveError};
use crate::data::{Batch, BatchKind, TrainBatch};
use crate::kernels::ops::{cross_entropy_backward, log_softmax_pick};

/// ε inside the unlikelihood log, as in the paper's code.
pub const UL_EPS: f64 = 1e-8;

/// UFT with unlikelihood weight `alpha` in [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct Uft {
    pub alpha: f64,
}

impl Objective for Uft {
    fn name(&self) -> &'static str {
        "uft"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Labelled
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        let TrainBatch::Labelled(l) = batch else {
            return Err(ObjectiveError::WrongBatch {
                objective: "uft",
                expected: BatchKind::Labelled,
                got: batch.kind(),
            });
        };
        let (pos, mut dz) = sft(logits, &l.rows, &l.failed)?;
        let (neg, dneg) = unlikelihood(logits, &l.rows, &l.failed)?;
        let (a, b) = ((1.0 - self.alpha) as f32, self.alpha as f32);
        for (g, n) in dz.iter_mut().zip(&dneg) {
            *g = a * *g + b * n;
        }
        Ok(((1.0 - self.alpha) * pos + self.alpha * neg, dz))
    }
}

/// `L_UL` over the completion tokens of the failed rows, and its gradient.
pub fn unlikelihood(
    logits: &[f32],
    b: &Batch,
    failed: &[bool],
) -> Result<(f64, Vec<f32>), ObjectiveError> {
    let v = vocab_of(logits, b.targets.len())?;
    if let Some(&target) = b.targets.iter().find(|&&y| y >= v) {
        return Err(ObjectiveError::Target { target, vocab: v });
    }
    let mask = row_mask(b, failed, true);
    let count = mask.iter().filter(|&&m| m > 0.0).count();
    let mut dz = vec![0.0f32; logits.len()];
    if count == 0 {
        return Ok((0.0, dz));
    }
    let (lse, _) = log_softmax_pick(logits, &b.targets);
    let mut coef = vec![0.0f32; mask.len()];
    let mut total = 0.0f64;
    for (at, z) in logits.chunks_exact(v).enumerate() {
        if mask[at] == 0.0 {
            continue;
        }
        let y = b.targets[at];
        let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = z.iter().map(|&x| (x as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let p = e[y] / sum;
        // 1 - p as the mass of the other tokens: no cancellation
        let q = e
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != y)
            .map(|(_, x)| x)
            .sum::<f64>()
            / sum;
        total += -(q + UL_EPS).ln();
        coef[at] = (p / (q + UL_EPS) / count as f64) as f32;
    }
    cross_entropy_backward(logits, &b.targets, &lse, &coef, &mut dz);
    Ok((total / count as f64, dz))
}
