//! Where each run of a sweep stands, read from the results folder alone
//! (`rewind status`, `rewind run --dry-run`): no scheduler is asked, so it
//! works the same for local runs, shards copied together and Slurm jobs.
//!
//! A run is *running* while a process holds its lock file
//! ([`super::lockfile::RUN_LOCK`]), *finished* once it has `summary.json`
//! (*damaged* if its checkpoint then fails the cheap check
//! [`checkpoint::check_header`]: the results stand, the weights do not),
//! *failed* when its last attempt left a reason in
//! [`super::sweep::ERROR_FILE`], *partial* when it has a checkpoint or
//! metrics (a rerun resumes it) and *missing* when nothing is on disk.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::experiment::grid::{RunSpec, Sweep};
use crate::experiment::lockfile::{self, RUN_LOCK};
use crate::experiment::run::run_dir;
use crate::experiment::sweep::ERROR_FILE;
use crate::train::checkpoint;

/// Where one run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// `summary.json` is there and the checkpoint passes the cheap check.
    Finished,
    /// `summary.json` is there (its results stand), but the checkpoint is
    /// missing or damaged: what is wrong with it.
    Damaged { what: String },
    /// A process holds the run's lock: who (`pid 1234 on node7, Slurm job
    /// 5501_3`) and the last step in its metrics.csv.
    Running { holder: String, step: Option<u64> },
    /// Its last attempt failed; the first line of `error.txt`.
    Failed { reason: String },
    /// Started and stopped (killed, cancelled, preempted): the last step
    /// logged, and whether a checkpoint is there to resume from.
    Partial { step: Option<u64>, checkpoint: bool },
    /// Nothing on disk.
    Missing,
}

impl RunState {
    /// The state's name as printed (`finished`, `running`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            RunState::Finished => "finished",
            RunState::Damaged { .. } => "damaged",
            RunState::Running { .. } => "running",
            RunState::Failed { .. } => "failed",
            RunState::Partial { .. } => "partial",
            RunState::Missing => "missing",
        }
    }
}

/// Where the run in folder `dir` stands.
pub fn run_state(dir: &Path) -> RunState {
    let metrics = dir.join("metrics.csv");
    if let Some(holder) = lockfile::holder(&dir.join(RUN_LOCK)) {
        return RunState::Running {
            holder,
            step: last_step(&metrics),
        };
    }
    if dir.join("summary.json").exists() {
        return match checkpoint::check_header(&dir.join("checkpoint.safetensors")) {
            Ok(()) => RunState::Finished,
            Err(e) => RunState::Damaged {
                what: e.to_string(),
            },
        };
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(ERROR_FILE)) {
        return RunState::Failed {
            reason: text.lines().next().unwrap_or("").to_string(),
        };
    }
    let checkpoint = dir.join("checkpoint.safetensors").exists();
    if checkpoint || metrics.exists() {
        return RunState::Partial {
            step: last_step(&metrics),
            checkpoint,
        };
    }
    RunState::Missing
}

/// The global step of the last complete row of a metrics.csv, read from
/// its last few kilobytes only (a long run's file has many thousand rows).
pub fn last_step(metrics_csv: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(metrics_csv).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // a row is complete once its newline is written; the column after
    // `stage` is the step (see crate::metrics); the header does not parse
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .next_back()
}

/// Every selected run with its state, in grid order.
pub struct Status<'a> {
    pub rows: Vec<(&'a RunSpec, PathBuf, RunState)>,
}

impl<'a> Status<'a> {
    /// Reads the state of each of `runs` under `root`.
    pub fn read(runs: &[&'a RunSpec], root: &Path) -> Self {
        Status {
            rows: runs
                .iter()
                .map(|&r| {
                    let dir = run_dir(r, root);
                    let state = run_state(&dir);
                    (r, dir, state)
                })
                .collect(),
        }
    }

    /// How many runs are in each state, e.g. `3 finished, 1 running`, in
    /// the order finished, damaged, running, partial, failed, missing.
    pub fn counts(&self) -> String {
        let mut n: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, s) in &self.rows {
            *n.entry(s.name()).or_default() += 1;
        }
        [
            "finished", "damaged", "running", "partial", "failed", "missing",
        ]
        .iter()
        .filter_map(|k| n.get(k).map(|v| format!("{v} {k}")))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// One line per run: index, state, step (of the run's total), run
    /// folder, and who holds it or why it failed.
    pub fn table(&self, missing_name: &str) -> String {
        let mut out = String::new();
        for (spec, dir, state) in &self.rows {
            let total: u64 = spec.cfg.stages.iter().map(|s| s.steps).sum();
            let step = |s: &Option<u64>| s.map_or(String::new(), |s| format!("{s}/{total}"));
            let (steps, note) = match state {
                RunState::Running { holder, step: s } => (step(s), format!("  ({holder})")),
                RunState::Failed { reason } => (String::new(), format!("  ({reason})")),
                RunState::Damaged { what } => (
                    String::new(),
                    format!("  (finished, but {what}; delete the run's folder to train it again)"),
                ),
                RunState::Partial {
                    step: s,
                    checkpoint,
                } => (
                    step(s),
                    match checkpoint {
                        true => String::new(),
                        false => "  (no checkpoint yet: a rerun starts it over)".into(),
                    },
                ),
                RunState::Finished | RunState::Missing => (String::new(), String::new()),
            };
            let name = match state {
                RunState::Missing => missing_name,
                s => s.name(),
            };
            out.push_str(&format!(
                "{:>4}  {name:<9} {steps:>11}  {}{note}\n",
                spec.index,
                dir.display()
            ));
        }
        out
    }
}

/// `rewind status`: every run of the grid with its state, the counts, and
/// the sweep's summary.csv and Slurm submission when there are any.
pub fn status_text(sweep: &Sweep, root: &Path) -> String {
    let runs: Vec<&RunSpec> = sweep.runs.iter().collect();
    let st = Status::read(&runs, root);
    let dir = root.join(&sweep.name);
    let mut out = format!(
        "{}: {} run(s) in {}\n",
        sweep.name,
        sweep.runs.len(),
        dir.display()
    );
    out.push_str(&st.table("missing"));
    out.push_str(&st.counts());
    out.push('\n');
    let csv = dir.join("summary.csv");
    if csv.exists() {
        out.push_str(&format!(
            "summary: {} (written by the last process that finished or merged)\n",
            csv.display()
        ));
    }
    if let Ok(stale) = crate::experiment::sweep::stale_runs(sweep, root) {
        if !stale.is_empty() {
            out.push_str(&format!(
                "note: {} other folder(s) in {} hold runs of a different config (not in this grid)\n",
                stale.len(),
                dir.display()
            ));
        }
    }
    if let Some(line) = crate::experiment::slurm::last_submission(&dir) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}
