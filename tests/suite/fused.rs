//! The fused CPU path (`Transformer::forward`, `forward_train`, `train_step`)
//! against the composite dfdx path it replaces (`forward_reference`,
//! `forward_train_reference`, `train_step_reference`): the same logits, the
//! same gradient for every parameter, and the same training trajectory, on
//! random tiny models with random weights, masks and position ids.

use dfdx::prelude::*;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use rewind::data::{Batch, Example, TrainBatch, MASKED};
use rewind::model::{Dropout, Inputs, ModelConfig, PositionKind, Transformer};
use rewind::objectives::Mle;
use rewind::train::optim::{AdamW, AdamWConfig};
use rewind::train::{gradients, reference, train_step, Backend, StepSpec};

/// A tiny model with every parameter random (gains around 1, weights large
/// enough that attention is far from uniform).
fn random_model(cfg: &ModelConfig, seed: u64) -> Transformer<Cpu> {
    let dev: Cpu = Default::default();
    let mut model = Transformer::new_any_vocab(cfg, &dev, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let names: Vec<String> = model.params().into_iter().map(|(n, _)| n).collect();
    for (name, p) in names.iter().zip(model.params_mut()) {
        let (r, c) = *p.shape();
        let v: Vec<f32> = if name.ends_with(".gain") {
            (0..r * c).map(|_| rng.gen_range(0.5..1.5)).collect()
        } else {
            let n = Normal::new(0.0f32, 0.5).unwrap();
            (0..r * c).map(|_| n.sample(&mut rng)).collect()
        };
        *p = dev.tensor_from_vec(v, (r, c));
    }
    model
}

/// How the random attention mask is drawn.
#[derive(Clone, Copy, Debug)]
enum MaskKind {
    /// Causal.
    Causal,
    /// Causal with random earlier keys hidden (as `<bksp>` deletes tokens:
    /// a query always sees itself).
    Backspace,
    /// Every (query, key) pair visible or not at random, future included;
    /// some queries see nothing at all (a uniform softmax).
    Random,
}

/// A random batch: ids, targets, loss weights in [0, 2] (some 0), position
/// ids anywhere in the table, and a mask of `kind`.
fn random_batch(cfg: &ModelConfig, b: usize, s: usize, kind: MaskKind, seed: u64) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = b * s;
    let mut mask = vec![MASKED; n * s];
    for r in 0..b {
        for i in 0..s {
            for j in 0..s {
                let visible = match kind {
                    MaskKind::Causal => j <= i,
                    MaskKind::Backspace => j == i || (j < i && rng.gen_bool(0.6)),
                    MaskKind::Random => rng.gen_bool(0.5),
                };
                if visible {
                    mask[(r * s + i) * s + j] = 0.0;
                }
            }
        }
    }
    Batch {
        batch: b,
        seq: s,
        ids: (0..n).map(|_| rng.gen_range(0..cfg.vocab_size)).collect(),
        targets: (0..n).map(|_| rng.gen_range(0..cfg.vocab_size)).collect(),
        completion: vec![true; n],
        weights: (0..n)
            .map(|_| {
                if rng.gen_bool(0.2) {
                    0.0
                } else {
                    rng.gen_range(0.0..2.0)
                }
            })
            .collect(),
        positions: (0..n).map(|_| rng.gen_range(0..cfg.max_len)).collect(),
        mask,
    }
}

/// `|a - b| <= tol * (max |b| + 0.01)` element-wise: relative to the
/// tensor's scale, so tiny entries of a large gradient are not held to a
/// relative bound they cannot meet in f32.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: length", what);
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())) + 0.01;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= tol * scale,
            "{}[{}]: fused {} vs composite {} (scale {})",
            what,
            i,
            g,
            w,
            scale
        );
    }
    Ok(())
}

