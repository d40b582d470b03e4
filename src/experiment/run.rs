//! One run of an experiment: build the task, its probes and the model,
//! train each stage on its own data, run every probe after every stage,
//! checkpoint, and write the results folder.
//!
//! `results/<name>/<run_id>/`:
//! - `config.toml`: the full resolved config
//! - `metrics.csv`: every measurement (see [`crate::metrics`])
//! - `checkpoint.safetensors`: model + optimiser + position (see [`super::resume`])
//! - `summary.json`: final metrics, the stage × probe table, timings, seed,
//!   git commit, versions (see [`super::summary`])
//! - `training.png` / `training.svg`: loss and accuracy curves

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{Example, TrainBatch};
use crate::eval::probe::{grade, run_probe};
use crate::eval::{self, ProbeConfig, ProbeResult};
use crate::experiment::config::ExperimentConfig;
use crate::experiment::grid::RunSpec;
use crate::experiment::lockfile::{self, LockError};
use crate::experiment::provenance;
use crate::experiment::resume::{self, global_step, Position};
use crate::experiment::shared_stage::SharedStage;
use crate::experiment::stage_data::{RolloutBuffer, StageData};
use crate::experiment::summary::{
    final_backspace, final_timing, first_non_finite_loss, read_summary, stage_results, StageTiming,
    Summary,
};
use crate::metrics::{MetricsLog, Row};
use crate::model::decode::CachedDecoder;
use crate::model::{rng_for, sub_seed, Dropout, Transformer};
use crate::objectives::sequence_logprobs;
use crate::tasks::{Problem, Task};
use crate::train::checkpoint;
use crate::train::optim::{lr_at, AdamW};
use crate::train::{Backend, NonFiniteLoss, StepSpec};

/// How a run is started.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Root folder for results (default `results`).
    pub results_root: PathBuf,
    /// Discard any earlier partial or finished run with the same id.
    pub fresh: bool,
    /// Require a checkpoint to resume from (error if there is none).
    pub require_resume: bool,
    /// Stop after this many global steps, as a kill would leave the run
    /// (for tests of resume). None: run all.
    pub stop_after: Option<u64>,
    /// Hide the progress bar and the per-evaluation lines.
    pub quiet: bool,
    /// Draw the run's bar inside this multi-bar (sweeps).
    pub progress: Option<indicatif::MultiProgress>,
    /// Prefix of the run's progress line (e.g. its id in a sweep).
    pub label: String,
    /// Share the first stage with the other runs of the experiment that
    /// train it alike ([`crate::experiment::shared_stage`]); sweeps do.
    pub share_first_stage: bool,
    /// The config file the run comes from, named in errors about its
    /// settings (None: the run folder's `config.toml` is named instead).
    pub config_path: Option<PathBuf>,
    /// When another process trains this run: wait for it (true) or return
    /// [`RunBusy`] at once (false).
    pub wait_for_lock: bool,
}

/// How training a stage ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StageEnd {
    /// Every step of the stage was taken.
    Done,
    /// Stopped at `stop_after`, as a kill would leave the run.
    Stopped,
    /// The training loss was not finite at this global step (1-based, as
    /// in metrics.csv); the step made no update.
    Diverged(u64),
}

/// The run is being trained by another process, which holds its lock
/// ([`lockfile::RUN_LOCK`] in the run's folder); nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("run {id} is being trained by another process ({holder})")]
pub struct RunBusy {
    pub id: String,
    /// Who holds the lock, as it wrote itself: `pid 1234 on node7, ...`.
    pub holder: String,
}

/// The folder of a run: `<root>/<experiment name>/<run id>`.
pub fn run_dir(spec: &RunSpec, root: &Path) -> PathBuf {
    root.join(&spec.cfg.experiment.name).join(&spec.id)
}

