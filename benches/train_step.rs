//! One training step (forward, backward, gradient clipping, AdamW) and one
//! forward pass, for two models:
//!
//! - `quickstart_model`: experiments/quickstart.toml (d_model 128, 4 heads,
//!   2 layers, ff 512) on a batch of 64 arithmetic sequences of 17 input
//!   tokens, through the fused CPU path and through the composite dfdx path
//!   (`train_step_reference`, `forward_reference`) it replaces;
//! - `large_model`: d_model 256, 4 heads, 4 layers, ff 1024, vocabulary 100,
//!   a random causal batch of 32 x 128 tokens (as `rewind bench train-step`
//!   and benches/compare_pytorch.py use).
//!
//! `cargo bench --bench train_step` (threads: RAYON_NUM_THREADS, default all
//! cores; `RAYON_NUM_THREADS=1 cargo bench --bench train_step` for one).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rewind::cli::bench::{random_causal_batch, TrainStepBench};
use rewind::data::{Batch, TrainBatch};
use rewind::experiment::config::ExperimentConfig;
use rewind::model::device::{default_device, Dev};
use rewind::model::{rng_for, Dropout, Inputs, ModelConfig, Transformer};
use rewind::objectives::Mle;
use rewind::train::optim::{AdamW, AdamWConfig};
use rewind::train::{reference, train_step, Backend, StepSpec};

fn quickstart() -> (ModelConfig, Batch) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.toml");
    let cfg = ExperimentConfig::from_file(std::path::Path::new(path)).expect("quickstart config");
    let kind = rewind::tasks::registry::kind(&cfg.experiment.kind).expect("kind");
    let task = (kind.build)(&cfg.data, 0).expect("task");
    let mut rng = rng_for(0, "bench");
    let examples: Vec<_> = (0..cfg.stages[0].batch_size)
        .map(|_| task.sample_train(&mut rng).expect("example"))
        .collect();
    (cfg.model, Batch::causal(&examples))
}

fn large() -> (ModelConfig, Batch) {
    let b = TrainStepBench {
        d_model: 256,
        layers: 4,
        ff: 1024,
        seq: 128,
        batch: 32,
        ..Default::default()
    };
    (
        b.model_config(),
        random_causal_batch(b.vocab, b.batch, b.seq, 1),
    )
}

fn bench_model(c: &mut Criterion, name: &str, cfg: &ModelConfig, batch: &Batch, reference: bool) {
    let dev = default_device();
    let mut model = Transformer::new_any_vocab(cfg, &dev, 0).expect("model");
    let mut opt = AdamW::new(AdamWConfig::default(), &model.params());
    let objective = Mle;
    let tbatch = TrainBatch::Tokens(batch.clone());
    let spec = StepSpec {
        objective: &objective,
        lr: 1e-4,
        grad_clip: 1.0,
    };
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(batch.num_tokens() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(if reference { 10 } else { 20 }));
    g.bench_function("train_step", |b| {
        b.iter(|| {
            train_step(&mut model, &mut opt, &tbatch, &spec, &mut Dropout::off()).expect("step")
        })
    });
    let inputs = Inputs::from_batch(batch, &dev);
    g.bench_function("forward", |b| b.iter(|| Dev::logits(&model, batch)));
    if reference {
        g.bench_function("train_step_reference", |b| {
            b.iter(|| {
                reference::train_step(&mut model, &mut opt, &tbatch, &spec, &mut Dropout::off())
                    .expect("step")
            })
        });
        g.bench_function("forward_reference", |b| {
            b.iter(|| model.forward_reference(&inputs))
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let (cfg, batch) = quickstart();
    bench_model(c, "quickstart_model", &cfg, &batch, true);
    let (cfg, batch) = large();
    bench_model(c, "large_model", &cfg, &batch, false);
}

criterion_group!(benches, bench);
criterion_main!(benches);
