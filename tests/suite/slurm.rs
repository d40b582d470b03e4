//! `rewind slurm`: the job-array and merge scripts it writes, its argument
//! checks, and submission through a stand-in `sbatch` that runs the scripts
//! the way Slurm would (each array task with its SLURM_ARRAY_TASK_ID, then
//! the merge job), ending with every run finished and summarised.

use std::path::{Path, PathBuf};
use std::process::Command;

use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::slurm::{SlurmOptions, SlurmPlan};
use rewind::experiment::sweep::expand;

use crate::sweep::{deterministic_summary, BASE};

const BIN: &str = env!("CARGO_BIN_EXE_rewind");

/// BASE (8 runs) written to `dir/grid.toml`.
fn config_in(dir: &Path) -> PathBuf {
    let p = dir.join("grid.toml");
    std::fs::write(&p, BASE).unwrap();
    p
}

fn plan(dir: &Path, opts: &SlurmOptions) -> anyhow::Result<(SlurmPlan, Vec<String>)> {
    SlurmPlan::new(
        &config_in(dir),
        opts,
        Path::new("out"),
        Path::new("/opt/rewind/bin/rewind"),
        dir,
        "rewind slurm grid.toml",
    )
}

fn shards(n: usize) -> SlurmOptions {
    SlurmOptions {
        shards: n,
        ..Default::default()
    }
}

#[test]
fn the_array_script_runs_shard_i_of_n_per_task_and_can_be_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SlurmOptions {
        partition: Some("gpu".into()),
        time: Some("2:00:00".into()),
        cpus_per_task: Some(4),
        mem: Some("8G".into()),
        gpus: Some("a100:1".into()),
        account: Some("lab".into()),
        array_parallelism: Some(2),
        ..shards(3)
    };
    let (p, notes) = plan(dir.path(), &opts).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let s = p.array_script();
    let lines: Vec<&str> = s.lines().collect();
    let logs = dir.path().join("out/grid/slurm/logs");
    for want in [
        "#!/bin/bash".to_string(),
        "#SBATCH --array=0-2%2".into(),
        "#SBATCH --requeue".into(),
        "#SBATCH --open-mode=append".into(),
        format!("#SBATCH --output={}/%A_%a.out", logs.display()),
        format!("#SBATCH --error={}/%A_%a.err", logs.display()),
        "#SBATCH --partition=gpu".into(),
        "#SBATCH --time=2:00:00".into(),
        "#SBATCH --cpus-per-task=4".into(),
        "#SBATCH --mem=8G".into(),
        "#SBATCH --gpus=a100:1".into(),
        "#SBATCH --account=lab".into(),
        format!("cd {}", dir.path().display()),
    ] {
        assert!(lines.contains(&want.as_str()), "no line {want:?} in\n{s}");
    }
    // every #SBATCH line comes before the first command, or sbatch ignores it
    let first_command = lines.iter().position(|l| l.starts_with("set ")).unwrap();
    assert!(lines[first_command..]
        .iter()
        .all(|l| !l.starts_with("#SBATCH")));
    let exec = lines.last().unwrap();
    let copy = &p.config_copy;
    assert_eq!(
        *exec,
        format!(
            "exec /opt/rewind/bin/rewind run {} --shard \"$SLURM_ARRAY_TASK_ID/3\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --jobs 1 --results {}",
            copy.display(),
            dir.path().join("out").display()
        )
    );
    assert!(s.contains("git commit ") && s.contains("# Written by: rewind slurm grid.toml"));
    // the tasks' config is a copy that names the same runs
    p.write().unwrap();
    let grid = |path: &Path| {
        expand(&ExperimentConfig::from_file(path).unwrap())
            .unwrap()
            .runs
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(grid(copy), grid(&dir.path().join("grid.toml")));
    assert!(copy.starts_with(dir.path().join("out/grid/slurm")));
    assert!(logs.is_dir(), "Slurm does not create the logs folder");

    // the merge job: `rewind merge` on the copy, same partition and account
    let m = p.merge_script();
    assert!(m.lines().any(|l| l
        == format!(
            "exec /opt/rewind/bin/rewind merge {} --results {}",
            copy.display(),
            dir.path().join("out").display()
        )));
    assert!(m.contains("#SBATCH --partition=gpu") && m.contains("#SBATCH --account=lab"));
    assert!(!m.contains("--array") && !m.contains("--gpus"), "{m}");
}

#[test]
fn unset_resources_are_left_to_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = plan(dir.path(), &shards(8)).unwrap();
    let s = p.array_script();
    assert!(s.contains("#SBATCH --array=0-7\n"), "no limit: {s}");
    for flag in [
        "partition",
        "time",
        "cpus-per-task",
        "mem",
        "gpus",
        "account",
    ] {
        assert!(!s.contains(&format!("--{flag}")), "--{flag} in\n{s}");
    }
}

