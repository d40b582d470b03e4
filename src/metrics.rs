//! The per-run metrics log: `metrics.csv`, one measurement per row.
//!
//! Columns (stable; load with `pandas.read_csv`):
//! - `stage`: stage name (e.g. `pretrain`)
//! - `step`: global optimiser step (counted across stages) after which the
//!   value was measured
//! - `split`: `train`, `val`, `test` or `long`
//! - `metric`: `loss` (mean token NLL), `exact_match` (accuracy in [0,1]),
//!   `lr`, `grad_norm` (before clipping), `tokens_per_s`
//! - `value`: the number
//! - `elapsed_s`: training wall time of the run so far (seconds, summed over
//!   resumed sessions)
//!
//! Rows are appended and flushed as they are measured. On resume the file
//! is cut back to the checkpoint's step, so a resumed run's log equals an
//! uninterrupted one. A file with fewer rows than the checkpoint's step
//! (cut short, or rows deleted) is an error on resume ([`MetricsGap`]):
//! the missing measurements cannot be recomputed without retraining, and
//! resuming over them would leave a silent gap in the curves and in the
//! per-stage results read back from this file.
//!
//! This module is the one reader of metrics.csv ([`read`], with the `csv`
//! crate; the plots use it too). It is a leaf: it uses nothing else in the
//! crate, so anything may depend on it without import cycles.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const HEADER: &str = "stage,step,split,metric,value,elapsed_s";

/// A metrics.csv that lacks rows a resumed run needs: the training loss,
/// logged at every step, is missing for some of the steps up to the
/// checkpoint's.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{}: has the training loss of {found} of the checkpoint's {steps} steps (the file was cut \
     short or rows were removed); resuming would leave a gap in the run's curves and results, \
     so the run has to be trained again",
    path.display()
)]
pub struct MetricsGap {
    pub path: PathBuf,
    /// Steps with a training-loss row.
    pub found: u64,
    /// The checkpoint's global step.
    pub steps: u64,
}

/// Columns [`read`] requires. `elapsed_s` may be missing (it reads as 0), so
/// hand-written files still load and plot.
const REQUIRED_COLUMNS: [&str; 5] = ["stage", "step", "split", "metric", "value"];

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub stage: String,
    pub step: u64,
    pub split: String,
    pub metric: String,
    pub value: f64,
    #[serde(default)]
    pub elapsed_s: f64,
}

/// Appends rows to a metrics.csv.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for a run resuming after `keep_through_step` (None: a
    /// fresh run, the file is truncated). Rows after that step, written
    /// after the last checkpoint by an interrupted session, are dropped.
    /// The training loss must be there for every step through
    /// `keep_through_step` ([`MetricsGap`] otherwise).
    pub fn open(path: &Path, keep_through_step: Option<u64>) -> Result<Self> {
        let mut text = format!("{HEADER}\n");
        if let Some(limit) = keep_through_step {
            let (rows, found) = match path.exists() {
                true => rows_through(path, limit)?,
                false => (String::new(), 0),
            };
            if found < limit {
                return Err(MetricsGap {
                    path: path.to_path_buf(),
                    found,
                    steps: limit,
                }
                .into());
            }
            text.push_str(&rows);
        }
        crate::atomic::write_atomic(path, text.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one row and flushes.
    pub fn push(&mut self, row: &Row) -> Result<()> {
        writeln!(
            self.file,
            "{},{},{},{},{},{:.3}",
            row.stage, row.step, row.split, row.metric, row.value, row.elapsed_s
        )
        .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// The data rows of the metrics.csv at `path` measured at or before step
/// `limit`, as CSV text (the same text as in the file, for rows [`MetricsLog`]
/// wrote), and the number of steps through `limit` with a training-loss
/// row. A row cut short, by a session killed while writing it, is dropped.
fn rows_through(path: &Path, limit: u64) -> Result<(String, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let col = |name: &str, default: usize| header.iter().position(|h| h == name).unwrap_or(default);
    let (step_col, split_col, metric_col) = (col("step", 1), col("split", 2), col("metric", 3));
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut trained = std::collections::BTreeSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let step = record.get(step_col).and_then(|s| s.parse::<u64>().ok());
        if let (true, Some(s)) = (record.len() == header.len(), step.filter(|&s| s <= limit)) {
            out.write_record(&record)?;
            if record.get(split_col) == Some("train") && record.get(metric_col) == Some("loss") {
                trained.insert(s);
            }
        }
    }
    let bytes = out.into_inner().map_err(|e| anyhow!("{e}"))?;
    Ok((String::from_utf8(bytes)?, trained.len() as u64))
}

/// Reads every row of a metrics.csv (columns by name, in any order; fields
/// trimmed). A header-only file gives no rows. Errors name the file and the
/// line: a missing file, an empty file, a header without one of the
/// columns, a row with the wrong number of fields or a value that does not
/// parse.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening metrics file {file}"))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if header.iter().all(|h| h.is_empty()) {
        bail!("{file}: line 1: empty metrics file (expected header {HEADER})");
    }
    for col in REQUIRED_COLUMNS {
        if !header.iter().any(|h| h == col) {
            bail!("{file}: line 1: header lacks column `{col}` (expected {HEADER})");
        }
    }
    reader
        .deserialize::<Row>()
        .map(|row| row.map_err(|e| csv_error(path, e)))
        .collect()
}

