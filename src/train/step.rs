//! One optimisation step: forward, the objective's loss and logit
//! gradient, backward, gradient clipping, AdamW. The run loop, the
//! benchmarks and `rewind bench` all call [`train_step`].
//!
//! Which implementation runs is decided by the device type through the
//! [`Backend`] trait: on `Cpu` the fused forward/backward with a fused
//! clip + AdamW pass over host buffers; on other devices (and on the CPU
//! when dropout is on, whose host-RNG masks live in the composite graph)
//! the composite dfdx graph of [`reference`]. Both apply the same
//! [`Objective`] to the same logits, so every loss works on every path.

use anyhow::Result;
use dfdx::prelude::*;
use rayon::prelude::*;

use crate::data::{Batch, TrainBatch};
use crate::model::fused;
use crate::model::host::HostParams;
use crate::model::{Dropout, Transformer};
use crate::objectives::Objective;
use crate::train::optim::AdamW;

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The objective's value on the batch (before the update).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// What one step does: the loss and the update's settings.
#[derive(Clone, Copy, Debug)]
pub struct StepSpec<'a> {
    pub objective: &'a dyn Objective,
    /// Learning rate of this step.
    pub lr: f64,
    /// Global gradient-norm limit; 0 disables clipping.
    pub grad_clip: f64,
}

/// A device the model trains and runs on, with the implementation that
/// suits it. Generic code is bounded by `D: Backend`.
pub trait Backend: Device<f32> {
    /// Inference logits `(batch·seq, vocab)` of `batch`, on the host.
    fn logits(model: &Transformer<Self>, batch: &Batch) -> Vec<f32>;

    /// The loss of `objective` on `batch` and every parameter's gradient,
    /// on the host, in table order.
    fn gradients(
        model: &Transformer<Self>,
        batch: &TrainBatch,
        objective: &dyn Objective,
        dropout: &mut Dropout,
    ) -> Result<(f64, Vec<Vec<f32>>)>;

    /// One full training step.
    fn train_step(
        model: &mut Transformer<Self>,
        opt: &mut AdamW<Self>,
        batch: &TrainBatch,
        spec: &StepSpec,
        dropout: &mut Dropout,
    ) -> Result<StepStats>;
}

/// One training step on `model`'s device (see [`Backend::train_step`]).
pub fn train_step<D: Backend>(
    model: &mut Transformer<D>,
    opt: &mut AdamW<D>,
    batch: &TrainBatch,
    spec: &StepSpec,
    dropout: &mut Dropout,
) -> Result<StepStats> {
    D::train_step(model, opt, batch, spec, dropout)
}

/// The loss and every parameter's gradient (see [`Backend::gradients`]).
pub fn gradients<D: Backend>(
    model: &Transformer<D>,
    batch: &TrainBatch,
    objective: &dyn Objective,
    dropout: &mut Dropout,
) -> Result<(f64, Vec<Vec<f32>>)> {
    D::gradients(model, batch, objective, dropout)
}

/// A step whose loss is not a finite number: the model has diverged (or
/// its weights were damaged). The step made no update. The trainer records
/// it as the run's divergence rather than a failure
/// ([`crate::experiment::summary::Summary::diverged_at_step`]).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("the training loss is {loss}, not a finite number: the model diverged (try a smaller learning rate)")]
pub struct NonFiniteLoss {
    pub loss: f64,
}

fn check_finite(loss: f64) -> Result<()> {
    if !loss.is_finite() {
        return Err(NonFiniteLoss { loss }.into());
    }
    Ok(())
}

impl Backend for Cpu {
    fn logits(model: &Transformer<Self>, batch: &Batch) -> Vec<f32> {
        fused::logits(&HostParams::of(model), batch)
    }

    fn gradients(
        model: &Transformer<Self>,
        batch: &TrainBatch,
        objective: &dyn Objective,
        dropout: &mut Dropout,
    ) -> Result<(f64, Vec<Vec<f32>>)> {
        if dropout.is_active() {
            return reference::gradients(model, batch, objective, dropout);
        }
        let (loss, grads) = fused_gradients(model, batch, objective)?;
        Ok((loss, grads.iter().map(|g| g.to_vec()).collect()))
    }

    /// Fused forward and backward, then clipping and AdamW as one host pass
    /// per parameter ([`AdamW::update_host`]).
    fn train_step(
        model: &mut Transformer<Self>,
        opt: &mut AdamW<Self>,
        batch: &TrainBatch,
        spec: &StepSpec,
        dropout: &mut Dropout,
    ) -> Result<StepStats> {
        if dropout.is_active() {
            return reference::train_step(model, opt, batch, spec, dropout);
        }
        let (loss, grads) = fused_gradients(model, batch, spec.objective)?;
        check_finite(loss)?;
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
        opt.update_host(model.params_mut(), &grads, scale, spec.lr);
        Ok(StepStats { loss, grad_norm })
    }
}

