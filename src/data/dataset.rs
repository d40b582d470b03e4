//! JSONL datasets of prompt / completion pairs with an optional label, as
//! `rewind data countdown` writes them (D+ and D- search paths): one JSON
//! object per line with at least `"prompt"` and `"completion"` strings and,
//! optionally, `"correct"` (a bool; other fields are ignored).
//!
//! A stage trains on such a file in epochs: every epoch visits each line
//! once in an order shuffled by (seed, epoch), so the batch at any step is
//! a pure function of the step, and a resumed run draws the same batches.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;
use thiserror::Error;

use super::batch::Example;

/// Why a dataset could not be read.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("cannot read dataset {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{path}: no lines with {filter} (of {total} lines)")]
    Empty {
        path: PathBuf,
        filter: String,
        total: usize,
    },
}

/// One line of a dataset file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Record {
    pub prompt: String,
    pub completion: String,
    /// The verifier's label (D+ lines are `true`, D- lines `false`).
    #[serde(default)]
    pub correct: Option<bool>,
}

/// Which lines of a dataset (or which rollouts) a stage trains on.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LabelFilter {
    /// Every line.
    #[default]
    All,
    /// Lines labelled `"correct": true`.
    Correct,
    /// Lines labelled `"correct": false`.
    Incorrect,
}

impl LabelFilter {
    /// Whether a line with this label passes.
    pub fn keeps(self, correct: Option<bool>) -> bool {
        match self {
            Self::All => true,
            Self::Correct => correct == Some(true),
            Self::Incorrect => correct == Some(false),
        }
    }
}

impl std::fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "any label",
            Self::Correct => "\"correct\": true",
            Self::Incorrect => "\"correct\": false",
        })
    }
}

/// The examples of a dataset file that pass a filter.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Example>,
    /// Longest sequence in tokens, `<bos>` and `<eos>` included.
    pub max_seq_len: usize,
}

impl Dataset {
    /// Reads `path`, keeping the lines `filter` passes. Errors name the file
    /// and the line (bad JSON, a missing field, a character outside the
    /// vocabulary).
    pub fn read(path: &Path, filter: LabelFilter) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let line_err = |line: usize, what: String| DatasetError::Line {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut examples = Vec::new();
        let mut total = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            total += 1;
            let r: Record =
                serde_json::from_str(line).map_err(|e| line_err(i + 1, e.to_string()))?;
            if !filter.keeps(r.correct) {
                continue;
            }
            let ex = Example::from_text(&r.prompt, &r.completion)
                .map_err(|e| line_err(i + 1, e.to_string()))?;
            examples.push(ex);
        }
        if examples.is_empty() {
            return Err(DatasetError::Empty {
                path: path.to_path_buf(),
                filter: filter.to_string(),
                total,
            });
        }
        let max_seq_len = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            examples,
            max_seq_len,
        })
    }

    /// The `batch` examples of step `step`: positions `step·batch ..` of the
    /// epoch-wise shuffled order, where epoch `e` is shuffled with
    /// `seed` and `e`.
    pub fn batch_at(&self, seed: u64, step: u64, batch: usize) -> Vec<Example> {
        let n = self.examples.len() as u64;
        let mut order: Option<(u64, Vec<usize>)> = None;
        (0..batch as u64)
            .map(|i| {
                let at = step * batch as u64 + i;
                let (epoch, pos) = (at / n, (at % n) as usize);
                if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut perm: Vec<usize> = (0..n as usize).collect();
                    let mut rng = rand::rngs::StdRng::seed_from_u64(
                        seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    );
                    perm.shuffle(&mut rng);
                    order = Some((epoch, perm));
                }
                let perm = &order.as_ref().expect("set above").1;
                self.examples[perm[pos]].clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), lines).unwrap();
        f
    }

    #[test]
    fn filters_by_label_and_reports_bad_lines() {
        let f = write(
            "{\"prompt\":\"a\",\"completion\":\"b\",\"correct\":true}\n\
             {\"prompt\":\"c\",\"completion\":\"d\",\"correct\":false,\"extra\":1}\n",
        );
        assert_eq!(
            Dataset::read(f.path(), LabelFilter::All)
                .unwrap()
                .examples
                .len(),
            2
        );
        let pos = Dataset::read(f.path(), LabelFilter::Correct).unwrap();
        assert_eq!(pos.examples, vec![Example::from_text("a", "b").unwrap()]);
        let bad = write("{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\"}\n");
        let e = Dataset::read(bad.path(), LabelFilter::All)
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:") && e.contains("completion"), "{e}");
        let only_pos = write("{\"prompt\":\"a\",\"completion\":\"b\",\"correct\":true}\n");
        let e = Dataset::read(only_pos.path(), LabelFilter::Incorrect)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no lines with") && e.contains("of 1 lines"),
            "{e}"
        );
    }

    #[test]
    fn every_epoch_visits_each_line_once_and_batches_are_reproducible() {
        let lines: String = (0..7)
            .map(|i| format!("{{\"prompt\":\"p{i}\",\"completion\":\"c\"}}\n"))
            .collect();
        let f = write(&lines);
        let d = Dataset::read(f.path(), LabelFilter::All).unwrap();
        // 7 lines, batches of 7: step k is exactly epoch k
        for step in 0..3 {
            let mut seen: Vec<Vec<u32>> = d
                .batch_at(5, step, 7)
                .into_iter()
                .map(|e| e.tokens)
                .collect();
            seen.sort();
            let mut all: Vec<Vec<u32>> = d.examples.iter().map(|e| e.tokens.clone()).collect();
            all.sort();
            assert_eq!(seen, all);
        }
        assert_eq!(d.batch_at(5, 4, 3), d.batch_at(5, 4, 3));
        assert_ne!(
            d.batch_at(5, 0, 7),
            d.batch_at(5, 1, 7),
            "epochs are reshuffled"
        );
    }
}
