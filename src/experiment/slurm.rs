//! A sweep as a Slurm job array (`rewind slurm`): task i of N runs
//! `rewind run --shard i/N`, and a merge job that depends on the array
//! writes summary.csv and the plots.
//!
//! Everything goes to `results/<name>/slurm/`:
//! - `config-<hash>.toml`: the resolved config the tasks read (named by its
//!   content, so editing the original, or submitting a changed config,
//!   never changes what an already queued task runs);
//! - `array.sbatch`, `merge.sbatch`: the job scripts, with the command
//!   line and git commit that wrote them in their comments;
//! - `submit.json`: the same provenance, plus the job ids once submitted;
//! - `logs/<array job>_<task>.out|err`, `logs/merge_<job>.out|err`.
//!
//! Nothing here keeps state between tasks: a requeued, preempted or
//! resubmitted task runs its shard again, `rewind run` skips the finished
//! runs and resumes the partial ones from their checkpoints, and a run that
//! another task still trains is waited for, not trained twice (its lock
//! file; [`super::lockfile`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use crate::experiment::config::ExperimentConfig;
use crate::experiment::grid::{expand, Sweep};

/// What `rewind slurm` was asked for: the number of array tasks and the
/// resources of each (left out: the cluster's defaults). Also the command
/// line's flags (`#[command(flatten)]` in main.rs): the field docs are the
/// `--help` text.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SlurmOptions {
    /// Array tasks; task i trains runs i, i+N, ... of the grid (at most one task per run).
    #[arg(long)]
    pub shards: usize,
    /// Slurm partition (#SBATCH --partition) of every job.
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall-time limit of each job, e.g. 4:00:00 (#SBATCH --time).
    #[arg(long)]
    pub time: Option<String>,
    /// Cores per task; the task trains on that many threads (#SBATCH --cpus-per-task).
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    /// Memory per job, e.g. 8G (#SBATCH --mem).
    #[arg(long)]
    pub mem: Option<String>,
    /// GPUs per task, e.g. 1 or a100:1 (#SBATCH --gpus; the binary must be built with
    /// --features cuda).
    #[arg(long)]
    pub gpus: Option<String>,
    /// Account to charge (#SBATCH --account).
    #[arg(long)]
    pub account: Option<String>,
    /// At most K array tasks at once (#SBATCH --array=0-(N-1)%K).
    #[arg(long)]
    pub array_parallelism: Option<usize>,
}

/// The job array of one sweep: where everything goes and what runs.
#[derive(Clone, Debug)]
pub struct SlurmPlan {
    pub name: String,
    /// Runs in the grid.
    pub runs: usize,
    /// Array tasks (at most `runs`).
    pub shards: usize,
    pub opts: SlurmOptions,
    /// The rewind binary the tasks run (absolute).
    pub binary: PathBuf,
    /// The folder the tasks start in (absolute): where `rewind slurm` ran,
    /// so relative paths in the config (data files) mean what they meant.
    pub workdir: PathBuf,
    /// The results root (absolute).
    pub results: PathBuf,
    /// `results/<name>/slurm` (absolute).
    pub slurm_dir: PathBuf,
    /// The resolved config the tasks read, and its text.
    pub config_copy: PathBuf,
    pub config_text: String,
    /// The config as given on the command line.
    pub config_source: PathBuf,
    pub git_commit: String,
    pub command_line: String,
}

/// `s` quoted for a POSIX shell where it needs it.
pub fn sh_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A value for an `#SBATCH` line: sbatch reads those lines without a
/// shell, so a space or newline would cut or inject an option.
fn word(flag: &str, v: &str) -> Result<String> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '#') {
        bail!("{flag} {v:?}: must be one word without spaces or '#', e.g. {flag} gpu");
    }
    Ok(v.to_string())
}

/// A folder named in an `#SBATCH --output` line, where `%` would be read
/// as a pattern (`%A`) and a space would end the option.
fn sbatch_path(flag: &str, p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if s.chars().any(|c| c.is_whitespace() || c == '%' || c == '#') {
        bail!(
            "{flag}: {} has a space, '%' or '#', which an #SBATCH --output path cannot hold; \
             use a folder without them",
            p.display()
        );
    }
    Ok(())
}

