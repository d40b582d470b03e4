//! The `rewind` command line. Parsing only; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use rewind::cli::commands::{self, RunArgs};

/// rewind: train small transformers that learn to undo mistakes
/// (SequenceMatch, <bksp>) and to learn from failures without forgetting (UFT).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Threads for the matrix kernels of each run (sets RAYON_NUM_THREADS). Default: the
    /// RAYON_NUM_THREADS environment variable, else for `run` the cores divided among the runs
    /// trained at once (a single run uses every core; a sweep with --jobs = cores uses 1 each),
    /// and 1 for other commands.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate the experiment in a TOML config: one run, or every run of its
    /// [sweep] grid. Writes results/<name>/<run-id>/ (config.toml, metrics.csv, summary.json,
    /// checkpoint.safetensors, training.png) and, for a sweep, results/<name>/summary.csv and
    /// plots/. Rerunning a config resumes unfinished runs from their checkpoints and skips
    /// finished ones.
    Run {
        /// The experiment config, e.g. experiments/quickstart.toml
        config: PathBuf,
        /// List the runs (id, folder, finished/partial/new) without training.
        #[arg(long)]
        dry_run: bool,
        /// Runs trained at the same time (threads). Default: the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Run only shard i of n of the grid (runs i, i+n, ...), e.g. `--shard 0/4`; for
        /// splitting a sweep over machines or a Slurm job array. Then `rewind merge`.
        #[arg(long)]
        shard: Option<String>,
        /// Require an existing checkpoint to resume from (single runs; an error if there is none).
        #[arg(long, conflicts_with = "fresh")]
        resume: bool,
        /// Delete earlier results of the selected runs and start over.
        #[arg(long)]
        fresh: bool,
        /// Folder that receives <name>/...
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Print nothing while training.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write results/<name>/summary.csv and plots from the runs of CONFIG's grid found on disk
    /// (e.g. after copying the folders of several shards into one results folder).
    Merge {
        config: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Where each run of CONFIG's grid stands, from the results folder alone: finished,
    /// running (a process holds the run's lock; who, and its last step), failed (the reason in
    /// its error.txt), partial (stopped; a rerun resumes it) or missing, with the counts.
    Status {
        config: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Run CONFIG's grid on a Slurm cluster as a job array: writes results/<name>/slurm/
    /// (array.sbatch: task i runs `rewind run --shard i/N`; merge.sbatch: `rewind merge` once
    /// the array has ended; the resolved config; submit.json) and, with --submit, submits both.
    /// A requeued or preempted task runs its shard again and resumes from the checkpoints.
    Slurm {
        config: PathBuf,
        #[command(flatten)]
        opts: rewind::experiment::slurm::SlurmOptions,
        /// Folder that receives <name>/...; must be on a file system every node shares.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Submit with sbatch (the array, then the merge job depending on it); without it, the
        /// scripts are written and the commands to submit them printed.
        #[arg(long)]
        submit: bool,
    },
    /// Regenerate plots from CSV alone: DIR is results/<name> (a sweep) or one run's folder.
    Plot { dir: PathBuf },
    /// Explain every config key of an experiment kind: type, default, meaning.
    Config {
        /// The experiment kind, e.g. `arithmetic` (`rewind list` shows them).
        #[arg(long)]
        explain: String,
    },
    /// Benchmarks for the performance table: `rewind bench train-step --help`.
    Bench {
        #[command(subcommand)]
        what: rewind::cli::bench::BenchCommand,
    },
    /// List the experiment kinds and the configs in experiments/ with their descriptions.
    List {
        #[arg(long, default_value = "experiments")]
        dir: PathBuf,
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
        /// 0 = greedy; > 0 samples at this temperature (a finite number).
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        temperature: f32,
        /// Samples per prompt (useful with --temperature), >= 1.
        #[arg(long, default_value_t = 1)]
        num: usize,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Solve a Countdown or Game-of-24 puzzle exactly: prints one expression that uses each
    /// number once and equals the target, or `no solution`. Countdown rules (the paper's): + *
    /// and exact / (never by 0), subtraction larger-minus-smaller, so every intermediate is a
    /// non-negative integer; 0 is allowed (`4+4*(9-9)` makes 4). `--game24`: exactly 4 numbers
    /// in 1..13, target 24, rational intermediates allowed.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.threads {
        Some(n) => std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string()),
        // `run` decides once it knows how many runs train at once
        None if std::env::var_os("RAYON_NUM_THREADS").is_none()
            && !matches!(cli.command, Command::Run { .. }) =>
        {
            std::env::set_var("RAYON_NUM_THREADS", "1")
        }
        None => {}
    }
    let result = match cli.command {
        Command::Run {
            config,
            dry_run,
            jobs,
            shard,
            resume,
            fresh,
            results,
            quiet,
        } => (|| {
            let args = RunArgs {
                results,
                fresh,
                resume,
                dry_run,
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                shard: shard
                    .as_deref()
                    .map(rewind::experiment::sweep::parse_shard)
                    .transpose()?,
                quiet,
            };
            commands::run_command(&config, &args)
        })(),
        Command::Merge { config, results } => commands::merge_command(&config, &results),
        Command::Status { config, results } => commands::status_command(&config, &results),
        Command::Slurm {
            config,
            opts,
            results,
            submit,
        } => commands::slurm_command(&config, &opts, &results, submit),
        Command::Plot { dir } => commands::plot_command(&dir),
        Command::List { dir } => commands::list_command(&dir),
        Command::Bench { what } => {
            rewind::cli::bench::bench_command(&what).map(|text| println!("{text}"))
        }
        Command::Config { explain } => {
            rewind::experiment::explain::explain(&explain).map(|t| println!("{t}"))
        }
        Command::Sample {
            checkpoint,
            prompts,
            temperature,
            num,
            seed,
        } => commands::sample_command(&checkpoint, &prompts, temperature, num, seed),
        Command::Solve {
            numbers,
            target,
            game24,
        } => rewind::tasks::countdown::solve_command(&numbers, target, game24)
            .map(|line| println!("{line}")),
        Command::Data {
            what: DataCommand::Countdown { config, out },
        } => rewind::tasks::countdown::data_command(&config, out.as_deref())
            .map(|text| println!("{text}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