fn config() -> impl Strategy<Value = (ModelConfig, usize, usize, MaskKind, u64)> {
    (
        1usize..4,  // heads
        1usize..7,  // head width
        1usize..3,  // layers
        1usize..20, // ff
        2usize..12, // vocab
        1usize..7,  // seq
        1usize..4,  // batch
        prop_oneof![
            Just(MaskKind::Causal),
            Just(MaskKind::Backspace),
            Just(MaskKind::Random)
        ],
        prop_oneof![Just(PositionKind::Learned), Just(PositionKind::Sinusoidal)],
        any::<u64>(),
    )
        // layer norm over 2 or 3 features is ill-conditioned: with 2 its
        // input gradient is eps/(var+eps) times a difference of nearly equal
        // numbers, and with 3 a row of small variance comes close, so f32
        // rounding dominates the gradient in both implementations
        .prop_filter("d_model >= 4", |t| t.0 * t.1 >= 4)
        .prop_map(
            |(h, dh, layers, ff, vocab, seq, batch, kind, positions, seed)| {
                let cfg = ModelConfig {
                    vocab_size: vocab,
                    d_model: h * dh,
                    n_heads: h,
                    n_layers: layers,
                    d_ff: ff,
                    max_len: seq + 3,
                    dropout: 0.0,
                    positions,
                };
                (cfg, batch, seq, kind, seed)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fused_logits_equal_composite_logits((cfg, b, s, kind, seed) in config()) {
        let dev: Cpu = Default::default();
        let model = random_model(&cfg, seed);
        let batch = random_batch(&cfg, b, s, kind, seed);
        let inp = Inputs::from_batch(&batch, &dev);
        let fused = Cpu::logits(&model, &batch);
        let composite = model.forward_reference(&inp).as_vec();
        assert_close("logits", &fused, &composite, 1e-4)?;
    }

    #[test]
    fn fused_gradients_equal_composite_gradients((cfg, b, s, kind, seed) in config()) {
        let model = random_model(&cfg, seed);
        let batch = random_batch(&cfg, b, s, kind, seed);
        let objective = Mle;
        let (loss_f, grads_f) = gradients(&model, &TrainBatch::Tokens(batch.clone()), &objective, &mut Dropout::off()).unwrap();
        let (loss_c, grads_c) =
            reference::gradients(&model, &TrainBatch::Tokens(batch.clone()), &objective, &mut Dropout::off()).unwrap();
        prop_assert!((loss_f - loss_c).abs() <= 1e-4 * (1.0 + loss_c.abs()), "loss {} vs {}", loss_f, loss_c);
        check_param_grads(&model, &grads_f, &grads_c)?;
    }
}

/// Every parameter's fused gradient against the composite one. The key
/// biases' gradients are exactly 0 in exact arithmetic (softmax ignores a
/// constant added to all of a query's scores), so both paths return
/// rounding noise there: those only have to be small next to the largest
/// gradient of the model.
fn check_param_grads(
    model: &Transformer<Cpu>,
    fused: &[Vec<f32>],
    composite: &[Vec<f32>],
) -> Result<(), TestCaseError> {
    let global = composite
        .iter()
        .flatten()
        .fold(0.0f32, |m, x| m.max(x.abs()));
    for ((name, _), (gf, gc)) in model.params().iter().zip(fused.iter().zip(composite)) {
        if name.ends_with("wk.bias") {
            for (a, b) in gf.iter().zip(gc) {
                prop_assert!(
                    a.abs().max(b.abs()) <= 1e-4 * (global + 0.01),
                    "{}: {} and {} should both be ~0",
                    name,
                    a,
                    b
                );
            }
        } else {
            assert_close(name, gf, gc, 2e-4)?;
        }
    }
    Ok(())
}

/// A tiny arithmetic-style batch: `<bos> prompt completion <eos>`, loss on the completion.
fn text_batch() -> Batch {
    let ex = |p: &[u32], c: &[u32]| Example::prompt_completion(p, c);
    Batch::causal(&[
        ex(&[20, 21, 22], &[23, 24]),
        ex(&[25, 26], &[27, 28, 29]),
        ex(&[30], &[31]),
        ex(&[32, 33, 34, 35], &[36]),
    ])
}

/// Five AdamW steps from the same start: the fused step (fused forward and
/// backward, host-side clip and AdamW) and the composite step track each
/// other: the same losses and gradient norms, and the same weights after.
#[test]
fn five_fused_training_steps_track_five_composite_steps() {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 2,
        d_ff: 32,
        max_len: 8,
        ..Default::default()
    };
    let batch = TrainBatch::Tokens(text_batch());
    let objective = Mle;
    let mut fused = Transformer::new(&cfg, &dev, 3).unwrap();
    let mut composite = fused.clone();
    let mut opt_f = AdamW::new(AdamWConfig::default(), &fused.params());
    let mut opt_c = AdamW::new(AdamWConfig::default(), &composite.params());
    for step in 0..5 {
        // a small clip limit so that clipping is active on some steps
        let spec = StepSpec {
            objective: &objective,
            lr: 1e-2,
            grad_clip: if step % 2 == 0 { 0.5 } else { 0.0 },
        };
        let f = train_step(&mut fused, &mut opt_f, &batch, &spec, &mut Dropout::off()).unwrap();
        let c = reference::train_step(
            &mut composite,
            &mut opt_c,
            &batch,
            &spec,
            &mut Dropout::off(),
        )
        .unwrap();
        assert!(
            (f.loss - c.loss).abs() <= 1e-5 * (1.0 + c.loss),
            "step {step}: loss {} vs {}",
            f.loss,
            c.loss
        );
        assert!(
            (f.grad_norm - c.grad_norm).abs() <= 1e-4 * (1.0 + c.grad_norm),
            "step {step}: grad norm {} vs {}",
            f.grad_norm,
            c.grad_norm
        );
    }
    assert_eq!(opt_f.t, opt_c.t);
    for ((name, pf), (_, pc)) in fused.params().iter().zip(composite.params()) {
        let (a, b) = (pf.as_vec(), pc.as_vec());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name} differs by {worst} after 5 steps");
    }
    for i in 0..opt_f.m.len() {
        let worst = opt_f.m[i]
            .as_vec()
            .iter()
            .zip(opt_c.m[i].as_vec())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "first moment {i} differs by {worst}");
    }
}

