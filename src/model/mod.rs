//! Decoder-only transformer with an explicit attention mask and explicit
//! position ids, written from dfdx tensor ops.
//!
//! dfdx 0.13's `MultiHeadAttention` takes no mask at all, and its `Linear`
//! has compile-time feature sizes; rewind needs sizes from TOML and, for the
//! `<bksp>` action, a per-example mask and position ids (a token deleted by a
//! backspace must vanish from every later state). So every layer here keeps
//! runtime (`usize`) dims and attention is `softmax(q·kᵀ/√d + mask)·v`.
//!
//! Every parameter is a 2-d tensor (vectors such as biases and layer-norm
//! gains are stored as `(1, n)` rows), which keeps the optimiser, gradient
//! clipping and checkpointing one code path. Weights are `(in, out)`, so a
//! layer is `x · W + b` (PyTorch's `nn.Linear` stores the transpose).
//!
//! On the CPU, [`Transformer::forward`] and [`Transformer::forward_train`]
//! run the same arithmetic as one fused op with a hand-written backward
//! (`model::cpu`, several times faster); the tensor-op version written here
//! is [`Transformer::forward_reference`], used on other devices, for
//! training with dropout, and as the reference the fused op is tested
//! against.

mod config;
pub mod decode;
pub mod device;
pub(crate) mod fused;
mod fused_host;
mod layers;

pub use config::{ModelConfig, PositionKind};
pub use layers::{Dropout, Tensor2};

use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

use layers::{layer_norm, linear, LayerNorm, Linear};

use crate::data::Batch;

/// Inputs of one forward pass, already on the device.
///
/// # Shapes
/// - `ids`, `positions`: `(batch, seq)`
/// - `mask`: `(batch, seq, seq)`, additive: 0 where query `i` may attend to
///   key `j`, a large negative number where it may not.
pub struct Inputs<D: Device<f32>> {
    pub ids: Tensor<(usize, usize), usize, D>,
    pub positions: Tensor<(usize, usize), usize, D>,
    pub mask: Tensor<(usize, usize, usize), f32, D>,
}

impl<D: Device<f32>> Inputs<D> {
    /// The model inputs of a host [`Batch`] (ids, positions, mask), on `dev`.
    pub fn from_batch(b: &Batch, dev: &D) -> Self {
        Self {
            ids: dev.tensor_from_vec(b.ids.clone(), (b.batch, b.seq)),
            positions: dev.tensor_from_vec(b.positions.clone(), (b.batch, b.seq)),
            mask: dev.tensor_from_vec(b.mask.clone(), (b.batch, b.seq, b.seq)),
        }
    }
}

/// Logits `(batch, seq, vocab)`, with tape `T`.
pub type Logits<D, T> = Tensor<(usize, usize, usize), f32, D, T>;

/// One pre-norm transformer block.
#[derive(Clone, Debug)]
pub struct Block<D: Device<f32>> {
    pub ln1: LayerNorm<D>,
    pub wq: Linear<D>,
    pub wk: Linear<D>,
    pub wv: Linear<D>,
    pub wo: Linear<D>,
    pub ln2: LayerNorm<D>,
    pub ff1: Linear<D>,
    pub ff2: Linear<D>,
}

/// The decoder-only transformer.
#[derive(Clone, Debug)]
pub struct Transformer<D: Device<f32>> {
    pub cfg: ModelConfig,
    /// Token embedding `(vocab, d_model)`.
    pub tok_emb: Tensor2<D>,
    /// Learned position embedding `(max_len, d_model)`; for sinusoidal
    /// positions this holds the fixed table and is not a parameter.
    pub pos_table: Tensor2<D>,
    pub blocks: Vec<Block<D>>,
    pub ln_f: LayerNorm<D>,
    /// Output head `(d_model, vocab)`: its outputs are the logits, which
    /// SequenceMatch reads as soft Q-values.
    pub head: Linear<D>,
}

impl<D: Device<f32>> Transformer<D> {
    /// Builds a model with GPT-2 style initialisation: weights ~ N(0, 0.02),
    /// residual output projections scaled by 1/√(2·layers), biases 0, gains 1.
    /// Initial values come from `seed` on the host, so they are identical on
    /// every device.
    pub fn new(cfg: &ModelConfig, dev: &D, seed: u64) -> Result<Self, String> {
        cfg.validate()?;
        Self::new_any_vocab(cfg, dev, seed)
    }

