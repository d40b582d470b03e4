//! One run of an experiment: build the task and model, train each stage,
//! evaluate, checkpoint, and write the results folder.
//!
//! `results/<name>/<run_id>/`:
//! - `config.toml`: the full resolved config
//! - `metrics.csv`: every measurement (see [`crate::metrics`])
//! - `checkpoint.safetensors`: model + optimiser + step (see [`crate::train::checkpoint`])
//! - `summary.json`: final metrics, timings, seed, git commit, versions
//! - `training.png` / `training.svg`: loss and accuracy curves
//!
//! Reproducibility: each step's batch and dropout masks are drawn from RNGs
//! seeded by (run seed, stage, step), and the checkpoint holds the weights
//! and AdamW moments, so a run resumed from a checkpoint continues exactly
//! as the uninterrupted run would have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Example, TrainBatch};
use crate::eval::{self, Decoding};
use crate::experiment::config::{ExperimentConfig, StageConfig};
use crate::experiment::sweep::RunSpec;
use crate::metrics::{MetricsLog, Row};
use crate::model::{rng_for, sub_seed, Dropout, Transformer};
use crate::tasks::Task;
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::optim::{lr_at, AdamW};
use crate::train::Backend;

/// dfdx version this build uses (from Cargo.lock; recorded in summaries).
pub const DFDX_VERSION: &str = "0.13.0";

/// How a run is started.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Root folder for results (default `results`).
    pub results_root: PathBuf,
    /// Discard any earlier partial or finished run with the same id.
    pub fresh: bool,
    /// Require a checkpoint to resume from (error if there is none).
    pub require_resume: bool,
    /// Stop after this many global steps (for tests of resume). None: run all.
    pub stop_after: Option<u64>,
    /// Hide the progress bar and the per-evaluation lines.
    pub quiet: bool,
    /// Draw the run's bar inside this multi-bar (sweeps).
    pub progress: Option<indicatif::MultiProgress>,
    /// Prefix of the run's progress line (e.g. its id in a sweep).
    pub label: String,
}

/// Timing of one stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageTiming {
    pub name: String,
    pub steps: u64,
    /// Training wall time of the stage (excluding evaluation), seconds.
    pub train_s: f64,
    pub ms_per_step: f64,
    /// Non-padding input tokens processed per second of training.
    pub tokens_per_s: f64,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub experiment: String,
    pub run_id: String,
    pub seed: u64,
    pub git_commit: String,
    pub rewind_version: String,
    pub dfdx_version: String,
    pub device: String,
    pub threads: usize,
    pub num_params: usize,
    /// Exact-match accuracy per split after the last stage.
    pub exact_match: BTreeMap<String, f64>,
    /// Questions per split.
    pub n: BTreeMap<String, usize>,
    /// Teacher-forced validation NLL after the last stage.
    pub val_loss: f64,
    /// Exact-match per stage per split: `after_stage[stage][split]` (forgetting table).
    pub after_stage: BTreeMap<String, BTreeMap<String, f64>>,
    pub stages: Vec<StageTiming>,
    /// Wall time of the whole run including evaluation (summed over resumed sessions), seconds.
    pub wall_s: f64,
    /// Examples of wrong answers on the test split: (prompt, expected, got).
    pub wrong_examples: Vec<(String, String, String)>,
}

/// Current git commit of the working directory (`unknown` outside a repo),
/// with `-dirty` when there are uncommitted changes.
pub fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => "unknown".into(),
    }
}

/// The folder of a run: `<root>/<experiment name>/<run id>`.
pub fn run_dir(spec: &RunSpec, root: &Path) -> PathBuf {
    root.join(&spec.cfg.experiment.name).join(&spec.id)
}

/// Where a run stands (stored in checkpoint metadata).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Position {
    /// Index of the stage in progress (== stages.len() when all are done).
    stage: usize,
    /// Steps completed in that stage.
    step_in_stage: u64,
    /// Training wall time so far, seconds.
    elapsed_s: f64,
    /// Whole-run wall time so far, seconds.
    wall_s: f64,
}

fn global_step(cfg: &ExperimentConfig, stage: usize, step_in_stage: u64) -> u64 {
    cfg.stages[..stage].iter().map(|s| s.steps).sum::<u64>() + step_in_stage
}

