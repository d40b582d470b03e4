//! Where a stage's training sequences come from (`[[stages]] data = ...`):
//! the task's generator, a dataset file, or rollouts of the current model.
//!
//! Every source draws the batch of step `k` of stage `i` from RNGs keyed by
//! (run seed, stage, step), so batches do not depend on how a run was
//! interrupted and resumed.
//!
//! A stage whose objective reads policy transitions (SequenceMatch) also
//! has a [`RolloutConfig`]: a buffer of the current model's rollouts on
//! fresh training prompts, refreshed every `every` steps, from which each
//! batch draws its policy rows. The buffer is a function of the model at
//! the refresh step; a checkpoint taken between refreshes is accompanied
//! by the buffer itself (`rollouts-<stage>-<step>.json` in the run folder),
//! so a resumed run continues with exactly the rollouts it had.
//!
//! Sequences are laid out as a [`TransitionBatch`] (one-pass `<bksp>`
//! layout, data and policy rows) when the objective trains on transitions,
//! when the data is noised, or when a sequence contains `<bksp>`; else as a
//! causal token [`Batch`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use rand::Rng;

use crate::data::backspace::ActionSeq;
use crate::data::dataset::{Dataset, LabelFilter};
use crate::data::noise::{noise, NoiseConfig};
use crate::data::vocab::{self, BKSP, EOS};
use crate::data::{Batch, BatchKind, Example, TrainBatch, TransitionBatch};
use crate::eval::decode::generate_cached;
use crate::eval::probe::grade;
use crate::eval::{DecoderConfig, Decoding, GraderKind};
use crate::experiment::search_batches::search_batch;
use crate::model::decode::CachedDecoder;
use crate::model::{rng_for, Transformer};
use crate::tasks::Task;
use crate::train::Backend;

/// A stage's data source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSourceConfig {
    /// Fresh training problems from the experiment's task every step (its
    /// reference completions), optionally noised with wrong tokens each
    /// undone by `<bksp>`: `noise = { kind = "random" | "ground_truth",
    /// p = 0.1 }` (see `data::noise`).
    Task {
        #[serde(default)]
        noise: NoiseConfig,
    },
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
    /// The successful and failed paths of the task's search strategies on
    /// fresh training problems (Countdown / Game of 24: the D+ / D- of
    /// learning from failures, see `experiment::search_batches`), as token
    /// rows (`mle`), labelled rows (`sft`, `uft`) or pairs (`dpo`, `simpo`,
    /// `cpo`).
    Search {
        /// Share of each batch's rows that are failed paths, in [0, 1)
        /// (the mixing ratio; ignored by pair batches, which hold one of
        /// each). Default 0.5 (the paper's code: equal D+ and D- batches).
        #[serde(default = "d_failed_share")]
        failed_share: f64,
        /// For pair batches: failed paths paired with each successful one,
        /// >= 1. Default 2 (the paper's `num_copy_positive`).
        #[serde(default = "d_rejected")]
        rejected_per_chosen: usize,
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
        Self::Task {
            noise: NoiseConfig::default(),
        }
    }
}

fn d_failed_share() -> f64 {
    0.5
}
fn d_rejected() -> usize {
    2
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
        *self == Self::default()
    }

    /// Checks ranges; `at` is the key path (`stages[1].data`).
    pub fn validate(&self, at: &str) -> Result<()> {
        match self {
            Self::Task { noise } => noise
                .validate(&format!("{at}.noise"))
                .map_err(anyhow::Error::msg),
            Self::File { path, .. } => {
                if path.as_os_str().is_empty() {
                    bail!("{at}.path: give the dataset file");
                }
                Ok(())
            }
            Self::Rollouts { decoder, .. } => decoder.validate_sampler(&format!("{at}.decoder")),
            Self::Search {
                failed_share,
                rejected_per_chosen,
            } => {
                if !(0.0..1.0).contains(failed_share) {
                    bail!("{at}.failed_share = {failed_share}: allowed range is [0, 1)");
                }
                if *rejected_per_chosen == 0 {
                    bail!("{at}.rejected_per_chosen = 0: must be at least 1");
                }
                Ok(())
            }
        }
    }
}

/// Most prompt draws a `keep = correct|incorrect` rollout step makes
/// (each of `batch_size` prompts) before giving up.
const ROLLOUT_TRIES: usize = 8;

