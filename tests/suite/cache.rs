//! The key/value-cached decoder gives the same logits as the full forward
//! pass on the same state (also after `<bksp>` pops), and cached decoding
//! gives the same generations as uncached decoding for the same seed.

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng};
use rand_distr::{Distribution, Normal};
use rewind::data::vocab::{BKSP, BOS, EOS, VOCAB_SIZE};
use rewind::data::MASKED;
use rewind::eval::{
    generate, generate_cached, generate_uncached, last_logits_uncached, Decoding, Generation,
};
use rewind::model::decode::{CachedDecoder, RowCache};
use rewind::model::{rng_for, Inputs, ModelConfig, PositionKind, Transformer};

const KINDS: [PositionKind; 2] = [PositionKind::Learned, PositionKind::Sinusoidal];

fn tiny(positions: PositionKind, max_len: usize) -> ModelConfig {
    ModelConfig {
        d_model: 16,
        n_heads: 4,
        n_layers: 2,
        d_ff: 32,
        max_len,
        positions,
        ..Default::default()
    }
}

/// A random model whose logits are spread out (std about 1.5, so greedy
/// picks are far from ties) and whose head favours `<bksp>` and, a little,
/// `<eos>`, so decoding exercises pops, the prompt boundary and finishing.
fn model(dev: &Cpu, positions: PositionKind, max_len: usize, seed: u64) -> Transformer<Cpu> {
    let mut m = Transformer::new(&tiny(positions, max_len), dev, seed).unwrap();
    let names: Vec<String> = m.params().into_iter().map(|(n, _)| n).collect();
    let mut rng = rng_for(seed, "cache-test-weights");
    let d = m.cfg.d_model as f32;
    for (name, p) in names.iter().zip(m.params_mut()) {
        let (rows, cols) = *p.shape();
        let (mean, std) = if name.ends_with(".gain") {
            (1.0, 0.2)
        } else if name.ends_with(".bias") {
            (0.0, 0.2)
        } else if name == "tok_emb" || name == "pos_emb" {
            (0.0, 1.0)
        } else if name == "head.weight" {
            (0.0, 1.5 / d.sqrt())
        } else {
            (0.0, 1.0 / (rows as f32).sqrt())
        };
        let n = Normal::new(mean, std).unwrap();
        let mut v: Vec<f32> = (0..rows * cols).map(|_| n.sample(&mut rng)).collect();
        if name == "head.bias" {
            v[BKSP as usize] += 3.0;
            v[EOS as usize] += 1.0;
        }
        *p = dev.tensor_from_vec(v, (rows, cols));
    }
    m
}

