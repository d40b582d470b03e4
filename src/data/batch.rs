//! Batches of token sequences on the host.
//!
//! A [`Batch`] is device-independent plain data: input ids, next-token
//! targets, per-token loss weights, a completion mask, position ids and an
//! additive attention mask. Plain sequences get a causal mask here;
//! sequences containing `<bksp>` get their mask and positions from
//! [`super::backspace`], through the same struct, so the model never
//! special-cases either. What an objective trains on is a [`TrainBatch`]:
//! token rows, chosen/rejected pairs, or backspace transitions.

use crate::data::vocab::{BOS, EOS, PAD};

/// The additive attention-mask value that hides a key from a query: added
/// to the score `q·k/√d` before the softmax, it makes that key's weight
/// exactly 0 (0 is added where the key is visible). Large and finite, so a
/// query whose keys are all hidden (a padding row) gets a uniform softmax
/// instead of NaN; its output is never read by a loss (weight 0).
pub const MASKED: f32 = -1e9;

/// One training sequence: `tokens` starts with `<bos>` and usually ends with
/// `<eos>`; the tokens at index >= `loss_from` are targets that carry loss
/// (e.g. the answer and `<eos>`, not the prompt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub loss_from: usize,
}

impl Example {
    /// `<bos> prompt completion <eos>` with loss on `completion <eos>`.
    pub fn prompt_completion(prompt: &[u32], completion: &[u32]) -> Self {
        let mut tokens = Vec::with_capacity(prompt.len() + completion.len() + 2);
        tokens.push(BOS);
        tokens.extend_from_slice(prompt);
        let loss_from = tokens.len();
        tokens.extend_from_slice(completion);
        tokens.push(EOS);
        Self { tokens, loss_from }
    }

    /// [`Example::prompt_completion`] from text.
    pub fn from_text(
        prompt: &str,
        completion: &str,
    ) -> Result<Self, crate::data::vocab::VocabError> {
        Ok(Self::prompt_completion(
            &crate::data::vocab::encode(prompt)?,
            &crate::data::vocab::encode(completion)?,
        ))
    }
}

/// A batch of `batch` rows of length `seq`, row-major.
///
/// # Shapes
/// `ids`, `targets`, `weights`, `completion`, `positions`: `batch * seq`;
/// `mask`: `batch * seq * seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub batch: usize,
    pub seq: usize,
    /// Input token at each position.
    pub ids: Vec<usize>,
    /// Token to predict at each position (the next token); PAD where none.
    pub targets: Vec<usize>,
    /// Loss weight of each position's target (0 for prompt and padding).
    pub weights: Vec<f32>,
    /// Whether each position's target belongs to a completion (not the
    /// prompt, not padding): the tokens a completion-only objective such
    /// as unlikelihood reads, whatever their weights.
    pub completion: Vec<bool>,
    /// Position id of each input token.
    pub positions: Vec<usize>,
    /// Additive attention mask: 0 visible, [`MASKED`] hidden.
    pub mask: Vec<f32>,
}

impl Batch {
    /// Right-padded causal batch: input `tokens[..n-1]`, target `tokens[1..]`.
    pub fn causal(examples: &[Example]) -> Self {
        let batch = examples.len();
        let seq = examples
            .iter()
            .map(|e| e.tokens.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut b = Self {
            batch,
            seq,
            ids: vec![PAD as usize; batch * seq],
            targets: vec![PAD as usize; batch * seq],
            weights: vec![0.0; batch * seq],
            completion: vec![false; batch * seq],
            positions: vec![0; batch * seq],
            mask: vec![MASKED; batch * seq * seq],
        };
        for (r, e) in examples.iter().enumerate() {
            let len = e.tokens.len().saturating_sub(1);
            for i in 0..len {
                let at = r * seq + i;
                b.ids[at] = e.tokens[i] as usize;
                b.targets[at] = e.tokens[i + 1] as usize;
                if i + 1 >= e.loss_from {
                    b.weights[at] = 1.0;
                    b.completion[at] = true;
                }
                b.positions[at] = i;
            }
            for i in 0..seq {
                // query i sees keys 0..=i that are real tokens
                for j in 0..=i.min(len.max(1) - 1) {
                    b.mask[(r * seq + i) * seq + j] = 0.0;
                }
            }
        }
        b
    }

    /// Sum of the loss weights (the denominator of a mean token loss).
    pub fn weight_sum(&self) -> f32 {
        self.weights.iter().sum()
    }

    /// Number of non-padding input tokens (for tokens/s figures).
    pub fn num_tokens(&self) -> usize {
        self.ids.iter().filter(|&&t| t != PAD as usize).count()
    }
}

/// Which kind of batch an objective trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    Tokens,
    Labelled,
    Pairs,
    Transitions,
}