/// `[[stages]] rollouts = { ... }`: the policy transitions of a
/// SequenceMatch stage (ignored by objectives that read none, e.g. `mle`,
/// so one sweep can compare both).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Rollouts in the buffer, each on a fresh training prompt, >= 1.
    /// Default 256.
    #[serde(default = "d_buffer")]
    pub buffer: usize,
    /// Refill the buffer from the current model every this many steps,
    /// >= 1. Default 50.
    #[serde(default = "d_every")]
    pub every: u64,
    /// Policy rows per training batch (drawn from the buffer), >= 1.
    /// Default 32.
    #[serde(default = "d_policy_rows")]
    pub batch_size: usize,
    /// How rollouts are sampled. Default `{ kind = "sample" }`
    /// (temperature 1).
    #[serde(default = "default_rollout_decoder")]
    pub decoder: DecoderConfig,
}

fn d_buffer() -> usize {
    256
}
fn d_every() -> u64 {
    50
}
fn d_policy_rows() -> usize {
    32
}

impl RolloutConfig {
    /// Checks ranges; `at` is the key path (`stages[1].rollouts`).
    pub fn validate(&self, at: &str) -> Result<()> {
        for (key, v) in [
            ("buffer", self.buffer as u64),
            ("every", self.every),
            ("batch_size", self.batch_size as u64),
        ] {
            if v == 0 {
                bail!("{at}.{key} = 0: must be at least 1");
            }
        }
        self.decoder.validate_sampler(&format!("{at}.decoder"))
    }
}

/// The rollouts of the current refresh interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutBuffer {
    /// The stage and the step in it the buffer was filled at.
    pub stage: usize,
    pub filled_at: u64,
    pub rollouts: Vec<ActionSeq>,
}

impl RolloutBuffer {
    fn file(dir: &Path, stage: usize, filled_at: u64) -> PathBuf {
        dir.join(format!("rollouts-{stage}-{filled_at}.json"))
    }

