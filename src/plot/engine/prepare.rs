//! Turning a [`LinePlot`] into what gets drawn, independent of the backend:
//! colours per series name (or colour group), non-finite points dropped
//! (lines break there), the log/linear choice, fitted and padded ranges,
//! ticks, lines and bands clipped to the axes, and the legend entries.
//!
//! Everything here is in "plot space": x as given or log10(x), y as given
//! or log10(y).

use std::collections::HashMap;

use plotters::style::RGBColor;

use super::axis::{categorical_axis, fit_range, linear_axis, log_axis, min_max, ticks_fit, Axis};
use super::clip::{clip_polygon, clip_polyline, Rect, P};
use super::legend_row::LegendRow;
use super::style::PALETTE;
use super::types::{FigureOptions, LinePlot, XScale};

/// Series with at most this many finite points also get point markers.
const MARKER_MAX_POINTS: usize = 25;

/// The legend entry (colour group) of a series or band name.
pub(super) fn group_of<'a>(name: &'a str, groups: &'a HashMap<String, String>) -> &'a str {
    groups.get(name).map(String::as_str).unwrap_or(name)
}

/// Same name (or colour group), same colour in every panel of a figure
/// (first-appearance order).
pub(super) fn color_map(
    plots: &[LinePlot],
    groups: &HashMap<String, String>,
) -> HashMap<String, RGBColor> {
    let mut map = HashMap::new();
    let names = plots.iter().flat_map(|p| {
        p.series
            .iter()
            .map(|s| &s.name)
            .chain(p.bands.iter().map(|b| &b.name))
    });
    for name in names {
        let next = map.len();
        map.entry(group_of(name, groups).to_string())
            .or_insert(PALETTE[next % PALETTE.len()]);
    }
    map
}

pub(super) struct PreparedSeries {
    pub(super) color: RGBColor,
    pub(super) lines: Vec<Vec<P>>,
    pub(super) markers: Vec<P>,
    pub(super) show_markers: bool,
}

pub(super) struct Prepared {
    pub(super) x: Axis,
    pub(super) y: Axis,
    pub(super) series: Vec<PreparedSeries>,
    pub(super) bands: Vec<(RGBColor, Vec<Vec<P>>)>,
    /// Legend entries of this panel: one per named colour group, in order.
    pub(super) legend: Vec<LegendRow>,
    pub(super) has_data: bool,
}

fn finite(p: P) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

