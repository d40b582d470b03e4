//! Publication-quality line plots and heatmaps (PNG and SVG) drawn with
//! `plotters`; the standard figure of a training run (`training.png` /
//! `training.svg`: loss | exact-match accuracy) read from a run's
//! `metrics.csv`; and the figures of a sweep of runs ([`plot_sweep`]: learning
//! curves, final accuracy against each swept axis, the forgetting table).
//!
//! Text is rendered with DejaVu Sans, embedded in the binary
//! (`assets/fonts/DejaVuSans.ttf`, license in `assets/fonts/LICENSE-DejaVu.txt`)
//! and registered with plotters' `ab_glyph` font support, so no system font
//! libraries are needed.
//!
//! Style: white background, Okabe-Ito (colour-blind safe) palette with the same
//! colour for the same series name in every panel of a figure, light grey grid,
//! framed axes, and a legend in whichever corner of the axes covers the least
//! data. PNGs are rendered at 3x and box-filtered down, which anti-aliases the
//! lines. Non-finite points are skipped (lines break there); degenerate ranges
//! (a single point, all-equal values) are padded; a log y axis is used only when
//! every y value (and the requested range) is positive, otherwise the axis is
//! linear.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

mod heatmap;
mod sweep;

pub use heatmap::{heatmap, Heatmap};
pub use sweep::plot_sweep;

/// One line of a plot: `(x, y)` points in drawing order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// Optional band (e.g. min/max over seeds) drawn translucently behind a series with the same name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Band {
    pub name: String,
    /// `(x, lo, hi)`
    pub points: Vec<(f64, f64, f64)>,
}

/// A single set of axes with any number of series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Log-scale y axis; ignored (linear) unless every y value is positive.
    pub log_y: bool,
    /// Fixed y range `(lo, hi)`, used as given; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// How the x axis of a figure's panels maps data values.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum XScale {
    /// Linear axis fitted to the data.
    #[default]
    Linear,
    /// log10 axis; linear unless every x value is positive.
    Log,
    /// Evenly spaced categories labelled with these names; a point's x is the
    /// index of its category (0, 1, ...). Many categories get every k-th label.
    Categorical(Vec<String>),
}

/// Where a figure's legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendPlacement {
    /// One legend per panel, in the corner of the axes covering the least data.
    #[default]
    Inside,
    /// One legend for the whole figure, in a column right of the panels (for
    /// many or long entries); the figure is widened to make room.
    Right,
}

/// Figure-wide options for [`panels_with`]. The default gives the same
/// figure as [`panels`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FigureOptions {
    /// The x axis of every panel.
    pub x_scale: XScale,
    /// Labelled x ticks at these data values instead of the automatic ones
    /// (e.g. the values of a sweep); ignored when empty, for categorical
    /// axes, and when the labels would collide.
    pub x_ticks: Vec<(f64, String)>,
    pub legend: LegendPlacement,
    /// Heading above the legend entries (empty: none).
    pub legend_title: String,
    /// Lines of text below the legend entries (e.g. what a band means).
    pub legend_notes: Vec<String>,
    /// Series (and band) name -> colour group. The series of one group share
    /// a colour and a single legend entry named after the group; series not
    /// listed are their own group.
    pub color_groups: HashMap<String, String>,
}

/// Writes PNG or SVG chosen by the extension of `out` (error for others). Creates parent dirs.
pub fn line_plot(plot: &LinePlot, out: &Path) -> Result<()> {
    render(std::slice::from_ref(plot), out)
}

/// Several LinePlots side by side in one image (e.g. loss | accuracy).
pub fn panels(plots: &[LinePlot], out: &Path) -> Result<()> {
    if plots.is_empty() {
        bail!("no panels to plot into {}", out.display());
    }
    render(plots, out)
}

/// Several LinePlots side by side in one image, with figure-wide options
/// (x scale, legend placement and contents, colour groups).
pub fn panels_with(plots: &[LinePlot], opts: &FigureOptions, out: &Path) -> Result<()> {
    if plots.is_empty() {
        bail!("no panels to plot into {}", out.display());
    }
    render_with(plots, opts, out)
}

