//! Sharing a sweep's first stage between the runs that train it alike.
//!
//! In a two-stage sweep (stage 1 on search paths, stage 2 fine-tuning at
//! several learning rates and mixing ratios) most runs differ only in a
//! later stage, so their first stages are the same computation. The first
//! run to reach the end of stage 1 publishes its boundary checkpoint and
//! metrics under `<results>/<experiment>/_shared/<key>/`; every other run
//! with the same key copies them into its own folder and resumes from
//! there. Resuming is bit-for-bit, so a run that adopts a shared stage 1
//! ends with exactly the numbers it would have trained itself.
//!
//! The key is a hash of the run's resolved config with the later stages
//! removed: model, data, seed, evaluation probes and the first stage all
//! enter it. A file lock (`_shared/<key>.lock`) makes a second run with the
//! same key wait for the first instead of training the same stage beside
//! it; the lock dies with its process, so a killed leader hands the work
//! to the next waiter. The stage-1 timings in an adopting run's
//! metrics.csv are the leader's.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use crate::experiment::config::ExperimentConfig;

/// The files of a stage boundary that a run's folder needs to resume there,
/// in the order they are copied into it: the checkpoint last, because its
/// presence is what makes a run resume. A run killed between the two
/// copies then has a metrics.csv but no checkpoint, and starts over (and
/// adopts again); the other order left a checkpoint at the boundary with no
/// metrics behind it, which resume rightly refuses (found by
/// `tests/suite/fault_campaign.rs`).
const FILES: [&str; 2] = ["metrics.csv", "checkpoint.safetensors"];

/// The folder of shared stages under a results root.
pub const SHARED_DIR: &str = "_shared";

/// The key of `cfg`'s first stage (None: a single-stage config has nothing
/// to share).
pub fn first_stage_key(cfg: &ExperimentConfig) -> Result<Option<String>> {
    if cfg.stages.len() < 2 {
        return Ok(None);
    }
    let mut first = cfg.clone();
    first.stages.truncate(1);
    // the sweep table and description do not change what stage 1 computes
    first.sweep = Default::default();
    first.experiment.seeds = None;
    first.experiment.description = String::new();
    let hash = Sha256::digest(first.to_toml()?.as_bytes());
    Ok(Some(
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect(),
    ))
}

/// A run's handle on its shared first stage.
pub struct SharedStage {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Held while this run trains the stage for the others.
    lock: Option<File>,
}

impl SharedStage {
    /// The shared stage of `cfg` under `root/<experiment>/_shared`, or None
    /// for a single-stage config.
    pub fn of(cfg: &ExperimentConfig, root: &Path) -> Result<Option<Self>> {
        let Some(key) = first_stage_key(cfg)? else {
            return Ok(None);
        };
        let base = root.join(&cfg.experiment.name).join(SHARED_DIR);
        Ok(Some(SharedStage {
            dir: base.join(&key),
            lock_path: base.join(format!("{key}.lock")),
            lock: None,
        }))
    }

    fn published(&self) -> bool {
        FILES.iter().all(|f| self.dir.join(f).exists())
    }

    fn acquire(&mut self) -> Result<()> {
        if self.lock.is_none() {
            if let Some(parent) = self.lock_path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.lock_path)
                .with_context(|| format!("opening {}", self.lock_path.display()))?;
            f.lock()
                .with_context(|| format!("locking {}", self.lock_path.display()))?;
            self.lock = Some(f);
        }
        Ok(())
    }

    /// For a run with no checkpoint of its own: waits while another run
    /// trains the stage, then copies the published boundary into `run_dir`
    /// and returns true; or, when nothing is published, keeps the lock
    /// (this run trains the stage and publishes it) and returns false.
    pub fn adopt_or_lead(&mut self, run_dir: &Path) -> Result<bool> {
        self.acquire()?;
        if !self.published() {
            return Ok(false);
        }
        for f in FILES {
            let bytes = std::fs::read(self.dir.join(f))
                .with_context(|| format!("reading {}", self.dir.join(f).display()))?;
            write_atomic(&run_dir.join(f), &bytes)?;
        }
        self.lock = None;
        Ok(true)
    }

    /// Publishes the boundary checkpoint in `run_dir` (just saved at the
    /// end of the first stage) unless another run already did, then lets
    /// the waiting runs go.
    pub fn publish(&mut self, run_dir: &Path) -> Result<()> {
        self.acquire()?;
        if !self.published() {
            let parent = self.dir.parent().unwrap_or(Path::new("."));
            let name = self
                .dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("stage");
            // a name of its own (the lock keeps other runs out, but a
            // folder of another machine sharing the results tree may not
            // honour it), removed on any error so a full disk is freed
            crate::atomic::remove_stale_temps(parent, name);
            let tmp = crate::atomic::temp_path(parent, name);
            let copied = copy_files(run_dir, &tmp).and_then(|()| {
                // a half-written folder is never mistaken for a published one
                std::fs::rename(&tmp, &self.dir)
                    .with_context(|| format!("publishing {}", self.dir.display()))
            });
            if let Err(e) = copied {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        self.lock = None;
        Ok(())
    }
}

/// Copies [`FILES`] from `run_dir` into a new folder `to`, each synced to
/// disk (the rename that publishes them must not outrun their data).
fn copy_files(run_dir: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for f in FILES {
        std::fs::copy(run_dir.join(f), to.join(f))
            .with_context(|| format!("copying {} to {}", f, to.display()))?;
        File::open(to.join(f))
            .and_then(|c| c.sync_all())
            .with_context(|| format!("syncing {}", to.join(f).display()))?;
    }
    Ok(())
}
