//! `rewind bench train-step`: the time of one training step (forward,
//! masked-attention backward, gradient clipping, AdamW) on a model whose size
//! is given on the command line, after warm-up, and the step's FLOP rate
//! against a plain large matmul measured in the same run.
//!
//! The batch is random token ids with a causal mask at the full sequence
//! length and loss on every position, so the figure depends only on the
//! sizes, never on a task. `benches/compare_pytorch.sh` runs the same step
//! in PyTorch side by side.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};

use crate::data::{Batch, TrainBatch, MASKED};
use crate::model::device::{default_device, Dev};
use crate::model::{Dropout, ModelConfig, PositionKind, Transformer};
use crate::objectives::Mle;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::{reference, train_step, StepSpec};

/// What to time (the flags of `rewind bench train-step`).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainStepBench {
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub ff: usize,
    pub seq: usize,
    pub batch: usize,
    /// Threads for every kernel (a rayon pool of this size runs the steps).
    pub threads: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps; the report gives their median.
    pub iters: usize,
    /// Time the composite dfdx path ([`reference::train_step`]) instead.
    pub reference: bool,
    /// Also time a large matmul to estimate the machine's peak FLOP/s.
    pub peak: bool,
}

impl Default for TrainStepBench {
    /// The quickstart model (`experiments/quickstart.toml`) at batch 64 x 17 tokens.
    fn default() -> Self {
        Self {
            vocab: crate::data::vocab::VOCAB_SIZE,
            d_model: 128,
            heads: 4,
            layers: 2,
            ff: 512,
            seq: 17,
            batch: 64,
            threads: 1,
            warmup: 3,
            iters: 20,
            reference: false,
            peak: true,
        }
    }
}

impl TrainStepBench {
    /// The model config these sizes describe (learned positions, no dropout).
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            vocab_size: self.vocab,
            d_model: self.d_model,
            n_heads: self.heads,
            n_layers: self.layers,
            d_ff: self.ff,
            max_len: self.seq,
            dropout: 0.0,
            positions: PositionKind::Learned,
        }
    }
}

/// What [`bench_train_step`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub opts: TrainStepBench,
    pub num_params: usize,
    /// Every timed step, milliseconds, in order.
    pub step_ms: Vec<f64>,
    pub median_ms: f64,
    /// Matmul FLOPs of one step (see [`train_step_flops`]).
    pub flops: f64,
    /// FLOP/s of a large single matmul on the same threads (if measured).
    pub peak_flops: Option<f64>,
    /// Loss of the last step (a sanity check: it must be finite).
    pub last_loss: f64,
}

impl BenchReport {
    /// Achieved FLOP/s of the median step.
    pub fn achieved_flops(&self) -> f64 {
        self.flops / (self.median_ms * 1e-3)
    }

