//! Where a run's folder stands, read from the files in it: new, partial
//! (a checkpoint to resume from), failed (with the reason its last attempt
//! gave), finished, or finished with a checkpoint that is no longer usable.

use std::path::Path;

use crate::experiment::sweep::ERROR_FILE;
use crate::train::checkpoint;

/// The state of one run folder.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// Nothing there yet.
    New,
    /// A checkpoint to resume from, not finished.
    Partial,
    /// The last attempt failed; its reason's first line.
    Failed(String),
    /// summary.json is there and the checkpoint passes the cheap check
    /// ([`checkpoint::check_header`]).
    Finished,
    /// summary.json is there (its results stand), but the checkpoint is
    /// missing or damaged: what is wrong with it.
    FinishedDamaged(String),
}

impl RunState {
    /// One word for listings and counts.
    pub fn word(&self) -> &'static str {
        match self {
            RunState::New => "new",
            RunState::Partial => "partial",
            RunState::Failed(_) => "failed",
            RunState::Finished => "finished",
            RunState::FinishedDamaged(_) => "damaged",
        }
    }

    /// What to add after the word: the failure's reason, or what is wrong
    /// with the checkpoint followed by `retrain` (how to train it again).
    pub fn detail(&self, retrain: &str) -> Option<String> {
        match self {
            RunState::Failed(reason) => Some(reason.clone()),
            RunState::FinishedDamaged(what) => Some(format!("finished, but {what}; {retrain}")),
            _ => None,
        }
    }
}

/// The state of the run in `dir`.
pub fn run_state(dir: &Path) -> RunState {
    if dir.join("summary.json").exists() {
        return match checkpoint::check_header(&dir.join("checkpoint.safetensors")) {
            Ok(()) => RunState::Finished,
            Err(e) => RunState::FinishedDamaged(e.to_string()),
        };
    }
    if let Ok(reason) = std::fs::read_to_string(dir.join(ERROR_FILE)) {
        return RunState::Failed(reason.lines().next().unwrap_or("").to_string());
    }
    if dir.join("checkpoint.safetensors").exists() {
        RunState::Partial
    } else {
        RunState::New
    }
}
