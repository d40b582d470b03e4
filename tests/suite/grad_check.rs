//! The fused CPU training path against mathematics, not against the
//! composite dfdx path (which `fused.rs` covers):
//!
//! - its loss equals the independent f64 transformer of `reference_model`;
//! - every parameter's gradient equals central finite differences of that
//!   f64 loss (tiny models, scaled-up weights, a backspace-style mask and
//!   non-trivial position ids);
//! - a batch's gradient is the loss-weight-share-weighted sum of its
//!   sub-batches' gradients (the loss is a weighted mean, and padding each
//!   sub-batch to its own longest row changes nothing), also at a size where
//!   the fused path's activations come from pooled buffers.

use std::ops::Range;

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use rewind::data::{Batch, Example, TrainBatch, MASKED};
use rewind::model::{Dropout, ModelConfig, PositionKind, Transformer};
use rewind::objectives::Mle;

use crate::reference_model::{reference_loss, Param, RefBatch};

// ------------------------------------------------------------- adapters
// Every call into the crate's model and training API is in these three
// functions, so an API change is re-pointed here.

/// Sizes of a test model.
#[derive(Clone, Copy, Debug)]
struct Spec {
    vocab: usize,
    d_model: usize,
    heads: usize,
    layers: usize,
    ff: usize,
    max_len: usize,
    sinusoidal: bool,
}

/// A model of `spec` whose parameters are drawn at a scale where gradients
/// are not tiny: weights and embeddings N(0, 0.3), biases N(0, 0.1), gains
/// 1 + N(0, 0.1).
fn build_model(spec: &Spec, seed: u64) -> Transformer<Cpu> {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        vocab_size: spec.vocab,
        d_model: spec.d_model,
        n_heads: spec.heads,
        n_layers: spec.layers,
        d_ff: spec.ff,
        max_len: spec.max_len,
        dropout: 0.0,
        positions: if spec.sinusoidal {
            PositionKind::Sinusoidal
        } else {
            PositionKind::Learned
        },
    };
    let mut model = Transformer::new_any_vocab(&cfg, &dev, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37);
    let names: Vec<String> = model.params().into_iter().map(|(n, _)| n).collect();
    for (name, p) in names.iter().zip(model.params_mut()) {
        let (r, c) = *p.shape();
        let (mean, std) = if name.ends_with(".gain") {
            (1.0, 0.1)
        } else if name.ends_with(".bias") {
            (0.0, 0.1)
        } else {
            (0.0, 0.3)
        };
        let n = Normal::new(mean, std).unwrap();
        let v: Vec<f32> = (0..r * c).map(|_| n.sample(&mut rng)).collect();
        *p = dev.tensor_from_vec(v, (r, c));
    }
    model
}

/// Every parameter as `(name, rows, cols, values)`, in the order of
/// [`fused_gradients`].
fn named_params(model: &Transformer<Cpu>) -> Vec<(String, usize, usize, Vec<f32>)> {
    model
        .params()
        .into_iter()
        .map(|(name, t)| {
            let (r, c) = *t.shape();
            (name, r, c, t.as_vec())
        })
        .collect()
}

/// The fused CPU path's MLE loss of `batch` and every parameter's gradient,
/// in [`named_params`] order.
fn fused_gradients(model: &Transformer<Cpu>, batch: &Batch) -> (f64, Vec<Vec<f32>>) {
    rewind::train::gradients(
        model,
        &TrainBatch::Tokens(batch.clone()),
        &Mle,
        &mut Dropout::off(),
    )
    .unwrap()
}

// -------------------------------------------------------------- helpers

fn to_ref_params(model: &Transformer<Cpu>) -> Vec<Param> {
    named_params(model)
        .into_iter()
        .map(|(name, rows, cols, v)| Param {
            name,
            rows,
            cols,
            data: v.into_iter().map(f64::from).collect(),
        })
        .collect()
}

