//! `rewind bench train-step`: the time of one training step (forward,
//! masked-attention backward, gradient clipping, AdamW) on a model whose size
//! is given on the command line, after warm-up, and the step's FLOP rate
//! against a plain large matmul measured in the same run.
//!
//! The batch is random token ids with a causal mask at the full sequence
//! length and loss on every position, so the figure depends only on the
//! sizes, never on a task. `benches/compare_pytorch.sh` runs the same step
//! in PyTorch side by side.
//!
//! `rewind bench generate`: batched key/value-cached generation throughput
//! (new tokens per second) of a randomly initialised model, sampling at
//! temperature 1 (see [`GenerateBench`]); `benches/compare_pytorch.py
//! --bench generate` runs the same generation in PyTorch side by side.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use crate::data::vocab::{BKSP, BOS, EOS};
use crate::data::{Batch, TrainBatch, MASKED};
use crate::eval::{generate_cached, Decoding};
use crate::model::decode::CachedDecoder;
use crate::model::device::{default_device, Dev};
use crate::model::{rng_for, Dropout, ModelConfig, PositionKind, Transformer};
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

/// What `rewind bench generate` times: [`generate_cached`] with one
/// [`CachedDecoder`] built before timing, on `batch` prompts of `prompt`
/// random tokens (after `<bos>`), `new_tokens` actions each, sampled at
/// temperature 1 (no nucleus cut-off) from a freshly initialised model.
///
/// Such a model predicts nearly uniformly, so `<bksp>` is sampled about
/// once per vocabulary size of steps and pops the cache as in real
/// decoding; `<eos>` is suppressed (its head bias set to -1e4) so that
/// every row decodes exactly `new_tokens` actions and the token count per
/// call is fixed: `batch * new_tokens`.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateBench {
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub ff: usize,
    /// Prompt tokens before generation (plus `<bos>`).
    pub prompt: usize,
    /// Actions generated per row.
    pub new_tokens: usize,
    pub batch: usize,
    /// Threads of the rayon pool the generation runs on.
    pub threads: usize,
    /// Untimed calls first.
    pub warmup: usize,
    /// Timed calls; the report gives their median.
    pub iters: usize,
}

impl Default for GenerateBench {
    /// The quickstart model, 8 prompts of 8 tokens, 128 new tokens each.
    fn default() -> Self {
        Self {
            vocab: crate::data::vocab::VOCAB_SIZE,
            d_model: 128,
            heads: 4,
            layers: 2,
            ff: 512,
            prompt: 8,
            new_tokens: 128,
            batch: 8,
            threads: 1,
            warmup: 2,
            iters: 10,
        }
    }
}

impl GenerateBench {
    /// The model config: learned positions, `max_len` = `<bos>` + prompt +
    /// new tokens.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            vocab_size: self.vocab,
            d_model: self.d_model,
            n_heads: self.heads,
            n_layers: self.layers,
            d_ff: self.ff,
            max_len: 1 + self.prompt + self.new_tokens,
            dropout: 0.0,
            positions: PositionKind::Learned,
        }
    }
}

/// What [`bench_generate`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateReport {
    pub opts: GenerateBench,
    /// Every timed call, milliseconds, in order.
    pub call_ms: Vec<f64>,
    pub median_ms: f64,
    /// New tokens (actions) per call.
    pub tokens: usize,
    /// `<bksp>` actions per call (mean over the timed calls).
    pub backspaces: f64,
    /// CPU time of the process over wall time during the timed calls (how
    /// many cores were kept busy; Linux only).
    pub cpu_per_wall: Option<f64>,
}

impl GenerateReport {
    /// New tokens per second at the median call.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / (self.median_ms * 1e-3)
    }

    /// The report as text; the last line is `generate_tokens_per_s=<rate>`.
    pub fn text(&self) -> String {
        let o = &self.opts;
        let (lo, hi) = min_max(&self.call_ms);
        format!(
            "model: vocab {} d_model {} heads {} layers {} ff {}; batch {} x (prompt {} + {} new \
             tokens), sampling at temperature 1; threads {}\n\
             generate: median {:.2} ms (min {lo:.2}, max {hi:.2}) over {} calls after {} warm-up; \
             {} new tokens per call, {:.1} of them <bksp>; CPU time / wall time {}\n\
             generate_ms={:.3}\n\
             generate_tokens_per_s={:.1}",
            o.vocab,
            o.d_model,
            o.heads,
            o.layers,
            o.ff,
            o.batch,
            o.prompt,
            o.new_tokens,
            o.threads,
            self.median_ms,
            self.call_ms.len(),
            o.warmup,
            self.tokens,
            self.backspaces,
            self.cpu_per_wall
                .map_or("unknown".to_string(), |r| format!("{r:.2}")),
            self.median_ms,
            self.tokens_per_s(),
        )
    }
}

