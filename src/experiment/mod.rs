//! Experiments: typed configs ([`config`]), sweeps of runs with stable ids
//! ([`sweep`]), the run loop over stages with resume ([`run`]), and the
//! results each run writes ([`metrics`], [`report`]); [`explain`] documents
//! every config key.

pub mod config;
pub mod explain;
pub mod metrics;
pub mod report;
pub mod run;
pub mod sweep;
