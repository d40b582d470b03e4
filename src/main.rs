//! The `rewind` command line. Parsing only; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rewind::checkpoint::Checkpoint;
use rewind::config::ExperimentConfig;
use rewind::eval::{generate, Decoding};
use rewind::model::rng_for;
use rewind::run::{run, RunOptions};
use rewind::tasks::arithmetic::ArithmeticTask;
use rewind::{device, vocab};

/// rewind: train small transformers that learn to undo mistakes
/// (SequenceMatch, <bksp>) and to learn from failures without forgetting (UFT).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Threads for the matrix kernels (sets RAYON_NUM_THREADS). Default: the
    /// RAYON_NUM_THREADS environment variable, else 1 (fastest for small models on CPU).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate the experiment in a TOML config; writes results/<name>/<run-id>/
    /// (config.toml, metrics.csv, summary.json, checkpoint.safetensors, training.png).
    /// Rerunning a config resumes an unfinished run from its checkpoint and skips a finished one.
    Run {
        /// The experiment config, e.g. experiments/quickstart.toml
        config: PathBuf,
        /// Require an existing checkpoint to resume from (an error if there is none).
        #[arg(long, conflicts_with = "fresh")]
        resume: bool,
        /// Delete any earlier results of this run and start over.
        #[arg(long)]
        fresh: bool,
        /// Folder that receives results/<name>/...
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Print nothing while training.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Generate answers from a trained checkpoint, e.g. `rewind sample --checkpoint
    /// results/quickstart/<run>/checkpoint.safetensors "b10:12+34="`. The prompt is re-formatted
    /// the way the model was trained (padding, signs), then decoded.
    Sample {
        /// A checkpoint written by `rewind run`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Questions in the compact task format, e.g. "b10:12+34=".
        #[arg(required = true)]
        prompts: Vec<String>,
        /// 0 = greedy; > 0 samples at this temperature.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Samples per prompt (useful with --temperature).
        #[arg(long, default_value_t = 1)]
        num: usize,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Solve a Countdown or Game-of-24 puzzle exactly: prints one expression that uses each
    /// number once and equals the target, or `no solution`. Countdown rules: + * and exact /,
    /// subtraction larger-minus-smaller, all intermediates positive integers. `--game24`: exactly
    /// 4 numbers in 1..13, target 24, rational intermediates allowed.
    Solve {
        /// The input numbers, e.g. `25 5 5 33`.
        #[arg(required = true)]
        numbers: Vec<i64>,
        /// The target value.
        #[arg(long, allow_hyphen_values = true)]
        target: i64,
        /// Use the Game-of-24 rules.
        #[arg(long)]
        game24: bool,
    },
    /// Build datasets from a data config.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Countdown and Game-of-24 train/val/test sets of successful (D+) and failed (D-) search
    /// paths, statistics per strategy, and the symbolic search baseline, e.g.
    /// `rewind data countdown experiments/countdown_data.toml`.
    Countdown {
        /// A countdown data config (see experiments/countdown_data.toml).
        config: PathBuf,
        /// Output folder (default data/countdown/<config file stem>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn sample(
    checkpoint: PathBuf,
    prompts: Vec<String>,
    temperature: f32,
    num: usize,
    seed: u64,
) -> Result<()> {
    let ck = Checkpoint::read(&checkpoint)?;
    let cfg_text = ck
        .meta
        .get("config")
        .context("checkpoint has no experiment config in its metadata")?;
    let cfg = ExperimentConfig::from_toml(cfg_text).context("checkpoint's stored config")?;
    let dev = device::default_device();
    let model = ck.model(&dev)?;
    let task = ArithmeticTask::new(cfg.data.clone(), 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let decoding = if temperature > 0.0 {
        Decoding::Sample { temperature }
    } else {
        Decoding::Greedy
    };
    let mut rng = rng_for(seed, "sample");
    for text in prompts {
        let (a, op, b) = task
            .parse_prompt(&text)
            .map_err(|e| anyhow::anyhow!("prompt {text:?}: {e}"))?;
        let long = task.problem(a, op, b, false).prompt.len() < text.len();
        let p = task.problem(a, op, b, long);
        let ids = vocab::encode(&p.prompt)?;
        for g in generate(
            &model,
            &dev,
            &vec![ids; num],
            task.max_answer_len() + 4,
            decoding,
            &mut rng,
        ) {
            let out = vocab::decode(&g.output)?;
            let verdict = if g.finished && out == p.answer {
                "correct"
            } else {
                "wrong"
            };
            let actions = if g.actions.contains(&vocab::BKSP) {
                format!("  (actions: {})", vocab::decode(&g.actions)?)
            } else {
                String::new()
            };
            println!(
                "{} {}  [{verdict}; expected {}]{actions}",
                p.prompt, out, p.answer
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.threads {
        Some(n) => std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string()),
        None if std::env::var_os("RAYON_NUM_THREADS").is_none() => {
            std::env::set_var("RAYON_NUM_THREADS", "1")
        }
        None => {}
    }
    let result = match cli.command {
        Command::Run {
            config,
            resume,
            fresh,
            results,
            quiet,
        } => (|| {
            let cfg = ExperimentConfig::from_file(&config)?;
            let opts = RunOptions {
                results_root: results,
                fresh,
                require_resume: resume,
                stop_after: None,
                quiet,
            };
            let dev = device::default_device();
            let summary = run(&cfg, dev, device::NAME, &opts)?.context("run stopped early")?;
            println!(
                "{}",
                rewind::report::summary_text(&summary, &opts.results_root)
            );
            Ok(())
        })(),
        Command::Sample {
            checkpoint,
            prompts,
            temperature,
            num,
            seed,
        } => sample(checkpoint, prompts, temperature, num, seed),
        Command::Solve {
            numbers,
            target,
            game24,
        } => rewind::countdown::solve_command(&numbers, target, game24)
            .map(|line| println!("{line}")),
        Command::Data {
            what: DataCommand::Countdown { config, out },
        } => {
            rewind::countdown::data_command(&config, out.as_deref()).map(|text| println!("{text}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
