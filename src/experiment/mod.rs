//! Experiments: typed configs ([`config`]), sweeps of runs with stable ids
//! ([`sweep`]), the run loop over stages with resume ([`run`]), and the
//! report of a run ([`report`]; per-step rows go to [`crate::metrics`]); [`explain`] documents
//! every config key. [`lockfile`] keeps two processes off one run, [`status`] reads where
//! each run stands from the results folder, and [`slurm`] runs a sweep as a Slurm job array.

pub mod config;
pub mod explain;
pub mod grid;
pub mod lockfile;
pub mod memory;
pub mod provenance;
pub mod report;
pub mod resume;
pub mod run;
pub mod search_batches;
pub mod shared_stage;
pub mod slurm;
pub mod stage_data;
pub mod status;
pub mod summary;
pub mod sweep;
