//! Decoder-only transformer with an explicit attention mask and explicit
//! position ids, written from dfdx tensor ops.
//!
//! dfdx 0.13's `MultiHeadAttention` takes no mask at all, and its `Linear`
//! has compile-time feature sizes; rewind needs sizes from TOML and, for the
//! `<bksp>` action, a per-example mask and position ids (a token deleted by a
//! backspace must vanish from every later state). So every layer here keeps
//! runtime (`usize`) dims and attention is `softmax(q·kᵀ/√d + mask)·v`.
//!
//! One model, three ways to run it, all reading the one parameter table of
//! [`params`] (names, shapes, order):
//! - the composite forward pass written here from dfdx tensor ops
//!   ([`Transformer::forward_reference`], [`Transformer::forward_train_reference`]):
//!   every device, training with dropout, and the reference for tests;
//! - the fused CPU forward and hand-written backward ([`fused`]), several
//!   times faster, over a packed host copy of the parameters ([`host`]);
//! - incremental decoding with a key/value cache ([`decode`]), on the same
//!   host copy, where `<bksp>` pops the cache.
//!
//! Which one a training step or an evaluation runs is chosen by the device
//! type (`train::Backend`), never by a downcast.

mod config;
pub mod decode;
pub mod device;
pub(crate) mod fused;
pub(crate) mod host;
mod layers;
pub mod params;

pub use config::{ModelConfig, PositionKind};
pub use layers::{Dropout, Tensor2};

use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

use layers::{layer_norm, linear};
use params::{BlockParam, Init, ParamTable};

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

/// The decoder-only transformer: its config, and its parameters in
/// [`ParamTable`] order.
#[derive(Clone, Debug)]
pub struct Transformer<D: Device<f32>> {
    pub cfg: ModelConfig,
    table: ParamTable,
    params: Vec<Tensor2<D>>,
    /// The fixed sinusoidal position table (not a parameter); None for
    /// learned positions, whose table is the `pos_emb` parameter.
    fixed_pos: Option<Tensor2<D>>,
}

impl<D: Device<f32>> Transformer<D> {
    /// Builds a model with GPT-2 style initialisation (see [`params`]):
    /// weights ~ N(0, 0.02), residual output projections scaled by
    /// 1/√(2·layers), biases 0, gains 1. Initial values are drawn in table
    /// order from `seed` on the host, so they are identical on every device.
    pub fn new(cfg: &ModelConfig, dev: &D, seed: u64) -> Result<Self, String> {
        cfg.validate()?;
        Self::new_any_vocab(cfg, dev, seed)
    }

    /// [`Self::new`] for any `vocab_size` (benchmarks of other model sizes):
    /// checks every field of `cfg` except that the vocabulary is rewind's.
    pub fn new_any_vocab(cfg: &ModelConfig, dev: &D, seed: u64) -> Result<Self, String> {
        cfg.validate_shape()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let table = ParamTable::new(cfg);
        let params = table
            .specs()
            .iter()
            .map(|p| {
                let v: Vec<f32> = match p.init {
                    Init::Normal(std) => {
                        let n = Normal::new(0.0f32, std).expect("std > 0");
                        (0..p.len()).map(|_| n.sample(&mut rng)).collect()
                    }
                    Init::Zeros => vec![0.0; p.len()],
                    Init::Ones => vec![1.0; p.len()],
                };
                dev.tensor_from_vec(v, p.shape)
            })
            .collect();
        let fixed_pos = (cfg.positions == PositionKind::Sinusoidal).then(|| {
            let d = cfg.d_model;
            dev.tensor_from_vec(sinusoidal_table(cfg.max_len, d), (cfg.max_len, d))
        });
        Ok(Self {
            cfg: cfg.clone(),
            table,
            params,
            fixed_pos,
        })
    }

    /// The parameter table (names, shapes, order).
    pub fn table(&self) -> &ParamTable {
        &self.table
    }

    /// Parameter `i` of the table.
    pub fn param(&self, i: usize) -> &Tensor2<D> {
        &self.params[i]
    }

    /// Every parameter in table order.
    pub fn tensors(&self) -> &[Tensor2<D>] {
        &self.params
    }

    /// Every trainable parameter with its stable name (the names used in
    /// checkpoints, e.g. `blocks.0.wq.weight`), in table order.
    pub fn params(&self) -> Vec<(String, &Tensor2<D>)> {
        self.table
            .specs()
            .iter()
            .map(|s| s.name.clone())
            .zip(&self.params)
            .collect()
    }

    /// Mutable access to the parameters, in table order.
    pub fn params_mut(&mut self) -> Vec<&mut Tensor2<D>> {
        self.params.iter_mut().collect()
    }

    /// The position table `(max_len, d_model)`: the learned `pos_emb`
    /// parameter or the fixed sinusoidal table.
    pub fn pos_table(&self) -> &Tensor2<D> {
        match (&self.fixed_pos, self.table.pos_emb()) {
            (Some(t), _) => t,
            (None, Some(i)) => &self.params[i],
            (None, None) => unreachable!("a model has learned or fixed positions"),
        }
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.table.specs().iter().map(|s| s.len()).sum()
    }

