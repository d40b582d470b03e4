//! Typed experiment configs read from TOML.
//!
//! Every struct denies unknown keys, so a typo is an error that names the
//! key and the file rather than a silently ignored setting. Doc comments on
//! the fields are the reference for every knob (meaning, range, default).
//!
//! ```toml
//! [experiment]
//! name = "quickstart"
//! kind = "arithmetic"
//! seed = 0
//!
//! [model]          # rewind::model::ModelConfig
//! d_model = 128
//!
//! [data]           # the task, here rewind::tasks::arithmetic::ArithmeticConfig
//! base = 10
//!
//! [[stages]]       # one or more training stages, run in order
//! name = "pretrain"
//! objective = { kind = "mle" }
//! steps = 1500
//! lr = 1e-3
//!
//! [eval]
//! splits = ["val", "test", "long"]
//! ```

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::BatchKind;
use crate::eval::ProbeConfig;
pub use crate::experiment::stage_data::{DataSourceConfig, RolloutConfig};
use crate::model::ModelConfig;
pub use crate::objectives::ObjectiveConfig;
use crate::train::optim::AdamWConfig;

/// `[experiment]`: identity of the experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Name; results go to `results/<name>/`. Letters, digits, `-`, `_`.
    pub name: String,
    /// Experiment family: a name registered in `rewind::tasks::registry::KINDS`
    /// (`rewind list` shows them), e.g. `arithmetic`.
    pub kind: String,
    /// What the experiment tests, shown by `rewind list`. Default "".
    #[serde(default)]
    pub description: String,
    /// Run seed: drives data, initialisation, dropout and sampling through
    /// independent named sub-streams. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Seeds to sweep over (shorthand for a `[sweep]` axis
    /// `"experiment.seed"`); overrides `seed`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
}

/// `[[stages]]`: one training stage. A run's stages execute in order, each
/// starting from the previous stage's weights (with a fresh optimiser).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage name used in metrics.csv and plots. Default `stage<i>`.
    #[serde(default)]
    pub name: String,
    /// The loss, e.g. `{ kind = "mle" }`.
    pub objective: ObjectiveConfig,
    /// Where the stage's training sequences come from: `{ source = "task" }`
    /// (default: the experiment task's generator), `{ source = "file",
    /// path = "data/x/train_pos.jsonl" }` (a JSONL dataset of prompt /
    /// completion lines, e.g. from `rewind data countdown`), or
    /// `{ source = "rollouts" }` (completions sampled from the current model).
    #[serde(default)]
    pub data: DataSourceConfig,
    /// Rollouts of the current model that supply the policy transitions of
    /// a `sequencematch` objective: `{ buffer = 256, every = 50, batch_size
    /// = 32, decoder = { kind = "sample" } }`. Ignored by objectives that
    /// read no policy transitions (`mle`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts: Option<RolloutConfig>,
    /// Optimiser updates in this stage, >= 1.
    pub steps: u64,
    /// Sequences per update, >= 1. Default 64.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Peak learning rate, > 0. Default 1e-3.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Final learning rate of the cosine decay, in [0, lr]. Default 1e-4.
    #[serde(default = "d_min_lr")]
    pub min_lr: f64,
    /// Linear warm-up steps, <= steps. Default min(100, steps / 10); the
    /// resolved value is written to the run's config.toml.
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    /// Clip the global gradient norm to this value; 0 disables. Default 1.0.
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// AdamW settings (`beta1`, `beta2`, `eps`, `weight_decay`).
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Evaluate on the validation split (loss and exact match) every this
    /// many steps, and at the end; 0 = only at the end. Default 250.
    #[serde(default = "d_eval_every")]
    pub eval_every: u64,
    /// Save a checkpoint every this many steps (and at the end of the
    /// stage), for resume; 0 = only at the end. Default 250.
    #[serde(default = "d_eval_every")]
    pub checkpoint_every: u64,
}

impl StageConfig {
    /// Warm-up steps (the default is resolved when the config is read).
    pub fn warmup(&self) -> u64 {
        self.warmup_steps.unwrap_or((self.steps / 10).min(100))
    }
}

