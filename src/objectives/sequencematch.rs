//! SequenceMatch (Cundy & Ermon, ICLR 2024): imitation learning over the
//! occupancy measure of sequences, with the logits as soft Q-values.
//!
//! # The loss
//! For a transition `(s_t, a_t, s_{t+1})` at logits row `z_t` (the state
//! `s_t`'s position) the implicit reward is
//!
//! `r_t = Q(s_t, a_t) - γ V(s_{t+1})`, with `Q(s, ·) = z`, `V(s) = logsumexp z`,
//!
//! and `V(s_{t+1}) = v_terminal` after `<eos>` (the absorbing state's value
//! cannot come from the logits; LS-IQ's absorbing-state treatment with a
//! constant, a config value). IQ-Learn's saddle-point objective, minimised:
//!
//! `L = -E_{d_data}[φ(r)] + c·E_{d_r²}[r²] + E_{μ}[V(s_t) - γ V(s_{t+1})]`
//!
//! where `d_data` and `d_policy` are the discounted occupancies
//! `Σ_t γ^t P(s_t = s, a_t = a)` of the (noised) data and of the model's
//! rollouts, `μ` is `d_data` (`value_over = "data"`) or `(d_data +
//! d_policy)/2` (`"mixture"`, IQ-Learn's "value" variant over expert and
//! policy states), and `φ` is the divergence's conjugate:
//!
//! | divergence | φ(r) | φ'(r) | r² term |
//! |---|---|---|---|
//! | `kl` | `-exp(-r-1)` | `exp(-r-1)` (IQ-Learn's `kl` weight) | none |
//! | `reverse_kl` | `1 + log r` (r > 0) | `1/r` | none |
//! | `js` | `log(2 - exp(-r))` (r > -log 2) | `e^-r / (2 - e^-r)` | none |
//! | `chi2` | `r` | `1` | `1/(4α)` over `d_data` |
//! | `chi2_mix` | `r` | `1` | `1/(4α)` over `(d_data + d_policy)/2` |
//! | `linear` | `r` | `1` | none |
//!
//! `linear` is a control, not a divergence: by the identity
//! `-r + V(s) - γV(s') = -log π(a|s)` it is exactly MLE over the data
//! occupancy (the only form besides MLE that recovers the data
//! distribution; the divergences converge to flatter distributions, since
//! IQ-Learn's objective is a divergence minus an entropy).
//!
//! `chi2_mix` is χ²(ρ_data ‖ (ρ_data + ρ_θ)/2) (IQ-Learn's "regularize",
//! LS-IQ), the paper's recommended "SequenceMatch-χ²". The paper's own
//! table of φ is not public (../shared/papers.md: UNVERIFIED), so these are
//! IQ-Learn's forms (`iq_learn/iq.py`) and the standard conjugates.
//!
//! **Domains.** `reverse_kl` and `js` are only defined for `r` above a
//! bound (0 and -log 2). A network's `r` can start anywhere, so below
//! `bound + DOMAIN_MARGIN` φ continues as its tangent line: φ stays concave
//! and differentiable, and a transition outside the domain is pushed back
//! in with the slope at the margin. An optimum inside the domain (the only
//! kind the divergence has) is unchanged.
//!
//! The policy occupancy is never differentiated through: rollouts are
//! samples from an earlier copy of the model (a stop-gradient, refreshed),
//! which is also what makes the linear form's optimum exact (papers.md,
//! "Measured": with the gradient through `d_policy` and `v_terminal != 0`
//! the value term tilts sequence length).
//!
//! # From a batch to transitions
//! A [`TransitionBatch`] holds data rows (expert answers, possibly noised
//! with wrong tokens each followed by `<bksp>`) and policy rows (rollouts).
//! The transition at row position `i` (an action target) goes to the state
//! at position `i + 1` (the one-pass layout gives every state its own
//! position, `<bksp>` included), or to the terminal after `<eos>`. Its
//! occupancy weight is `γ^t` with `t` its step in the action sequence,
//! averaged over the rows of its kind (a Monte-Carlo estimate of the
//! occupancy); an unfinished rollout's last state has no transition. A data
//! position with loss weight 0 (an injected wrong token) is not a data
//! transition: the model should learn to undo noise, not to make it. All
//! terms are divided by the mean discounted data length `E_data[Σ_t γ^t]`
//! (a constant of the batch), so the loss is per data transition, on the
//! scale of MLE's per-token loss, which matters for the mix below.
//!
//! # The recipe's mix
//! The stage loss is `λ·L_SM + (1-λ)·L_MLE`, with `L_MLE` the mean token
//! cross-entropy over the data transitions (the same weights); the MLE
//! warm-up is a preceding `mle` stage.

