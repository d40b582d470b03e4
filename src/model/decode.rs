//! Incremental decoding with a key/value cache, on the host.
//!
//! [`CachedDecoder`] is the model in decoding mode: it copies a
//! [`Transformer`]'s parameters to host memory once ([`HostParams`], the
//! same packed copy the fused path reads, so it works for any device),
//! packs every weight matrix for few-row products ([`PackedLinear`]), and
//! then runs the model one position at a time: each new token is embedded
//! at position id = its index in the state, every block attends from that
//! one position over the keys and values cached for the earlier positions
//! of the state, and the new key and value are appended to the cache.
//! `<bksp>` pops the last cache entry of every layer (and the logits stored
//! for it), so undoing a token costs nothing and the next prediction needs
//! no recomputation.
//!
//! A step of many rows ([`CachedDecoder::push_many`]) runs every linear
//! layer (q/k/v, output projection, both feed-forward layers, the head) as
//! one matrix product over the rows, and splits the rows over the threads
//! of the current rayon pool. Every output element of those products is
//! one multiply-add chain over its inputs in a fixed order, and attention
//! and layer norm work row by row, so a row's numbers never depend on which
//! rows are decoded with it or on the thread count.
//!
//! The state held by a [`RowCache`] is exactly the tokens present, which is
//! what the full forward pass sees for a left-padded state (position ids
//! `0..len`, padding masked out), so no mask is needed here. The numerics
//! are the fused forward pass's (`super::fused`: the same matmul kernel's
//! arithmetic, layer norm and GELU kernels, masked-softmax arithmetic); only
//! the order of the attention sums differs, so logits agree with
//! [`Transformer::forward`] to about 1e-6.

use std::cell::RefCell;

use dfdx::prelude::*;
use rayon::prelude::*;

use super::host::HostParams;
use super::{ModelConfig, Transformer};
use crate::data::vocab::BKSP;
use crate::kernels::attend::attend_one;
use crate::kernels::ops::{gelu_slice, layer_norm_rows};
use crate::kernels::packed::PackedLinear;

/// Fewest rows per thread in [`CachedDecoder::push_many`]: a thread's share
/// of a step must outweigh handing it over (a few microseconds; one row of
/// the quickstart model's step is about ten).
pub const ROWS_PER_THREAD: usize = 2;

/// Fewest rows of a half share in [`CachedDecoder::push_then`]: below
/// this a thread takes its whole share at once (each share streams every
/// weight matrix once per step).
const BALANCE_ROWS: usize = 16;

/// One block's weight matrices, packed (biases included).
struct PackedBlock {
    qkv: PackedLinear,
    wo: PackedLinear,
    ff1: PackedLinear,
    ff2: PackedLinear,
}

/// A model in decoding mode: a host copy of its parameters
/// ([`HostParams`], shared with the fused path), its weight matrices packed
/// for few-row products, run one position at a time.
///
/// Build it once per set of weights ([`CachedDecoder::new`]) and decode any
/// number of batches with it (`crate::eval::generate_cached`); a model that
/// changes afterwards (training) needs a new decoder.
pub struct CachedDecoder {
    cfg: ModelConfig,
    /// Embeddings and layer norms are read from here.
    w: HostParams,
    blocks: Vec<PackedBlock>,
    head: PackedLinear,
    /// Cap on the threads a step is split over (None: the current pool's).
    threads: Option<usize>,
}

/// The decoding state of one sequence: its tokens, and for every layer the
/// keys and values of every position, plus the logits predicted after each
/// position.
///
/// The first `protected` tokens (the prompt) can never be popped.
#[derive(Clone, Debug)]
pub struct RowCache {
    tokens: Vec<u32>,
    protected: usize,
    /// Per layer: `len * d_model` keys, position-major (all heads of one
    /// position are contiguous).
    keys: Vec<Vec<f32>>,
    /// Per layer: `len * d_model` values, laid out like `keys`.
    values: Vec<Vec<f32>>,
    /// `len * vocab`: the logits after each position.
    logits: Vec<f32>,
    d_model: usize,
    vocab: usize,
}

impl RowCache {
    /// The state: every token present (prompt included).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Number of tokens in the state.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the state is empty (only before anything was pushed).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many leading tokens are protected from [`RowCache::pop`].
    pub fn protected(&self) -> usize {
        self.protected
    }