/// The fused CPU forward and backward pass with `objective` on the logits.
fn fused_gradients(
    model: &Transformer<Cpu>,
    batch: &TrainBatch,
    objective: &dyn Objective,
) -> Result<(f64, Vec<crate::kernels::pool::Buf>)> {
    let w = HostParams::of(model);
    Ok(fused::forward_backward(
        &w,
        model.table(),
        batch.rows(),
        |logits| objective.loss_and_grad(logits, batch),
    )?)
}

#[cfg(feature = "cuda")]
impl Backend for Cuda {
    fn logits(model: &Transformer<Self>, batch: &Batch) -> Vec<f32> {
        reference::logits(model, batch)
    }

    fn gradients(
        model: &Transformer<Self>,
        batch: &TrainBatch,
        objective: &dyn Objective,
        dropout: &mut Dropout,
    ) -> Result<(f64, Vec<Vec<f32>>)> {
        reference::gradients(model, batch, objective, dropout)
    }

    fn train_step(
        model: &mut Transformer<Self>,
        opt: &mut AdamW<Self>,
        batch: &TrainBatch,
        spec: &StepSpec,
        dropout: &mut Dropout,
    ) -> Result<StepStats> {
        reference::train_step(model, opt, batch, spec, dropout)
    }
}

/// The composite path: dfdx tensor ops and their backward, on any device.
/// The objective's logit gradient `G` enters the graph through the
/// surrogate loss `Σ logits ∘ G` (with `G` a constant), whose gradient with
/// respect to the logits is exactly `G`. This is what CUDA builds run, and
/// the reference the fused CPU path is tested against.
pub mod reference {
    use super::*;
    use crate::model::{Inputs, Tensor2};
    use crate::train::optim::clip_grad_norm;

    /// Inference logits `(batch·seq, vocab)` on the host.
    pub fn logits<D: Device<f32>>(model: &Transformer<D>, batch: &Batch) -> Vec<f32> {
        let dev = model.param(0).device().clone();
        model
            .forward_reference(&Inputs::from_batch(batch, &dev))
            .as_vec()
    }

    /// The loss and every parameter's gradient tensor, in table order.
    fn loss_and_grads<D: Device<f32>>(
        model: &Transformer<D>,
        batch: &TrainBatch,
        objective: &dyn Objective,
        dropout: &mut Dropout,
    ) -> Result<(f64, Vec<Tensor2<D>>)> {
        let dev = model.param(0).device().clone();
        // A fresh gradient store per step. Allocating every parameter's slot
        // up front gives an unused parameter a zero gradient instead of a
        // panic in `grads.get`.
        let mut grads = Gradients::leaky();
        for p in model.tensors() {
            grads
                .try_alloc_for(p)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        let rows = batch.rows();
        let logits = model.forward_train_reference(&Inputs::from_batch(rows, &dev), grads, dropout);
        let (loss, g) = objective.loss_and_grad(&logits.as_vec(), batch)?;
        let g = dev.tensor_from_vec(g, *logits.shape());
        let store = (logits * g).sum::<Rank0, _>().backward();
        Ok((loss, model.tensors().iter().map(|p| store.get(p)).collect()))
    }

    /// [`Backend::gradients`] on the composite path.
    pub fn gradients<D: Device<f32>>(
        model: &Transformer<D>,
        batch: &TrainBatch,
        objective: &dyn Objective,
        dropout: &mut Dropout,
    ) -> Result<(f64, Vec<Vec<f32>>)> {
        let (loss, grads) = loss_and_grads(model, batch, objective, dropout)?;
        Ok((loss, grads.iter().map(|g| g.as_vec()).collect()))
    }

    /// [`Backend::train_step`] on the composite path: clipping and AdamW
    /// from tensor ops.
    pub fn train_step<D: Device<f32>>(
        model: &mut Transformer<D>,
        opt: &mut AdamW<D>,
        batch: &TrainBatch,
        spec: &StepSpec,
        dropout: &mut Dropout,
    ) -> Result<StepStats> {
        let (loss, mut grads) = loss_and_grads(model, batch, spec.objective, dropout)?;
        check_finite(loss)?;
        let grad_norm = clip_grad_norm(&mut grads, spec.grad_clip);
        opt.update(model.params_mut(), &grads, spec.lr);
        Ok(StepStats { loss, grad_norm })
    }
}
