//! Incremental decoding with a key/value cache, on the host.
//!
//! [`CachedDecoder`] is the model in decoding mode: it copies a
//! [`Transformer`]'s parameters to host memory once ([`HostParams`], the
//! same packed copy the fused path reads; so it works for any device) and then runs the model one position at
//! a time: each new token is embedded at position id = its index in the
//! state, every block attends from that one position over the keys and
//! values cached for the earlier positions of the state, and the new key and
//! value are appended to the cache. `<bksp>` pops the last cache entry of
//! every layer (and the logits stored for it), so undoing a token costs
//! nothing and the next prediction needs no recomputation.
//!
//! The state held by a [`RowCache`] is exactly the tokens present, which is
//! what the full forward pass sees for a left-padded state (position ids
//! `0..len`, padding masked out), so no mask is needed here. The numerics
//! follow the dfdx forward pass op for op (layer norm with biased variance
//! and eps 1e-5, dfdx 0.13's tanh `fast_gelu`, max-shifted softmax); only
//! the summation order of the dot products differs, so logits agree with
//! [`Transformer::forward`] to about 1e-6.

use dfdx::prelude::*;

use super::host::HostParams;
use super::{ModelConfig, Transformer};
use crate::data::vocab::BKSP;

/// Fewest rows per thread in [`CachedDecoder::push_many`]: below this a
/// step is too short to pay for spawning a thread.
pub const ROWS_PER_THREAD: usize = 16;

/// A model in decoding mode: a host copy of its parameters
/// ([`HostParams`], shared with the fused path) run one position at a time.
///
/// Build it once per set of weights ([`CachedDecoder::new`]); a model that
/// changes afterwards (training) needs a new decoder.
pub struct CachedDecoder {
    cfg: ModelConfig,
    w: HostParams,
    threads: usize,
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
    /// Copies `model`'s parameters to the host.
    pub fn new<D: Device<f32>>(model: &Transformer<D>) -> Self {
        Self {
            cfg: model.cfg.clone(),
            w: HostParams::of(model),
            threads: default_threads(),
        }
    }

    /// Caps the threads [`CachedDecoder::push_many`] may use (default:
    /// `RAYON_NUM_THREADS` if set, else the available parallelism).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The model's hyper-parameters.
    pub fn cfg(&self) -> &ModelConfig {
        &self.cfg
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
    /// together so that every weight matrix is read once per step. Large
    /// batches are split over threads (at least [`ROWS_PER_THREAD`] rows
    /// each, see [`CachedDecoder::with_threads`]); every row's numbers are
    /// the same however the batch is split.
    ///
    /// # Panics
    /// If a state already holds `max_len` tokens, or a token is outside the
    /// vocabulary.
    pub fn push_many(&self, rows: &mut [&mut RowCache], tokens: &[u32]) {
        assert_eq!(rows.len(), tokens.len(), "one token per row");
        let n = rows.len();
        let threads = self.threads.min(n / ROWS_PER_THREAD);
        if threads <= 1 {
            return self.push_chunk(rows, tokens);
        }
        let chunk = n.div_ceil(threads);
        std::thread::scope(|s| {
            let mut parts = rows.chunks_mut(chunk).zip(tokens.chunks(chunk));
            let first = parts.next();
            for (r, t) in parts {
                s.spawn(move || self.push_chunk(r, t));
            }
            if let Some((r, t)) = first {
                self.push_chunk(r, t);
            }
        });
    }

    /// [`CachedDecoder::push_many`] on the current thread.
    fn push_chunk(&self, rows: &mut [&mut RowCache], tokens: &[u32]) {
        let n = rows.len();
        if n == 0 {
            return;
        }
        let cfg = &self.cfg;
        let (d, f, vocab) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
        let h = cfg.n_heads;
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();

        // x = tok_emb[token] + pos[index in the state]
        let mut x = vec![0.0f32; n * d];
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

        let mut xn = vec![0.0f32; n * d];
        let mut qkv = vec![0.0f32; n * 3 * d];
        let mut ctx = vec![0.0f32; n * d];
        let mut proj = vec![0.0f32; n * d];
        let mut hidden = vec![0.0f32; n * f];
        let max_t = rows.iter().map(|r| r.tokens.len() + 1).max().unwrap_or(1);
        let mut scores = vec![0.0f32; max_t];
        for (l, blk) in self.w.blocks.iter().enumerate() {
            // attention sub-layer
            layer_norm_rows(&x, d, &blk.ln1.0, &blk.ln1.1, &mut xn);
            matmul_bias(&xn, d, &blk.wqkv, &blk.bqkv, &mut qkv);
            for (r, row) in rows.iter_mut().enumerate() {
                let qkv_r = &qkv[r * 3 * d..(r + 1) * 3 * d];
                let (q, kv) = qkv_r.split_at(d);
                let (k, v) = kv.split_at(d);
                row.keys[l].extend_from_slice(k);
                row.values[l].extend_from_slice(v);
                attend(
                    q,
                    &row.keys[l],
                    &row.values[l],
                    h,
                    scale,
                    &mut scores,
                    &mut ctx[r * d..(r + 1) * d],
                );
            }
            matmul_bias(&ctx, d, &blk.wo, &blk.bo, &mut proj);
            add_assign(&mut x, &proj);
            // feed-forward sub-layer
            layer_norm_rows(&x, d, &blk.ln2.0, &blk.ln2.1, &mut xn);
            matmul_bias(&xn, d, &blk.w1, &blk.b1, &mut hidden);
            for v in hidden.iter_mut() {
                *v = fast_gelu(*v);
            }
            matmul_bias(&hidden, f, &blk.w2, &blk.b2, &mut proj);
            add_assign(&mut x, &proj);
        }
        layer_norm_rows(&x, d, &self.w.ln_f.0, &self.w.ln_f.1, &mut xn);
        let mut logits = vec![0.0f32; n * vocab];
        matmul_bias(&xn, d, &self.w.head_w, &self.w.head_b, &mut logits);
        for (r, (row, &t)) in rows.iter_mut().zip(tokens).enumerate() {
            row.tokens.push(t);
            row.logits
                .extend_from_slice(&logits[r * vocab..(r + 1) * vocab]);
        }
    }
}

/// `RAYON_NUM_THREADS` if set to a positive number (the knob the rest of
/// the crate's CPU work obeys), else the available parallelism.
fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |t| t.get()))
}

