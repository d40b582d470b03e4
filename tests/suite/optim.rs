//! AdamW with gradient clipping against an f64 reference written from the
//! update rule, over several steps, on both of the crate's paths: the
//! tensor-op path (`clip_grad_norm` + `AdamW::update`) and the fused host
//! path (`AdamW::update_host` with the clip folded into `grad_scale`, as the
//! CPU training step does it).

use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

// ------------------------------------------------------------- adapters
// Every call into the crate's optimiser API is in `CrateAdamW`, so an API
// change is re-pointed here.

type Param2 = Tensor<(usize, usize), f32, Cpu>;

/// Hyper-parameters of one test run.
#[derive(Clone, Copy, Debug)]
struct Settings {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

/// The crate's AdamW and the parameters it updates.
struct CrateAdamW {
    opt: rewind::train::optim::AdamW<Cpu>,
    params: Vec<Param2>,
}

impl CrateAdamW {
    /// Zero moments for `params` `(name, rows, cols, values)`.
    fn new(s: &Settings, params: &[(&str, usize, usize, Vec<f32>)]) -> Self {
        let dev: Cpu = Default::default();
        let tensors: Vec<Param2> = params
            .iter()
            .map(|(_, r, c, v)| dev.tensor_from_vec(v.clone(), (*r, *c)))
            .collect();
        let named: Vec<(String, &Param2)> = params
            .iter()
            .zip(&tensors)
            .map(|((n, ..), t)| (n.to_string(), t))
            .collect();
        let cfg = rewind::train::optim::AdamWConfig {
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            weight_decay: s.weight_decay,
        };
        let opt = rewind::train::optim::AdamW::new(cfg, &named);
        Self {
            opt,
            params: tensors,
        }
    }

    /// The crate's decay rule for `name`.
    fn decays(name: &str) -> bool {
        rewind::train::optim::decays(name)
    }

    /// One step on the tensor-op path: `clip_grad_norm`, then `update`.
    fn step_tensor(&mut self, grads: &[Vec<f32>], clip: f64, lr: f64) {
        let dev: Cpu = Default::default();
        let mut g: Vec<Param2> = grads
            .iter()
            .zip(&self.params)
            .map(|(g, p)| dev.tensor_from_vec(g.clone(), *p.shape()))
            .collect();
        rewind::train::optim::clip_grad_norm(&mut g, clip);
        self.opt.update(self.params.iter_mut().collect(), &g, lr);
    }

    /// One step on the fused host path: the global norm and clip scale as
    /// the CPU training step (`train::step::cpu_step`) computes them, then
    /// `update_host`.
    fn step_host(&mut self, grads: &[Vec<f32>], clip: f64, lr: f64) {
        let norm = grads
            .iter()
            .map(|g| g.iter().map(|&x| x as f64 * x as f64).sum::<f64>())
            .sum::<f64>()
            .sqrt();
        let scale = if clip > 0.0 && norm > clip {
            (clip / (norm + 1e-6)) as f32
        } else {
            1.0
        };
        self.opt
            .update_host(self.params.iter_mut().collect(), grads, scale, lr);
    }