    /// [`Self::new`] for any `vocab_size` (benchmarks of other model sizes):
    /// checks every field of `cfg` except that the vocabulary is rewind's.
    pub fn new_any_vocab(cfg: &ModelConfig, dev: &D, seed: u64) -> Result<Self, String> {
        cfg.validate_shape()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let d = cfg.d_model;
        let std = 0.02f32;
        let resid_std = std / (2.0 * cfg.n_layers as f32).sqrt();
        let mut normal = |rows: usize, cols: usize, std: f32| -> Tensor2<D> {
            let n = Normal::new(0.0f32, std).expect("std > 0");
            let v: Vec<f32> = (0..rows * cols).map(|_| n.sample(&mut rng)).collect();
            dev.tensor_from_vec(v, (rows, cols))
        };
        let tok_emb = normal(cfg.vocab_size, d, std);
        let pos_table = match cfg.positions {
            PositionKind::Learned => normal(cfg.max_len, d, std),
            PositionKind::Sinusoidal => {
                dev.tensor_from_vec(sinusoidal_table(cfg.max_len, d), (cfg.max_len, d))
            }
        };
        let mut lin = |i: usize, o: usize, std: f32| Linear {
            weight: normal(i, o, std),
            bias: dev.zeros_like(&(1, o)),
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for _ in 0..cfg.n_layers {
            blocks.push(Block {
                ln1: LayerNorm::new(dev, d),
                wq: lin(d, d, std),
                wk: lin(d, d, std),
                wv: lin(d, d, std),
                wo: lin(d, d, resid_std),
                ln2: LayerNorm::new(dev, d),
                ff1: lin(d, cfg.d_ff, std),
                ff2: lin(cfg.d_ff, d, resid_std),
            });
        }
        let head = lin(d, cfg.vocab_size, std);
        Ok(Self {
            cfg: cfg.clone(),
            tok_emb,
            pos_table,
            blocks,
            ln_f: LayerNorm::new(dev, d),
            head,
        })
    }

    /// Every trainable parameter with its stable name (the names used in
    /// checkpoints, e.g. `blocks.0.wq.weight`).
    pub fn params(&self) -> Vec<(String, &Tensor2<D>)> {
        let mut out = vec![("tok_emb".to_string(), &self.tok_emb)];
        if self.cfg.positions == PositionKind::Learned {
            out.push(("pos_emb".to_string(), &self.pos_table));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("blocks.{i}");
            b.ln1.push_params(&format!("{p}.ln1"), &mut out);
            for (name, l) in [("wq", &b.wq), ("wk", &b.wk), ("wv", &b.wv), ("wo", &b.wo)] {
                l.push_params(&format!("{p}.{name}"), &mut out);
            }
            b.ln2.push_params(&format!("{p}.ln2"), &mut out);
            b.ff1.push_params(&format!("{p}.ff1"), &mut out);
            b.ff2.push_params(&format!("{p}.ff2"), &mut out);
        }
        self.ln_f.push_params("ln_f", &mut out);
        self.head.push_params("head", &mut out);
        out
    }

    /// Mutable access to the parameters, in the same order as [`Self::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Tensor2<D>> {
        let mut out = vec![&mut self.tok_emb];
        if self.cfg.positions == PositionKind::Learned {
            out.push(&mut self.pos_table);
        }
        for b in self.blocks.iter_mut() {
            out.extend([&mut b.ln1.gain, &mut b.ln1.bias]);
            for l in [&mut b.wq, &mut b.wk, &mut b.wv, &mut b.wo] {
                out.extend([&mut l.weight, &mut l.bias]);
            }
            out.extend([&mut b.ln2.gain, &mut b.ln2.bias]);
            out.extend([&mut b.ff1.weight, &mut b.ff1.bias]);
            out.extend([&mut b.ff2.weight, &mut b.ff2.bias]);
        }
        out.extend([&mut self.ln_f.gain, &mut self.ln_f.bias]);
        out.extend([&mut self.head.weight, &mut self.head.bias]);
        out
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.params()
            .iter()
            .map(|(_, t)| t.shape().num_elements())
            .sum()
    }

    /// Forward pass without a tape (inference). On `Cpu` this is the fused
    /// path (`model::cpu`); elsewhere [`Self::forward_reference`].
    pub fn forward(&self, inp: &Inputs<D>) -> Logits<D, NoneTape> {
        fused::forward(self, inp).unwrap_or_else(|| self.forward_reference(inp))
    }

