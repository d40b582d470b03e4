//! AdamW with checkpointable state, warmup + cosine schedule, and gradient
//! clipping by global norm.
//!
//! dfdx 0.13 has Adam, but its moment buffers are private, so it cannot be
//! checkpointed and a resumed run would not continue bit-for-bit. This
//! AdamW is written from tensor ops (so it runs on every device) and keeps
//! its moments as plain tensors that the checkpoint saves.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::Tensor2;

/// Optimiser hyper-parameters (part of a stage's config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Adam's first-moment decay, in [0, 1). Default 0.9.
    pub beta1: f64,
    /// Adam's second-moment decay, in [0, 1). Default 0.99 (small models,
    /// short runs: a shorter memory than the usual 0.999 adapts faster).
    pub beta2: f64,
    /// Denominator fuzz. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay applied to weight matrices and embeddings
    /// (not to biases or layer-norm gains), >= 0. Default 0.1.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW state: step count and per-parameter moments.
pub struct AdamW<D: Device<f32>> {
    pub cfg: AdamWConfig,
    /// Number of updates applied so far.
    pub t: u64,
    pub m: Vec<Tensor2<D>>,
    pub v: Vec<Tensor2<D>>,
    /// Whether each parameter gets weight decay.
    pub decay: Vec<bool>,
}

/// Whether a parameter (by checkpoint name) gets weight decay: weight
/// matrices and embeddings do, biases and gains do not (as in GPT-2/nanoGPT).
pub fn decays(name: &str) -> bool {
    name.ends_with(".weight") || name.ends_with("_emb")
}

impl<D: Device<f32>> AdamW<D> {
    /// Zero moments for `params` (name, tensor).
    pub fn new(cfg: AdamWConfig, params: &[(String, &Tensor2<D>)]) -> Self {
        let zeros = || {
            params
                .iter()
                .map(|(_, p)| p.device().zeros_like(*p))
                .collect::<Vec<_>>()
        };
        Self {
            cfg,
            t: 0,
            m: zeros(),
            v: zeros(),
            decay: params.iter().map(|(n, _)| decays(n)).collect(),
        }
    }

    /// One AdamW update with learning rate `lr`:
    /// `p -= lr · (m̂ / (√v̂ + eps) + wd · p)`.
    pub fn update(&mut self, params: Vec<&mut Tensor2<D>>, grads: &[Tensor2<D>], lr: f64) {
        assert_eq!(params.len(), grads.len());
        assert_eq!(params.len(), self.m.len());
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (p, g)) in params.into_iter().zip(grads).enumerate() {
            let m = self.m[i].clone() * b1 as f32 + g.clone() * (1.0 - b1) as f32;
            let v = self.v[i].clone() * b2 as f32 + g.clone().square() * (1.0 - b2) as f32;
            let step = (m.clone() * (1.0 / bc1) as f32)
                / ((v.clone() * (1.0 / bc2) as f32).sqrt() + self.cfg.eps as f32);
            let wd = if self.decay[i] {
                self.cfg.weight_decay
            } else {
                0.0
            };
            let new_p = p.clone() * (1.0 - lr * wd) as f32 - step * lr as f32;
            *p = new_p;
            self.m[i] = m;
            self.v[i] = v;
        }
    }
}

