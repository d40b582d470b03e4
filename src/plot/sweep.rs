//! Figures of a sweep of runs ([`plot_sweep`]), read from the sweep's
//! `summary.csv` (one row per run) and each run's `metrics.csv`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::{
    heatmap, metric_series, panels_with, read_metrics, Band, FigureOptions, Heatmap,
    LegendPlacement, LinePlot, Series, XScale, PALETTE,
};

/// Smoothing of the train loss in `curves`: exponential moving average weight.
const EMA: f64 = 0.95;
/// At most this many points per train-loss line (keeps the SVG small).
const CURVE_POINTS_MAX: usize = 1500;
/// Accuracy axis: [0, 1] plus a sliver, so values at 0 or 1 are not hidden under the frame.
const ACC_RANGE: (f64, f64) = (-0.025, 1.025);

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
///   categories for strings and booleans);
/// - `forgetting`: a heatmap of the exact match after each stage
///   (`after:<stage>:<split>` columns; the `final:` columns if there are
///   none), one row per run, runs of one configuration together.
///
/// Runs without a readable `metrics.csv` are left out of `curves` (with a
/// warning on stderr). A missing or malformed `summary.csv` is an error naming
/// the file (and line).
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

    let (curves, opts) = curves(&sweep, results_dir);
    write_both("curves", &|out| panels_with(&curves, &opts, out))?;

    let mut stems: Vec<String> = Vec::new();
    for (a, axis) in sweep.axes.iter().enumerate() {
        if axis.is_seed {
            continue;
        }
        let Some((plots, opts)) = axis_figure(&sweep, a) else {
            continue;
        };
        let mut stem = format!("axis_{}", sanitise(&axis.path));
        if stems.contains(&stem) {
            stem = format!("{stem}_{a}");
        }
        stems.push(stem.clone());
        write_both(&stem, &|out| panels_with(&plots, &opts, out))?;
    }

    let table = forgetting(&sweep);
    write_both("forgetting", &|out| heatmap(&table, out))?;
    Ok(written)
}

// ---------------------------------------------------------------------------
// summary.csv

/// A swept axis (`axis:<path>` column).
struct SweepAxis {
    path: String,
    /// Shortest unambiguous tail of the path (`lr` for `stages.0.lr`).
    short: String,
    is_seed: bool,
    /// Distinct non-empty values in axis order: ascending for numbers,
    /// `false`, `true` for booleans, first appearance for strings.
    values: Vec<String>,
    /// Numbers: `Some(log)`, log when all positive and spanning >= 10x;
    /// strings and booleans: `None` (categories).
    numeric: Option<bool>,
}

impl SweepAxis {
    /// Position of a value on the axis: the number, or the category index.
    fn position(&self, value: &str) -> Option<f64> {
        match self.numeric {
            Some(_) => value.parse::<f64>().ok(),
            None => self
                .values
                .iter()
                .position(|v| v == value)
                .map(|i| i as f64),
        }
    }

    fn x_scale(&self) -> XScale {
        match self.numeric {
            Some(true) => XScale::Log,
            Some(false) => XScale::Linear,
            None => XScale::Categorical(self.values.clone()),
        }
    }
}

struct Run {
    id: String,
    /// One value per axis ("" when the cell is empty).
    axis_values: Vec<String>,
    /// `final:<split>` values, one per `Sweep::finals`.
    finals: Vec<Option<f64>>,
    /// `after:<stage>:<split>` values, one per `Sweep::afters`.
    afters: Vec<Option<f64>>,
    /// All axis values, seeds last: `lr=0.001 divergence=kl seed=1`.
    label: String,
    /// The non-seed axis values (the configuration); empty without axes.
    config: String,
}

struct Sweep {
    axes: Vec<SweepAxis>,
    /// Split names of the `final:` columns.
    finals: Vec<String>,
    /// `(stage, split)` of the `after:` columns.
    afters: Vec<(String, String)>,
    runs: Vec<Run>,
}

fn summary_error(path: &Path, e: csv::Error) -> anyhow::Error {
    let what = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        _ => e.to_string(),
    };
    match e.position() {
        Some(p) => anyhow!(
            "{}: line {}: malformed summary row: {what}",
            path.display(),
            p.line()
        ),
        None => anyhow!("{}: malformed summary file: {what}", path.display()),
    }
}

