//! rewind: a research framework for learning to undo mistakes (SequenceMatch,
//! `<bksp>`) and for fine-tuning on failures without forgetting (UFT).
//!
//! Data flow of one run: [`config`] -> [`tasks`] (problems) -> [`data`]
//! (batches of token ids, loss weights, masks, positions) -> [`model`] (dfdx
//! transformer) -> [`objectives`] (losses) -> [`run`] (stages, [`optim`],
//! [`checkpoint`]s) -> [`eval`] (exact-match accuracy) -> [`metrics`] CSV +
//! [`plot`].

pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod countdown;
pub mod data;
pub mod device;
pub mod eval;
pub mod explain;
pub mod metrics;
pub mod model;
pub mod objectives;
pub mod optim;
pub mod plot;
pub mod registry;
pub mod report;
pub mod run;
pub mod sweep;
pub mod tasks;
pub mod train;
pub mod vocab;
