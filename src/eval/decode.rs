//! Decoders: greedy, and sampling with a temperature and nucleus (top-p)
//! cut-off, applying `<bksp>` to the state.
//!
//! Decoding runs the model on the current *state*: when the model emits
//! `<bksp>`, the last generated token is popped from the state (never the
//! prompt), exactly the SequenceMatch transition `s' = s[:-1]`. The emitted
//! action sequence is kept too.
//!
//! [`generate`] decodes incrementally with a key/value cache
//! ([`CachedDecoder`]): each step runs the model for the one new position
//! only, and `<bksp>` pops the last cache entry instead of recomputing.
//! [`generate_uncached`] reruns the full forward pass on every state each
//! step; it is the reference the cached path is tested against, and picks
//! the same tokens for the same seed.
//!
//! [`generate_until`] continues already-filled states until a stop token
//! (one line of steps, for the step-level beam search of [`super::beam`])
//! and scores each continuation by its log-probability at temperature 1;
//! it runs the same decoding loop as [`generate_cached`].

use rand::{rngs::StdRng, Rng};

use crate::data::vocab::{BKSP, BOS, EOS, PAD};
use crate::data::{Batch, MASKED};
use crate::model::decode::{CachedDecoder, RowCache};
use crate::model::Transformer;
use crate::train::Backend;

/// How to pick the next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decoding {
    /// Argmax (ties go to the lowest id).
    Greedy,
    /// Sample from softmax(logits / temperature), temperature > 0,
    /// restricted to the smallest set of most likely tokens whose
    /// probability reaches `top_p` (nucleus sampling; 1 = no cut-off).
    Sample { temperature: f32, top_p: f32 },
}

/// One generated continuation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Every action the model emitted (including `<bksp>`, excluding `<eos>`).
    pub actions: Vec<u32>,
    /// The generated part of the final state: actions with backspaces applied.
    pub output: Vec<u32>,
    /// Whether the model emitted `<eos>` within the budget.
    pub finished: bool,
}

/// Left-padded batch of states for next-token prediction at the last column.
fn state_batch(states: &[Vec<u32>]) -> Batch {
    let b = states.len();
    let s = states.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut ids = vec![PAD as usize; b * s];
    let mut positions = vec![0usize; b * s];
    let mut mask = vec![MASKED; b * s * s];
    for (r, st) in states.iter().enumerate() {
        let pad = s - st.len();
        for (i, &t) in st.iter().enumerate() {
            ids[r * s + pad + i] = t as usize;
            positions[r * s + pad + i] = i;
        }
        for q in 0..s {
            if q < pad {
                mask[(r * s + q) * s + q] = 0.0; // padding query: itself only
            } else {
                for k in pad..=q {
                    mask[(r * s + q) * s + k] = 0.0;
                }
            }
        }
    }
    Batch {
        batch: b,
        seq: s,
        ids,
        targets: vec![PAD as usize; b * s],
        weights: vec![0.0; b * s],
        completion: vec![false; b * s],
        positions,
        mask,
    }
}

/// The next token: [`pick_with`] on a fresh uniform draw from `rng` when
/// sampling (exactly one draw), none when greedy.
fn pick(logits: &[f32], decoding: Decoding, rng: &mut StdRng) -> u32 {
    pick_with(logits, decoding, draw(decoding, rng))
}

/// The uniform number [`pick_with`] needs: one draw from `rng` when
/// sampling, none (0) when greedy.
fn draw(decoding: Decoding, rng: &mut StdRng) -> f64 {
    match decoding {
        Decoding::Greedy => 0.0,
        Decoding::Sample { .. } => rng.gen::<f64>(),
    }
}

/// The next token given the logits and, when sampling, a uniform number
/// `u` in `[0, 1)` (ignored when greedy): the first token at which the
/// running sum of the weights reaches `u` times their total.
fn pick_with(logits: &[f32], decoding: Decoding, u: f64) -> u32 {
    match decoding {
        Decoding::Greedy => {
            let mut best = 0;
            for (i, &l) in logits.iter().enumerate() {
                if l > logits[best] {
                    best = i;
                }
            }
            best as u32
        }
        Decoding::Sample { temperature, top_p } => {
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let mut w: Vec<f64> = logits
                .iter()
                .map(|&l| (((l - max) / temperature) as f64).exp())
                .collect();
            if top_p < 1.0 {
                nucleus(&mut w, top_p as f64);
            }
            let total: f64 = w.iter().sum();
            let mut u = u * total;
            for (i, wi) in w.iter().enumerate() {
                u -= wi;
                if u <= 0.0 {
                    return i as u32;
                }
            }
            (w.len() - 1) as u32
        }
    }
}