    /// Next-token logits for the current state (`vocab` values), i.e. the
    /// model's output at the last position. Empty if the state is empty.
    pub fn logits(&self) -> &[f32] {
        let (v, n) = (self.vocab, self.tokens.len());
        if n == 0 {
            return &[];
        }
        &self.logits[(n - 1) * v..n * v]
    }

    /// Protects every token now present from [`RowCache::pop`]: a state
    /// decoding continues from (a beam-search state: prompt and accepted
    /// lines) is then as fixed as a freshly prefilled prompt.
    pub fn protect(&mut self) {
        self.protected = self.tokens.len();
    }

    /// Reserves room for `extra` more positions in every buffer.
    pub fn reserve(&mut self, extra: usize) {
        self.tokens.reserve(extra);
        for k in self.keys.iter_mut().chain(self.values.iter_mut()) {
            k.reserve(extra * self.d_model);
        }
        self.logits.reserve(extra * self.vocab);
    }

    /// Removes the last token and its cache entries in every layer, unless
    /// only protected tokens are left; returns the removed token.
    /// The logits of the previous state are restored without recomputation.
    pub fn pop(&mut self) -> Option<u32> {
        if self.tokens.len() <= self.protected {
            return None;
        }
        let tok = self.tokens.pop()?;
        let (n, d) = (self.tokens.len(), self.d_model);
        for k in &mut self.keys {
            k.truncate(n * d);
        }
        for val in &mut self.values {
            val.truncate(n * d);
        }
        self.logits.truncate(n * self.vocab);
        Some(tok)
    }
}

impl CachedDecoder {
    /// Copies `model`'s parameters to the host and packs them.
    pub fn new<D: Device<f32>>(model: &Transformer<D>) -> Self {
        let w = HostParams::of(model);
        let (d, f, v) = (w.d, w.f, w.v);
        let blocks = w
            .blocks
            .iter()
            .map(|b| PackedBlock {
                qkv: PackedLinear::new(&b.wqkv, &b.bqkv, d, 3 * d),
                wo: PackedLinear::new(&b.wo, &b.bo, d, d),
                ff1: PackedLinear::new(&b.w1, &b.b1, d, f),
                ff2: PackedLinear::new(&b.w2, &b.b2, f, d),
            })
            .collect();
        let head = PackedLinear::new(&w.head_w, &w.head_b, d, v);
        Self {
            cfg: model.cfg.clone(),
            w,
            blocks,
            head,
            threads: None,
        }
    }

    /// Caps the threads a step may be split over (default: every thread of
    /// the current rayon pool, `RAYON_NUM_THREADS` for the global one).
    /// The numbers do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// The model's hyper-parameters.
    pub fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Into how many parts a step of `rows` rows is split: one per thread
    /// of the current rayon pool (at most [`CachedDecoder::with_threads`]),
    /// each of at least [`ROWS_PER_THREAD`] rows.
    pub fn parts(&self, rows: usize) -> usize {
        let threads = rayon::current_num_threads().min(self.threads.unwrap_or(usize::MAX));
        threads.min(rows / ROWS_PER_THREAD).max(1)
    }

    /// Runs `f`, which decodes `rows` rows step after step, on a thread of
    /// the current rayon pool if its steps will be split over threads (see
    /// [`CachedDecoder::parts`]), else on the calling thread. A thread
    /// outside the pool that splits work waits for the pool to finish on a
    /// lock and is woken by the kernel every time; inside the pool, the
    /// thread that splits a step takes a part of it itself, and the pool's
    /// threads stay awake between the steps.
    pub fn run<R: Send>(&self, rows: usize, f: impl FnOnce() -> R + Send) -> R {
        if self.parts(rows) > 1 && rayon::current_thread_index().is_none() {
            rayon::scope(|_| f())
        } else {
            f()
        }
    }

    /// An empty state with no protected tokens.
    pub fn empty(&self) -> RowCache {
        RowCache {
            tokens: vec![],
            protected: 0,
            keys: vec![vec![]; self.cfg.n_layers],
            values: vec![vec![]; self.cfg.n_layers],
            logits: vec![],
            d_model: self.cfg.d_model,
            vocab: self.cfg.vocab_size,
        }
    }

