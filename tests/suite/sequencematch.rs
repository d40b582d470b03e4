//! SequenceMatch loss correctness: the batch objective against an
//! independent plain-f64 reference (proptest) and its gradient against
//! central finite differences; the exact identities; and the tabular
//! optimum — minimising each loss over free tabular Q on a tiny MDP reaches
//! what the theory (and ../shared/ref/sequencematch_tabular, measured
//! beforehand in PyTorch) predicts.

use proptest::prelude::*;
use rewind::data::backspace::ActionSeq;
use rewind::data::vocab::{BKSP, EOS};
use rewind::data::{Batch, TrainBatch, TransitionBatch};
use rewind::objectives::sequencematch::{sm_loss, Transition};
use rewind::objectives::{Divergence, Mle, Objective, SequenceMatch, ValueOver};

// ---------------------------------------------------------------------------
// independent reference

/// φ of each divergence, written out (with the documented tangent
/// continuation 0.1 inside the domain bound of reverse KL and JS).
fn phi_ref(d: Divergence, r: f64) -> f64 {
    match d {
        Divergence::Kl => -(-r - 1.0).exp(),
        Divergence::ReverseKl => {
            let r0 = 0.1f64;
            if r >= r0 {
                1.0 + r.ln()
            } else {
                1.0 + r0.ln() + (r - r0) / r0
            }
        }
        Divergence::Js => {
            let r0 = -(2.0f64.ln()) + 0.1;
            let f = |x: f64| (2.0 - (-x).exp()).ln();
            if r >= r0 {
                f(r)
            } else {
                let e = (-r0).exp();
                f(r0) + e / (2.0 - e) * (r - r0)
            }
        }
        Divergence::Chi2 | Divergence::Chi2Mix | Divergence::Linear => r,
    }
}

/// φ'(r) inside the domain (for the stationarity conditions).
fn dphi_ref(d: Divergence, r: f64) -> f64 {
    match d {
        Divergence::Kl => (-r - 1.0).exp(),
        Divergence::ReverseKl => 1.0 / r,
        Divergence::Js => (-r).exp() / (2.0 - (-r).exp()),
        _ => 1.0,
    }
}

