//! A sweep's `summary.csv` (one row per run: `run_id`, `index`, `axis:<path>`,
//! `final:<split>`, `after:<stage>:<split>`, ...) read with the csv crate
//! into a [`Sweep`]: its axes (numeric, log or categorical), and each run's
//! values and labels. Errors name the file, the line and what is wrong.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::plot::engine::XScale;

/// A swept axis (`axis:<path>` column).
pub(super) struct SweepAxis {
    pub(super) path: String,
    /// Shortest unambiguous tail of the path (`lr` for `stages.0.lr`).
    pub(super) short: String,
    pub(super) is_seed: bool,
    /// Distinct non-empty values in axis order: ascending for numbers,
    /// `false`, `true` for booleans, first appearance for strings.
    pub(super) values: Vec<String>,
    /// Numbers: `Some(log)`, log when all positive and spanning >= 10x;
    /// strings and booleans: `None` (categories).
    pub(super) numeric: Option<bool>,
}

impl SweepAxis {
    /// Position of a value on the axis: the number, or the category index.
    pub(super) fn position(&self, value: &str) -> Option<f64> {
        match self.numeric {
            Some(_) => value.parse::<f64>().ok(),
            None => self
                .values
                .iter()
                .position(|v| v == value)
                .map(|i| i as f64),
        }
    }

    pub(super) fn x_scale(&self) -> XScale {
        match self.numeric {
            Some(true) => XScale::Log,
            Some(false) => XScale::Linear,
            None => XScale::Categorical(shorten_categories(&self.values).0),
        }
    }

    /// The axis title: its path, plus the prefix cut from its category
    /// labels, if any (`stages.1.objective (labels without "sequencematch-")`).
    pub(super) fn title(&self) -> String {
        match (self.numeric, shorten_categories(&self.values).1) {
            (None, Some(prefix)) => format!("{} (labels without \"{prefix}\")", self.path),
            _ => self.path.clone(),
        }
    }
}

/// Category labels this long or shorter are never shortened.
const SHORT_LABEL: usize = 10;

/// Category labels without the `-`-ended first segment that several of
/// them share (`sequencematch-kl`, `sequencematch-js` -> `kl`, `js`), and
/// that segment; unchanged (None) when all labels are short (at most
/// [`SHORT_LABEL`] characters), no segment is shared, or cutting it would
/// make two labels equal or one empty. Table-valued axes (objective
/// tables) give long labels like these, which overlap side by side.
pub(super) fn shorten_categories(values: &[String]) -> (Vec<String>, Option<String>) {
    if values.iter().all(|v| v.chars().count() <= SHORT_LABEL) {
        return (values.to_vec(), None);
    }
    let first = |v: &String| v.split_once('-').map(|(head, _)| format!("{head}-"));
    let mut best: Option<(usize, String)> = None;
    for prefix in values.iter().filter_map(first) {
        let n = values.iter().filter(|v| v.starts_with(&prefix)).count();
        if n >= 2 && best.as_ref().is_none_or(|(m, _)| n > *m) {
            best = Some((n, prefix));
        }
    }
    let Some((_, prefix)) = best else {
        return (values.to_vec(), None);
    };
    let cut: Vec<String> = values
        .iter()
        .map(|v| v.strip_prefix(&prefix).unwrap_or(v).to_string())
        .collect();
    let unique = cut.iter().collect::<std::collections::HashSet<_>>().len() == cut.len();
    if unique && cut.iter().all(|c| !c.is_empty()) {
        (cut, Some(prefix))
    } else {
        (values.to_vec(), None)
    }
}

pub(super) struct Run {
    pub(super) id: String,
    /// One value per axis ("" when the cell is empty).
    pub(super) axis_values: Vec<String>,
    /// `final:<split>` values, one per `Sweep::finals`.
    pub(super) finals: Vec<Option<f64>>,
    /// `after:<stage>:<split>` values, one per `Sweep::afters`.
    pub(super) afters: Vec<Option<f64>>,
    /// `<metric>:<split>` values of [`EXTRA_METRICS`], one per
    /// `Sweep::extras`.
    pub(super) extras: Vec<Option<f64>>,
    /// All axis values, seeds last: `lr=0.001 divergence=kl seed=1`.
    pub(super) label: String,
    /// The non-seed axis values (the configuration); empty without axes.
    pub(super) config: String,
}

