//! Contrastive preference optimisation (Xu et al. 2024), reference-free:
//!
//! `L = mean_i -log σ(β (s_c - s_r)) + cpo_alpha · NLL(chosen)`
//!
//! with `s` the completions' summed log-probabilities: TRL's `CPOTrainer`
//! with `loss_type = "sigmoid"` (defaults `beta = 0.1`, `cpo_alpha = 1`).

use super::pairs::{
    add_chosen_nll, grad_from_scores, neg_log_sigmoid, pair_batch, scores, sigmoid_neg,
};
use super::{Objective, ObjectiveError};
use crate::data::{BatchKind, TrainBatch};

/// CPO with inverse temperature `beta` and NLL weight `cpo_alpha`.
#[derive(Clone, Copy, Debug)]
pub struct Cpo {
    pub beta: f64,
    pub cpo_alpha: f64,
}

impl Objective for Cpo {
    fn name(&self) -> &'static str {
        "cpo"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Pairs
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        let p = pair_batch("cpo", batch)?;
        let (s, len) = scores(logits, p)?;
        let n = p.pairs;
        let mut coef = vec![0.0f64; p.rows.batch];
        let mut loss = 0.0;
        for i in 0..n {
            let (c, r) = (i, n + i);
            let h = self.beta * (s[c] - s[r]);
            loss += neg_log_sigmoid(h) / n as f64;
            let g = self.beta * sigmoid_neg(h) / n as f64;
            coef[c] = -g;
            coef[r] = g;
        }
        add_chosen_nll(self.cpo_alpha, p, &s, &len, &mut loss, &mut coef);
        Ok((loss, grad_from_scores(logits, p, &coef)))
    }
}