pub(super) fn prepare(
    plot: &LinePlot,
    colors: &HashMap<String, RGBColor>,
    opts: &FigureOptions,
) -> Prepared {
    let groups = &opts.color_groups;
    let color = |name: &str| colors[group_of(name, groups)];
    let series_xys = || {
        plot.series
            .iter()
            .flat_map(|s| s.points.iter().copied().filter(|p| finite(*p)))
    };
    let band_xys = || {
        plot.bands
            .iter()
            .flat_map(|b| b.points.iter().copied().filter(|p| band_finite(*p)))
    };
    let range_ok = plot.y_range.is_none_or(|(lo, hi)| lo > 0.0 && hi > 0.0);
    let log = plot.log_y
        && range_ok
        && series_xys()
            .map(|p| p.1)
            .chain(band_xys().flat_map(|(_, lo, hi)| [lo, hi]))
            .all(|y| y > 0.0);
    let ty = |y: f64| if log { y.log10() } else { y };
    let categories = match &opts.x_scale {
        XScale::Categorical(c) if !c.is_empty() => Some(c),
        _ => None,
    };
    let log_x = opts.x_scale == XScale::Log
        && series_xys()
            .map(|p| p.0)
            .chain(band_xys().map(|b| b.0))
            .all(|x| x > 0.0);
    let tx = |x: f64| if log_x { x.log10() } else { x };

    // Finite points in plot space.
    let series_pts: Vec<Vec<Option<P>>> = plot
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|&(x, y)| Some((tx(x), ty(y))).filter(|p| finite(*p)))
                .collect()
        })
        .collect();
    let band_pts: Vec<Vec<Option<(f64, f64, f64)>>> = plot
        .bands
        .iter()
        .map(|b| {
            b.points
                .iter()
                .map(|&(x, lo, hi)| Some((tx(x), ty(lo), ty(hi))).filter(|p| band_finite(*p)))
                .collect()
        })
        .collect();

    let xs = series_pts
        .iter()
        .flatten()
        .flatten()
        .map(|p| p.0)
        .chain(band_pts.iter().flatten().flatten().map(|b| b.0));
    let ys = series_pts
        .iter()
        .flatten()
        .flatten()
        .map(|p| p.1)
        .chain(band_pts.iter().flatten().flatten().flat_map(|b| [b.1, b.2]));
    let has_data = series_pts.iter().flatten().flatten().next().is_some()
        || band_pts.iter().flatten().flatten().next().is_some();

    let (x_lo, x_hi) = match categories {
        Some(c) => (-0.5, c.len() as f64 - 0.5),
        // Sweep values (explicit ticks, log x) are few: more room at the ends.
        None if log_x || !opts.x_ticks.is_empty() => fit_range(min_max(xs), 0.05, log_x),
        None => fit_range(min_max(xs), 0.03, false),
    };
    let (y_lo, y_hi) = match plot
        .y_range
        .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
    {
        Some((lo, hi)) => {
            let (lo, hi) = (ty(lo.min(hi)), ty(lo.max(hi)));
            fit_range(Some((lo, hi)), 0.0, log)
        }
        None => fit_range(min_max(ys), 0.05, log),
    };
    let clip = Rect {
        x0: x_lo,
        x1: x_hi,
        y0: y_lo,
        y1: y_hi,
    };

    let series: Vec<PreparedSeries> = plot
        .series
        .iter()
        .zip(&series_pts)
        .map(|(s, pts)| {
            let runs = runs_of(pts);
            let mut lines = Vec::new();
            for run in &runs {
                lines.extend(clip_polyline(run, &clip));
            }
            let markers: Vec<P> = runs
                .iter()
                .flatten()
                .copied()
                .filter(|p| clip.contains(*p))
                .collect();
            let n_finite: usize = runs.iter().map(Vec::len).sum();
            PreparedSeries {
                color: color(&s.name),
                lines,
                show_markers: n_finite <= MARKER_MAX_POINTS,
                markers,
            }
        })
        .collect();

    let bands = plot
        .bands
        .iter()
        .zip(&band_pts)
        .map(|(b, pts)| {
            let polys = runs_of(pts)
                .into_iter()
                .map(|run| {
                    let mut poly: Vec<P> = run.iter().map(|&(x, _, hi)| (x, hi)).collect();
                    poly.extend(run.iter().rev().map(|&(x, lo, _)| (x, lo)));
                    clip_polygon(&poly, &clip)
                })
                .filter(|poly| poly.len() >= 2)
                .collect();
            (color(&b.name), polys)
        })
        .collect();

    // One legend entry per named group, with markers if any of its series has them.
    let mut legend: Vec<LegendRow> = Vec::new();
    for (s, prep) in plot.series.iter().zip(&series) {
        if s.name.is_empty() {
            continue;
        }
        let group = group_of(&s.name, groups);
        let band = plot
            .bands
            .iter()
            .any(|b| group_of(&b.name, groups) == group);
        let existing = legend
            .iter_mut()
            .find(|r| matches!(r, LegendRow::Entry { name, .. } if name == group));
        match existing {
            Some(LegendRow::Entry { markers, .. }) => *markers |= prep.show_markers,
            _ => legend.push(LegendRow::Entry {
                name: group.to_string(),
                color: prep.color,
                markers: prep.show_markers,
                band,
            }),
        }
    }

    let x = match categories {
        Some(c) => categorical_axis(c),
        None => {
            let ticks: Vec<(f64, String)> = opts
                .x_ticks
                .iter()
                .filter(|t| t.0.is_finite() && (!log_x || t.0 > 0.0))
                .map(|t| (tx(t.0), t.1.clone()))
                .filter(|t| t.0 >= x_lo && t.0 <= x_hi)
                .collect();
            if !ticks.is_empty() && ticks_fit(&ticks, x_hi - x_lo) {
                Axis {
                    lo: x_lo,
                    hi: x_hi,
                    ticks,
                    minor: Vec::new(),
                }
            } else if log_x {
                log_axis(x_lo, x_hi)
            } else {
                linear_axis(x_lo, x_hi, 6)
            }
        }
    };

    Prepared {
        x,
        y: if log {
            log_axis(y_lo, y_hi)
        } else {
            linear_axis(y_lo, y_hi, 6)
        },
        series,
        bands,
        legend,
        has_data,
    }
}

fn band_finite(b: (f64, f64, f64)) -> bool {
    b.0.is_finite() && b.1.is_finite() && b.2.is_finite()
}

/// Maximal runs of consecutive `Some` values.
fn runs_of<T: Copy>(pts: &[Option<T>]) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut cur = Vec::new();
    for p in pts {
        match p {
            Some(p) => cur.push(*p),
            None if !cur.is_empty() => runs.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}
