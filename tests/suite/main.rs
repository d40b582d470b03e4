//! rewind's integration tests, as modules of one test binary: each file
//! linked separately would link dfdx and the whole crate again (15 binaries
//! took ~9 minutes to build on 2 cores; one takes a fraction of that).
//! Run one file's tests with `cargo test --test suite fused::`.

mod alloc_count;
mod arithmetic;
mod backspace;
mod bad_args;
mod bad_input;
mod beam;
mod cache;
mod checkpoint;
mod config;
mod countdown;
mod countdown_build;
mod countdown_paper;
mod countdown_task;
mod diverged;
mod fault_campaign;
mod fine_tune;
mod fused;
mod grad_check;
mod learning;
mod locks;
mod model;
mod objectives;
mod optim;
mod plot;
mod plot_sweep;
mod reference_model;
mod run;
mod sequencematch;
mod slurm;
mod stages;
mod sweep;
