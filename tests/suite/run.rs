//! End-to-end runs on a tiny model: results layout, and resume continuing
//! bit-for-bit where an interrupted run stopped.

use std::path::Path;

use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::run::{run, run_dir, RunOptions};
use rewind::experiment::sweep::RunSpec;
use rewind::metrics;
use rewind::train::checkpoint::Checkpoint;

pub(crate) const TINY: &str = r#"
[experiment]
name = "tiny"
kind = "arithmetic"
seed = 3

[model]
d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
max_len = 24
dropout = 0.1

[data]
digits = [1, 2]
long_digits = [3, 3]
val_size = 20
test_size = 20
long_size = 20

[[stages]]
name = "pretrain"
objective = { kind = "mle" }
steps = 24
batch_size = 8
warmup_steps = 4
eval_every = 8
checkpoint_every = 8

[[stages]]
name = "finetune"
objective = { kind = "mle" }
steps = 10
batch_size = 8
lr = 3e-4
warmup_steps = 2
eval_every = 5
checkpoint_every = 5

[eval]
batch_size = 20
val_during_training = 10
"#;

pub(crate) fn opts(root: &Path, stop_after: Option<u64>) -> RunOptions {
    RunOptions {
        results_root: root.to_path_buf(),
        stop_after,
        quiet: true,
        ..Default::default()
    }
}

/// Runs `spec` to the end on the CPU under `root` (quiet, no stop) and
/// returns its summary.
pub(crate) fn finish(spec: &RunSpec, root: &Path) -> rewind::experiment::summary::Summary {
    run(
        spec,
        rewind::model::device::default_device(),
        "cpu",
        &opts(root, None),
    )
    .unwrap()
    .unwrap()
}

/// Rows without wall-clock measurements (elapsed_s, tokens_per_s,
/// seconds_per_problem), which legitimately differ between runs.
pub(crate) fn rows(dir: &Path) -> Vec<(String, u64, String, String, f64)> {
    metrics::read(&dir.join("metrics.csv"))
        .unwrap()
        .into_iter()
        .filter(|r| r.metric != "tokens_per_s" && r.metric != "seconds_per_problem")
        .map(|r| (r.stage, r.step, r.split, r.metric, r.value))
        .collect()
}

/// Every parameter of a run's final checkpoint, by name.
fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = Checkpoint::read(&dir.join("checkpoint.safetensors")).unwrap();
    let model = ck.model(&rewind::model::device::default_device()).unwrap();
    model
        .params()
        .into_iter()
        .map(|(n, t)| (n, t.as_vec()))
        .collect()
}

/// Runs TINY uninterrupted and again stopped after each global step in
/// `stops` (a stop leaves the run as a kill would: at its last checkpoint,
/// with possibly more metrics rows written after it), then resumed to the
/// end; the two must agree bit for bit.
fn assert_resume_is_exact(stops: &[u64]) {
    assert_resume_is_exact_for(TINY, stops)
}

/// [`assert_resume_is_exact`] for any 34-step two-stage config.
pub(crate) fn assert_resume_is_exact_for(config: &str, stops: &[u64]) {
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(config).unwrap()).unwrap();
    let dev = rewind::model::device::default_device();
    let a = tempfile::tempdir().unwrap();
    let full = run(&cfg, dev.clone(), "cpu", &opts(a.path(), None))
        .unwrap()
        .unwrap();

    let b = tempfile::tempdir().unwrap();
    let dir_b = run_dir(&cfg, b.path());
    for (k, &stop) in stops.iter().enumerate() {
        assert!(run(&cfg, dev.clone(), "cpu", &opts(b.path(), Some(stop)))
            .unwrap()
            .is_none());
        if k == 0 {
            // a killed session may have logged rows past its last
            // checkpoint: resume must drop them
            let mut text = std::fs::read_to_string(dir_b.join("metrics.csv")).unwrap();
            text.push_str(&format!("pretrain,{},train,loss,123.0,0.1\n", stop + 1));
            std::fs::write(dir_b.join("metrics.csv"), text).unwrap();
        }
    }
    let resumed = run(&cfg, dev, "cpu", &opts(b.path(), None))
        .unwrap()
        .unwrap();

    let dir_a = run_dir(&cfg, a.path());
    let (ra, rb) = (rows(&dir_a), rows(&dir_b));
    assert_eq!(ra.len(), rb.len());
    if let Some(i) = (0..ra.len()).find(|&i| ra[i] != rb[i]) {
        panic!(
            "row {i} differs: uninterrupted {:?} vs resumed {:?}",
            ra[i], rb[i]
        );
    }
    assert_eq!(full.exact_match, resumed.exact_match);
    assert_eq!(full.after_stage, resumed.after_stage);
    assert_eq!(full.val_loss, resumed.val_loss);
    assert_eq!(full.wrong_examples, resumed.wrong_examples);
    assert!(
        weights(&dir_a) == weights(&dir_b),
        "final weights differ after resume"
    );
    // every step's training loss must be there
    let steps: u64 = cfg.cfg.stages.iter().map(|s| s.steps).sum();
    assert_eq!(
        ra.iter()
            .filter(|r| r.2 == "train" && r.3 == "loss")
            .count() as u64,
        steps
    );
}

#[test]
fn run_killed_mid_stage_resumes_bit_for_bit() {
    // step 13: between checkpoints of stage 1; step 29: inside stage 2
    assert_resume_is_exact(&[13, 29]);
}

#[test]
fn run_killed_exactly_at_stage_boundary_resumes_bit_for_bit() {
    // step 24 is the end of `pretrain`: the checkpoint written there must
    // not carry pretrain's AdamW moments into `finetune`
    assert_resume_is_exact(&[24]);
}