#[test]
fn bad_arguments_name_their_flag_and_too_many_shards_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let err = |opts: SlurmOptions| format!("{:#}", plan(dir.path(), &opts).unwrap_err());
    assert!(err(shards(0)).contains("--shards 0"));
    let e = err(SlurmOptions {
        array_parallelism: Some(0),
        ..shards(2)
    });
    assert!(e.contains("--array-parallelism"), "{e}");
    let e = err(SlurmOptions {
        cpus_per_task: Some(0),
        ..shards(2)
    });
    assert!(e.contains("--cpus-per-task"), "{e}");
    let e = err(SlurmOptions {
        partition: Some("gpu --account=theirs".into()),
        ..shards(2)
    });
    assert!(e.contains("--partition") && e.contains("one word"), "{e}");
    let e = err(SlurmOptions {
        time: Some("1:00:00\n#SBATCH --x".into()),
        ..shards(2)
    });
    assert!(e.contains("--time"), "{e}");
    // more tasks than runs: one run per task
    let (p, notes) = plan(dir.path(), &shards(100)).unwrap();
    assert_eq!(p.shards, 8);
    assert!(p.array_script().contains("#SBATCH --array=0-7\n"));
    assert!(notes[0].contains("--shards 100") && notes[0].contains("8 run(s)"));
}

/// A stand-in for `sbatch` on PATH: records its arguments, prints a job id
/// as `--parsable` does, and runs the script as Slurm would, the array's
/// tasks one after another.
#[cfg(unix)]
fn fake_sbatch(bin: &Path, log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        r#"#!/bin/sh
set -e
echo "$*" >> '{log}'
id=$((1000 + $(wc -l < '{log}')))
for last; do :; done
top=$(sed -n 's/^#SBATCH --array=0-\([0-9]*\).*/\1/p' "$last")
if [ -n "$top" ]; then
  for i in $(seq 0 "$top"); do
    SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=$id sh "$last" >> '{log}.tasks' 2>&1
  done
else
  SLURM_JOB_ID=$id sh "$last" >> '{log}.tasks' 2>&1
fi
echo "$id"
"#,
        log = log.display()
    );
    std::fs::create_dir_all(bin).unwrap();
    let path = bin.join("sbatch");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn submit_runs_the_array_then_the_merge_job_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grid.toml");
    // 2 x 2 runs: a few seconds
    std::fs::write(&config, BASE.replace("seeds = [0, 1]", "seeds = [0]")).unwrap();
    let bin = dir.path().join("bin");
    let log = dir.path().join("sbatch.log");
    fake_sbatch(&bin, &log);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let results = dir.path().join("results");
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("PATH", &path)
        .args([
            "slurm",
            "grid.toml",
            "--shards",
            "3",
            "--submit",
            "--results",
        ])
        .arg(&results)
        .output()
        .unwrap();
    let tasks = std::fs::read_to_string(dir.path().join("sbatch.log.tasks")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}\ntasks:\n{tasks}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slurm = results.join("grid/slurm");
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls,
        [
            format!("--parsable {}", slurm.join("array.sbatch").display()),
            format!(
                "--parsable --dependency=afterany:1001 {}",
                slurm.join("merge.sbatch").display()
            ),
        ]
    );
    assert!(
        stdout.contains("array job 1001") && stdout.contains("merge job 1002"),
        "{stdout}"
    );
    assert!(stdout.contains("status grid.toml"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slurm.join("submit.json")).unwrap()).unwrap();
    assert_eq!(json["array_job_id"], "1001");
    assert_eq!(json["merge_job_id"], "1002");
    assert_eq!(json["shards"], 3);

    // the tasks trained every run; the merge job summarised them, and the
    // sweep run in one go gives the same table
    let table = deterministic_summary(&results);
    assert_eq!(table.len(), 1 + 4, "{tasks}");
    let alone = dir.path().join("alone");
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "grid.toml", "--jobs", "1", "--threads", "1", "-q"])
        .arg("--results")
        .arg(&alone)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(table, deterministic_summary(&alone));
    assert!(results.join("grid/plots").is_dir(), "the merge job plots");
}

#[cfg(unix)]
#[test]
fn a_failed_submission_says_what_sbatch_said_and_submits_nothing_after_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    config_in(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("calls");
    std::fs::write(
        bin.join("sbatch"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args([
            "slurm",
            "grid.toml",
            "--shards",
            "2",
            "--partition",
            "nope",
            "--submit",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid partition specified: nope"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "no merge job without its array"
    );
}
