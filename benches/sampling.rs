//! Sampling throughput, key/value-cached vs full recomputation: 8 prompts
//! of 6 tokens, 128 new tokens each (states grow to 135 tokens), with the
//! quickstart model size (d_model 128, 4 heads, 2 layers, ff 512) and
//! max_len 136. `<eos>` and `<bksp>` are suppressed in the head bias so
//! every row really decodes 128 tokens; throughput is generated tokens/s
//! over the whole batch (criterion's "elem/s"). Uncached decoding is only
//! timed greedily: sampling changes nothing in its cost, and each run
//! takes seconds.
//!
//! `cargo bench --bench sampling` (threads: RAYON_NUM_THREADS, default all
//! cores; the cached decoder splits a step's rows over them from 2 rows
//! per thread). Against PyTorch: `benches/compare_pytorch.py --bench
//! generate`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use rewind::data::vocab::{self, BKSP, EOS};
use rewind::eval::{generate, generate_cached, generate_uncached, Decoding};
use rewind::model::decode::CachedDecoder;
use rewind::model::device::{default_device, Dev};
use rewind::model::{rng_for, ModelConfig, PositionKind, Transformer};

const BATCH: usize = 8;
const NEW_TOKENS: usize = 128;

fn setup(dev: &Dev) -> (Transformer<Dev>, Vec<Vec<u32>>) {
    let cfg = ModelConfig {
        d_model: 128,
        n_heads: 4,
        n_layers: 2,
        d_ff: 512,
        max_len: 136,
        positions: PositionKind::Learned,
        ..Default::default()
    };
    let mut model = Transformer::new(&cfg, dev, 0).expect("model");
    // never stop, never delete: every row decodes exactly NEW_TOKENS tokens
    let at = model
        .params()
        .iter()
        .position(|(name, _)| name == "head.bias")
        .expect("head.bias");
    let head_bias = model.params_mut().swap_remove(at);
    let mut bias = head_bias.as_vec();
    bias[EOS as usize] = -1e4;
    bias[BKSP as usize] = -1e4;
    *head_bias = dev.tensor_from_vec(bias, (1, cfg.vocab_size));
    let prompts: Vec<Vec<u32>> = (0..BATCH)
        .map(|i| vocab::encode(&format!("{}+{}=", 10 + 7 * i, 90 - 3 * i)).expect("prompt"))
        .collect();
    assert!(prompts
        .iter()
        .all(|p| 1 + p.len() + NEW_TOKENS <= cfg.max_len));
    (model, prompts)
}

fn bench(c: &mut Criterion) {
    let dev = default_device();
    let (model, prompts) = setup(&dev);
    let greedy = Decoding::Greedy;
    let sample = Decoding::Sample {
        temperature: 1.0,
        top_p: 1.0,
    };

    // sanity: both paths decode the full budget and agree
    for decoding in [greedy, sample] {
        let a = generate(
            &model,
            &dev,
            &prompts,
            NEW_TOKENS,
            decoding,
            &mut rng_for(0, "b"),
        );
        let b = generate_uncached(
            &model,
            &dev,
            &prompts,
            NEW_TOKENS,
            decoding,
            &mut rng_for(0, "b"),
        );
        assert_eq!(a, b, "cached and uncached generations differ");
        assert!(a.iter().all(|g| g.output.len() == NEW_TOKENS));
    }

    let mut g = c.benchmark_group("sampling_d128_len128_batch8");
    g.throughput(Throughput::Elements((BATCH * NEW_TOKENS) as u64));
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.measurement_time(std::time::Duration::from_secs(5));
    let mut rng = rng_for(0, "bench-sampling");
    // `generate` includes copying the weights to the host (CachedDecoder::new)
    g.bench_function("cached_greedy", |b| {
        b.iter(|| generate(&model, &dev, &prompts, NEW_TOKENS, greedy, &mut rng))
    });
    g.bench_function("cached_sample", |b| {
        b.iter(|| generate(&model, &dev, &prompts, NEW_TOKENS, sample, &mut rng))
    });
    let decoder = CachedDecoder::new(&model);
    g.bench_function("cached_sample_prebuilt_decoder", |b| {
        b.iter(|| generate_cached(&decoder, &prompts, NEW_TOKENS, sample, &mut rng))
    });
    g.bench_function("uncached_greedy", |b| {
        b.iter(|| generate_uncached(&model, &dev, &prompts, NEW_TOKENS, greedy, &mut rng))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