    /// Parameters, first moments, second moments.
    fn state(&self) -> [Vec<Vec<f32>>; 3] {
        let all = |ts: &[Param2]| ts.iter().map(|t| t.as_vec()).collect();
        [all(&self.params), all(&self.opt.m), all(&self.opt.v)]
    }
}

// ------------------------------------------------------- f64 reference

/// AdamW with clipping by global norm, in f64, from the definitions:
/// `s = clip/(‖g‖ + 1e-6)` when `‖g‖ > clip` (else 1), `g ← s·g`,
/// `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
/// `p ← p·(1 − lr·wd) − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)`, with
/// `wd` applied only to names ending `.weight` or `_emb`.
struct RefAdamW {
    s: Settings,
    t: i32,
    decay: Vec<bool>,
    p: Vec<Vec<f64>>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl RefAdamW {
    fn new(s: Settings, params: &[(&str, usize, usize, Vec<f32>)]) -> Self {
        let zeros = || params.iter().map(|p| vec![0.0; p.3.len()]).collect();
        Self {
            s,
            t: 0,
            decay: params
                .iter()
                .map(|p| p.0.ends_with(".weight") || p.0.ends_with("_emb"))
                .collect(),
            p: params
                .iter()
                .map(|p| p.3.iter().map(|&x| x as f64).collect())
                .collect(),
            m: zeros(),
            v: zeros(),
        }
    }

    fn step(&mut self, grads: &[Vec<f32>], clip: f64, lr: f64) {
        let norm = grads
            .iter()
            .flatten()
            .map(|&x| x as f64 * x as f64)
            .sum::<f64>()
            .sqrt();
        let scale = if clip > 0.0 && norm > clip {
            clip / (norm + 1e-6)
        } else {
            1.0
        };
        self.t += 1;
        let Settings {
            beta1: b1,
            beta2: b2,
            eps,
            weight_decay,
        } = self.s;
        let (bc1, bc2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (i, g) in grads.iter().enumerate() {
            let wd = if self.decay[i] { weight_decay } else { 0.0 };
            let (p, m, v) = (&mut self.p[i], &mut self.m[i], &mut self.v[i]);
            assert_eq!(g.len(), p.len());
            for e in 0..p.len() {
                let g = g[e] as f64 * scale;
                m[e] = b1 * m[e] + (1.0 - b1) * g;
                v[e] = b2 * v[e] + (1.0 - b2) * g * g;
                p[e] = p[e] * (1.0 - lr * wd) - lr * (m[e] / bc1) / ((v[e] / bc2).sqrt() + eps);
            }
        }
    }

    fn state(&self) -> [&Vec<Vec<f64>>; 3] {
        [&self.p, &self.m, &self.v]
    }
}

// ---------------------------------------------------------------- tests

const SETTINGS: Settings = Settings {
    beta1: 0.8,
    beta2: 0.95,
    eps: 1e-8,
    weight_decay: 0.1,
};

/// Gradient-norm limit; every step's gradients are well above it.
const CLIP: f64 = 1.0;

/// Learning rate of each step (the step count is its length).
const LRS: [f64; 4] = [0.05, 0.03, 0.02, 0.04];

/// Gradient size factor of each step: the norms differ by 10x between
/// steps, so the clip scale changes from step to step (Adam alone is
/// invariant to one constant scale, not to a changing one).
const GRAD_SCALE: [f32; 4] = [3.0, 30.0, 2.0, 10.0];

/// Parameters with and without weight decay (by the name rule).
fn params() -> Vec<(&'static str, usize, usize, Vec<f32>)> {
    let mut rng = StdRng::seed_from_u64(7);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    [
        ("tok_emb", 6, 4),
        ("blocks.0.wq.weight", 4, 4),
        ("blocks.0.wq.bias", 1, 4),
        ("blocks.0.ln1.gain", 1, 4),
        ("head.weight", 4, 6),
    ]
    .into_iter()
    .map(|(name, r, c)| (name, r, c, (0..r * c).map(|_| n.sample(&mut rng)).collect()))
    .collect()
}

/// The gradients of each step.
fn grads(params: &[(&str, usize, usize, Vec<f32>)]) -> Vec<Vec<Vec<f32>>> {
    let mut rng = StdRng::seed_from_u64(8);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    GRAD_SCALE
        .iter()
        .map(|&k| {
            params
                .iter()
                .map(|p| (0..p.3.len()).map(|_| k * n.sample(&mut rng)).collect())
                .collect()
        })
        .collect()
}

/// `‖got − want‖ / ‖want‖` for one tensor.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let d: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).powi(2))
        .sum();
    let w: f64 = want.iter().map(|b| b * b).sum();
    (d / w.max(1e-300)).sqrt()
}

fn max_rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            rel_err(&x32, y)
        })
        .fold(0.0, f64::max)
}

/// Runs every step on one path and the reference; after each step the
/// parameters and both moments agree to 1e-6 relative (per tensor).
fn check_path(host: bool) {
    let ps = params();
    let gs = grads(&ps);
    let mut ours = CrateAdamW::new(&SETTINGS, &ps);
    let mut reference = RefAdamW::new(SETTINGS, &ps);
    for (t, (g, &lr)) in gs.iter().zip(&LRS).enumerate() {
        let norm = g.concat().iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        assert!(
            norm.sqrt() > 2.0 * CLIP,
            "step {t}: clipping must be active"
        );
        if host {
            ours.step_host(g, CLIP, lr);
        } else {
            ours.step_tensor(g, CLIP, lr);
        }
        reference.step(g, CLIP, lr);
        for (what, (got, want)) in ["parameter", "first moment", "second moment"]
            .iter()
            .zip(ours.state().iter().zip(reference.state()))
        {
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                let e = rel_err(a, b);
                assert!(
                    e < 1e-6,
                    "{} path, step {t}: {what} of {} off by {e:.3e} relative",
                    if host { "host" } else { "tensor" },
                    ps[i].0
                );
            }
        }
    }
}

#[test]
fn adamw_tensor_path_with_clipping_matches_f64_reference() {
    check_path(false);
}

#[test]
fn adamw_host_path_with_clipping_matches_f64_reference() {
    check_path(true);
}

/// The cases above can fail: over these steps, leaving out clipping or
/// weight decay moves the reference's parameters by far more than the
/// 1e-6 tolerance, and the crate's decay rule is the one the reference
/// applies (weights and embeddings decay, biases and gains do not).
#[test]
fn adamw_reference_is_sensitive_to_clipping_and_decay() {
    let ps = params();
    let gs = grads(&ps);
    let run = |s: Settings, clip: f64| {
        let mut r = RefAdamW::new(s, &ps);
        for (g, &lr) in gs.iter().zip(&LRS) {
            r.step(g, clip, lr);
        }
        r.p
    };
    let base = run(SETTINGS, CLIP);
    let no_clip = run(SETTINGS, 0.0);
    let no_decay = run(
        Settings {
            weight_decay: 0.0,
            ..SETTINGS
        },
        CLIP,
    );
    assert!(max_rel_diff(&no_clip, &base) > 1e-3);
    assert!(max_rel_diff(&no_decay, &base) > 1e-3);
    let decay: Vec<bool> = ps.iter().map(|p| CrateAdamW::decays(p.0)).collect();
    assert_eq!(decay, [true, true, false, false, true]);
    assert_eq!(decay, RefAdamW::new(SETTINGS, &ps).decay);
}