    /// The composite forward pass (dfdx tensor ops, every device): the
    /// reference the fused CPU path is tested against.
    pub fn forward_reference(&self, inp: &Inputs<D>) -> Logits<D, NoneTape> {
        let tok = self.params[self.table.tok_emb()].clone();
        self.forward_from(tok, inp, &mut Dropout::off())
    }

    /// The composite training forward pass (dfdx ops and their backward),
    /// recording a tape into `grads`.
    pub fn forward_train_reference(
        &self,
        inp: &Inputs<D>,
        grads: Gradients<f32, D>,
        dropout: &mut Dropout,
    ) -> Logits<D, OwnedTape<f32, D>> {
        let tok = self.params[self.table.tok_emb()].clone().traced(grads);
        self.forward_from(tok, inp, dropout)
    }

    /// The forward pass, starting from the (possibly traced) embedding table.
    fn forward_from<T: Tape<f32, D> + Merge<NoneTape>>(
        &self,
        tok_table: Tensor<(usize, usize), f32, D, T>,
        inp: &Inputs<D>,
        dropout: &mut Dropout,
    ) -> Logits<D, T> {
        use BlockParam::*;
        let (b, s) = *inp.ids.shape();
        let d = self.cfg.d_model;
        let h = self.cfg.n_heads;
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();
        let t = &self.table;
        let p = |i: usize| &self.params[i];
        // (b, s, d): token embedding + position embedding gathered by position id
        let tok = tok_table.gather(inp.ids.clone());
        // (a sinusoidal table also gets a gradient here, but it is not a
        // parameter, so nothing reads or applies it)
        let pos = self
            .pos_table()
            .retaped::<T>()
            .gather(inp.positions.clone());
        let mut x = dropout.apply(tok + pos);
        // (b, h, s, s): the same mask for every head
        let mask = inp.mask.clone().broadcast_like::<_, Axis<1>>(&(b, h, s, s));
        for l in 0..t.n_layers() {
            let w = |q: BlockParam| p(t.block(l, q));
            // attention sub-layer: x + Wo·softmax(q·kᵀ/√dh + mask)·v
            let xn = layer_norm(x.retaped::<T>(), w(Ln1Gain), w(Ln1Bias));
            let q = linear(xn.retaped::<T>(), w(WqWeight), w(WqBias))
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 1, 3>>(); // (b, h, s, dh)
            let k = linear(xn.retaped::<T>(), w(WkWeight), w(WkBias))
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 3, 1>>(); // (b, h, dh, s)
            let v = linear(xn, w(WvWeight), w(WvBias))
                .reshape_like(&(b, s, h, dh))
                .permute::<_, Axes4<0, 2, 1, 3>>(); // (b, h, s, dh)
            let att = (q.matmul(k) * scale + mask.clone()).softmax::<Axis<3>>(); // (b, h, s, s)
            let att = dropout.apply(att);
            let ctx = att
                .matmul(v) // (b, h, s, dh)
                .permute::<_, Axes4<0, 2, 1, 3>>()
                .reshape_like(&(b, s, d)); // (b, s, d)
            x = x + dropout.apply(linear(ctx, w(WoWeight), w(WoBias)));
            // feed-forward sub-layer: x + W2·gelu(W1·ln(x))
            let xn = layer_norm(x.retaped::<T>(), w(Ln2Gain), w(Ln2Bias));
            let ff = linear(
                linear(xn, w(Ff1Weight), w(Ff1Bias)).fast_gelu(),
                w(Ff2Weight),
                w(Ff2Bias),
            );
            x = x + dropout.apply(ff);
        }
        let (g, bias) = t.ln_f();
        let x = layer_norm(x, p(g), p(bias));
        let (hw, hb) = t.head();
        linear(x, p(hw), p(hb)) // (b, s, vocab)
    }
}

/// The fixed sinusoidal position table of "Attention is all you need",
/// scaled to the RMS of the token embeddings at initialisation
/// (`params::INIT_STD`).
///
/// Why scaled: the unscaled table (entries ±1, RMS 0.71) is 35x larger than
/// GPT-2-initialised token embeddings (std 0.02), and the model then barely
/// sees which token sits where: on base-7 addition (3 digits, 1000 steps)
/// it reached 3-5% exact match against 100% with learned positions.
/// Vaswani et al. scale the embeddings up by √d instead; scaling the table
/// down keeps the init of every other parameter as it is.
fn sinusoidal_table(max_len: usize, d: usize) -> Vec<f32> {
    let scale = params::INIT_STD as f64 * std::f64::consts::SQRT_2;
    let mut t = vec![0.0f32; max_len * d];
    for pos in 0..max_len {
        for i in 0..d {
            let freq = 1.0 / 10000f64.powf((2 * (i / 2)) as f64 / d as f64);
            let angle = pos as f64 * freq;
            let v = if i % 2 == 0 { angle.sin() } else { angle.cos() };
            t[pos * d + i] = (scale * v) as f32;
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
