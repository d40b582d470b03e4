//! Where a run stands, and the checkpoint that records it.
//!
//! A run resumes bit for bit because (i) each step's batch, dropout masks
//! and rollouts come from RNGs keyed by (run seed, stage, step), (ii) the
//! checkpoint holds the weights and, mid-stage, the stage's AdamW moments,
//! and (iii) `metrics.csv` is cut back to the checkpoint's step. At a stage
//! boundary (step 0 of a stage) the checkpoint holds no optimiser state:
//! the next stage starts a fresh AdamW, resumed or not.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use dfdx::prelude::*;

use crate::experiment::config::ExperimentConfig;
use crate::experiment::provenance::git_commit;
use crate::model::Transformer;
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::optim::AdamW;

/// Where a run stands (stored in checkpoint metadata).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    /// Index of the stage in progress (== stages.len() when all are done).
    pub stage: usize,
    /// Steps completed in that stage.
    pub step_in_stage: u64,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// Whole-run wall time so far, seconds.
    pub wall_s: f64,
}

/// Global step (counted across stages) of step `step_in_stage` of `stage`.
pub fn global_step(cfg: &ExperimentConfig, stage: usize, step_in_stage: u64) -> u64 {
    cfg.stages[..stage].iter().map(|s| s.steps).sum::<u64>() + step_in_stage
}

impl Position {
    /// The global step this position is at.
    pub fn global(&self, cfg: &ExperimentConfig) -> u64 {
        global_step(cfg, self.stage.min(cfg.stages.len()), 0) + self.step_in_stage
    }
}

/// Saves `model` at `pos` (and `opt`, mid-stage) to `path`, atomically.
pub fn save<D: Device<f32>>(
    path: &Path,
    cfg: &ExperimentConfig,
    model: &Transformer<D>,
    opt: &AdamW<D>,
    pos: Position,
) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("stage".into(), pos.stage.to_string());
    meta.insert("step_in_stage".into(), pos.step_in_stage.to_string());
    meta.insert("global_step".into(), pos.global(cfg).to_string());
    meta.insert("elapsed_s".into(), pos.elapsed_s.to_string());
    meta.insert("wall_s".into(), pos.wall_s.to_string());
    meta.insert("config".into(), cfg.to_toml()?);
    meta.insert("git_commit".into(), git_commit());
    meta.insert("rewind_version".into(), env!("CARGO_PKG_VERSION").into());
    // At a stage boundary the optimiser belongs to the stage that just
    // ended, and the next stage starts a fresh one: saving its moments
    // would let a resumed run continue with them.
    let opt = (pos.step_in_stage > 0).then_some(opt);
    checkpoint::save(path, model, opt, &meta)
}

/// Loads the checkpoint at `path` into `model`; returns the position and,
/// mid-stage, the stage's optimiser.
pub fn load<D: Device<f32>>(
    path: &Path,
    cfg: &ExperimentConfig,
    model: &mut Transformer<D>,
) -> Result<(Position, Option<AdamW<D>>)> {
    let ck = Checkpoint::read(path)?;
    let get = |k: &str| {
        ck.meta
            .get(k)
            .cloned()
            .with_context(|| format!("{}: no `{k}` in metadata", path.display()))
    };
    let pos = Position {
        stage: get("stage")?.parse()?,
        step_in_stage: get("step_in_stage")?.parse()?,
        elapsed_s: get("elapsed_s")?.parse()?,
        wall_s: get("wall_s")?.parse()?,
    };
    if pos.stage < cfg.stages.len() && pos.step_in_stage > 0 {
        let mut opt = AdamW::new(cfg.stages[pos.stage].optimizer.clone(), &model.params());
        ck.load_into(model, Some(&mut opt))?;
        Ok((pos, Some(opt)))
    } else {
        ck.load_into(model, None)?;
        Ok((pos, None))
    }
}
