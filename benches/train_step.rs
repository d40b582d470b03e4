//! One training step and one forward pass of the quickstart model
//! (experiments/quickstart.toml: d_model 128, 4 heads, 2 layers, ff 512,
//! batch 64 arithmetic sequences of 17 input tokens).
//!
//! `cargo bench --bench train_step` (threads: RAYON_NUM_THREADS, default all cores).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rewind::config::ExperimentConfig;
use rewind::data::Batch;
use rewind::device::default_device;
use rewind::model::{rng_for, Dropout, Transformer};
use rewind::optim::AdamW;
use rewind::train::{train_step, StepSpec};

fn setup() -> (ExperimentConfig, Batch) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.toml");
    let cfg = ExperimentConfig::from_file(std::path::Path::new(path)).expect("quickstart config");
    let kind = rewind::registry::kind(&cfg.experiment.kind).expect("kind");
    let task = (kind.build)(&cfg.data, 0).expect("task");
    let mut rng = rng_for(0, "bench");
    let examples: Vec<_> = (0..cfg.stages[0].batch_size)
        .map(|_| task.sample_train(&mut rng).expect("example"))
        .collect();
    (cfg, Batch::causal(&examples))
}

fn bench(c: &mut Criterion) {
    let (cfg, batch) = setup();
    let dev = default_device();
    let mut model = Transformer::new(&cfg.model, &dev, 0).expect("model");
    let mut opt = AdamW::new(cfg.stages[0].optimizer.clone(), &model.params());
    let spec = StepSpec {
        objective: &cfg.stages[0].objective,
        lr: 1e-3,
        grad_clip: 1.0,
    };
    let mut g = c.benchmark_group("quickstart_model");
    g.throughput(Throughput::Elements(batch.num_tokens() as u64));
    g.sample_size(20);
    g.bench_function("train_step", |b| {
        b.iter(|| {
            train_step(
                &mut model,
                &mut opt,
                &dev,
                &batch,
                &spec,
                &mut Dropout::off(),
            )
            .expect("step")
        })
    });
    let inputs = batch.inputs(&dev);
    g.bench_function("forward", |b| b.iter(|| model.forward(&inputs)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
