//! Supervised fine-tuning on the successful paths (D+) only:
//!
//! `L = -Σ_{t ∈ C+} log softmax(z_t)[y_t] / |C+|`
//!
//! where `C+` are the completion positions of the rows that are not failed
//! paths (every row of a token batch). Failed rows of a labelled batch are
//! read by nothing: SFT is UFT with `alpha = 0` (`objectives::uft`), and a
//! sweep that compares the two trains both on the same batches. The
//! gradient is MLE's (`objectives::mle`) on those positions.

use super::{mle::weighted_nll, Objective, ObjectiveError};
use crate::data::{Batch, BatchKind, TrainBatch};

/// Maximum likelihood on the completions of the successful rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sft;

impl Objective for Sft {
    fn name(&self) -> &'static str {
        "sft"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Labelled
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        match batch {
            TrainBatch::Tokens(b) => sft(logits, b, &vec![false; b.batch]),
            TrainBatch::Labelled(l) => sft(logits, &l.rows, &l.failed),
            other => Err(ObjectiveError::WrongBatch {
                objective: "sft",
                expected: BatchKind::Labelled,
                got: other.kind(),
            }),
        }
    }
}

/// The SFT loss and gradient: MLE on the completion tokens of the rows
/// with `failed[r] == false`.
pub fn sft(logits: &[f32], b: &Batch, failed: &[bool]) -> Result<(f64, Vec<f32>), ObjectiveError> {
    weighted_nll(logits, &b.targets, &row_mask(b, failed, false))
}

/// 1 on the completion positions of the rows whose `failed` flag is
/// `which`, 0 elsewhere.
pub(crate) fn row_mask(b: &Batch, failed: &[bool], which: bool) -> Vec<f32> {
    (0..b.targets.len())
        .map(|at| (b.completion[at] && failed[at / b.seq] == which) as u8 as f32)
        .collect()
}
