//! Direct preference optimisation (Rafailov et al. 2023) against a frozen
//! reference model (in a staged run: the weights the stage started from):
//!
//! `L = mean_i -log σ(β [(s_c - ref_c) - (s_r - ref_r)])`
//!
//! over pairs i of a chosen (successful) and a rejected (failed) completion
//! of the same prompt, `s` the policy's and `ref` the reference's completion
//! log-probabilities. When the policy equals the reference, L = log 2.
//! (Paper B's code has no DPO; it is the preference baseline this issue
//! names, next to SimPO and CPO.)

use super::pairs::{grad_from_scores, neg_log_sigmoid, pair_batch, scores, sigmoid_neg};
use super::{Objective, ObjectiveError};
use crate::data::{BatchKind, TrainBatch};

/// DPO with inverse temperature `beta` > 0.
#[derive(Clone, Copy, Debug)]
pub struct Dpo {
    pub beta: f64,
}

impl Objective for Dpo {
    fn name(&self) -> &'static str {
        "dpo"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Pairs
    }

    fn needs_reference(&self) -> bool {
        true
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        let p = pair_batch("dpo", batch)?;
        if p.ref_logp.len() != p.rows.batch {
            return Err(ObjectiveError::Reference {
                got: p.ref_logp.len(),
                rows: p.rows.batch,
            });
        }
        let (s, _) = scores(logits, p)?;
        let n = p.pairs;
        let mut coef = vec![0.0f64; p.rows.batch];
        let mut loss = 0.0;
        for i in 0..n {
            let (c, r) = (i, n + i);
            let h = self.beta * ((s[c] - p.ref_logp[c]) - (s[r] - p.ref_logp[r]));
            loss += neg_log_sigmoid(h) / n as f64;
            let g = self.beta * sigmoid_neg(h) / n as f64;
            coef[c] = -g;
            coef[r] = g;
        }
        Ok((loss, grad_from_scores(logits, p, &coef)))
    }
}