/// A probe with its problems, fixed for the whole run.
struct Probe {
    cfg: ProbeConfig,
    problems: Vec<Problem>,
    /// The probe's own task (`task = { kind = ... }`); None: the
    /// experiment's.
    task: Option<Box<dyn Task>>,
    /// Decoding budget (actions) of this probe's task.
    max_new: usize,
}

/// Everything a run needs while it trains.
struct Runner<'a, D: Backend> {
    cfg: &'a ExperimentConfig,
    task: Box<dyn Task>,
    probes: Vec<Probe>,
    /// Index of the probe evaluated periodically during training (on its
    /// first `eval.val_during_training` problems).
    monitor: usize,
    dir: PathBuf,
    log: MetricsLog,
    pb: ProgressBar,
    quiet: bool,
    /// Decoding budget (actions) of every probe and rollout.
    max_new: usize,
    /// Wall time of earlier sessions of this run (from the checkpoint).
    wall_before: f64,
    session_start: Instant,
    /// The rollout buffer of the current stage, if it draws rollouts.
    buffer: Option<RolloutBuffer>,
    _dev: std::marker::PhantomData<D>,
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

    fn log(
        &mut self,
        stage: &str,
        step: u64,
        split: &str,
        metric: &str,
        value: f64,
        elapsed_s: f64,
    ) -> Result<()> {
        self.log.push(&Row {
            stage: stage.into(),
            step,
            split: split.into(),
            metric: metric.into(),
            value,
            elapsed_s,
        })
    }

    /// Runs probe `i` on its first `limit` problems and logs its metrics
    /// (the grader's accuracy, pass@n for n > 1, and the teacher-forced
    /// loss of the reference completions). `decoder` is `model` in decoding
    /// mode (built once for all the probes run on the same weights).
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &mut self,
        model: &Transformer<D>,
        decoder: &CachedDecoder,
        stage: &str,
        step: u64,
        i: usize,
        limit: usize,
        elapsed_s: f64,
    ) -> Result<ProbeResult> {
        let (res, nll) = self.measure(model, decoder, i, limit)?;
        let p = &self.probes[i];
        let (name, metric, n) = (
            p.cfg.name.clone(),
            p.cfg.grader.metric(),
            p.cfg.decoder.samples(),
        );
        self.log(stage, step, &name, metric, res.accuracy(), elapsed_s)?;
        if n > 1 {
            self.log(
                stage,
                step,
                &name,
                &format!("pass@{n}"),
                res.pass_at_n(),
                elapsed_s,
            )?;
        }
        self.log(stage, step, &name, "loss", nll, elapsed_s)?;
        self.log(
            stage,
            step,
            &name,
            "backspaces",
            res.backspaces_per_answer(),
            elapsed_s,
        )?;
        if let Some(f) = res.backspace.fix_rate() {
            self.log(stage, step, &name, "fix_rate", f, elapsed_s)?;
        }
        let secs = res.seconds_per_problem();
        self.log(stage, step, &name, "seconds_per_problem", secs, elapsed_s)?;
        Ok(res)
    }

    /// Probe `i` on its first `limit` problems, and the teacher-forced loss
    /// of their reference completions, without logging.
    fn measure(
        &self,
        model: &Transformer<D>,
        decoder: &CachedDecoder,
        i: usize,
        limit: usize,
    ) -> Result<(ProbeResult, f64)> {
        let seed = self.cfg.experiment.seed;
        let p = &self.probes[i];
        let problems = &p.problems[..limit.min(p.problems.len())];
        // the same seeds after every stage: keyed by probe and sample only
        let res = run_probe(
            decoder,
            p.task.as_deref().unwrap_or(self.task.as_ref()),
            problems,
            &p.cfg,
            p.max_new,
            self.cfg.eval.batch_size,
            |k| rng_for(seed, &format!("probe/{}/{k}", p.cfg.name)),
        )?;
        let examples = problems
            .iter()
            .map(|p| Example::from_text(&p.prompt, &p.reference))
            .collect::<Result<Vec<_>, _>>()?;
        let nll = eval::mean_nll(model, &examples, self.cfg.eval.batch_size)?;
        Ok((res, nll))
    }

    /// Saves a checkpoint at `pos`, preceded by the rollout buffer when
    /// `pos` lies inside its refresh interval (a resumed run continues with
    /// it); older buffers are removed once the checkpoint is written.
    fn save(&self, model: &Transformer<D>, opt: &AdamW<D>, pos: Position) -> Result<()> {
        let needed = self
            .buffer
            .as_ref()
            .filter(|b| b.stage == pos.stage && b.filled_at < pos.step_in_stage);
        if let Some(b) = needed {
            b.save(&self.dir)?;
        }
        resume::save(
            &self.dir.join("checkpoint.safetensors"),
            self.cfg,
            model,
            opt,
            pos,
        )?;
        RolloutBuffer::remove_others(&self.dir, needed)
    }

    /// The frozen reference model of stage `si` (the weights it started
    /// from), for objectives that read one (DPO). Saved into the run folder
    /// when the stage starts, so a resumed run scores against the same
    /// weights; removed when the stage's boundary checkpoint is written.
    fn reference(
        &self,
        model: &Transformer<D>,
        si: usize,
        pos: Position,
    ) -> Result<Transformer<D>> {
        let path = reference_path(&self.dir, si);
        if pos.step_in_stage == 0 {
            let mut meta = std::collections::BTreeMap::new();
            meta.insert("stage".into(), si.to_string());
            meta.insert("role".into(), "frozen reference of the stage".into());
            checkpoint::save(&path, model, None, &meta)?;
        }
        let ck = checkpoint::Checkpoint::read(&path).with_context(|| {
            format!(
                "{}: the reference weights of stage {si} (delete the run folder to restart it)",
                path.display()
            )
        })?;
        Ok(ck.model(model.param(0).device())?)
    }

    /// Trains stage `si` from `pos`; returns the new position, how the
    /// stage ended, the training seconds and tokens.
    fn train_stage(
        &mut self,
        model: &mut Transformer<D>,
        opt: &mut AdamW<D>,
        si: usize,
        mut pos: Position,
        stop_after: Option<u64>,
    ) -> Result<(Position, StageEnd, f64, usize)> {
        let st = &self.cfg.stages[si];
        let seed = self.cfg.experiment.seed;
        let data = StageData::open(&st.data, si, self.cfg.model.max_len)?;
        let objective = st.objective.build();
        let rollouts = st.rollouts.as_ref().filter(|_| objective.uses_policy());
        let reference = if objective.needs_reference() {
            Some(self.reference(model, si, pos)?)
        } else {
            None
        };
        if let Some(rc) = rollouts {
            // resumed between two refreshes: continue with the saved buffer
            let start = pos.step_in_stage - pos.step_in_stage % rc.every;
            if start < pos.step_in_stage && self.buffer.is_none() {
                self.buffer = Some(RolloutBuffer::load(&self.dir, si, start)?);
            }
        }
        let (mut train_s, mut tokens) = (0.0, 0usize);
        let mut ema: Option<f64> = None;
        while pos.step_in_stage < st.steps {
            let gstep = global_step(self.cfg, si, pos.step_in_stage);
            if stop_after.is_some_and(|s| gstep >= s) {
                return Ok((pos, StageEnd::Stopped, train_s, tokens));
            }
            // the step being taken, numbered as metrics.csv numbers it
            // (global, 1-based), for every message about it
            let at = format!("stage {}, step {}", st.name, gstep + 1);
            let t0 = Instant::now();
            // (backspaces, finished) of a buffer refilled for this step,
            // logged with the step's training rows (so a resumed run,
            // which drops rows after its checkpoint, logs them once)
            let mut refreshed = None;
            let lr = lr_at(pos.step_in_stage, st.steps, st.warmup(), st.lr, st.min_lr);
            let policy = match rollouts {
                Some(rc) => {
                    let (b, fresh) = RolloutBuffer::refresh(
                        self.buffer.take(),
                        rc,
                        self.task.as_ref(),
                        model,
                        seed,
                        si,
                        pos.step_in_stage,
                        self.max_new,
                    )
                    .with_context(|| format!("{at}: rollouts"))?;
                    refreshed = fresh.then(|| b.stats());
                    let rows = b.draw(seed, si, pos.step_in_stage, rc.batch_size);
                    self.buffer = Some(b);
                    rows
                }
                None => vec![],
            };
            let mut batch = data
                .batch(
                    self.task.as_ref(),
                    model,
                    seed,
                    si,
                    pos.step_in_stage,
                    st.batch_size,
                    self.max_new,
                    objective.batch_kind(),
                    &policy,
                )
                .with_context(|| format!("{at}: drawing the batch"))?;
            if let (Some(frozen), TrainBatch::Pairs(p)) = (&reference, &mut batch) {
                p.ref_logp = sequence_logprobs(&D::logits(frozen, &p.rows), &p.rows)?;
            }
            let mut dropout = Dropout::new(
                model.cfg.dropout,
                sub_seed(seed, &format!("dropout/{si}/{}", pos.step_in_stage)),
            );
            let spec = StepSpec {
                objective: objective.as_ref(),
                lr,
                grad_clip: st.grad_clip,
            };
            let stats = match crate::train::train_step(model, opt, &batch, &spec, &mut dropout) {
                Ok(s) => s,
                Err(e) => match e.downcast_ref::<NonFiniteLoss>() {
                    // logged like any step's loss, so the summary finds it
                    // where it finds every other measurement
                    Some(d) => {
                        let name = st.name.clone();
                        self.log(&name, gstep + 1, "train", "loss", d.loss, pos.elapsed_s)?;
                        self.say(format!("[{name}] step {}: {e}", gstep + 1));
                        return Ok((pos, StageEnd::Diverged(gstep + 1), train_s, tokens));
                    }
                    None => return Err(e.context(at)),
                },
            };
            let dt = t0.elapsed().as_secs_f64();
            train_s += dt;
            tokens += batch.rows().num_tokens();
            pos.step_in_stage += 1;
            pos.elapsed_s += dt;
            pos.wall_s = self.wall_now();
            let gstep = global_step(self.cfg, si, pos.step_in_stage);
            let name = st.name.clone();
            for (metric, value) in [
                ("loss", stats.loss),
                ("lr", lr),
                ("grad_norm", stats.grad_norm),
            ] {
                self.log(&name, gstep, "train", metric, value, pos.elapsed_s)?;
            }
            if let Some((bksp, finished)) = refreshed {
                self.log(&name, gstep, "rollouts", "backspaces", bksp, pos.elapsed_s)?;
                self.log(
                    &name,
                    gstep,
                    "rollouts",
                    "finished",
                    finished,
                    pos.elapsed_s,
                )?;
            }
            let e = ema.map_or(stats.loss, |e| 0.95 * e + 0.05 * stats.loss);
            ema = Some(e);
            self.pb.inc(1);
            self.pb
                .set_message(format!("{name} loss {e:.4} lr {lr:.2e}"));
            let last = pos.step_in_stage == st.steps;
            if !last && st.eval_every > 0 && pos.step_in_stage.is_multiple_of(st.eval_every) {
                let limit = self.cfg.eval.val_during_training;
                let decoder = CachedDecoder::new(model);
                let res = self.probe(
                    model,
                    &decoder,
                    &name,
                    gstep,
                    self.monitor,
                    limit,
                    pos.elapsed_s,
                )?;
                self.say(format!(
                    "[{name}] step {gstep}: train loss {e:.4}, {} {} {:.1}% ({} questions)",
                    self.probes[self.monitor].cfg.name,
                    self.probes[self.monitor].cfg.grader.metric(),
                    100.0 * res.accuracy(),
                    res.n
                ));
            }
            if !last
                && st.checkpoint_every > 0
                && pos.step_in_stage.is_multiple_of(st.checkpoint_every)
            {
                self.save(model, opt, pos)?;
            }
        }
        Ok((pos, StageEnd::Done, train_s, tokens))
    }
}

