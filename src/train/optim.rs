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

/// Learning rate at `step` of a stage of `total` steps (`0..total`).
///
/// - Warmup, steps `0..warmup`: linear rise `lr · (step + 1) / (warmup + 1)`,
///   so step 0 is already above 0 and step `warmup - 1` just below `lr`.
/// - Step `warmup` is the single peak, exactly `lr` (with `warmup = 0`,
///   step 0).
/// - Then cosine decay from `lr` to `min_lr`, reached exactly on the last
///   step `total - 1`: `min_lr + ½(lr − min_lr)(1 + cos(π·progress))` with
///   `progress = (step − warmup) / (total − 1 − warmup)`.
/// - Steps past the end (`step >= total`) stay at `min_lr`. If
///   `warmup >= total - 1` there is no decay phase: the stage ends during
///   warmup or on the peak.
pub fn lr_at(step: u64, total: u64, warmup: u64, lr: f64, min_lr: f64) -> f64 {
    if step >= total {
        return min_lr;
    }
    if step < warmup {
        return lr * (step + 1) as f64 / (warmup + 1) as f64;
    }
    if step == warmup {
        return lr;
    }
    // here warmup < step <= total - 1, so the decay span is at least 1
    let last = total - 1;
    if step == last {
        return min_lr;
    }
    let progress = (step - warmup) as f64 / (last - warmup) as f64;
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact values at the phase boundaries: warmup `lr·(step+1)/(warmup+1)`,
    /// the single peak `lr` at step `warmup`, `min_lr` exactly at the last
    /// step `total - 1` and after it, the cosine midpoint halfway through
    /// the decay.
    #[test]
    fn schedule_peaks_once_at_warmup_and_ends_exactly_at_min_lr() {
        let (total, warmup, lr, min_lr) = (101, 10, 1.0, 0.1);
        let at = |step| lr_at(step, total, warmup, lr, min_lr);
        assert_eq!(at(0), 1.0 / 11.0);
        assert_eq!(at(9), 10.0 / 11.0);
        assert_eq!(at(10), 1.0);
        assert_eq!(at(100), 0.1);
        assert_eq!(at(101), 0.1);
        assert_eq!(at(10_000), 0.1);
        // halfway through the decay (progress 45/90)
        let mid = at(55);
        assert!((mid - 0.55).abs() < 1e-12, "{mid}");
        // one step from each end of the decay phase
        let pi = std::f64::consts::PI;
        let first = 0.1 + 0.45 * (1.0 + (pi / 90.0).cos());
        assert!((at(11) - first).abs() < 1e-15, "{}", at(11));
        let second_last = 0.1 + 0.45 * (1.0 + (pi * 89.0 / 90.0).cos());
        assert!((at(99) - second_last).abs() < 1e-15, "{}", at(99));
    }

    /// Strictly rising through warmup up to the one peak, then strictly
    /// falling to the end: the maximum is reached on exactly one step.
    #[test]
    fn schedule_rises_then_falls_with_a_single_peak() {
        for (total, warmup) in [(101u64, 10u64), (20, 1), (7, 5), (50, 0), (3, 1)] {
            let lrs: Vec<f64> = (0..total)
                .map(|s| lr_at(s, total, warmup, 3e-3, 1e-4))
                .collect();
            let peak = warmup as usize;
            for s in 0..peak {
                assert!(
                    lrs[s] < lrs[s + 1],
                    "{total}/{warmup}: rise at {s}: {lrs:?}"
                );
            }
            for s in peak..lrs.len() - 1 {
                assert!(
                    lrs[s] > lrs[s + 1],
                    "{total}/{warmup}: fall at {s}: {lrs:?}"
                );
            }
            assert_eq!(lrs[peak], 3e-3);
            assert_eq!(lrs[lrs.len() - 1], 1e-4);
            assert_eq!(lrs.iter().filter(|&&x| x == 3e-3).count(), 1);
        }
    }

    /// Without warmup, step 0 is the peak; degenerate stages (warmup at or
    /// past the last step, one-step stages, no steps) stay finite and
    /// within [0, lr], and steps past the end are `min_lr`.
    #[test]
    fn schedule_edge_cases() {
        assert_eq!(lr_at(0, 100, 0, 2.0, 0.5), 2.0);
        assert_eq!(lr_at(99, 100, 0, 2.0, 0.5), 0.5);
        // one step, no warmup: that step is the peak
        assert_eq!(lr_at(0, 1, 0, 2.0, 0.5), 2.0);
        // warmup = total - 1: warmup then the peak on the last step
        assert_eq!(lr_at(3, 5, 4, 2.0, 0.5), 2.0 * 4.0 / 5.0);
        assert_eq!(lr_at(4, 5, 4, 2.0, 0.5), 2.0);
        // warmup = total: the stage ends during warmup
        assert_eq!(lr_at(4, 5, 5, 2.0, 0.5), 2.0 * 5.0 / 6.0);
        // past the end, whatever the warmup
        for warmup in [0, 3, 5, 9] {
            assert_eq!(lr_at(5, 5, warmup, 2.0, 0.5), 0.5);
            assert_eq!(lr_at(7, 5, warmup, 2.0, 0.5), 0.5);
        }
        assert_eq!(lr_at(0, 0, 0, 2.0, 0.5), 0.5);
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
