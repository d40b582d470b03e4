//! The `axis_<axis>` figures of a sweep: final exact match against one swept
//! axis, one line per combination of the other non-seed axes, the mean over
//! seeds with a min-max band.

use crate::plot::engine::{Band, FigureOptions, LegendPlacement, LinePlot, Series};
use crate::plot::figures::ACC_RANGE;

use super::summary::{Run, Sweep};

/// Which final metric an axis figure shows.
#[derive(Clone, Copy)]
pub(super) enum Column {
    /// The `final:<split>` columns (exact match or the probe's grader).
    Final,
    /// The `<metric>:<split>` columns of one of `EXTRA_METRICS`.
    Extra(&'static str),
    /// Forgetting: success after the first stage minus after the last
    /// (`after:<first>:<split>` - `final:<split>`), for sweeps of several
    /// stages.
    Drop,
}

/// Where a run's value of one column is: `Run::finals[i]` or
/// `Run::extras[i]`.
#[derive(Clone, Copy)]
enum Cell {
    Final(usize),
    Extra(usize),
    /// (`after:` index, `final:` index)
    Drop(usize, usize),
}

impl Cell {
    fn of(self, r: &Run) -> Option<f64> {
        match self {
            Cell::Final(i) => r.finals[i],
            Cell::Extra(i) => r.extras[i],
            Cell::Drop(a, f) => Some(r.afters[a]? - r.finals[f]?),
        }
    }
}

impl Column {
    /// Its columns: (split name, where to read it), in summary order.
    fn columns(self, sweep: &Sweep) -> Vec<(String, Cell)> {
        match self {
            Column::Final => (0..sweep.finals.len())
                .map(|s| (sweep.finals[s].clone(), Cell::Final(s)))
                .collect(),
            Column::Extra(metric) => (0..sweep.extras.len())
                .filter(|&s| sweep.extras[s].0 == metric)
                .map(|s| (sweep.extras[s].1.clone(), Cell::Extra(s)))
                .collect(),
            Column::Drop => {
                let Some(first) = sweep.afters.first().map(|a| a.0.clone()) else {
                    return vec![];
                };
                if sweep.afters.iter().all(|a| a.0 == first) {
                    return vec![]; // one stage: nothing to forget
                }
                (0..sweep.finals.len())
                    .filter_map(|f| {
                        let split = &sweep.finals[f];
                        let a = sweep
                            .afters
                            .iter()
                            .position(|(st, sp)| *st == first && sp == split)?;
                        Some((split.clone(), Cell::Drop(a, f)))
                    })
                    .collect()
            }
        }
    }

    /// Panel title for a split, y label and fixed y range.
    fn labels(self, split: &str) -> (String, String, Option<(f64, f64)>) {
        match self {
            Column::Final => (
                format!("Final exact match ({split})"),
                "exact match".into(),
                Some(ACC_RANGE),
            ),
            Column::Extra("fix_rate") => (
                format!("Fix rate ({split})"),
                "deletions of a wrong token".into(),
                Some(ACC_RANGE),
            ),
            Column::Extra("backspaces") => (
                format!("<bksp> per answer ({split})"),
                "backspaces".into(),
                None,
            ),
            Column::Extra("seconds_per_problem") => (
                format!("Seconds per problem ({split})"),
                "seconds".into(),
                None,
            ),
            Column::Drop => (
                format!("Forgetting ({split})"),
                "after first stage - after last".into(),
                None,
            ),
            Column::Extra(m) => (format!("{m} ({split})"), m.into(), None),
        }
    }
}

/// A final metric (`column`) against axis `a`: one panel per split with
/// data, one line per combination of the other non-seed axes (mean over
/// seeds, min-max band). `None` when no run has a value.
pub(super) fn axis_figure(
    sweep: &Sweep,
    a: usize,
    column: Column,
) -> Option<(Vec<LinePlot>, FigureOptions)> {
    let axis = &sweep.axes[a];
    let columns = column.columns(sweep);
    // an extra metric or a drop that is zero in every run (no `<bksp>` in
    // a task without one; a model-free probe) has nothing to show
    let shows = |v: f64| v.is_finite() && (v != 0.0 || matches!(column, Column::Final));
    let splits: Vec<usize> = (0..columns.len())
        .filter(|&s| {
            sweep
                .runs
                .iter()
                .any(|r| columns[s].1.of(r).is_some_and(shows))
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
                let Some(v) = columns[s].1.of(r).filter(|v| v.is_finite()) else {
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
        let (title, y_label, y_range) = column.labels(&columns[s].0);
        plots.push(LinePlot {
            title,
            x_label: axis.title(),
            y_label,
            series,
            bands,
            y_range,
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
