//! Tasks: problem generators.
pub mod arithmetic;
