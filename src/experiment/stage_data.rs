//! Where a stage's training sequences come from (`[[stages]] data = ...`):
//! the task's generator, a dataset file, or rollouts of the current model.
//!
//! Every source draws the batch of step `k` of stage `i` from RNGs keyed by
//! (run seed, stage, step), so batches do not depend on how a run was
//! interrupted and resumed.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::dataset::{Dataset, LabelFilter};
use crate::data::vocab::{self, EOS};
use crate::data::{Batch, Example, TrainBatch};
use crate::eval::probe::grade;
use crate::eval::{generate_cached, DecoderConfig, Decoding, GraderKind};
use crate::model::decode::CachedDecoder;
use crate::model::{rng_for, Transformer};
use crate::tasks::Task;
use crate::train::Backend;

/// A stage's data source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSourceConfig {
    /// Fresh training problems from the experiment's task every step (its
    /// reference completions).
    Task {},
    /// A JSONL file of `{"prompt", "completion", "correct"?}` lines (the
    /// D+/D- files of `rewind data countdown`), visited in shuffled epochs.
    File {
        /// Path of the file, relative to the folder rewind runs in.
        path: PathBuf,
        /// Which lines: `all` (default), `correct` or `incorrect` (by their
        /// `correct` field).
        #[serde(default)]
        label: LabelFilter,
    },
    /// Completions the current model samples for fresh training prompts of
    /// the task (prompt + every action it emitted, `<bksp>` included, and
    /// `<eos>` if it finished), graded against the task.
    Rollouts {
        /// How completions are sampled. Default `{ kind = "sample" }`
        /// (temperature 1, one per prompt).
        #[serde(default = "default_rollout_decoder")]
        decoder: DecoderConfig,
        /// Which rollouts to train on: `all` (default), `correct` or
        /// `incorrect` by `grader` (rejection sampling when `correct`).
        #[serde(default)]
        keep: LabelFilter,
        /// `exact_match` (default) or `verifier`.
        #[serde(default)]
        grader: GraderKind,
    },
}

impl Default for DataSourceConfig {
    fn default() -> Self {
        Self::Task {}
    }
}

fn default_rollout_decoder() -> DecoderConfig {
    DecoderConfig::Sample {
        n: 1,
        temperature: 1.0,
        top_p: 1.0,
    }
}

impl DataSourceConfig {
    /// Whether this is the default (the task's generator).
    pub fn is_task(&self) -> bool {
        *self == Self::Task {}
    }

    /// Checks ranges; `at` is the key path (`stages[1].data`).
    pub fn validate(&self, at: &str) -> Result<()> {
        match self {
            Self::Task {} => Ok(()),
            Self::File { path, .. } => {
                if path.as_os_str().is_empty() {
                    bail!("{at}.path: give the dataset file");
                }
                Ok(())
            }
            Self::Rollouts { decoder, .. } => decoder.validate(&format!("{at}.decoder")),
        }
    }
}

/// Most prompt draws a `keep = correct|incorrect` rollout step makes
/// (each of `batch_size` prompts) before giving up.
const ROLLOUT_TRIES: usize = 8;

/// A data source ready to draw batches.
pub enum StageData {
    Task,
    File(Dataset),
    Rollouts {
        decoding: Decoding,
        keep: LabelFilter,
        grader: GraderKind,
    },
}

impl StageData {
    /// Opens the source of stage `si`; `max_len` is the model's.
    pub fn open(cfg: &DataSourceConfig, si: usize, max_len: usize) -> Result<Self> {
        Ok(match cfg {
            DataSourceConfig::Task {} => Self::Task,
            DataSourceConfig::File { path, label } => {
                let d = Dataset::read(path, *label)
                    .with_context(|| format!("stages[{si}].data.path"))?;
                if d.max_seq_len > max_len {
                    bail!(
                        "stages[{si}].data.path: {} has a sequence of {} tokens (with <bos> and <eos>); model.max_len = {max_len} is too short",
                        d.path.display(),
                        d.max_seq_len
                    );
                }
                Self::File(d)
            }
            DataSourceConfig::Rollouts {
                decoder,
                keep,
                grader,
            } => Self::Rollouts {
                decoding: decoder.decoding(),
                keep: *keep,
                grader: *grader,
            },
        })
    }

    /// The training batch of step `step` of stage `si`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch<D: Backend>(
        &self,
        task: &dyn Task,
        model: &Transformer<D>,
        seed: u64,
        si: usize,
        step: u64,
        batch_size: usize,
        max_new: usize,
    ) -> Result<TrainBatch> {
        let examples = match self {
            Self::Task => {
                let mut rng = rng_for(seed, &format!("batch/{si}/{step}"));
                (0..batch_size)
                    .map(|_| task.sample_train(&mut rng))
                    .collect::<Result<Vec<_>>>()?
            }
            Self::File(d) => d.batch_at(
                crate::model::sub_seed(seed, &format!("file/{si}")),
                step,
                batch_size,
            ),
            Self::Rollouts {
                decoding,
                keep,
                grader,
            } => {
                let mut rng = rng_for(seed, &format!("rollout/{si}/{step}"));
                // the model in decoding mode, once for every try
                let decoder = CachedDecoder::new(model);
                let mut kept = Vec::new();
                for _ in 0..ROLLOUT_TRIES {
                    let problems = (0..batch_size)
                        .map(|_| task.sample_problem(&mut rng))
                        .collect::<Result<Vec<_>>>()?;
                    let prompts = problems
                        .iter()
                        .map(|p| vocab::encode(&p.prompt))
                        .collect::<Result<Vec<_>, _>>()?;
                    let gens = generate_cached(&decoder, &prompts, max_new, *decoding, &mut rng);
                    for ((p, prompt), g) in problems.iter().zip(&prompts).zip(gens) {
                        let correct =
                            g.finished && grade(task, *grader, p, &vocab::decode(&g.output)?)?;
                        if kept.len() < batch_size && keep.keeps(Some(correct)) {
                            let mut ex = Example::prompt_completion(prompt, &g.actions);
                            if !g.finished {
                                ex.tokens.pop(); // it never emitted <eos>
                            }
                            debug_assert!(!g.finished || ex.tokens.last() == Some(&EOS));
                            kept.push(ex);
                        }
                    }
                    if *keep == LabelFilter::All || kept.len() == batch_size {
                        break;
                    }
                }
                if kept.is_empty() {
                    bail!(
                        "stage {si} step {step}: no rollout passed keep = {keep:?} in {ROLLOUT_TRIES} x {batch_size} tries (train longer first, or keep = \"all\")"
                    );
                }
                kept
            }
        };
        Ok(TrainBatch::Tokens(Batch::causal(&examples)))
    }
}