use serde::{Deserialize, Serialize};

use super::{vocab_of, Objective, ObjectiveError};
use crate::data::vocab::EOS;
use crate::data::{BatchKind, TrainBatch, TransitionBatch};

/// How far inside its domain bound φ switches to its tangent line.
pub const DOMAIN_MARGIN: f64 = 0.1;

/// The f-divergence whose conjugate φ shapes the reward term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// Forward KL: φ(r) = -exp(-r-1).
    Kl,
    /// Reverse KL: φ(r) = 1 + log r.
    ReverseKl,
    /// Jensen-Shannon: φ(r) = log(2 - exp(-r)).
    Js,
    /// χ²: φ(r) = r with 1/(4α)·r² over the data occupancy.
    Chi2,
    /// χ² to the data/policy mixture: φ(r) = r with 1/(4α)·r² over both.
    Chi2Mix,
    /// The linear form φ(r) = r (a control: equal to MLE).
    Linear,
}

impl Divergence {
    /// Every divergence, in config order.
    pub const ALL: [Self; 6] = [
        Self::Kl,
        Self::ReverseKl,
        Self::Js,
        Self::Chi2,
        Self::Chi2Mix,
        Self::Linear,
    ];

    /// Its config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kl => "kl",
            Self::ReverseKl => "reverse_kl",
            Self::Js => "js",
            Self::Chi2 => "chi2",
            Self::Chi2Mix => "chi2_mix",
            Self::Linear => "linear",
        }
    }

    /// The lower end of φ's domain, if it has one.
    pub fn domain_bound(self) -> Option<f64> {
        match self {
            Self::ReverseKl => Some(0.0),
            Self::Js => Some(-std::f64::consts::LN_2),
            _ => None,
        }
    }

    /// φ(r) and φ'(r), continued by the tangent line below the domain
    /// bound + [`DOMAIN_MARGIN`] (see the module docs).
    pub fn phi(self, r: f64) -> (f64, f64) {
        if let Some(lo) = self.domain_bound() {
            let r0 = lo + DOMAIN_MARGIN;
            if r < r0 {
                let (p0, d0) = self.phi_inside(r0);
                return (p0 + d0 * (r - r0), d0);
            }
        }
        self.phi_inside(r)
    }

    fn phi_inside(self, r: f64) -> (f64, f64) {
        match self {
            Self::Kl => {
                let e = (-r - 1.0).exp();
                (-e, e)
            }
            Self::ReverseKl => (1.0 + r.ln(), 1.0 / r),
            Self::Js => {
                let e = (-r).exp();
                ((2.0 - e).ln(), e / (2.0 - e))
            }
            Self::Chi2 | Self::Chi2Mix | Self::Linear => (r, 1.0),
        }
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which occupancy the value term `V(s) - γV(s')` is taken over.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValueOver {
    /// The data transitions only.
    Data,
    /// Half data, half policy (IQ-Learn's "value" variant); the data alone
    /// when a batch has no policy rows.
    #[default]
    Mixture,
}

/// A SequenceMatch objective (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceMatch {
    pub divergence: Divergence,
    /// χ² strength: the r² term has weight 1/(4α); > 0.
    pub alpha: f64,
    /// Discount γ in (0, 1].
    pub gamma: f64,
    /// V of the absorbing state after `<eos>`.
    pub v_terminal: f64,
    pub value_over: ValueOver,
    /// Weight λ of the SequenceMatch loss against MLE, in [0, 1].
    pub lambda: f64,
}

