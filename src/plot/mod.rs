//! Plotting, in two layers:
//!
//! - `engine`: a generic engine for publication-quality line plots and
//!   heatmaps (PNG and SVG) drawn with `plotters`: [`Series`], [`Band`],
//!   [`LinePlot`], [`FigureOptions`], [`Heatmap`] and the functions that
//!   write them ([`line_plot`], [`panels`], [`panels_with`], [`heatmap`]);
//! - `figures`: the figures rewind draws from its result files: the
//!   standard figure of a training run ([`plot_training_run`]: `training.png`
//!   / `training.svg`, loss | exact-match accuracy, from the run's
//!   `metrics.csv`) and the figures of a sweep of runs ([`plot_sweep`]:
//!   learning curves, final accuracy against each swept axis, the
//!   forgetting table).
//!
//! Figures use only the engine's API and [`crate::metrics`] (which reads
//! metrics.csv); the engine depends on neither.

mod engine;
mod figures;

pub use engine::{
    heatmap, line_plot, panels, panels_with, Band, FigureOptions, Heatmap, LegendPlacement,
    LinePlot, Series, XScale,
};
pub use figures::{plot_sweep, plot_training_run};