fn to_ref_batch(b: &Batch) -> RefBatch {
    RefBatch {
        batch: b.batch,
        seq: b.seq,
        ids: b.ids.clone(),
        targets: b.targets.clone(),
        weights: b.weights.iter().map(|&w| w as f64).collect(),
        positions: b.positions.clone(),
        mask: b.mask.iter().map(|&m| m as f64).collect(),
    }
}

fn norm<T: Copy + Into<f64>>(v: &[T]) -> f64 {
    v.iter()
        .map(|&x| {
            let x: f64 = x.into();
            x * x
        })
        .sum::<f64>()
        .sqrt()
}

/// Central finite differences of the f64 reference loss with respect to
/// every parameter scalar.
fn finite_difference_grads(params: &[Param], heads: usize, batch: &RefBatch) -> Vec<Vec<f64>> {
    const H: f64 = 1e-5;
    let mut p = params.to_vec();
    let mut out = Vec::with_capacity(p.len());
    for i in 0..p.len() {
        let mut g = vec![0.0; p[i].data.len()];
        for (e, ge) in g.iter_mut().enumerate() {
            let orig = p[i].data[e];
            p[i].data[e] = orig + H;
            let up = reference_loss(&p, heads, batch);
            p[i].data[e] = orig - H;
            let down = reference_loss(&p, heads, batch);
            p[i].data[e] = orig;
            *ge = (up - down) / (2.0 * H);
        }
        out.push(g);
    }
    out
}

/// Two rows of 6 with loss weights 0, 0.5, 1, 1.5, 2, and non-trivial
/// position ids.
///
/// Row 0 is backspace-style: `a b X <bksp> c d` where `<bksp>` deletes `X`,
/// so the later queries `c`, `d` see neither `X` nor `<bksp>`, and `c`, `d`
/// take the position ids of the deleted `X`, `<bksp>` (positions
/// 0 1 2 3 2 3). Row 1 is causal with positions starting at 3 (as after a
/// left offset). Every query sees at least itself.
fn grad_batch(spec: &Spec, seed: u64) -> Batch {
    let (b, s) = (2, 6);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mask = vec![MASKED; b * s * s];
    for r in 0..b {
        for i in 0..s {
            for j in 0..=i {
                let deleted = r == 0 && i >= 4 && (j == 2 || j == 3);
                if !deleted {
                    mask[(r * s + i) * s + j] = 0.0;
                }
            }
        }
    }
    let positions = vec![0, 1, 2, 3, 2, 3, 3, 4, 5, 6, 7, 8];
    assert!(positions.iter().all(|&p| p < spec.max_len));
    Batch {
        batch: b,
        seq: s,
        ids: (0..b * s).map(|_| rng.gen_range(0..spec.vocab)).collect(),
        targets: (0..b * s).map(|_| rng.gen_range(0..spec.vocab)).collect(),
        weights: vec![0.0, 0.0, 1.0, 0.5, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 1.5, 1.0],
        completion: vec![true; b * s],
        positions,
        mask,
    }
}

const ONE_LAYER: Spec = Spec {
    vocab: 11,
    d_model: 8,
    heads: 2,
    layers: 1,
    ff: 16,
    max_len: 10,
    sinusoidal: false,
};

const TWO_LAYERS: Spec = Spec {
    layers: 2,
    ..ONE_LAYER
};

const SINUSOIDAL: Spec = Spec {
    sinusoidal: true,
    ..ONE_LAYER
};

/// (a) The fused loss equals the f64 reference loss to 1e-5 relative.
fn check_loss(spec: &Spec, seed: u64) {
    let model = build_model(spec, seed);
    let batch = grad_batch(spec, seed);
    let (fused, _) = fused_gradients(&model, &batch);
    let reference = reference_loss(&to_ref_params(&model), spec.heads, &to_ref_batch(&batch));
    let rel = (fused - reference).abs() / reference.abs();
    assert!(
        rel < 1e-5,
        "{spec:?}: fused loss {fused} vs f64 reference {reference} (rel {rel:e})"
    );
}

