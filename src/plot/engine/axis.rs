//! Axes in plot space (data, or log10 of data): fitted and padded ranges,
//! "nice" linear ticks and their labels, log ticks (decades, 1-2-5, or
//! linear within a decade), categorical axes, and [`TickedCoord`], the
//! plotters coordinate whose grid lines are exactly those ticks.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::style::{text_w, TICK_EM};

pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    /// Labelled ticks (bold grid lines).
    pub(super) ticks: Vec<(f64, String)>,
    /// Unlabelled minor grid lines.
    pub(super) minor: Vec<f64>,
}

pub(super) fn min_max(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Pads a data range by `frac` of its span on each side; pads degenerate
/// ranges (single value) to something visible; `(0, 1)` when there is no data.
/// In log space (`log`), a single value is padded by a factor of 2 each way.
pub(super) fn fit_range(range: Option<(f64, f64)>, frac: f64, log: bool) -> (f64, f64) {
    let Some((lo, hi)) = range else {
        return if log { (-1.0, 1.0) } else { (0.0, 1.0) };
    };
    let span = hi - lo;
    if span > 1e-12 * lo.abs().max(hi.abs()) && span.is_finite() {
        return (lo - frac * span, hi + frac * span);
    }
    let mid = 0.5 * (lo + hi);
    let pad = if log {
        2f64.log10()
    } else if mid != 0.0 {
        0.1 * mid.abs()
    } else {
        1.0
    };
    (mid - pad, mid + pad)
}

// --- ticks ---

fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn linear_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let step = nice_step(hi - lo, target);
    let k0 = (lo / step - 1e-9).ceil() as i64;
    let k1 = (hi / step + 1e-9).floor() as i64;
    let ticks = (k0..=k1)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    (ticks, step)
}