fn read_summary(path: &Path) -> Result<Sweep> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening sweep summary {file}"))?;
    let header = reader
        .headers()
        .map_err(|e| summary_error(path, e))?
        .clone();
    if header.iter().all(|h| h.is_empty()) {
        bail!("{file}: line 1: empty summary file (expected a header with run_id, axis:..., final:...)");
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let Some(id_col) = col("run_id") else {
        bail!("{file}: line 1: header lacks column `run_id`");
    };
    let index_col = col("index");
    let mut axis_cols = Vec::new();
    let mut final_cols = Vec::new();
    let mut after_cols = Vec::new();
    let mut finals = Vec::new();
    let mut afters = Vec::new();
    let mut axis_paths = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(path) = h.strip_prefix("axis:") {
            axis_cols.push(i);
            axis_paths.push(path.to_string());
        } else if let Some(split) = h.strip_prefix("final:") {
            final_cols.push(i);
            finals.push(split.to_string());
        } else if let Some(rest) = h.strip_prefix("after:") {
            let Some((stage, split)) = rest.split_once(':') else {
                bail!("{file}: line 1: column `{h}` is not after:<stage>:<split>");
            };
            after_cols.push(i);
            afters.push((stage.to_string(), split.to_string()));
        }
    }

    let mut runs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| summary_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("");
        let number = |i: usize| -> Result<Option<f64>> {
            let s = cell(i);
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<f64>().map(Some).map_err(|_| {
                anyhow!(
                    "{file}: line {line}: column `{}`: {s:?} is not a number",
                    &header[i]
                )
            })
        };
        let id = cell(id_col).to_string();
        if id.is_empty() {
            bail!("{file}: line {line}: empty run_id");
        }
        if let Some(i) = index_col {
            let s = cell(i);
            if !s.is_empty() && s.parse::<i64>().is_err() {
                bail!("{file}: line {line}: column `index`: {s:?} is not an integer");
            }
        }
        runs.push(Run {
            id,
            axis_values: axis_cols.iter().map(|&i| cell(i).to_string()).collect(),
            finals: final_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<_>>()?,
            afters: after_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<_>>()?,
            label: String::new(),
            config: String::new(),
        });
    }
    if runs.is_empty() {
        bail!("{file}: no runs (no data rows after the header)");
    }

    let shorts = short_names(&axis_paths);
    let axes: Vec<SweepAxis> = axis_paths
        .into_iter()
        .zip(shorts)
        .enumerate()
        .map(|(a, (path, short))| {
            let values: Vec<&str> = runs.iter().map(|r| r.axis_values[a].as_str()).collect();
            let is_seed = path.rsplit('.').next() == Some("seed");
            let (values, numeric) = axis_values(&values);
            SweepAxis {
                path,
                short,
                is_seed,
                values,
                numeric,
            }
        })
        .collect();

    // Labels: non-seed axes in column order, then seeds.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for run in &mut runs {
        let part = |a: usize| {
            let v = &run.axis_values[a];
            let v = if v.is_empty() { "(none)" } else { v.as_str() };
            format!("{}={v}", axes[a].short)
        };
        let config: Vec<String> = (0..axes.len())
            .filter(|&a| !axes[a].is_seed)
            .map(part)
            .collect();
        let seeds: Vec<String> = (0..axes.len())
            .filter(|&a| axes[a].is_seed)
            .map(part)
            .collect();
        run.config = config.join(" ");
        let mut label = [config, seeds].concat().join(" ");
        if label.is_empty() {
            label = run.id.clone();
        }
        let n = seen.entry(label.clone()).or_default();
        *n += 1;
        if *n > 1 {
            label = format!("{label} [{}]", run.id);
        }
        run.label = label;
    }

    Ok(Sweep {
        axes,
        finals,
        afters,
        runs,
    })
}

