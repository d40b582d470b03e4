//! One optimisation step: forward with a tape, loss, backward, gradient
//! clipping, AdamW update. The run loop, the benchmarks and
//! `rewind bench` all call this one function.

use std::any::Any;

use anyhow::{bail, Result};
use dfdx::prelude::*;
use rayon::prelude::*;

use crate::data::Batch;
use crate::experiment::config::ObjectiveConfig;
use crate::model::fused::cast;
use crate::model::{Dropout, Inputs, Logits, Tensor2, Transformer};
use crate::objectives::{mle_loss, mle_loss_cpu};
use crate::train::optim::{clip_grad_norm, AdamW};

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The objective's value on the batch (before the update).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Gradients of `objective` on `batch` with respect to every parameter,
/// in [`Transformer::params`] order, and the loss value. On `Cpu` the model
/// runs its fused forward and backward ([`Transformer::forward_train`]).
pub fn gradients<D: Device<f32>>(
    model: &Transformer<D>,
    dev: &D,
    batch: &Batch,
    objective: &ObjectiveConfig,
    dropout: &mut Dropout,
) -> Result<(f64, Vec<Tensor2<D>>)> {
    gradients_with(model, dev, batch, objective, dropout, Path::Fused)
}

/// [`gradients`] through the composite dfdx ops only
/// ([`Transformer::forward_train_reference`]): the reference for tests.
pub fn gradients_reference<D: Device<f32>>(
    model: &Transformer<D>,
    dev: &D,
    batch: &Batch,
    objective: &ObjectiveConfig,
    dropout: &mut Dropout,
) -> Result<(f64, Vec<Tensor2<D>>)> {
    gradients_with(model, dev, batch, objective, dropout, Path::Reference)
}

/// Which implementation a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Fused CPU kernels where the device is `Cpu`.
    Fused,
    /// Composite dfdx tensor ops everywhere.
    Reference,
}

fn gradients_with<D: Device<f32>>(
    model: &Transformer<D>,
    dev: &D,
    batch: &Batch,
    objective: &ObjectiveConfig,
    dropout: &mut Dropout,
    path: Path,
) -> Result<(f64, Vec<Tensor2<D>>)> {
    let (value, grads) = loss_and_grads(model, dev, batch, objective, dropout, path)?;
    Ok((
        value,
        model.params().iter().map(|(_, p)| grads.get(*p)).collect(),
    ))
}

/// The loss value and the gradient store after the backward pass.
fn loss_and_grads<D: Device<f32>>(
    model: &Transformer<D>,
    dev: &D,
    batch: &Batch,
    objective: &ObjectiveConfig,
    dropout: &mut Dropout,
    path: Path,
) -> Result<(f64, Gradients<f32, D>)> {
    let params = model.params();
    // A fresh gradient store per step. Allocating every parameter's slot up
    // front gives an unused parameter a zero gradient instead of a panic in
    // `grads.get`.
    let mut grads = Gradients::leaky();
    for (_, p) in &params {
        grads
            .try_alloc_for(*p)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let inputs = Inputs::from_batch(&batch, dev);
    let (targets, weights) = crate::objectives::mle::targets_on(&batch, dev);
    let logits = match path {
        Path::Fused => model.forward_train(&inputs, grads, dropout),
        Path::Reference => model.forward_train_reference(&inputs, grads, dropout),
    };
    let loss = match objective {
        ObjectiveConfig::Mle {} => match path {
            // on Cpu the fused cross-entropy, elsewhere the composite one
            Path::Fused => match cast::<_, Logits<Cpu, OwnedTape<f32, Cpu>>>(logits) {
                Ok(logits) => {
                    let loss =
                        mle_loss_cpu(logits, &batch.targets, &batch.weights, batch.weight_sum());
                    cast(loss)
                        .unwrap_or_else(|_| unreachable!("the loss of Cpu logits is on D = Cpu"))
                }
                Err(logits) => mle_loss(logits, &targets, &weights, batch.weight_sum()),
            },
            Path::Reference => mle_loss(logits, &targets, &weights, batch.weight_sum()),
        },
    };
    let value = loss.as_vec()[0] as f64;
    Ok((value, loss.backward()))
}

/// What one step does: the loss and the update's settings.
#[derive(Clone, Copy, Debug)]
pub struct StepSpec<'a> {
    pub objective: &'a ObjectiveConfig,
    /// Learning rate of this step.
    pub lr: f64,
    /// Global gradient-norm limit; 0 disables clipping.
    pub grad_clip: f64,
}

