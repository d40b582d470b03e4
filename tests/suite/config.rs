//! Bad input gets a clear error naming the file and the key; nothing panics.

use std::process::Command;

use rewind::experiment::config::ExperimentConfig;

const GOOD: &str = r#"
[experiment]
name = "ok"
kind = "arithmetic"

[[stages]]
objective = { kind = "mle" }
steps = 10
"#;

fn err_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.toml");
    std::fs::write(&path, text).unwrap();
    let e = ExperimentConfig::from_file(&path).expect_err("config should be rejected");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("exp.toml"),
        "error does not name the file: {msg}"
    );
    msg
}

#[test]
fn good_config_parses_with_defaults() {
    let cfg = ExperimentConfig::from_toml(GOOD).unwrap();
    assert_eq!(cfg.stages[0].name, "stage0");
    assert_eq!(cfg.stages[0].batch_size, 64);
    assert_eq!(cfg.model.d_model, 128);
}

#[test]
fn unknown_key_is_named() {
    let msg = err_of(&GOOD.replace("steps = 10", "steps = 10\nlearning_rate = 0.1"));
    assert!(msg.contains("learning_rate"), "{msg}");
    let msg = err_of(&format!("{GOOD}\n[model]\nd_modle = 3\n"));
    assert!(msg.contains("d_modle"), "{msg}");
}

#[test]
fn wrong_type_is_named() {
    let msg = err_of(&GOOD.replace("steps = 10", "steps = \"ten\""));
    assert!(msg.contains("steps"), "{msg}");
    let msg = err_of(&format!("{GOOD}\n[data]\nbase = \"ten\"\n"));
    assert!(msg.contains("base"), "{msg}");
}

#[test]
fn out_of_range_values_are_named() {
    let msg = err_of(&GOOD.replace("steps = 10", "steps = 10\nlr = -1e-3"));
    assert!(msg.contains("stages[0].lr"), "{msg}");
    let msg = err_of(&GOOD.replace("steps = 10", "steps = 0"));
    assert!(msg.contains("stages[0].steps"), "{msg}");
    let msg = err_of(&format!("{GOOD}\n[model]\nd_model = 30\nn_heads = 4\n"));
    assert!(msg.contains("model.d_model"), "{msg}");
    let msg = err_of(&format!("{GOOD}\n[data]\nbase = 99\n"));
    assert!(msg.contains("base"), "{msg}");
    let msg = err_of(&GOOD.replace("kind = \"arithmetic\"", "kind = \"chess\""));
    assert!(msg.contains("chess") || msg.contains("kind"), "{msg}");
    let msg = err_of(&GOOD.replace(
        "objective = { kind = \"mle\" }",
        "objective = { kind = \"mle\", alpha = 1 }",
    ));
    assert!(msg.contains("alpha"), "{msg}");
}

#[test]
fn missing_file_is_named() {
    let e = ExperimentConfig::from_file(std::path::Path::new("no/such/exp.toml"))
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("no/such/exp.toml"));
}

#[test]
fn cli_reports_bad_config_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, GOOD.replace("steps = 10", "steps = 10\nlr = -1")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["run", path.to_str().unwrap(), "--results"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("stages[0].lr"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["run", "missing.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn task_keys_are_named_as_the_file_spells_them() {
    // [data] digits, not the task's internal `arithmetic.digits`
    let msg = err_of(&format!("{GOOD}\n[data]\ndigits = [3, 1]\n"));
    assert!(msg.contains("data.digits"), "{msg}");
    assert!(!msg.contains("arithmetic."), "{msg}");
    let msg = err_of(&format!("{GOOD}\n[data]\nops = [\"add\", \"add\"]\n"));
    assert!(msg.contains("data.ops"), "{msg}");
}

#[test]
fn a_split_or_probe_given_twice_is_named() {
    let msg = err_of(&format!("{GOOD}\n[eval]\nsplits = [\"val\", \"val\"]\n"));
    assert!(
        msg.contains("eval.splits") && msg.contains("\"val\" is given twice"),
        "{msg}"
    );
    let msg = err_of(&format!(
        "{GOOD}\n[[eval.probes]]\nsplit = \"test\"\n\n[[eval.probes]]\nsplit = \"test\"\n"
    ));
    assert!(msg.contains("eval.probes[1].name = \"test\""), "{msg}");
}

/// `rewind ARGS...`: (success, stderr).
fn rewind(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.success(), err)
}

#[test]
fn run_time_config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let run_with = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (ok, err) = rewind(&[
            "run",
            path.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "-q",
        ]);
        assert!(!ok, "{name} ran");
        assert!(err.contains(name), "the error does not name {name}: {err}");
        err
    };
    // checked once the task is built: its longest sequence
    let err = run_with("short.toml", format!("{GOOD}\n[model]\nmax_len = 4\n"));
    assert!(err.contains("model.max_len = 4 is too short"), "{err}");
    // a typo of a batch size: refused before anything is allocated (an
    // abort would say "memory allocation of ... failed" and no file)
    let err = run_with(
        "huge.toml",
        GOOD.replace("steps = 10", "steps = 10\nbatch_size = 10000000"),
    );
    assert!(
        err.contains("stages[0].batch_size = 10000000") && err.contains("GiB"),
        "{err}"
    );
    let err = run_with(
        "huge_eval.toml",
        format!("{GOOD}\n[eval]\nbatch_size = 100000000\n"),
    );
    assert!(err.contains("eval.batch_size = 100000000"), "{err}");
}

#[test]
fn sample_rejects_bad_temperatures_and_zero_samples() {
    // checked before the checkpoint is read: no checkpoint needed
    for (args, want) in [
        (&["--temperature", "-1"][..], "--temperature -1"),
        (&["--temperature", "NaN"][..], "--temperature NaN"),
        (&["--temperature", "inf"][..], "--temperature inf"),
        (&["--num", "0"][..], "--num 0"),
    ] {
        let mut all = vec!["sample", "--checkpoint", "none.safetensors"];
        all.extend(args);
        all.push("b10:1+2=");
        let (ok, err) = rewind(&all);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn solve_help_states_the_rules_the_solver_uses() {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["solve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    // the solver allows 0 as an intermediate (9-9): the help must not say
    // intermediates are positive
    assert!(!help.contains("intermediates positive"), "{help}");
    assert!(
        help.contains("non-negative integer") && help.contains("0 is allowed"),
        "{help}"
    );
    // and the solver does use 0 where it must: 4 = 4 + 4 * (9 - 9)
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["solve", "4", "4", "9", "9", "--target", "4"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && line.trim() != "no solution",
        "{line}"
    );
}
