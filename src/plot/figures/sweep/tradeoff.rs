//! The `tradeoff` figure of a sweep: what each probe (one pass, best-of-n,
//! a model-guided search, a symbolic search) achieves against what it
//! costs, final success against seconds per problem on a log axis.

use crate::plot::engine::{FigureOptions, LegendPlacement, LinePlot, Series, XScale};
use crate::plot::figures::ACC_RANGE;

use super::summary::Sweep;

/// One series per probe with both a `final:` and a `seconds_per_problem:`
/// column; one point per configuration (the non-seed axis values): the
/// mean over its seeds of both, points in order of time. `None` when no
/// run has both values.
pub(super) fn tradeoff(sweep: &Sweep) -> Option<(Vec<LinePlot>, FigureOptions)> {
    let mut series = Vec::new();
    for (f, probe) in sweep.finals.iter().enumerate() {
        let Some(t) = sweep
            .extras
            .iter()
            .position(|(m, s)| m == "seconds_per_problem" && s == probe)
        else {
            continue;
        };
        // configuration -> (times, successes) over seeds
        let mut cells: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        for r in &sweep.runs {
            let (Some(y), Some(x)) = (r.finals[f], r.extras[t]) else {
                continue;
            };
            if !(x.is_finite() && x > 0.0 && y.is_finite()) {
                continue;
            }
            match cells.iter_mut().find(|c| c.0 == r.config) {
                Some(c) => {
                    c.1.push(x);
                    c.2.push(y);
                }
                None => cells.push((r.config.clone(), vec![x], vec![y])),
            }
        }
        if cells.is_empty() {
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let mut points: Vec<(f64, f64)> = cells.iter().map(|c| (mean(&c.1), mean(&c.2))).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series::new(probe.clone(), points));
    }
    if series.is_empty() {
        return None;
    }
    let plot = LinePlot {
        title: "Success against inference time (after the last stage)".into(),
        x_label: "seconds per problem (log)".into(),
        y_label: "success".into(),
        series,
        y_range: Some(ACC_RANGE),
        ..Default::default()
    };
    let opts = FigureOptions {
        x_scale: XScale::Log,
        legend: LegendPlacement::Right,
        legend_notes: vec![
            "point: one configuration, mean over seeds".into(),
            "points of a probe joined in order of time".into(),
        ],
        ..Default::default()
    };
    Some((vec![plot], opts))
}