fn random_prompt(rng: &mut StdRng, max: usize) -> Vec<u32> {
    let n = rng.gen_range(0..=max);
    (0..n)
        .map(|_| rng.gen_range(4..VOCAB_SIZE as u32))
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks every row's cached logits against a full forward pass on the
/// left-padded batch of their states.
fn check_against_full(model: &Transformer<Cpu>, dev: &Cpu, rows: &[RowCache], what: &str) {
    let states: Vec<Vec<u32>> = rows.iter().map(|r| r.tokens().to_vec()).collect();
    let full = last_logits_uncached(model, dev, &states);
    for (r, (row, want)) in rows.iter().zip(&full).enumerate() {
        let diff = max_abs_diff(row.logits(), want);
        assert!(
            diff < 1e-4,
            "{what}: row {r} state {:?}: cached logits differ by {diff}",
            row.tokens()
        );
    }
}

#[test]
fn cached_logits_match_full_forward_through_pushes_and_backspaces() {
    let dev: Cpu = Default::default();
    let max_len = 20;
    for kind in KINDS {
        for seed in 0..3u64 {
            let model = model(&dev, kind, max_len, seed);
            let dec = CachedDecoder::new(&model);
            let mut rng = rng_for(seed, "cache-test-actions");
            // three rows of different prompt lengths, decoded together
            let prompts: Vec<Vec<u32>> = (0..3)
                .map(|i| {
                    let mut p = vec![BOS];
                    p.extend(random_prompt(&mut rng, 2 + 2 * i));
                    p
                })
                .collect();
            let mut rows: Vec<RowCache> = prompts.iter().map(|p| dec.start(p)).collect();
            let mut expected = prompts.clone();
            check_against_full(&model, &dev, &rows, "after prefill");
            // a fixed opening: backspace at the prompt boundary (a no-op),
            // two tokens, three backspaces (the third hits the boundary
            // again), one token; then random actions, 30% backspaces
            let script = [BKSP, 50, 60, BKSP, BKSP, BKSP, 70];
            for step in 0..40 {
                let actions: Vec<u32> = (0..rows.len())
                    .map(|_| match script.get(step) {
                        Some(&a) => a,
                        None if rng.gen_bool(0.3) => BKSP,
                        None => rng.gen_range(4..VOCAB_SIZE as u32),
                    })
                    .collect();
                let mut push_rows = vec![];
                let mut push_toks = vec![];
                for (((row, st), &a), p) in rows
                    .iter_mut()
                    .zip(&mut expected)
                    .zip(&actions)
                    .zip(&prompts)
                {
                    if a == BKSP {
                        let popped = row.pop();
                        if st.len() > p.len() {
                            assert_eq!(popped, st.pop());
                        } else {
                            assert_eq!(popped, None, "popped into the prompt");
                        }
                    } else if st.len() < max_len {
                        st.push(a);
                        push_rows.push(row);
                        push_toks.push(a);
                    }
                }
                dec.push_many(&mut push_rows, &push_toks);
                for (row, st) in rows.iter().zip(&expected) {
                    assert_eq!(row.tokens(), &st[..]);
                }
                check_against_full(
                    &model,
                    &dev,
                    &rows,
                    &format!("{kind:?} seed {seed} step {step}"),
                );
                // recomputing from scratch on the resulting state gives the
                // very same numbers as the popped/pushed cache
                for row in &rows {
                    let fresh = dec.start(row.tokens());
                    assert_eq!(fresh.logits(), row.logits(), "state {:?}", row.tokens());
                }
            }
        }
    }
}

#[test]
fn apply_handles_backspace_at_the_prompt_boundary() {
    let dev: Cpu = Default::default();
    let model = model(&dev, PositionKind::Learned, 16, 5);
    let dec = CachedDecoder::new(&model);
    let prompt = [BOS, 30, 31];
    let mut row = dec.start(&prompt);
    let at_prompt = row.logits().to_vec();
    assert!(!dec.apply(&mut row, BKSP), "the prompt is protected");
    assert_eq!(row.tokens(), &prompt);
    assert_eq!(row.logits(), &at_prompt[..]);
    assert!(dec.apply(&mut row, 40));
    assert!(dec.apply(&mut row, 41));
    assert_ne!(row.logits(), &at_prompt[..]);
    assert!(dec.apply(&mut row, BKSP));
    assert!(dec.apply(&mut row, BKSP));
    assert!(!dec.apply(&mut row, BKSP));
    assert_eq!(row.tokens(), &prompt);
    assert_eq!(
        row.logits(),
        &at_prompt[..],
        "pop restores the cached logits"
    );
    let full = last_logits_uncached(&model, &dev, &[prompt.to_vec()]);
    assert!(max_abs_diff(row.logits(), &full[0]) < 1e-4);
}

/// The composite dfdx forward pass (`forward_reference`, which `forward`
/// falls back to off the CPU) on one unpadded state: last-position logits.
fn reference_logits(model: &Transformer<Cpu>, dev: &Cpu, state: &[u32]) -> Vec<f32> {
    let n = state.len();
    let mut mask = vec![MASKED; n * n];
    for q in 0..n {
        mask[q * n..q * n + q + 1].fill(0.0);
    }
    let inp = Inputs {
        ids: dev.tensor_from_vec(state.iter().map(|&t| t as usize).collect(), (1, n)),
        positions: dev.tensor_from_vec((0..n).collect(), (1, n)),
        mask: dev.tensor_from_vec(mask, (1, n, n)),
    };
    let all = model.forward_reference(&inp).as_vec();
    all[all.len() - VOCAB_SIZE..].to_vec()
}

#[test]
fn cached_logits_match_the_dfdx_reference_forward() {
    let dev: Cpu = Default::default();
    for kind in KINDS {
        let model = model(&dev, kind, 16, 21);
        let dec = CachedDecoder::new(&model);
        let mut row = dec.start(&[BOS, 30]);
        for (i, a) in [40, 41, BKSP, 42, 43, 44, BKSP, BKSP, 45, 46]
            .into_iter()
            .enumerate()
        {
            dec.apply(&mut row, a);
            let want = reference_logits(&model, &dev, row.tokens());
            let diff = max_abs_diff(row.logits(), &want);
            assert!(diff < 1e-4, "{kind:?} action {i}: differs by {diff}");
        }
    }
}

/// Cached vs uncached `generate` for one model and decoding: identical
/// generations and identical RNG consumption.
fn compare_generate(
    model: &Transformer<Cpu>,
    dev: &Cpu,
    prompts: &[Vec<u32>],
    max_new: usize,
    decoding: Decoding,
    seed: u64,
) -> Vec<Generation> {
    let mut rng_a = rng_for(seed, "cache-test-sampling");
    let mut rng_b = rng_for(seed, "cache-test-sampling");
    let cached = generate(model, dev, prompts, max_new, decoding, &mut rng_a);
    let uncached = generate_uncached(model, dev, prompts, max_new, decoding, &mut rng_b);
    assert_eq!(
        cached, uncached,
        "{decoding:?} seed {seed} prompts {prompts:?}"
    );
    assert_eq!(
        rng_a.gen::<u64>(),
        rng_b.gen::<u64>(),
        "{decoding:?}: the two paths drew a different number of random numbers"
    );
    cached
}

#[test]
fn cached_generate_gives_the_same_tokens_as_uncached_for_the_same_seed() {
    let dev: Cpu = Default::default();
    let max_len = 24;
    let (mut bksp, mut finished, mut unfinished, mut boundary_bksp) = (0, 0, 0, 0);
    for kind in KINDS {
        for seed in 0..3u64 {
            let model = model(&dev, kind, max_len, 10 + seed);
            let mut rng = rng_for(seed, "cache-test-prompts");
            let mut prompts: Vec<Vec<u32>> = (0..5).map(|_| random_prompt(&mut rng, 6)).collect();
            // a state of max_len - 1 tokens gets one step; one of max_len none
            prompts.push(vec![40; max_len - 2]);
            prompts.push(vec![41; max_len - 1]);
            for decoding in [
                Decoding::Greedy,
                Decoding::Sample {
                    temperature: 1.0,
                    top_p: 1.0,
                },
                Decoding::Sample {
                    temperature: 0.6,
                    top_p: 1.0,
                },
            ] {
                let gens = compare_generate(&model, &dev, &prompts, 30, decoding, seed);
                for (g, p) in gens.iter().zip(&prompts) {
                    bksp += g.actions.iter().filter(|&&a| a == BKSP).count();
                    if g.finished {
                        finished += 1;
                    } else {
                        unfinished += 1;
                    }
                    // a backspace with nothing generated left to delete
                    let mut len = 0usize;
                    for &a in &g.actions {
                        if a == BKSP {
                            boundary_bksp += (len == 0) as usize;
                            len = len.saturating_sub(1);
                        } else {
                            len += 1;
                        }
                    }
                    assert!(g.output.len() + p.len() < max_len);
                }
                assert!(gens[prompts.len() - 1].actions.is_empty());
            }
        }
    }
    // the comparison is only meaningful if decoding took every path
    assert!(bksp > 20, "too few backspaces ({bksp}) to test pops");
    assert!(boundary_bksp > 0, "no backspace at the prompt boundary");
    assert!(
        finished > 5 && unfinished > 5,
        "finished {finished}, unfinished {unfinished}"
    );
}

#[test]
fn edge_cases_match() {
    let dev: Cpu = Default::default();
    let model = model(&dev, PositionKind::Sinusoidal, 8, 3);
    let prompts = vec![vec![], vec![50, 51]];
    for max_new in [0, 1, 20] {
        compare_generate(&model, &dev, &prompts, max_new, Decoding::Greedy, 0);
        compare_generate(
            &model,
            &dev,
            &prompts,
            max_new,
            Decoding::Sample {
                temperature: 1.0,
                top_p: 1.0,
            },
            0,
        );
    }
    compare_generate(&model, &dev, &[], 5, Decoding::Greedy, 0);
}

#[test]
fn threaded_batches_give_the_same_numbers_as_single_rows() {
    let dev: Cpu = Default::default();
    let max_len = 12;
    let model = model(&dev, PositionKind::Learned, max_len, 8);
    let n = 2 * rewind::model::decode::ROWS_PER_THREAD + 3;
    let threaded = CachedDecoder::new(&model).with_threads(3);
    let single = CachedDecoder::new(&model).with_threads(1);
    let mut rng = rng_for(8, "cache-test-threads");
    let prompts: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            let mut p = vec![BOS];
            p.extend(random_prompt(&mut rng, 3));
            p
        })
        .collect();
    let mut rows: Vec<RowCache> = prompts.iter().map(|p| threaded.start(p)).collect();
    for _ in 0..6 {
        let toks: Vec<u32> = (0..n)
            .map(|_| rng.gen_range(4..VOCAB_SIZE as u32))
            .collect();
        let mut batch: Vec<&mut RowCache> = rows.iter_mut().collect();
        threaded.push_many(&mut batch, &toks);
    }
    for row in &rows {
        let mut one = single.start(&row.tokens()[..1]);
        for &t in &row.tokens()[1..] {
            single.push(&mut one, t);
        }
        assert_eq!(one.logits(), row.logits(), "state {:?}", row.tokens());
    }
    check_against_full(&model, &dev, &rows, "threaded batch");
    // and generation on a batch large enough to be split over threads
    let prompts: Vec<Vec<u32>> = (0..n).map(|_| random_prompt(&mut rng, 4)).collect();
    compare_generate(
        &model,
        &dev,
        &prompts,
        10,
        Decoding::Sample {
            temperature: 1.0,
            top_p: 1.0,
        },
        8,
    );
}