/// Reads a run's metrics.csv (long/tidy format, header:
/// `stage,step,split,metric,value,elapsed_s`) and writes `training.png` and
/// `training.svg` into `out_dir`: left panel loss (every split that has
/// "loss", log y), right panel exact-match accuracy (every split that has
/// "exact_match", y in [0, 1]). Returns the written paths.
///
/// Missing metrics just give fewer series (an empty panel says "no data"); an
/// empty or malformed CSV is an error naming the file and line.
pub fn plot_training_run(metrics_csv: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let rows = read_metrics(metrics_csv)?;
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
            // [0, 1] plus a sliver, so lines at exactly 0 or 1 are not hidden
            // under the frame; the ticks still run 0.0 ..= 1.0.
            y_range: Some((-0.025, 1.025)),
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

// ---------------------------------------------------------------------------
// metrics.csv

#[derive(Debug, Deserialize)]
struct MetricRow {
    step: u64,
    split: String,
    metric: String,
    value: f64,
}

const REQUIRED_COLUMNS: [&str; 5] = ["stage", "step", "split", "metric", "value"];

fn read_metrics(path: &Path) -> Result<Vec<MetricRow>> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening metrics file {file}"))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if header.iter().all(|h| h.is_empty()) {
        bail!(
            "{file}: line 1: empty metrics file (expected header stage,step,split,metric,value,elapsed_s)"
        );
    }
    for col in REQUIRED_COLUMNS {
        if !header.iter().any(|h| h == col) {
            bail!(
                "{file}: line 1: header lacks column `{col}` (expected stage,step,split,metric,value,elapsed_s)"
            );
        }
    }
    let mut rows = Vec::new();
    for row in reader.deserialize::<MetricRow>() {
        rows.push(row.map_err(|e| csv_error(path, e))?);
    }
    if rows.is_empty() {
        bail!("{file}: no data rows after the header");
    }
    Ok(rows)
}

fn csv_error(path: &Path, e: csv::Error) -> anyhow::Error {
    let line = e.position().map(|p| p.line());
    let kind = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        _ => e.to_string(),
    };
    match line {
        Some(line) => anyhow!(
            "{}: line {line}: malformed metrics row: {kind}",
            path.display()
        ),
        None => anyhow!("{}: malformed metrics file: {kind}", path.display()),
    }
}

/// One series per split that reports `metric`, points sorted by step.
/// Splits come in the order train, val, test, long, then first appearance.
fn metric_series(rows: &[MetricRow], metric: &str) -> Vec<Series> {
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

// ---------------------------------------------------------------------------
// Rendering

const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn ensure_font() -> Result<()> {
    static ONCE: Once = Once::new();
    static OK: AtomicBool = AtomicBool::new(false);
    ONCE.call_once(|| {
        let ok = register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok();
        OK.store(ok, Ordering::SeqCst);
    });
    if OK.load(Ordering::SeqCst) {
        Ok(())
    } else {
        bail!("the embedded font DejaVuSans.ttf could not be loaded")
    }
}

/// Okabe & Ito (2008) colour-blind safe palette, yellow last (weak on white).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];
const GRID: RGBColor = RGBColor(222, 222, 222);
const GRID_MINOR: RGBColor = RGBColor(240, 240, 240);
const LEGEND_BORDER: RGBColor = RGBColor(170, 170, 170);
/// Legend notes (e.g. what a band means).
const NOTE: RGBColor = RGBColor(90, 90, 90);
const HEIGHT: u32 = 500;
/// Supersampling factor for PNG output.
const PNG_SCALE: u32 = 3;
/// Series with at most this many finite points also get point markers.
const MARKER_MAX_POINTS: usize = 25;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Png,
    Svg,
}

fn format_of(out: &Path) -> Result<Format> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => bail!(
            "cannot plot to {}: unsupported extension (use .png or .svg)",
            out.display()
        ),
    }
}

/// Figure width of `panels` side by side (legend inside the axes).
fn figure_size(panels: usize) -> (u32, u32) {
    if panels <= 1 {
        (700, HEIGHT)
    } else {
        (600 * panels as u32, HEIGHT)
    }
}

/// Something drawable into a PNG or SVG file of a fixed size.
trait Figure {
    /// Size in output pixels (the same for PNG and SVG).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, sc: Scale) -> Result<()>;
}

