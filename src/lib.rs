//! rewind: a research framework for learning to undo mistakes (SequenceMatch,
//! `<bksp>`) and for fine-tuning on failures without forgetting (UFT).
//!
//! Data flow of one run: [`experiment::config`] -> [`tasks`] (problems) ->
//! [`data`] (batches of token ids, loss weights, masks, positions) ->
//! [`model`] (one transformer definition: reference, fused CPU and cached
//! decoder) -> [`objectives`] (losses) -> [`train`] (step, AdamW,
//! checkpoints) inside [`experiment::run`] (stages, resume) -> [`eval`]
//! (decoders and graders) -> `metrics.csv` + [`plot`].

pub mod atomic;
pub mod cli;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod objectives;
pub mod plot;
pub mod tasks;
pub mod text_file;
pub mod train;
