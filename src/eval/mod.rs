//! Evaluation: decoders ([`decode`]: greedy, sampling with temperature
//! and top-p, `<bksp>` applied to the state), the step-level beam search
//! ([`beam`]: the model inside a Tree-of-Thoughts-style search over lines,
//! "search capability"), probes ([`probe`]: a split of a task, a decoder
//! and a grader, run after every stage on the same problems with the same
//! sampling seeds), and the teacher-forced loss.

pub mod beam;
pub mod decode;
pub mod probe;

pub use beam::{beam_search, BeamOutcome, BeamSettings, ModelProposer, Proposal, Proposer};
pub use decode::{
    generate, generate_cached, generate_uncached, generate_until, last_logits_uncached, Decoding,
    Generation, LineEnd, LineGeneration,
};
pub use probe::{DecoderConfig, GraderKind, ProbeConfig, ProbeResult};

use crate::data::{Batch, Example};
use crate::model::Transformer;
use crate::objectives::mle::mle;
use crate::objectives::ObjectiveError;
use crate::train::Backend;

/// Teacher-forced mean token NLL of `examples` (the MLE loss, no gradient).
pub fn mean_nll<D: Backend>(
    model: &Transformer<D>,
    examples: &[Example],
    batch_size: usize,
) -> Result<f64, ObjectiveError> {
    let mut total = 0.0f64;
    let mut weight = 0.0f64;
    for chunk in examples.chunks(batch_size.max(1)) {
        let batch = Batch::causal(chunk);
        let w = batch.weight_sum();
        let (loss, _) = mle(&D::logits(model, &batch), &batch)?;
        total += loss * w as f64;
        weight += w as f64;
    }
    Ok(if weight == 0.0 { 0.0 } else { total / weight })
}