/// Times [`generate_cached`]; see [`GenerateBench`].
pub fn bench_generate(opts: &GenerateBench) -> Result<GenerateReport> {
    ensure!(opts.threads >= 1, "--threads must be at least 1");
    ensure!(opts.iters >= 1, "--iters must be at least 1");
    ensure!(
        opts.batch >= 1 && opts.new_tokens >= 1,
        "--batch and --new-tokens must be at least 1"
    );
    ensure!(
        opts.vocab > BKSP.max(EOS) as usize,
        "--vocab must include the special tokens"
    );
    let cfg = opts.model_config();
    cfg.validate_shape().map_err(anyhow::Error::msg)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("building the thread pool")?;
    let dev: Dev = default_device();
    let mut model = Transformer::new_any_vocab(&cfg, &dev, 0).map_err(anyhow::Error::msg)?;
    let at = model
        .params()
        .iter()
        .position(|(name, _)| name == "head.bias")
        .context("the model has no head.bias")?;
    let head_bias = model.params_mut().swap_remove(at);
    let mut bias = head_bias.as_vec();
    bias[EOS as usize] = -1e4;
    *head_bias = dev.tensor_from_vec(bias, (1, cfg.vocab_size));
    let mut rng = rng_for(0, "bench-generate-prompts");
    let prompts: Vec<Vec<u32>> = (0..opts.batch)
        .map(|_| {
            (0..opts.prompt)
                .map(|_| rng.gen_range(BOS + 1..opts.vocab as u32))
                .collect()
        })
        .collect();
    let decoder = CachedDecoder::new(&model);
    let decoding = Decoding::Sample {
        temperature: 1.0,
        top_p: 1.0,
    };
    let mut rng = rng_for(0, "bench-generate-sampling");
    let (mut call_ms, mut backspaces, mut tokens) = (vec![], 0usize, 0usize);
    let (mut cpu0, mut wall0) = (None, Instant::now());
    pool.install(|| {
        for i in 0..opts.warmup + opts.iters {
            if i == opts.warmup {
                (cpu0, wall0) = (process_cpu_s(), Instant::now());
            }
            let t0 = Instant::now();
            let gens = generate_cached(&decoder, &prompts, opts.new_tokens, decoding, &mut rng);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if i >= opts.warmup {
                call_ms.push(ms);
                let actions = gens.iter().flat_map(|g| &g.actions);
                backspaces += actions.clone().filter(|&&a| a == BKSP).count();
                tokens = actions.count();
            }
        }
    });
    let wall = wall0.elapsed().as_secs_f64();
    let cpu_per_wall = cpu0.zip(process_cpu_s()).map(|(a, b)| (b - a) / wall);
    ensure!(
        tokens == opts.batch * opts.new_tokens,
        "a row stopped early ({tokens} new tokens)"
    );
    Ok(GenerateReport {
        opts: opts.clone(),
        median_ms: median(&call_ms),
        backspaces: backspaces as f64 / call_ms.len() as f64,
        call_ms,
        tokens,
        cpu_per_wall,
    })
}

/// User + system CPU seconds of this process so far, every thread
/// included (`/proc/self/stat`, in the kernel's 100 Hz user ticks), or
/// None where that file is missing.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// `rewind bench ...`: timings for the performance table (README, Performance).
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BenchCommand {
    /// Time one training step (forward, backward, gradient clipping, AdamW) of a
    /// model of the given size on a random causal batch, after warm-up; the
    /// last line printed is `train_step_ms=<median>`. Threads: the global
    /// `--threads` (default 1).
    TrainStep(TrainStepArgs),
    /// Time batched key/value-cached generation (sampling at temperature 1
    /// from a randomly initialised model, `<eos>` suppressed, `<bksp>`
    /// popping the cache), after warm-up; the last line printed is
    /// `generate_tokens_per_s=<new tokens per second>`. Threads: the global
    /// `--threads` (default 1).
    Generate(GenerateArgs),
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

/// Flags of `rewind bench generate` (defaults: the quickstart model, 8
/// prompts of 8 tokens, 128 new tokens).
#[derive(clap::Args, Clone, Debug)]
pub struct GenerateArgs {
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
    /// Prompt tokens per row (after `<bos>`).
    #[arg(long, default_value_t = 8)]
    pub prompt: usize,
    /// New tokens (actions) per row.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Rows decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Untimed calls first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed calls (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
}

impl GenerateArgs {
    /// The bench these flags describe, on `threads` threads.
    pub fn to_bench(&self, threads: usize) -> GenerateBench {
        GenerateBench {
            vocab: self.vocab,
            d_model: self.d_model,
            heads: self.heads,
            layers: self.layers,
            ff: self.ff,
            prompt: self.prompt,
            new_tokens: self.new_tokens,
            batch: self.batch,
            threads,
            warmup: self.warmup,
            iters: self.iters,
        }
    }
}

/// Runs a `rewind bench` subcommand and returns its report. Threads come
/// from `RAYON_NUM_THREADS` (which `rewind --threads N` sets), else 1.
pub fn bench_command(cmd: &BenchCommand) -> Result<String> {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    match cmd {
        BenchCommand::TrainStep(args) => Ok(bench_train_step(&args.to_bench(threads))?.text()),
        BenchCommand::Generate(args) => Ok(bench_generate(&args.to_bench(threads))?.text()),
    }
}