    /// Prefills a state with `prompt` (which should start with `<bos>`, as
    /// in [`crate::eval::generate`]); the prompt is protected from `pop`.
    ///
    /// # Panics
    /// If the prompt is empty or longer than `max_len`.
    pub fn start(&self, prompt: &[u32]) -> RowCache {
        self.start_many(&[prompt]).pop().expect("one row")
    }

    /// [`CachedDecoder::start`] for many prompts at once: position `i` of
    /// every prompt longer than `i` is run in one batched step.
    pub fn start_many(&self, prompts: &[&[u32]]) -> Vec<RowCache> {
        assert!(
            prompts.iter().all(|p| !p.is_empty()),
            "CachedDecoder::start: empty prompt"
        );
        let mut rows: Vec<RowCache> = prompts
            .iter()
            .map(|p| {
                let mut row = self.empty();
                row.reserve(p.len() + 1);
                row
            })
            .collect();
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        for i in 0..longest {
            let (mut batch, mut toks) = (vec![], vec![]);
            for (row, p) in rows.iter_mut().zip(prompts) {
                if let Some(&t) = p.get(i) {
                    batch.push(row);
                    toks.push(t);
                }
            }
            self.push_many(&mut batch, &toks);
        }
        for (row, p) in rows.iter_mut().zip(prompts) {
            row.protected = p.len();
        }
        rows
    }

    /// Applies one action the way decoding does: `<bksp>` pops the last
    /// token (a no-op when only the prompt is left), anything else is
    /// pushed. Returns whether the state changed.
    pub fn apply(&self, row: &mut RowCache, action: u32) -> bool {
        if action == BKSP {
            row.pop().is_some()
        } else {
            self.push(row, action);
            true
        }
    }

    /// Appends one token to one state (see [`CachedDecoder::push_many`]).
    pub fn push(&self, row: &mut RowCache, token: u32) {
        self.push_many(&mut [row], &[token]);
    }

    /// Appends `tokens[i]` to `rows[i]` for every `i`, running the rows
    /// together: every linear layer is one matrix product over the rows.
    /// The rows are split over the current rayon pool's threads (see
    /// [`CachedDecoder::parts`]); every row's numbers are the same however
    /// the batch is made up or split.
    ///
    /// # Panics
    /// If a state already holds `max_len` tokens, or a token is outside the
    /// vocabulary.
    pub fn push_many(&self, rows: &mut [&mut RowCache], tokens: &[u32]) {
        assert_eq!(rows.len(), tokens.len(), "one token per row");
        let tokens: Vec<Option<u32>> = tokens.iter().map(|&t| Some(t)).collect();
        self.push_then(rows, &tokens, |_, _| ());
    }

    /// One decoding step: appends `tokens[i]` to `rows[i]` where it is
    /// `Some`, then returns `then(i, rows[i])` for every row (e.g. picking
    /// the next token from its logits), both in the same parallel pass as
    /// [`CachedDecoder::push_many`].
    ///
    /// # Panics
    /// As [`CachedDecoder::push_many`].
    pub fn push_then<R: Send>(
        &self,
        rows: &mut [&mut RowCache],
        tokens: &[Option<u32>],
        then: impl Fn(usize, &RowCache) -> R + Sync,
    ) -> Vec<R> {
        assert_eq!(rows.len(), tokens.len(), "one token per row");
        let n = rows.len();
        let parts = self.parts(n);
        if parts <= 1 {
            return self.push_part(rows, tokens, 0, &then);
        }
        // a thread's share in two halves once they are large, so that a
        // thread the system holds back can be helped out (work stealing)
        let mut chunk = n.div_ceil(parts);
        if chunk >= 2 * BALANCE_ROWS {
            chunk = chunk.div_ceil(2);
        }
        let outs: Vec<Vec<R>> = rows
            .par_chunks_mut(chunk)
            .zip(tokens.par_chunks(chunk))
            .enumerate()
            .map(|(c, (r, t))| self.push_part(r, t, c * chunk, &then))
            .collect();
        outs.into_iter().flatten().collect()
    }