/// A csv error as `<file>: line <n>: malformed metrics row: <what>`.
fn csv_error(path: &Path, e: csv::Error) -> anyhow::Error {
    let line = e.position().map(|p| p.line());
    let kind = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        _ => e.to_string(),
    };
    match line {
        Some(line) => anyhow!(
            "{}: line {line}: malformed metrics row: {kind}",
            path.display()
        ),
        None => anyhow!("{}: malformed metrics file: {kind}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stage: &str, step: u64, metric: &str, value: f64) -> Row {
        Row {
            stage: stage.into(),
            step,
            split: "val".into(),
            metric: metric.into(),
            value,
            elapsed_s: 1.25,
        }
    }

    #[test]
    fn pushed_rows_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = [
            row("pretrain", 0, "loss", 2.5),
            row("pretrain", 10, "exact_match", 0.125),
            row("uft", 20, "loss", f64::INFINITY),
        ];
        let mut log = MetricsLog::open(&path, None).unwrap();
        for r in &rows {
            log.push(r).unwrap();
        }
        assert_eq!(read(&path).unwrap(), rows);
    }

    #[test]
    fn resume_keeps_rows_through_the_step_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let kept = format!(
            "{HEADER}\ns,1,train,loss,2.5,0.100\ns,2,train,loss,2.0,0.150\ns,2,val,exact_match,0.5,0.200\n"
        );
        // step 3 was written after the checkpoint; the last row is cut short.
        std::fs::write(
            &path,
            format!("{kept}s,3,train,loss,1.5,0.300\ns,2,train,lo"),
        )
        .unwrap();
        drop(MetricsLog::open(&path, Some(2)).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
        // A fresh run starts over.
        drop(MetricsLog::open(&path, None).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n")
        );
    }

    #[test]
    fn resume_over_missing_rows_is_an_error_naming_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        // the training loss of step 2 of 3 is gone
        let text = format!("{HEADER}\ns,1,train,loss,2.5,0.1\ns,3,train,loss,1.5,0.3\n");
        std::fs::write(&path, &text).unwrap();
        let e = MetricsLog::open(&path, Some(3)).err().unwrap();
        let gap = e.downcast_ref::<MetricsGap>().expect("a MetricsGap");
        assert_eq!((gap.found, gap.steps), (2, 3));
        let msg = format!("{e:#}");
        assert!(
            msg.contains("metrics.csv") && msg.contains("trained again"),
            "{msg}"
        );
        // the file is left as it was, for the user to look at
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // a missing file, with a checkpoint at step 3, is the same gap
        std::fs::remove_file(&path).unwrap();
        assert!(MetricsLog::open(&path, Some(3)).is_err());
        // through step 1 nothing is missing
        std::fs::write(&path, &text).unwrap();
        drop(MetricsLog::open(&path, Some(1)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\ns,1,train,loss,2.5,0.1\n")
        );
    }

    #[test]
    fn columns_by_name_and_elapsed_optional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(
            &path,
            "metric, value,stage,step,split\nloss, 2.0 ,s,5,train\n",
        )
        .unwrap();
        let rows = read(&path).unwrap();
        assert_eq!(
            rows,
            [Row {
                stage: "s".into(),
                step: 5,
                split: "train".into(),
                metric: "loss".into(),
                value: 2.0,
                elapsed_s: 0.0,
            }]
        );
        std::fs::write(&path, format!("{HEADER}\n")).unwrap();
        assert!(read(&path).unwrap().is_empty());
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        let cases = [
            ("", "line 1: empty metrics file"),
            ("stage,step,split,value\ns,1,train,2.0\n", "line 1: header lacks column `metric`"),
            (
                "stage,step,split,metric,value,elapsed_s\ns,1,train,loss,2.0,0.5\ns,2,train,loss,abc,1.0\n",
                "line 3: malformed metrics row: field 4: invalid float literal",
            ),
            (
                "stage,step,split,metric,value,elapsed_s\ns,1,train,loss,2.0\n",
                "line 2: malformed metrics row: expected 6 fields, found 5",
            ),
        ];
        for (content, want) in cases {
            std::fs::write(&path, content).unwrap();
            let err = format!("{:#}", read(&path).unwrap_err());
            assert!(err.contains("bad.csv") && err.contains(want), "{err}");
        }
        let err = format!("{:#}", read(&dir.path().join("none.csv")).unwrap_err());
        assert!(err.contains("none.csv"), "{err}");
    }
}