/// Checks the extension of `out`, loads the font and creates `out`'s directory.
fn prepare_output(out: &Path) -> Result<Format> {
    let format = format_of(out)?;
    ensure_font()?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {} for plot", dir.display()))?;
    }
    Ok(format)
}

fn render(plots: &[LinePlot], out: &Path) -> Result<()> {
    render_with(plots, &FigureOptions::default(), out)
}

fn render_with(plots: &[LinePlot], opts: &FigureOptions, out: &Path) -> Result<()> {
    let format = prepare_output(out)?;
    let figure = LineFigure::new(plots, opts);
    write_figure(&figure, format, out)
}

fn write_figure(fig: &impl Figure, format: Format, out: &Path) -> Result<()> {
    let (w, h) = fig.size();
    let ctx = || format!("writing plot {}", out.display());
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                fig.draw(&root, Scale { s: 1.0, em: SVG_EM })
                    .with_context(ctx)?;
                root.present().map_err(backend_err).with_context(ctx)?;
            }
            std::fs::write(out, svg).with_context(ctx)?;
        }
        Format::Png => {
            let s = PNG_SCALE;
            let (bw, bh) = (w * s, h * s);
            let mut big = vec![0u8; (bw * bh * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut big, (bw, bh)).into_drawing_area();
                fig.draw(
                    &root,
                    Scale {
                        s: s as f64,
                        em: AB_GLYPH_EM,
                    },
                )
                .with_context(ctx)?;
                root.present().map_err(backend_err).with_context(ctx)?;
            }
            let small = downsample(&big, (bw, bh), s);
            let mut backend = BitMapBackend::new(out, (w, h));
            backend
                .blit_bitmap((0, 0), (w, h), &small)
                .map_err(backend_err)
                .with_context(ctx)?;
            backend.present().map_err(backend_err).with_context(ctx)?;
        }
    }
    Ok(())
}

fn backend_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting backend error: {e:?}")
}

/// Box filter: averages `s`x`s` blocks of an RGB buffer.
fn downsample(big: &[u8], (bw, bh): (u32, u32), s: u32) -> Vec<u8> {
    let (w, h) = ((bw / s) as usize, (bh / s) as usize);
    let (bw, s) = (bw as usize, s as usize);
    let mut small = vec![0u8; w * h * 3];
    let n = (s * s) as u32;
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for dy in 0..s {
                let row = (y * s + dy) * bw;
                for dx in 0..s {
                    let i = (row + x * s + dx) * 3;
                    for c in 0..3 {
                        acc[c] += big[i + c] as u32;
                    }
                }
            }
            let o = (y * w + x) * 3;
            for c in 0..3 {
                small[o + c] = ((acc[c] + n / 2) / n) as u8;
            }
        }
    }
    small
}

/// The legend entry (colour group) of a series or band name.
fn group_of<'a>(name: &'a str, groups: &'a HashMap<String, String>) -> &'a str {
    groups.get(name).map(String::as_str).unwrap_or(name)
}

