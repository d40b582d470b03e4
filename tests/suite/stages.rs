//! Stages with their own data (task generator, JSONL file, model
//! rollouts) and evaluation probes (split x decoder x grader), end to end on
//! a tiny model.

use std::path::Path;

use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::run::{run, run_dir};
use rewind::experiment::sweep::RunSpec;
use rewind::tasks::registry;

use crate::run::{assert_resume_is_exact_for, finish, opts, rows, TINY};

/// A JSONL file of `n` training problems of TINY's task, half labelled
/// correct (their true answers) and half incorrect (a wrong answer).
fn write_dataset(dir: &Path, n: usize) -> std::path::PathBuf {
    let cfg = ExperimentConfig::from_toml(TINY).unwrap();
    let task = (registry::kind("arithmetic").unwrap().build)(&cfg.data, 11).unwrap();
    let mut rng = rewind::model::rng_for(1, "dataset");
    let mut text = String::new();
    for i in 0..n {
        let p = task.sample_problem(&mut rng).unwrap();
        let (completion, correct) = if i % 2 == 0 {
            (p.reference.clone(), true)
        } else {
            (format!("{}9", p.reference), false)
        };
        text.push_str(
            &serde_json::json!({"prompt": p.prompt, "completion": completion, "correct": correct, "id": i})
                .to_string(),
        );
        text.push('\n');
    }
    let path = dir.join("train.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// TINY with its second stage drawn from `data` and extra probes.
fn config_with(data: &str, probes: &str) -> String {
    let mut c = TINY.replace(
        "[[stages]]\nname = \"finetune\"",
        &format!("[[stages]]\nname = \"finetune\"\ndata = {data}"),
    );
    assert_ne!(c, TINY, "TINY's second stage was not found");
    c = c.replace("[eval]\n", "[eval]\nsplits = []\n");
    c.push_str(probes);
    c
}

const PROBES: &str = r#"
[[eval.probes]]
split = "val"

[[eval.probes]]
split = "test"
decoder = { kind = "sample", n = 2, temperature = 0.8, top_p = 0.9 }
"#;

#[test]
fn file_stage_and_probes_fill_the_stage_by_probe_table() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_dataset(tmp.path(), 40);
    let text = config_with(
        &format!(
            "{{ source = \"file\", path = {:?}, label = \"correct\" }}",
            data
        ),
        PROBES,
    );
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let s = finish(&cfg, tmp.path());
    let sample = "test/sample2_t0.8_p0.9/exact_match";
    for stage in ["pretrain", "finetune"] {
        let row = &s.after_stage[stage];
        assert_eq!(
            row.keys().collect::<Vec<_>>(),
            vec![sample, "val"],
            "{stage}"
        );
    }
    assert_eq!(s.n[sample], 20);
    let rows = rows(&run_dir(&cfg, tmp.path()));
    assert!(rows.iter().any(|r| r.2 == sample && r.3 == "pass@2"));
    assert!(rows
        .iter()
        .any(|r| r.0 == "finetune" && r.2 == "train" && r.3 == "loss"));
}

#[test]
fn file_stage_resumes_bit_for_bit_across_the_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_dataset(tmp.path(), 30);
    let text = config_with(
        &format!("{{ source = \"file\", path = {:?} }}", data),
        PROBES,
    );
    assert_resume_is_exact_for(&text, &[24]);
    assert_resume_is_exact_for(&text, &[29]);
}

#[test]
fn rollout_stage_trains_on_the_models_own_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let text = config_with("{ source = \"rollouts\" }", PROBES);
    assert_resume_is_exact_for(&text, &[27]);
    // an untrained model rarely answers right: keep = "correct" must say so
    let text = config_with(
        "{ source = \"rollouts\", keep = \"correct\", decoder = { kind = \"greedy\" } }",
        PROBES,
    )
    .replace("steps = 24", "steps = 1");
    let text = text.replace("warmup_steps = 4", "warmup_steps = 0");
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let err = run(
        &cfg,
        rewind::model::device::default_device(),
        "cpu",
        &opts(tmp.path(), None),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("no rollout passed keep"),
        "{err:#}"
    );
}