fn d_batch() -> usize {
    64
}
fn d_lr() -> f64 {
    1e-3
}
fn d_min_lr() -> f64 {
    1e-4
}
fn d_clip() -> f64 {
    1.0
}
fn d_eval_every() -> u64 {
    250
}

/// `[eval]`: what is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Splits evaluated after every stage (for `arithmetic`: `val`, `test`,
    /// `long`). Only the first split of the task (`val`) is looked at during
    /// training. Default: every split of the task.
    pub splits: Vec<String>,
    /// Questions decoded together. Default 250.
    pub batch_size: usize,
    /// 0 = greedy decoding; > 0 = sample at this temperature. Default 0.
    pub temperature: f32,
    /// Validation questions used for the periodic evaluation during
    /// training (the first N of the first probe's split; the evaluation
    /// after each stage uses all). Default 200.
    pub val_during_training: usize,
    /// Probes run after every stage, each a split, a decoder and a grader
    /// (`[[eval.probes]]`, see `rewind::eval::probe`). Default: one greedy
    /// exact-match probe per entry of `splits` (sampled at `temperature`
    /// when it is > 0). When probes are given, `splits` is not used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeConfig>,
}

impl EvalConfig {
    /// The probes that run: `probes`, or one per split.
    pub fn effective_probes(&self) -> Vec<ProbeConfig> {
        if !self.probes.is_empty() {
            return self.probes.clone();
        }
        self.splits
            .iter()
            .map(|s| ProbeConfig::greedy(s, self.temperature))
            .collect()
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            splits: vec![],
            batch_size: 250,
            temperature: 0.0,
            val_during_training: 200,
            probes: vec![],
        }
    }
}

/// A whole experiment config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub experiment: ExperimentSection,
    #[serde(default)]
    pub model: ModelConfig,
    /// The task's settings; their keys depend on `experiment.kind` (for
    /// `arithmetic`: `rewind::tasks::arithmetic::ArithmeticConfig`).
    /// Defaults are filled in when the config is read.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub data: toml::Table,
    pub stages: Vec<StageConfig>,
    #[serde(default)]
    pub eval: EvalConfig,
    /// Grid axes: dotted config paths mapped to lists of values, e.g.
    /// `"stages.0.lr" = [1e-3, 3e-4]`. The runs are the product of all axes
    /// (and `experiment.seeds`). Empty for a single run.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    #[schemars(with = "std::collections::BTreeMap<String, Vec<serde_json::Value>>")]
    pub sweep: toml::Table,
}

impl ExperimentConfig {
    /// Reads, parses and validates a config; every error names the file,
    /// and the key where there is one.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::text_file::read_text(path).context("cannot read the config file")?;
        Self::from_toml(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.resolve()?;
        Ok(cfg)
    }

    /// Fills every default (data defaults from the kind, stage names,
    /// warm-up, eval splits) and validates. Idempotent.
    pub fn resolve(&mut self) -> Result<()> {
        let kind = crate::tasks::registry::kind(&self.experiment.kind)?;
        self.data = (kind.resolve_data)(&self.data)?;
        if self.eval.splits.is_empty() && self.eval.probes.is_empty() {
            self.eval.splits = kind.splits.iter().map(|s| s.to_string()).collect();
        }
        for p in &mut self.eval.probes {
            p.resolve();
        }
        for (i, s) in self.stages.iter_mut().enumerate() {
            if s.name.is_empty() {
                s.name = format!("stage{i}");
            }
            s.warmup_steps.get_or_insert((s.steps / 10).min(100));
        }
        self.validate()
    }

