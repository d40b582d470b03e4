//! Learning-from-failures objectives (SFT, UFT, DPO, SimPO, CPO): each
//! against an independent plain-f64 reference on random inputs (proptest),
//! its gradient against central finite differences of that reference, and
//! the identities the method rests on.

use proptest::prelude::*;
use rewind::data::{Batch, LabelledBatch, PairBatch, TrainBatch};
use rewind::objectives::{sequence_logprobs, Cpo, Dpo, Objective, Sft, Simpo, Uft};

/// log softmax(z)[y] in f64.
fn logp(z: &[f64], y: usize) -> f64 {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    z[y] - (max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln())
}

/// Random rows: (rows, seq, vocab, logits, targets, completion mask).
type Rows = (usize, usize, usize, Vec<f32>, Vec<usize>, Vec<bool>);

fn rows(n_rows: impl Strategy<Value = usize>, range: f32) -> impl Strategy<Value = Rows> {
    (n_rows, 1usize..5, 2usize..7).prop_flat_map(move |(b, s, v)| {
        (
            Just(b),
            Just(s),
            Just(v),
            prop::collection::vec(-range..range, b * s * v),
            prop::collection::vec(0..v, b * s),
            prop::collection::vec(prop::bool::weighted(0.7), b * s),
        )
    })
}

fn batch(b: usize, s: usize, targets: &[usize], completion: &[bool]) -> Batch {
    let n = b * s;
    Batch {
        batch: b,
        seq: s,
        ids: vec![0; n],
        targets: targets.to_vec(),
        weights: completion.iter().map(|&c| c as u8 as f32).collect(),
        completion: completion.to_vec(),
        positions: vec![0; n],
        mask: vec![0.0; n * s],
    }
}

/// Per row, Σ over completion positions of log p (f64).
fn row_scores(l: &[f64], t: &[usize], c: &[bool], s: usize, v: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = t.len() / s;
    let (mut sum, mut len) = (vec![0.0; rows], vec![0.0; rows]);
    for at in 0..t.len() {
        if c[at] {
            sum[at / s] += logp(&l[at * v..(at + 1) * v], t[at]);
            len[at / s] += 1.0;
        }
    }
    (sum, len)
}

/// Reference UFT: (1-α) mean NLL over D+ completion tokens + α mean over D-
/// completion tokens of -ln(1 - p + 1e-8); α = 0 is SFT.
fn uft_ref(
    l: &[f64],
    t: &[usize],
    c: &[bool],
    failed: &[bool],
    s: usize,
    v: usize,
    alpha: f64,
) -> f64 {
    let (mut pos, mut np, mut neg, mut nn) = (0.0, 0.0, 0.0, 0.0);
    for at in 0..t.len() {
        if !c[at] {
            continue;
        }
        let lp = logp(&l[at * v..(at + 1) * v], t[at]);
        if failed[at / s] {
            neg += -(1.0 - lp.exp() + 1e-8).ln();
            nn += 1.0;
        } else {
            pos += -lp;
            np += 1.0;
        }
    }
    let mean = |x: f64, n: f64| if n == 0.0 { 0.0 } else { x / n };
    (1.0 - alpha) * mean(pos, np) + alpha * mean(neg, nn)
}

#[derive(Clone, Copy, Debug)]
enum Pref {
    Dpo(f64),
    Simpo(f64, f64, f64),
    Cpo(f64, f64),
}

/// Reference preference losses over `pairs` (rows i and pairs + i).
#[allow(clippy::too_many_arguments)]
fn pref_ref(
    l: &[f64],
    t: &[usize],
    c: &[bool],
    s: usize,
    v: usize,
    pairs: usize,
    refp: &[f64],
    kind: Pref,
) -> f64 {
    let (sc, len) = row_scores(l, t, c, s, v);
    let nls = |h: f64| (1.0 + (-h).exp()).ln();
    let mut loss = 0.0;
    for i in 0..pairs {
        let (a, b) = (i, pairs + i);
        let h = match kind {
            Pref::Dpo(beta) => beta * ((sc[a] - refp[a]) - (sc[b] - refp[b])),
            Pref::Simpo(beta, gamma, _) => {
                beta * (sc[a] / len[a].max(1.0) - sc[b] / len[b].max(1.0)) - gamma
            }
            Pref::Cpo(beta, _) => beta * (sc[a] - sc[b]),
        };
        loss += nls(h) / pairs as f64;
    }
    let nll_w = match kind {
        Pref::Dpo(_) => 0.0,
        Pref::Simpo(_, _, w) | Pref::Cpo(_, w) => w,
    };
    let n: f64 = len[..pairs].iter().sum();
    if nll_w > 0.0 && n > 0.0 {
        loss += -nll_w * sc[..pairs].iter().sum::<f64>() / n;
    }
    loss
}

