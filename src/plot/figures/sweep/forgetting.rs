//! The `forgetting` figure of a sweep: a heatmap of the exact match after
//! each stage (or the final one), one row per run.

use crate::plot::engine::Heatmap;

use super::summary::{Run, Sweep};

/// The forgetting table: exact match after each stage (or the final
/// accuracy when no `after:` columns exist), runs of one configuration
/// together, configurations in summary order.
pub(super) fn forgetting(sweep: &Sweep) -> Heatmap {
    let (title, cols): (&str, Vec<(String, String, usize)>) = if sweep.afters.is_empty() {
        let cols = sweep
            .finals
            .iter()
            .enumerate()
            .map(|(i, split)| ("final".to_string(), split.clone(), i))
            .collect();
        ("Final exact match", cols)
    } else {
        let cols = sweep
            .afters
            .iter()
            .enumerate()
            .map(|(i, (stage, split))| (stage.clone(), split.clone(), i))
            .collect();
        ("Exact match after each stage", cols)
    };
    let use_afters = !sweep.afters.is_empty();

    // Stages in order of first appearance, splits in column order within.
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    let mut order: Vec<Vec<usize>> = Vec::new();
    for (stage, split, i) in cols {
        match columns.iter().position(|c| c.0 == stage) {
            Some(g) => {
                columns[g].1.push(split);
                order[g].push(i);
            }
            None => {
                columns.push((stage, vec![split]));
                order.push(vec![i]);
            }
        }
    }
    let order: Vec<usize> = order.into_iter().flatten().collect();

    // Runs of one configuration together, in order of first appearance.
    let mut configs: Vec<&str> = Vec::new();
    for r in &sweep.runs {
        if !configs.contains(&r.config.as_str()) {
            configs.push(&r.config);
        }
    }
    let mut runs: Vec<&Run> = Vec::new();
    let mut row_breaks = Vec::new();
    for c in &configs {
        if !runs.is_empty() {
            row_breaks.push(runs.len());
        }
        runs.extend(sweep.runs.iter().filter(|r| r.config == *c));
    }
    if configs.len() == runs.len() {
        row_breaks.clear(); // one run per configuration: nothing to group
    }

    Heatmap {
        title: title.into(),
        row_labels: runs.iter().map(|r| r.label.clone()).collect(),
        columns,
        values: runs
            .iter()
            .map(|r| {
                let vals = if use_afters { &r.afters } else { &r.finals };
                order.iter().map(|&i| vals[i]).collect()
            })
            .collect(),
        range: (0.0, 1.0),
        value_label: "exact match".into(),
        row_breaks,
    }
}