impl AdamW<Cpu> {
    /// [`AdamW::update`] on the host in one pass per parameter, for the
    /// fused CPU training step: `grads` (host buffers, in parameter
    /// order) are multiplied by `grad_scale` on the fly (gradient clipping)
    /// and each parameter's data and moments are read once and written once.
    /// The arithmetic is the tensor-op version's, in the same order and with
    /// the same `f32` constants. Parameters are updated in parallel on the
    /// current rayon pool.
    pub fn update_host<G: std::ops::Deref<Target = [f32]> + Sync>(
        &mut self,
        params: Vec<&mut Tensor2<Cpu>>,
        grads: &[G],
        grad_scale: f32,
        lr: f64,
    ) {
        use rayon::prelude::*;
        assert_eq!(params.len(), grads.len());
        assert_eq!(params.len(), self.m.len());
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        let k = HostAdamW {
            b1: b1 as f32,
            one_minus_b1: (1.0 - b1) as f32,
            b2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            inv_bc1: (1.0 / bc1) as f32,
            inv_bc2: (1.0 / bc2) as f32,
            eps: self.cfg.eps as f32,
            lr: lr as f32,
            grad_scale,
        };
        let wd = self.cfg.weight_decay;
        params
            .into_par_iter()
            .zip(grads.par_iter())
            .zip(self.m.par_iter_mut())
            .zip(self.v.par_iter_mut())
            .zip(self.decay.par_iter())
            .with_min_len(crate::kernels::ops::min_len())
            .for_each(|((((p, g), m), v), &decay)| {
                let n = g.len();
                let mut buf = crate::kernels::pool::Buf::uninit(3 * n);
                let (pb, rest) = buf.split_at_mut(n);
                let (mb, vb) = rest.split_at_mut(n);
                p.copy_into(pb);
                m.copy_into(mb);
                v.copy_into(vb);
                let decay_factor = (1.0 - lr * if decay { wd } else { 0.0 }) as f32;
                k.apply(pb, g, mb, vb, decay_factor);
                p.copy_from(pb);
                m.copy_from(mb);
                v.copy_from(vb);
            });
    }
}

/// The constants of one host AdamW update.
#[derive(Clone, Copy)]
struct HostAdamW {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    eps: f32,
    lr: f32,
    grad_scale: f32,
}

impl HostAdamW {
    /// The element-wise update (vectorises).
    #[inline]
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay_factor: f32) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let g = g[i] * self.grad_scale; // exact when 1 (no clipping)
            let mi = m[i] * self.b1 + g * self.one_minus_b1;
            let vi = v[i] * self.b2 + g * g * self.one_minus_b2;
            let step = (mi * self.inv_bc1) / ((vi * self.inv_bc2).sqrt() + self.eps);
            p[i] = p[i] * decay_factor - step * self.lr;
            m[i] = mi;
            v[i] = vi;
        }
    }
}

/// Global L2 norm of `grads`; if it exceeds `max_norm` (> 0), scales them
/// down to `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm<D: Device<f32>>(grads: &mut [Tensor2<D>], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .map(|g| g.clone().square().sum::<Rank0, _>().as_vec()[0] as f64)
        .sum::<f64>()
        .sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        for g in grads.iter_mut() {
            *g = g.clone() * scale;
        }
    }
    norm
}

/// Learning rate at `step` (0-based): linear warmup from 0 over
/// `warmup` steps, then cosine decay from `lr` to `min_lr` at `total`.
pub fn lr_at(step: u64, total: u64, warmup: u64, lr: f64, min_lr: f64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_min() {
        assert!((lr_at(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((lr_at(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        let mid = lr_at(55, 100, 10, 1.0, 0.1);
        assert!((mid - 0.55).abs() < 1e-9, "{mid}");
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        // With bias correction the first Adam step is lr * sign(g).
        let dev: Cpu = Default::default();
        let mut p: Tensor2<Cpu> = dev.tensor_from_vec(vec![1.0, -2.0], (1, 2));
        let g: Tensor2<Cpu> = dev.tensor_from_vec(vec![0.5, -3.0], (1, 2));
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(cfg, &[("x.bias".into(), &p)]);
        opt.update(vec![&mut p], &[g], 0.1);
        let v = p.as_vec();
        assert!(
            (v[0] - 0.9).abs() < 1e-5 && (v[1] + 1.9).abs() < 1e-5,
            "{v:?}"
        );
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let dev: Cpu = Default::default();
        let mut g = vec![dev.tensor_from_vec(vec![3.0f32, 4.0], (1, 2))];
        let n = clip_grad_norm(&mut g, 1.0);
        assert!((n - 5.0).abs() < 1e-6);
        let v = g[0].as_vec();
        assert!(
            (v[0] - 0.6).abs() < 1e-4 && (v[1] - 0.8).abs() < 1e-4,
            "{v:?}"
        );
    }
}
