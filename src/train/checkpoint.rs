//! Checkpoints in safetensors: model weights, AdamW moments, and metadata
//! (step, stage, the full resolved config), written atomically and checked
//! when read.
//!
//! Open one elsewhere with `safetensors.numpy.load_file(path)` or
//! `safetensors.torch.load_file(path)`. Tensor names:
//! - model parameters by their path, e.g. `tok_emb` `(vocab, d_model)`,
//!   `blocks.0.wq.weight` `(in, out)`, `blocks.0.ln1.gain` `(1, d)`;
//! - `optim.m.<name>` / `optim.v.<name>`: AdamW first/second moments.
//!
//! Metadata (string map, read with `safe_open(...).metadata()`):
//! `format` = `rewind-checkpoint-v2`, `model` (model config, JSON),
//! `optim_t` (AdamW step count), plus what the trainer adds
//! (`step`, `stage`, `config` as TOML, `git_commit`, ...), and two
//! checksums:
//! - `tensor_sha256`: JSON object, tensor name -> SHA-256 (hex) of its
//!   dtype, shape and little-endian bytes ([`tensor_digest`]);
//! - `meta_sha256`: SHA-256 of every other metadata entry ([`meta_digest`]).
//!
//! [`Checkpoint::read`] verifies both, so flipped, zeroed or missing bytes
//! anywhere in the weights or the metadata are an error naming the file and
//! the damaged part, never a silently different model. SHA-256 rather than
//! a cheaper hash: the `sha2` crate uses the CPU's SHA extensions where
//! there are some (about 2 GB/s here), so it adds about 3 ms to a 29 ms
//! save and makes up 3 of a 5 ms read for the quickstart model (5.2 MB
//! with the AdamW moments), 32-40 ms to a 200 ms save of the 39 MB "large"
//! model (`checkpoint_cost` in `tests/suite/checkpoint.rs`, test profile,
//! 2 shared cores): under 0.1% of a run at the default `checkpoint_every`.
//! And it is a standard digest, so a file can be checked without rewind
//! (Python: `hashlib.sha256(b"F32[2, 3]" + data)` for a tensor of shape
//! `[2, 3]`), with no new dependency.
//!
//! Version 1 files (`rewind-checkpoint-v1`, before the checksums) still
//! load, unverified: a run that was started before the change resumes, and
//! its next save writes version 2.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use dfdx::prelude::*;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::{ModelConfig, Tensor2, Transformer};
use crate::train::optim::AdamW;

/// The format written.
const FORMAT: &str = "rewind-checkpoint-v2";
/// The format before checksums; read, not verified.
const FORMAT_V1: &str = "rewind-checkpoint-v1";
/// Metadata key of the per-tensor digests.
const TENSOR_SUMS: &str = "tensor_sha256";
/// Metadata key of the digest of the other metadata.
const META_SUM: &str = "meta_sha256";
/// Largest safetensors header read (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// What is wrong with a checkpoint file. Every message names the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file cannot be read at all (missing, permissions).
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a safetensors file: garbage, or another kind of file.
    #[error("{}: not a checkpoint: {reason}", path.display())]
    NotSafetensors { path: PathBuf, reason: String },
    /// Shorter or longer than its header says: an interrupted copy or a
    /// write cut short.
    #[error(
        "{}: the file is {actual} bytes but its header describes {expected}: it was cut short or \
         appended to (an interrupted copy or write), the file is damaged",
        path.display()
    )]
    WrongSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// A safetensors file that rewind did not write.
    #[error("{}: not a rewind checkpoint (metadata `format` is {found:?}, expected {FORMAT:?})", path.display())]
    NotRewind { path: PathBuf, found: String },
    /// A checksum or a piece of the metadata or weights does not match.
    #[error("{}: {what}: the file is damaged", path.display())]
    Damaged { path: PathBuf, what: String },
    /// A sound checkpoint of another model than the one it is loaded into.
    #[error(
        "{}: the checkpoint is of another model than the config's: {}",
        path.display(),
        differences.join(", ")
    )]
    ModelMismatch {
        path: PathBuf,
        /// `d_model 64 (checkpoint) vs 32 (config)`, one per differing field.
        differences: Vec<String>,
    },
    /// The model config in the checkpoint does not build a model.
    #[error("{}: its model config is invalid: {reason}", path.display())]
    BadModel { path: PathBuf, reason: String },
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// SHA-256 (hex) of a tensor's dtype, shape and bytes: a change to any of
/// them changes it.
pub fn tensor_digest(dtype: Dtype, shape: &[usize], data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{dtype:?}{shape:?}").as_bytes());
    h.update(data);
    hex(&h.finalize())
}

