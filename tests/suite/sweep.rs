//! Sweeps: grid expansion, stable ids, shards, bad axes, and a sweep killed
//! with SIGKILL and rerun ending with the same summary as an uninterrupted one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::sweep::{expand, parse_shard, shard};

pub(crate) const BASE: &str = r#"
[experiment]
name = "grid"
kind = "arithmetic"
seeds = [0, 1]

[model]
d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
max_len = 24

[data]
digits = [1, 2]
long_digits = [3, 3]
val_size = 20
test_size = 20
long_size = 20

[[stages]]
name = "pretrain"
objective = { kind = "mle" }
steps = 40
batch_size = 8
eval_every = 20
checkpoint_every = 10

[eval]
batch_size = 20
val_during_training = 10

[sweep]
"stages.0.lr" = [1e-3, 3e-3]
"data.ops" = [["add"], ["add", "sub"]]
"#;

fn cfg(text: &str) -> ExperimentConfig {
    ExperimentConfig::from_toml(text).unwrap()
}

fn err(text: &str) -> String {
    match ExperimentConfig::from_toml(text).and_then(|c| expand(&c)) {
        Ok(s) => panic!("expected an error, got {} runs", s.runs.len()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn grid_is_the_product_in_a_fixed_order() {
    let s = expand(&cfg(BASE)).unwrap();
    assert_eq!(s.runs.len(), 2 * 2 * 2);
    let paths: Vec<_> = s.axes.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        ["data.ops", "stages.0.lr", "experiment.seed"],
        "sorted, seed last"
    );
    // seed varies fastest, first axis slowest
    let seeds: Vec<u64> = s.runs.iter().map(|r| r.cfg.experiment.seed).collect();
    assert_eq!(seeds, [0, 1, 0, 1, 0, 1, 0, 1]);
    let lrs: Vec<f64> = s.runs.iter().map(|r| r.cfg.stages[0].lr).collect();
    assert_eq!(lrs, [1e-3, 1e-3, 3e-3, 3e-3, 1e-3, 1e-3, 3e-3, 3e-3]);
    assert_eq!(
        s.runs[4].cfg.data["ops"],
        toml::Value::Array(vec!["add".into(), "sub".into()])
    );
    // ids unique, readable
    let mut ids: Vec<_> = s.runs.iter().map(|r| r.id.clone()).collect();
    assert!(ids[0].starts_with("ops=add_lr=0.001_seed=0-"), "{}", ids[0]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    // a run's config has no sweep left and one seed
    assert!(s.runs[0].cfg.sweep.is_empty() && s.runs[0].cfg.experiment.seeds.is_none());
}

#[test]
fn ids_are_stable_and_independent_of_key_order() {
    let a = expand(&cfg(BASE)).unwrap();
    let b = expand(&cfg(BASE)).unwrap();
    // the same settings written in another order, with nested dotted keys
    let reordered = BASE
        .replace(
            "\"stages.0.lr\" = [1e-3, 3e-3]\n\"data.ops\" = [[\"add\"], [\"add\", \"sub\"]]",
            "data.ops = [[\"add\"], [\"add\", \"sub\"]]\nstages.0.lr = [0.001, 0.003]",
        )
        .replace("d_model = 16\nn_heads = 2", "n_heads = 2\nd_model = 16");
    assert_ne!(reordered, BASE);
    let c = expand(&cfg(&reordered)).unwrap();
    for ((x, y), z) in a.runs.iter().zip(&b.runs).zip(&c.runs) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.id, z.id);
    }
    // a changed setting changes every id
    let d = expand(&cfg(&BASE.replace("steps = 40", "steps = 41"))).unwrap();
    assert!(a.runs.iter().zip(&d.runs).all(|(x, y)| x.id != y.id));
}

#[test]
fn shards_partition_the_grid() {
    let s = expand(&cfg(BASE)).unwrap();
    let mut seen = vec![0; s.runs.len()];
    for i in 0..3 {
        for r in shard(&s.runs, parse_shard(&format!("{i}/3")).unwrap()) {
            seen[r.index] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        assert!(parse_shard(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_axes_are_named() {
    let e = err(&BASE.replace("\"stages.0.lr\"", "\"stages.0.lrr\""));
    assert!(e.contains("stages.0.lrr") && e.contains("lrr"), "{e}");
    let e = err(&BASE.replace("\"stages.0.lr\"", "\"stages.3.lr\""));
    assert!(e.contains("stages.3.lr"), "{e}");
    let e = err(&BASE.replace("[1e-3, 3e-3]", "[\"fast\", 1e-3]"));
    assert!(e.contains("stages.0.lr") || e.contains("lr"), "{e}");
    let e = err(&BASE.replace("[1e-3, 3e-3]", "[]"));
    assert!(e.contains("stages.0.lr") && e.contains("[]"), "{e}");
    let e = err(&BASE.replace("[1e-3, 3e-3]", "1e-3"));
    assert!(e.contains("stages.0.lr") && e.contains("list"), "{e}");
    let e = err(&format!("{BASE}stages.0.lr = [0.1]\n"));
    assert!(e.contains("stages.0.lr"), "{e}");
    let e = err(&BASE.replace("[1e-3, 3e-3]", "[-1.0]"));
    assert!(e.contains("stages[0].lr"), "{e}");
    let e = err(&format!("{BASE}\"experiment.seed\" = [4]\n"));
    assert!(e.contains("experiment.seed"), "{e}");
}

#[test]
fn keys_left_out_at_their_default_can_be_swept() {
    // `data.long_train_share` and `data.pad_to_long` are not written into
    // the resolved config at their defaults (so older run ids stay), and
    // [data] does not set them here
    let text =
        format!("{BASE}\"data.long_train_share\" = [0.0, 0.1]\n\"data.pad_to_long\" = [true]\n");
    let s = expand(&cfg(&text)).unwrap();
    assert_eq!(s.runs.len(), 2 * 2 * 2 * 2);
    let shares: Vec<_> = s
        .runs
        .iter()
        .map(|r| r.cfg.data.get("long_train_share").cloned())
        .collect();
    assert!(
        shares.contains(&Some(toml::Value::Float(0.1))),
        "{shares:?}"
    );
    assert!(s
        .runs
        .iter()
        .all(|r| r.cfg.data["pad_to_long"] == toml::Value::Boolean(true)));
    let ids: std::collections::HashSet<_> = s.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), s.runs.len());
    // a typo in such a key still names the keys there
    let e = err(&format!("{BASE}\"data.long_train_shar\" = [0.1]\n"));
    assert!(
        e.contains("no setting `long_train_shar`") && e.contains("keys there"),
        "{e}"
    );
    // and an out-of-range value names the key and the sweep point
    let e = err(&format!("{BASE}\"data.long_train_share\" = [1.5]\n"));
    assert!(
        e.contains("data.long_train_share") && e.contains("sweep point"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random edits of a valid config (deleting, duplicating or replacing a
    /// span of characters) give an Ok or an Err, never a panic.
    #[test]
    fn mutated_configs_never_panic(at in 0usize..BASE.len(), len in 0usize..12, what in 0u8..3, junk in "[a-z0-9\\[\\]\"=.,\n -]{0,8}") {
        let at = (0..=at).rev().find(|&i| BASE.is_char_boundary(i)).unwrap_or(0);
        let end = (at + len).min(BASE.len());
        let end = (end..=BASE.len()).find(|&i| BASE.is_char_boundary(i)).unwrap_or(BASE.len());
        let text = match what {
            0 => format!("{}{}", &BASE[..at], &BASE[end..]),
            1 => format!("{}{}{}", &BASE[..end], &BASE[at..end], &BASE[end..]),
            _ => format!("{}{}{}", &BASE[..at], junk, &BASE[end..]),
        };
        if let Ok(c) = ExperimentConfig::from_toml(&text) {
            let _ = expand(&c);
        }
    }
}

/// The sweep `grid`'s summary.csv without the wall-clock columns
/// (`seconds_per_problem:*` too).
pub(crate) fn deterministic_summary(root: &Path) -> Vec<Vec<String>> {
    crate::fault_campaign::csv_without_timing(&root.join("grid/summary.csv"))
}

fn finished(root: &Path) -> usize {
    std::fs::read_dir(root.join("grid"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("summary.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sigkilled_sweep_resumes_to_the_same_summary() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grid.toml");
    std::fs::write(&config, BASE).unwrap();
    let bin = env!("CARGO_BIN_EXE_rewind");
    let run = |root: &Path| {
        let out = Command::new(bin)
            .args([
                "run",
                config.to_str().unwrap(),
                "--jobs",
                "1",
                "--quiet",
                "--results",
            ])
            .arg(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let whole = dir.path().join("whole");
    run(&whole);
    let expected = deterministic_summary(&whole);
    assert_eq!(expected.len(), 1 + 8, "header + 8 runs");

    // start again elsewhere and kill the process mid-sweep
    let killed = dir.path().join("killed");
    let mut child = Command::new(bin)
        .args([
            "run",
            config.to_str().unwrap(),
            "--jobs",
            "1",
            "--quiet",
            "--results",
        ])
        .arg(&killed)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while finished(&killed) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = finished(&killed);
    assert!(
        done < 8,
        "the sweep finished before it could be killed; make the runs longer"
    );
    run(&killed);
    assert_eq!(finished(&killed), 8);
    assert_eq!(
        deterministic_summary(&killed),
        expected,
        "killed + resumed sweep differs"
    );
    // nothing duplicated: exactly the 8 grid folders
    let dirs = std::fs::read_dir(killed.join("grid"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("config.toml").exists())
        .count();
    assert_eq!(dirs, 8);
}

#[test]
fn repeated_grid_values_are_named_errors() {
    let e = err(&BASE.replace("seeds = [0, 1]", "seeds = [1, 1]"));
    assert!(
        e.contains("experiment.seeds") && e.contains("given twice"),
        "{e}"
    );
    let e = err(&BASE.replace("[1e-3, 3e-3]", "[1e-3, 3e-3, 1e-3]"));
    assert!(e.contains("stages.0.lr") && e.contains("0.001"), "{e}");
}

#[test]
fn a_million_run_grid_is_counted_not_built_by_dry_run_and_list() {
    use rewind::cli::commands::{dry_run, list, RunArgs};
    let values =
        |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>().join(", ");
    let text = format!(
        "{}[sweep]\n\"stages.0.lr\" = [{}]\n\"stages.0.batch_size\" = [{}]\n\"stages.0.grad_clip\" = [{}]\n",
        BASE.split("[sweep]").next().unwrap().replace("seeds = [0, 1]", "seed = 0"),
        values(100, &|i| format!("{}e-4", i + 1)),
        values(100, &|i| (i + 1).to_string()),
        values(100, &|i| format!("{}.5", i)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("million.toml");
    std::fs::write(&config, &text).unwrap();
    let args = RunArgs {
        results: dir.path().join("results"),
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let (r, bytes) = crate::alloc_count::allocated_by(|| dry_run(&config, &args, &mut out));
    r.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("grid: 1000000 run(s)"), "{out}");
    assert!(out.contains("... 999990 more run(s) ..."), "{out}");
    assert!(out.contains("999999  new"), "the last run is shown: {out}");
    assert!(out.lines().count() < 20, "{out}");
    // building every run's config and id allocated about 4 GB; the ten
    // runs shown and the config take less than building 1000 runs does
    let thousand = text.replace(
        &format!(
            "\"stages.0.grad_clip\" = [{}]",
            values(100, &|i| format!("{}.5", i))
        ),
        "",
    );
    let thousand = ExperimentConfig::from_toml(&thousand.replace(
        &format!(
            "\"stages.0.batch_size\" = [{}]",
            values(100, &|i| (i + 1).to_string())
        ),
        "\"stages.0.batch_size\" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
    ))
    .unwrap();
    let (sweep, built) = crate::alloc_count::allocated_by(|| expand(&thousand).unwrap());
    assert_eq!(sweep.runs.len(), 1000);
    assert!(
        bytes < built / 10 && bytes < 50 << 20,
        "dry-run of a million runs allocated {bytes} bytes, building 1000 runs {built}"
    );

    // a shard of it: counted the same way
    let args = RunArgs {
        shard: Some((3, 7)),
        ..args
    };
    let mut out = Vec::new();
    dry_run(&config, &args, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("shard 3/7 has 142857"), "{out}");
    assert!(out.contains("   3  new"), "{out}");

    let mut out = Vec::new();
    let (r, bytes) = crate::alloc_count::allocated_by(|| list(dir.path(), &mut out));
    r.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("1000000 run(s)"), "{out}");
    assert!(bytes < 50 << 20, "list allocated {bytes} bytes");
}
