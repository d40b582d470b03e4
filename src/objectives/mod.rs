//! Training objectives: pure functions of logits and batch tensors.
//!
//! Each objective has an independent plain-f64 reference in `tests/` that
//! proptest compares against, plus a finite-difference gradient check.

pub mod mle;

pub use mle::{mle_loss, mle_loss_cpu};