/// Distinct non-empty values in axis order, and `Some(log)` for numbers.
fn axis_values(values: &[&str]) -> (Vec<String>, Option<bool>) {
    let mut distinct: Vec<String> = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        if !distinct.iter().any(|d| d == v) {
            distinct.push(v.to_string());
        }
    }
    let numbers: Option<Vec<f64>> = distinct
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    match numbers {
        Some(nums) if !nums.is_empty() => {
            let mut pairs: Vec<(f64, String)> = nums.iter().copied().zip(distinct).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (lo, hi) = (pairs[0].0, pairs[pairs.len() - 1].0);
            let log = lo > 0.0 && hi / lo >= 10.0;
            (pairs.into_iter().map(|p| p.1).collect(), Some(log))
        }
        _ => {
            let is_bool = !distinct.is_empty()
                && distinct
                    .iter()
                    .all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"));
            if is_bool {
                distinct.sort_by_key(|v| v.eq_ignore_ascii_case("true"));
            }
            (distinct, None)
        }
    }
}

/// For each dotted path, its shortest tail of components that no other path
/// ends with (`lr` for `stages.0.lr`, unless another axis also ends in `lr`).
fn short_names(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let comps: Vec<&str> = p.split('.').collect();
            for k in 1..=comps.len() {
                let tail = comps[comps.len() - k..].join(".");
                let clash = paths
                    .iter()
                    .enumerate()
                    .any(|(j, q)| j != i && (*q == tail || q.ends_with(&format!(".{tail}"))));
                if !clash {
                    return tail;
                }
            }
            p.clone()
        })
        .collect()
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

// ---------------------------------------------------------------------------
// Figures

/// Debiased exponential moving average of the finite values.
fn ema(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let (mut s, mut w) = (0.0, 0.0);
    points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|&(x, y)| {
            s = alpha * s + (1.0 - alpha) * y;
            w = alpha * w + (1.0 - alpha);
            (x, s / w)
        })
        .collect()
}

/// Every k-th point (and the last), at most about `max` points.
fn thin_out(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let stride = points.len().div_ceil(max);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % stride == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}

/// Learning curves of all runs: train loss | validation exact match.
fn curves(sweep: &Sweep, results_dir: &Path) -> (Vec<LinePlot>, FigureOptions) {
    let mut loss = Vec::new();
    let mut acc = Vec::new();
    let mut plotted: Vec<&Run> = Vec::new();
    for run in &sweep.runs {
        let path = results_dir.join(&run.id).join("metrics.csv");
        if !path.is_file() {
            eprintln!(
                "warning: plot_sweep: run {} has no {}; left out of the curves",
                run.id,
                path.display()
            );
            continue;
        }
        let rows = match read_metrics(&path) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!(
                    "warning: plot_sweep: run {} left out of the curves: {e:#}",
                    run.id
                );
                continue;
            }
        };
        let split = |metric: &str, split: &str| {
            metric_series(&rows, metric)
                .into_iter()
                .find(|s| s.name == split)
                .map(|s| s.points)
                .unwrap_or_default()
        };
        let train = thin_out(ema(&split("loss", "train"), EMA), CURVE_POINTS_MAX);
        loss.push(Series::new(run.label.clone(), train));
        acc.push(Series::new(run.label.clone(), split("exact_match", "val")));
        plotted.push(run);
    }

    // Colours: one per run while the palette lasts, else one per
    // configuration, else one per value of the first non-seed axis.
    let n = plotted.len();
    let mut opts = FigureOptions {
        legend: LegendPlacement::Right,
        ..Default::default()
    };
    if n > PALETTE.len() {
        let mut configs: Vec<&str> = plotted.iter().map(|r| r.config.as_str()).collect();
        configs.dedup();
        configs.sort_unstable();
        configs.dedup();
        let first = sweep.axes.iter().position(|a| !a.is_seed);
        let key: Box<dyn Fn(&Run) -> String> = match first {
            Some(_) if configs.len() <= PALETTE.len() => {
                opts.legend_title = format!("colour = configuration ({n} runs)");
                Box::new(|r: &Run| r.config.clone())
            }
            Some(a) => {
                let axis = &sweep.axes[a];
                opts.legend_title = format!("colour = {} ({n} runs)", axis.short);
                Box::new(move |r: &Run| {
                    let v = &r.axis_values[a];
                    let v = if v.is_empty() { "(none)" } else { v.as_str() };
                    format!("{}={v}", axis.short)
                })
            }
            None => Box::new(move |_: &Run| format!("all {n} runs")),
        };
        opts.color_groups = plotted.iter().map(|r| (r.label.clone(), key(r))).collect();
    }

    let plots = vec![
        LinePlot {
            title: format!("Train loss (EMA {EMA})"),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: loss,
            log_y: true,
            ..Default::default()
        },
        LinePlot {
            title: "Validation exact match".into(),
            x_label: "step".into(),
            y_label: "exact match".into(),
            series: acc,
            y_range: Some(ACC_RANGE),
            ..Default::default()
        },
    ];
    (plots, opts)
}

