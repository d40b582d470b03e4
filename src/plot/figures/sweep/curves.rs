//! The `curves` figure of a sweep: train loss (EMA-smoothed, log y) and
//! validation exact match against step, one line per run, from each run's
//! `metrics.csv`; many runs share colours by configuration or by an axis.

use std::path::Path;

use crate::plot::engine::{FigureOptions, LegendPlacement, LinePlot, Series, PALETTE_LEN};
use crate::plot::figures::training::{metric_series, read_run_metrics};
use crate::plot::figures::ACC_RANGE;

use super::summary::{Run, Sweep};

/// Smoothing of the train loss in `curves`: exponential moving average weight.
const EMA: f64 = 0.95;
/// At most this many points per train-loss line (keeps the SVG small).
const CURVE_POINTS_MAX: usize = 1500;

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

/// Learning curves of all runs: train loss | validation exact match; `None`
/// when no run has a readable `metrics.csv`.
pub(super) fn curves(sweep: &Sweep, results_dir: &Path) -> Option<(Vec<LinePlot>, FigureOptions)> {
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
        let rows = match read_run_metrics(&path) {
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

    if plotted.is_empty() {
        return None;
    }

    // Colours: one per run while the palette lasts, else one per
    // configuration, else one per value of the first non-seed axis.
    let n = plotted.len();
    let mut opts = FigureOptions {
        legend: LegendPlacement::Right,
        ..Default::default()
    };
    if n > PALETTE_LEN {
        let mut configs: Vec<&str> = plotted.iter().map(|r| r.config.as_str()).collect();
        configs.dedup();
        configs.sort_unstable();
        configs.dedup();
        let first = sweep.axes.iter().position(|a| !a.is_seed);
        let key: Box<dyn Fn(&Run) -> String> = match first {
            Some(_) if configs.len() <= PALETTE_LEN => {
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
    Some((plots, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

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