/// dfdx 0.13's `fast_gelu` (tanh approximation), same operation order.
#[inline(always)]
fn fast_gelu(x: f32) -> f32 {
    let alpha = x + 0.044715f32 * x.powi(3);
    0.5f32 * x * (1.0 + (std::f32::consts::FRAC_2_PI.sqrt() * alpha).tanh())
}

/// Row-wise layer norm as dfdx's `normalize` (biased variance, eps inside
/// the square root), then `* gain + bias`.
fn layer_norm_rows(x: &[f32], d: usize, g: &[f32], b: &[f32], out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let std = (var + 1e-5f32).sqrt();
        for (((o, &v), &gi), &bi) in or.iter_mut().zip(xr).zip(g).zip(b) {
            *o = (v - mean) / std * gi + bi;
        }
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `y (n, m) = x (n, k) · w (k, m) + b (1, m)`, all row-major, with
/// `k = x.len() / n`: four rows of `w` at a time are applied to every row
/// of `x`, so `w` is streamed once for all rows.
fn matmul_bias(x: &[f32], k: usize, w: &[f32], b: &[f32], y: &mut [f32]) {
    let m = b.len();
    debug_assert_eq!(w.len(), k * m);
    let n = x.len() / k;
    debug_assert_eq!(y.len(), n * m);
    for yr in y.chunks_exact_mut(m) {
        yr.copy_from_slice(b);
    }
    let mut i = 0;
    while i + 4 <= k {
        let w0 = &w[i * m..(i + 1) * m];
        let w1 = &w[(i + 1) * m..(i + 2) * m];
        let w2 = &w[(i + 2) * m..(i + 3) * m];
        let w3 = &w[(i + 3) * m..(i + 4) * m];
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(m)) {
            let (a0, a1, a2, a3) = (xr[i], xr[i + 1], xr[i + 2], xr[i + 3]);
            for ((((o, &p0), &p1), &p2), &p3) in yr.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                *o += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3;
            }
        }
        i += 4;
    }
    while i < k {
        let wi = &w[i * m..(i + 1) * m];
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(m)) {
            let a = xr[i];
            for (o, &p) in yr.iter_mut().zip(wi) {
                *o += a * p;
            }
        }
        i += 1;
    }
}

/// Multi-head attention of one query over `t` cached positions:
/// `out = softmax(q·kᵀ·scale)·v` per head.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    h: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    let dh = d / h;
    let t = keys.len() / d;
    let scores = &mut scores[..t];
    for hh in 0..h {
        let qh = &q[hh * dh..(hh + 1) * dh];
        let mut max = f32::NEG_INFINITY;
        for (j, s) in scores.iter_mut().enumerate() {
            let kh = &keys[j * d + hh * dh..j * d + (hh + 1) * dh];
            let dot: f32 = qh.iter().zip(kh).map(|(&a, &b)| a * b).sum();
            *s = dot * scale;
            max = max.max(*s);
        }
        let mut total = 0.0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        let oh = &mut out[hh * dh..(hh + 1) * dh];
        oh.fill(0.0);
        for (j, &s) in scores.iter().enumerate() {
            let p = s / total;
            let vh = &values[j * d + hh * dh..j * d + (hh + 1) * dh];
            for (o, &vv) in oh.iter_mut().zip(vh) {
                *o += p * vv;
            }
        }
    }
}