    /// Writes the buffer into run folder `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::atomic::write_atomic(
            &Self::file(dir, self.stage, self.filled_at),
            &serde_json::to_vec(self)?,
        )?;
        Ok(())
    }

    /// The buffer of stage `stage` filled at `filled_at`, saved in `dir`.
    pub fn load(dir: &Path, stage: usize, filled_at: u64) -> Result<Self> {
        let path = Self::file(dir, stage, filled_at);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "{}: the rollout buffer this checkpoint continues with is missing, so the run cannot resume exactly (delete the run folder to restart it)",
                path.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("{}", path.display()))
    }

    /// Removes every saved buffer of `dir` except `keep`.
    pub fn remove_others(dir: &Path, keep: Option<&Self>) -> Result<()> {
        let keep = keep.map(|b| Self::file(dir, b.stage, b.filled_at));
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("rollouts-")
                && name.ends_with(".json")
                && Some(&path) != keep.as_ref()
            {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// The buffer for step `step` of stage `si`: refilled from `model` when
    /// `step` starts a new interval (or nothing was filled yet).
    #[allow(clippy::too_many_arguments)]
    pub fn refresh<D: Backend>(
        current: Option<Self>,
        cfg: &RolloutConfig,
        task: &dyn Task,
        model: &Transformer<D>,
        seed: u64,
        si: usize,
        step: u64,
        max_new: usize,
    ) -> Result<(Self, bool)> {
        let start = step - step % cfg.every;
        if let Some(b) = current {
            if b.stage == si && b.filled_at == start {
                return Ok((b, false));
            }
        }
        let mut rng = rng_for(seed, &format!("policy/{si}/{start}"));
        let prompts = (0..cfg.buffer)
            .map(|_| Ok(vocab::encode(&task.sample_problem(&mut rng)?.prompt)?))
            .collect::<Result<Vec<_>>>()?;
        let decoder = CachedDecoder::new(model);
        let mut rollouts = Vec::with_capacity(cfg.buffer);
        for chunk in prompts.chunks(256) {
            let gens = generate_cached(&decoder, chunk, max_new, cfg.decoder.decoding(), &mut rng);
            for (p, g) in chunk.iter().zip(gens) {
                rollouts.push(ActionSeq::clean(p.clone(), g.actions, g.finished));
            }
        }
        Ok((
            Self {
                stage: si,
                filled_at: start,
                rollouts,
            },
            true,
        ))
    }

    /// The policy rows of step `step`: `n` rollouts drawn uniformly.
    pub fn draw(&self, seed: u64, si: usize, step: u64, n: usize) -> Vec<ActionSeq> {
        let mut rng = rng_for(seed, &format!("policy_rows/{si}/{step}"));
        (0..n)
            .map(|_| self.rollouts[rng.gen_range(0..self.rollouts.len())].clone())
            .collect()
    }

    /// Mean `<bksp>` actions per rollout, and the share that emitted `<eos>`.
    pub fn stats(&self) -> (f64, f64) {
        let n = self.rollouts.len().max(1) as f64;
        let bksp: usize = self
            .rollouts
            .iter()
            .map(|r| r.actions.iter().filter(|&&a| a == BKSP).count())
            .sum();
        let finished = self.rollouts.iter().filter(|r| r.finished).count();
        (bksp as f64 / n, finished as f64 / n)
    }
}

/// A data source ready to draw batches.
pub enum StageData {
    Task(NoiseConfig),
    File(Dataset),
    Search {
        failed_share: f64,
        rejected_per_chosen: usize,
    },
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
            DataSourceConfig::Task { noise } => Self::Task(*noise),
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
            DataSourceConfig::Search {
                failed_share,
                rejected_per_chosen,
            } => Self::Search {
                failed_share: *failed_share,
                rejected_per_chosen: *rejected_per_chosen,
            },
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

    /// The training batch of step `step` of stage `si`, for an objective
    /// that trains on `kind`; `policy` are the step's policy rows (empty
    /// unless the objective reads them).
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
        kind: BatchKind,
        policy: &[ActionSeq],
    ) -> Result<TrainBatch> {
        let examples = match self {
            Self::Task(cfg) if !cfg.is_none() || kind == BatchKind::Transitions => {
                let mut rng = rng_for(seed, &format!("batch/{si}/{step}"));
                let alphabet = task.answer_alphabet();
                let mut data = Vec::with_capacity(batch_size);
                for _ in 0..batch_size {
                    let p = task.sample_problem(&mut rng)?;
                    let (prompt, answer) =
                        (vocab::encode(&p.prompt)?, vocab::encode(&p.reference)?);
                    data.push(noise(&prompt, &answer, cfg, &alphabet, &mut rng));
                }
                return Ok(TrainBatch::Transitions(TransitionBatch::from_actions(
                    &data, policy,
                )));
            }
            Self::Task(_) => {
                let mut rng = rng_for(seed, &format!("batch/{si}/{step}"));
                (0..batch_size)
                    .map(|_| task.sample_train(&mut rng))
                    .collect::<Result<Vec<_>>>()?
            }
            Self::Search {
                failed_share,
                rejected_per_chosen,
            } => {
                return search_batch(
                    task,
                    seed,
                    si,
                    step,
                    batch_size,
                    kind,
                    *failed_share,
                    *rejected_per_chosen,
                )
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
                        "no rollout passed keep = {keep:?} in {ROLLOUT_TRIES} x {batch_size} tries (train longer first, or keep = \"all\")"
                    );
                }
                kept
            }
        };
        let has_bksp = examples.iter().any(|e| e.tokens.contains(&BKSP));
        if kind == BatchKind::Transitions || has_bksp || !policy.is_empty() {
            let data: Vec<ActionSeq> = examples.iter().map(action_seq).collect();
            return Ok(TrainBatch::Transitions(TransitionBatch::from_actions(
                &data, policy,
            )));
        }
        Ok(TrainBatch::Tokens(Batch::causal(&examples)))
    }
}

/// An example (`<bos> prompt completion [<eos>]`, loss from `loss_from`)
/// as an action sequence: the completion's tokens are the actions.
fn action_seq(e: &Example) -> ActionSeq {
    let finished = e.tokens.last() == Some(&EOS) && e.tokens.len() > e.loss_from;
    let end = e.tokens.len() - finished as usize;
    ActionSeq::clean(
        e.tokens[1..e.loss_from].to_vec(),
        e.tokens[e.loss_from..end].to_vec(),
        finished,
    )
}
