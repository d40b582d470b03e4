//! Tasks: problem generators with held-out splits and their graders.
//! [`registry`] maps `experiment.kind` to a task.

pub mod arithmetic;
pub mod countdown;
pub mod registry;
