//! Tokens and batches: the fixed vocabulary ([`vocab`]) and the host-side
//! batches every objective trains on ([`batch`]).
//!
//! Nothing here computes a loss or touches a device: batches are plain
//! `Vec`s that the model moves to its device.

pub mod batch;
pub mod vocab;

pub use batch::{Batch, BatchKind, Example, PairBatch, TrainBatch, TransitionBatch, MASKED};