/// Zeroes every weight outside the nucleus: the most likely tokens (ties
/// by lower id) until their share of the total reaches `top_p`.
fn nucleus(w: &mut [f64], top_p: f64) {
    let total: f64 = w.iter().sum();
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
    let mut mass = 0.0;
    let mut keep = order.len();
    for (k, &i) in order.iter().enumerate() {
        mass += w[i];
        if mass >= top_p * total {
            keep = k + 1;
            break;
        }
    }
    for &i in &order[keep..] {
        w[i] = 0.0;
    }
}

/// The initial states: `<bos>` followed by each prompt.
fn initial_states(prompts: &[Vec<u32>]) -> Vec<Vec<u32>> {
    prompts
        .iter()
        .map(|p| std::iter::once(BOS).chain(p.iter().copied()).collect())
        .collect()
}

fn empty_generations(n: usize) -> Vec<Generation> {
    vec![
        Generation {
            actions: vec![],
            output: vec![],
            finished: false
        };
        n
    ]
}

/// Generates up to `max_new` actions after each prompt (`<bos>` is added).
/// Rows are decoded together; `rng` is only used when sampling (one draw
/// per active row per step, in row order).
///
/// Decodes with a key/value cache ([`generate_cached`]) on a host copy of
/// the weights made for this call; gives the same generations as
/// [`generate_uncached`]. To decode several batches with the same weights,
/// build one [`CachedDecoder`] and call [`generate_cached`] for each: the
/// copy is then made once.
pub fn generate<D: Backend>(
    model: &Transformer<D>,
    dev: &D,
    prompts: &[Vec<u32>],
    max_new: usize,
    decoding: Decoding,
    rng: &mut StdRng,
) -> Vec<Generation> {
    let _ = dev; // the cached decoder runs on the host
    generate_cached(&CachedDecoder::new(model), prompts, max_new, decoding, rng)
}

/// [`generate`] with an already built [`CachedDecoder`] (build it once per
/// set of weights to decode many batches).
///
/// Each step is one parallel pass over the active rows
/// ([`CachedDecoder::push_then`]): the token picked for a row at the step
/// before is run through the model, then the row's next token is picked
/// from its logits. The uniform numbers for sampling are drawn from `rng`
/// before the pass, one per active row in row order, so the generations
/// do not depend on the thread count.
pub fn generate_cached(
    decoder: &CachedDecoder,
    prompts: &[Vec<u32>],
    max_new: usize,
    decoding: Decoding,
    rng: &mut StdRng,
) -> Vec<Generation> {
    decoder.run(prompts.len(), || {
        generate_on(decoder, prompts, max_new, decoding, rng)
    })
}

/// [`generate_cached`] on the calling thread (which may split the steps
/// over the pool).
fn generate_on(
    decoder: &CachedDecoder,
    prompts: &[Vec<u32>],
    max_new: usize,
    decoding: Decoding,
    rng: &mut StdRng,
) -> Vec<Generation> {
    let states = initial_states(prompts);
    let max_len = decoder.cfg().max_len;
    // A state that starts at max_len or longer is never decoded (as in the
    // uncached path), so it is not prefilled either.
    let decoded: Vec<usize> = (0..states.len())
        .filter(|&r| max_new > 0 && states[r].len() < max_len)
        .collect();
    let prompts_to_fill: Vec<&[u32]> = decoded.iter().map(|&r| &states[r][..]).collect();
    let mut rows: Vec<Option<RowCache>> = vec![None; states.len()];
    for (r, mut row) in decoded.iter().zip(decoder.start_many(&prompts_to_fill)) {
        row.reserve(max_new.min(max_len - row.len()));
        rows[*r] = Some(row);
    }
    let budgets = vec![max_new; prompts.len()];
    decode_rows(decoder, &mut rows, &budgets, decoding, None, false, rng)
        .into_iter()
        .map(|d| d.generation)
        .collect()
}

/// What [`decode_rows`] produced for one row.
struct Decoded {
    generation: Generation,
    /// The last token picked and not yet run through the model (it is in
    /// `generation.output`, not in the row's cache).
    pending: Option<u32>,
    /// Sum of the log-probabilities at temperature 1 of every action picked,
    /// `<eos>` included (0 unless scoring).
    logprob: f64,
    /// Whether the row emitted the stop token.
    stopped: bool,
}