#[test]
fn bad_stage_data_and_probes_name_the_key() {
    let err = |text: &str| -> String {
        match ExperimentConfig::from_toml(text) {
            Err(e) => format!("{e:#}"),
            Ok(cfg) => {
                let spec = RunSpec::single(&cfg).unwrap();
                let tmp = tempfile::tempdir().unwrap();
                let r = run(
                    &spec,
                    rewind::model::device::default_device(),
                    "cpu",
                    &opts(tmp.path(), None),
                );
                format!("{:#}", r.map(|_| ()).unwrap_err())
            }
        }
    };
    let e = err(&config_with(
        "{ source = \"file\", path = \"/nonexistent/x.jsonl\" }",
        PROBES,
    ));
    assert!(
        e.contains("stages[1].data.path") && e.contains("/nonexistent/x.jsonl"),
        "{e}"
    );
    let e = err(&config_with("{ source = \"web\" }", PROBES));
    assert!(e.contains("source") && e.contains("web"), "{e}");
    let e = err(&config_with(
        "{ source = \"task\" }",
        "\n[[eval.probes]]\nsplit = \"dev\"\n",
    ));
    assert!(
        e.contains("eval.probes[0].split") && e.contains("allowed"),
        "{e}"
    );
    let e = err(&config_with(
        "{ source = \"task\" }",
        "\n[[eval.probes]]\nsplit = \"val\"\ndecoder = { kind = \"sample\", top_p = 0 }\n",
    ));
    assert!(e.contains("eval.probes[0].decoder.top_p"), "{e}");
    let e = err(&config_with(
        "{ source = \"task\" }",
        "\n[[eval.probes]]\nsplit = \"val\"\ngrader = \"verifier\"\n",
    ));
    assert!(
        e.contains("eval.probes[0].grader") && e.contains("no verifier"),
        "{e}"
    );
    let both = TINY.replace("[eval]\n", "[eval]\nsplits = [\"val\"]\n")
        + "\n[[eval.probes]]\nsplit = \"val\"\n";
    let e = err(&both);
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn countdown_runs_with_verifier_probes() {
    let text = r#"
[experiment]
name = "tiny_countdown"
kind = "countdown"
seed = 1

[model]
d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
max_len = 192

[data]
val_size = 6
test_size = 6

[[stages]]
name = "sft"
objective = { kind = "mle" }
steps = 3
batch_size = 4
warmup_steps = 1
eval_every = 0
checkpoint_every = 0

[eval]
batch_size = 6

[[eval.probes]]
split = "test"
grader = "verifier"

[[eval.probes]]
split = "test"
name = "test_em"
"#;
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(text).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = finish(&cfg, tmp.path());
    let probe = "test/greedy/verifier";
    assert_eq!(s.n[probe], 6);
    assert!((0.0..=1.0).contains(&s.exact_match[probe]));
    let rows = rows(&run_dir(&cfg, tmp.path()));
    assert!(rows.iter().any(|r| r.2 == probe && r.3 == "verified"));
    assert!(rows
        .iter()
        .any(|r| r.2 == "test_em" && r.3 == "exact_match"));
}

/// TINY with a SequenceMatch second stage: noised task data and a rollout
/// buffer refreshed every 5 steps.
fn sequencematch_config(divergence: &str, noise: &str) -> String {
    let c = TINY.replace(
        "[[stages]]\nname = \"finetune\"\nobjective = { kind = \"mle\" }",
        &format!(
            "[[stages]]\nname = \"finetune\"\nobjective = {{ kind = \"sequencematch\", divergence = \"{divergence}\", alpha = 0.5, gamma = 0.9, lambda = 0.5 }}\ndata = {{ source = \"task\", noise = {{ kind = \"{noise}\", p = 0.3 }} }}\nrollouts = {{ buffer = 16, every = 5, batch_size = 4 }}"
        ),
    );
    assert_ne!(c, TINY, "TINY's second stage was not found");
    c
}

#[test]
fn sequencematch_stage_trains_on_noised_data_and_rollouts() {
    let tmp = tempfile::tempdir().unwrap();
    let text = sequencematch_config("chi2_mix", "ground_truth");
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let s = finish(&cfg, tmp.path());
    let rows = rows(&run_dir(&cfg, tmp.path()));
    // two refreshes of the buffer (steps 0 and 5 of the stage)
    let refreshes = rows
        .iter()
        .filter(|r| r.0 == "finetune" && r.2 == "rollouts" && r.3 == "backspaces")
        .count();
    assert_eq!(refreshes, 2);
    let losses: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 == "finetune" && r.2 == "train" && r.3 == "loss")
        .map(|r| r.4)
        .collect();
    assert_eq!(losses.len(), 10);
    assert!(losses.iter().all(|l| l.is_finite()));
    // every probe reports its backspace usage after the last stage
    for split in ["val", "test", "long"] {
        assert!(s.backspace[split].contains_key("backspaces"), "{split}");
    }
}

#[test]
fn sequencematch_stage_resumes_bit_for_bit() {
    // stopped in the first stage, then between two refreshes of the
    // rollout buffer (its checkpoint saves the buffer)
    let text = sequencematch_config("kl", "random");
    assert_resume_is_exact_for(&text, &[27, 31]);
}

#[test]
fn bad_sequencematch_settings_name_the_key() {
    let text = sequencematch_config("js", "none")
        .replace("every = 5, batch_size", "every = 0, batch_size");
    let err = ExperimentConfig::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("stages[1].rollouts.every = 0"), "{err}");
    let text = sequencematch_config("js", "none").replace("gamma = 0.9", "gamma = 1.5");
    let err = ExperimentConfig::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("stages[1].objective.gamma = 1.5"), "{err}");
    let text = sequencematch_config("js", "none").replace("p = 0.3", "p = 2");
    let err = ExperimentConfig::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("stages[1].data.noise.p = 2"), "{err}");
    let text = sequencematch_config("hellinger", "none");
    let err = format!("{:#}", ExperimentConfig::from_toml(&text).unwrap_err());
    assert!(err.contains("hellinger"), "{err}");
}

#[test]
fn a_probe_can_measure_another_task() {
    let tmp = tempfile::tempdir().unwrap();
    let probes = r#"
[[eval.probes]]
split = "val"

[[eval.probes]]
split = "test"
task = { kind = "arithmetic", base = 7, digits = [1, 1], long_digits = [2, 2], test_size = 10, val_size = 10, long_size = 10 }
"#;
    let text = config_with("{ source = \"task\" }", probes);
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(&text).unwrap()).unwrap();
    let s = finish(&cfg, tmp.path());
    assert_eq!(s.n["arithmetic/test"], 10);
    assert_eq!(s.n["val"], 20);
    assert!(s.after_stage["pretrain"].contains_key("arithmetic/test"));

    let bad = config_with(
        "{ source = \"task\" }",
        "\n[[eval.probes]]\nsplit = \"test\"\ntask = { kind = \"chess\" }\n",
    );
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(&bad).unwrap()).unwrap();
    let err = format!(
        "{:#}",
        run(
            &cfg,
            rewind::model::device::default_device(),
            "cpu",
            &opts(tmp.path(), None)
        )
        .unwrap_err()
    );
    assert!(
        err.contains("eval.probes[0].task") && err.contains("chess"),
        "{err}"
    );
}
