//! `summary.json` of a run: final metrics, the stage × probe table,
//! timings, seed, git commit and versions; and how it is derived from
//! `metrics.csv`, the one record that survives interrupted sessions.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::eval::ProbeConfig;
use crate::experiment::config::ExperimentConfig;
use crate::experiment::resume::global_step;
use crate::metrics::Row;

/// Timing of one stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageTiming {
    pub name: String,
    pub steps: u64,
    /// Training wall time of the stage (excluding evaluation), seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub ms_per_step: f64,
    /// Non-padding input tokens processed per second of training.
    #[serde(deserialize_with = "nan_if_null")]
    pub tokens_per_s: f64,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub experiment: String,
    pub run_id: String,
    pub seed: u64,
    pub git_commit: String,
    pub rewind_version: String,
    pub dfdx_version: String,
    pub device: String,
    pub threads: usize,
    pub num_params: usize,
    /// Success per probe (by name; a probe per split by default) after
    /// the last stage: exact match, or the verifier's rate; for a probe
    /// drawing n > 1 samples per problem, pass@n.
    #[serde(deserialize_with = "map_nan_if_null")]
    pub exact_match: BTreeMap<String, f64>,
    /// Problems per probe.
    pub n: BTreeMap<String, usize>,
    /// Teacher-forced validation NLL after the last stage.
    #[serde(deserialize_with = "nan_if_null")]
    pub val_loss: f64,
    /// Backspace metrics per probe after the last stage:
    /// `backspace[probe]["backspaces"]` (mean `<bksp>` per answer) and
    /// `["fix_rate"]` (share of deletions that removed a wrong token; absent
    /// without deletions).
    #[serde(default, deserialize_with = "nested_nan_if_null")]
    pub backspace: BTreeMap<String, BTreeMap<String, f64>>,
    /// Wall-time metrics per probe after the last stage:
    /// `timing[probe]["seconds_per_problem"]` (decoding or searching, and
    /// grading, per problem).
    #[serde(default, deserialize_with = "nested_nan_if_null")]
    pub timing: BTreeMap<String, BTreeMap<String, f64>>,
    /// Accuracy per stage per probe: `after_stage[stage][probe]` (the forgetting table).
    #[serde(deserialize_with = "nested_nan_if_null")]
    pub after_stage: BTreeMap<String, BTreeMap<String, f64>>,
    pub stages: Vec<StageTiming>,
    /// Wall time of the whole run including evaluation (summed over resumed sessions), seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_s: f64,
    /// Examples of wrong answers of the report probe (`test` if there is
    /// one): (prompt, expected, got), from the evaluation after the last stage.
    pub wrong_examples: Vec<(String, String, String)>,
    /// The run diverged: the first step (global, 1-based, as in metrics.csv)
    /// whose training loss, or the monitored probe's validation loss, was
    /// not a finite number; `null` for a run that stayed finite. Training
    /// stops at a non-finite training loss: the stages from there on have
    /// no `after_stage` entries, `exact_match` is empty and `val_loss` is
    /// NaN (`null`). A later non-finite validation loss alone does not stop
    /// training.
    #[serde(default)]
    pub diverged_at_step: Option<u64>,
}

// JSON has no NaN or infinity: serde_json writes a non-finite number as
// `null` (a diverged run's loss). These read `null` back as NaN, so one such
// run never stops a rerun, `rewind merge` or the plots from reading it.

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn map_nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

type Nested = BTreeMap<String, BTreeMap<String, f64>>;

fn nested_nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
    let m = BTreeMap::<String, BTreeMap<String, Option<f64>>>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, inner)| {
            let inner = inner
                .into_iter()
                .map(|(k2, v)| (k2, v.unwrap_or(f64::NAN)))
                .collect();
            (k, inner)
        })
        .collect())
}