#[test]
fn run_writes_results_layout_and_skips_finished_runs() {
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(TINY).unwrap()).unwrap();
    let dev = rewind::model::device::default_device();
    let root = tempfile::tempdir().unwrap();
    let s = run(&cfg, dev.clone(), "cpu", &opts(root.path(), None))
        .unwrap()
        .unwrap();
    let dir = run_dir(&cfg, root.path());
    for f in [
        "config.toml",
        "metrics.csv",
        "summary.json",
        "checkpoint.safetensors",
        "training.png",
        "training.svg",
    ] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    // the resolved config round-trips and has the same run id
    let back = ExperimentConfig::from_file(&dir.join("config.toml")).unwrap();
    assert_eq!(back, cfg.cfg);
    assert_eq!(RunSpec::single(&back).unwrap().id, cfg.id);
    assert_eq!(s.after_stage.len(), 2, "a forgetting row per stage");
    assert!(s.after_stage["pretrain"].contains_key("long"));
    // rerun: nothing retrained, same summary
    let before = std::fs::metadata(dir.join("metrics.csv"))
        .unwrap()
        .modified()
        .unwrap();
    let again = run(&cfg, dev, "cpu", &opts(root.path(), None))
        .unwrap()
        .unwrap();
    assert_eq!(again, s);
    assert_eq!(
        std::fs::metadata(dir.join("metrics.csv"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn a_null_or_truncated_summary_never_breaks_a_rerun_or_the_merge() {
    use rewind::experiment::sweep::{expand, run_sweep, write_summary, SweepOptions};
    let text = TINY.replace("seed = 3", "seeds = [3, 4]");
    let sweep = expand(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sweep_opts = SweepOptions {
        results_root: tmp.path().to_path_buf(),
        jobs: 1,
        quiet: true,
        ..Default::default()
    };
    assert_eq!(run_sweep(&sweep, &sweep_opts).unwrap().finished, 2);
    let (a, b) = (&sweep.runs[0], &sweep.runs[1]);
    let (sa, sb) = (
        run_dir(a, tmp.path()).join("summary.json"),
        run_dir(b, tmp.path()).join("summary.json"),
    );
    // a diverged run: serde_json writes its non-finite loss as null
    let text_a = std::fs::read_to_string(&sa).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text_a).unwrap();
    json["val_loss"] = serde_json::Value::Null;
    std::fs::write(&sa, serde_json::to_string(&json).unwrap()).unwrap();
    // a summary cut short by a crash
    let text_b = std::fs::read_to_string(&sb).unwrap();
    std::fs::write(&sb, &text_b[..text_b.len() / 2]).unwrap();

    let (csv, ids) = write_summary(&sweep, tmp.path()).unwrap();
    assert_eq!(
        ids,
        vec![a.id.clone()],
        "the truncated run is left out, the other kept"
    );
    let table = std::fs::read_to_string(csv).unwrap();
    assert!(table.contains("NaN"), "{table}");
    rewind::plot::plot_sweep(&tmp.path().join("tiny")).unwrap();

    // rerunning reads the null as NaN and re-evaluates the truncated run
    let s = finish(b, tmp.path());
    let before: rewind::experiment::summary::Summary = serde_json::from_str(&text_b).unwrap();
    assert_eq!(s.after_stage, before.after_stage);
    assert_eq!(s.val_loss, before.val_loss);
    let s = finish(a, tmp.path());
    assert!(s.val_loss.is_nan());
    assert_eq!(run_sweep(&sweep, &sweep_opts).unwrap().finished, 2);
}

#[test]
fn an_error_at_a_step_names_it_as_metrics_csv_numbers_it() {
    // stage 2 trains on rollouts kept only when correct: a model after two
    // steps never answers correctly, so its first step (global step 3, the
    // row after metrics.csv's last) fails drawing its batch
    let text = TINY
        .replace("steps = 24", "steps = 2")
        .replace("warmup_steps = 4", "warmup_steps = 0")
        .replace(
            "name = \"finetune\"",
            "name = \"finetune\"\ndata = { source = \"rollouts\", keep = \"correct\" }",
        );
    let spec = RunSpec::single(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dev = rewind::model::device::default_device();
    let e = run(&spec, dev, "cpu", &opts(root.path(), None)).expect_err("no correct rollout");
    let msg = format!("{e:#}");
    let last = rows(&run_dir(&spec, root.path()))
        .iter()
        .map(|r| r.1)
        .max()
        .unwrap();
    assert_eq!(last, 2);
    assert!(
        msg.starts_with("stage finetune, step 3: drawing the batch: no rollout passed"),
        "{msg}"
    );
}

#[test]
fn resuming_over_a_metrics_file_cut_short_is_an_error_not_a_gap() {
    let spec = RunSpec::single(&ExperimentConfig::from_toml(TINY).unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dev = rewind::model::device::default_device();
    assert!(run(&spec, dev.clone(), "cpu", &opts(root.path(), Some(13)))
        .unwrap()
        .is_none());
    let path = run_dir(&spec, root.path()).join("metrics.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    // the rows after step 5 are lost (a copy cut short, a disk that filled)
    let cut: String = text
        .lines()
        .filter(|l| {
            l.split(',')
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok())
                .is_none_or(|s| s <= 5)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &cut).unwrap();
    let msg = format!(
        "{:#}",
        run(&spec, dev, "cpu", &opts(root.path(), None)).expect_err("resumed over missing rows")
    );
    assert!(
        msg.contains("metrics.csv")
            && msg.contains("5 of the checkpoint's 13 steps")
            && msg.contains("--fresh"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        cut,
        "the file was changed"
    );
}