/// With dropout the training forward pass takes the composite path, so
/// dropout keeps its exact semantics (host-RNG masks seeded per step): the
/// fused step's gradients equal the composite step's (up to the fused
/// cross-entropy's rounding; a different mask would differ by far more).
#[test]
fn dropout_training_uses_the_same_masks_on_both_paths() {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        d_model: 8,
        n_heads: 2,
        n_layers: 1,
        d_ff: 16,
        max_len: 8,
        dropout: 0.2,
        ..Default::default()
    };
    let model = Transformer::new(&cfg, &dev, 1).unwrap();
    let batch = text_batch();
    let objective = Mle;
    let (a, ga) = gradients(
        &model,
        &TrainBatch::Tokens(batch.clone()),
        &objective,
        &mut Dropout::new(0.2, 9),
    )
    .unwrap();
    let (b, gb) = reference::gradients(
        &model,
        &TrainBatch::Tokens(batch.clone()),
        &objective,
        &mut Dropout::new(0.2, 9),
    )
    .unwrap();
    assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "loss {a} vs {b}");
    for ((name, _), (x, y)) in model.params().iter().zip(ga.iter().zip(&gb)) {
        assert_close(name, x, y, 1e-5).unwrap();
    }
}

/// The fused path runs in a multi-threaded pool with the same results as
/// on one thread (every parallel split is by fixed chunk sizes).
#[test]
fn fused_gradients_do_not_depend_on_the_thread_count() {
    let cfg = ModelConfig {
        vocab_size: 50,
        d_model: 64,
        n_heads: 4,
        n_layers: 1,
        d_ff: 128,
        max_len: 24,
        ..Default::default()
    };
    let model = random_model(&cfg, 5);
    let batch = random_batch(&cfg, 6, 24, MaskKind::Backspace, 5);
    let objective = Mle;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            gradients(
                &model,
                &TrainBatch::Tokens(batch.clone()),
                &objective,
                &mut Dropout::off(),
            )
            .unwrap()
        })
    };
    let (l1, g1) = run(1);
    let (l2, g2) = run(2);
    assert_eq!(l1, l2);
    for (a, b) in g1.iter().zip(&g2) {
        assert_eq!(a, b);
    }
}

/// Sequences longer than the fused attention's query block (32): each
/// block of queries reads only the keys up to the last one it can see, so
/// causal, backspace and random masks, with some queries that see nothing
/// at all, must still give the composite path's logits and gradients.
#[test]
fn long_sequences_with_skipped_keys_match_composite() {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        vocab_size: 11,
        d_model: 8,
        n_heads: 2,
        n_layers: 1,
        d_ff: 12,
        max_len: 80,
        ..Default::default()
    };
    let model = random_model(&cfg, 21);
    let objective = Mle;
    for (i, kind) in [MaskKind::Causal, MaskKind::Backspace, MaskKind::Random]
        .into_iter()
        .enumerate()
    {
        let mut batch = random_batch(&cfg, 2, 70, kind, 100 + i as u64);
        // a padding query in the middle of a block that sees no key
        let s = batch.seq;
        batch.mask[(s + 40) * s..(s + 41) * s].fill(MASKED);
        let inp = Inputs::from_batch(&batch, &dev);
        let check = || -> Result<(), TestCaseError> {
            let fused = Cpu::logits(&model, &batch);
            let composite = model.forward_reference(&inp).as_vec();
            assert_close("logits", &fused, &composite, 1e-4)?;
            let (_, gf) = gradients(
                &model,
                &TrainBatch::Tokens(batch.clone()),
                &objective,
                &mut Dropout::off(),
            )
            .unwrap();
            let (_, gc) = reference::gradients(
                &model,
                &TrainBatch::Tokens(batch.clone()),
                &objective,
                &mut Dropout::off(),
            )
            .unwrap();
            check_param_grads(&model, &gf, &gc)?;
            Ok(())
        };
        check().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
}
