//! SimPO (Meng et al. 2024), reference-free, with CPO's likelihood term
//! (CPO-SimPO, the paper's recommended preference baseline):
//!
//! `L = mean_i -log σ(β (s_c/|c| - s_r/|r|) - γ) + cpo_alpha · NLL(chosen)`
//!
//! with `s/|y|` the completion's mean token log-probability. This is TRL's
//! `CPOTrainer` with `loss_type = "simpo"` as paper B's `pref.py` runs it
//! (`cpo_alpha = 0`: SimPO; 1: CPO-SimPO); the defaults are TRL's
//! (`beta = 0.1`, `simpo_gamma = 0.5`), which the paper's recipes keep.

use super::pairs::{
    add_chosen_nll, grad_from_scores, neg_log_sigmoid, pair_batch, scores, sigmoid_neg,
};
use super::{Objective, ObjectiveError};
use crate::data::{BatchKind, TrainBatch};

/// SimPO with margin `gamma` and NLL weight `cpo_alpha`.
#[derive(Clone, Copy, Debug)]
pub struct Simpo {
    pub beta: f64,
    pub gamma: f64,
    pub cpo_alpha: f64,
}

impl Objective for Simpo {
    fn name(&self) -> &'static str {
        "simpo"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Pairs
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        let p = pair_batch("simpo", batch)?;
        let (s, len) = scores(logits, p)?;
        let n = p.pairs;
        let mut coef = vec![0.0f64; p.rows.batch];
        let mut loss = 0.0;
        for i in 0..n {
            let (c, r) = (i, n + i);
            let (lc, lr) = (len[c].max(1.0), len[r].max(1.0));
            let h = self.beta * (s[c] / lc - s[r] / lr) - self.gamma;
            loss += neg_log_sigmoid(h) / n as f64;
            let g = self.beta * sigmoid_neg(h) / n as f64;
            coef[c] = -g / lc;
            coef[r] = g / lr;
        }
        add_chosen_nll(self.cpo_alpha, p, &s, &len, &mut loss, &mut coef);
        Ok((loss, grad_from_scores(logits, p, &coef)))
    }
}