fn lse(z: &[f64]) -> f64 {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The stage loss `λ·SM + (1-λ)·MLE` of a transition batch, from its
/// layout: the transition at an action position goes to the next position
/// (or the terminal after `<eos>`), with weight γ^t averaged over the rows
/// of its kind, all divided by the mean discounted data length.
fn reference_loss(sm: &SequenceMatch, tb: &TransitionBatch, logits: &[f64], v: usize) -> f64 {
    let b = &tb.rows;
    let v_at = |at: usize| lse(&logits[at * v..(at + 1) * v]);
    let nd = tb.policy.iter().filter(|p| !**p).count() as f64;
    let np = tb.policy.iter().filter(|p| **p).count() as f64;
    // (data weight, policy weight, r, V(s), V(s'))
    let mut items = vec![];
    let (mut mle_num, mut mle_den) = (0.0, 0.0);
    for row in 0..b.batch {
        let mut t = 0;
        for i in 0..b.seq {
            let at = row * b.seq + i;
            if !b.completion[at] {
                continue;
            }
            let disc = sm.gamma.powi(t);
            t += 1;
            let a = b.targets[at];
            let vn = if a == EOS as usize {
                sm.v_terminal
            } else {
                v_at(at + 1)
            };
            let r = logits[at * v + a] - sm.gamma * vn;
            let w = b.weights[at] as f64;
            if tb.policy[row] {
                items.push((0.0, disc / np, r, v_at(at), vn));
            } else {
                items.push((disc * w / nd, 0.0, r, v_at(at), vn));
                mle_num += w * (logits[at * v + a] - v_at(at));
                mle_den += w;
            }
        }
    }
    let mass: f64 = items.iter().map(|x| x.0).sum();
    let mixture = np > 0.0;
    let mut total = 0.0;
    for &(d, p, r, vs, vn) in &items {
        let (d, p) = (d / mass, p / mass);
        let half = if mixture { 0.5 * (d + p) } else { d };
        let r2 = match sm.divergence {
            Divergence::Chi2 => d,
            Divergence::Chi2Mix => half,
            _ => 0.0,
        } / (4.0 * sm.alpha);
        let mu = match sm.value_over {
            ValueOver::Data => d,
            ValueOver::Mixture => half,
        };
        total += -d * phi_ref(sm.divergence, r) + r2 * r * r + mu * (vs - sm.gamma * vn);
    }
    let mle = if mle_den > 0.0 {
        -mle_num / mle_den
    } else {
        0.0
    };
    sm.lambda * total + (1.0 - sm.lambda) * mle
}

// ---------------------------------------------------------------------------
// random cases

const V: usize = 24;

fn action_seq() -> impl Strategy<Value = ActionSeq> {
    (
        prop::collection::vec(10u32..20, 1..3),
        prop::collection::vec(prop_oneof![10u32..15, Just(BKSP)], 0..5),
        any::<bool>(),
        prop::collection::vec(prop_oneof![3 => Just(true), 1 => Just(false)], 5),
    )
        .prop_map(|(prompt, actions, finished, imitate)| ActionSeq {
            imitate: imitate[..actions.len()].to_vec(),
            prompt,
            actions,
            finished,
        })
}

fn objective() -> impl Strategy<Value = SequenceMatch> {
    (
        prop::sample::select(Divergence::ALL.to_vec()),
        0.1f64..5.0,
        0.5f64..1.0,
        -2.0f64..2.0,
        prop::sample::select(vec![ValueOver::Data, ValueOver::Mixture]),
        0.0f64..1.0,
    )
        .prop_map(
            |(divergence, alpha, gamma, v_terminal, value_over, lambda)| SequenceMatch {
                divergence,
                alpha,
                gamma,
                v_terminal,
                value_over,
                lambda,
            },
        )
}

/// A transition batch with at least one imitated data transition, and
/// random logits for it.
fn case() -> impl Strategy<Value = (SequenceMatch, TransitionBatch, Vec<f32>)> {
    (
        objective(),
        prop::collection::vec(action_seq(), 1..4),
        prop::collection::vec(action_seq(), 0..3),
    )
        .prop_filter("needs a data transition", |(_, data, _)| {
            TransitionBatch::from_actions(data, &[]).rows.weight_sum() > 0.0
        })
        .prop_flat_map(|(sm, data, policy)| {
            let tb = TransitionBatch::from_actions(&data, &policy);
            let n = tb.rows.batch * tb.rows.seq * V;
            (Just(sm), Just(tb), prop::collection::vec(-4.0f32..4.0, n))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn loss_matches_f64_reference((sm, tb, logits) in case()) {
        let (got, _) = sm.loss_and_grad(&logits, &TrainBatch::Transitions(tb.clone())).unwrap();
        let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let want = reference_loss(&sm, &tb, &l64, V);
        prop_assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{sm:?}: crate {got} vs reference {want}");
    }

    #[test]
    fn gradient_matches_finite_differences((sm, tb, logits) in case()) {
        let (_, grad) = sm.loss_and_grad(&logits, &TrainBatch::Transitions(tb.clone())).unwrap();
        let mut l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let h = 1e-5;
        for k in 0..l64.len() {
            let x = l64[k];
            l64[k] = x + h;
            let up = reference_loss(&sm, &tb, &l64, V);
            l64[k] = x - h;
            let down = reference_loss(&sm, &tb, &l64, V);
            l64[k] = x;
            let fd = (up - down) / (2.0 * h);
            prop_assert!(
                (grad[k] as f64 - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                "{sm:?} logit {k}: crate {} vs finite differences {fd}", grad[k]
            );
        }
    }

    /// `-r + V(s) - γV(s') = -log π(a|s)`: the linear form of one
    /// transition is its cross-entropy, whatever γ and the next state.
    #[test]
    fn linear_transition_is_cross_entropy(
        z in prop::collection::vec(-5.0f64..5.0, 2 * 6),
        a in 0usize..6,
        gamma in 0.3f64..1.0,
        v_terminal in -3.0f64..3.0,
        terminal in any::<bool>(),
    ) {
        let sm = SequenceMatch {
            divergence: Divergence::Linear,
            alpha: 1.0,
            gamma,
            v_terminal,
            value_over: ValueOver::Data,
            lambda: 1.0,
        };
        let t = Transition { at: 0, action: a, next: (!terminal).then_some(1), data: 1.0, policy: 0.0 };
        let (loss, _) = sm_loss(&sm, &z, 6, &[t]);
        let log_pi = z[a] - lse(&z[..6]);
        prop_assert!((loss + log_pi).abs() < 1e-10, "{loss} vs {}", -log_pi);
    }

    /// Over one finished clean sequence, Σ_t γ^t (V(s_t) - γV(s_{t+1})) =
    /// V(s_0) - γ^T V_term: the batch path links each transition to the
    /// row position of its next state.
    #[test]
    fn value_term_telescopes(
        seq in action_seq(),
        gamma in 0.3f64..1.0,
        v_terminal in -3.0f64..3.0,
        logits in prop::collection::vec(-4.0f64..4.0, 12 * V),
    ) {
        let seq = ActionSeq::clean(seq.prompt, seq.actions, true);
        let tb = TransitionBatch::from_actions(std::slice::from_ref(&seq), &[]);
        let sm = SequenceMatch {
            divergence: Divergence::Linear,
            alpha: 1.0,
            gamma,
            v_terminal,
            value_over: ValueOver::Data,
            lambda: 1.0,
        };
        let (ts, _) = sm.transitions(&tb);
        let big_t = seq.actions.len() as i32 + 1;
        prop_assert_eq!(ts.len() as i32, big_t);
        let mass: f64 = (0..big_t).map(|t| gamma.powi(t)).sum();
        let v_at = |at: usize| lse(&logits[at * V..(at + 1) * V]);
        let sum: f64 = ts
            .iter()
            .map(|t| t.data * mass * (v_at(t.at) - gamma * t.next.map_or(v_terminal, v_at)))
            .sum();
        let first = ts[0].at;
        let want = v_at(first) - gamma.powi(big_t) * v_terminal;
        prop_assert!((sum - want).abs() < 1e-9 * (1.0 + want.abs()), "{sum} vs {want}");
    }
}

#[test]
fn policy_rows_are_never_imitated() {
    let data = ActionSeq::clean(vec![10], vec![11, 12], true);
    let noisy = ActionSeq {
        prompt: vec![10],
        actions: vec![13, BKSP, 11],
        finished: true,
        imitate: vec![false, true, true],
    };
    let pol = ActionSeq::clean(vec![10], vec![14, 11], false);
    let tb = TransitionBatch::from_actions(&[data, noisy], &[pol]);
    assert_eq!(tb.policy, vec![false, false, true]);
    let s = tb.rows.seq;
    let w = |r: usize| tb.rows.weights[r * s..(r + 1) * s].to_vec();
    let c = |r: usize| tb.rows.completion[r * s..(r + 1) * s].to_vec();
    // row 1: bos 10 | 13 (noise, not imitated) bksp 11 eos
    assert_eq!(&w(1)[..5], &[0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(&c(1)[..5], &[false, true, true, true, true]);
    assert!(w(2).iter().all(|&x| x == 0.0));
    assert_eq!(c(2).iter().filter(|&&x| x).count(), 2); // unfinished: 2 actions, no eos
}

#[test]
fn wrong_batch_kind_is_a_typed_error() {
    let sm = SequenceMatch {
        divergence: Divergence::Chi2Mix,
        alpha: 0.5,
        gamma: 0.99,
        v_terminal: 0.0,
        value_over: ValueOver::Mixture,
        lambda: 0.5,
    };
    let b = Batch::causal(&[rewind::data::Example::prompt_completion(&[10], &[11])]);
    assert!(sm
        .loss_and_grad(&vec![0.0; b.batch * b.seq * V], &TrainBatch::Tokens(b))
        .is_err());
}

// ---------------------------------------------------------------------------
// the tabular optimum (papers.md, "Measured: what the loss forms converge to")

mod tabular {
    use super::*;

    /// States are prefixes over {a, b} up to length 3, heap-indexed
    /// ('' = 0, children of i: 2i+1 (a), 2i+2 (b)); actions a, b, EOS. At
    /// length 3 only EOS is allowed.
    pub const NS: usize = 15;
    pub const NA: usize = 3;
    const EOS_A: usize = 2;

    fn depth(s: usize) -> i32 {
        (usize::BITS - (s + 1).leading_zeros() - 1) as i32
    }
    fn leaf(s: usize) -> bool {
        depth(s) == 3
    }
    fn allowed(s: usize, a: usize) -> bool {
        a == EOS_A || !leaf(s)
    }

    /// Masked logits (`-inf` where not allowed).
    fn logits(q: &[f64]) -> Vec<f64> {
        (0..NS * NA)
            .map(|k| {
                if allowed(k / NA, k % NA) {
                    q[k]
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect()
    }

    pub fn policy(q: &[f64]) -> Vec<f64> {
        let z = logits(q);
        let mut pi = vec![0.0; NS * NA];
        for s in 0..NS {
            let l = lse(&z[s * NA..(s + 1) * NA]);
            for a in 0..NA {
                pi[s * NA + a] = (z[s * NA + a] - l).exp();
            }
        }
        pi
    }

    fn state_probs(pi: &[f64]) -> Vec<f64> {
        let mut p = vec![0.0; NS];
        p[0] = 1.0;
        for s in 0..7 {
            p[2 * s + 1] = p[s] * pi[s * NA];
            p[2 * s + 2] = p[s] * pi[s * NA + 1];
        }
        p
    }

    /// d(s, a) = γ^|s| P(s) π(a|s).
    pub fn occupancy(pi: &[f64], gamma: f64) -> Vec<f64> {
        let p = state_probs(pi);
        (0..NS * NA)
            .map(|k| gamma.powi(depth(k / NA)) * p[k / NA] * pi[k])
            .collect()
    }

    /// Total variation between the sequence distributions of two policies.
    pub fn tv(pi: &[f64], pe: &[f64]) -> f64 {
        let (a, b) = (state_probs(pi), state_probs(pe));
        0.5 * (0..NS)
            .map(|s| (a[s] * pi[s * NA + EOS_A] - b[s] * pe[s * NA + EOS_A]).abs())
            .sum::<f64>()
    }

    fn transitions(de: &[f64], dpi: &[f64]) -> Vec<Transition> {
        let mut ts = vec![];
        for s in 0..NS {
            for a in 0..NA {
                if allowed(s, a) {
                    ts.push(Transition {
                        at: s,
                        action: a,
                        next: (a != EOS_A).then_some(2 * s + 1 + a),
                        data: de[s * NA + a],
                        policy: dpi[s * NA + a],
                    });
                }
            }
        }
        ts
    }

    /// The "peaked" conditionals of papers.md (rows [a, b, EOS]).
    pub fn peaked() -> Vec<f64> {
        let table: [(usize, [f64; 3]); 7] = [
            (0, [0.80, 0.15, 0.05]),
            (1, [0.10, 0.85, 0.05]),
            (2, [0.30, 0.30, 0.40]),
            (3, [0.05, 0.05, 0.90]),
            (4, [0.90, 0.05, 0.05]),
            (5, [0.20, 0.20, 0.60]),
            (6, [0.45, 0.45, 0.10]),
        ];
        let mut p = vec![0.0; NS * NA];
        for (s, row) in table {
            p[s * NA..(s + 1) * NA].copy_from_slice(&row);
        }
        for s in 7..NS {
            p[s * NA + EOS_A] = 1.0;
        }
        p
    }

    /// How the policy occupancy enters the loss.
    #[derive(Clone, Copy, PartialEq)]
    pub enum PolicyGrad {
        /// Held fixed at the current policy, refreshed every step (a
        /// rollout buffer): what the objective does.
        StopGrad,
        /// Differentiated through (the negative control), by central
        /// finite differences of the whole loss.
        Full,
    }

    /// The loss at `q` and its gradient.
    fn loss_grad(sm: &SequenceMatch, q: &[f64], de: &[f64], mode: PolicyGrad) -> (f64, Vec<f64>) {
        let z = logits(q);
        let dpi = occupancy(&policy(q), sm.gamma);
        let (l, mut g) = sm_loss(sm, &z, NA, &transitions(de, &dpi));
        if mode == PolicyGrad::Full {
            let h = 1e-6;
            let mut qq = q.to_vec();
            for k in 0..q.len() {
                if !allowed(k / NA, k % NA) {
                    continue;
                }
                let at = |qq: &[f64]| {
                    let dpi = occupancy(&policy(qq), sm.gamma);
                    sm_loss(sm, &logits(qq), NA, &transitions(de, &dpi)).0
                };
                qq[k] = q[k] + h;
                let up = at(&qq);
                qq[k] = q[k] - h;
                let down = at(&qq);
                qq[k] = q[k];
                g[k] = (up - down) / (2.0 * h);
            }
        }
        for (k, gk) in g.iter_mut().enumerate() {
            if !allowed(k / NA, k % NA) {
                *gk = 0.0;
            }
        }
        (l, g)
    }

    /// Adam from Q = 0 with a learning rate decayed from 0.05 to 1e-6
    /// over `steps` (papers.md: a constant rate spikes after ~1500 steps).
    pub fn minimise(steps: usize, mut grad: impl FnMut(&[f64]) -> Vec<f64>) -> Vec<f64> {
        let decay = (2e-5f64).powf(1.0 / steps as f64);
        let mut q = vec![0.0; NS * NA];
        let (mut m, mut v) = (vec![0.0; q.len()], vec![0.0; q.len()]);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-12);
        let mut lr = 0.05;
        for t in 1..=steps {
            let g = grad(&q);
            for k in 0..q.len() {
                m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                let mh = m[k] / (1.0 - b1.powi(t as i32));
                let vh = v[k] / (1.0 - b2.powi(t as i32));
                q[k] -= lr * mh / (vh.sqrt() + eps);
            }
            lr *= decay;
        }
        q
    }

    pub fn solve(sm: &SequenceMatch, pe: &[f64], mode: PolicyGrad, steps: usize) -> Vec<f64> {
        let de = occupancy(pe, sm.gamma);
        minimise(steps, |q| loss_grad(sm, q, &de, mode).1)
    }

    /// max over allowed (s, a) of |∂L/∂r|: -d_E φ'(r) + 2 c r + d_π at
    /// the current policy (0 at a stationary point, see papers.md).
    pub fn stationarity_residual(sm: &SequenceMatch, q: &[f64], pe: &[f64]) -> f64 {
        let de = occupancy(pe, sm.gamma);
        let dpi = occupancy(&policy(q), sm.gamma);
        let z = logits(q);
        let v: Vec<f64> = (0..NS).map(|s| lse(&z[s * NA..(s + 1) * NA])).collect();
        let mut worst = 0.0f64;
        for s in 0..NS {
            for a in 0..NA {
                if !allowed(s, a) {
                    continue;
                }
                let k = s * NA + a;
                let vn = if a == EOS_A {
                    sm.v_terminal
                } else {
                    v[2 * s + 1 + a]
                };
                let r = q[k] - sm.gamma * vn;
                let c = match sm.divergence {
                    Divergence::Chi2 => de[k],
                    Divergence::Chi2Mix => 0.5 * (de[k] + dpi[k]),
                    _ => 0.0,
                } / (4.0 * sm.alpha);
                let res = -de[k] * dphi_ref(sm.divergence, r) + 2.0 * c * r + dpi[k];
                worst = worst.max(res.abs());
            }
        }
        worst
    }

    pub fn sm(
        divergence: Divergence,
        alpha: f64,
        gamma: f64,
        v_terminal: f64,
        value_over: ValueOver,
    ) -> SequenceMatch {
        SequenceMatch {
            divergence,
            alpha,
            gamma,
            v_terminal,
            value_over,
            lambda: 1.0,
        }
    }
}

use tabular::{peaked, policy, solve, stationarity_residual, tv, PolicyGrad};

#[test]
fn tabular_mle_recovers_the_data_distribution() {
    // one position per allowed (s, a), weight P_E(s) π_E(a|s) (undiscounted)
    let pe = peaked();
    let occ = tabular::occupancy(&pe, 1.0);
    let pairs: Vec<usize> = (0..tabular::NS * tabular::NA)
        .filter(|&k| occ[k] > 0.0)
        .collect();
    let n = pairs.len();
    let batch = Batch {
        batch: 1,
        seq: n,
        ids: vec![0; n],
        targets: pairs.iter().map(|k| k % tabular::NA).collect(),
        weights: pairs.iter().map(|&k| occ[k] as f32).collect(),
        completion: vec![true; n],
        positions: vec![0; n],
        mask: vec![0.0; n * n],
    };
    let q = tabular::minimise(3000, |q| {
        let z: Vec<f32> = pairs
            .iter()
            .flat_map(|k| {
                let s = k / tabular::NA;
                (0..tabular::NA).map(move |a| {
                    if a == 2 || s < 7 {
                        q[s * tabular::NA + a] as f32
                    } else {
                        -1e30
                    }
                })
            })
            .collect();
        let (_, g) = Mle
            .loss_and_grad(&z, &TrainBatch::Tokens(batch.clone()))
            .unwrap();
        let mut out = vec![0.0; q.len()];
        for (p, k) in pairs.iter().enumerate() {
            let s = k / tabular::NA;
            for a in 0..tabular::NA {
                out[s * tabular::NA + a] += g[p * tabular::NA + a] as f64;
            }
        }
        out
    });
    let d = tv(&policy(&q), &pe);
    assert!(d < 1e-4, "MLE: TV {d}");
}

#[test]
fn tabular_linear_form_recovers_the_data_distribution() {
    let pe = peaked();
    for value_over in [ValueOver::Data, ValueOver::Mixture] {
        let sm = tabular::sm(Divergence::Linear, 1.0, 0.9, 1.0, value_over);
        let q = solve(&sm, &pe, PolicyGrad::StopGrad, 3000);
        let d = tv(&policy(&q), &pe);
        assert!(d < 1e-4, "linear, value over {value_over:?}: TV {d}");
    }
}

#[test]
fn tabular_gradient_through_the_policy_occupancy_biases_length() {
    // the negative control: with d_pi differentiated, V_term != 0 and
    // gamma < 1 the value term tilts sequence length (papers.md: TV 1.5e-2)
    let pe = peaked();
    let sm = tabular::sm(Divergence::Linear, 1.0, 0.9, 1.0, ValueOver::Mixture);
    let q = solve(&sm, &pe, PolicyGrad::Full, 2500);
    let d = tv(&policy(&q), &pe);
    assert!(
        d > 5e-3,
        "gradient through d_pi: TV {d} (expected a length bias)"
    );
}

#[test]
fn tabular_divergences_reach_their_stationary_point_not_the_data() {
    let pe = peaked();
    let cases = [
        (Divergence::Chi2, 0.5, ValueOver::Data),
        (Divergence::Chi2, 5.0, ValueOver::Mixture),
        (Divergence::Chi2Mix, 5.0, ValueOver::Mixture),
        (Divergence::Kl, 1.0, ValueOver::Data),
        (Divergence::Js, 1.0, ValueOver::Mixture),
        (Divergence::ReverseKl, 1.0, ValueOver::Data),
    ];
    for (div, alpha, value_over) in cases {
        let sm = tabular::sm(div, alpha, 0.9, 1.0, value_over);
        let q = solve(&sm, &pe, PolicyGrad::StopGrad, 30000);
        let res = stationarity_residual(&sm, &q, &pe);
        let d = tv(&policy(&q), &pe);
        eprintln!("{div} alpha {alpha} value over {value_over:?}: residual {res:.2e}, TV {d:.4}");
        assert!(
            res < 1e-6,
            "{div} alpha {alpha}: stationarity residual {res}"
        );
        assert!(
            d > 1e-3,
            "{div} alpha {alpha}: TV {d} (a divergence alone is biased)"
        );
    }
}

#[test]
fn tabular_chi2_distance_falls_as_alpha_grows() {
    let pe = peaked();
    let tvs: Vec<f64> = [0.5, 5.0, 50.0]
        .iter()
        .map(|&alpha| {
            let sm = tabular::sm(Divergence::Chi2, alpha, 0.9, 0.0, ValueOver::Data);
            tv(&policy(&solve(&sm, &pe, PolicyGrad::StopGrad, 4000)), &pe)
        })
        .collect();
    assert!(
        tvs[0] > tvs[1] && tvs[1] > tvs[2],
        "TV by alpha .5/5/50: {tvs:?}"
    );
}

#[test]
fn tabular_regression_values_match_the_reference() {
    // ../shared/papers.md, measured with L-BFGS in PyTorch (peaked, gamma .9)
    let pe = peaked();
    let cases = [
        (Divergence::Chi2, ValueOver::Data, 0.0, 3.188e-2),
        (Divergence::Chi2, ValueOver::Data, 1.0, 3.336e-2),
        (Divergence::Chi2Mix, ValueOver::Mixture, 0.0, 3.239e-2),
    ];
    for (div, value_over, v_terminal, want) in cases {
        let sm = tabular::sm(div, 5.0, 0.9, v_terminal, value_over);
        let d = tv(&policy(&solve(&sm, &pe, PolicyGrad::StopGrad, 30000)), &pe);
        assert!(
            (d - want).abs() < 0.01 * want,
            "{div} value over {value_over:?} V_term {v_terminal}: TV {d}, reference {want}"
        );
    }
}