/// Where stage `si`'s frozen reference weights live while it trains.
fn reference_path(dir: &Path, si: usize) -> PathBuf {
    dir.join(format!("reference-{si}.safetensors"))
}

/// The probes of `cfg` with their problems; checks that each can grade
/// (a verifier grader needs a task with a verifier).
fn build_probes(cfg: &ExperimentConfig, task: &dyn Task) -> Result<Vec<Probe>> {
    let seed = cfg.experiment.seed;
    cfg.eval
        .effective_probes()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("eval.probes[{i}]");
            let own = match p.task_kind() {
                Some(kind) => {
                    let k = crate::tasks::registry::kind(kind)
                        .with_context(|| format!("{at}.task"))?;
                    // seeded like the experiment's task: the same kind
                    // and [data] give the same splits
                    let t = (k.build)(&p.task_data(), sub_seed(seed, "data"))
                        .with_context(|| format!("{at}.task"))?;
                    if t.max_seq_len() > cfg.model.max_len {
                        bail!(
                            "{at}.task: its longest sequence has {} tokens; model.max_len = {} is too short",
                            t.max_seq_len(),
                            cfg.model.max_len
                        );
                    }
                    Some(t)
                }
                None => None,
            };
            let t: &dyn Task = own.as_deref().unwrap_or(task);
            let problems = t.problems(&p.split).with_context(|| format!("{at}.split"))?;
            p.decoder.check_task(t).with_context(|| format!("{at}.decoder"))?;
            if let Some(first) = problems.first() {
                grade(t, p.grader, first, &first.reference)
                    .with_context(|| format!("{at}.grader"))?;
            }
            let max_new = t.max_answer_len() + 1;
            Ok(Probe {
                cfg: p,
                problems,
                task: own,
                max_new,
            })
        })
        .collect()
}

