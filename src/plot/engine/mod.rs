//! The plotting engine: publication-quality line plots and heatmaps (PNG and
//! SVG) drawn with `plotters`, knowing nothing about rewind's files.
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
//!
//! Files, in drawing order: `types` (what a line figure is made of) ->
//! `prepare` (colours, ranges and clipping in plot space, with `axis` and
//! `clip`) -> `panel` (axes, grid, lines) and `legend` -> `render` (PNG or
//! SVG file), with `style` (font, palette, sizes) shared by all. `heatmap`
//! is the other kind of figure, drawn through the same `render`.

use std::path::Path;

use anyhow::{bail, Result};

mod axis;
mod clip;
mod heatmap;
mod legend;
mod legend_row;
mod panel;
mod prepare;
mod render;
mod style;
mod types;

pub use heatmap::{heatmap, Heatmap};
pub use types::{Band, FigureOptions, LegendPlacement, LinePlot, Series, XScale};

use panel::{render, render_with};

/// Number of distinct series colours, for figures that decide when to give
/// several series one colour (more series than colours).
pub(crate) const PALETTE_LEN: usize = style::PALETTE.len();

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