/// The decoding loop shared by [`generate_cached`] and [`generate_until`]:
/// continues every prefilled row (`None`: not decoded) until it emits
/// `<eos>`, emits `stop`, has emitted `max_new[r]` actions or reaches
/// `max_len`. Each step is one parallel pass over the active rows
/// ([`CachedDecoder::push_then`]): the token picked for a row at the step
/// before is run through the model, then the row's next token is picked
/// from its logits (and, when `score`, its log-probability at temperature
/// 1 taken, in the same pass). `generation.output` is what the row's state
/// gained: its tokens past their count at the start, plus the pending one.
fn decode_rows(
    decoder: &CachedDecoder,
    rows: &mut [Option<RowCache>],
    max_new: &[usize],
    decoding: Decoding,
    stop: Option<u32>,
    score: bool,
    rng: &mut StdRng,
) -> Vec<Decoded> {
    debug_assert_ne!(stop, Some(BKSP), "<bksp> pops; it cannot end a row");
    let n = rows.len();
    let max_len = decoder.cfg().max_len;
    let starts: Vec<usize> = rows
        .iter()
        .map(|r| r.as_ref().map_or(0, RowCache::len))
        .collect();
    let mut out: Vec<Decoded> = empty_generations(n)
        .into_iter()
        .map(|generation| Decoded {
            generation,
            pending: None,
            logprob: 0.0,
            stopped: false,
        })
        .collect();
    let steps = max_new.iter().copied().max().unwrap_or(0);
    // The pending token is run through the model at the start of the next
    // step, only for rows still active then, so the last step costs nothing.
    for step in 0..steps {
        let active: Vec<usize> = (0..n)
            .filter(|&r| {
                let len = rows[r].as_ref().map_or(usize::MAX, RowCache::len)
                    + out[r].pending.is_some() as usize;
                let done = out[r].generation.finished || out[r].stopped;
                !done && step < max_new[r] && len < max_len
            })
            .collect();
        if active.is_empty() {
            break;
        }
        let draws: Vec<f64> = active.iter().map(|_| draw(decoding, rng)).collect();
        let mut toks = Vec::with_capacity(active.len());
        let mut batch: Vec<&mut RowCache> = Vec::with_capacity(active.len());
        let mut next = active.iter().peekable();
        for (r, row) in rows.iter_mut().enumerate() {
            if next.next_if_eq(&&r).is_some() {
                batch.push(row.as_mut().expect("active rows are prefilled"));
                toks.push(out[r].pending.take());
            }
        }
        let picks = decoder.push_then(&mut batch, &toks, |i, row| {
            let tok = pick_with(row.logits(), decoding, draws[i]);
            let lp = if score {
                log_prob(row.logits(), tok)
            } else {
                0.0
            };
            (tok, lp)
        });
        drop(batch);
        for (&r, (tok, lp)) in active.iter().zip(picks) {
            let o = &mut out[r];
            o.logprob += lp;
            if tok == EOS {
                o.generation.finished = true;
                continue;
            }
            o.generation.actions.push(tok);
            if tok == BKSP {
                rows[r].as_mut().expect("active").pop(); // never below the protected state
            } else {
                o.pending = Some(tok);
            }
            o.stopped = Some(tok) == stop;
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        let mut st = match &rows[r] {
            Some(row) => row.tokens()[starts[r]..].to_vec(),
            None => vec![],
        };
        st.extend(o.pending);
        o.generation.output = st;
    }
    out
}

/// `log softmax(logits)[tok]` at temperature 1, in f64.
fn log_prob(logits: &[f32], tok: u32) -> f64 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[tok as usize] as f64 - max - sum.ln()
}

/// How a [`LineGeneration`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnd {
    /// It emitted the stop token (the last token of its output).
    Stop,
    /// It emitted `<eos>` (not in its output).
    Eos,
    /// It ran out of budget (`max_new` actions or `max_len` tokens) first.
    Budget,
}

/// One continuation of [`generate_until`].
#[derive(Clone, Debug)]
pub struct LineGeneration {
    /// Actions and output as in [`generate_cached`]; the output (`<bksp>`
    /// applied) ends with the stop token when `end` is [`LineEnd::Stop`].
    pub generation: Generation,
    /// How it ended.
    pub end: LineEnd,
    /// Log-probability of the continuation under the model at temperature 1
    /// (whatever temperature it was sampled at): the sum over every action,
    /// the stop token or `<eos>` included, of `log softmax(logits)[action]`.
    pub logprob: f64,
    /// The decoding state afterwards: the start state plus the output, less
    /// the last token of the output (picked but not yet run through the
    /// model; push it to continue from there).
    pub state: RowCache,
}