/// The resolved config of `sweep`'s file as the tasks will read it, and
/// its file name (`config-<hash>.toml`).
fn config_copy(cfg: &ExperimentConfig, sweep: &Sweep, source: &Path) -> Result<(String, String)> {
    let body = cfg.to_toml()?;
    // the tasks must find exactly the runs (ids) this grid has
    let again = ExperimentConfig::from_toml(&body)
        .and_then(|c| expand(&c))
        .with_context(|| format!("{}: its resolved copy does not read back", source.display()))?;
    let same = again.runs.len() == sweep.runs.len()
        && again
            .runs
            .iter()
            .zip(&sweep.runs)
            .all(|(a, b)| a.id == b.id);
    if !same {
        bail!(
            "{}: its resolved copy gives other run ids than the file itself; \
             please report this (a config value does not survive TOML)",
            source.display()
        );
    }
    let hash: String = Sha256::digest(body.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "# The resolved config of {}, written by `rewind slurm`; the job array's\n\
         # tasks read this copy. Edit the original and submit again instead.\n{body}",
        source.display()
    );
    Ok((text, format!("config-{hash}.toml")))
}

impl SlurmPlan {
    /// Checks `opts` against the grid of `config` and fixes every path.
    /// `binary`, `workdir` and `results` are made absolute (relative ones
    /// against `workdir`). Returns the plan and notes for the user (e.g.
    /// fewer tasks than asked for).
    pub fn new(
        config: &Path,
        opts: &SlurmOptions,
        results: &Path,
        binary: &Path,
        workdir: &Path,
        command_line: &str,
    ) -> Result<(Self, Vec<String>)> {
        let cfg = ExperimentConfig::from_file(config)?;
        let sweep =
            expand(&cfg).with_context(|| format!("invalid sweep in {}", config.display()))?;
        let mut notes = Vec::new();
        let mut opts = opts.clone();
        if opts.shards == 0 {
            bail!("--shards 0: give at least 1 (the number of array tasks)");
        }
        if opts.shards > sweep.runs.len() {
            notes.push(format!(
                "--shards {}: the grid has {} run(s), so the array has {} task(s), one run each",
                opts.shards,
                sweep.runs.len(),
                sweep.runs.len()
            ));
            opts.shards = sweep.runs.len();
        }
        if opts.array_parallelism == Some(0) {
            bail!("--array-parallelism 0: give at least 1 (tasks running at once), or leave it out for no limit");
        }
        if opts.cpus_per_task == Some(0) {
            bail!("--cpus-per-task 0: give at least 1");
        }
        for (flag, v) in [
            ("--partition", &opts.partition),
            ("--time", &opts.time),
            ("--mem", &opts.mem),
            ("--gpus", &opts.gpus),
            ("--account", &opts.account),
        ] {
            if let Some(v) = v {
                word(flag, v)?;
            }
        }
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                workdir.join(p)
            }
        };
        let results = abs(results);
        sbatch_path("--results", &results)?;
        let slurm_dir = results.join(&sweep.name).join("slurm");
        let (config_text, file) = config_copy(&cfg, &sweep, config)?;
        Ok((
            SlurmPlan {
                name: sweep.name.clone(),
                runs: sweep.runs.len(),
                shards: opts.shards,
                opts,
                binary: abs(binary),
                workdir: workdir.to_path_buf(),
                config_copy: slurm_dir.join(file),
                slurm_dir,
                results,
                config_text,
                config_source: config.to_path_buf(),
                git_commit: crate::experiment::provenance::git_commit(),
                command_line: command_line.to_string(),
            },
            notes,
        ))
    }

    pub fn array_path(&self) -> PathBuf {
        self.slurm_dir.join("array.sbatch")
    }

    pub fn merge_path(&self) -> PathBuf {
        self.slurm_dir.join("merge.sbatch")
    }

    pub fn logs(&self) -> PathBuf {
        self.slurm_dir.join("logs")
    }

    fn provenance(&self) -> String {
        format!(
            "# Written by: {}\n# rewind {}, git commit {}, binary {}\n",
            self.command_line,
            env!("CARGO_PKG_VERSION"),
            self.git_commit,
            self.binary.display()
        )
    }

    /// `#SBATCH` lines for the options both scripts share.
    fn common_lines(&self) -> String {
        let mut out = String::new();
        for (flag, v) in [
            ("partition", &self.opts.partition),
            ("account", &self.opts.account),
            ("time", &self.opts.time),
            ("mem", &self.opts.mem),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("#SBATCH --{flag}={v}\n"));
            }
        }
        out
    }

    /// The job-array script: task i trains shard i of `shards`.
    pub fn array_script(&self) -> String {
        let logs = self.logs();
        let mut s = format!(
            "#!/bin/bash\n\
             # rewind sweep {name:?} as a Slurm job array: task i trains shard i/{n}\n\
             # of the grid's {runs} run(s) (grid indices i, i+{n}, ...). A requeued,\n\
             # preempted or resubmitted task runs its shard again: finished runs are\n\
             # skipped, partial ones resume from their checkpoints, and a run another\n\
             # task is training is waited for.\n{prov}",
            name = self.name,
            n = self.shards,
            runs = self.runs,
            prov = self.provenance()
        );
        s.push_str(&format!("#SBATCH --job-name=rewind-{}\n", self.name));
        let limit = self
            .opts
            .array_parallelism
            .map_or(String::new(), |k| format!("%{k}"));
        s.push_str(&format!("#SBATCH --array=0-{}{limit}\n", self.shards - 1));
        s.push_str("#SBATCH --requeue\n#SBATCH --open-mode=append\n");
        s.push_str(&format!("#SBATCH --output={}/%A_%a.out\n", logs.display()));
        s.push_str(&format!("#SBATCH --error={}/%A_%a.err\n", logs.display()));
        s.push_str(&self.common_lines());
        if let Some(c) = self.opts.cpus_per_task {
            s.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
        }
        if let Some(g) = &self.opts.gpus {
            s.push_str(&format!("#SBATCH --gpus={g}\n"));
        }
        s.push_str(&format!(
            "set -eu\ncd {}\n\
             # one run at a time, on the task's cores\n\
             exec {} run {} --shard \"$SLURM_ARRAY_TASK_ID/{}\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --jobs 1 --results {}\n",
            sh_quote(&self.workdir.to_string_lossy()),
            sh_quote(&self.binary.to_string_lossy()),
            sh_quote(&self.config_copy.to_string_lossy()),
            self.shards,
            sh_quote(&self.results.to_string_lossy()),
        ));
        s
    }

    /// The merge script, submitted to start once the array has ended
    /// (`--dependency=afterany:<array>`: whatever became of each task).
    pub fn merge_script(&self) -> String {
        let logs = self.logs();
        let mut s = format!(
            "#!/bin/bash\n\
             # rewind sweep {:?}: summary.csv and plots from the runs on disk, once\n\
             # the job array has ended. `rewind status` lists any run still missing.\n{}",
            self.name,
            self.provenance()
        );
        s.push_str(&format!("#SBATCH --job-name=rewind-{}-merge\n", self.name));
        s.push_str(&format!(
            "#SBATCH --output={}/merge_%j.out\n",
            logs.display()
        ));
        s.push_str(&format!(
            "#SBATCH --error={}/merge_%j.err\n",
            logs.display()
        ));
        s.push_str(&self.common_lines());
        s.push_str(&format!(
            "set -eu\ncd {}\nexec {} merge {} --results {}\n",
            sh_quote(&self.workdir.to_string_lossy()),
            sh_quote(&self.binary.to_string_lossy()),
            sh_quote(&self.config_copy.to_string_lossy()),
            sh_quote(&self.results.to_string_lossy()),
        ));
        s
    }

    /// `submit.json`: provenance, the plan, and the job ids once known.
    fn submit_json(&self, jobs: Option<(&str, &str)>) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        serde_json::json!({
            "experiment": self.name,
            "config": self.config_source,
            "config_copy": self.config_copy,
            "runs": self.runs,
            "shards": self.shards,
            "binary": self.binary,
            "workdir": self.workdir,
            "results": self.results,
            "git_commit": self.git_commit,
            "rewind_version": env!("CARGO_PKG_VERSION"),
            "command_line": self.command_line,
            "written_unix_s": now,
            "array_job_id": jobs.map(|j| j.0),
            "merge_job_id": jobs.map(|j| j.1),
        })
    }

    /// Writes the config copy, both scripts, submit.json and the logs
    /// folder (Slurm does not create it, and a task whose log cannot be
    /// opened fails without a word).
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(self.logs())
            .with_context(|| format!("creating {}", self.logs().display()))?;
        write_atomic(&self.config_copy, self.config_text.as_bytes())?;
        write_atomic(&self.array_path(), self.array_script().as_bytes())?;
        write_atomic(&self.merge_path(), self.merge_script().as_bytes())?;
        self.write_submit_json(None)
    }

    fn write_submit_json(&self, jobs: Option<(&str, &str)>) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.submit_json(jobs))?;
        write_atomic(&self.slurm_dir.join("submit.json"), text.as_bytes())
    }

    /// Submits the array, then the merge job after it, with `sbatch`
    /// (a program name looked up on PATH, or a path); returns the two job
    /// ids and records them in submit.json.
    pub fn submit(&self, sbatch: &str) -> Result<(String, String)> {
        let array = run_sbatch(sbatch, &[], &self.array_path(), &self.workdir)?;
        let merge = run_sbatch(
            sbatch,
            &[format!("--dependency=afterany:{array}")],
            &self.merge_path(),
            &self.workdir,
        )
        .with_context(|| {
            format!(
                "the array is submitted as job {array}, but not its merge job; run \
                 `rewind merge` once it has ended"
            )
        })?;
        self.write_submit_json(Some((&array, &merge)))?;
        Ok((array, merge))
    }
}