    /// The report as text; the last line is `train_step_ms=<median>`.
    pub fn text(&self) -> String {
        let o = &self.opts;
        let mut s =
            format!(
            "model: vocab {} d_model {} heads {} layers {} ff {} ({} params); batch {} x seq {}; \
             threads {}; path {}\n",
            o.vocab,
            o.d_model,
            o.heads,
            o.layers,
            o.ff,
            self.num_params,
            o.batch,
            o.seq,
            o.threads,
            if o.reference { "reference (composite dfdx)" } else { "fused" },
        );
        let (lo, hi) = min_max(&self.step_ms);
        s += &format!(
            "train step: median {:.2} ms (min {lo:.2}, max {hi:.2}) over {} steps after {} warm-up; \
             last loss {:.4}\n",
            self.median_ms,
            self.step_ms.len(),
            o.warmup,
            self.last_loss
        );
        s += &format!(
            "matmul FLOPs/step {:.3} G, achieved {:.2} GFLOP/s\n",
            self.flops * 1e-9,
            self.achieved_flops() * 1e-9
        );
        if let Some(p) = self.peak_flops {
            s += &format!(
                "peak (2048^3 f32 matmul, same threads) {:.2} GFLOP/s; step reaches {:.3} of it\n",
                p * 1e-9,
                self.achieved_flops() / p
            );
            s += &format!("peak_gflops={:.3}\n", p * 1e-9);
        }
        s += &format!("gflop_per_step={:.4}\n", self.flops * 1e-9);
        s += &format!("train_step_ms={:.3}", self.median_ms);
        s
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// Median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Matmul FLOPs (2 per multiply-add) of one training step: the forward
/// pass's matmuls (q/k/v/o and feed-forward projections, the two attention
/// products over all `seq x seq` pairs, the output head) times 3 for
/// forward + backward. Element-wise work is not counted; PyTorch does the
/// same arithmetic, so the count is the same for both.
pub fn train_step_flops(cfg: &ModelConfig, batch: usize, seq: usize) -> f64 {
    let n = (batch * seq) as f64;
    let (d, f, v) = (cfg.d_model as f64, cfg.d_ff as f64, cfg.vocab_size as f64);
    let per_layer = 2.0 * n * (4.0 * d * d + 2.0 * d * f) + 2.0 * 2.0 * n * seq as f64 * d;
    let forward = cfg.n_layers as f64 * per_layer + 2.0 * n * d * v;
    3.0 * forward
}

/// A batch of uniformly random token ids (targets too), positions `0..seq`,
/// a causal mask and loss weight 1 on every position.
pub fn random_causal_batch(vocab: usize, batch: usize, seq: usize, seed: u64) -> Batch {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = batch * seq;
    let mut mask = vec![MASKED; n * seq];
    for r in 0..batch {
        for i in 0..seq {
            for j in 0..=i {
                mask[(r * seq + i) * seq + j] = 0.0;
            }
        }
    }
    Batch {
        batch,
        seq,
        ids: (0..n).map(|_| rng.gen_range(0..vocab)).collect(),
        targets: (0..n).map(|_| rng.gen_range(0..vocab)).collect(),
        weights: vec![1.0; n],
        completion: vec![true; n],
        positions: (0..n).map(|i| i % seq).collect(),
        mask,
    }
}

/// FLOP/s of a `n x n x n` f32 matmul through the fused path's matmul
/// kernel (`model::cpu`) on the current rayon pool: the median of `reps`
/// runs after one warm-up. On this machine it matches PyTorch's BLAS on the
/// same product, so it stands for the machine's practical peak.
pub fn matmul_peak_flops(n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let mut times = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let t0 = Instant::now();
        crate::kernels::ops::matmul(&mut c, &a, &b, (n, n, n), (false, false), false);
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    2.0 * (n as f64).powi(3) / median(&times)
}

/// Times [`train_step`] (or [`reference::train_step`]) on a random causal
/// batch; see [`TrainStepBench`].
pub fn bench_train_step(opts: &TrainStepBench) -> Result<BenchReport> {
    ensure!(opts.threads >= 1, "--threads must be at least 1");
    ensure!(opts.iters >= 1, "--iters must be at least 1");
    ensure!(
        opts.seq >= 1 && opts.batch >= 1,
        "--seq and --batch must be at least 1"
    );
    let cfg = opts.model_config();
    cfg.validate_shape().map_err(anyhow::Error::msg)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("building the thread pool")?;
    pool.install(|| {
        let dev: Dev = default_device();
        let mut model = Transformer::new_any_vocab(&cfg, &dev, 0).map_err(anyhow::Error::msg)?;
        let mut opt = AdamW::new(AdamWConfig::default(), &model.params());
        let batch = TrainBatch::Tokens(random_causal_batch(opts.vocab, opts.batch, opts.seq, 1));
        let objective = Mle;
        let spec = StepSpec {
            objective: &objective,
            lr: 1e-4,
            grad_clip: 1.0,
        };
        let mut step_ms = Vec::with_capacity(opts.iters);
        let mut last_loss = f64::NAN;
        for i in 0..opts.warmup + opts.iters {
            let t0 = Instant::now();
            let stats = if opts.reference {
                reference::train_step(&mut model, &mut opt, &batch, &spec, &mut Dropout::off())
            } else {
                train_step(&mut model, &mut opt, &batch, &spec, &mut Dropout::off())
            }?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if i >= opts.warmup {
                step_ms.push(ms);
            }
            last_loss = stats.loss;
        }
        let peak_flops = opts.peak.then(|| matmul_peak_flops(2048, 3));
        Ok(BenchReport {
            opts: opts.clone(),
            num_params: model.num_params(),
            median_ms: median(&step_ms),
            step_ms,
            flops: train_step_flops(&cfg, opts.batch, opts.seq),
            peak_flops,
            last_loss,
        })
    })
}

/// `rewind bench ...`: timings for the performance table (README, Performance).
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BenchCommand {
    /// Time one training step (forward, backward, gradient clipping, AdamW) of a
    /// model of the given size on a random causal batch, after warm-up; the
    /// last line printed is `train_step_ms=<median>`. Threads: the global
    /// `--threads` (default 1).
    TrainStep(TrainStepArgs),
}

/// Flags of `rewind bench train-step` (defaults: the quickstart model and batch).
#[derive(clap::Args, Clone, Debug)]
pub struct TrainStepArgs {
    /// Vocabulary size (any; rewind's own is 100).
    #[arg(long, default_value_t = crate::data::vocab::VOCAB_SIZE)]
    pub vocab: usize,
    /// Model width.
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    /// Attention heads (must divide --d-model).
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 512)]
    pub ff: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 17)]
    pub seq: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Time the composite dfdx path instead of the fused CPU path.
    #[arg(long)]
    pub reference: bool,
    /// Skip timing the large matmul that estimates the peak FLOP/s.
    #[arg(long)]
    pub no_peak: bool,
}

impl TrainStepArgs {
    /// The bench these flags describe, on `threads` threads.
    pub fn to_bench(&self, threads: usize) -> TrainStepBench {
        TrainStepBench {
            vocab: self.vocab,
            d_model: self.d_model,
            heads: self.heads,
            layers: self.layers,
            ff: self.ff,
            seq: self.seq,
            batch: self.batch,
            threads,
            warmup: self.warmup,
            iters: self.iters,
            reference: self.reference,
            peak: !self.no_peak,
        }
    }
}

/// Runs a `rewind bench` subcommand and returns its report. Threads come
/// from `RAYON_NUM_THREADS` (which `rewind --threads N` sets), else 1.
pub fn bench_command(cmd: &BenchCommand) -> Result<String> {
    match cmd {
        BenchCommand::TrainStep(args) => {
            let threads = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            Ok(bench_train_step(&args.to_bench(threads))?.text())
        }
    }
}
