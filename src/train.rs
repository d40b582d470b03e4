//! One optimisation step: forward with a tape, loss, backward, gradient
//! clipping, AdamW update. The run loop, the benchmarks and
//! `rewind bench` all call this one function.

use anyhow::{bail, Result};
use dfdx::prelude::*;

use crate::config::ObjectiveConfig;
use crate::data::Batch;
use crate::model::{Dropout, Tensor2, Transformer};
use crate::objectives::mle_loss;
use crate::optim::{clip_grad_norm, AdamW};

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The objective's value on the batch (before the update).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Gradients of `objective` on `batch` with respect to every parameter,
/// in [`Transformer::params`] order, and the loss value.
pub fn gradients<D: Device<f32>>(
    model: &Transformer<D>,
    dev: &D,
    batch: &Batch,
    objective: &ObjectiveConfig,
    dropout: &mut Dropout,
) -> Result<(f64, Vec<Tensor2<D>>)> {
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
    let inputs = batch.inputs(dev);
    let (targets, weights) = batch.targets(dev);
    let logits = model.forward_train(&inputs, grads, dropout);
    let loss = match objective {
        ObjectiveConfig::Mle {} => mle_loss(logits, &targets, &weights, batch.weight_sum()),
    };
    let value = loss.as_vec()[0] as f64;
    let grads = loss.backward();
    Ok((value, params.iter().map(|(_, p)| grads.get(*p)).collect()))
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

/// One full training step.
pub fn train_step<D: Device<f32>>(
    model: &mut Transformer<D>,
    opt: &mut AdamW<D>,
    dev: &D,
    batch: &Batch,
    spec: &StepSpec,
    dropout: &mut Dropout,
) -> Result<StepStats> {
    let (loss, mut grads) = gradients(model, dev, batch, spec.objective, dropout)?;
    if !loss.is_finite() {
        bail!("loss is {loss}; try a smaller learning rate");
    }
    let grad_norm = clip_grad_norm(&mut grads, spec.grad_clip);
    opt.update(model.params_mut(), &grads, spec.lr);
    Ok(StepStats { loss, grad_norm })
}