/// One transition with its occupancy weights (see [`sm_loss`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// Logits row of the state `s_t`.
    pub at: usize,
    /// The action `a_t`.
    pub action: usize,
    /// Logits row of `s_{t+1}`, or `None` for the absorbing terminal.
    pub next: Option<usize>,
    /// Weight in the data occupancy.
    pub data: f64,
    /// Weight in the policy occupancy (held fixed: no gradient flows
    /// through it).
    pub policy: f64,
}

/// The SequenceMatch loss (without the MLE mix) over explicit transitions,
/// and its gradient with respect to every logit, in f64.
///
/// `L = Σ_tr [ -data·φ(r) + c_tr·r²/(4α) + μ_tr·(V(s) - γV(s')) ]` with
/// logits in f64 (a masked action can have logit `-inf`), and
/// `c_tr = data` (chi2), `(data + policy)/2` (chi2_mix) or 0, and `μ_tr =
/// data` or `(data + policy)/2` (see [`ValueOver`]). The batch path and the
/// tabular tests both go through here, so the tests exercise this code.
///
/// # Shapes
/// `logits`: `(rows, vocab)`; the gradient has the same shape.
pub fn sm_loss(
    sm: &SequenceMatch,
    logits: &[f64],
    vocab: usize,
    ts: &[Transition],
) -> (f64, Vec<f64>) {
    let rows = logits.len() / vocab;
    // log-sum-exp and softmax of every row that is used
    let mut lse = vec![f64::NAN; rows];
    let row_lse = |r: usize| {
        let z = &logits[r * vocab..(r + 1) * vocab];
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        max + z.iter().map(|&x| (x - max).exp()).sum::<f64>().ln()
    };
    for t in ts {
        for r in std::iter::once(t.at).chain(t.next) {
            if lse[r].is_nan() {
                lse[r] = row_lse(r);
            }
        }
    }
    // dL/dV(row): accumulated, then spread as dV/dz = softmax(z)
    let mut dv = vec![0.0f64; rows];
    let mut grad = vec![0.0f64; logits.len()];
    let mut loss = 0.0;
    let g = sm.gamma;
    for t in ts {
        let q = logits[t.at * vocab + t.action];
        let v_next = t.next.map_or(sm.v_terminal, |n| lse[n]);
        let r = q - g * v_next;
        let (phi, dphi) = sm.divergence.phi(r);
        let r2w = match sm.divergence {
            Divergence::Chi2 => t.data,
            Divergence::Chi2Mix => 0.5 * (t.data + t.policy),
            _ => 0.0,
        } / (4.0 * sm.alpha);
        let mu = match sm.value_over {
            ValueOver::Data => t.data,
            ValueOver::Mixture => 0.5 * (t.data + t.policy),
        };
        loss += -t.data * phi + r2w * r * r + mu * (lse[t.at] - g * v_next);
        let dr = -t.data * dphi + 2.0 * r2w * r;
        // r = Q(s,a) - γV(s'); the value term adds μ·V(s) - μ·γV(s')
        grad[t.at * vocab + t.action] += dr;
        dv[t.at] += mu;
        if let Some(n) = t.next {
            dv[n] -= g * (dr + mu);
        }
    }
    for (r, &d) in dv.iter().enumerate() {
        if d == 0.0 {
            continue;
        }
        let z = &logits[r * vocab..(r + 1) * vocab];
        for (gi, &zi) in grad[r * vocab..(r + 1) * vocab].iter_mut().zip(z) {
            *gi += d * (zi - lse[r]).exp();
        }
    }
    (loss, grad)
}

impl SequenceMatch {
    /// Itself, or when `tb` has no policy rows the same loss over the data
    /// alone: `mixture` terms are then data terms (not half of them), so
    /// `value_over = data` and `chi2_mix` = `chi2`.
    fn without_policy_if(&self, tb: &TransitionBatch) -> Self {
        if tb.policy.iter().any(|&p| p) {
            return *self;
        }
        let divergence = match self.divergence {
            Divergence::Chi2Mix => Divergence::Chi2,
            d => d,
        };
        Self {
            divergence,
            value_over: ValueOver::Data,
            ..*self
        }
    }