/// (b) Every parameter's fused gradient equals central finite differences
/// of the f64 reference: `‖g − g_fd‖ / max(‖g_fd‖, 1e-8) < 1e-3`.
///
/// One exception, forced by the maths: a key bias adds `q_i·b` to every
/// score of query `i`, which softmax ignores, so its exact gradient is 0 and
/// the relative error is undefined. For it the finite difference must be
/// ~0 and the fused gradient rounding noise (< 1e-6 of the model's gradient
/// norm).
fn check_gradients(spec: &Spec, seed: u64) {
    let model = build_model(spec, seed);
    let batch = grad_batch(spec, seed);
    let (_, fused) = fused_gradients(&model, &batch);
    let params = to_ref_params(&model);
    let fd = finite_difference_grads(&params, spec.heads, &to_ref_batch(&batch));
    assert_eq!(fused.len(), params.len(), "one gradient per parameter");
    let global = norm(&fd.concat());
    assert!(global > 1e-2, "gradients too small to test: {global}");
    let mut report = Vec::new();
    let mut failed = false;
    for ((p, g), gfd) in params.iter().zip(&fused).zip(&fd) {
        assert_eq!(g.len(), gfd.len(), "{}: gradient length", p.name);
        let diff: Vec<f64> = g.iter().zip(gfd).map(|(&a, &b)| a as f64 - b).collect();
        let (nd, nfd, ng) = (norm(&diff), norm(gfd), norm(g));
        let ok = if p.name.ends_with("wk.bias") {
            nfd < 1e-8 * global && ng < 1e-6 * global
        } else {
            nd / nfd.max(1e-8) < 1e-3
        };
        failed |= !ok;
        report.push(format!(
            "{}{:<24} |g| {ng:.3e}  |g_fd| {nfd:.3e}  rel {:.3e}",
            if ok { "  " } else { "✗ " },
            p.name,
            nd / nfd.max(1e-8)
        ));
    }
    assert!(
        !failed,
        "{spec:?}: fused gradients vs f64 finite differences:\n{}",
        report.join("\n")
    );
}

#[test]
fn fused_loss_equals_f64_reference_one_layer() {
    check_loss(&ONE_LAYER, 1);
}

#[test]
fn fused_loss_equals_f64_reference_two_layers() {
    check_loss(&TWO_LAYERS, 2);
}

#[test]
fn fused_loss_equals_f64_reference_sinusoidal_positions() {
    check_loss(&SINUSOIDAL, 3);
}

#[test]
fn every_fused_gradient_equals_finite_differences_one_layer() {
    check_gradients(&ONE_LAYER, 1);
}

#[test]
fn every_fused_gradient_equals_finite_differences_two_layers() {
    check_gradients(&TWO_LAYERS, 2);
}

#[test]
fn every_fused_gradient_equals_finite_differences_sinusoidal_positions() {
    check_gradients(&SINUSOIDAL, 3);
}

// ------------------------------------------------- batch composition

/// `n` prompt/completion examples with token ids in 3..vocab, of lengths
/// between `min_len` and `max_len` tokens (with `<bos>`, `<eos>`), the
/// first one `max_len` long.
fn examples(n: usize, vocab: usize, min_len: usize, max_len: usize, seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = if i == 0 {
                max_len
            } else {
                rng.gen_range(min_len..=max_len)
            };
            let body = len - 2;
            let prompt_len = rng.gen_range(0..body);
            let toks: Vec<u32> = (0..body).map(|_| rng.gen_range(3..vocab as u32)).collect();
            Example::prompt_completion(&toks[..prompt_len], &toks[prompt_len..])
        })
        .collect()
}