/// Same name (or colour group), same colour in every panel of a figure
/// (first-appearance order).
fn color_map(plots: &[LinePlot], groups: &HashMap<String, String>) -> HashMap<String, RGBColor> {
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

// --- data preparation (backend independent; everything in "plot space":
// x as given or log10(x), y as given or log10(y)) ---

type P = (f64, f64);

struct Axis {
    lo: f64,
    hi: f64,
    /// Labelled ticks (bold grid lines).
    ticks: Vec<(f64, String)>,
    /// Unlabelled minor grid lines.
    minor: Vec<f64>,
}

struct PreparedSeries {
    color: RGBColor,
    lines: Vec<Vec<P>>,
    markers: Vec<P>,
    show_markers: bool,
}

/// One line of a legend.
#[derive(Clone)]
enum LegendRow {
    Title(String),
    Entry {
        name: String,
        color: RGBColor,
        markers: bool,
        band: bool,
    },
    Note(String),
}

struct Prepared {
    x: Axis,
    y: Axis,
    series: Vec<PreparedSeries>,
    bands: Vec<(RGBColor, Vec<Vec<P>>)>,
    /// Legend entries of this panel: one per named colour group, in order.
    legend: Vec<LegendRow>,
    has_data: bool,
}

fn finite(p: P) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

fn prepare(plot: &LinePlot, colors: &HashMap<String, RGBColor>, opts: &FigureOptions) -> Prepared {
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

fn min_max(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Pads a data range by `frac` of its span on each side; pads degenerate
/// ranges (single value) to something visible; `(0, 1)` when there is no data.
/// In log space (`log`), a single value is padded by a factor of 2 each way.
fn fit_range(range: Option<(f64, f64)>, frac: f64, log: bool) -> (f64, f64) {
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

fn linear_axis(lo: f64, hi: f64, target: usize) -> Axis {
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
fn ticks_fit(ticks: &[(f64, String)], span: f64) -> bool {
    const AXES_W: f64 = 420.0;
    let mut sorted: Vec<&(f64, String)> = ticks.iter().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted.windows(2).all(|w| {
        let gap = (w[1].0 - w[0].0) / span * AXES_W;
        let need = (text_w(&w[0].1, TICK_EM) + text_w(&w[1].1, TICK_EM)) / 2.0 + 8.0;
        gap >= need
    })
}

/// Longest category label drawn in full; longer ones are cut with an ellipsis.
const CATEGORY_LABEL_MAX: usize = 16;
/// At most this many labelled categories; more get every k-th label.
const CATEGORY_TICKS_MAX: usize = 12;

/// Evenly spaced categories at x = 0, 1, ..., labelled with their names.
fn categorical_axis(categories: &[String]) -> Axis {
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
fn log_axis(lo: f64, hi: f64) -> Axis {
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
struct TickedCoord {
    lo: f64,
    hi: f64,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl TickedCoord {
    fn new(axis: &Axis) -> Self {
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

// --- clipping (in plot space) ---

#[derive(Clone, Copy)]
struct Rect {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Rect {
    fn contains(&self, p: P) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }
}

/// Liang-Barsky; returns the visible part of segment `a`-`b`, with unclipped
/// endpoints returned bit-for-bit.
fn clip_segment(a: P, b: P, r: &Rect) -> Option<(P, P)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r.x0),
        (dx, r.x1 - a.0),
        (-dy, a.1 - r.y0),
        (dy, r.y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                if t > t1 {
                    return None;
                }
                t0 = t0.max(t);
            } else {
                if t < t0 {
                    return None;
                }
                t1 = t1.min(t);
            }
        }
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    let start = if t0 == 0.0 { a } else { at(t0) };
    let end = if t1 == 1.0 { b } else { at(t1) };
    Some((start, end))
}

fn clip_polyline(pts: &[P], r: &Rect) -> Vec<Vec<P>> {
    let mut out = Vec::new();
    let mut cur: Vec<P> = Vec::new();
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1], r) {
            Some((a, b)) => {
                if cur.last() != Some(&a) {
                    if cur.len() >= 2 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur = vec![a];
                }
                cur.push(b);
            }
            None => {
                if cur.len() >= 2 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() >= 2 {
        out.push(cur);
    }
    out
}

/// Sutherland-Hodgman against the four sides of `r`.
fn clip_polygon(poly: &[P], r: &Rect) -> Vec<P> {
    type Side = (fn(P, &Rect) -> bool, fn(P, P, &Rect) -> P);
    fn lerp_x(a: P, b: P, x: f64) -> P {
        let t = (x - a.0) / (b.0 - a.0);
        (x, a.1 + t * (b.1 - a.1))
    }
    fn lerp_y(a: P, b: P, y: f64) -> P {
        let t = (y - a.1) / (b.1 - a.1);
        (a.0 + t * (b.0 - a.0), y)
    }
    let sides: [Side; 4] = [
        (|p, r| p.0 >= r.x0, |a, b, r| lerp_x(a, b, r.x0)),
        (|p, r| p.0 <= r.x1, |a, b, r| lerp_x(a, b, r.x1)),
        (|p, r| p.1 >= r.y0, |a, b, r| lerp_y(a, b, r.y0)),
        (|p, r| p.1 <= r.y1, |a, b, r| lerp_y(a, b, r.y1)),
    ];
    let mut cur = poly.to_vec();
    for (inside, cross) in sides {
        if cur.is_empty() {
            break;
        }
        let input = std::mem::take(&mut cur);
        let mut prev = *input.last().unwrap();
        for &p in &input {
            match (inside(prev, r), inside(p, r)) {
                (true, true) => cur.push(p),
                (true, false) => cur.push(cross(prev, p, r)),
                (false, true) => {
                    cur.push(cross(prev, p, r));
                    cur.push(p);
                }
                (false, false) => {}
            }
            prev = p;
        }
    }
    cur
}

// --- drawing ---

/// ab_glyph's pixel scale is the font's ascent-to-descent height, not its em
/// size; for DejaVu Sans that height is (1901 + 483) / 2048 em.
const AB_GLYPH_EM: f64 = 2384.0 / 2048.0;
/// plotters' SVG backend writes `font-size = size / 1.24`.
const SVG_EM: f64 = 1.24;

/// Pixel scale of one rendering: lengths are given in output pixels and
/// multiplied by `s` (the supersampling factor); font sizes are em sizes in
/// output pixels.
#[derive(Clone, Copy)]
struct Scale {
    s: f64,
    /// Converts an em size to the size plotters expects from this backend.
    em: f64,
}

impl Scale {
    fn px(&self, v: f64) -> i32 {
        (v * self.s).round() as i32
    }
    fn stroke(&self, v: f64) -> u32 {
        self.px(v).max(1) as u32
    }
    /// Font for drawing, `em` pixels high.
    fn font(&self, em: f64) -> FontDesc<'static> {
        (FONT, em * self.s * self.em).into_font()
    }
    /// Font for measuring text as it will appear (DejaVu Sans at `em`).
    fn measure(&self, em: f64) -> TextStyle<'static> {
        (FONT, em * self.s * AB_GLYPH_EM).into_font().into()
    }
}

const TITLE_EM: f64 = 22.0;
const LABEL_EM: f64 = 16.0;
const TICK_EM: f64 = 14.0;
const LEGEND_EM: f64 = 14.0;

/// Width in output pixels of `text` set in DejaVu Sans at `em` pixels.
fn text_w(text: &str, em: f64) -> f64 {
    let font: FontDesc = (FONT, em * AB_GLYPH_EM).into_font();
    match font.box_size(text) {
        Ok((w, _)) => w as f64,
        Err(_) => 0.6 * em * text.chars().count() as f64,
    }
}

// Legend geometry, in output pixels.
const LEGEND_PAD: f64 = 9.0;
const LEGEND_SAMPLE: f64 = 28.0;
const LEGEND_GAP: f64 = 8.0;
const LEGEND_ROW: f64 = LEGEND_EM * 1.55;
const LEGEND_VPAD: f64 = 5.0;
/// At most this many rows in a legend inside the axes.
const INSIDE_LEGEND_ROWS: usize = 12;
/// Top of a legend right of the panels (about the top of the axes).
const RIGHT_LEGEND_TOP: f64 = 40.0;
/// Width of one panel when the legend is right of the panels.
const PANEL_W: u32 = 600;

/// Title, `entries` (at most `max_rows` rows in all; the rest summarised as
/// "… and N more"), then notes.
fn legend_rows(opts: &FigureOptions, entries: Vec<LegendRow>, max_rows: usize) -> Vec<LegendRow> {
    let mut rows = Vec::new();
    if !opts.legend_title.is_empty() {
        rows.push(LegendRow::Title(opts.legend_title.clone()));
    }
    let room = max_rows
        .saturating_sub(rows.len() + opts.legend_notes.len())
        .max(2);
    let n = entries.len();
    if n > room {
        rows.extend(entries.into_iter().take(room - 1));
        rows.push(LegendRow::Note(format!("… and {} more", n - (room - 1))));
    } else {
        rows.extend(entries);
    }
    rows.extend(opts.legend_notes.iter().cloned().map(LegendRow::Note));
    rows
}

/// Size of a legend box in output pixels.
fn legend_size(rows: &[LegendRow]) -> (f64, f64) {
    let content = rows
        .iter()
        .map(|r| match r {
            LegendRow::Title(t) | LegendRow::Note(t) => text_w(t, LEGEND_EM),
            LegendRow::Entry { name, .. } => LEGEND_SAMPLE + LEGEND_GAP + text_w(name, LEGEND_EM),
        })
        .fold(0.0, f64::max);
    (
        2.0 * LEGEND_PAD + content + 2.0,
        2.0 * LEGEND_VPAD + LEGEND_ROW * rows.len() as f64,
    )
}

/// A row of line-plot panels, with a legend in each panel or one legend
/// right of them.
struct LineFigure<'a> {
    plots: &'a [LinePlot],
    prepared: Vec<Prepared>,
    /// Rows of the legend right of the panels, and the width of the panels.
    right_legend: Option<(Vec<LegendRow>, u32)>,
    size: (u32, u32),
}

impl<'a> LineFigure<'a> {
    fn new(plots: &'a [LinePlot], opts: &FigureOptions) -> Self {
        let colors = color_map(plots, &opts.color_groups);
        let mut prepared: Vec<Prepared> = plots.iter().map(|p| prepare(p, &colors, opts)).collect();
        let n = plots.len().max(1);
        if opts.legend == LegendPlacement::Inside {
            for p in &mut prepared {
                if !p.legend.is_empty() {
                    let entries = std::mem::take(&mut p.legend);
                    p.legend = legend_rows(opts, entries, INSIDE_LEGEND_ROWS);
                }
            }
            return Self {
                plots,
                prepared,
                right_legend: None,
                size: figure_size(n),
            };
        }
        // One legend for the figure: the union of the panels' entries.
        let mut entries: Vec<LegendRow> = Vec::new();
        for p in &mut prepared {
            for row in p.legend.drain(..) {
                let LegendRow::Entry {
                    name,
                    markers,
                    band,
                    ..
                } = &row
                else {
                    continue;
                };
                let existing = entries.iter_mut().find_map(|e| match e {
                    LegendRow::Entry {
                        name: n,
                        markers,
                        band,
                        ..
                    } if n == name => Some((markers, band)),
                    _ => None,
                });
                match existing {
                    Some((m, b)) => {
                        *m |= *markers;
                        *b |= *band;
                    }
                    None => entries.push(row),
                }
            }
        }
        let panels_w = PANEL_W * n as u32;
        if entries.is_empty() && opts.legend_title.is_empty() && opts.legend_notes.is_empty() {
            return Self {
                plots,
                prepared,
                right_legend: None,
                size: (panels_w, HEIGHT),
            };
        }
        let max_rows =
            ((HEIGHT as f64 - RIGHT_LEGEND_TOP - 10.0 - 2.0 * LEGEND_VPAD) / LEGEND_ROW) as usize;
        let rows = legend_rows(opts, entries, max_rows);
        let (lw, lh) = legend_size(&rows);
        let w = panels_w + (lw + 4.0 + 16.0).ceil() as u32;
        let h = HEIGHT.max((RIGHT_LEGEND_TOP + lh + 10.0).ceil() as u32);
        Self {
            plots,
            prepared,
            right_legend: Some((rows, panels_w)),
            size: (w, h),
        }
    }
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, sc: Scale) -> Result<()> {
        root.fill(&WHITE).map_err(backend_err)?;
        let panels_area = match &self.right_legend {
            Some((rows, panels_w)) => {
                let (left, right) = root.split_horizontally(sc.px(*panels_w as f64));
                let (w, h) = legend_size(rows);
                draw_legend_box(
                    &right,
                    rows,
                    (sc.px(4.0), sc.px(RIGHT_LEGEND_TOP)),
                    (sc.px(w), sc.px(h)),
                    sc,
                )?;
                left
            }
            None => root.clone(),
        };
        let inside = self.right_legend.is_none();
        let areas = panels_area.split_evenly((1, self.plots.len().max(1)));
        for ((area, plot), prep) in areas.iter().zip(self.plots).zip(&self.prepared) {
            draw_panel(area, plot, prep, sc, inside)
                .with_context(|| format!("drawing panel {:?}", plot.title))?;
        }
        Ok(())
    }
}

fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
) -> Result<i32> {
    let (w, _) = area.estimate_text_size(text, style).map_err(backend_err)?;
    Ok(w as i32)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
    p: &Prepared,
    sc: Scale,
    legend_inside: bool,
) -> Result<()> {
    let px = |v: f64| sc.px(v);

    // Label areas: tick mark, gap, tick labels, gap, axis label.
    let tick_measure = sc.measure(TICK_EM);
    let mut tick_w = 0;
    for (_, label) in &p.y.ticks {
        tick_w = tick_w.max(text_width(area, label, &tick_measure)?);
    }
    let (panel_w, _) = area.dim_in_pixel();
    let y_area = (tick_w + px(5.0 + 5.0 + 10.0 + LABEL_EM * 1.2)).min(panel_w as i32 * 2 / 5);
    let x_area = px(5.0 + 5.0 + TICK_EM * 1.2 + 10.0 + LABEL_EM * 1.2);

    let mut builder = ChartBuilder::on(area);
    builder
        .margin_top(px(8.0))
        .margin_bottom(px(6.0))
        .margin_left(px(8.0))
        .margin_right(px(24.0))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    if !plot.title.is_empty() {
        builder.caption(&plot.title, sc.font(TITLE_EM));
    }
    let mut chart = builder
        .build_cartesian_2d(TickedCoord::new(&p.x), TickedCoord::new(&p.y))
        .map_err(backend_err)?;

    let label_of = |ticks: &[(f64, String)], v: f64| -> String {
        ticks
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    };
    let x_fmt = |v: &f64| label_of(&p.x.ticks, *v);
    let y_fmt = |v: &f64| label_of(&p.y.ticks, *v);
    let thin = sc.stroke(1.0);
    chart
        .configure_mesh()
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .axis_desc_style(sc.font(LABEL_EM))
        .label_style(sc.font(TICK_EM))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(GRID.stroke_width(thin))
        .light_line_style(GRID_MINOR.stroke_width(thin))
        .axis_style(BLACK.stroke_width(thin))
        .set_all_tick_mark_size(px(5.0))
        .draw()
        .map_err(backend_err)?;

    // Bands, then lines, then markers.
    for (color, polys) in &p.bands {
        for poly in polys {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly.clone(),
                    color.mix(0.2).filled(),
                )))
                .map_err(backend_err)?;
        }
    }
    let series_w = sc.stroke(2.0);
    for sr in &p.series {
        let style = sr.color.stroke_width(series_w);
        chart
            .draw_series(sr.lines.iter().map(|l| PathElement::new(l.clone(), style)))
            .map_err(backend_err)?;
        if sr.show_markers {
            chart
                .draw_series(
                    sr.markers
                        .iter()
                        .map(|&m| Circle::new(m, px(3.5), sr.color.filled())),
                )
                .map_err(backend_err)?;
        }
    }

    // Close the frame: top and right edges (the axes are the other two).
    let plot_area = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = plot_area.dim_in_pixel();
    let (pw, ph) = (pw as i32, ph as i32);
    let edge = thin as i32 / 2;
    plot_area
        .draw(&PathElement::new(
            vec![(0, edge), (pw - 1 - edge, edge), (pw - 1 - edge, ph - 1)],
            BLACK.stroke_width(thin),
        ))
        .map_err(backend_err)?;

    if !p.has_data {
        plot_area
            .draw(&Text::new(
                "no data",
                (pw / 2, ph / 2),
                sc.font(LABEL_EM)
                    .color(&RGBColor(130, 130, 130))
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))
            .map_err(backend_err)?;
    }

    if legend_inside {
        draw_legend(&plot_area, p, sc)?;
    }
    Ok(())
}