/// Runs `f` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

#[test]
fn generation_is_the_same_on_one_and_two_threads() {
    let dev: Cpu = Default::default();
    let max_len = 40;
    let sample = Decoding::Sample {
        temperature: 1.0,
        top_p: 1.0,
    };
    let (mut bksp, mut split) = (0, 0);
    for (seed, batch) in [(30u64, 8usize), (31, 64), (32, 5)] {
        let model = model(&dev, PositionKind::Learned, max_len, seed);
        let decoder = CachedDecoder::new(&model);
        let mut rng = rng_for(seed, "cache-test-thread-prompts");
        let prompts: Vec<Vec<u32>> = (0..batch).map(|_| random_prompt(&mut rng, 8)).collect();
        for decoding in [sample, Decoding::Greedy] {
            let run = |threads: usize| {
                on_threads(threads, || {
                    let mut rng = rng_for(seed, "cache-test-thread-sampling");
                    let gens = generate_cached(&decoder, &prompts, 30, decoding, &mut rng);
                    (gens, rng.gen::<u64>(), decoder.parts(batch))
                })
            };
            let (one, after_one, parts_one) = run(1);
            let (two, after_two, parts_two) = run(2);
            assert_eq!(parts_one, 1);
            split += (parts_two > 1) as usize;
            assert_eq!(one, two, "seed {seed} batch {batch} {decoding:?}");
            assert_eq!(after_one, after_two, "the same random numbers were drawn");
            bksp += one
                .iter()
                .flat_map(|g| &g.actions)
                .filter(|&&a| a == BKSP)
                .count();
        }
        // the logits themselves, bit for bit, after a step of every row
        let states: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| std::iter::once(BOS).chain(p.iter().copied()).collect())
            .collect();
        let step = |threads: usize| {
            on_threads(threads, || {
                let starts: Vec<&[u32]> = states.iter().map(|s| &s[..]).collect();
                let mut rows = decoder.start_many(&starts);
                let mut batch: Vec<&mut RowCache> = rows.iter_mut().collect();
                let toks: Vec<u32> = (0..batch.len() as u32).map(|i| 10 + i % 50).collect();
                decoder.push_many(&mut batch, &toks);
                rows.iter().map(|r| r.logits().to_vec()).collect::<Vec<_>>()
            })
        };
        assert_eq!(step(1), step(2), "seed {seed} batch {batch}: logits");
    }
    assert!(split >= 4, "two threads never split a step");
    assert!(bksp > 20, "too few backspaces ({bksp}) to test pops");
}
