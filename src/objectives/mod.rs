//! Training objectives: one file per loss. Each objective states the batch
//! kind it trains on and maps the model's logits to the loss and its
//! gradient with respect to those logits, on the host, with no dfdx:
//! the training step runs the model forward, hands the logits here, and
//! back-propagates the returned gradient (fused on the CPU; on other
//! devices through the composite graph). So a new loss is one file and one
//! [`ObjectiveConfig`] variant, and it works on every device and path.
//!
//! Each objective has an independent plain-f64 reference in
//! `tests/suite/objectives.rs`, compared by proptest on random inputs, plus
//! a finite-difference check of its gradient.

pub mod cpo;
pub mod dpo;
pub mod mle;
mod pairs;
pub mod sequencematch;
pub mod sft;
pub mod simpo;
pub mod uft;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::{Batch, BatchKind, TrainBatch};

pub use cpo::Cpo;
pub use dpo::Dpo;
pub use mle::Mle;
pub use sequencematch::{Divergence, SequenceMatch, ValueOver};
pub use sft::Sft;
pub use simpo::Simpo;
pub use uft::Uft;

/// Why an objective could not be evaluated.
#[derive(Debug, Error)]
pub enum ObjectiveError {
    #[error("objective {objective} trains on a {expected}, got a {got}")]
    WrongBatch {
        objective: &'static str,
        expected: BatchKind,
        got: BatchKind,
    },
    #[error("logits have {len} values, not a multiple of the batch's {rows} positions")]
    Shape { len: usize, rows: usize },
    #[error("target id {target} out of range (vocab {vocab})")]
    Target { target: usize, vocab: usize },
    #[error("the pair batch has {got} reference log-probabilities for {rows} rows (a reference objective needs the frozen model's scores)")]
    Reference { got: usize, rows: usize },
}

/// A loss over the logits of a batch.
pub trait Objective: Send + Sync + std::fmt::Debug {
    /// Its name in configs and metrics (`mle`).
    fn name(&self) -> &'static str;
    /// The batch kind it trains on.
    fn batch_kind(&self) -> BatchKind;
    /// Whether it reads policy rows (rollouts of the model) in a
    /// transition batch; a stage draws rollouts only for such objectives.
    fn uses_policy(&self) -> bool {
        false
    }
    /// Whether it reads the frozen reference model's completion
    /// log-probabilities ([`crate::data::PairBatch::ref_logp`]); the stage
    /// then freezes the weights it starts from.
    fn needs_reference(&self) -> bool {
        false
    }
    /// The loss on `batch` and its gradient with respect to `logits`.
    ///
    /// # Shapes
    /// `logits`: `(rows·seq, vocab)` row-major for the model rows of
    /// `batch` ([`TrainBatch::rows`]); the gradient has the same shape.
    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError>;
}

/// The loss a stage minimises (`objective = { kind = "..." }`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectiveConfig {
    /// Maximum likelihood on the completion tokens (and `<eos>`); on a
    /// transition batch, on the imitated actions of its data rows.
    Mle {},
    /// SequenceMatch (`objectives::sequencematch`): an occupancy divergence
    /// with the logits as soft Q-values, mixed with MLE:
    /// `lambda * SM + (1 - lambda) * MLE`, on transition batches (data rows,
    /// and the policy rows of the stage's `rollouts`).
    Sequencematch {
        /// `kl`, `reverse_kl`, `js`, `chi2` or `chi2_mix`.
        divergence: Divergence,
        /// chi2 / chi2_mix strength: the r^2 term has weight 1/(4 alpha);
        /// > 0. Default 0.5 (IQ-Learn's).
        #[serde(default = "d_alpha")]
        alpha: f64,
        /// Discount gamma in (0, 1]. Default 0.99.
        #[serde(default = "d_gamma")]
        gamma: f64,
        /// Value of the absorbing state after `<eos>`. Default 0.
        #[serde(default)]
        v_terminal: f64,
        /// The value term V(s) - gamma V(s') over `data` or `mixture` (half
        /// data, half policy; default).
        #[serde(default)]
        value_over: ValueOver,
        /// Weight of the SequenceMatch loss against MLE, in [0, 1].
        /// Default 0.5.
        #[serde(default = "d_lambda")]
        lambda: f64,
    },
    /// Supervised fine-tuning: MLE on the completions of the successful
    /// rows only (the failed rows of a labelled batch are ignored).
    Sft {},
    /// Unlikelihood fine-tuning: `(1 - alpha) * SFT + alpha * UL`, UL the
    /// mean over the failed rows' completion tokens of `-log(1 - p + 1e-8)`
    /// (`objectives::uft`).
    Uft {
        /// Weight of the unlikelihood term, in [0, 1]; 0 is SFT. The
        /// paper's code sweeps 1e-6..1e-3 (default shown there: 1e-4).
        alpha: f64,
    },
    /// DPO against the frozen weights the stage starts from, on
    /// (successful, failed) pairs of the same prompt.
    Dpo {
        /// Inverse temperature, > 0. Default 0.1.
        #[serde(default = "d_beta")]
        beta: f64,
    },
    /// SimPO (length-normalised, reference-free), plus `cpo_alpha` times
    /// the chosen completions' NLL (1: CPO-SimPO). TRL's defaults.
    Simpo {
        /// Inverse temperature, > 0. Default 0.1.
        #[serde(default = "d_beta")]
        beta: f64,
        /// Target margin gamma, >= 0. Default 0.5.
        #[serde(default = "d_simpo_gamma")]
        gamma: f64,
        /// Weight of the chosen NLL, >= 0. Default 0 (SimPO).
        #[serde(default)]
        cpo_alpha: f64,
    },
    /// CPO (summed log-probabilities, reference-free) plus `cpo_alpha`
    /// times the chosen completions' NLL. TRL's defaults.
    Cpo {
        /// Inverse temperature, > 0. Default 0.1.
        #[serde(default = "d_beta")]
        beta: f64,
        /// Weight of the chosen NLL, >= 0. Default 1.
        #[serde(default = "d_cpo_alpha")]
        cpo_alpha: f64,
    },
}