/// `sbatch --parsable [extra] script`; the job id it prints
/// (`12345` or `12345;cluster`).
fn run_sbatch(sbatch: &str, extra: &[String], script: &Path, dir: &Path) -> Result<String> {
    let out = Command::new(sbatch)
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .current_dir(dir)
        .output()
        .with_context(|| {
            format!(
                "running {sbatch}: is this a Slurm login node? The scripts are written; \
                 submit {} by hand",
                script.display()
            )
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "{sbatch} {} failed ({}): {}",
            script.display(),
            out.status,
            stderr.trim()
        );
    }
    let id = stdout
        .lines()
        .next()
        .and_then(|l| l.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "{sbatch} {}: expected a job id from --parsable, got {:?} (stderr: {})",
            script.display(),
            stdout.trim(),
            stderr.trim()
        );
    }
    Ok(id.to_string())
}

/// A line about the last submission recorded under `sweep_dir/slurm`, for
/// `rewind status`; None if there is none.
pub fn last_submission(sweep_dir: &Path) -> Option<String> {
    let path = sweep_dir.join("slurm").join("submit.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let array = v["array_job_id"].as_str()?;
    let merge = v["merge_job_id"].as_str().unwrap_or("?");
    let ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs()
        .saturating_sub(v["written_unix_s"].as_u64()?);
    Some(format!(
        "slurm: array job {array} ({} task(s)) and merge job {merge}, submitted {} min ago \
         (git {}); `squeue -j {array},{merge}`; logs in {}",
        v["shards"],
        ago / 60,
        v["git_commit"].as_str().unwrap_or("?"),
        sweep_dir.join("slurm").join("logs").display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(sh_quote("/a/b-c_1.toml"), "/a/b-c_1.toml");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn sbatch_words_reject_what_would_cut_the_line() {
        assert!(word("--partition", "gpu").is_ok());
        for bad in ["", "a b", "gpu\n#SBATCH --x", "a#b"] {
            let e = word("--partition", bad).unwrap_err().to_string();
            assert!(e.contains("--partition"), "{e}");
        }
        assert!(sbatch_path("--results", Path::new("/r/results")).is_ok());
        let e = sbatch_path("--results", Path::new("/r/my results"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--results") && e.contains("my results"), "{e}");
        assert!(sbatch_path("--results", Path::new("/r/100%")).is_err());
    }
}
