//! Training: one optimisation step ([`step`]), AdamW and the learning-rate
//! schedule ([`optim`]), and checkpoints ([`checkpoint`]).

pub mod checkpoint;
pub mod optim;
pub mod step;

pub use step::{
    gradients, gradients_reference, train_step, train_step_reference, StepSpec, StepStats,
};