    /// The transitions of a batch with their occupancy weights, normalised
    /// by the mean discounted data length (see the module docs); also the
    /// MLE weights (per position, data transitions only).
    pub fn transitions(&self, tb: &TransitionBatch) -> (Vec<Transition>, Vec<f64>) {
        let b = &tb.rows;
        let n_data = tb.policy.iter().filter(|&&p| !p).count();
        let n_policy = tb.policy.len() - n_data;
        let mut ts = Vec::new();
        let mut mle_w = vec![0.0f64; b.batch * b.seq];
        for r in 0..b.batch {
            let policy = tb.policy[r];
            let mut step = 0i32;
            for i in 0..b.seq {
                let at = r * b.seq + i;
                if !b.completion[at] {
                    continue;
                }
                let w = (b.weights[at] as f64).max(0.0);
                let disc = self.gamma.powi(step);
                step += 1;
                let action = b.targets[at];
                let next = if action == EOS as usize {
                    None
                } else {
                    Some(at + 1)
                };
                if let Some(n) = next {
                    // a state after the last position of a row does not exist
                    if i + 1 >= b.seq {
                        continue;
                    }
                    debug_assert!(n < (r + 1) * b.seq);
                }
                let (data, pol) = if policy {
                    (0.0, disc / n_policy as f64)
                } else {
                    mle_w[at] = w;
                    (disc * w / n_data as f64, 0.0)
                };
                if data > 0.0 || pol > 0.0 {
                    ts.push(Transition {
                        at,
                        action,
                        next,
                        data,
                        policy: pol,
                    });
                }
            }
        }
        let mass: f64 = ts.iter().map(|t| t.data).sum();
        if mass > 0.0 {
            for t in &mut ts {
                t.data /= mass;
                t.policy /= mass;
            }
        }
        (ts, mle_w)
    }
}

impl Objective for SequenceMatch {
    fn name(&self) -> &'static str {
        "sequencematch"
    }

    fn batch_kind(&self) -> BatchKind {
        BatchKind::Transitions
    }

    fn uses_policy(&self) -> bool {
        true
    }

    fn loss_and_grad(
        &self,
        logits: &[f32],
        batch: &TrainBatch,
    ) -> Result<(f64, Vec<f32>), ObjectiveError> {
        let TrainBatch::Transitions(tb) = batch else {
            return Err(ObjectiveError::WrongBatch {
                objective: "sequencematch",
                expected: BatchKind::Transitions,
                got: batch.kind(),
            });
        };
        let b = &tb.rows;
        let v = vocab_of(logits, b.targets.len())?;
        if let Some(&target) = b.targets.iter().find(|&&y| y >= v) {
            return Err(ObjectiveError::Target { target, vocab: v });
        }
        let (ts, mle_w) = self.transitions(tb);
        let z: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let (sm, grad) = sm_loss(&self.without_policy_if(tb), &z, v, &ts);
        let (mle, mle_grad) = weighted_ce(logits, v, &b.targets, &mle_w);
        let lam = self.lambda;
        let out = grad
            .iter()
            .zip(&mle_grad)
            .map(|(&a, &m)| (lam * a + (1.0 - lam) * m) as f32)
            .collect();
        Ok((lam * sm + (1.0 - lam) * mle, out))
    }
}

/// Mean token cross-entropy `-Σ w_t log softmax(z_t)[y_t] / Σ w_t` and its
/// gradient, in f64 (0 when every weight is 0).
fn weighted_ce(logits: &[f32], vocab: usize, targets: &[usize], w: &[f64]) -> (f64, Vec<f64>) {
    let mut grad = vec![0.0f64; logits.len()];
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return (0.0, grad);
    }
    let mut loss = 0.0;
    for (at, (&y, &wt)) in targets.iter().zip(w).enumerate() {
        if wt == 0.0 {
            continue;
        }
        let z = &logits[at * vocab..(at + 1) * vocab];
        let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + z.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        let c = wt / total;
        loss -= c * (z[y] as f64 - lse);
        for (k, (gk, &zk)) in grad[at * vocab..(at + 1) * vocab]
            .iter_mut()
            .zip(z)
            .enumerate()
        {
            *gk += c * ((zk as f64 - lse).exp() - (k == y) as u8 as f64);
        }
    }
    (loss, grad)
}
