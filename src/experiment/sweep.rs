//! Sweeps: a config's `[sweep]` axes expanded into a grid of runs with
//! stable ids, run (resumably, in parallel, sharded) and summarised.
//!
//! ```toml
//! [experiment]
//! seeds = [0, 1, 2]                 # shorthand for the axis "experiment.seed"
//!
//! [sweep]
//! "stages.0.lr" = [1e-3, 3e-4]      # any setting, by its dotted path
//! "data.signed" = [false, true]     # (array elements by index: stages.0)
//! ```
//!
//! The runs are the product of the axes, axes sorted by path with the seed
//! axis last (fastest-varying). A run's id is a readable label plus a hash
//! of its fully resolved config, e.g. `lr=0.001_signed=false_seed=0-3fa2b1c0de`,
//! so the same run is recognised across invocations, machines and key
//! orders, and a changed config never reuses old results.
//!
//! `results/<name>/summary.csv` has one row per finished run; columns:
//! `run_id, index, axis:<path>... , seed, final:<split>..., after:<stage>:<split>...,
//! backspaces:<split>..., fix_rate:<split>..., seconds_per_problem:<split>..., val_loss, diverged_at_step, wall_s, ms_per_step, tokens_per_s, num_params, git_commit, rewind_version`
//! (`final:` = exact match after the last stage; `after:` = after each stage,
//! the forgetting table); `backspaces:` and `fix_rate:` after the last stage (`<bksp>` per answer; share of deletions that
//! removed a wrong token, empty without deletions); `seconds_per_problem:`
//! the probe's wall time per problem after the last stage; `diverged_at_step`
//! the first step whose loss was not finite (empty for a run that stayed
//! finite; such a run's later `final:` and `after:` cells are empty).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub use crate::experiment::grid::{
    expand, parse_shard, plan, run_id, shard, value_text, Axis, Grid, RunSpec, Sweep,
};
use crate::experiment::lockfile::{self, SUMMARY_LOCK};
use crate::experiment::run::{run, run_dir, RunBusy, RunOptions};
use crate::experiment::shared_stage::{first_stage_key, SHARED_DIR};
use crate::experiment::summary::{read_summary, Summary, BACKSPACE_METRICS, TIMING_METRICS};

/// The file in a run's folder that holds why its last attempt failed
/// (removed when a later attempt succeeds).
pub const ERROR_FILE: &str = "error.txt";

/// How a sweep is run.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    pub results_root: PathBuf,
    /// Redo runs even if finished.
    pub fresh: bool,
    /// Runs trained at the same time (threads); >= 1.
    pub jobs: usize,
    /// Only this shard `(i, n)` of the grid.
    pub shard: Option<(usize, usize)>,
    pub quiet: bool,
    /// The config file of the sweep, named in errors about its settings.
    pub config_path: Option<PathBuf>,
}

/// What a sweep invocation did.
#[derive(Debug)]
pub struct SweepReport {
    /// Runs of this invocation (after sharding) that are finished.
    pub finished: usize,
    /// Runs of this invocation.
    pub selected: usize,
    /// Runs that failed, with their errors.
    pub failed: Vec<(String, String)>,
    /// The summary.csv written (covers every finished run of the grid found on disk).
    pub summary_csv: PathBuf,
    /// Run folders under results/<name>/ that belong to no run of this grid.
    pub stale: Vec<String>,
    /// Runs of this invocation that diverged, with the step where a loss
    /// first was not finite (`Summary::diverged_at_step`).
    pub diverged: Vec<(String, u64)>,
    /// Runs another process was training when this invocation reached them
    /// (run id, who held it); this one waited for them at the end.
    pub waited_for: Vec<(String, String)>,
}