    /// Forward pass recording a tape into `grads` (training). On `Cpu`
    /// without dropout this is the fused path, whose backward op writes every
    /// parameter's gradient; with dropout (p > 0), or on another device, it
    /// is [`Self::forward_train_reference`].
    pub fn forward_train(
        &self,
        inp: &Inputs<D>,
        grads: Gradients<f32, D>,
        dropout: &mut Dropout,
    ) -> Logits<D, OwnedTape<f32, D>> {
        if dropout.is_active() {
            return self.forward_train_reference(inp, grads, dropout);
        }
        match fused::forward_train(self, inp, grads) {
            Ok(logits) => logits,
            Err(grads) => self.forward_train_reference(inp, grads, dropout),
        }
    }

    /// The composite forward pass (dfdx tensor ops, every device): the
    /// reference the fused CPU path is tested against.
    pub fn forward_reference(&self, inp: &Inputs<D>) -> Logits<D, NoneTape> {
        self.forward_from(self.tok_emb.clone(), inp, &mut Dropout::off())
    }

    /// The composite training forward pass (dfdx ops and their backward).
    pub fn forward_train_reference(
        &self,
        inp: &Inputs<D>,
        grads: Gradients<f32, D>,
        dropout: &mut Dropout,
    ) -> Logits<D, OwnedTape<f32, D>> {
        self.forward_from(self.tok_emb.clone().traced(grads), inp, dropout)
    }

    /// The forward pass, starting from the (possibly traced) embedding table.
    fn forward_from<T: Tape<f32, D> + Merge<NoneTape>>(
        &self,
        tok_table: Tensor<(usize, usize), f32, D, T>,
        inp: &Inputs<D>,
        dropout: &mut Dropout,
    ) -> Logits<D, T> {
        let (b, s) = *inp.ids.shape();
        let d = self.cfg.d_model;
        let h = self.cfg.n_heads;
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();
        // (b, s, d): token embedding + position embedding gathered by position id
        let tok = tok_table.gather(inp.ids.clone());
        // (a sinusoidal table also gets a gradient here, but it is not in
        // `params()`, so nothing reads or applies it)
        let pos = self.pos_table.retaped::<T>().gather(inp.positions.clone());
        let mut x = dropout.apply(tok + pos);
        // (b, h, s, s): the same mask for every head
        let mask = inp.mask.clone().broadcast_like::<_, Axis<1>>(&(b, h, s, s));
        for blk in &self.blocks {
            // attention sub-layer: x + Wo·softmax(q·kᵀ/√dh + mask)·v
            let xn = layer_norm(x.retaped::<T>(), &blk.ln1);
            let q = linear(xn.retaped::<T>(), &blk.wq)
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 1, 3>>(); // (b, h, s, dh)
            let k = linear(xn.retaped::<T>(), &blk.wk)
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 3, 1>>(); // (b, h, dh, s)
            let v = linear(xn, &blk.wv)
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 1, 3>>(); // (b, h, s, dh)
            let att = (q.matmul(k) * scale + mask.clone()).softmax::<Axis<3>>(); // (b, h, s, s)
            let att = dropout.apply(att);
            let ctx = att
                .matmul(v) // (b, h, s, dh)
                .permute::<_, Axes4<0, 2, 1, 3>>()
                .reshape_like(&(b, s, d)); // (b, s, d)
            x = x + dropout.apply(linear(ctx, &blk.wo));
            // feed-forward sub-layer: x + W2·gelu(W1·ln(x))
            let xn = layer_norm(x.retaped::<T>(), &blk.ln2);
            let ff = linear(linear(xn, &blk.ff1).fast_gelu(), &blk.ff2);
            x = x + dropout.apply(ff);
        }
        let x = layer_norm(x, &self.ln_f);
        linear(x, &self.head) // (b, s, vocab)
    }
}

/// The fixed sinusoidal position table of "Attention is all you need".
fn sinusoidal_table(max_len: usize, d: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; max_len * d];
    for pos in 0..max_len {
        for i in 0..d {
            let freq = 1.0 / 10000f64.powf((2 * (i / 2)) as f64 / d as f64);
            let angle = pos as f64 * freq;
            t[pos * d + i] = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    t
}

/// Draws a random seed for a named purpose from a run seed, so that one run
/// seed drives data, init, noise and sampling through independent streams:
/// changing how many numbers one part draws never reshuffles another.
pub fn sub_seed(seed: u64, purpose: &str) -> u64 {
    // FNV-1a over the purpose, mixed with the seed by SplitMix64.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in purpose.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// A fresh RNG for `purpose` (see [`sub_seed`]).
pub fn rng_for(seed: u64, purpose: &str) -> StdRng {
    StdRng::seed_from_u64(sub_seed(seed, purpose))
}