/// The fused gradient of the whole batch equals `Σ_k (W_k / W) · g_k` over
/// sub-batches `k` (each built with `Batch::causal`, so padded to its own
/// longest row), where `W_k` is a sub-batch's loss-weight sum and `W` the
/// batch's; the same for the loss. The whole batch is computed again after
/// the sub-batches (its buffers then come back from the pool holding the
/// sub-batches' values) and must give the same gradients bit for bit.
fn check_composition(spec: &Spec, exs: &[Example], groups: &[Range<usize>], seed: u64) {
    let model = build_model(spec, seed);
    let full = Batch::causal(exs);
    let (loss, grads) = fused_gradients(&model, &full);
    let total_w = full.weight_sum() as f64;
    assert!(total_w > 0.0);
    let mut sum_loss = 0.0;
    let mut sum: Vec<Vec<f64>> = grads.iter().map(|g| vec![0.0; g.len()]).collect();
    let mut seqs = Vec::new();
    for g in groups {
        let sub = Batch::causal(&exs[g.clone()]);
        seqs.push(sub.seq);
        let share = sub.weight_sum() as f64 / total_w;
        let (l, gs) = fused_gradients(&model, &sub);
        sum_loss += share * l;
        for (acc, gp) in sum.iter_mut().zip(&gs) {
            for (a, &x) in acc.iter_mut().zip(gp) {
                *a += share * x as f64;
            }
        }
    }
    assert!(
        seqs.iter().any(|&s| s < full.seq),
        "some sub-batch must be padded less than the batch ({seqs:?} vs {})",
        full.seq
    );
    assert!(
        (loss - sum_loss).abs() <= 1e-5 * loss.abs(),
        "loss {loss} vs weighted sum of sub-batch losses {sum_loss}"
    );
    let global = norm(&grads.concat());
    let names: Vec<String> = named_params(&model).into_iter().map(|p| p.0).collect();
    let mut bad = Vec::new();
    for ((name, g), s) in names.iter().zip(&grads).zip(&sum) {
        let diff: Vec<f64> = g.iter().zip(s).map(|(&a, &b)| a as f64 - b).collect();
        // relative to the parameter's own gradient norm; a key bias's exact
        // gradient is 0 (see `check_gradients`), so it is held to the
        // model's gradient norm
        let scale = if name.ends_with("wk.bias") {
            global
        } else {
            norm(g)
        };
        let rel = norm(&diff) / scale.max(1e-12);
        if rel >= 1e-5 {
            bad.push(format!("{name}: rel {rel:.3e} (|g| {:.3e})", norm(g)));
        }
    }
    assert!(
        bad.is_empty(),
        "batch gradient != weighted sum of sub-batch gradients:\n{}",
        bad.join("\n")
    );
    let (loss_again, grads_again) = fused_gradients(&model, &full);
    assert_eq!(loss, loss_again, "the same batch twice: loss");
    for (name, (a, b)) in names.iter().zip(grads.iter().zip(&grads_again)) {
        assert!(a == b, "the same batch twice: {name} differs");
    }
}

#[test]
fn batch_gradient_is_weight_share_sum_of_sub_batch_gradients() {
    let spec = Spec {
        vocab: 30,
        max_len: 12,
        ..ONE_LAYER
    };
    let exs = examples(5, spec.vocab, 4, 10, 11);
    check_composition(&spec, &exs, &[0..2, 2..3, 3..5], 4);
}

/// The same at batch 16 × seq 16 × d_model 32 (rows · d_model = 8192, so
/// the fused path takes its activation buffers from the pool), split into
/// sub-batches of 10 and 6 rows. The vocabulary and position table
/// (130 × 32 = 4160) are large enough that the embedding gradients, which
/// are accumulated by scatter-add, also come from the pool.
#[test]
fn batch_gradient_is_weight_share_sum_of_sub_batch_gradients_pooled() {
    let spec = Spec {
        vocab: 130,
        d_model: 32,
        heads: 4,
        layers: 2,
        ff: 64,
        max_len: 130,
        sinusoidal: false,
    };
    // the first row is the longest (17 tokens: seq 16); rows 10..16 are
    // shorter, so their sub-batch is padded less
    let mut exs = examples(10, spec.vocab, 5, 17, 12);
    exs.extend(examples(6, spec.vocab, 5, 12, 13));
    let full = Batch::causal(&exs);
    assert_eq!((full.batch, full.seq), (16, 16));
    assert!(full.batch * full.seq * spec.d_model >= 4096);
    check_composition(&spec, &exs, &[0..10, 10..16], 5);
}
