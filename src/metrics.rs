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
//! uninterrupted one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const HEADER: &str = "stage,step,split,metric,value,elapsed_s";

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub stage: String,
    pub step: u64,
    pub split: String,
    pub metric: String,
    pub value: f64,
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
    pub fn open(path: &Path, keep_through_step: Option<u64>) -> Result<Self> {
        let mut kept = vec![HEADER.to_string()];
        if let (Some(limit), true) = (keep_through_step, path.exists()) {
            let f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
            for line in BufReader::new(f).lines().skip(1) {
                let line = line?;
                let step = line.split(',').nth(1).and_then(|s| s.parse::<u64>().ok());
                if matches!(step, Some(s) if s <= limit) {
                    kept.push(line);
                }
            }
        }
        let mut text = kept.join("\n");
        text.push('\n');
        crate::train::checkpoint::write_atomic(path, text.as_bytes())?;
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

/// Reads every row of a metrics.csv.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    rdr.deserialize()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: bad row {}", path.display(), i + 2)))
        .collect()
}