/// SHA-256 (hex) of the metadata entries other than [`META_SUM`], in key
/// order, each key and value preceded by its length (so no two different
/// maps hash alike by shifting text between entries).
pub fn meta_digest(meta: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in meta.iter().filter(|(k, _)| k.as_str() != META_SUM) {
        for part in [k, v] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub use crate::atomic::write_atomic;

/// Saves `model` (and `opt`, if given) with `meta` to `path`, atomically,
/// with the checksums of the module docs.
pub fn save<D: Device<f32>>(
    path: &Path,
    model: &Transformer<D>,
    opt: Option<&AdamW<D>>,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let params = model.params();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, t)) in params.iter().enumerate() {
        let (r, c) = *t.shape();
        owned.push((name.clone(), vec![r, c], f32_bytes(&t.as_vec())));
        if let Some(opt) = opt {
            owned.push((
                format!("optim.m.{name}"),
                vec![r, c],
                f32_bytes(&opt.m[i].as_vec()),
            ));
            owned.push((
                format!("optim.v.{name}"),
                vec![r, c],
                f32_bytes(&opt.v[i].as_vec()),
            ));
        }
    }
    let views = owned
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let sums: BTreeMap<&str, String> = owned
        .iter()
        .map(|(n, shape, bytes)| (n.as_str(), tensor_digest(Dtype::F32, shape, bytes)))
        .collect();
    let mut info = meta.clone();
    info.insert("format".into(), FORMAT.into());
    info.insert("model".into(), serde_json::to_string(&model.cfg)?);
    if let Some(opt) = opt {
        info.insert("optim_t".into(), opt.t.to_string());
    }
    info.insert(TENSOR_SUMS.into(), serde_json::to_string(&sums)?);
    info.insert(META_SUM.into(), meta_digest(&info));
    let info: HashMap<String, String> = info.into_iter().collect();
    let bytes = safetensors::serialize(views, &Some(info))?;
    write_atomic(path, &bytes)
}

/// The safetensors header length of `bytes` (the first 8 bytes), checked
/// against the file's size.
fn header_len(path: &Path, first: &[u8], file_len: u64) -> Result<u64, CheckpointError> {
    let not = |reason: String| CheckpointError::NotSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    let Some(n) = first.get(..8) else {
        return Err(not(format!(
            "{file_len} bytes, too short for a safetensors header"
        )));
    };
    let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
    if n > MAX_HEADER || n > file_len.saturating_sub(8) {
        return Err(not(format!(
            "its first 8 bytes give a header of {n} bytes, in a file of {file_len} bytes"
        )));
    }
    Ok(n)
}

/// Checks a checkpoint cheaply, without reading its tensors: the header
/// parses, is a rewind checkpoint's, and the file's size is the header's
/// plus the data length it describes. For deciding that a finished run's
/// checkpoint is still usable; [`Checkpoint::read`] checks every byte.
pub fn check_header(path: &Path) -> Result<(), CheckpointError> {
    use std::io::Read;
    let read_err = |source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let file_len = f.metadata().map_err(read_err)?.len();
    let mut first = Vec::with_capacity(8);
    (&mut f).take(8).read_to_end(&mut first).map_err(read_err)?;
    let n = header_len(path, &first, file_len)?;
    let mut text = Vec::with_capacity(n as usize);
    f.take(n).read_to_end(&mut text).map_err(read_err)?;
    let not = |reason: String| CheckpointError::NotSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|e| not(format!("its header is not a safetensors header ({e})")))?;
    let mut data_len = 0u64;
    let mut format = None;
    for (name, entry) in &header {
        if name == "__metadata__" {
            format = entry.get("format").and_then(|f| f.as_str());
            continue;
        }
        let end = entry
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .ok_or_else(|| not(format!("tensor {name} has no data offsets in the header")))?;
        data_len = data_len.max(end);
    }
    check_format(path, format)?;
    let expected = 8 + n + data_len;
    if expected != file_len {
        return Err(CheckpointError::WrongSize {
            path: path.to_path_buf(),
            expected,
            actual: file_len,
        });
    }
    Ok(())
}

/// Whether `format` is a version this build reads; true when it is
/// verified (version 2).
fn check_format(path: &Path, format: Option<&str>) -> Result<bool, CheckpointError> {
    match format {
        Some(FORMAT) => Ok(true),
        Some(FORMAT_V1) => Ok(false),
        other => Err(CheckpointError::NotRewind {
            path: path.to_path_buf(),
            found: other.unwrap_or("missing").to_string(),
        }),
    }
}

/// A checkpoint read into memory and verified.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Its metadata (see the module docs).
    pub meta: BTreeMap<String, String>,
    /// The model config it was saved with.
    pub model_cfg: ModelConfig,
}

