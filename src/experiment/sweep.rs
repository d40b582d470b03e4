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
//! val_loss, wall_s, ms_per_step, tokens_per_s, num_params, git_commit, rewind_version`
//! (`final:` = exact match after the last stage; `after:` = after each stage,
//! the forgetting table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::experiment::config::ExperimentConfig;
use crate::experiment::run::{run, RunOptions, Summary};
use crate::tasks::registry::from_value;

/// One axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Dotted config path, e.g. `stages.0.lr`.
    pub path: String,
    pub values: Vec<toml::Value>,
}

/// One run of a sweep.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Position in the grid (0-based).
    pub index: usize,
    /// `(axis path, value)` for this run, in axis order.
    pub assignments: Vec<(String, toml::Value)>,
    /// The fully resolved config of this run (no `[sweep]`, one seed).
    pub cfg: ExperimentConfig,
    /// Stable id: readable label + hash of the resolved config.
    pub id: String,
}

/// An expanded sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub name: String,
    pub axes: Vec<Axis>,
    pub runs: Vec<RunSpec>,
}

/// Collects `[sweep]` leaves as dotted paths; nested tables (from unquoted
/// dotted keys) and quoted dotted keys mean the same path.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) -> Result<()> {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&path, t, out)?,
            toml::Value::Array(_) => out.push((path, v.clone())),
            other => bail!(
                "sweep.\"{path}\" = {other}: an axis must be a list of values, e.g. \"{path}\" = [{other}]"
            ),
        }
    }
    Ok(())
}

/// The value at a dotted path, or an error naming the first missing part.
fn lookup<'a>(root: &'a mut toml::Value, path: &str) -> Result<&'a mut toml::Value> {
    let mut cur = root;
    let mut walked = String::new();
    for part in path.split('.') {
        let here = if walked.is_empty() {
            "the config".to_string()
        } else {
            format!("`{walked}`")
        };
        cur = match cur {
            toml::Value::Table(t) => {
                let keys: Vec<String> = t.keys().cloned().collect();
                t.get_mut(part).with_context(|| {
                    format!(
                        "sweep key \"{path}\": no setting `{part}` in {here} (keys there: {})",
                        keys.join(", ")
                    )
                })?
            }
            toml::Value::Array(a) => {
                let n = a.len();
                let i: usize = part.parse().with_context(|| {
                    format!(
                        "sweep key \"{path}\": {here} is a list; use an index 0..{n}, not `{part}`"
                    )
                })?;
                a.get_mut(i).with_context(|| {
                    format!("sweep key \"{path}\": {here} has {n} entries, no index {i}")
                })?
            }
            _ => bail!("sweep key \"{path}\": {here} is a single value, it has no `{part}`"),
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
    }
    Ok(cur)
}

/// A value as it appears in labels and CSV cells: strings bare, lists
/// joined by `+` (`["add", "sub"]` -> `add+sub`).
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("+"),
        other => other.to_string(),
    }
}

/// Readable part of a run id: `lr=0.001_seed=0`.
fn label(assignments: &[(String, toml::Value)], seed: u64) -> String {
    let last = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    let mut parts = Vec::new();
    for (path, v) in assignments {
        if path == "experiment.seed" {
            continue;
        }
        let ambiguous = assignments
            .iter()
            .filter(|(p, _)| last(p) == last(path))
            .count()
            > 1;
        let name = if ambiguous {
            path.replace("stages.", "st")
        } else {
            last(path)
        };
        parts.push(format!("{name}={}", value_text(v)));
    }
    parts.push(format!("seed={seed}"));
    let mut s: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(80);
    s
}

/// Stable id of a resolved run config.
pub fn run_id(cfg: &ExperimentConfig, assignments: &[(String, toml::Value)]) -> Result<String> {
    let hash = Sha256::digest(cfg.to_toml()?.as_bytes());
    let hex: String = hash.iter().take(5).map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{hex}", label(assignments, cfg.experiment.seed)))
}

impl RunSpec {
    /// The one run of a config without sweep axes or seed lists.
    pub fn single(cfg: &ExperimentConfig) -> Result<Self> {
        let sweep = expand(cfg)?;
        if sweep.runs.len() != 1 {
            bail!(
                "config {} defines a sweep of {} runs",
                cfg.experiment.name,
                sweep.runs.len()
            );
        }
        Ok(sweep.runs.into_iter().next().expect("one run"))
    }
}

