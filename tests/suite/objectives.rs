//! Loss correctness: each objective against an independent plain-f64
//! reference on random inputs (proptest), and its gradient against central
//! finite differences of that reference.

use proptest::prelude::*;
use rewind::data::{Batch, BatchKind, PairBatch, TrainBatch};
use rewind::objectives::{sequence_logprobs, Mle, Objective, ObjectiveError};

/// Independent reference: -Σ w_t log softmax(z_t)[y_t] / Σ w_t, in f64.
fn mle_reference(logits: &[f64], targets: &[usize], weights: &[f64], vocab: usize) -> f64 {
    let mut total = 0.0;
    for (t, (&y, &w)) in targets.iter().zip(weights).enumerate() {
        let z = &logits[t * vocab..(t + 1) * vocab];
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += w * (z[y] - lse);
    }
    let wsum: f64 = weights.iter().sum();
    if wsum == 0.0 {
        0.0
    } else {
        -total / wsum
    }
}

/// Random (batch, seq, vocab) logits with targets and weights (some zero).
fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<usize>, Vec<f32>)> {
    (1usize..4, 1usize..6, 2usize..9).prop_flat_map(|(b, s, v)| {
        (
            Just(b),
            Just(s),
            Just(v),
            prop::collection::vec(-6.0f32..6.0, b * s * v),
            prop::collection::vec(0..v, b * s),
            prop::collection::vec(prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..2.0], b * s),
        )
    })
}

/// The crate's MLE objective on a token batch with these targets and weights.
fn crate_mle(
    b: usize,
    s: usize,
    _v: usize,
    logits: &[f32],
    targets: &[usize],
    weights: &[f32],
) -> (f64, Vec<f32>) {
    let n = b * s;
    let batch = Batch {
        batch: b,
        seq: s,
        ids: vec![0; n],
        targets: targets.to_vec(),
        weights: weights.to_vec(),
        completion: weights.iter().map(|&w| w > 0.0).collect(),
        positions: vec![0; n],
        mask: vec![0.0; n * s],
    };
    Mle.loss_and_grad(logits, &TrainBatch::Tokens(batch))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mle_loss_matches_f64_reference((b, s, v, logits, targets, weights) in case()) {
        let (got, _) = crate_mle(b, s, v, &logits, &targets, &weights);
        let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let w64: Vec<f64> = weights.iter().map(|&x| x as f64).collect();
        let want = mle_reference(&l64, &targets, &w64, v);
        prop_assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "crate {got} vs reference {want}");
    }

    #[test]
    fn mle_gradient_matches_finite_differences((b, s, v, logits, targets, weights) in case()) {
        let (_, grad) = crate_mle(b, s, v, &logits, &targets, &weights);
        let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let w64: Vec<f64> = weights.iter().map(|&x| x as f64).collect();
        let h = 1e-5;
        for i in 0..l64.len() {
            let mut plus = l64.clone();
            plus[i] += h;
            let mut minus = l64.clone();
            minus[i] -= h;
            let fd = (mle_reference(&plus, &targets, &w64, v) - mle_reference(&minus, &targets, &w64, v)) / (2.0 * h);
            prop_assert!((grad[i] as f64 - fd).abs() <= 1e-4 + 1e-3 * fd.abs(), "logit {i}: crate {} vs fd {fd}", grad[i]);
        }
    }
}

#[test]
fn zero_weight_tokens_get_zero_gradient() {
    let (b, s, v) = (1, 3, 4);
    let logits: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
    let (_, grad) = crate_mle(b, s, v, &logits, &[1, 2, 3], &[1.0, 0.0, 1.0]);
    assert!(grad[4..8].iter().all(|&g| g == 0.0), "{grad:?}");
    assert!(grad[0..4].iter().any(|&g| g != 0.0));
}

#[test]
fn objective_rejects_a_batch_of_the_wrong_kind() {
    let pair = PairBatch::new(
        &[rewind::data::Example::prompt_completion(&[10], &[11])],
        &[rewind::data::Example::prompt_completion(&[10], &[12])],
    );
    let n = pair.rows.batch * pair.rows.seq;
    let err = Mle
        .loss_and_grad(&vec![0.0; n * 100], &TrainBatch::Pairs(pair))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ObjectiveError::WrongBatch {
                expected: BatchKind::Tokens,
                got: BatchKind::Pairs,
                ..
            }
        ),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sequence log-probabilities (preference objectives' scores) equal an
    /// f64 sum over the completion positions of each row.
    #[test]
    fn sequence_logprobs_match_f64_reference((b, s, v, logits, targets, weights) in case()) {
        let n = b * s;
        let completion: Vec<bool> = weights.iter().map(|&w| w > 0.5).collect();
        let batch = Batch {
            batch: b,
            seq: s,
            ids: vec![0; n],
            targets: targets.clone(),
            weights: weights.clone(),
            completion: completion.clone(),
            positions: vec![0; n],
            mask: vec![0.0; n * s],
        };
        let got = sequence_logprobs(&logits, &batch).unwrap();
        for (r, got_r) in got.iter().enumerate() {
            let mut want = 0.0f64;
            for t in r * s..(r + 1) * s {
                if completion[t] {
                    let z: Vec<f64> = logits[t * v..(t + 1) * v].iter().map(|&x| x as f64).collect();
                    let lse = z.iter().map(|x| x.exp()).sum::<f64>().ln();
                    want += z[targets[t]] - lse;
                }
            }
            prop_assert!((got_r - want).abs() <= 1e-9 * (1.0 + want.abs()), "row {r}: {} vs {want}", got_r);
        }
    }
}