impl Checkpoint {
    /// Reads a checkpoint file and checks all of it: a safetensors file of
    /// the size its header gives, a rewind checkpoint, and (version 2) every
    /// tensor's and the metadata's checksum.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file_len = bytes.len() as u64;
        header_len(path, &bytes, file_len)?;
        let damaged = |what: String| CheckpointError::Damaged {
            path: path.to_path_buf(),
            what,
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                // the header parses: compare its data length with the file
                match check_header(path) {
                    Err(e @ CheckpointError::WrongSize { .. }) => e,
                    _ => damaged(format!("the header does not match the data ({e})")),
                }
            }
            e => CheckpointError::NotSafetensors {
                path: path.to_path_buf(),
                reason: format!("its header is not a safetensors header ({e})"),
            },
        })?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let verified = check_format(path, meta.get("format").map(String::as_str))?;
        if verified {
            let want = meta.get(META_SUM).map(String::as_str).unwrap_or("");
            if meta_digest(&meta) != want {
                return Err(damaged("metadata checksum mismatch".into()));
            }
            let sums: BTreeMap<String, String> =
                serde_json::from_str(meta.get(TENSOR_SUMS).map(String::as_str).unwrap_or(""))
                    .map_err(|e| damaged(format!("bad `{TENSOR_SUMS}` metadata ({e})")))?;
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| damaged(format!("unreadable tensors ({e})")))?;
            let mut names = st.names();
            names.sort();
            for name in &names {
                let view = st.tensor(name).map_err(|e| damaged(format!("{e}")))?;
                let got = tensor_digest(view.dtype(), view.shape(), view.data());
                match sums.get(*name) {
                    Some(want) if *want == got => {}
                    Some(_) => return Err(damaged(format!("tensor {name} checksum mismatch"))),
                    None => return Err(damaged(format!("tensor {name} has no checksum"))),
                }
            }
            if let Some(lost) = sums.keys().find(|k| !names.iter().any(|n| n == k)) {
                return Err(damaged(format!("tensor {lost} is missing")));
            }
        }
        let model_cfg: ModelConfig =
            serde_json::from_str(meta.get("model").map(String::as_str).unwrap_or(""))
                .map_err(|e| damaged(format!("bad `model` metadata ({e})")))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            meta,
            model_cfg,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn damaged(&self, what: String) -> CheckpointError {
        CheckpointError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    fn tensor<D: Device<f32>>(
        &self,
        st: &SafeTensors,
        name: &str,
        like: &Tensor2<D>,
    ) -> Result<Tensor2<D>, CheckpointError> {
        let view = st
            .tensor(name)
            .map_err(|_| self.damaged(format!("tensor {name} is missing")))?;
        let (r, c) = *like.shape();
        if view.dtype() != Dtype::F32 || view.shape() != [r, c] {
            return Err(self.damaged(format!(
                "tensor {name} is {:?} {:?}, expected F32 [{r}, {c}]",
                view.dtype(),
                view.shape()
            )));
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(like.device().tensor_from_vec(v, (r, c)))
    }

    /// Builds the saved model on `dev`.
    pub fn model<D: Device<f32>>(&self, dev: &D) -> Result<Transformer<D>, CheckpointError> {
        let mut model = Transformer::new(&self.model_cfg, dev, 0).map_err(|reason| {
            CheckpointError::BadModel {
                path: self.path.clone(),
                reason,
            }
        })?;
        self.load_into(&mut model, None)?;
        Ok(model)
    }

    /// Whether this checkpoint holds a model of config `cfg`; the error
    /// lists the fields that differ.
    pub fn check_model(&self, cfg: &ModelConfig) -> Result<(), CheckpointError> {
        if *cfg != self.model_cfg {
            return Err(CheckpointError::ModelMismatch {
                path: self.path.clone(),
                differences: differences(&self.model_cfg, cfg),
            });
        }
        Ok(())
    }

    /// Overwrites `model`'s parameters (and `opt`'s state, if given). The
    /// model must have the checkpoint's config; the error otherwise lists
    /// the fields that differ.
    pub fn load_into<D: Device<f32>>(
        &self,
        model: &mut Transformer<D>,
        opt: Option<&mut AdamW<D>>,
    ) -> Result<(), CheckpointError> {
        self.check_model(&model.cfg)?;
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| self.damaged(format!("unreadable tensors ({e})")))?;
        let names: Vec<String> = model.params().into_iter().map(|(n, _)| n).collect();
        let mut loaded = Vec::with_capacity(names.len());
        for (name, p) in names.iter().zip(model.params_mut()) {
            let t = self.tensor(&st, name, p)?;
            loaded.push((p, t));
        }
        let mut new_m = Vec::new();
        let mut new_v = Vec::new();
        if let Some(opt) = &opt {
            for (i, name) in names.iter().enumerate() {
                new_m.push(self.tensor(&st, &format!("optim.m.{name}"), &opt.m[i])?);
                new_v.push(self.tensor(&st, &format!("optim.v.{name}"), &opt.v[i])?);
            }
        }
        let optim_t = match &opt {
            Some(_) => Some(
                self.meta
                    .get("optim_t")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| self.damaged("no `optim_t` in the metadata".into()))?,
            ),
            None => None,
        };
        // everything read and checked: now commit
        for (p, t) in loaded {
            *p = t;
        }
        if let (Some(opt), Some(t)) = (opt, optim_t) {
            opt.m = new_m;
            opt.v = new_v;
            opt.t = t;
        }
        Ok(())
    }
}

/// The fields in which two model configs differ, in plain words:
/// `d_model 64 (checkpoint) vs 32 (config)`.
fn differences(checkpoint: &ModelConfig, config: &ModelConfig) -> Vec<String> {
    let fields = |c: &ModelConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Default::default(),
    };
    let (a, b) = (fields(checkpoint), fields(config));
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "none".into(),
    };
    a.keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k} {} (checkpoint) vs {} (config)",
                text(a.get(k)),
                text(b.get(k))
            )
        })
        .collect()
}