fn crate_pref(logits: &[f32], p: &PairBatch, kind: Pref) -> (f64, Vec<f32>) {
    let batch = TrainBatch::Pairs(p.clone());
    match kind {
        Pref::Dpo(beta) => Dpo { beta }.loss_and_grad(logits, &batch),
        Pref::Simpo(beta, gamma, cpo_alpha) => Simpo {
            beta,
            gamma,
            cpo_alpha,
        }
        .loss_and_grad(logits, &batch),
        Pref::Cpo(beta, cpo_alpha) => Cpo { beta, cpo_alpha }.loss_and_grad(logits, &batch),
    }
    .unwrap()
}

/// Central differences of `f` at `x`, compared with `grad`.
fn check_fd(x: &[f32], grad: &[f32], f: impl Fn(&[f64]) -> f64) -> Result<(), TestCaseError> {
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h = 1e-5;
    for i in 0..x64.len() {
        let (mut p, mut m) = (x64.clone(), x64.clone());
        p[i] += h;
        m[i] -= h;
        let fd = (f(&p) - f(&m)) / (2.0 * h);
        prop_assert!(
            (grad[i] as f64 - fd).abs() <= 1e-4 + 1e-3 * fd.abs(),
            "logit {i}: crate {} vs fd {fd}",
            grad[i]
        );
    }
    Ok(())
}

fn pref_kind() -> impl Strategy<Value = Pref> {
    prop_oneof![
        (0.05f64..3.0).prop_map(Pref::Dpo),
        (
            0.05f64..3.0,
            0.0f64..2.0,
            prop_oneof![Just(0.0), 0.0f64..2.0]
        )
            .prop_map(|(b, g, a)| Pref::Simpo(b, g, a)),
        (0.05f64..3.0, prop_oneof![Just(1.0), 0.0f64..2.0]).prop_map(|(b, a)| Pref::Cpo(b, a)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sft_and_uft_match_f64_reference(
        (b, s, v, logits, targets, completion) in rows(1usize..5, 4.0),
        failed_bits in prop::collection::vec(any::<bool>(), 5),
        alpha in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
    ) {
        let failed = failed_bits[..b].to_vec();
        let lb = LabelledBatch { rows: batch(b, s, &targets, &completion), failed: failed.clone() };
        let tb = TrainBatch::Labelled(lb);
        let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let (got, grad) = Uft { alpha }.loss_and_grad(&logits, &tb).unwrap();
        let want = uft_ref(&l64, &targets, &completion, &failed, s, v, alpha);
        prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "uft {got} vs {want}");
        check_fd(&logits, &grad, |x| uft_ref(x, &targets, &completion, &failed, s, v, alpha))?;
        let (got, grad) = Sft.loss_and_grad(&logits, &tb).unwrap();
        let want = uft_ref(&l64, &targets, &completion, &failed, s, v, 0.0);
        prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "sft {got} vs {want}");
        check_fd(&logits, &grad, |x| uft_ref(x, &targets, &completion, &failed, s, v, 0.0))?;
    }

    /// UFT with alpha = 0 is SFT, bit for bit.
    #[test]
    fn uft_with_alpha_zero_is_sft(
        (b, s, _v, logits, targets, completion) in rows(1usize..5, 6.0),
        failed_bits in prop::collection::vec(any::<bool>(), 5),
    ) {
        let tb = TrainBatch::Labelled(LabelledBatch { rows: batch(b, s, &targets, &completion), failed: failed_bits[..b].to_vec() });
        prop_assert_eq!(Uft { alpha: 0.0 }.loss_and_grad(&logits, &tb).unwrap(), Sft.loss_and_grad(&logits, &tb).unwrap());
    }

    #[test]
    fn preference_losses_match_f64_reference(
        (b2, s, v, logits, targets, completion) in rows((1usize..4).prop_map(|p| 2 * p), 4.0),
        refs in prop::collection::vec(-8.0f64..0.0, 6),
        kind in pref_kind(),
    ) {
        let pairs = b2 / 2;
        let p = PairBatch { rows: batch(b2, s, &targets, &completion), pairs, ref_logp: refs[..b2].to_vec() };
        let (got, grad) = crate_pref(&logits, &p, kind);
        let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let want = pref_ref(&l64, &targets, &completion, s, v, pairs, &p.ref_logp, kind);
        prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{kind:?}: {got} vs {want}");
        check_fd(&logits, &grad, |x| pref_ref(x, &targets, &completion, s, v, pairs, &p.ref_logp, kind))?;
    }
}