/// Continues each of `rows` (states prefilled with
/// [`CachedDecoder::start_many`], or left by an earlier call) until it
/// emits `stop` (e.g. `\n`: one line), emits `<eos>`, has emitted
/// `max_new[i]` actions or reaches `max_len`, and scores each continuation
/// by its log-probability at temperature 1. The given states are protected
/// ([`RowCache::protect`]): `<bksp>` never deletes into them. Rows are
/// decoded together as in [`generate_cached`] (the same loop, one draw per
/// active row per step in row order when sampling), so the result does not
/// depend on the thread count.
///
/// # Panics
/// If `max_new` does not have one budget per row, or `stop` is `<bksp>`.
pub fn generate_until(
    decoder: &CachedDecoder,
    rows: Vec<RowCache>,
    max_new: &[usize],
    decoding: Decoding,
    stop: u32,
    rng: &mut StdRng,
) -> Vec<LineGeneration> {
    assert_eq!(rows.len(), max_new.len(), "one budget per row");
    assert_ne!(stop, BKSP, "<bksp> pops; it cannot end a row");
    let max_len = decoder.cfg().max_len;
    let mut rows: Vec<Option<RowCache>> = rows
        .into_iter()
        .zip(max_new)
        .map(|(mut row, &m)| {
            row.protect();
            row.reserve(m.min(max_len.saturating_sub(row.len())));
            Some(row)
        })
        .collect();
    let n = rows.len();
    let decoded = decoder.run(n, || {
        decode_rows(decoder, &mut rows, max_new, decoding, Some(stop), true, rng)
    });
    decoded
        .into_iter()
        .zip(rows)
        .map(|(d, row)| LineGeneration {
            end: if d.stopped {
                LineEnd::Stop
            } else if d.generation.finished {
                LineEnd::Eos
            } else {
                LineEnd::Budget
            },
            generation: d.generation,
            logprob: d.logprob,
            state: row.expect("every row is decoded"),
        })
        .collect()
}

/// [`generate`] without a cache: every step reruns the full forward pass
/// on the left-padded batch of current states (on `dev`). The reference
/// for the cached path.
pub fn generate_uncached<D: Backend>(
    model: &Transformer<D>,
    dev: &D,
    prompts: &[Vec<u32>],
    max_new: usize,
    decoding: Decoding,
    rng: &mut StdRng,
) -> Vec<Generation> {
    let _ = dev; // the batch goes to the device inside `D::logits`
    let mut states = initial_states(prompts);
    let prompt_lens: Vec<usize> = states.iter().map(Vec::len).collect();
    let mut gens = empty_generations(prompts.len());
    let max_len = model.cfg.max_len;
    for _ in 0..max_new {
        let active: Vec<usize> = (0..states.len())
            .filter(|&r| !gens[r].finished && states[r].len() < max_len)
            .collect();
        if active.is_empty() {
            break;
        }
        let batch: Vec<Vec<u32>> = active.iter().map(|&r| states[r].clone()).collect();
        let inputs = state_batch(&batch);
        let all = D::logits(model, &inputs);
        let (b, s) = (inputs.batch, inputs.seq);
        let v = all.len() / (b * s);
        for (row, &r) in active.iter().enumerate() {
            let last = &all[(row * s + s - 1) * v..(row * s + s) * v];
            let tok = pick(last, decoding, rng);
            if tok == EOS {
                gens[r].finished = true;
                continue;
            }
            gens[r].actions.push(tok);
            if tok == BKSP {
                if states[r].len() > prompt_lens[r] {
                    states[r].pop();
                }
            } else {
                states[r].push(tok);
            }
        }
        debug_assert_eq!(b, active.len());
    }
    for (g, (st, pl)) in gens.iter_mut().zip(states.iter().zip(&prompt_lens)) {
        g.output = st[*pl..].to_vec();
    }
    gens
}

/// Next-token logits (`vocab` values) for each state, by a full forward
/// pass on the left-padded batch of states, as [`generate_uncached`] sees
/// them. For checking the cached decoder.
pub fn last_logits_uncached<D: Backend>(
    model: &Transformer<D>,
    dev: &D,
    states: &[Vec<u32>],
) -> Vec<Vec<f32>> {
    if states.is_empty() {
        return vec![];
    }
    let _ = dev;
    let inputs = state_batch(states);
    let all = D::logits(model, &inputs);
    let s = inputs.seq;
    let v = all.len() / (inputs.batch * s);
    (0..states.len())
        .map(|r| all[(r * s + s - 1) * v..(r * s + s) * v].to_vec())
        .collect()
}