/// Removes everything in a run's folder but its lock file (`--fresh`): the
/// lock stays held, so no other process starts the run meanwhile.
fn clear_run_dir(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_name() == lockfile::RUN_LOCK {
            continue;
        }
        let p = e.path();
        let removed = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Runs (or resumes) the experiment `spec` on `dev`; returns the summary,
/// or None if stopped early by `opts.stop_after`. Holds the run's lock
/// file while it works: if another process holds it, waits
/// (`opts.wait_for_lock`) or returns a [`RunBusy`] error.
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
    // the lock comes first: a second process on the same sweep (another
    // shard's job, a requeued task, a user's rerun) never writes here
    // while this one trains, and vice versa
    let lock_path = dir.join(lockfile::RUN_LOCK);
    let _lock = match lockfile::try_acquire(&lock_path) {
        Ok(l) => l,
        Err(LockError::Busy { holder, .. }) if opts.wait_for_lock => {
            if !opts.quiet {
                eprintln!(
                    "run {} is being trained by another process ({holder}); waiting for it",
                    spec.id
                );
            }
            lockfile::acquire(&lock_path)?
        }
        Err(LockError::Busy { holder, .. }) => {
            return Err(RunBusy {
                id: spec.id.clone(),
                holder,
            }
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    if opts.fresh {
        clear_run_dir(&dir)?;
    }
    if summary_path.exists() && !opts.fresh {
        match read_summary(&summary_path) {
            Ok(s) => {
                // finished; the checkpoint is checked cheaply (its header and
                // size, not every byte), as a run is only ever skipped here
                match checkpoint::check_header(&ckpt_path) {
                    Ok(()) if !opts.quiet => eprintln!(
                        "run {} already finished ({}); pass --fresh to redo it",
                        s.run_id,
                        dir.display()
                    ),
                    Ok(()) => {}
                    // said even with --quiet: nothing else would tell
                    Err(e) => warn(
                        opts,
                        damaged_final_checkpoint(&s.run_id, &e, &retrain_of(opts, &dir)),
                    ),
                }
                return Ok(Some(s));
            }
            // a truncated summary: the final checkpoint is still there, so
            // resuming re-evaluates and writes it again
            Err(e) => eprintln!("warning: {e:#}; evaluating the run again"),
        }
    }
    if opts.require_resume && !ckpt_path.exists() {
        bail!("--resume: no checkpoint at {}", ckpt_path.display());
    }
    checkpoint::write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    // errors about the config's settings name the file they come from, as
    // the config's own validation does
    let source = opts
        .config_path
        .clone()
        .unwrap_or_else(|| dir.join("config.toml"));
    let in_config = || format!("invalid config {}", source.display());
    crate::experiment::memory::check(cfg).with_context(in_config)?;

    let kind = crate::tasks::registry::kind(&cfg.experiment.kind)?;
    let task = (kind.build)(&cfg.data, sub_seed(seed, "data")).with_context(in_config)?;
    let need = task.max_seq_len();
    if need > cfg.model.max_len {
        return Err(anyhow::anyhow!(
            "model.max_len = {} is too short: the task's longest sequence (incl. the long split, <bos> and <eos>) has {need} tokens",
            cfg.model.max_len
        ))
        .with_context(in_config);
    }
    let probes = build_probes(cfg, task.as_ref()).with_context(in_config)?;
    // watched during training: the probe of the task's first split (val)
    // if there is one, else the first probe
    let first_split = task
        .splits()
        .first()
        .cloned()
        .context("task has no splits")?;
    let monitor = probes
        .iter()
        .position(|p| p.cfg.split == first_split)
        .unwrap_or(0);
    // the probe whose wrong answers the summary shows
    let report = probes
        .iter()
        .position(|p| p.cfg.name == "test")
        .unwrap_or(0);

    let mut model =
        Transformer::new(&cfg.model, &dev, sub_seed(seed, "init")).map_err(anyhow::Error::msg)?;
    let mut shared = match opts.share_first_stage {
        true => SharedStage::of(cfg, &opts.results_root)?,
        false => None,
    };
    if let Some(sh) = shared.as_mut() {
        if !ckpt_path.exists() && sh.adopt_or_lead(&dir)? && !opts.quiet && opts.progress.is_none()
        {
            eprintln!(
                "{}: stage {:?} adopted from a run that trained it alike",
                dir.display(),
                cfg.stages[0].name
            );
        }
    }
    let (mut pos, mut resumed_opt) = if ckpt_path.exists() {
        resume::load(&ckpt_path, cfg, &mut model).map_err(|mut e| {
            if let Some(u) = e.downcast_mut::<resume::UnusableCheckpoint>() {
                u.retrain = retrain_of(opts, &dir);
            }
            e
        })?
    } else {
        (Position::default(), None)
    };
    if pos.stage > 0 {
        // stage 1 is done here (trained, adopted or published): nothing to share
        shared = None;
    }
    let resume_step = ckpt_path.exists().then(|| pos.global(cfg));
    let log = MetricsLog::open(&dir.join("metrics.csv"), resume_step).map_err(|e| {
        match e.downcast_ref::<crate::metrics::MetricsGap>() {
            Some(gap) => anyhow::anyhow!("{gap}; {}", retrain_of(opts, &dir)),
            None => e,
        }
    })?;
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
    let mut r = Runner::<D> {
        cfg,
        max_new: task.max_answer_len() + 1,
        task,
        probes,
        monitor,
        dir: dir.clone(),
        log,
        pb,
        quiet: opts.quiet,
        wall_before: pos.wall_s,
        session_start,
        buffer: None,
        _dev: std::marker::PhantomData,
    };
    if let Some(step) = resume_step {
        let msg = format!("resuming {} from global step {step}", dir.display());
        // a batch job's log (no terminal, so no bars) still says it resumed
        match (opts.quiet, r.pb.is_hidden()) {
            (true, _) => {}
            (false, true) => eprintln!("{msg}"),
            (false, false) => r.say(msg),
        }
    }
    r.say(format!(
        "model: {} parameters; results in {}",
        model.num_params(),
        dir.display()
    ));

    let mut wrong = None;
    let mut diverged = None;
    for si in pos.stage..cfg.stages.len() {
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
        let (p, end, train_s, tokens) =
            r.train_stage(&mut model, &mut opt, si, pos, opts.stop_after)?;
        pos = p;
        match end {
            StageEnd::Done => {}
            StageEnd::Stopped => {
                pos.wall_s = r.wall_now();
                r.save(&model, &opt, pos)?;
                r.pb.abandon();
                return Ok(None);
            }
            StageEnd::Diverged(step) => {
                // A diverged run ends here, finished, with its divergence in
                // summary.json: training on would only repeat the non-finite
                // loss, and the probes would grade garbage. The weights the
                // last step left are saved (a finished run always has its
                // checkpoint; they show what diverged).
                pos.wall_s = r.wall_now();
                r.save(&model, &opt, pos)?;
                diverged = Some(step);
                break;
            }
        }
        // end of stage: every probe (the forgetting table), then checkpoint
        let gstep = global_step(cfg, si + 1, 0);
        r.log(
            &st.name,
            gstep,
            "train",
            "tokens_per_s",
            tokens as f64 / train_s.max(1e-9),
            pos.elapsed_s,
        )?;
        // one decoder (host copy of the weights) for every probe
        let decoder = CachedDecoder::new(&model);
        for i in 0..r.probes.len() {
            let res = r.probe(
                &model,
                &decoder,
                &st.name,
                gstep,
                i,
                usize::MAX,
                pos.elapsed_s,
            )?;
            let pc = &r.probes[i].cfg;
            r.say(format!(
                "[{}] after stage: {} {} {:.1}% ({}/{})",
                st.name,
                pc.name,
                pc.grader.metric(),
                100.0 * res.accuracy(),
                res.correct,
                res.samples
            ));
            if i == report {
                wrong = Some(res.wrong_examples);
            }
        }
        pos = Position {
            stage: si + 1,
            step_in_stage: 0,
            elapsed_s: pos.elapsed_s,
            wall_s: r.wall_now(),
        };
        r.save(&model, &opt, pos)?;
        if let Some(sh) = shared.as_mut().filter(|_| si == 0) {
            sh.publish(&dir)?;
        }
        let frozen = reference_path(&dir, si);
        if frozen.exists() {
            std::fs::remove_file(&frozen)
                .with_context(|| format!("removing {}", frozen.display()))?;
        }
        if opts.stop_after == Some(gstep) && si + 1 < cfg.stages.len() {
            // stopped exactly at a stage boundary: leave the checkpoint as
            // the boundary save wrote it, as a kill right after it would
            r.pb.abandon();
            return Ok(None);
        }
    }
    r.pb.finish_and_clear();
    let batch_size = cfg.eval.batch_size;
    let val_examples = r.probes[monitor]
        .problems
        .iter()
        .map(|p| Example::from_text(&p.prompt, &p.reference))
        .collect::<Result<Vec<_>, _>>()?;
    let val_loss = match diverged {
        // not measured on weights whose training loss was not finite
        Some(_) => f64::NAN,
        None => eval::mean_nll(&model, &val_examples, batch_size)?,
    };
    let wrong = match wrong {
        _ if diverged.is_some() => vec![],
        Some(w) => w,
        // the last stage finished in an earlier session: the same probe,
        // same problems and seeds, gives the same answers again
        None => {
            let decoder = CachedDecoder::new(&model);
            r.measure(&model, &decoder, report, usize::MAX)?
                .0
                .wrong_examples
        }
    };
    // per-stage results come from metrics.csv, the one record that
    // survives interrupted sessions
    let rows = crate::metrics::read(&dir.join("metrics.csv"))?;
    let probe_cfgs: Vec<ProbeConfig> = r.probes.iter().map(|p| p.cfg.clone()).collect();
    let (after_stage, timings): (_, Vec<StageTiming>) = stage_results(cfg, &probe_cfgs, &rows);

    let total_steps = global_step(cfg, cfg.stages.len(), 0);
    let diverged_at_step = first_non_finite_loss(&rows, &r.probes[monitor].cfg.name)
        .or(diverged)
        .or((!val_loss.is_finite()).then_some(total_steps));
    let final_em = after_stage
        .get(&cfg.stages[cfg.stages.len() - 1].name)
        .cloned()
        .unwrap_or_default();
    let final_n = r
        .probes
        .iter()
        .map(|p| (p.cfg.name.clone(), p.problems.len()))
        .collect();
    let summary = Summary {
        experiment: cfg.experiment.name.clone(),
        run_id: spec.id.clone(),
        seed,
        git_commit: provenance::git_commit(),
        rewind_version: env!("CARGO_PKG_VERSION").into(),
        dfdx_version: provenance::DFDX_VERSION.into(),
        device: device_name.into(),
        threads: provenance::rayon_threads(),
        num_params: model.num_params(),
        exact_match: final_em,
        backspace: final_backspace(cfg, &probe_cfgs, &rows),
        timing: final_timing(cfg, &probe_cfgs, &rows),
        n: final_n,
        val_loss,
        after_stage,
        stages: timings,
        wall_s: r.wall_now(),
        wrong_examples: wrong,
        diverged_at_step,
    };
    checkpoint::write_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if let Err(e) = crate::plot::plot_training_run(&dir.join("metrics.csv"), &dir) {
        eprintln!("warning: could not plot {}: {e:#}", dir.display());
    }
    if let Some(step) = summary.diverged_at_step {
        warn(
            opts,
            format!(
                "run {} diverged: a loss was not finite from step {step} (see {})",
                spec.id,
                dir.join("metrics.csv").display()
            ),
        );
    }
    Ok(Some(summary))
}

/// [`retrain_hint`] for a run started with `opts` (sweeps share first
/// stages; single runs do not).
fn retrain_of(opts: &RunOptions, dir: &Path) -> String {
    retrain_hint(opts.config_path.as_deref(), dir, opts.share_first_stage)
}

/// Prints a warning on stderr whatever `quiet` says, above the progress
/// bars when there are some.
fn warn(opts: &RunOptions, msg: String) {
    match &opts.progress {
        Some(mp) => mp.suspend(|| eprintln!("warning: {msg}")),
        None => eprintln!("warning: {msg}"),
    }
}

/// How to train the run in `dir` again, for messages about a run that
/// cannot go on: `rewind run CONFIG --fresh` for a single run; for a run of
/// a sweep (`in_sweep`) deleting its folder, as `--fresh` would retrain
/// every run of the sweep.
pub fn retrain_hint(config: Option<&Path>, dir: &Path, in_sweep: bool) -> String {
    let config = config.map_or("CONFIG".into(), |c| c.display().to_string());
    match in_sweep {
        true => format!(
            "to train this run again, delete {} and rerun `rewind run {config}` (--fresh would \
             retrain every run of the sweep)",
            dir.display()
        ),
        false => format!(
            "to train it again, rerun `rewind run {config} --fresh` (or delete {})",
            dir.display()
        ),
    }
}

/// What to say about a finished run whose checkpoint fails the cheap check.
fn damaged_final_checkpoint(run_id: &str, e: &dyn std::fmt::Display, retrain: &str) -> String {
    format!(
        "run {run_id} is finished and its results (summary.json, metrics.csv) are valid, but its \
         checkpoint is not usable: {e}; `rewind sample` cannot read it; {retrain}"
    )
}
