//! Training: one optimisation step on the device's [`Backend`] ([`step`]),
//! AdamW and the learning-rate schedule ([`optim`]), and checkpoints
//! ([`checkpoint`]).

pub mod checkpoint;
pub mod optim;
pub mod step;

pub use step::{gradients, reference, train_step, Backend, NonFiniteLoss, StepSpec, StepStats};