fn d_beta() -> f64 {
    0.1
}
fn d_simpo_gamma() -> f64 {
    0.5
}
fn d_cpo_alpha() -> f64 {
    1.0
}

fn d_alpha() -> f64 {
    0.5
}
fn d_gamma() -> f64 {
    0.99
}
fn d_lambda() -> f64 {
    0.5
}

impl ObjectiveConfig {
    /// The objective this config describes.
    pub fn build(&self) -> Box<dyn Objective> {
        match *self {
            Self::Mle {} => Box::new(Mle),
            Self::Sequencematch {
                divergence,
                alpha,
                gamma,
                v_terminal,
                value_over,
                lambda,
            } => Box::new(SequenceMatch {
                divergence,
                alpha,
                gamma,
                v_terminal,
                value_over,
                lambda,
            }),
            Self::Sft {} => Box::new(Sft),
            Self::Uft { alpha } => Box::new(Uft { alpha }),
            Self::Dpo { beta } => Box::new(Dpo { beta }),
            Self::Simpo {
                beta,
                gamma,
                cpo_alpha,
            } => Box::new(Simpo {
                beta,
                gamma,
                cpo_alpha,
            }),
            Self::Cpo { beta, cpo_alpha } => Box::new(Cpo { beta, cpo_alpha }),
        }
    }

    /// Checks ranges; `at` is the key path (`stages[1].objective`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let positive = |key: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{at}.{key} = {v}: must be > 0"))
            }
        };
        let non_negative = |key: &str, v: f64| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{at}.{key} = {v}: must be >= 0"))
            }
        };
        match *self {
            Self::Uft { alpha } if !(0.0..=1.0).contains(&alpha) => {
                return Err(format!("{at}.alpha = {alpha}: allowed range is [0, 1]"))
            }
            Self::Dpo { beta } => positive("beta", beta)?,
            Self::Simpo {
                beta,
                gamma,
                cpo_alpha,
            } => {
                positive("beta", beta)?;
                non_negative("gamma", gamma)?;
                non_negative("cpo_alpha", cpo_alpha)?;
            }
            Self::Cpo { beta, cpo_alpha } => {
                positive("beta", beta)?;
                non_negative("cpo_alpha", cpo_alpha)?;
            }
            _ => {}
        }
        if let Self::Sequencematch {
            alpha,
            gamma,
            v_terminal,
            lambda,
            ..
        } = *self
        {
            if !(alpha > 0.0 && alpha.is_finite()) {
                return Err(format!("{at}.alpha = {alpha}: must be > 0"));
            }
            if !(gamma > 0.0 && gamma <= 1.0) {
                return Err(format!("{at}.gamma = {gamma}: allowed range is (0, 1]"));
            }
            if !v_terminal.is_finite() {
                return Err(format!("{at}.v_terminal = {v_terminal}: must be finite"));
            }
            if !(0.0..=1.0).contains(&lambda) {
                return Err(format!("{at}.lambda = {lambda}: allowed range is [0, 1]"));
            }
        }
        Ok(())
    }
}

/// Per row of `b`, the log-probability of its completion: Σ over positions
/// marked `completion` of `log softmax(z_t)[y_t]`, in f64. The sequence
/// scores of preference objectives (DPO's policy and frozen-reference
/// terms; SimPO divides by the completion length).
///
/// # Shapes
/// `logits`: `(batch·seq, vocab)`; returns `batch` values.
pub fn sequence_logprobs(logits: &[f32], b: &Batch) -> Result<Vec<f64>, ObjectiveError> {
    let v = vocab_of(logits, b.targets.len())?;
    if let Some(&target) = b.targets.iter().find(|&&y| y >= v) {
        return Err(ObjectiveError::Target { target, vocab: v });
    }
    let mut out = vec![0.0f64; b.batch];
    for (at, z) in logits.chunks_exact(v).enumerate() {
        if !b.completion[at] {
            continue;
        }
        let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + z.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        out[at / b.seq] += z[b.targets[at]] as f64 - lse;
    }
    Ok(out)
}

/// The vocabulary size implied by `logits` for `rows` positions.
pub(crate) fn vocab_of(logits: &[f32], rows: usize) -> Result<usize, ObjectiveError> {
    if rows == 0 || !logits.len().is_multiple_of(rows) {
        return Err(ObjectiveError::Shape {
            len: logits.len(),
            rows,
        });
    }
    Ok(logits.len() / rows)
}