impl std::fmt::Display for BatchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tokens => "token batch",
            Self::Labelled => "labelled batch",
            Self::Pairs => "pair batch",
            Self::Transitions => "transition batch",
        })
    }
}

/// Chosen and rejected completions of the same prompts, for preference
/// objectives (DPO, SimPO, CPO): `rows` holds the chosen sequences in rows
/// `0..pairs` and the rejected ones in rows `pairs..2·pairs`, row `i`
/// paired with row `pairs + i`.
#[derive(Clone, Debug, PartialEq)]
pub struct PairBatch {
    pub rows: Batch,
    pub pairs: usize,
    /// Sequence log-probabilities of the completions (Σ over completion
    /// tokens) under a frozen reference model, one per row of `rows`; empty
    /// when the objective needs no reference (SimPO, CPO).
    pub ref_logp: Vec<f64>,
}

impl PairBatch {
    /// Pairs `chosen[i]` with `rejected[i]` (same prompts, same count).
    pub fn new(chosen: &[Example], rejected: &[Example]) -> Self {
        assert_eq!(chosen.len(), rejected.len(), "one rejected per chosen");
        let all: Vec<Example> = chosen.iter().chain(rejected).cloned().collect();
        Self {
            rows: Batch::causal(&all),
            pairs: chosen.len(),
            ref_logp: vec![],
        }
    }
}

/// Successful and failed completions (D+ and D- of learning from failures),
/// for objectives that treat them differently (SFT reads only the
/// successful rows, UFT both).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledBatch {
    pub rows: Batch,
    /// Per row: whether it is a failed path.
    pub failed: Vec<bool>,
}

impl LabelledBatch {
    /// The successful `good` and failed `bad` examples, in that order.
    pub fn new(good: &[Example], bad: &[Example]) -> Self {
        let all: Vec<Example> = good.iter().chain(bad).cloned().collect();
        let mut failed = vec![false; good.len()];
        failed.resize(all.len(), true);
        Self {
            rows: Batch::causal(&all),
            failed,
        }
    }
}

/// Sequences that contain `<bksp>` actions, laid out for one forward pass
/// in which every position sees exactly the state it is in (see
/// `data::backspace`): SequenceMatch's data and policy transitions.
///
/// Every action position has `completion = true`; `weights` are the
/// imitation (MLE) weights: 1 on a data row's actions, 0 on an injected
/// wrong token (noise to be undone, not imitated) and on every policy row.
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionBatch {
    pub rows: Batch,
    /// Per row: whether it is a rollout of the model (a policy row) rather
    /// than data.
    pub policy: Vec<bool>,
}

/// What a training step consumes: one of the batch kinds. Every kind is
/// run through the model as the token [`Batch`] of [`TrainBatch::rows`];
/// the objective reads the rest.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainBatch {
    Tokens(Batch),
    Labelled(LabelledBatch),
    Pairs(PairBatch),
    Transitions(TransitionBatch),
}

impl TrainBatch {
    /// The token rows the model runs on.
    pub fn rows(&self) -> &Batch {
        match self {
            Self::Tokens(b) => b,
            Self::Labelled(l) => &l.rows,
            Self::Pairs(p) => &p.rows,
            Self::Transitions(t) => &t.rows,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> BatchKind {
        match self {
            Self::Tokens(_) => BatchKind::Tokens,
            Self::Labelled(_) => BatchKind::Labelled,
            Self::Pairs(_) => BatchKind::Pairs,
            Self::Transitions(_) => BatchKind::Transitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_batch_shifts_targets_and_weights_only_completion() {
        let b = Batch::causal(&[
            Example::prompt_completion(&[10, 11], &[12]),
            Example::prompt_completion(&[10], &[]),
        ]);
        // row 0: bos 10 11 12 eos -> inputs bos 10 11 12, targets 10 11 12 eos
        assert_eq!(b.seq, 4);
        assert_eq!(&b.ids[0..4], &[1, 10, 11, 12]);
        assert_eq!(&b.targets[0..4], &[10, 11, 12, 2]);
        assert_eq!(&b.weights[0..4], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(&b.completion[0..4], &[false, false, true, true]);
        // row 1: bos 10 eos -> inputs bos 10 pad pad, loss only on eos
        assert_eq!(&b.ids[4..8], &[1, 10, 0, 0]);
        assert_eq!(&b.weights[4..8], &[0.0, 1.0, 0.0, 0.0]);
        // row 1, query 3 (padding) sees only the two real keys
        let row = &b.mask[(4 + 3) * 4..(4 + 4) * 4];
        assert_eq!(row, &[0.0, 0.0, MASKED, MASKED]);
        // row 0, query 1 sees keys 0 and 1 only
        assert_eq!(&b.mask[4..8], &[0.0, 0.0, MASKED, MASKED]);
    }
}
