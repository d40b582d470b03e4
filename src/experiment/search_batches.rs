//! Batches of search paths (`[[stages]] data = { source = "search" }`):
//! the successful and failed paths the task's search strategies produce on
//! fresh training problems ([`Task::search_paths`]), laid out for the
//! stage's objective:
//!
//! - a token batch (`mle`): `failed_share` of the rows failed paths, the
//!   rest successful ones, all trained on alike (the "pretraining" on
//!   diverse search traces of learning-from-failures' stage 1);
//! - a labelled batch (`sft`, `uft`): the same rows, marked D+ / D-
//!   (`failed_share = 0.5` is the paper's code: one D+ and one D- batch of
//!   equal size every step);
//! - a pair batch (`dpo`, `simpo`, `cpo`): `batch_size / 2` pairs (so a
//!   step runs as many rows as the others), each successful path of a
//!   problem paired with `rejected_per_chosen` failed paths of the same
//!   problem, drawn without replacement when it has enough (else with
//!   replacement), as the paper's `pref.py` does with 2.
//!
//! Rows are taken from problems in the order they are drawn, every path of
//! a problem before the next problem's, so a batch holds the paths of a few
//! problems the way a shuffled dataset of whole traces would. The RNG is
//! keyed by (run seed, stage, step): batches do not depend on resumes.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::data::{Batch, BatchKind, Example, LabelledBatch, PairBatch, TrainBatch};
use crate::model::rng_for;
use crate::tasks::Task;

/// Most problems drawn for one batch, per row, before giving up (a task
/// whose strategies rarely fail cannot fill a large `failed_share`).
const TRIES_PER_ROW: usize = 50;

/// The batch of step `step` of stage `si` from search paths.
#[allow(clippy::too_many_arguments)]
pub fn search_batch(
    task: &dyn Task,
    seed: u64,
    si: usize,
    step: u64,
    batch_size: usize,
    kind: BatchKind,
    failed_share: f64,
    rejected_per_chosen: usize,
) -> Result<TrainBatch> {
    let mut rng = rng_for(seed, &format!("search/{si}/{step}"));
    let tries = 16 + TRIES_PER_ROW * batch_size;
    match kind {
        BatchKind::Pairs => {
            let want = (batch_size / 2).max(1);
            let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
            for _ in 0..tries {
                let sp = task.search_paths(&mut rng)?;
                if sp.successes.is_empty() || sp.failures.is_empty() {
                    continue;
                }
                for good in &sp.successes {
                    let bad: Vec<&String> = if sp.failures.len() >= rejected_per_chosen {
                        sp.failures
                            .choose_multiple(&mut rng, rejected_per_chosen)
                            .collect()
                    } else {
                        (0..rejected_per_chosen)
                            .map(|_| &sp.failures[rng.gen_range(0..sp.failures.len())])
                            .collect()
                    };
                    for b in bad {
                        if chosen.len() < want {
                            chosen.push(Example::from_text(&sp.prompt, good)?);
                            rejected.push(Example::from_text(&sp.prompt, b)?);
                        }
                    }
                }
                if chosen.len() == want {
                    return Ok(TrainBatch::Pairs(PairBatch::new(&chosen, &rejected)));
                }
            }
            bail!(
                "{tries} search problems gave only {} of {want} (successful, failed) pairs",
                chosen.len()
            )
        }
        BatchKind::Tokens | BatchKind::Labelled => {
            let n_bad = (failed_share * batch_size as f64).round() as usize;
            let n_good = batch_size - n_bad;
            let (mut good, mut bad) = (Vec::new(), Vec::new());
            for _ in 0..tries {
                let sp = task.search_paths(&mut rng)?;
                for c in &sp.successes {
                    if good.len() < n_good {
                        good.push(Example::from_text(&sp.prompt, c)?);
                    }
                }
                for c in &sp.failures {
                    if bad.len() < n_bad {
                        bad.push(Example::from_text(&sp.prompt, c)?);
                    }
                }
                if good.len() == n_good && bad.len() == n_bad {
                    if kind == BatchKind::Labelled {
                        return Ok(TrainBatch::Labelled(LabelledBatch::new(&good, &bad)));
                    }
                    // the same rows, unlabelled; shuffled so that row order
                    // carries no label
                    let mut all: Vec<Example> = good.into_iter().chain(bad).collect();
                    all.shuffle(&mut rng);
                    return Ok(TrainBatch::Tokens(Batch::causal(&all)));
                }
            }
            bail!(
                "{tries} search problems gave {} of {n_good} successful and {} of {n_bad} failed paths (lower failed_share, or use a strategy mix that fails more often)",
                good.len(),
                bad.len()
            )
        }
        BatchKind::Transitions => bail!(
            "data source \"search\" gives token, labelled or pair batches; this objective trains on transition batches"
        ),
    }
}
