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