/// Reads a run's `summary.json`.
pub fn read_summary(path: &std::path::Path) -> anyhow::Result<Summary> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// The first step at which the training loss, or the loss of probe
/// `monitor` (the validation probe), is not finite: where a run diverged.
pub fn first_non_finite_loss(rows: &[Row], monitor: &str) -> Option<u64> {
    rows.iter()
        .filter(|r| r.metric == "loss" && (r.split == "train" || r.split == monitor))
        .filter(|r| !r.value.is_finite())
        .map(|r| r.step)
        .min()
}

/// Names of the per-probe backspace metrics kept in the summary.
pub const BACKSPACE_METRICS: [&str; 2] = ["backspaces", "fix_rate"];

/// Names of the per-probe wall-time metrics kept in the summary.
pub const TIMING_METRICS: [&str; 1] = ["seconds_per_problem"];

/// Each probe's [`BACKSPACE_METRICS`] at the end of the last stage.
pub fn final_backspace(
    cfg: &ExperimentConfig,
    probes: &[ProbeConfig],
    rows: &[Row],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    final_probe_metrics(cfg, probes, rows, &BACKSPACE_METRICS)
}

/// Each probe's [`TIMING_METRICS`] at the end of the last stage.
pub fn final_timing(
    cfg: &ExperimentConfig,
    probes: &[ProbeConfig],
    rows: &[Row],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    final_probe_metrics(cfg, probes, rows, &TIMING_METRICS)
}

/// Each probe's `metrics` at the end of the last stage (absent ones left out).
fn final_probe_metrics(
    cfg: &ExperimentConfig,
    probes: &[ProbeConfig],
    rows: &[Row],
    metrics: &[&str],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let (si, st) = (cfg.stages.len() - 1, &cfg.stages[cfg.stages.len() - 1]);
    let end = global_step(cfg, si + 1, 0);
    probes
        .iter()
        .map(|p| {
            let m = metrics
                .iter()
                .filter_map(|&metric| {
                    rows.iter()
                        .find(|r| {
                            r.stage == st.name
                                && r.step == end
                                && r.split == p.name
                                && r.metric == metric
                        })
                        .map(|r| (metric.to_string(), r.value))
                })
                .collect();
            (p.name.clone(), m)
        })
        .collect()
}

/// The metric a probe's success is read from: its grader's (exact match
/// or verified) for one completion per problem, `pass@n` (solved by any of
/// the n samples: best-of-n with a verifier) for several.
pub fn success_metric(p: &ProbeConfig) -> String {
    match p.decoder.samples() {
        n if n > 1 => format!("pass@{n}"),
        _ => p.grader.metric().to_string(),
    }
}

/// The forgetting table (`after_stage[stage][probe]` = the probe's
/// success ([`success_metric`]) after that stage) and per-stage timings, read back from
/// metrics rows.
pub fn stage_results(
    cfg: &ExperimentConfig,
    probes: &[ProbeConfig],
    rows: &[Row],
) -> (BTreeMap<String, BTreeMap<String, f64>>, Vec<StageTiming>) {
    let mut table = BTreeMap::new();
    let mut timings = Vec::new();
    let mut prev_elapsed = 0.0;
    for (si, st) in cfg.stages.iter().enumerate() {
        let end = global_step(cfg, si + 1, 0);
        let at_end = |split: &str, metric: &str| {
            rows.iter()
                .find(|r| {
                    r.stage == st.name && r.step == end && r.split == split && r.metric == metric
                })
                .map(|r| (r.value, r.elapsed_s))
        };
        let row: BTreeMap<String, f64> = probes
            .iter()
            .filter_map(|p| at_end(&p.name, &success_metric(p)).map(|(v, _)| (p.name.clone(), v)))
            .collect();
        table.insert(st.name.clone(), row);
        let elapsed = at_end("train", "loss").map_or(prev_elapsed, |(_, e)| e);
        let train_s = elapsed - prev_elapsed;
        prev_elapsed = elapsed;
        timings.push(StageTiming {
            name: st.name.clone(),
            steps: st.steps,
            train_s,
            ms_per_step: 1000.0 * train_s / st.steps.max(1) as f64,
            tokens_per_s: at_end("train", "tokens_per_s").map_or(0.0, |(v, _)| v),
        });
    }
    (table, timings)
}
