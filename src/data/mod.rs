//! Tokens and batches: the fixed vocabulary ([`vocab`]), the host-side
//! batches every objective trains on ([`batch`]), and JSONL datasets of
//! prompt/completion lines ([`dataset`]).
//!
//! Nothing here computes a loss or touches a device: batches are plain
//! `Vec`s that the model moves to its device.

pub mod backspace;
pub mod batch;
pub mod dataset;
pub mod noise;
pub mod vocab;

pub use batch::{
    Batch, BatchKind, Example, LabelledBatch, PairBatch, TrainBatch, TransitionBatch, MASKED,
};
