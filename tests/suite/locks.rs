//! Run locks: two processes on one sweep never train (or write) the same
//! run, a run another process holds is waited for, and `rewind status`
//! tells finished, running, failed, partial and missing runs apart from the
//! results folder alone.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::lockfile::{self, RUN_LOCK};
use rewind::experiment::run::{run, run_dir, RunBusy};
use rewind::experiment::sweep::{expand, RunSpec, Sweep};

use crate::run::{finish, opts, rows, TINY};
use crate::sweep::{deterministic_summary, BASE};

const BIN: &str = env!("CARGO_BIN_EXE_rewind");

/// BASE cut down to two runs (two learning rates, one seed, one op set).
fn two_runs() -> String {
    BASE.replace("seeds = [0, 1]", "seeds = [0]")
        .replace("\"data.ops\" = [[\"add\"], [\"add\", \"sub\"]]\n", "")
}

fn sweep_of(text: &str) -> Sweep {
    expand(&ExperimentConfig::from_toml(text).unwrap()).unwrap()
}

fn rewind(args: &[&str], root: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).arg("--results").arg(root);
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn two_processes_on_one_sweep_end_as_one_invocation_would() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grid.toml");
    std::fs::write(&config, two_runs()).unwrap();
    let cfg = config.to_str().unwrap();
    let args = ["run", cfg, "--jobs", "1", "--quiet"];
    let alone = dir.path().join("alone");
    ok(rewind(&args, &alone).output().unwrap());

    let both = dir.path().join("both");
    let spawn = || {
        rewind(&args, &both)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        ok(child.wait_with_output().unwrap());
    }
    assert_eq!(deterministic_summary(&both), deterministic_summary(&alone));
    // each run's log is one uninterrupted run's, not two interleaved
    for spec in &sweep_of(&two_runs()).runs {
        assert_eq!(
            rows(&run_dir(spec, &both)),
            rows(&run_dir(spec, &alone)),
            "{}",
            spec.id
        );
    }
}

#[test]
fn a_run_another_process_holds_is_left_alone_then_waited_for() {
    let sweep = sweep_of(&two_runs());
    let root = tempfile::tempdir().unwrap();
    let held = run_dir(&sweep.runs[0], root.path());
    // this test process plays the other trainer of run 0
    let lock = lockfile::try_acquire(&held.join(RUN_LOCK)).unwrap();
    let config = root.path().join("grid.toml");
    std::fs::write(&config, two_runs()).unwrap();
    let child = rewind(
        &["run", config.to_str().unwrap(), "--jobs", "1"],
        root.path(),
    )
    .stderr(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let other = run_dir(&sweep.runs[1], root.path()).join("summary.json");
    let start = Instant::now();
    while !other.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(other.exists(), "the free run was not trained");
    std::thread::sleep(Duration::from_millis(200));
    let inside: Vec<String> = std::fs::read_dir(&held)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(inside, [RUN_LOCK], "wrote into a run another process holds");
    // the holder goes away without finishing: the waiting process trains it
    drop(lock);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out);
    assert!(
        stderr.contains(&format!(
            "run {} is being trained by another process (pid {}",
            sweep.runs[0].id,
            std::process::id()
        )),
        "{stderr}"
    );
    assert!(held.join("summary.json").exists());
    let alone = tempfile::tempdir().unwrap();
    finish(&sweep.runs[0], alone.path());
    assert_eq!(rows(&held), rows(&run_dir(&sweep.runs[0], alone.path())));
}

#[test]
fn a_single_run_held_by_another_process_is_an_error_naming_it() {
    let spec = RunSpec::single(&ExperimentConfig::from_toml(TINY).unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(&spec, root.path());
    let _lock = lockfile::try_acquire(&dir.join(RUN_LOCK)).unwrap();
    let dev = rewind::model::device::default_device();
    let e = run(&spec, dev, "cpu", &opts(root.path(), None)).unwrap_err();
    let busy = e.downcast_ref::<RunBusy>().expect("a RunBusy error");
    assert_eq!(busy.id, spec.id);
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&format!(
            "run {} is being trained by another process (pid {}",
            spec.id,
            std::process::id()
        )),
        "{msg}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the lock");
}

#[test]
fn status_tells_each_state_from_the_folder_alone() {
    let text = TINY.replace("seed = 3", "seeds = [0, 1, 2, 3, 4]");
    let sweep = sweep_of(&text);
    let root = tempfile::tempdir().unwrap();
    let r = |i: usize| &sweep.runs[i];
    finish(r(0), root.path());
    let dev = rewind::model::device::default_device();
    // failed: the reason a sweep leaves behind
    std::fs::create_dir_all(run_dir(r(1), root.path())).unwrap();
    std::fs::write(
        run_dir(r(1), root.path()).join(rewind::experiment::sweep::ERROR_FILE),
        "stage pretrain step 3: out of memory\nmore detail\n",
    )
    .unwrap();
    // partial: stopped at step 16 as a kill would leave it
    assert!(run(r(2), dev.clone(), "cpu", &opts(root.path(), Some(16)))
        .unwrap()
        .is_none());
    // running: another process holds it, having trained 8 steps
    run(r(3), dev, "cpu", &opts(root.path(), Some(8))).unwrap();
    let _lock = lockfile::try_acquire(&run_dir(r(3), root.path()).join(RUN_LOCK)).unwrap();
    // run 4: nothing on disk
    let config = root.path().join("tiny.toml");
    std::fs::write(&config, &text).unwrap();
    let out = ok(rewind(&["status", config.to_str().unwrap()], root.path())
        .output()
        .unwrap());
    let line = |i: usize| {
        out.lines()
            .find(|l| l.contains(&r(i).id))
            .unwrap_or_else(|| panic!("no line for run {i}:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line(0)[..2], ["0", "finished"], "{out}");
    assert_eq!(line(1)[..2], ["1", "failed"], "{out}");
    assert!(
        out.contains("(stage pretrain step 3: out of memory)"),
        "{out}"
    );
    assert!(
        !out.contains("more detail"),
        "one line of the reason: {out}"
    );
    // the last row of a stopped run's metrics.csv is at or after its checkpoint
    let total: u64 = sweep.runs[2].cfg.stages.iter().map(|s| s.steps).sum();
    assert_eq!(line(2)[1], "partial", "{out}");
    let step: u64 = line(2)[2]
        .strip_suffix(&format!("/{total}"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((16..total).contains(&step), "{out}");
    assert_eq!(line(3)[1], "running", "{out}");
    assert!(
        out.contains(&format!("(pid {} on ", std::process::id())),
        "{out}"
    );
    assert_eq!(line(4)[..2], ["4", "missing"], "{out}");
    assert!(
        out.contains("1 finished, 1 running, 1 partial, 1 failed, 1 missing"),
        "{out}"
    );
}