pub(super) struct Sweep {
    pub(super) axes: Vec<SweepAxis>,
    /// Split names of the `final:` columns.
    pub(super) finals: Vec<String>,
    /// `(stage, split)` of the `after:` columns.
    pub(super) afters: Vec<(String, String)>,
    /// `(metric, split)` of the `<metric>:<split>` columns of
    /// [`EXTRA_METRICS`] (`fix_rate:test`).
    pub(super) extras: Vec<(String, String)>,
    pub(super) runs: Vec<Run>,
}

/// Per-split final metrics besides exact match that a summary may carry
/// (`backspaces:<split>`, `fix_rate:<split>`, `seconds_per_problem:<split>`).
pub(super) const EXTRA_METRICS: [&str; 3] = ["backspaces", "fix_rate", "seconds_per_problem"];

fn summary_error(path: &Path, e: csv::Error) -> anyhow::Error {
    let what = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        _ => e.to_string(),
    };
    match e.position() {
        Some(p) => anyhow!(
            "{}: line {}: malformed summary row: {what}",
            path.display(),
            p.line()
        ),
        None => anyhow!("{}: malformed summary file: {what}", path.display()),
    }
}

pub(super) fn read_summary(path: &Path) -> Result<Sweep> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening sweep summary {file}"))?;
    let header = reader
        .headers()
        .map_err(|e| summary_error(path, e))?
        .clone();
    if header.iter().all(|h| h.is_empty()) {
        bail!("{file}: line 1: empty summary file (expected a header with run_id, axis:..., final:...)");
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let Some(id_col) = col("run_id") else {
        bail!("{file}: line 1: header lacks column `run_id`");
    };
    let index_col = col("index");
    let mut axis_cols = Vec::new();
    let mut final_cols = Vec::new();
    let mut after_cols = Vec::new();
    let mut finals = Vec::new();
    let mut afters = Vec::new();
    let mut extra_cols = Vec::new();
    let mut extras = Vec::new();
    let mut axis_paths = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(path) = h.strip_prefix("axis:") {
            axis_cols.push(i);
            axis_paths.push(path.to_string());
        } else if let Some(split) = h.strip_prefix("final:") {
            final_cols.push(i);
            finals.push(split.to_string());
        } else if let Some(rest) = h.strip_prefix("after:") {
            let Some((stage, split)) = rest.split_once(':') else {
                bail!("{file}: line 1: column `{h}` is not after:<stage>:<split>");
            };
            after_cols.push(i);
            afters.push((stage.to_string(), split.to_string()));
        } else if let Some((metric, split)) =
            h.split_once(':').filter(|(m, _)| EXTRA_METRICS.contains(m))
        {
            extra_cols.push(i);
            extras.push((metric.to_string(), split.to_string()));
        }
    }

    let mut runs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| summary_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("");
        let number = |i: usize| -> Result<Option<f64>> {
            let s = cell(i);
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<f64>().map(Some).map_err(|_| {
                anyhow!(
                    "{file}: line {line}: column `{}`: {s:?} is not a number",
                    &header[i]
                )
            })
        };
        let id = cell(id_col).to_string();
        if id.is_empty() {
            bail!("{file}: line {line}: empty run_id");
        }
        if let Some(i) = index_col {
            let s = cell(i);
            if !s.is_empty() && s.parse::<i64>().is_err() {
                bail!("{file}: line {line}: column `index`: {s:?} is not an integer");
            }
        }
        runs.push(Run {
            id,
            axis_values: axis_cols.iter().map(|&i| cell(i).to_string()).collect(),
            finals: final_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<_>>()?,
            afters: after_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<_>>()?,
            extras: extra_cols
                .iter()
                .map(|&i| number(i))
                .collect::<Result<_>>()?,
            label: String::new(),
            config: String::new(),
        });
    }
    if runs.is_empty() {
        bail!("{file}: no runs (no data rows after the header)");
    }

    let shorts = short_names(&axis_paths);
    let axes: Vec<SweepAxis> = axis_paths
        .into_iter()
        .zip(shorts)
        .enumerate()
        .map(|(a, (path, short))| {
            let values: Vec<&str> = runs.iter().map(|r| r.axis_values[a].as_str()).collect();
            let is_seed = path.rsplit('.').next() == Some("seed");
            let (values, numeric) = axis_values(&values);
            SweepAxis {
                path,
                short,
                is_seed,
                values,
                numeric,
            }
        })
        .collect();

    // Labels: non-seed axes in column order, then seeds.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for run in &mut runs {
        let part = |a: usize| {
            let v = &run.axis_values[a];
            let v = if v.is_empty() { "(none)" } else { v.as_str() };
            format!("{}={v}", axes[a].short)
        };
        let config: Vec<String> = (0..axes.len())
            .filter(|&a| !axes[a].is_seed)
            .map(part)
            .collect();
        let seeds: Vec<String> = (0..axes.len())
            .filter(|&a| axes[a].is_seed)
            .map(part)
            .collect();
        run.config = config.join(" ");
        let mut label = [config, seeds].concat().join(" ");
        if label.is_empty() {
            label = run.id.clone();
        }
        let n = seen.entry(label.clone()).or_default();
        *n += 1;
        if *n > 1 {
            label = format!("{label} [{}]", run.id);
        }
        run.label = label;
    }

    Ok(Sweep {
        axes,
        finals,
        afters,
        extras,
        runs,
    })
}

