//! A run whose loss stops being finite is a finished run marked diverged,
//! not a failure: the sweep goes on, summary.json and summary.csv give the
//! step (global, 1-based, as in metrics.csv), the CLI says so, and merge
//! and the plots work with its row.

use std::process::Command;

use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::run::run_dir;
use rewind::experiment::summary::read_summary;
use rewind::experiment::sweep::expand;
use rewind::metrics;

use crate::run::TINY;

#[test]
fn a_diverged_run_is_marked_with_its_step_and_the_sweep_merge_and_plots_work() {
    // the second stage at lr 1e30: the first full-size update sends the
    // weights to ~1e30 and the next loss overflows
    let text = TINY.replace(
        "[eval]",
        "[sweep]\n\"stages.1.lr\" = [3e-4, 1e30]\n\n[eval]",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("diverge.toml");
    std::fs::write(&config, &text).unwrap();
    let root = dir.path().join("results");
    let rewind = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "rewind {args:?} failed: {text}");
        assert!(!text.contains("panicked"), "{text}");
        text
    };
    let (cfg_path, root_path) = (config.to_str().unwrap(), root.to_str().unwrap());
    let out = rewind(&["run", cfg_path, "--results", root_path, "-q", "-j", "1"]);

    let sweep = expand(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let (fine, bad) = (&sweep.runs[0], &sweep.runs[1]);
    let s = read_summary(&run_dir(fine, &root).join("summary.json")).unwrap();
    assert_eq!(s.diverged_at_step, None);
    let s = read_summary(&run_dir(bad, &root).join("summary.json")).unwrap();
    let step = s
        .diverged_at_step
        .expect("the lr=1e30 run is marked diverged");
    // the step is metrics.csv's: its training loss there is the first
    // non-finite one, inside the second stage (steps 25..=34)
    let rows = metrics::read(&run_dir(bad, &root).join("metrics.csv")).unwrap();
    let losses: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| r.split == "train" && r.metric == "loss")
        .map(|r| (r.step, r.value))
        .collect();
    let first_bad = losses.iter().find(|(_, v)| !v.is_finite()).unwrap().0;
    assert_eq!(step, first_bad);
    assert!((26..=34).contains(&step), "step {step}");
    assert_eq!(losses.last().unwrap().0, step, "training stopped there");
    assert!(s.after_stage["pretrain"].contains_key("val"));
    assert!(s.after_stage.get("finetune").is_none_or(|m| m.is_empty()));
    assert!(s.exact_match.is_empty(), "no probe ran on diverged weights");
    assert!(s.val_loss.is_nan());

    // the CLI names the run and the step
    assert!(
        out.contains("1 run(s) diverged") && out.contains(&format!("{}: from step {step}", bad.id)),
        "{out}"
    );
    let csv_text = std::fs::read_to_string(root.join("tiny").join("summary.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = header
        .iter()
        .position(|h| h == "diverged_at_step")
        .expect("a diverged_at_step column");
    let cells: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[col].to_string())
        .collect();
    assert_eq!(cells, ["".to_string(), step.to_string()]);

    // merge and plots read the row
    let out = rewind(&["merge", cfg_path, "--results", root_path]);
    assert!(out.contains("2/2 runs finished"), "{out}");
    let out = rewind(&["plot", root.join("tiny").to_str().unwrap()]);
    assert!(out.contains("forgetting"), "{out}");
    let out = rewind(&["plot", run_dir(bad, &root).to_str().unwrap()]);
    assert!(out.contains("training"), "{out}");
    // rerunning skips both (finished), the diverged one included
    let out = rewind(&["run", cfg_path, "--results", root_path, "-q"]);
    assert!(out.contains("2/2 run(s) finished"), "{out}");
}
