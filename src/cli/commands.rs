//! What the CLI subcommands do (main.rs only parses arguments).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::data::vocab;
use crate::eval::{generate_cached, Decoding};
use crate::experiment::config::ExperimentConfig;
use crate::experiment::run::{retrain_hint, run, RunOptions};
use crate::experiment::slurm::{sh_quote, SlurmOptions, SlurmPlan};
use crate::experiment::status::{run_state, RunState};
use crate::experiment::sweep::{self, RunSpec, SweepOptions};
use crate::model::decode::CachedDecoder;
use crate::model::device;
use crate::model::rng_for;
use crate::tasks::registry;
use crate::train::checkpoint::Checkpoint;

/// Arguments of `rewind run`.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    pub results: PathBuf,
    pub fresh: bool,
    pub resume: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub shard: Option<(usize, usize)>,
    pub quiet: bool,
}

/// Grids up to this many runs are listed run by run by `--dry-run`, each
/// with its state; larger ones show their first and last runs (building
/// each run's config and id takes about 0.1 ms, and a million-run grid
/// listed in full took 98 s and 4 GB).
pub const DRY_RUN_LIST_ALL: usize = 1000;

/// Runs shown at each end of a grid too large to list in full.
const DRY_RUN_ENDS: usize = 5;

/// `rewind run CONFIG --dry-run`: the runs of the grid (of the shard) and
/// where each stands, written to `out`. A grid of more than
/// [`DRY_RUN_LIST_ALL`] runs is counted from its axis lengths and shows its
/// first and last runs only; no run is built but those shown.
pub fn dry_run(config: &Path, args: &RunArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = ExperimentConfig::from_file(config)?;
    let grid =
        sweep::plan(&cfg).with_context(|| format!("invalid sweep in {}", config.display()))?;
    // the grid indices of the selection, without listing them
    let (first, step) = args.shard.unwrap_or((0, 1));
    let selected = grid.len().saturating_sub(first).div_ceil(step);
    let index = |k: usize| first + k * step;
    writeln!(
        out,
        "{}: {} run(s){}; axes: {}",
        grid.name,
        grid.len(),
        args.shard.map_or(String::new(), |(i, n)| format!(
            ", shard {i}/{n} has {selected}"
        )),
        if grid.axes.is_empty() {
            "none".to_string()
        } else {
            grid.axes
                .iter()
                .map(|a| format!("{} ({} values)", a.path, a.values.len()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    let shown: Vec<usize> = if selected <= DRY_RUN_LIST_ALL {
        (0..selected).collect()
    } else {
        (0..DRY_RUN_ENDS)
            .chain(selected - DRY_RUN_ENDS..selected)
            .collect()
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, &k) in shown.iter().enumerate() {
        if n == DRY_RUN_ENDS && selected > DRY_RUN_LIST_ALL {
            writeln!(
                out,
                "   ... {} more run(s) ...",
                selected - 2 * DRY_RUN_ENDS
            )?;
        }
        let spec = grid
            .spec(index(k))
            .with_context(|| format!("invalid sweep in {}", config.display()))?;
        let dir = crate::experiment::run::run_dir(&spec, &args.results);
        let state = run_state(&dir);
        let word = match state {
            RunState::Missing => "new",
            ref s => s.name(),
        };
        *counts.entry(word).or_default() += 1;
        let why = match &state {
            RunState::Failed { reason } => format!("  ({reason})"),
            RunState::Running { holder, .. } => format!("  ({holder})"),
            RunState::Damaged { what } => format!(
                "  (finished, but {what}; {})",
                retrain_hint(Some(config), &dir, grid.len() > 1)
            ),
            _ => String::new(),
        };
        writeln!(out, "{:>4}  {word:<9} {}{why}", spec.index, dir.display())?;
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if selected > DRY_RUN_LIST_ALL {
        writeln!(
            out,
            "of the {} run(s) shown: {} (states are listed for grids of up to {DRY_RUN_LIST_ALL} runs)",
            shown.len(),
            counts.join(", ")
        )?;
    } else {
        writeln!(out, "{}", counts.join(", "))?;
    }
    Ok(())
}

/// `rewind run CONFIG`: one run, or a sweep of runs.
pub fn run_command(config: &Path, args: &RunArgs) -> Result<()> {
    if args.dry_run {
        return dry_run(config, args, &mut std::io::stdout().lock());
    }
    let cfg = ExperimentConfig::from_file(config)?;
    let sw =
        sweep::expand(&cfg).with_context(|| format!("invalid sweep in {}", config.display()))?;
    let selected: Vec<&RunSpec> = match args.shard {
        Some(s) => sweep::shard(&sw.runs, s),
        None => sw.runs.iter().collect(),
    };
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Measured (issue 4 note): a single small-model run is fastest on
        // every core; concurrent runs each take an equal share.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let concurrent = args.jobs.max(1).min(selected.len().max(1));
        std::env::set_var("RAYON_NUM_THREADS", (cores / concurrent).max(1).to_string());
    }
    if sw.runs.len() == 1 && args.shard.is_none() {
        let opts = RunOptions {
            config_path: Some(config.to_path_buf()),
            results_root: args.results.clone(),
            fresh: args.fresh,
            require_resume: args.resume,
            quiet: args.quiet,
            ..Default::default()
        };
        let summary = run(&sw.runs[0], device::default_device(), device::NAME, &opts)?
            .context("run stopped early")?;
        println!(
            "{}",
            crate::experiment::report::summary_text(&summary, &args.results)
        );
        return Ok(());
    }
    if args.resume {
        bail!("--resume applies to a single run; a sweep always resumes unfinished runs");
    }
    let opts = SweepOptions {
        config_path: Some(config.to_path_buf()),
        results_root: args.results.clone(),
        fresh: args.fresh,
        jobs: args.jobs,
        shard: args.shard,
        quiet: args.quiet,
    };
    let report = sweep::run_sweep(&sw, &opts)?;
    let dir = args.results.join(&sw.name);
    let plots = sweep::plot(&dir);
    println!("== {} ==", sw.name);
    println!(
        "{}/{} run(s) finished in this invocation's selection",
        report.finished, report.selected
    );
    let probes: Vec<String> = cfg
        .eval
        .effective_probes()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let split = probes
        .iter()
        .find(|s| *s == "test")
        .unwrap_or(&probes[0])
        .clone();
    for (label, mean, min, max, n) in sweep::seed_means(&sw, &args.results, &split) {
        println!(
            "  {label:<40} {split} exact-match {:6.2}%  (min {:.2}%, max {:.2}%, {n} seed(s))",
            100.0 * mean,
            100.0 * min,
            100.0 * max
        );
    }
    if !report.diverged.is_empty() {
        println!(
            "{} run(s) diverged (a loss not finite; training stopped there, column diverged_at_step of summary.csv):",
            report.diverged.len()
        );
        for (id, step) in &report.diverged {
            println!("  {id}: from step {step}");
        }
    }
    println!("summary: {}", report.summary_csv.display());
    match plots {
        Ok(p) => println!(
            "plots: {} file(s) in {}",
            p.len(),
            dir.join("plots").display()
        ),
        Err(e) => eprintln!("warning: plotting failed: {e:#}"),
    }
    for (id, holder) in &report.waited_for {
        println!("  {id}: trained by another process ({holder}); this invocation waited for it");
    }
    if !report.stale.is_empty() {
        eprintln!(
            "note: {} folder(s) in {} are runs of a different config (not in this grid, not in summary.csv): {}",
            report.stale.len(),
            dir.display(),
            report.stale.join(", ")
        );
    }
    if !report.failed.is_empty() {
        let reasons: Vec<String> = report
            .failed
            .iter()
            .map(|(id, msg)| {
                let first = msg.lines().next().unwrap_or("");
                format!("  {id}: {first}")
            })
            .collect();
        bail!(
            "{} run(s) failed; finished results are kept. Each reason is in <run folder>/{}:\n{}\n\
             A run that was interrupted (killed, out of disk) resumes when you rerun; a config or \
             data error fails again until it is fixed.",
            report.failed.len(),
            sweep::ERROR_FILE,
            reasons.join("\n")
        );
    }
    Ok(())
}

/// `rewind merge CONFIG`: summary.csv and plots from whatever runs of the
/// grid are on disk (e.g. after copying shards from several machines).
pub fn merge_command(config: &Path, results: &Path) -> Result<()> {
    let cfg = ExperimentConfig::from_file(config)?;
    let sw = sweep::expand(&cfg)?;
    let (path, ids) = sweep::write_summary(&sw, results)?;
    println!(
        "{}: {}/{} runs finished -> {}",
        sw.name,
        ids.len(),
        sw.runs.len(),
        path.display()
    );
    let missing: Vec<_> = sw
        .runs
        .iter()
        .filter(|r| !ids.contains(&r.id))
        .map(|r| r.id.as_str())
        .collect();
    if !missing.is_empty() {
        println!("missing: {}", missing.join(", "));
    }
    let plots = sweep::plot(&results.join(&sw.name))?;
    println!("plots: {} file(s)", plots.len());
    Ok(())
}

/// `rewind status CONFIG`: where every run of the grid stands, from the
/// results folder alone.
pub fn status_command(config: &Path, results: &Path) -> Result<()> {
    let cfg = ExperimentConfig::from_file(config)?;
    let sw =
        sweep::expand(&cfg).with_context(|| format!("invalid sweep in {}", config.display()))?;
    print!("{}", crate::experiment::status::status_text(&sw, results));
    Ok(())
}

/// `rewind slurm CONFIG --shards N [--submit]`: writes the job array and
/// merge scripts under results/<name>/slurm/ and submits them, or prints
/// how to.
pub fn slurm_command(
    config: &Path,
    opts: &SlurmOptions,
    results: &Path,
    submit: bool,
) -> Result<()> {
    let binary = std::env::current_exe().context("finding the rewind binary's path")?;
    let workdir = std::env::current_dir().context("finding the current folder")?;
    let command_line: Vec<String> = std::env::args().map(|a| sh_quote(&a)).collect();
    let (plan, notes) = SlurmPlan::new(
        config,
        opts,
        results,
        &binary,
        &workdir,
        &command_line.join(" "),
    )?;
    for n in notes {
        eprintln!("note: {n}");
    }
    plan.write()?;
    println!(
        "{}: {} run(s) in {} array task(s); wrote {}/ (array.sbatch, merge.sbatch, {}, submit.json)",
        plan.name,
        plan.runs,
        plan.shards,
        plan.slurm_dir.display(),
        plan.config_copy
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    let status = format!(
        "{} status {} --results {}",
        sh_quote(&binary.to_string_lossy()),
        sh_quote(&config.to_string_lossy()),
        sh_quote(&results.to_string_lossy())
    );
    if !submit {
        println!("submit with (or pass --submit):");
        println!(
            "  sbatch --parsable {}    # prints the array's job id, J",
            plan.array_path().display()
        );
        println!(
            "  sbatch --dependency=afterany:J {}",
            plan.merge_path().display()
        );
        println!("then follow with: {status}");
        return Ok(());
    }
    let (array, merge) = plan.submit("sbatch")?;
    println!("submitted array job {array} (tasks 0-{}) and merge job {merge} (starts when the array has ended)", plan.shards - 1);
    println!("follow with:");
    println!("  {status}");
    println!("  squeue -j {array},{merge}");
    println!("  tail {}/{array}_*.err", plan.logs().display());
    println!(
        "summary.csv and plots: {} (written by the merge job)",
        plan.results.join(&plan.name).display()
    );
    Ok(())
}

/// `rewind plot DIR`: regenerate plots from CSV files alone. DIR is either
/// `results/<name>` (a sweep: summary.csv) or one run's folder (metrics.csv).
pub fn plot_command(dir: &Path) -> Result<()> {
    let written = if dir.join("summary.csv").exists() {
        sweep::plot(dir)?
    } else if dir.join("metrics.csv").exists() {
        crate::plot::plot_training_run(&dir.join("metrics.csv"), dir)?
    } else {
        bail!(
            "{}: neither summary.csv (a sweep folder) nor metrics.csv (a run folder) is there",
            dir.display()
        );
    };
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

/// `rewind list`: the experiment kinds and the configs in `dir`.
pub fn list_command(dir: &Path) -> Result<()> {
    list(dir, &mut std::io::stdout().lock())
}

/// [`list_command`], written to `out`. A config's runs are counted from its
/// axis lengths, so a grid of a million runs costs nothing to list.
pub fn list(dir: &Path, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "experiment kinds:")?;
    for k in registry::KINDS {
        writeln!(out, "  {:<12} {}", k.name, k.description)?;
    }
    writeln!(out, "\nconfigs in {}:", dir.display())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        match ExperimentConfig::from_file(&f) {
            Ok(cfg) => {
                // counted from the axis lengths: a large grid is not built
                let runs = sweep::plan(&cfg).map(|g| g.len()).unwrap_or(0);
                writeln!(
                    out,
                    "  {name:<28} {:<11} {runs:>3} run(s)  {}",
                    cfg.experiment.kind, cfg.experiment.description
                )?;
            }
            Err(_) => writeln!(out, "  {name:<28} (not an experiment config: a data config or invalid; `rewind run --dry-run` tells)")?,
        }
    }
    Ok(())
}

/// `rewind sample`: decode answers to user prompts from a checkpoint.
pub fn sample_command(
    checkpoint: &Path,
    prompts: &[String],
    temperature: f32,
    num: usize,
    seed: u64,
) -> Result<()> {
    if !(temperature.is_finite() && temperature >= 0.0) {
        bail!("--temperature {temperature}: must be a finite number >= 0 (0 = greedy)");
    }
    if num == 0 {
        bail!("--num 0: give at least 1 sample per prompt");
    }
    let ck = Checkpoint::read(checkpoint)?;
    let cfg_text = ck
        .meta
        .get("config")
        .context("checkpoint has no experiment config in its metadata")?;
    let cfg = ExperimentConfig::from_toml(cfg_text).context("checkpoint's stored config")?;
    let dev = device::default_device();
    let model = ck.model(&dev)?;
    let task = (registry::kind(&cfg.experiment.kind)?.build)(&cfg.data, 0)?;
    let decoding = if temperature > 0.0 {
        Decoding::Sample {
            temperature,
            top_p: 1.0,
        }
    } else {
        Decoding::Greedy
    };
    let mut rng = rng_for(seed, "sample");
    let decoder = CachedDecoder::new(&model);
    for text in prompts {
        let (prompt, expected) = task
            .user_prompt(text)
            .with_context(|| format!("prompt {text:?}"))?;
        let ids = vocab::encode(&prompt)?;
        let budget = task.max_answer_len() + 4;
        for g in generate_cached(&decoder, &vec![ids; num], budget, decoding, &mut rng) {
            let out = vocab::decode(&g.output)?;
            let verdict = match &expected {
                Some(e) if g.finished && &out == e => format!("correct; expected {e}"),
                Some(e) => format!("wrong; expected {e}"),
                None => "no reference answer".into(),
            };
            let actions = if g.actions.contains(&vocab::BKSP) {
                format!("  (actions: {})", vocab::decode(&g.actions)?)
            } else {
                String::new()
            };
            println!("{prompt} {out}  [{verdict}]{actions}");
        }
    }
    Ok(())
}