/// Formats `v`, one of a set of ticks `step` apart whose largest magnitude is `max_abs`.
fn format_linear(v: f64, step: f64, max_abs: f64) -> String {
    let decimals = |step: f64| (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    if v == 0.0 && !(1e-3..1e4).contains(&max_abs) {
        "0".into()
    } else if !(1e-3..1e9).contains(&max_abs) {
        format_general(v)
    } else if max_abs >= 1e6 && step >= 1e5 {
        let d = decimals(step / 1e6);
        format!("{:.*}M", d, v / 1e6)
    } else if max_abs >= 1e4 && step >= 1e3 {
        let d = decimals(step / 1e3);
        format!("{:.*}k", d, v / 1e3)
    } else {
        format!("{:.*}", decimals(step), v)
    }
}

/// Shortest readable form: plain decimals in [1e-3, 1e5), else `2.5e-5`.
fn format_general(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let s = format!("{v:.3e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        format!("{mant}e{exp}")
    }
}

pub(super) fn linear_axis(lo: f64, hi: f64, target: usize) -> Axis {
    let (ticks, step) = linear_ticks(lo, hi, target);
    let max_abs = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    Axis {
        lo,
        hi,
        ticks: ticks
            .into_iter()
            .map(|t| (t, format_linear(t, step, max_abs)))
            .collect(),
        minor: Vec::new(),
    }
}

/// Whether labels of x ticks (plot-space positions, `span` the axis range)
/// stay apart on a panel of the narrowest usual width.
pub(super) fn ticks_fit(ticks: &[(f64, String)], span: f64) -> bool {
    const AXES_W: f64 = 420.0;
    ticks_fit_width(ticks, span, AXES_W)
}

/// Whether labels of x ticks stay apart on an axis `axes_w` design pixels
/// wide (the unit of [`text_w`]).
pub(super) fn ticks_fit_width(ticks: &[(f64, String)], span: f64, axes_w: f64) -> bool {
    let mut sorted: Vec<&(f64, String)> = ticks.iter().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted.windows(2).all(|w| {
        let gap = (w[1].0 - w[0].0) / span * axes_w;
        let need = (text_w(&w[0].1, TICK_EM) + text_w(&w[1].1, TICK_EM)) / 2.0 + 8.0;
        gap >= need
    })
}

/// Longest category label drawn in full; longer ones are cut with an ellipsis.
const CATEGORY_LABEL_MAX: usize = 16;
/// At most this many labelled categories; more get every k-th label.
const CATEGORY_TICKS_MAX: usize = 12;

/// Evenly spaced categories at x = 0, 1, ..., labelled with their names.
pub(super) fn categorical_axis(categories: &[String]) -> Axis {
    let n = categories.len();
    let stride = n.div_ceil(CATEGORY_TICKS_MAX).max(1);
    let (mut ticks, mut minor) = (Vec::new(), Vec::new());
    for (i, c) in categories.iter().enumerate() {
        if i % stride == 0 {
            ticks.push((i as f64, ellipsize(c, CATEGORY_LABEL_MAX)));
        } else {
            minor.push(i as f64);
        }
    }
    Axis {
        lo: -0.5,
        hi: n as f64 - 0.5,
        ticks,
        minor,
    }
}

/// `s` cut to at most `max` characters, the last an ellipsis when cut.
fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

/// Ticks for a log10 axis whose range `[lo, hi]` is in decades.
pub(super) fn log_axis(lo: f64, hi: f64) -> Axis {
    let inside = |v: f64| v >= lo - 1e-9 && v <= hi + 1e-9;
    let d0 = lo.floor() as i64;
    let d1 = hi.ceil() as i64;
    let decades: Vec<i64> = (d0..=d1).filter(|&d| inside(d as f64)).collect();
    let mantissas = |ms: &[u32]| -> Vec<f64> {
        (d0..=d1)
            .flat_map(|d| ms.iter().map(move |&m| m as f64 * 10f64.powi(d as i32)))
            .filter(|v| inside(v.log10()))
            .collect()
    };
    let label = |v: f64| format_general(v);
    let (ticks, minor): (Vec<(f64, String)>, Vec<f64>) = if decades.len() >= 3 {
        let stride = decades.len().div_ceil(7);
        let ticks = decades
            .iter()
            .filter(|&&d| d.rem_euclid(stride as i64) == 0)
            .map(|&d| (d as f64, label(10f64.powi(d as i32))))
            .collect::<Vec<_>>();
        let minor = if stride == 1 {
            mantissas(&[2, 3, 4, 5, 6, 7, 8, 9])
                .into_iter()
                .map(f64::log10)
                .collect()
        } else {
            decades
                .iter()
                .filter(|&&d| d.rem_euclid(stride as i64) != 0)
                .map(|&d| d as f64)
                .collect()
        };
        (ticks, minor)
    } else {
        let one_two_five = mantissas(&[1, 2, 5]);
        let all = mantissas(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let chosen = if one_two_five.len() >= 3 {
            Some(one_two_five)
        } else if all.len() >= 3 {
            Some(all.clone())
        } else {
            None
        };
        match chosen {
            Some(major) => {
                let minor = all
                    .iter()
                    .filter(|v| !major.iter().any(|m| (*m - **v).abs() <= 1e-12 * v.abs()))
                    .map(|v| v.log10())
                    .collect();
                let ticks = major.into_iter().map(|v| (v.log10(), label(v))).collect();
                (ticks, minor)
            }
            None => {
                // Less than a factor ~3 of range: linear ticks in data space.
                let (vlo, vhi) = (10f64.powf(lo), 10f64.powf(hi));
                let (ticks, step) = linear_ticks(vlo, vhi, 5);
                let max_abs = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
                let ticks = ticks
                    .into_iter()
                    .filter(|&v| v > 0.0)
                    .map(|v| (v.log10(), format_linear(v, step, max_abs)))
                    .collect();
                (ticks, Vec::new())
            }
        }
    };
    Axis {
        lo,
        hi,
        ticks,
        minor,
    }
}

/// A linear coordinate in plot space whose grid lines are exactly the ticks
/// of an [`Axis`] (labelled: bold; minor: light).
pub(super) struct TickedCoord {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) major: Vec<f64>,
    pub(super) minor: Vec<f64>,
}

impl TickedCoord {
    pub(super) fn new(axis: &Axis) -> Self {
        Self {
            lo: axis.lo,
            hi: axis.hi,
            major: axis.ticks.iter().map(|t| t.0).collect(),
            minor: axis.minor.clone(),
        }
    }
}

impl Ranged for TickedCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        let v = limit.0 as f64 + t * (limit.1 - limit.0) as f64;
        v.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_category_labels_on_a_narrow_axis_do_not_fit() {
        // the SequenceMatch sweep's objectives on a 3-panel figure
        let objectives = [
            "mle",
            "kl",
            "reverse_kl",
            "js",
            "chi2",
            "chi2_mix",
            "chi2_mix-0.9",
        ];
        let axis = categorical_axis(&objectives.map(String::from));
        let span = axis.hi - axis.lo;
        assert!(!ticks_fit_width(&axis.ticks, span, 400.0));
        assert!(ticks_fit_width(&axis.ticks, span, 2000.0));
        let short = categorical_axis(&["0.001", "0.003", "0.01"].map(String::from));
        assert!(ticks_fit_width(&short.ticks, short.hi - short.lo, 400.0));
    }

    #[test]
    fn linear_ticks_are_nice() {
        let a = linear_axis(0.0, 1.0, 6);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let a = linear_axis(0.0, 20000.0, 6);
        assert_eq!(a.ticks.last().unwrap().1, "20k");
    }

    #[test]
    fn log_ticks_span_decades() {
        let a = log_axis(-2.0, 1.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10"]);
        // Within one decade: 1-2-5 or 1..9 ticks, never empty.
        assert!(log_axis(0.2f64.log10(), 3f64.log10()).ticks.len() >= 3);
        assert!(!log_axis(0.5f64.log10(), 0.6f64.log10()).ticks.is_empty());
    }
}