/// Expands a config's sweep into its runs. Errors name the sweep key.
pub fn expand(cfg: &ExperimentConfig) -> Result<Sweep> {
    let mut pairs = Vec::new();
    flatten("", &cfg.sweep, &mut pairs)?;
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            bail!("sweep key \"{}\" is given twice", w[0].0);
        }
    }
    let mut axes = Vec::new();
    for (path, v) in pairs {
        let values = match v {
            toml::Value::Array(a) => a,
            _ => unreachable!("flatten keeps arrays only"),
        };
        if values.is_empty() {
            bail!("sweep key \"{path}\" = []: give at least one value");
        }
        if ["experiment.name", "experiment.kind", "experiment.seeds"].contains(&path.as_str())
            || path.starts_with("sweep")
        {
            bail!("sweep key \"{path}\" cannot be swept (it identifies the experiment)");
        }
        if path == "experiment.seed" && cfg.experiment.seeds.is_some() {
            bail!("sweep key \"experiment.seed\" is given twice (also as experiment.seeds)");
        }
        axes.push(Axis { path, values });
    }
    for a in &axes {
        for b in &axes {
            if a.path != b.path && b.path.starts_with(&format!("{}.", a.path)) {
                bail!("sweep keys \"{}\" and \"{}\" overlap", a.path, b.path);
            }
        }
    }
    // seeds last: fastest-varying, so runs of one setting sit together
    axes.sort_by_key(|a| a.path == "experiment.seed");
    if let Some(seeds) = &cfg.experiment.seeds {
        axes.push(Axis {
            path: "experiment.seed".into(),
            values: seeds
                .iter()
                .map(|&s| toml::Value::Integer(s as i64))
                .collect(),
        });
    }

    let mut base = cfg.clone();
    base.sweep = toml::Table::new();
    base.experiment.seeds = None;
    let base_value = toml::Value::try_from(&base)?;
    for a in &axes {
        lookup(&mut base_value.clone(), &a.path)?;
    }

    let total: usize = axes.iter().map(|a| a.values.len()).product();
    let mut runs = Vec::with_capacity(total);
    for index in 0..total {
        // mixed-radix digits, first axis slowest
        let mut rem = index;
        let mut picks = vec![0; axes.len()];
        for (i, a) in axes.iter().enumerate().rev() {
            picks[i] = rem % a.values.len();
            rem /= a.values.len();
        }
        let assignments: Vec<(String, toml::Value)> = axes
            .iter()
            .zip(&picks)
            .map(|(a, &p)| (a.path.clone(), a.values[p].clone()))
            .collect();
        let mut v = base_value.clone();
        for (path, value) in &assignments {
            *lookup(&mut v, path)? = value.clone();
        }
        let point = || {
            assignments
                .iter()
                .map(|(p, v)| format!("{p} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut run_cfg: ExperimentConfig =
            from_value(v, "config").with_context(|| format!("sweep point [{}]", point()))?;
        run_cfg
            .resolve()
            .with_context(|| format!("sweep point [{}]", point()))?;
        let id = run_id(&run_cfg, &assignments)?;
        runs.push(RunSpec {
            index,
            assignments,
            cfg: run_cfg,
            id,
        });
    }
    Ok(Sweep {
        name: cfg.experiment.name.clone(),
        axes,
        runs,
    })
}

/// Parses `--shard i/n` (0 <= i < n).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let err = || format!("--shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4");
    let (i, n) = s.split_once('/').with_context(err)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().with_context(err)?,
        n.trim().parse().with_context(err)?,
    );
    if n == 0 || i >= n {
        bail!(err());
    }
    Ok((i, n))
}

/// The runs of shard `i` of `n`: grid indices `i, i+n, i+2n, ...`.
pub fn shard(runs: &[RunSpec], (i, n): (usize, usize)) -> Vec<&RunSpec> {
    runs.iter().filter(|r| r.index % n == i).collect()
}

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
}

/// Runs (or resumes) the selected runs of `sweep`, `jobs` at a time, then
/// writes summary.csv and the plots.
pub fn run_sweep(sweep: &Sweep, opts: &SweepOptions) -> Result<SweepReport> {
    let selected: Vec<&RunSpec> = match opts.shard {
        Some(s) => shard(&sweep.runs, s),
        None => sweep.runs.iter().collect(),
    };
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
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let jobs = opts.jobs.max(1).min(selected.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = selected.get(i) else { break };
                let ropts = RunOptions {
                    results_root: opts.results_root.clone(),
                    fresh: opts.fresh,
                    quiet: opts.quiet,
                    progress: Some(mp.clone()),
                    label: format!("[{}/{}] {}", spec.index + 1, sweep.runs.len(), spec.id),
                    ..Default::default()
                };
                let dev = crate::model::device::default_device();
                if let Err(e) = run(spec, dev, crate::model::device::NAME, &ropts) {
                    let msg = format!("{e:#}");
                    let _ = mp.println(format!("run {} failed: {msg}", spec.id));
                    failed.lock().expect("lock").push((spec.id.clone(), msg));
                }
                overall.inc(1);
            });
        }
    });
    overall.finish_and_clear();
    let failed = failed.into_inner().expect("lock");
    let (summary_csv, finished_ids) = write_summary(sweep, &opts.results_root)?;
    let finished = selected
        .iter()
        .filter(|r| finished_ids.contains(&r.id))
        .count();
    let stale = stale_runs(sweep, &opts.results_root)?;
    Ok(SweepReport {
        finished,
        selected: selected.len(),
        failed,
        summary_csv,
        stale,
    })
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
/// Returns its path and the ids it covers.
pub fn write_summary(sweep: &Sweep, root: &Path) -> Result<(PathBuf, Vec<String>)> {
    let dir = root.join(&sweep.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rows: Vec<(&RunSpec, Summary)> = Vec::new();
    for spec in &sweep.runs {
        let path = dir.join(&spec.id).join("summary.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let s: Summary = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            rows.push((spec, s));
        }
    }
    // columns: fixed, then every split / stage seen
    let splits: Vec<String> = sweep
        .runs
        .first()
        .map(|r| r.cfg.eval.splits.clone())
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
    for c in [
        "val_loss",
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

/// Mean and spread of a metric over seeds, per setting of the other axes
/// (for `rewind run` output): `(label, mean, min, max, n)`.
pub fn seed_means(sweep: &Sweep, root: &Path, split: &str) -> Vec<(String, f64, f64, f64, usize)> {
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for spec in &sweep.runs {
        let path = root.join(&sweep.name).join(&spec.id).join("summary.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(s) = serde_json::from_str::<Summary>(&text) else {
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
