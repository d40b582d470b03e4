//! A coarse estimate of the memory a run needs, checked before anything is
//! allocated, so a typo such as `batch_size = 10000000` is an error that
//! names the key instead of an abort ("memory allocation of ... failed") or
//! a machine driven into swap.
//!
//! The estimate counts the big buffers of a training step on the fused CPU
//! path, in f32 (4 bytes):
//! - parameters, their gradients and the two AdamW moments, plus a frozen
//!   reference copy and the packed host copy: `6 × params`;
//! - activations kept for the backward pass, per token of a batch row
//!   (`max_len` tokens per row, the longest a row can be): per layer the
//!   residual input, the two layer-norm outputs, q, k, v, the attention
//!   output and its projection, the feed-forward input and output (`10 ×
//!   d_model`), the feed-forward hidden layer before and after GELU (`2 ×
//!   d_ff`) and the attention weights (`n_heads × max_len`); then the
//!   logits and their gradient (`2 × vocab`);
//! - rows: the stage's `batch_size`, doubled for objectives that read
//!   labelled or pair batches (D+ and D- rows), plus the rollout rows of a
//!   SequenceMatch stage;
//! - decoding (the probes, rollouts): per row of `eval.batch_size` the key
//!   and value cache (`2 × n_layers × max_len × d_model`) and one row of
//!   logits.
//!
//! It errs high (buffers are pooled and reused), so the limit is the
//! machine's total memory (`MemTotal` in /proc/meminfo), or
//! [`FALLBACK_LIMIT`] where that cannot be read: a run refused here could
//! not have run on this machine anyway.

use std::fmt;

use crate::data::BatchKind;
use crate::experiment::config::ExperimentConfig;

/// The limit where the machine's memory cannot be read (no /proc/meminfo,
/// e.g. macOS): 64 GiB.
pub const FALLBACK_LIMIT: f64 = 64.0 * GIB;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A run that would need more memory than the machine has.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{key} = {value}: {what} would need about {}, more than {limit_name} ({}); lower {key}, or the \
     model's size (model.d_model, d_ff, n_layers, max_len)",
    gib(*need),
    gib(*limit)
)]
pub struct TooBig {
    /// The config key to lower, e.g. `stages[0].batch_size`.
    pub key: String,
    pub value: String,
    /// What needs the memory, e.g. `a training step of stage "pretrain"`.
    pub what: String,
    /// Estimated bytes.
    pub need: f64,
    /// The limit in bytes.
    pub limit: f64,
    /// What the limit is: the machine's memory or the default.
    pub limit_name: &'static str,
}

fn gib(bytes: f64) -> impl fmt::Display {
    format!("{:.1} GiB", bytes / GIB)
}

/// The memory limit: the machine's total memory, and how to name it.
pub fn limit() -> (f64, &'static str) {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024.0)
        });
    match total {
        Some(bytes) => (bytes, "this machine's memory"),
        None => (FALLBACK_LIMIT, "the default limit"),
    }
}

/// Estimated bytes of the parameters and everything sized like them.
fn params_bytes(cfg: &ExperimentConfig) -> f64 {
    let m = &cfg.model;
    let (d, ff, l) = (m.d_model as f64, m.d_ff as f64, m.n_layers as f64);
    let per_layer = 4.0 * d * d + 2.0 * d * ff + 9.0 * d + ff;
    let params = m.vocab_size as f64 * d + m.max_len as f64 * d + l * per_layer + 2.0 * d;
    6.0 * 4.0 * params
}

/// Estimated bytes of the activations of `rows` sequences of `max_len`.
fn activation_bytes(cfg: &ExperimentConfig, rows: f64) -> f64 {
    let m = &cfg.model;
    let (d, ff, t) = (m.d_model as f64, m.d_ff as f64, m.max_len as f64);
    let per_token = m.n_layers as f64 * (10.0 * d + 2.0 * ff + m.n_heads as f64 * t)
        + 2.0 * m.vocab_size as f64
        + 2.0 * d;
    4.0 * rows * t * per_token
}

/// Checks `cfg` against `limit` bytes (named `limit_name`); the error
/// names the key whose value is too large.
pub fn check_against(
    cfg: &ExperimentConfig,
    limit: f64,
    limit_name: &'static str,
) -> Result<(), TooBig> {
    let params = params_bytes(cfg);
    let too_big = |key: String, value: String, what: String, need: f64| TooBig {
        key,
        value,
        what,
        need,
        limit,
        limit_name,
    };
    for (i, st) in cfg.stages.iter().enumerate() {
        let pairs = matches!(
            st.objective.build().batch_kind(),
            BatchKind::Labelled | BatchKind::Pairs
        );
        let policy = st.rollouts.as_ref().map_or(0, |r| r.batch_size) as f64;
        let rows = st.batch_size as f64 * if pairs { 2.0 } else { 1.0 } + policy;
        let need = params + activation_bytes(cfg, rows);
        if need > limit {
            return Err(too_big(
                format!("stages[{i}].batch_size"),
                st.batch_size.to_string(),
                format!("a training step of stage {:?}", st.name),
                need,
            ));
        }
    }
    let m = &cfg.model;
    let rows = cfg.eval.batch_size as f64;
    let per_row =
        4.0 * (2.0 * m.n_layers as f64 * m.max_len as f64 * m.d_model as f64 + m.vocab_size as f64);
    let need = params + rows * per_row;
    if need > limit {
        return Err(too_big(
            "eval.batch_size".into(),
            cfg.eval.batch_size.to_string(),
            "decoding the probes".into(),
            need,
        ));
    }
    Ok(())
}

/// [`check_against`] the machine's memory ([`limit`]).
pub fn check(cfg: &ExperimentConfig) -> Result<(), TooBig> {
    let (limit, name) = limit();
    check_against(cfg, limit, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(batch: usize) -> ExperimentConfig {
        ExperimentConfig::from_toml(&format!(
            "[experiment]\nname = \"m\"\nkind = \"arithmetic\"\n\
             [[stages]]\nobjective = {{ kind = \"mle\" }}\nsteps = 1\nbatch_size = {batch}\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_quickstart_size_fits_and_a_typo_does_not() {
        // the default model at batch 64: tens of MB
        check_against(&cfg(64), GIB, "1 GiB").unwrap();
        let e = check_against(&cfg(10_000_000), 64.0 * GIB, "64 GiB").unwrap_err();
        assert_eq!(e.key, "stages[0].batch_size");
        let msg = e.to_string();
        assert!(
            msg.starts_with("stages[0].batch_size = 10000000: a training step"),
            "{msg}"
        );
    }

    #[test]
    fn the_estimate_grows_with_every_size() {
        let base = cfg(64);
        let need = |c: &ExperimentConfig| params_bytes(c) + activation_bytes(c, 64.0);
        for change in [
            |c: &mut ExperimentConfig| c.model.d_model *= 2,
            |c: &mut ExperimentConfig| c.model.d_ff *= 2,
            |c: &mut ExperimentConfig| c.model.n_layers *= 2,
            |c: &mut ExperimentConfig| c.model.max_len *= 2,
        ] {
            let mut bigger = base.clone();
            change(&mut bigger);
            assert!(need(&bigger) > need(&base));
        }
    }
}
