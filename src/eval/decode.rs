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
    let prompt_lens: Vec<usize> = states.iter().map(Vec::len).collect();
    let max_len = decoder.cfg().max_len;
    let mut gens = empty_generations(prompts.len());
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
    // Token picked on the previous step and not yet run through the model:
    // the work is done at the start of the next step, only for rows still
    // active then, so the last step costs nothing.
    let mut pending: Vec<Option<u32>> = vec![None; prompts.len()];
    for _ in 0..max_new {
        let active: Vec<usize> = (0..prompts.len())
            .filter(|&r| {
                let len = rows[r].as_ref().map_or(usize::MAX, RowCache::len)
                    + pending[r].is_some() as usize;
                !gens[r].finished && len < max_len
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
                toks.push(pending[r].take());
            }
        }
        let picks = decoder.push_then(&mut batch, &toks, |i, row| {
            pick_with(row.logits(), decoding, draws[i])
        });
        drop(batch);
        for (&r, tok) in active.iter().zip(picks) {
            if tok == EOS {
                gens[r].finished = true;
                continue;
            }
            gens[r].actions.push(tok);
            if tok == BKSP {
                rows[r].as_mut().expect("active").pop(); // never below the prompt
            } else {
                pending[r] = Some(tok);
            }
        }
    }
    for (r, g) in gens.iter_mut().enumerate() {
        let mut st = match &rows[r] {
            Some(row) => row.tokens().to_vec(),
            None => states[r].clone(),
        };
        st.extend(pending[r]);
        g.output = st[prompt_lens[r]..].to_vec();
    }
    gens
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
