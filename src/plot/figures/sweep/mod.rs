//! The figures of a sweep of runs ([`plot_sweep`]), read from the sweep's
//! `summary.csv` (one row per run; parsed in `summary`) and each run's
//! `metrics.csv`: learning curves (`curves`), final accuracy against each
//! swept axis with a band over seeds (`axis`), and the forgetting heatmap
//! (`forgetting`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::plot::engine::{heatmap, panels_with};

mod axis;
mod curves;
mod forgetting;
mod summary;
mod tradeoff;

use axis::{axis_figure, Column};
use curves::curves;
use forgetting::forgetting;
use summary::read_summary;
use tradeoff::tradeoff;

/// Reads `results_dir/summary.csv` (one row per run) and each run's
/// `results_dir/<run_id>/metrics.csv`; writes PNG and SVG figures into
/// `results_dir/plots/` and returns the written paths:
///
/// - `curves`: train loss (EMA-smoothed, log y) and validation exact match
///   against step, one line per run (more than 8 runs are coloured by
///   configuration or by the first non-seed axis, as the legend says);
/// - `axis_<axis>` for each swept axis other than the seed: final exact match
///   against the axis's value, one panel per `final:<split>` column, one line
///   per combination of the other non-seed axes, the mean over seeds with a
///   min-max band (log x for positive numbers spanning 10x or more,
///   categories for strings and booleans); likewise `axis_<axis>_backspaces`,
///   `axis_<axis>_fix_rate` and `axis_<axis>_seconds_per_problem` from the
///   `backspaces:` / `fix_rate:` / `seconds_per_problem:` columns when any
///   run has them, and `axis_<axis>_forgetting` (success after the first
///   stage minus after the last) for sweeps of several stages;
/// - `tradeoff`: final success against seconds per problem (log x), one
///   point per probe and configuration (mean over seeds), one series per
///   probe, when the summary has `seconds_per_problem:` columns;
/// - `forgetting`: a heatmap of the exact match after each stage
///   (`after:<stage>:<split>` columns; the `final:` columns if there are
///   none), one row per run, runs of one configuration together.
///
/// Runs without a readable `metrics.csv` are left out of `curves` (with a
/// warning on stderr); when no run has one, `curves` is not written, so an
/// existing one is kept rather than replaced by an empty figure. A missing
/// or malformed `summary.csv` is an error naming the file (and line).
pub fn plot_sweep(results_dir: &Path) -> Result<Vec<PathBuf>> {
    let sweep = read_summary(&results_dir.join("summary.csv"))?;
    let out_dir = results_dir.join("plots");
    let mut written = Vec::new();
    let mut write_both = |stem: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        for ext in ["png", "svg"] {
            let out = out_dir.join(format!("{stem}.{ext}"));
            draw(&out)?;
            written.push(out);
        }
        Ok(())
    };

    match curves(&sweep, results_dir) {
        Some((curves, opts)) => write_both("curves", &|out| panels_with(&curves, &opts, out))?,
        // a committed sweep's findings without its run folders (a fresh
        // clone): the curves drawn when the runs were there stay as they are
        None => eprintln!(
            "warning: plot_sweep: no run has a metrics.csv; {} left as it was",
            out_dir.join("curves.png").display()
        ),
    }

    let mut stems: Vec<String> = Vec::new();
    for (a, axis) in sweep.axes.iter().enumerate() {
        if axis.is_seed {
            continue;
        }
        let families = [
            (Column::Final, String::new()),
            (Column::Drop, "_forgetting".to_string()),
        ]
        .into_iter()
        .chain(
            summary::EXTRA_METRICS
                .iter()
                .map(|&m| (Column::Extra(m), format!("_{m}"))),
        );
        for (column, suffix) in families {
            let Some((plots, opts)) = axis_figure(&sweep, a, column) else {
                continue;
            };
            let mut stem = format!("axis_{}{suffix}", sanitise(&axis.path));
            if stems.contains(&stem) {
                stem = format!("{stem}_{a}");
            }
            stems.push(stem.clone());
            write_both(&stem, &|out| panels_with(&plots, &opts, out))?;
        }
    }

    let table = forgetting(&sweep);
    write_both("forgetting", &|out| heatmap(&table, out))?;
    if let Some((plots, opts)) = tradeoff(&sweep) {
        write_both("tradeoff", &|out| panels_with(&plots, &opts, out))?;
    }
    Ok(written)
}

/// File-name-safe form of an axis path: `stages.0.lr` -> `stages_0_lr`.
fn sanitise(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