/// Draws the panel's legend in the corner of its axes covering the least data.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared,
    sc: Scale,
) -> Result<()> {
    if p.legend.is_empty() {
        return Ok(());
    }
    let px = |v: f64| sc.px(v);
    let (w, h) = legend_size(&p.legend);
    let (box_w, box_h) = (px(w), px(h));
    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let inset = px(10.0);

    // Corner covering the least data: upper right, lower right, upper left, lower left.
    let to_px = |q: P| -> (f64, f64) {
        (
            (q.0 - p.x.lo) / (p.x.hi - p.x.lo) * aw as f64,
            (p.y.hi - q.1) / (p.y.hi - p.y.lo) * ah as f64,
        )
    };
    let corners = [
        (aw - inset - box_w, inset),
        (aw - inset - box_w, ah - inset - box_h),
        (inset, inset),
        (inset, ah - inset - box_h),
    ];
    let mut samples: Vec<(f64, f64)> = Vec::new();
    for sr in &p.series {
        for line in &sr.lines {
            for w in line.windows(2) {
                let (a, b) = (to_px(w[0]), to_px(w[1]));
                let len = (b.0 - a.0).hypot(b.1 - a.1);
                let n = ((len / (4.0 * sc.s)).ceil() as usize).clamp(1, 64);
                for i in 0..n {
                    let t = i as f64 / n as f64;
                    samples.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
            if let Some(&last) = line.last() {
                samples.push(to_px(last));
            }
        }
        samples.extend(sr.markers.iter().map(|&m| to_px(m)));
    }
    for (_, polys) in &p.bands {
        samples.extend(polys.iter().flatten().map(|&q| to_px(q)));
    }
    let margin = px(4.0) as f64;
    let origin = corners
        .iter()
        .copied()
        .min_by_key(|&(cx, cy)| {
            samples
                .iter()
                .filter(|(x, y)| {
                    *x >= cx as f64 - margin
                        && *x <= (cx + box_w) as f64 + margin
                        && *y >= cy as f64 - margin
                        && *y <= (cy + box_h) as f64 + margin
                })
                .count()
        })
        .unwrap_or(corners[0]);
    draw_legend_box(area, &p.legend, origin, (box_w, box_h), sc)
}

/// Draws a framed legend with its top left corner at `(bx, by)` (device pixels).
fn draw_legend_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[LegendRow],
    (bx, by): (i32, i32),
    (box_w, box_h): (i32, i32),
    sc: Scale,
) -> Result<()> {
    let px = |v: f64| sc.px(v);
    let corners = [(bx, by), (bx + box_w, by + box_h)];
    area.draw(&Rectangle::new(corners, WHITE.mix(0.92).filled()))
        .map_err(backend_err)?;
    area.draw(&Rectangle::new(
        corners,
        LEGEND_BORDER.stroke_width(sc.stroke(1.0)),
    ))
    .map_err(backend_err)?;
    let font = |color: &RGBColor| {
        sc.font(LEGEND_EM)
            .color(color)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let (pad, sample, gap, row) = (
        px(LEGEND_PAD),
        px(LEGEND_SAMPLE),
        px(LEGEND_GAP),
        px(LEGEND_ROW),
    );
    for (i, r) in rows.iter().enumerate() {
        let cy = by + px(LEGEND_VPAD) + row * i as i32 + row / 2;
        let x0 = bx + pad;
        match r {
            LegendRow::Title(t) => {
                area.draw(&Text::new(t.as_str(), (x0, cy), font(&BLACK)))
                    .map_err(backend_err)?;
            }
            LegendRow::Note(t) => {
                area.draw(&Text::new(t.as_str(), (x0, cy), font(&NOTE)))
                    .map_err(backend_err)?;
            }
            LegendRow::Entry {
                name,
                color,
                markers,
                band,
            } => {
                if *band {
                    area.draw(&Rectangle::new(
                        [(x0, cy - px(6.0)), (x0 + sample, cy + px(6.0))],
                        color.mix(0.2).filled(),
                    ))
                    .map_err(backend_err)?;
                }
                area.draw(&PathElement::new(
                    vec![(x0, cy), (x0 + sample, cy)],
                    color.stroke_width(sc.stroke(2.0)),
                ))
                .map_err(backend_err)?;
                if *markers {
                    area.draw(&Circle::new((x0 + sample / 2, cy), px(3.5), color.filled()))
                        .map_err(backend_err)?;
                }
                area.draw(&Text::new(
                    name.as_str(),
                    (x0 + sample + gap, cy),
                    font(&BLACK),
                ))
                .map_err(backend_err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn clipping() {
        let r = Rect {
            x0: 0.0,
            x1: 1.0,
            y0: 0.0,
            y1: 1.0,
        };
        let lines = clip_polyline(&[(0.0, 0.5), (0.5, 2.0), (1.0, 0.5)], &r);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().flatten().all(|&p| r.contains(p)));
        let poly = clip_polygon(&[(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)], &r);
        assert_eq!(poly.len(), 4);
    }
}
