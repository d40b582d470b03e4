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

use anyhow::Result;
use dfdx::prelude::*;
use thiserror::Error;

use crate::experiment::config::ExperimentConfig;
use crate::experiment::provenance::git_commit;
use crate::model::Transformer;
use crate::train::checkpoint::{self, Checkpoint, CheckpointError};
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

/// A run's checkpoint that cannot be resumed from, with what to do about
/// it: the run's earlier steps are lost with it, so the way on is to train
/// the run again.
#[derive(Debug, Error)]
#[error("{cause}; the run cannot resume from it: {retrain}")]
pub struct UnusableCheckpoint {
    /// What is wrong with the file (it names the file).
    pub cause: CheckpointError,
    /// How to train the run again, e.g. "rerun `rewind run CONFIG --fresh`
    /// (or delete <run folder>)"; [`crate::experiment::run::run`] words it
    /// for a single run or a sweep's.
    pub retrain: String,
}

/// Loads the checkpoint at `path` into `model`; returns the position and,
/// mid-stage, the stage's optimiser. A damaged checkpoint, or one of
/// another model, is an [`UnusableCheckpoint`] error.
pub fn load<D: Device<f32>>(
    path: &Path,
    cfg: &ExperimentConfig,
    model: &mut Transformer<D>,
) -> Result<(Position, Option<AdamW<D>>)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let unusable = |cause| UnusableCheckpoint {
        cause,
        retrain: format!(
            "to train it again, rerun `rewind run` with --fresh (or delete {})",
            dir.display()
        ),
    };
    let ck = Checkpoint::read(path).map_err(unusable)?;
    // the model first: a checkpoint of another model is named as such, not
    // by whatever else of its metadata differs
    ck.check_model(&model.cfg).map_err(unusable)?;
    let pos = (|| {
        Ok::<_, CheckpointError>(Position {
            stage: meta_value(&ck, "stage")?,
            step_in_stage: meta_value(&ck, "step_in_stage")?,
            elapsed_s: meta_value(&ck, "elapsed_s")?,
            wall_s: meta_value(&ck, "wall_s")?,
        })
    })()
    .map_err(unusable)?;
    if pos.stage > cfg.stages.len()
        || (pos.stage < cfg.stages.len() && pos.step_in_stage >= cfg.stages[pos.stage].steps)
    {
        return Err(unusable(CheckpointError::Damaged {
            path: path.to_path_buf(),
            what: format!(
                "its position (stage index {} with {} of its steps done) lies outside the config's stages",
                pos.stage, pos.step_in_stage
            ),
        })
        .into());
    }
    if pos.stage < cfg.stages.len() && pos.step_in_stage > 0 {
        let mut opt = AdamW::new(cfg.stages[pos.stage].optimizer.clone(), &model.params());
        ck.load_into(model, Some(&mut opt)).map_err(unusable)?;
        Ok((pos, Some(opt)))
    } else {
        ck.load_into(model, None).map_err(unusable)?;
        Ok((pos, None))
    }
}

/// The metadata entry `key` of `ck`, parsed.
fn meta_value<T: std::str::FromStr>(ck: &Checkpoint, key: &str) -> Result<T, CheckpointError> {
    ck.meta
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CheckpointError::Damaged {
            path: ck.path().to_path_buf(),
            what: format!("no readable `{key}` in the metadata"),
        })
}