/// Final exact match against axis `a`: one panel per `final:` split with
/// data, one line per combination of the other non-seed axes (mean over
/// seeds, min-max band). `None` when there is no final accuracy at all.
fn axis_figure(sweep: &Sweep, a: usize) -> Option<(Vec<LinePlot>, FigureOptions)> {
    let axis = &sweep.axes[a];
    let splits: Vec<usize> = (0..sweep.finals.len())
        .filter(|&s| {
            sweep
                .runs
                .iter()
                .any(|r| r.finals[s].is_some_and(f64::is_finite))
        })
        .collect();
    if splits.is_empty() {
        return None;
    }
    let others: Vec<usize> = (0..sweep.axes.len())
        .filter(|&b| b != a && !sweep.axes[b].is_seed)
        .collect();
    let group_of = |r: &Run| -> String {
        others
            .iter()
            .map(|&b| {
                let v = &r.axis_values[b];
                let v = if v.is_empty() { "(none)" } else { v.as_str() };
                format!("{}={v}", sweep.axes[b].short)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut groups: Vec<String> = Vec::new();
    for r in &sweep.runs {
        let g = group_of(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }

    let mut counts: Vec<usize> = Vec::new();
    let mut plots = Vec::new();
    for &s in &splits {
        let mut series = Vec::new();
        let mut bands = Vec::new();
        for g in &groups {
            // x position -> values over seeds
            let mut cells: Vec<(f64, Vec<f64>)> = Vec::new();
            for r in sweep.runs.iter().filter(|r| group_of(r) == *g) {
                let Some(x) = axis.position(&r.axis_values[a]) else {
                    continue;
                };
                let Some(v) = r.finals[s].filter(|v| v.is_finite()) else {
                    continue;
                };
                match cells.iter_mut().find(|c| c.0 == x) {
                    Some(c) => c.1.push(v),
                    None => cells.push((x, vec![v])),
                }
            }
            cells.sort_by(|p, q| p.0.total_cmp(&q.0));
            let name = if g.is_empty() { "all runs" } else { g.as_str() };
            let mean = |vs: &[f64]| vs.iter().sum::<f64>() / vs.len() as f64;
            series.push(Series::new(
                name,
                cells.iter().map(|(x, vs)| (*x, mean(vs))).collect(),
            ));
            if cells.iter().any(|c| c.1.len() > 1) {
                bands.push(Band {
                    name: name.to_string(),
                    points: cells
                        .iter()
                        .map(|(x, vs)| {
                            let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
                            let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            (*x, lo, hi)
                        })
                        .collect(),
                });
            }
            counts.extend(cells.iter().map(|c| c.1.len()));
        }
        plots.push(LinePlot {
            title: format!("Final exact match ({})", sweep.finals[s]),
            x_label: axis.path.clone(),
            y_label: "exact match".into(),
            series,
            bands,
            y_range: Some(ACC_RANGE),
            ..Default::default()
        });
    }

    // Numbers: ticks at the swept values, unless there are many.
    let x_ticks = match axis.numeric {
        Some(_) if axis.values.len() <= 10 => axis
            .values
            .iter()
            .filter_map(|v| Some((v.parse::<f64>().ok()?, v.clone())))
            .collect(),
        _ => Vec::new(),
    };
    let mut opts = FigureOptions {
        x_scale: axis.x_scale(),
        x_ticks,
        legend: LegendPlacement::Right,
        ..Default::default()
    };
    let (lo, hi) = (
        counts.iter().copied().min().unwrap_or(1),
        counts.iter().copied().max().unwrap_or(1),
    );
    if hi > 1 {
        let over = if sweep.axes.iter().any(|a| a.is_seed) {
            "seeds"
        } else {
            "runs"
        };
        let n = if lo == hi {
            format!("n={hi}")
        } else {
            format!("n={lo}–{hi}")
        };
        opts.legend_notes = vec![
            format!("line: mean over {over} ({n})"),
            format!("band: min–max over {over}"),
        ];
    }
    Some((plots, opts))
}

/// The forgetting table: exact match after each stage (or the final
/// accuracy when no `after:` columns exist), runs of one configuration
/// together, configurations in summary order.
fn forgetting(sweep: &Sweep) -> Heatmap {
    let (title, cols): (&str, Vec<(String, String, usize)>) = if sweep.afters.is_empty() {
        let cols = sweep
            .finals
            .iter()
            .enumerate()
            .map(|(i, split)| ("final".to_string(), split.clone(), i))
            .collect();
        ("Final exact match", cols)
    } else {
        let cols = sweep
            .afters
            .iter()
            .enumerate()
            .map(|(i, (stage, split))| (stage.clone(), split.clone(), i))
            .collect();
        ("Exact match after each stage", cols)
    };
    let use_afters = !sweep.afters.is_empty();

    // Stages in order of first appearance, splits in column order within.
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    let mut order: Vec<Vec<usize>> = Vec::new();
    for (stage, split, i) in cols {
        match columns.iter().position(|c| c.0 == stage) {
            Some(g) => {
                columns[g].1.push(split);
                order[g].push(i);
            }
            None => {
                columns.push((stage, vec![split]));
                order.push(vec![i]);
            }
        }
    }
    let order: Vec<usize> = order.into_iter().flatten().collect();

    // Runs of one configuration together, in order of first appearance.
    let mut configs: Vec<&str> = Vec::new();
    for r in &sweep.runs {
        if !configs.contains(&r.config.as_str()) {
            configs.push(&r.config);
        }
    }
    let mut runs: Vec<&Run> = Vec::new();
    let mut row_breaks = Vec::new();
    for c in &configs {
        if !runs.is_empty() {
            row_breaks.push(runs.len());
        }
        runs.extend(sweep.runs.iter().filter(|r| r.config == *c));
    }
    if configs.len() == runs.len() {
        row_breaks.clear(); // one run per configuration: nothing to group
    }

    Heatmap {
        title: title.into(),
        row_labels: runs.iter().map(|r| r.label.clone()).collect(),
        columns,
        values: runs
            .iter()
            .map(|r| {
                let vals = if use_afters { &r.afters } else { &r.finals };
                order.iter().map(|&i| vals[i]).collect()
            })
            .collect(),
        range: (0.0, 1.0),
        value_label: "exact match".into(),
        row_breaks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_unambiguous_tails() {
        let paths: Vec<String> = [
            "stages.0.lr",
            "stages.1.lr",
            "data.signed",
            "experiment.seed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(short_names(&paths), ["0.lr", "1.lr", "signed", "seed"]);
    }

    #[test]
    fn axis_kinds() {
        let (v, n) = axis_values(&["0.01", "0.001", "", "0.1", "0.001"]);
        assert_eq!(v, ["0.001", "0.01", "0.1"]);
        assert_eq!(n, Some(true));
        let (v, n) = axis_values(&["2", "4"]);
        assert_eq!((v.len(), n), (2, Some(false)));
        let (v, n) = axis_values(&["true", "false"]);
        assert_eq!(
            (v, n),
            (vec!["false".to_string(), "true".to_string()], None)
        );
        let (v, n) = axis_values(&["kl", "tv", "kl"]);
        assert_eq!((v, n), (vec!["kl".to_string(), "tv".to_string()], None));
    }

    #[test]
    fn ema_is_debiased() {
        let s = ema(&[(0.0, 2.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 2.0)], 0.95);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|p| (p.1 - 2.0).abs() < 1e-12));
        assert_eq!(
            thin_out((0..10).map(|i| (i as f64, 0.0)).collect(), 4).len(),
            4
        );
    }
}
