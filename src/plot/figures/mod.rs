//! The figures rewind draws from its result files: the standard figure of a
//! training run (`training`, from the run's `metrics.csv`) and the figures
//! of a sweep of runs (`sweep`, from its `summary.csv` and every run's
//! `metrics.csv`).
//!
//! Figures depend only on [`crate::metrics`] (the one reader of metrics.csv)
//! and the plotting engine; the engine knows nothing about them.

mod sweep;
mod training;

pub use sweep::plot_sweep;
pub use training::plot_training_run;

/// Exact-match axis: [0, 1] plus a sliver, so lines at exactly 0 or 1 are not
/// hidden under the frame; the ticks still run 0.0 ..= 1.0.
const ACC_RANGE: (f64, f64) = (-0.025, 1.025);