    /// [`CachedDecoder::push_then`] on the calling thread, for rows whose
    /// first has index `first` in the whole step.
    fn push_part<R>(
        &self,
        rows: &mut [&mut RowCache],
        tokens: &[Option<u32>],
        first: usize,
        then: &impl Fn(usize, &RowCache) -> R,
    ) -> Vec<R> {
        let (mut push, mut toks) = (vec![], vec![]);
        for (row, t) in rows.iter_mut().zip(tokens) {
            if let Some(t) = *t {
                push.push(&mut **row);
                toks.push(t);
            }
        }
        if !push.is_empty() {
            SCRATCH.with(|s| self.forward_rows(&mut push, &toks, &mut s.borrow_mut()));
        }
        rows.iter()
            .enumerate()
            .map(|(i, row)| then(first + i, row))
            .collect()
    }

    /// The model on one new position of each row, on the calling thread.
    fn forward_rows(&self, rows: &mut [&mut RowCache], tokens: &[u32], s: &mut Scratch) {
        let n = rows.len();
        let cfg = &self.cfg;
        let (d, f, vocab) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
        let h = cfg.n_heads;
        let scale = 1.0 / ((d / h) as f32).sqrt();
        let max_t = rows.iter().map(|r| r.tokens.len() + 1).max().unwrap_or(1);
        let Scratch {
            x,
            xn,
            rstd,
            qkv,
            ctx,
            hidden,
            act,
            scores,
            logits,
        } = s;
        let x = sized(x, n * d);
        let xn = sized(xn, n * d);
        let rstd = sized(rstd, n);
        let qkv = sized(qkv, n * 3 * d);
        let ctx = sized(ctx, n * d);
        let hidden = sized(hidden, n * f);
        let act = sized(act, n * f);
        let scores = sized(scores, h * max_t);
        let logits = sized(logits, n * vocab);

        // x = tok_emb[token] + pos[index in the state]
        for (r, (row, &t)) in rows.iter().zip(tokens).enumerate() {
            let (t, p) = (t as usize, row.tokens.len());
            assert!(t < vocab, "token {t} outside the vocabulary");
            assert!(
                p < cfg.max_len,
                "state already holds max_len = {} tokens",
                cfg.max_len
            );
            let (te, pe) = (
                &self.w.tok_emb[t * d..(t + 1) * d],
                &self.w.pos[p * d..(p + 1) * d],
            );
            for ((o, &a), &b) in x[r * d..(r + 1) * d].iter_mut().zip(te).zip(pe) {
                *o = a + b;
            }
        }
        for (l, (blk, pk)) in self.w.blocks.iter().zip(&self.blocks).enumerate() {
            // attention sub-layer: x += Wo·attend(q; cached k, v) + bo
            layer_norm_rows(x, &blk.ln1.0, &blk.ln1.1, &mut [], xn, rstd);
            pk.qkv.forward(xn, qkv, false);
            for (r, row) in rows.iter_mut().enumerate() {
                let qkv_r = &qkv[r * 3 * d..(r + 1) * 3 * d];
                let (q, kv) = qkv_r.split_at(d);
                let (k, v) = kv.split_at(d);
                row.keys[l].extend_from_slice(k);
                row.values[l].extend_from_slice(v);
                attend_one(
                    q,
                    &row.keys[l],
                    &row.values[l],
                    h,
                    scale,
                    scores,
                    &mut ctx[r * d..(r + 1) * d],
                );
            }
            pk.wo.forward(ctx, x, true);
            // feed-forward sub-layer: x += W2·gelu(W1·ln(x) + b1) + b2
            layer_norm_rows(x, &blk.ln2.0, &blk.ln2.1, &mut [], xn, rstd);
            pk.ff1.forward(xn, hidden, false);
            gelu_slice(hidden, act);
            pk.ff2.forward(act, x, true);
        }
        layer_norm_rows(x, &self.w.ln_f.0, &self.w.ln_f.1, &mut [], xn, rstd);
        self.head.forward(xn, logits, false);
        for (r, (row, &t)) in rows.iter_mut().zip(tokens).enumerate() {
            row.tokens.push(t);
            row.logits
                .extend_from_slice(&logits[r * vocab..(r + 1) * vocab]);
        }
    }
}

/// Per-thread work buffers of [`CachedDecoder::forward_rows`], reused
/// across steps.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    rstd: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    hidden: Vec<f32>,
    act: Vec<f32>,
    scores: Vec<f32>,
    logits: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The first `len` values of `v`, grown (with zeros) if shorter.
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}