/// Everything a run needs while it trains.
struct Runner<'a, D: Device<f32>> {
    cfg: &'a ExperimentConfig,
    dev: D,
    task: Box<dyn Task>,
    /// Split evaluated periodically during training (the task's first).
    monitor: String,
    dir: PathBuf,
    log: MetricsLog,
    pb: ProgressBar,
    quiet: bool,
    max_answer: usize,
    /// Wall time of earlier sessions of this run (from the checkpoint).
    wall_before: f64,
    session_start: Instant,
}

impl<D: Backend> Runner<'_, D> {
    /// Whole-run wall time so far, over all sessions.
    fn wall_now(&self) -> f64 {
        self.wall_before + self.session_start.elapsed().as_secs_f64()
    }

    fn say(&self, msg: String) {
        if !self.quiet {
            self.pb.println(msg);
        }
    }

    /// Exact match and teacher-forced loss on `split` (its first `limit` questions).
    fn evaluate(
        &mut self,
        model: &Transformer<D>,
        stage: &str,
        step: u64,
        split: &str,
        limit: usize,
        elapsed_s: f64,
    ) -> Result<eval::ExactMatch> {
        let mut problems = self.task.problems(split)?;
        problems.truncate(limit);
        let ec = &self.cfg.eval;
        let decoding = if ec.temperature > 0.0 {
            Decoding::Sample {
                temperature: ec.temperature,
            }
        } else {
            Decoding::Greedy
        };
        let mut rng = rng_for(self.cfg.experiment.seed, &format!("eval/{split}/{step}"));
        let em = eval::exact_match(
            model,
            &self.dev,
            &problems,
            self.max_answer,
            ec.batch_size,
            decoding,
            &mut rng,
        )?;
        let examples = problems
            .iter()
            .map(|p| Example::from_text(&p.prompt, &p.reference))
            .collect::<Result<Vec<_>, _>>()?;
        let nll = eval::mean_nll(model, &self.dev, &examples, ec.batch_size)?;
        for (metric, value) in [("exact_match", em.accuracy()), ("loss", nll)] {
            self.log.push(&Row {
                stage: stage.into(),
                step,
                split: split.to_string(),
                metric: metric.into(),
                value,
                elapsed_s,
            })?;
        }
        Ok(em)
    }

    /// Exact match on a whole split without logging it.
    fn evaluate_quietly(&self, model: &Transformer<D>, split: &str) -> Result<eval::ExactMatch> {
        let mut rng = rng_for(self.cfg.experiment.seed, &format!("eval/{split}/final"));
        let problems = self.task.problems(split)?;
        eval::exact_match(
            model,
            &self.dev,
            &problems,
            self.max_answer,
            self.cfg.eval.batch_size,
            Decoding::Greedy,
            &mut rng,
        )
    }

    fn save(&self, model: &Transformer<D>, opt: &AdamW<D>, pos: Position) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("stage".into(), pos.stage.to_string());
        meta.insert("step_in_stage".into(), pos.step_in_stage.to_string());
        let g = global_step(self.cfg, pos.stage.min(self.cfg.stages.len()), 0) + pos.step_in_stage;
        meta.insert("global_step".into(), g.to_string());
        meta.insert("elapsed_s".into(), pos.elapsed_s.to_string());
        meta.insert("wall_s".into(), pos.wall_s.to_string());
        meta.insert("config".into(), self.cfg.to_toml()?);
        meta.insert("git_commit".into(), git_commit());
        meta.insert("rewind_version".into(), env!("CARGO_PKG_VERSION").into());
        // At a stage boundary (step 0 of a stage) the optimiser belongs to
        // the stage that just ended, and the next stage starts a fresh one:
        // saving its moments would let a resumed run continue with them.
        let opt = (pos.step_in_stage > 0).then_some(opt);
        checkpoint::save(&self.dir.join("checkpoint.safetensors"), model, opt, &meta)
    }

    /// Trains one stage from `start` steps in; returns (train seconds, tokens).
    fn train_stage(
        &mut self,
        model: &mut Transformer<D>,
        opt: &mut AdamW<D>,
        si: usize,
        mut pos: Position,
        stop_after: Option<u64>,
    ) -> Result<(Position, bool, f64, usize)> {
        let st: &StageConfig = &self.cfg.stages[si];
        let seed = self.cfg.experiment.seed;
        let mut train_s = 0.0;
        let mut tokens = 0usize;
        let mut ema: Option<f64> = None;
        let objective = st.objective.build();
        while pos.step_in_stage < st.steps {
            let gstep = global_step(self.cfg, si, pos.step_in_stage);
            if stop_after.is_some_and(|s| gstep >= s) {
                return Ok((pos, true, train_s, tokens));
            }
            let t0 = Instant::now();
            let lr = lr_at(pos.step_in_stage, st.steps, st.warmup(), st.lr, st.min_lr);
            // batch and dropout drawn from RNGs keyed by (seed, stage, step)
            let mut rng = rng_for(seed, &format!("batch/{si}/{}", pos.step_in_stage));
            let examples = (0..st.batch_size)
                .map(|_| self.task.sample_train(&mut rng))
                .collect::<Result<Vec<_>>>()?;
            let batch = TrainBatch::Tokens(Batch::causal(&examples));
            let mut dropout = Dropout::new(
                model.cfg.dropout,
                sub_seed(seed, &format!("dropout/{si}/{}", pos.step_in_stage)),
            );
            let spec = crate::train::StepSpec {
                objective: objective.as_ref(),
                lr,
                grad_clip: st.grad_clip,
            };
            let stats = crate::train::train_step(model, opt, &batch, &spec, &mut dropout)
                .with_context(|| format!("stage {} step {}", st.name, pos.step_in_stage))?;
            let (loss_value, gnorm) = (stats.loss, stats.grad_norm);
            let dt = t0.elapsed().as_secs_f64();
            train_s += dt;
            tokens += batch.rows().num_tokens();
            pos.step_in_stage += 1;
            pos.elapsed_s += dt;
            pos.wall_s = self.wall_now();
            let gstep = global_step(self.cfg, si, pos.step_in_stage);
            for (metric, value) in [("loss", loss_value), ("lr", lr), ("grad_norm", gnorm)] {
                self.log.push(&Row {
                    stage: st.name.clone(),
                    step: gstep,
                    split: "train".into(),
                    metric: metric.into(),
                    value,
                    elapsed_s: pos.elapsed_s,
                })?;
            }
            let e = ema.map_or(loss_value, |e| 0.95 * e + 0.05 * loss_value);
            ema = Some(e);
            self.pb.inc(1);
            self.pb
                .set_message(format!("{} loss {e:.4} lr {lr:.2e}", st.name));
            let last = pos.step_in_stage == st.steps;
            if !last && st.eval_every > 0 && pos.step_in_stage.is_multiple_of(st.eval_every) {
                let em = self.evaluate(
                    model,
                    &st.name,
                    gstep,
                    &self.monitor.clone(),
                    self.cfg.eval.val_during_training,
                    pos.elapsed_s,
                )?;
                self.say(format!(
                    "[{}] step {gstep}: train loss {e:.4}, val exact-match {:.1}% ({} questions)",
                    st.name,
                    100.0 * em.accuracy(),
                    em.n
                ));
            }
            if !last
                && st.checkpoint_every > 0
                && pos.step_in_stage.is_multiple_of(st.checkpoint_every)
            {
                self.save(model, opt, pos)?;
            }
        }
        Ok((pos, false, train_s, tokens))
    }
}

