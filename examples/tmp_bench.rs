// TEMPORARY (not for commit): stands in for `rewind bench` until main.rs is wired.
use clap::{Parser, Subcommand};
#[derive(Parser)]
struct Cli {
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}
#[derive(Subcommand)]
enum Command {
    /// Benchmarks for the performance table: `rewind bench train-step --help`.
    Bench {
        #[command(subcommand)]
        what: rewind::bench::BenchCommand,
    },
}
fn main() {
    let cli = Cli::parse();
    match cli.threads {
        Some(n) => std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string()),
        None if std::env::var_os("RAYON_NUM_THREADS").is_none() => {
            std::env::set_var("RAYON_NUM_THREADS", "1")
        }
        None => {}
    }
    let result: anyhow::Result<()> = match cli.command {
        Command::Bench { what } => {
            rewind::bench::bench_command(&what).map(|text| println!("{text}"))
        }
    };
    result.unwrap();
}
