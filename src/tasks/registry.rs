//! The experiment kinds, registered in one place.
//!
//! A kind turns the `[data]` table of a config into a [`Task`](super::Task): something
//! that draws training sequences and holds fixed evaluation splits. The
//! trainer, evaluator, sweeps and plots only see this trait, so a new kind
//! is one file implementing it plus one line in [`KINDS`].

use super::arithmetic::{ArithmeticConfig, ArithmeticTask};
use super::countdown::task::{
    build_countdown, build_game24, resolve_countdown_data, resolve_game24_data,
    CountdownTaskConfig, Game24TaskConfig,
};
use super::Task;
use anyhow::{bail, Context, Result};

/// One registered kind.
pub struct Kind {
    /// The `experiment.kind` value.
    pub name: &'static str,
    /// One line for `rewind list`.
    pub description: &'static str,
    /// Its evaluation splits (allowed values of `eval.splits`).
    pub splits: &'static [&'static str],
    /// Parses and validates `[data]`, filling defaults; returns the resolved table.
    pub resolve_data: fn(&toml::Table) -> Result<toml::Table>,
    /// Builds the task from a resolved `[data]` table and a seed.
    pub build: fn(&toml::Table, u64) -> Result<Box<dyn Task>>,
    /// JSON schema of `[data]` (field docs and defaults, for `rewind config --explain`).
    pub data_schema: fn() -> schemars::schema::RootSchema,
}

/// Every experiment kind. Add a line here for a new kind.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "arithmetic",
        description:
            "add/sub in base b (SequenceMatch's arithmetic task); exact match on val/test/long splits",
        splits: &["val", "test", "long"],
        resolve_data: resolve_arithmetic,
        build: build_arithmetic,
        data_schema: || schemars::schema_for!(ArithmeticConfig),
    },
    Kind {
        name: "countdown",
        description: "Countdown (learning-from-failures paper): reach a target from 4 numbers with + - * /, step-by-step paths from symbolic search; held-out test targets, rule-based verifier",
        splits: &["val", "test"],
        resolve_data: resolve_countdown_data,
        build: build_countdown,
        data_schema: || schemars::schema_for!(CountdownTaskConfig),
    },
    Kind {
        name: "game24",
        description: "Game of 24: make 24 from 4 numbers in 1..=13 with exact rational + - * /, step-by-step paths; fixed split of the 1362 solvable multisets, rule-based verifier",
        splits: &["val", "test"],
        resolve_data: resolve_game24_data,
        build: build_game24,
        data_schema: || schemars::schema_for!(Game24TaskConfig),
    },
];

/// Looks a kind up by name; the error lists the known kinds.
pub fn kind(name: &str) -> Result<&'static Kind> {
    KINDS.iter().find(|k| k.name == name).with_context(|| {
        let names: Vec<_> = KINDS.iter().map(|k| k.name).collect();
        format!(
            "experiment.kind = {name:?}: unknown kind (known: {})",
            names.join(", ")
        )
    })
}

pub use super::from_value;

fn resolve_arithmetic(data: &toml::Table) -> Result<toml::Table> {
    let cfg: ArithmeticConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    match toml::Value::try_from(&cfg)? {
        toml::Value::Table(t) => Ok(t),
        _ => bail!("arithmetic config did not serialise to a table"),
    }
}

fn build_arithmetic(data: &toml::Table, seed: u64) -> Result<Box<dyn Task>> {
    let cfg: ArithmeticConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    Ok(Box::new(
        ArithmeticTask::new(cfg, seed).map_err(|e| anyhow::anyhow!("{e}"))?,
    ))
}