/// Runs (or resumes) the experiment `cfg` on `dev`; returns the summary,
/// or None if stopped early by `opts.stop_after`.
pub fn run<D: Backend>(
    spec: &RunSpec,
    dev: D,
    device_name: &str,
    opts: &RunOptions,
) -> Result<Option<Summary>> {
    let session_start = Instant::now();
    let cfg = &spec.cfg;
    let seed = cfg.experiment.seed;
    let dir = run_dir(spec, &opts.results_root);
    let ckpt_path = dir.join("checkpoint.safetensors");
    let summary_path = dir.join("summary.json");
    if opts.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if summary_path.exists() && !opts.fresh {
        let s: Summary = serde_json::from_str(&std::fs::read_to_string(&summary_path)?)
            .with_context(|| format!("reading {}", summary_path.display()))?;
        if !opts.quiet {
            eprintln!(
                "run {} already finished ({}); pass --fresh to redo it",
                s.run_id,
                dir.display()
            );
        }
        return Ok(Some(s));
    }
    if opts.require_resume && !ckpt_path.exists() {
        bail!("--resume: no checkpoint at {}", ckpt_path.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    checkpoint::write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;

    let kind = crate::tasks::registry::kind(&cfg.experiment.kind)?;
    let task = (kind.build)(&cfg.data, sub_seed(seed, "data"))?;
    let need = task.max_seq_len();
    if need > cfg.model.max_len {
        bail!(
            "model.max_len = {} is too short: the task's longest sequence (incl. the long split, <bos> and <eos>) has {need} tokens",
            cfg.model.max_len
        );
    }
    let mut model =
        Transformer::new(&cfg.model, &dev, sub_seed(seed, "init")).map_err(anyhow::Error::msg)?;

    // resume
    let mut pos = Position::default();
    let mut resumed_opt: Option<AdamW<D>> = None;
    if ckpt_path.exists() {
        let ck = Checkpoint::read(&ckpt_path)?;
        let get = |k: &str| {
            ck.meta
                .get(k)
                .cloned()
                .with_context(|| format!("{}: no `{k}` in metadata", ckpt_path.display()))
        };
        pos.stage = get("stage")?.parse()?;
        pos.step_in_stage = get("step_in_stage")?.parse()?;
        pos.elapsed_s = get("elapsed_s")?.parse()?;
        pos.wall_s = get("wall_s")?.parse()?;
        // Mid-stage the checkpoint holds the stage's AdamW moments; at a
        // stage boundary (step_in_stage == 0) it holds none and the stage
        // starts with a fresh optimiser, as an uninterrupted run does.
        if pos.stage < cfg.stages.len() && pos.step_in_stage > 0 {
            let params = model.params();
            let mut opt = AdamW::new(cfg.stages[pos.stage].optimizer.clone(), &params);
            drop(params);
            ck.load_into(&mut model, Some(&mut opt))?;
            resumed_opt = Some(opt);
        } else {
            ck.load_into(&mut model, None)?;
        }
    }
    let resume_step = ckpt_path
        .exists()
        .then(|| global_step(cfg, pos.stage.min(cfg.stages.len()), 0) + pos.step_in_stage);
    let log = MetricsLog::open(&dir.join("metrics.csv"), resume_step)?;
    let total: u64 = cfg.stages.iter().map(|s| s.steps).sum();
    let pb = match (&opts.progress, opts.quiet) {
        (_, true) => ProgressBar::hidden(),
        (Some(mp), false) => mp.add(ProgressBar::new(total)),
        (None, false) => ProgressBar::new(total),
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix}{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .expect("valid template"),
    );
    if !opts.label.is_empty() {
        pb.set_prefix(format!("{} ", opts.label));
    }
    pb.set_position(resume_step.unwrap_or(0));
    let max_answer = task.max_answer_len() + 1;
    // the split watched during training, and the one whose errors the summary shows
    let monitor = task
        .splits()
        .first()
        .cloned()
        .context("task has no splits")?;
    let report_split = if cfg.eval.splits.iter().any(|s| s == "test") {
        "test".to_string()
    } else {
        cfg.eval.splits[0].clone()
    };
    let mut r = Runner {
        monitor,
        cfg,
        dev: dev.clone(),
        task,
        dir: dir.clone(),
        log,
        pb,
        quiet: opts.quiet,
        max_answer,
        wall_before: pos.wall_s,
        session_start,
    };
    if let Some(step) = resume_step {
        r.say(format!(
            "resuming {} from global step {step}",
            dir.display()
        ));
    }
    r.say(format!(
        "model: {} parameters; results in {}",
        model.num_params(),
        dir.display()
    ));

    let mut wrong = None;
    for si in 0..cfg.stages.len() {
        if si < pos.stage {
            continue; // finished in an earlier session
        }
        let st = &cfg.stages[si];
        let mut opt = match resumed_opt.take() {
            Some(o) if si == pos.stage => o,
            _ => AdamW::new(st.optimizer.clone(), &model.params()),
        };
        if si > pos.stage {
            pos = Position {
                stage: si,
                step_in_stage: 0,
                ..pos
            };
        }
        let (p, stopped, train_s, tokens) =
            r.train_stage(&mut model, &mut opt, si, pos, opts.stop_after)?;
        pos = p;
        if stopped {
            pos.wall_s = r.wall_now();
            r.save(&model, &opt, pos)?;
            r.pb.abandon();
            return Ok(None);
        }
        // end of stage: evaluate every split (forgetting table), then checkpoint
        let gstep = global_step(cfg, si + 1, 0);
        r.log.push(&Row {
            stage: st.name.clone(),
            step: gstep,
            split: "train".into(),
            metric: "tokens_per_s".into(),
            value: tokens as f64 / train_s.max(1e-9),
            elapsed_s: pos.elapsed_s,
        })?;
        for split in &cfg.eval.splits {
            let em = r.evaluate(&model, &st.name, gstep, split, usize::MAX, pos.elapsed_s)?;
            r.say(format!(
                "[{}] after stage: {split} exact-match {:.1}% ({}/{})",
                st.name,
                100.0 * em.accuracy(),
                em.correct,
                em.n
            ));
            if *split == report_split {
                wrong = Some(em.wrong_examples);
            }
        }
        pos = Position {
            stage: si + 1,
            step_in_stage: 0,
            elapsed_s: pos.elapsed_s,
            wall_s: r.wall_now(),
        };
        r.save(&model, &opt, pos)?;
        if opts.stop_after == Some(gstep) && si + 1 < cfg.stages.len() {
            // stopped exactly at a stage boundary: leave the checkpoint as
            // the boundary save wrote it, as a kill right after it would
            r.pb.abandon();
            return Ok(None);
        }
    }
    r.pb.finish_and_clear();
    let val_examples = r
        .task
        .problems(&r.monitor)?
        .iter()
        .map(|p| Example::from_text(&p.prompt, &p.reference))
        .collect::<Result<Vec<_>, _>>()?;
    let val_loss = eval::mean_nll(&model, &r.dev, &val_examples, cfg.eval.batch_size)?;
    let wrong = match wrong {
        Some(w) => w,
        // the last stage finished in an earlier session: look again
        None => r.evaluate_quietly(&model, &report_split)?.wrong_examples,
    };
    // per-stage results come from metrics.csv, the one record that
    // survives interrupted sessions
    let rows = crate::metrics::read(&dir.join("metrics.csv"))?;
    let (after_stage, timings) = stage_results(cfg, &rows);
    let final_em = after_stage
        .get(&cfg.stages[cfg.stages.len() - 1].name)
        .cloned()
        .unwrap_or_default();
    let final_n = cfg
        .eval
        .splits
        .iter()
        .map(|s| Ok((s.clone(), r.task.problems(s)?.len())))
        .collect::<Result<_>>()?;
    let summary = Summary {
        experiment: cfg.experiment.name.clone(),
        run_id: spec.id.clone(),
        seed,
        git_commit: git_commit(),
        rewind_version: env!("CARGO_PKG_VERSION").into(),
        dfdx_version: DFDX_VERSION.into(),
        device: device_name.into(),
        threads: rayon_threads(),
        num_params: model.num_params(),
        exact_match: final_em,
        n: final_n,
        val_loss,
        after_stage,
        stages: timings,
        wall_s: r.wall_now(),
        wrong_examples: wrong,
    };
    checkpoint::write_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if let Err(e) = crate::plot::plot_training_run(&dir.join("metrics.csv"), &dir) {
        eprintln!("warning: could not plot {}: {e:#}", dir.display());
    }
    Ok(Some(summary))
}

/// The forgetting table (`after_stage[stage][split]` = exact match after
/// that stage) and per-stage timings, read back from metrics rows.
fn stage_results(
    cfg: &ExperimentConfig,
    rows: &[Row],
) -> (BTreeMap<String, BTreeMap<String, f64>>, Vec<StageTiming>) {
    let mut table = BTreeMap::new();
    let mut timings = Vec::new();
    let mut prev_elapsed = 0.0;
    for (si, st) in cfg.stages.iter().enumerate() {
        let end = global_step(cfg, si + 1, 0);
        let at_end = |split: &str, metric: &str| {
            rows.iter()
                .find(|r| {
                    r.stage == st.name && r.step == end && r.split == split && r.metric == metric
                })
                .map(|r| (r.value, r.elapsed_s))
        };
        let row: BTreeMap<String, f64> = cfg
            .eval
            .splits
            .iter()
            .filter_map(|sp| {
                at_end(&sp.to_string(), "exact_match").map(|(v, _)| (sp.to_string(), v))
            })
            .collect();
        table.insert(st.name.clone(), row);
        let elapsed = at_end("train", "loss").map_or(prev_elapsed, |(_, e)| e);
        let train_s = elapsed - prev_elapsed;
        prev_elapsed = elapsed;
        timings.push(StageTiming {
            name: st.name.clone(),
            steps: st.steps,
            train_s,
            ms_per_step: 1000.0 * train_s / st.steps.max(1) as f64,
            tokens_per_s: at_end("train", "tokens_per_s").map_or(0.0, |(v, _)| v),
        });
    }
    (table, timings)
}

/// Threads the matmul kernels use (rayon's global pool).
pub fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
