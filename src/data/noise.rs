//! Teaching `<bksp>` by example: expert answers noised with wrong tokens,
//! each immediately undone (SequenceMatch's noise augmentation).
//!
//! Before each answer token, and before the final `<eos>`, a wrong token
//! followed by `<bksp>` is inserted with probability `p`. The two
//! strategies of the paper (confirmed by an ICLR reviewer; the insertion
//! probability is not public, so it is a config value):
//! - `random`: the wrong token is any printable token (ids
//!   `NEWLINE..VOCAB_SIZE`, i.e. not `<pad>/<bos>/<eos>/<bksp>`);
//! - `ground_truth`: a task-plausible wrong token, drawn from the task's
//!   answer alphabet ([`crate::tasks::Task::answer_alphabet`], e.g. the
//!   other digits of the base), falling back to `random` for a task
//!   without one.
//!
//! Either way the wrong token differs from the correct one. The wrong
//! token's action is marked not-imitated ([`ActionSeq::imitate`]): the
//! model learns to undo mistakes, not to make them. Removing the noise
//! ([`denoise`]) gives back the clean answer.

use rand::{rngs::StdRng, Rng};
use serde::{Deserialize, Serialize};

use super::backspace::{apply, ActionSeq};
use super::vocab::{BKSP, EOS, NEWLINE, VOCAB_SIZE};

/// Which wrong tokens are inserted.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// No noise: the clean answers.
    #[default]
    None,
    /// Any printable token, then `<bksp>`.
    Random,
    /// A wrong token from the task's answer alphabet, then `<bksp>`.
    GroundTruth,
}

/// `noise = { kind = "...", p = ... }` of a stage's task data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    /// `none` (default), `random` or `ground_truth`.
    #[serde(default)]
    pub kind: NoiseKind,
    /// Probability of inserting a wrong token (+ `<bksp>`) before each
    /// answer token and before `<eos>`, in [0, 1]. Default 0.1.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_p() -> f64 {
    0.1
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            kind: NoiseKind::None,
            p: default_p(),
        }
    }
}

impl NoiseConfig {
    /// Whether answers stay clean.
    pub fn is_none(&self) -> bool {
        self.kind == NoiseKind::None
    }

    /// Checks ranges; `at` is the key path (`stages[1].data.noise`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(format!("{at}.p = {}: allowed range is [0, 1]", self.p));
        }
        Ok(())
    }
}

/// `prompt` with `answer` written token by token, noised per `cfg`;
/// `plausible` is the task's answer alphabet (for `ground_truth`). The
/// sequence is finished (ends with `<eos>`).
pub fn noise(
    prompt: &[u32],
    answer: &[u32],
    cfg: &NoiseConfig,
    plausible: &[u32],
    rng: &mut StdRng,
) -> ActionSeq {
    let mut actions = Vec::with_capacity(answer.len() * 2);
    let mut imitate = Vec::with_capacity(answer.len() * 2);
    for k in 0..=answer.len() {
        let correct = answer.get(k).copied().unwrap_or(EOS);
        if !cfg.is_none() && rng.gen::<f64>() < cfg.p {
            actions.extend([wrong_token(correct, cfg.kind, plausible, rng), BKSP]);
            imitate.extend([false, true]);
        }
        if k < answer.len() {
            actions.push(correct);
            imitate.push(true);
        }
    }
    ActionSeq {
        prompt: prompt.to_vec(),
        actions,
        finished: true,
        imitate,
    }
}

/// A token other than `correct`: from `plausible` for ground-truth noise
/// when it has an alternative, else any printable token.
fn wrong_token(correct: u32, kind: NoiseKind, plausible: &[u32], rng: &mut StdRng) -> u32 {
    if kind == NoiseKind::GroundTruth {
        let others: Vec<u32> = plausible
            .iter()
            .copied()
            .filter(|&t| t != correct)
            .collect();
        if !others.is_empty() {
            return others[rng.gen_range(0..others.len())];
        }
    }
    loop {
        let t = rng.gen_range(NEWLINE..VOCAB_SIZE as u32);
        if t != correct {
            return t;
        }
    }
}

/// The generated text of an action sequence: its actions with every
/// `<bksp>` applied (a `<bksp>` with nothing to delete is a no-op).
pub fn denoise(actions: &[u32]) -> Vec<u32> {
    let mut state = Vec::with_capacity(actions.len());
    for &a in actions {
        apply(&mut state, 0, a);
    }
    state
}