    /// The resolved config as TOML (what `config.toml` in a run holds).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// Checks every range; errors name the key (`stages[1].lr`, ...).
    pub fn validate(&self) -> Result<()> {
        let name = &self.experiment.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("experiment.name = {name:?}: use letters, digits, '-' and '_' (it names a results folder)");
        }
        self.model.validate().map_err(anyhow::Error::msg)?;
        let kind = crate::tasks::registry::kind(&self.experiment.kind)?;
        for (i, s) in self.eval.splits.iter().enumerate() {
            if self.eval.splits[..i].contains(s) {
                bail!("eval.splits: {s:?} is given twice; list each split once");
            }
            if !kind.splits.contains(&s.as_str()) {
                bail!(
                    "eval.splits: unknown split {s:?} (allowed for {}: {})",
                    kind.name,
                    kind.splits.join(", ")
                );
            }
        }
        if !self.eval.splits.is_empty() && !self.eval.probes.is_empty() {
            bail!(
                "eval: give `splits` or `[[eval.probes]]`, not both (probes name their own splits)"
            );
        }
        if self.eval.splits.is_empty() && self.eval.probes.is_empty() {
            bail!("eval.splits: at least one split (or one [[eval.probes]]) is required");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.eval.probes.iter().enumerate() {
            let at = format!("eval.probes[{i}]");
            if !kind.splits.contains(&p.split.as_str()) {
                bail!(
                    "{at}.split = {:?}: unknown split (allowed for {}: {})",
                    p.split,
                    kind.name,
                    kind.splits.join(", ")
                );
            }
            p.validate(&at)?;
            if !names.insert(p.name.clone()) {
                bail!("{at}.name = {:?}: two probes share this name", p.name);
            }
        }
        if matches!(&self.experiment.seeds, Some(s) if s.is_empty()) {
            bail!("experiment.seeds = []: give at least one seed, or remove the key");
        }
        if self.stages.is_empty() {
            bail!("stages: at least one [[stages]] table is required");
        }
        for (i, s) in self.stages.iter().enumerate() {
            let k = |f: &str| format!("stages[{i}].{f}");
            if s.steps == 0 {
                bail!("{} = 0: must be at least 1", k("steps"));
            }
            if s.batch_size == 0 {
                bail!("{} = 0: must be at least 1", k("batch_size"));
            }
            if !(s.lr > 0.0 && s.lr.is_finite()) {
                bail!("{} = {}: must be a positive number", k("lr"), s.lr);
            }
            if !(s.min_lr >= 0.0 && s.min_lr <= s.lr) {
                bail!(
                    "{} = {}: allowed range is [0, lr = {}]",
                    k("min_lr"),
                    s.min_lr,
                    s.lr
                );
            }
            let warmup = s.warmup();
            if warmup > s.steps {
                bail!(
                    "{} = {warmup}: must not exceed steps = {}",
                    k("warmup_steps"),
                    s.steps
                );
            }
            if s.grad_clip.is_nan() || s.grad_clip < 0.0 {
                bail!(
                    "{} = {}: must be >= 0 (0 disables clipping)",
                    k("grad_clip"),
                    s.grad_clip
                );
            }
            s.data.validate(&k("data"))?;
            s.objective
                .validate(&k("objective"))
                .map_err(anyhow::Error::msg)?;
            if let Some(r) = &s.rollouts {
                r.validate(&k("rollouts"))?;
            }
            let kind = s.objective.build().batch_kind();
            let labels = matches!(s.data, DataSourceConfig::Search { .. });
            if matches!(kind, BatchKind::Labelled | BatchKind::Pairs)
                && !labels
                && !matches!(s.objective, ObjectiveConfig::Sft {})
            {
                bail!(
                    "{}: this objective trains on {}es of successful and failed paths; give {} = {{ source = \"search\" }}",
                    k("objective"),
                    kind,
                    k("data")
                );
            }
            let o = &s.optimizer;
            if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
                bail!("{}: beta1 and beta2 must be in [0, 1)", k("optimizer"));
            }
            if o.eps.is_nan() || o.eps <= 0.0 || o.weight_decay.is_nan() || o.weight_decay < 0.0 {
                bail!("{}: eps must be > 0 and weight_decay >= 0", k("optimizer"));
            }
        }
        if self.eval.batch_size == 0 {
            bail!("eval.batch_size = 0: must be at least 1");
        }
        if self.eval.temperature.is_nan() || self.eval.temperature < 0.0 {
            bail!(
                "eval.temperature = {}: must be >= 0 (0 = greedy)",
                self.eval.temperature
            );
        }
        Ok(())
    }
}
