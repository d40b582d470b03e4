//! Checkpoints in safetensors: model weights, AdamW moments, and metadata
//! (step, stage, the full resolved config), written atomically.
//!
//! Open one elsewhere with `safetensors.numpy.load_file(path)` or
//! `safetensors.torch.load_file(path)`. Tensor names:
//! - model parameters by their path, e.g. `tok_emb` `(vocab, d_model)`,
//!   `blocks.0.wq.weight` `(in, out)`, `blocks.0.ln1.gain` `(1, d)`;
//! - `optim.m.<name>` / `optim.v.<name>`: AdamW first/second moments.
//!
//! Metadata (string map, read with `safe_open(...).metadata()`):
//! `format` = `rewind-checkpoint-v1`, `model` (model config, JSON),
//! `optim_t` (AdamW step count), plus what the trainer adds
//! (`step`, `stage`, `config` as TOML, `git_commit`, ...).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::model::{ModelConfig, Tensor2, Transformer};
use crate::train::optim::AdamW;

const FORMAT: &str = "rewind-checkpoint-v1";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub use crate::atomic::write_atomic;

/// Saves `model` (and `opt`, if given) with `meta` to `path`, atomically.
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
    let mut info: HashMap<String, String> = meta.clone().into_iter().collect();
    info.insert("format".into(), FORMAT.into());
    info.insert("model".into(), serde_json::to_string(&model.cfg)?);
    if let Some(opt) = opt {
        info.insert("optim_t".into(), opt.t.to_string());
    }
    let bytes = safetensors::serialize(views, &Some(info))?;
    write_atomic(path, &bytes)
}

/// A checkpoint read into memory.
pub struct Checkpoint {
    bytes: Vec<u8>,
    /// Its metadata (see the module docs).
    pub meta: BTreeMap<String, String>,
    /// The model config it was saved with.
    pub model_cfg: ModelConfig,
}

impl Checkpoint {
    /// Reads and checks the header of a checkpoint file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .with_context(|| format!("{} is not a safetensors file", path.display()))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            bail!(
                "{}: not a rewind checkpoint (metadata format != {FORMAT})",
                path.display()
            );
        }
        let model_cfg: ModelConfig =
            serde_json::from_str(meta.get("model").map(String::as_str).unwrap_or(""))
                .with_context(|| format!("{}: bad `model` metadata", path.display()))?;
        Ok(Self {
            bytes,
            meta,
            model_cfg,
        })
    }

    fn tensor<D: Device<f32>>(
        &self,
        st: &SafeTensors,
        name: &str,
        like: &Tensor2<D>,
    ) -> Result<Tensor2<D>> {
        let view = st
            .tensor(name)
            .with_context(|| format!("checkpoint has no tensor `{name}`"))?;
        let (r, c) = *like.shape();
        if view.dtype() != Dtype::F32 || view.shape() != [r, c] {
            bail!(
                "checkpoint tensor `{name}` is {:?} {:?}, expected F32 [{r}, {c}]",
                view.dtype(),
                view.shape()
            );
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(like.device().tensor_from_vec(v, (r, c)))
    }

    /// Builds the saved model on `dev`.
    pub fn model<D: Device<f32>>(&self, dev: &D) -> Result<Transformer<D>> {
        let mut model = Transformer::new(&self.model_cfg, dev, 0).map_err(anyhow::Error::msg)?;
        self.load_into(&mut model, None)?;
        Ok(model)
    }

    /// Overwrites `model`'s parameters (and `opt`'s state, if given).
    pub fn load_into<D: Device<f32>>(
        &self,
        model: &mut Transformer<D>,
        opt: Option<&mut AdamW<D>>,
    ) -> Result<()> {
        if model.cfg != self.model_cfg {
            bail!(
                "checkpoint model config {:?} differs from {:?}",
                self.model_cfg,
                model.cfg
            );
        }
        let st = SafeTensors::deserialize(&self.bytes)?;
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
        // everything read and checked: now commit
        for (p, t) in loaded {
            *p = t;
        }
        if let Some(opt) = opt {
            opt.m = new_m;
            opt.v = new_v;
            opt.t = self
                .meta
                .get("optim_t")
                .and_then(|s| s.parse().ok())
                .context("checkpoint has no optim_t")?;
        }
        Ok(())
    }
}