/// Runs (or resumes) the selected runs of `sweep`, `jobs` at a time, then
/// writes summary.csv.
///
/// A run that another process is training (its lock is held: another
/// shard's job, a requeued task, a second `rewind run` of the same config)
/// is put aside, and once every other run is done this invocation waits
/// for it: so when this returns, every selected run is finished or failed,
/// whoever trained it. A thread waits only while it holds no run's lock,
/// and training never waits for one, so two invocations never deadlock.
pub fn run_sweep(sweep: &Sweep, opts: &SweepOptions) -> Result<SweepReport> {
    let selected: Vec<&RunSpec> = match opts.shard {
        Some(s) => shard(&sweep.runs, s),
        None => sweep.runs.iter().collect(),
    };
    let selected = leaders_first(selected, opts)?;
    let mp = if opts.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = mp.add(ProgressBar::new(selected.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "sweep {bar:30.green/white} {pos}/{len} runs  [{elapsed_precise}, ETA {eta}]",
        )
        .expect("valid template"),
    );
    let pool = Workers {
        sweep,
        opts,
        mp: &mp,
        overall: &overall,
        failed: Mutex::new(Vec::new()),
        busy: Mutex::new(Vec::new()),
    };
    pool.work(&selected, false);
    let busy = std::mem::take(&mut *pool.busy.lock().expect("lock"));
    if !busy.is_empty() {
        // the other process has trained them meanwhile, or is about to:
        // wait for its lock, then find them finished (or resume them, if it
        // died); --fresh does not apply, they were trained after we started
        let mut later: Vec<&RunSpec> = busy.iter().map(|(r, _)| *r).collect();
        later.sort_by_key(|r| r.index);
        pool.work(&later, true);
    }
    overall.finish_and_clear();
    let failed = pool.failed.into_inner().expect("lock");
    let (summary_csv, finished_ids) = write_summary(sweep, &opts.results_root)?;
    let finished = selected
        .iter()
        .filter(|r| finished_ids.contains(&r.id))
        .count();
    let stale = stale_runs(sweep, &opts.results_root)?;
    let diverged = selected
        .iter()
        .filter_map(|r| {
            let path = run_dir(r, &opts.results_root).join("summary.json");
            let step = read_summary(&path).ok()?.diverged_at_step?;
            Some((r.id.clone(), step))
        })
        .collect();
    Ok(SweepReport {
        finished,
        selected: selected.len(),
        failed,
        summary_csv,
        stale,
        diverged,
        waited_for: busy
            .into_iter()
            .map(|(r, who)| (r.id.clone(), who))
            .collect(),
    })
}

/// The threads of one sweep invocation and what they share.
struct Workers<'a> {
    sweep: &'a Sweep,
    opts: &'a SweepOptions,
    mp: &'a MultiProgress,
    overall: &'a ProgressBar,
    /// (run id, error) of the runs that failed.
    failed: Mutex<Vec<(String, String)>>,
    /// Runs found locked by another process, with who holds them.
    busy: Mutex<Vec<(&'a RunSpec, String)>>,
}

impl<'a> Workers<'a> {
    /// Trains `runs`, `jobs` at a time. `wait`: block on runs another
    /// process holds (else they go to `busy`).
    fn work(&self, runs: &[&'a RunSpec], wait: bool) {
        let next = AtomicUsize::new(0);
        let jobs = self.opts.jobs.max(1).min(runs.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&spec) = runs.get(i) else { break };
                    self.one(spec, wait);
                });
            }
        });
    }

    fn one(&self, spec: &'a RunSpec, wait: bool) {
        let (sweep, opts, mp) = (self.sweep, self.opts, self.mp);
        let ropts = RunOptions {
            config_path: opts.config_path.clone(),
            results_root: opts.results_root.clone(),
            fresh: opts.fresh && !wait,
            quiet: opts.quiet,
            progress: Some(mp.clone()),
            label: format!("[{}/{}] {}", spec.index + 1, sweep.runs.len(), spec.id),
            share_first_stage: true,
            wait_for_lock: wait,
            ..Default::default()
        };
        let dev = crate::model::device::default_device();
        let error_file = run_dir(spec, &opts.results_root).join(ERROR_FILE);
        match run(spec, dev, crate::model::device::NAME, &ropts) {
            Ok(_) => {
                // a retry that succeeded leaves no stale reason behind
                let _ = std::fs::remove_file(&error_file);
            }
            Err(e) if e.downcast_ref::<RunBusy>().is_some() => {
                // not ours to touch: no error.txt, and no failure
                let busy = e.downcast_ref::<RunBusy>().expect("checked");
                if !opts.quiet {
                    mp.suspend(|| {
                        eprintln!("{busy}; this invocation waits for it after its other runs")
                    });
                }
                self.busy
                    .lock()
                    .expect("lock")
                    .push((spec, busy.holder.clone()));
                return;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                // the reason outlives the terminal: in the run folder,
                // and on stderr even when the progress bars are hidden
                // (not a terminal, -q)
                let _ = crate::atomic::write_atomic(&error_file, format!("{msg}\n").as_bytes());
                mp.suspend(|| eprintln!("run {} failed: {msg}", spec.id));
                self.failed
                    .lock()
                    .expect("lock")
                    .push((spec.id.clone(), msg));
            }
        }
        self.overall.inc(1);
    }
}

