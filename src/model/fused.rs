//! The fused CPU path of the transformer: one custom op computes the logits
//! from the parameters and [`Inputs`], keeping the activations, and one
//! hand-written backward op (registered on the tape with
//! [`Tape::add_backward_op`]) turns the logits' gradient into every
//! parameter's gradient (added with `Gradients::get_or_alloc_mut`).
//!
//! Why: dfdx 0.13 runs element-wise ops, softmax and permutes
//! single-threaded, each as a separate pass with its own allocation, and its
//! matmul (the `gemm` crate) reaches about 2/3 of this machine's peak. Here:
//! - every matmul is a packed AVX2/FMA kernel (`sgemm.rs`; the `gemm`
//!   crate on other CPUs), bias additions fused into its write-back, heads
//!   read in place (no permutes), q/k/v as one product;
//! - layer norm, GELU, the masked softmax and their backward passes are
//!   fused row loops, vectorised and rayon-parallel (`kernels.rs`);
//! - attention skips, per block of 32 queries, the keys the mask hides from
//!   the whole block (half the attention arithmetic under a causal mask);
//! - activations live in pooled buffers (`pool.rs`).
//!
//! Losses stay dfdx ops on the logits, so every objective works unchanged
//! (MLE also has a fused CPU version, `objectives::mle_loss_cpu`, which the
//! fused training step uses). Training with dropout (p > 0) takes the
//! composite path, which keeps dropout's exact host-RNG masks.
//!
//! Dispatch: model code stays generic over `D: Device<f32>`; these functions
//! check at run time (a `TypeId` comparison that the compiler folds away)
//! whether `D` is `Cpu` and decline otherwise, so a CUDA build takes the
//! composite path with no change to any signature or trait bound. The
//! composite path stays callable as [`Transformer::forward_reference`] and
//! [`Transformer::forward_train_reference`]; `tests/fused.rs` checks the two
//! against each other (values and gradients).
//!
//! Threads: every parallel loop runs on the current rayon pool, in chunks of
//! fixed size (results do not depend on the thread count), and on a
//! one-thread pool stays on the calling thread ([`kernels::min_len`]).

use std::any::Any;

use dfdx::prelude::*;

use super::fused_host as transformer;
use super::fused_host::{HostInputs, HostParams};
use super::{Inputs, Logits, Transformer};
use crate::kernels::ops as kernels;

/// Moves `a` into type `B` if `A` is `B` (both the same type in disguise).
pub(crate) fn cast<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    let boxed: Box<dyn Any> = Box::new(a);
    match boxed.downcast::<B>() {
        Ok(b) => Ok(*b),
        Err(boxed) => Err(*boxed.downcast::<A>().expect("the box holds an A")),
    }
}

/// The fused inference forward pass, when `D` is `Cpu`.
pub(crate) fn forward<D: Device<f32>>(
    model: &Transformer<D>,
    inp: &Inputs<D>,
) -> Option<Logits<D, NoneTape>> {
    let model = (model as &dyn Any).downcast_ref::<Transformer<Cpu>>()?;
    let inp = (inp as &dyn Any).downcast_ref::<Inputs<Cpu>>()?;
    let w = HostParams::of(model);
    let hi = HostInputs::of(inp);
    let (logits, _) = transformer::forward(&w, &hi, false);
    let out = model
        .tok_emb
        .device()
        .tensor_from_vec(logits, (hi.b, hi.s, w.vocab()));
    cast(out).ok()
}

/// The fused training forward pass, when `D` is `Cpu`: logits on a tape
/// holding `grads`, whose backward op accumulates every parameter's
/// gradient. Gives `grads` back when `D` is not `Cpu`.
pub(crate) fn forward_train<D: Device<f32>>(
    model: &Transformer<D>,
    inp: &Inputs<D>,
    grads: Gradients<f32, D>,
) -> Result<Logits<D, OwnedTape<f32, D>>, Gradients<f32, D>> {
    let Some(model) = (model as &dyn Any).downcast_ref::<Transformer<Cpu>>() else {
        return Err(grads);
    };
    let inp = (inp as &dyn Any)
        .downcast_ref::<Inputs<Cpu>>()
        .expect("Inputs<D> with D = Cpu");
    let grads: Gradients<f32, Cpu> =
        cast(grads).unwrap_or_else(|_| unreachable!("Gradients<f32, D> with D = Cpu"));
    let out = forward_train_cpu(model, inp, grads);
    Ok(cast(out).unwrap_or_else(|_| unreachable!("Logits<Cpu, _> is Logits<D, _>")))
}

fn forward_train_cpu(
    model: &Transformer<Cpu>,
    inp: &Inputs<Cpu>,
    grads: Gradients<f32, Cpu>,
) -> Logits<Cpu, OwnedTape<f32, Cpu>> {
    let w = HostParams::of(model);
    let hi = HostInputs::of(inp);
    let (logits, cache) = transformer::forward(&w, &hi, true);
    let cache = cache.expect("kept activations");
    let out = model
        .tok_emb
        .device()
        .tensor_from_vec(logits, (hi.b, hi.s, w.vocab()));
    let out_id = out.ghost();
    // ghosts carry a tensor's id and shape but not its data: the keys of the
    // parameters' gradients, in `params()` order, as `backward` returns them
    let param_ids: Vec<_> = model.params().iter().map(|(_, p)| p.ghost()).collect();
    let (_, mut tape) = model.tok_emb.clone().traced(grads).split_tape();
    tape.add_backward_op(move |grads| {
        // borrow the logits' gradient out of the store for the duration
        let dl = std::mem::take(&mut **grads.get_or_alloc_mut(&out_id)?);
        let param_grads = transformer::backward(&w, &hi, &cache, &dl);
        **grads.get_or_alloc_mut(&out_id)? = dl;
        drop(cache);
        for (id, g) in param_ids.iter().zip(&param_grads) {
            kernels::add_assign(grads.get_or_alloc_mut(id)?, g);
        }
        Ok(())
    });
    out.put_tape(tape)
}
