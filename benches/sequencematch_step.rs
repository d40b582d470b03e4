//! The cost of a SequenceMatch training step against an MLE step on the
//! same model and data (issue 11's goal: SM <= 2x MLE, rollouts excluded).
//!
//! Model and data: experiments/sequencematch_arithmetic.toml (d_model 128,
//! 2 layers; base-7 signed add/sub). The MLE step trains on 64 clean answers
//! (a causal token batch). The SM step (chi2_mix, the paper's recommended
//! form) trains on the same 64 answers noised with ground-truth `<bksp>`
//! noise (p 0.1) plus 32 policy rows from a rollout buffer, laid out as a
//! one-pass transition batch. The rollout share is the cost of refilling the
//! 256-rollout buffer, divided by its refresh interval (25 steps). The
//! model first trains 300 MLE steps, so that its rollouts end with `<eos>`
//! as a warmed-up model's do (a random model's run to the length cap).
//!
//! `cargo bench --bench sequencematch_step` prints the medians of 7 pairs
//! of alternated measurements (MLE, SM, MLE, SM, ...) and their ratio;
//! threads: RAYON_NUM_THREADS (default: all cores). A plain timer, not
//! criterion: ratios measured in one process, alternating the two sides.

use std::time::Instant;

use rewind::data::noise::NoiseConfig;
use rewind::data::{BatchKind, TrainBatch};
use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::stage_data::{RolloutBuffer, RolloutConfig, StageData};
use rewind::model::device::default_device;
use rewind::model::{Dropout, Transformer};
use rewind::objectives::{Divergence, Mle, Objective, SequenceMatch, ValueOver};
use rewind::train::optim::{AdamW, AdamWConfig};
use rewind::train::{train_step, StepSpec};

const PAIRS: usize = 7;
const STEPS_PER_SAMPLE: usize = 5;
/// MLE steps on the task before measuring (about 10 s).
const WARM_STEPS: u64 = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/sequencematch_arithmetic.toml"
    );
    let cfg = ExperimentConfig::from_file(std::path::Path::new(path)).expect("config");
    let kind = rewind::tasks::registry::kind(&cfg.experiment.kind).expect("kind");
    let task = (kind.build)(&cfg.data, 0).expect("task");
    let dev = default_device();
    let mut model = Transformer::new(&cfg.model, &dev, 0).expect("model");
    let mut opt = AdamW::new(AdamWConfig::default(), &model.params());
    let max_new = task.max_answer_len() + 8;

    let clean = StageData::open(&Default::default(), 1, cfg.model.max_len).expect("data");

    // Warm up on the task first, as the sweep's MLE stage does: a random
    // model's rollouts never stop before the length cap, so its policy rows
    // (and the padded SM batch) would be longer than in any real stage 2.
    for step in 0..WARM_STEPS {
        let batch = clean
            .batch(
                task.as_ref(),
                &model,
                1,
                0,
                step,
                64,
                max_new,
                BatchKind::Tokens,
                &[],
            )
            .expect("warm-up batch");
        let spec = StepSpec {
            objective: &Mle,
            lr: 1e-3,
            grad_clip: 1.0,
        };
        train_step(&mut model, &mut opt, &batch, &spec, &mut Dropout::off()).expect("warm-up");
    }

    let mle_batch = clean
        .batch(
            task.as_ref(),
            &model,
            0,
            1,
            0,
            64,
            max_new,
            BatchKind::Tokens,
            &[],
        )
        .expect("mle batch");

    let rc = RolloutConfig {
        buffer: 256,
        every: 25,
        batch_size: 32,
        decoder: rewind::eval::DecoderConfig::Sample {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
        },
    };
    let t0 = Instant::now();
    let (buffer, _) = RolloutBuffer::refresh(None, &rc, task.as_ref(), &model, 0, 1, 0, max_new)
        .expect("rollouts");
    let refill_s = t0.elapsed().as_secs_f64();
    let policy = buffer.draw(0, 1, 0, rc.batch_size);
    let noised = StageData::open(
        &rewind::experiment::config::DataSourceConfig::Task {
            noise: NoiseConfig {
                kind: rewind::data::noise::NoiseKind::GroundTruth,
                p: 0.1,
            },
        },
        1,
        cfg.model.max_len,
    )
    .expect("data");
    let sm_batch = noised
        .batch(
            task.as_ref(),
            &model,
            0,
            1,
            0,
            64,
            max_new,
            BatchKind::Transitions,
            &policy,
        )
        .expect("sm batch");
    let sm = SequenceMatch {
        divergence: Divergence::Chi2Mix,
        alpha: 0.5,
        gamma: 0.99,
        v_terminal: 0.0,
        value_over: ValueOver::Mixture,
        lambda: 0.5,
    };

    let mut time = |objective: &dyn Objective, batch: &TrainBatch| {
        let spec = StepSpec {
            objective,
            lr: 1e-5,
            grad_clip: 1.0,
        };
        let t = Instant::now();
        for _ in 0..STEPS_PER_SAMPLE {
            train_step(&mut model, &mut opt, batch, &spec, &mut Dropout::off()).expect("step");
        }
        t.elapsed().as_secs_f64() / STEPS_PER_SAMPLE as f64
    };
    // warm up both paths (buffers, pools)
    time(&Mle, &mle_batch);
    time(&sm, &sm_batch);
    let (mut mle_s, mut sm_s) = (vec![], vec![]);
    for _ in 0..PAIRS {
        mle_s.push(time(&Mle, &mle_batch));
        sm_s.push(time(&sm, &sm_batch));
    }
    let (m, s) = (median(mle_s), median(sm_s));
    let share = refill_s / rc.every as f64;
    let rows = |b: &TrainBatch| (b.rows().batch, b.rows().seq, b.rows().num_tokens());
    println!(
        "MLE step: {:.2} ms  (batch x seq {:?}, tokens {})",
        1e3 * m,
        (rows(&mle_batch).0, rows(&mle_batch).1),
        rows(&mle_batch).2
    );
    println!(
        "SM step (chi2_mix): {:.2} ms  (batch x seq {:?}, tokens {})",
        1e3 * s,
        (rows(&sm_batch).0, rows(&sm_batch).1),
        rows(&sm_batch).2
    );
    println!(
        "rollout share: {:.2} ms/step (buffer of {} refilled in {:.1} ms, every {} steps)",
        1e3 * share,
        rc.buffer,
        1e3 * refill_s,
        rc.every
    );
    println!(
        "ratio SM/MLE: {:.2} excluding rollouts, {:.2} including their share (median of {PAIRS} alternated pairs)",
        s / m,
        (s + share) / m
    );
}