/// One pair of rows (prompt position, then two completion positions).
fn one_pair(v: usize) -> (Vec<f32>, PairBatch) {
    let (s, b2) = (3, 2);
    let completion = vec![false, true, true, false, true, true];
    let targets = vec![1, 2, 3, 1, 0, 3];
    let logits: Vec<f32> = (0..b2 * s * v)
        .map(|i| ((i * 7 % 11) as f32 * 0.37).sin() * 2.0)
        .collect();
    (
        logits,
        PairBatch {
            rows: batch(b2, s, &targets, &completion),
            pairs: 1,
            ref_logp: vec![],
        },
    )
}

#[test]
fn dpo_is_log_2_at_the_reference_and_its_gradient_raises_the_chosen_margin() {
    let v = 5;
    let (logits, mut p) = one_pair(v);
    p.ref_logp = sequence_logprobs(&logits, &p.rows).unwrap();
    let dpo = Dpo { beta: 0.5 };
    let (loss, grad) = dpo
        .loss_and_grad(&logits, &TrainBatch::Pairs(p.clone()))
        .unwrap();
    assert!((loss - std::f64::consts::LN_2).abs() < 1e-9, "{loss}");
    let margin = |l: &[f32]| {
        let s = sequence_logprobs(l, &p.rows).unwrap();
        (s[0] - p.ref_logp[0]) - (s[1] - p.ref_logp[1])
    };
    let stepped: Vec<f32> = logits.iter().zip(&grad).map(|(z, g)| z - 0.1 * g).collect();
    assert!(
        margin(&stepped) > margin(&logits) + 1e-4,
        "{} -> {}",
        margin(&logits),
        margin(&stepped)
    );
    let (after, _) = dpo.loss_and_grad(&stepped, &TrainBatch::Pairs(p)).unwrap();
    assert!(after < loss);
}

#[test]
fn dpo_without_reference_scores_is_an_error() {
    let (logits, p) = one_pair(5);
    let e = Dpo { beta: 0.1 }
        .loss_and_grad(&logits, &TrainBatch::Pairs(p))
        .unwrap_err();
    assert!(e.to_string().contains("reference"), "{e}");
}

#[test]
fn prompt_and_padding_positions_get_zero_gradient() {
    let v = 5;
    let (logits, mut p) = one_pair(v);
    p.ref_logp = vec![-3.0, -4.0];
    let masked = |grad: &[f32]| {
        [0usize, 3]
            .iter()
            .all(|&at| grad[at * v..(at + 1) * v].iter().all(|&g| g == 0.0))
    };
    for kind in [
        Pref::Dpo(0.3),
        Pref::Simpo(2.0, 0.5, 1.0),
        Pref::Cpo(0.1, 1.0),
    ] {
        let (_, g) = crate_pref(&logits, &p, kind);
        assert!(masked(&g), "{kind:?}: {g:?}");
        assert!(g.iter().any(|&x| x != 0.0));
    }
    let lb = TrainBatch::Labelled(LabelledBatch {
        rows: p.rows.clone(),
        failed: vec![false, true],
    });
    let (_, g) = Uft { alpha: 0.3 }.loss_and_grad(&logits, &lb).unwrap();
    assert!(masked(&g), "{g:?}");
}

#[test]
fn unlikelihood_stays_finite_as_p_goes_to_one() {
    // position 0: p = 1 in f32 and f64; 1: p = 1 in f32; 2: 1 - p ~ 2e-5
    let (s, v) = (3, 4);
    let targets = vec![2, 1, 0];
    let mut logits = vec![0.0f32; s * v];
    logits[2] = 1e4;
    logits[v + 1] = 50.0;
    logits[2 * v] = 12.0;
    let lb = LabelledBatch {
        rows: batch(1, s, &targets, &[true, true, true]),
        failed: vec![true],
    };
    let (loss, grad) = Uft { alpha: 1.0 }
        .loss_and_grad(&logits, &TrainBatch::Labelled(lb))
        .unwrap();
    let bound = -(1e-8f64).ln();
    assert!(
        loss.is_finite() && loss <= bound + 1e-9 && loss > 0.5 * bound,
        "{loss}"
    );
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
    // pushing the failed tokens down: their logits' gradients are >= 0
    // (exactly 0 once p rounds to 1: ∂p/∂z = p (1 - p) vanishes there)
    assert!(
        grad[2] >= 0.0 && grad[v + 1] >= 0.0 && (grad[2 * v] - 1.0 / 3.0).abs() < 1e-2,
        "{grad:?}"
    );
}