/// One full training step: on `Cpu`, the fused forward/backward, then a
/// fused clip + AdamW pass over the host buffers.
pub fn train_step<D: Device<f32>>(
    model: &mut Transformer<D>,
    opt: &mut AdamW<D>,
    dev: &D,
    batch: &Batch,
    spec: &StepSpec,
    dropout: &mut Dropout,
) -> Result<StepStats> {
    step_with(model, opt, dev, batch, spec, dropout, Path::Fused)
}

/// [`train_step`] through composite dfdx ops only (forward, backward, clip
/// and AdamW): the reference the fused step is tested against.
pub fn train_step_reference<D: Device<f32>>(
    model: &mut Transformer<D>,
    opt: &mut AdamW<D>,
    dev: &D,
    batch: &Batch,
    spec: &StepSpec,
    dropout: &mut Dropout,
) -> Result<StepStats> {
    step_with(model, opt, dev, batch, spec, dropout, Path::Reference)
}

fn step_with<D: Device<f32>>(
    model: &mut Transformer<D>,
    opt: &mut AdamW<D>,
    dev: &D,
    batch: &Batch,
    spec: &StepSpec,
    dropout: &mut Dropout,
    path: Path,
) -> Result<StepStats> {
    if path == Path::Fused {
        let cpu = (
            (model as &mut dyn Any).downcast_mut::<Transformer<Cpu>>(),
            (opt as &mut dyn Any).downcast_mut::<AdamW<Cpu>>(),
            (dev as &dyn Any).downcast_ref::<Cpu>(),
        );
        if let (Some(model), Some(opt), Some(dev)) = cpu {
            return cpu_step(model, opt, dev, batch, spec, dropout);
        }
    }
    let (loss, mut grads) = gradients_with(model, dev, batch, spec.objective, dropout, path)?;
    if !loss.is_finite() {
        bail!("loss is {loss}; try a smaller learning rate");
    }
    let grad_norm = clip_grad_norm(&mut grads, spec.grad_clip);
    opt.update(model.params_mut(), &grads, spec.lr);
    Ok(StepStats { loss, grad_norm })
}

/// The fused step on `Cpu`: fused forward and backward, then the gradients
/// leave the store without a copy, and clipping and AdamW run as one host
/// pass per parameter ([`AdamW::update_host`]).
fn cpu_step(
    model: &mut Transformer<Cpu>,
    opt: &mut AdamW<Cpu>,
    dev: &Cpu,
    batch: &Batch,
    spec: &StepSpec,
    dropout: &mut Dropout,
) -> Result<StepStats> {
    let (loss, mut store) =
        loss_and_grads(model, dev, batch, spec.objective, dropout, Path::Fused)?;
    if !loss.is_finite() {
        bail!("loss is {loss}; try a smaller learning rate");
    }
    let mut grads = Vec::new();
    for (_, p) in model.params() {
        let g = store
            .get_or_alloc_mut(p)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        grads.push(std::mem::take(&mut **g));
    }
    drop(store);
    let grad_norm = grads
        .par_iter()
        .with_min_len(crate::kernels::ops::min_len())
        .map(|g| g.iter().map(|&x| x as f64 * x as f64).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum::<f64>()
        .sqrt();
    // the same scale as `clip_grad_norm`
    let scale = if spec.grad_clip > 0.0 && grad_norm > spec.grad_clip {
        (spec.grad_clip / (grad_norm + 1e-6)) as f32
    } else {
        1.0
    };
    opt.update_host(model.params_mut(), grads, scale, spec.lr);
    Ok(StepStats { loss, grad_norm })
}