/// The runs in an order that trains every distinct first stage before any
/// run waits for one: the first run of each group sharing a first stage
/// ([`crate::experiment::shared_stage`]), then the second of each, and so
/// on, in grid order within a rank. With `fresh`, the groups' shared stages
/// are removed so that they are trained again.
fn leaders_first<'a>(runs: Vec<&'a RunSpec>, opts: &SweepOptions) -> Result<Vec<&'a RunSpec>> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ranked = Vec::with_capacity(runs.len());
    for (i, r) in runs.into_iter().enumerate() {
        let rank = match first_stage_key(&r.cfg)? {
            Some(key) => {
                let n = seen.entry(key.clone()).or_insert(0);
                *n += 1;
                if opts.fresh && *n == 1 {
                    let dir = opts
                        .results_root
                        .join(&r.cfg.experiment.name)
                        .join(SHARED_DIR)
                        .join(&key);
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)
                            .with_context(|| format!("removing {}", dir.display()))?;
                    }
                }
                *n - 1
            }
            None => 0,
        };
        ranked.push((rank, i, r));
    }
    ranked.sort_by_key(|&(rank, i, _)| (rank, i));
    Ok(ranked.into_iter().map(|(_, _, r)| r).collect())
}

/// Folders in results/<name>/ that are not runs of this grid (e.g. from an
/// earlier version of the config).
pub fn stale_runs(sweep: &Sweep, root: &Path) -> Result<Vec<String>> {
    let dir = root.join(&sweep.name);
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().join("config.toml").exists() && !sweep.runs.iter().any(|r| r.id == name) {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `results/<name>/summary.csv` from every finished run of the grid
/// found on disk (so shards merged into one folder summarise together).
/// Returns its path and the ids it covers. Holds `results/<name>/.summary.lock`
/// meanwhile: several processes of one sweep (shards, a merge job) may
/// finish at once, and each file is written by one at a time.
pub fn write_summary(sweep: &Sweep, root: &Path) -> Result<(PathBuf, Vec<String>)> {
    let dir = root.join(&sweep.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lockfile::acquire(&dir.join(SUMMARY_LOCK))?;
    let mut rows: Vec<(&RunSpec, Summary)> = Vec::new();
    for spec in &sweep.runs {
        let path = dir.join(&spec.id).join("summary.json");
        if !path.exists() {
            continue;
        }
        // an unreadable summary (a truncated write) is a run to redo, not
        // a reason to lose every other run's row
        match read_summary(&path) {
            Ok(s) => rows.push((spec, s)),
            Err(e) => eprintln!(
                "warning: {e:#}; run {} is left out (rerun the sweep to redo its summary)",
                spec.id
            ),
        }
    }
    // columns: fixed, then every probe / stage seen
    let splits: Vec<String> = sweep
        .runs
        .first()
        .map(|r| {
            r.cfg
                .eval
                .effective_probes()
                .into_iter()
                .map(|p| p.name)
                .collect()
        })
        .unwrap_or_default();
    let stages: Vec<String> = sweep
        .runs
        .first()
        .map(|r| r.cfg.stages.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let mut header = vec!["run_id".to_string(), "index".to_string()];
    header.extend(sweep.axes.iter().map(|a| format!("axis:{}", a.path)));
    header.push("seed".into());
    header.extend(splits.iter().map(|s| format!("final:{s}")));
    for st in &stages {
        header.extend(splits.iter().map(|s| format!("after:{st}:{s}")));
    }
    for m in BACKSPACE_METRICS.iter().chain(&TIMING_METRICS) {
        header.extend(splits.iter().map(|s| format!("{m}:{s}")));
    }
    for c in [
        "val_loss",
        "diverged_at_step",
        "wall_s",
        "ms_per_step",
        "tokens_per_s",
        "num_params",
        "git_commit",
        "rewind_version",
    ] {
        header.push(c.into());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    let opt = |v: Option<&f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for (spec, s) in &rows {
        let mut rec = vec![spec.id.clone(), spec.index.to_string()];
        rec.extend(spec.assignments.iter().map(|(_, v)| value_text(v)));
        rec.push(s.seed.to_string());
        rec.extend(splits.iter().map(|sp| opt(s.exact_match.get(sp))));
        for st in &stages {
            rec.extend(
                splits
                    .iter()
                    .map(|sp| opt(s.after_stage.get(st).and_then(|m| m.get(sp)))),
            );
        }
        for m in BACKSPACE_METRICS {
            rec.extend(
                splits
                    .iter()
                    .map(|sp| opt(s.backspace.get(sp).and_then(|b| b.get(m)))),
            );
        }
        for m in TIMING_METRICS {
            rec.extend(
                splits
                    .iter()
                    .map(|sp| opt(s.timing.get(sp).and_then(|b| b.get(m)))),
            );
        }
        let steps: u64 = s.stages.iter().map(|t| t.steps).sum();
        let train_s: f64 = s.stages.iter().map(|t| t.train_s).sum();
        let tps = s
            .stages
            .iter()
            .map(|t| t.tokens_per_s * t.steps as f64)
            .sum::<f64>()
            / steps.max(1) as f64;
        rec.extend([
            s.val_loss.to_string(),
            s.diverged_at_step
                .map(|d| d.to_string())
                .unwrap_or_default(),
            s.wall_s.to_string(),
            (1000.0 * train_s / steps.max(1) as f64).to_string(),
            tps.to_string(),
            s.num_params.to_string(),
            s.git_commit.clone(),
            s.rewind_version.clone(),
        ]);
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = dir.join("summary.csv");
    crate::train::checkpoint::write_atomic(&path, &bytes)?;
    Ok((path, rows.iter().map(|(r, _)| r.id.clone()).collect()))
}

/// The sweep's plots (`results/<name>/plots/`, from summary.csv and the
/// runs' metrics), written under the same lock as summary.csv so that two
/// processes never write one figure at once.
pub fn plot(sweep_dir: &Path) -> Result<Vec<PathBuf>> {
    let _lock = lockfile::acquire(&sweep_dir.join(SUMMARY_LOCK))?;
    crate::plot::plot_sweep(sweep_dir)
}

/// Mean and spread of a metric over seeds, per setting of the other axes
/// (for `rewind run` output): `(label, mean, min, max, n)`.
pub fn seed_means(sweep: &Sweep, root: &Path, split: &str) -> Vec<(String, f64, f64, f64, usize)> {
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for spec in &sweep.runs {
        let path = root.join(&sweep.name).join(&spec.id).join("summary.json");
        let Ok(s) = read_summary(&path) else {
            continue;
        };
        let Some(v) = s.exact_match.get(split) else {
            continue;
        };
        let key = spec
            .assignments
            .iter()
            .filter(|(p, _)| p != "experiment.seed")
            .map(|(p, v)| format!("{}={}", p.rsplit('.').next().unwrap_or(p), value_text(v)))
            .collect::<Vec<_>>()
            .join(" ");
        groups.entry(key).or_default().push(*v);
    }
    groups
        .into_iter()
        .map(|(k, v)| {
            let n = v.len();
            let mean = v.iter().sum::<f64>() / n as f64;
            let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (k, mean, min, max, n)
        })
        .collect()
}