/// Distinct non-empty values in axis order, and `Some(log)` for numbers.
fn axis_values(values: &[&str]) -> (Vec<String>, Option<bool>) {
    let mut distinct: Vec<String> = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        if !distinct.iter().any(|d| d == v) {
            distinct.push(v.to_string());
        }
    }
    let numbers: Option<Vec<f64>> = distinct
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    match numbers {
        Some(nums) if !nums.is_empty() => {
            let mut pairs: Vec<(f64, String)> = nums.iter().copied().zip(distinct).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (lo, hi) = (pairs[0].0, pairs[pairs.len() - 1].0);
            let log = lo > 0.0 && hi / lo >= 10.0;
            (pairs.into_iter().map(|p| p.1).collect(), Some(log))
        }
        _ => {
            let is_bool = !distinct.is_empty()
                && distinct
                    .iter()
                    .all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"));
            if is_bool {
                distinct.sort_by_key(|v| v.eq_ignore_ascii_case("true"));
            }
            (distinct, None)
        }
    }
}

/// For each dotted path, its shortest tail of components that no other path
/// ends with (`lr` for `stages.0.lr`, unless another axis also ends in `lr`).
fn short_names(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let comps: Vec<&str> = p.split('.').collect();
            for k in 1..=comps.len() {
                let tail = comps[comps.len() - k..].join(".");
                let clash = paths
                    .iter()
                    .enumerate()
                    .any(|(j, q)| j != i && (*q == tail || q.ends_with(&format!(".{tail}"))));
                if !clash {
                    return tail;
                }
            }
            p.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_unambiguous_tails() {
        let paths: Vec<String> = [
            "stages.0.lr",
            "stages.1.lr",
            "data.signed",
            "experiment.seed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(short_names(&paths), ["0.lr", "1.lr", "signed", "seed"]);
    }

    #[test]
    fn axis_kinds() {
        let (v, n) = axis_values(&["0.01", "0.001", "", "0.1", "0.001"]);
        assert_eq!(v, ["0.001", "0.01", "0.1"]);
        assert_eq!(n, Some(true));
        let (v, n) = axis_values(&["2", "4"]);
        assert_eq!((v.len(), n), (2, Some(false)));
        let (v, n) = axis_values(&["true", "false"]);
        assert_eq!(
            (v, n),
            (vec!["false".to_string(), "true".to_string()], None)
        );
        let (v, n) = axis_values(&["kl", "tv", "kl"]);
        assert_eq!((v, n), (vec!["kl".to_string(), "tv".to_string()], None));
    }

    #[test]
    fn shared_label_prefixes_are_cut_only_when_labels_stay_distinct() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let objectives = owned(&[
            "mle",
            "sequencematch-kl",
            "sequencematch-js",
            "sequencematch-chi2_mix-0.9",
        ]);
        let (cut, prefix) = shorten_categories(&objectives);
        assert_eq!(cut, ["mle", "kl", "js", "chi2_mix-0.9"]);
        assert_eq!(prefix.as_deref(), Some("sequencematch-"));
        // short labels stay as they are
        let short = owned(&["sft", "uft-0.01", "uft-0.1", "cpo-0.1"]);
        assert_eq!(shorten_categories(&short), (short.clone(), None));
        // cutting would merge `a-x` with the plain `x`, or empty a label
        for v in [
            &["x_long_label", "a-x_long_label", "a-y"][..],
            &["a-", "a-y_long_label"][..],
            &["kl_long_label", "js"][..],
        ] {
            assert_eq!(shorten_categories(&owned(v)), (owned(v), None), "{v:?}");
        }
    }
}
