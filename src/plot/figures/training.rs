//! The standard figure of a training run (`training.png` / `training.svg`:
//! loss | exact-match accuracy, one line per split) from the run's
//! `metrics.csv`; also the per-split series the sweep's learning curves use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::metrics::{self, Row};
use crate::plot::engine::{panels, LinePlot, Series};

use super::ACC_RANGE;

/// Reads a run's metrics.csv (long/tidy format, header:
/// `stage,step,split,metric,value,elapsed_s`) and writes `training.png` and
/// `training.svg` into `out_dir`: left panel loss (every split that has
/// "loss", log y), right panel exact-match accuracy (every split that has
/// "exact_match", y in [0, 1]). Returns the written paths.
///
/// Missing metrics just give fewer series (an empty panel says "no data"); an
/// empty or malformed CSV is an error naming the file and line.
pub fn plot_training_run(metrics_csv: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let rows = read_run_metrics(metrics_csv)?;
    let loss = metric_series(&rows, "loss");
    let acc = metric_series(&rows, "exact_match");
    let plots = [
        LinePlot {
            title: "Loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: loss,
            log_y: true,
            ..Default::default()
        },
        LinePlot {
            title: "Exact-match accuracy".into(),
            x_label: "step".into(),
            y_label: "exact match".into(),
            series: acc,
            y_range: Some(ACC_RANGE),
            ..Default::default()
        },
    ];
    let mut written = Vec::new();
    for name in ["training.png", "training.svg"] {
        let out = out_dir.join(name);
        panels(&plots, &out)?;
        written.push(out);
    }
    Ok(written)
}

/// The rows of a run's metrics.csv ([`metrics::read`]); a file without data
/// rows is an error naming it, since there is nothing to plot.
pub(super) fn read_run_metrics(path: &Path) -> Result<Vec<Row>> {
    let rows = metrics::read(path)?;
    if rows.is_empty() {
        bail!("{}: no data rows after the header", path.display());
    }
    Ok(rows)
}

/// One series per split that reports `metric`, points sorted by step.
/// Splits come in the order train, val, test, long, then first appearance.
pub(super) fn metric_series(rows: &[Row], metric: &str) -> Vec<Series> {
    let mut order: Vec<&str> = Vec::new();
    let mut points: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
    for r in rows.iter().filter(|r| r.metric == metric) {
        if !points.contains_key(r.split.as_str()) {
            order.push(&r.split);
        }
        points
            .entry(&r.split)
            .or_default()
            .push((r.step as f64, r.value));
    }
    const CANONICAL: [&str; 4] = ["train", "val", "test", "long"];
    let rank = |s: &str| {
        CANONICAL
            .iter()
            .position(|c| *c == s)
            .unwrap_or(CANONICAL.len())
    };
    order.sort_by_key(|s| rank(s)); // stable: others keep first-appearance order
    order
        .into_iter()
        .map(|split| {
            let mut pts = points.remove(split).unwrap_or_default();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(split, pts)
        })
        .collect()
}
