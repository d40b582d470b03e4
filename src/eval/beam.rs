//! Step-level beam search over lines: the model used *inside* a search,
//! rewind's analogue of the Tree-of-Thoughts BFS that paper B uses to
//! measure "search capability" (ToT beam 5 for the 7B model on Countdown).
//!
//! ToT expands a tree whose nodes are partial solutions ("thoughts"): at
//! every level the LLM proposes next thoughts for each kept node, the
//! illegal ones are dropped, the rest are scored and the best `width`
//! survive. Here a thought is one line of a completion (a Countdown step
//! `a op b = c (left: ...)`, or the final `Answer:` line), so:
//!
//! - a **state** is the prompt plus the lines accepted so far;
//! - each step, a [`Proposer`] proposes candidate next lines for every
//!   live state, with their log-probabilities ([`ModelProposer`]: sampled
//!   from the model, `proposals` per state, all states in one batch);
//! - candidates are deduplicated per state, the ones
//!   [`StepRules::legal_prefix`] rejects are dropped, and every path is
//!   scored by its cumulative log-probability (the sum over its lines);
//! - the best `width` paths over all states survive; a path whose last
//!   line is final ([`StepRules::is_final`]) is finished and leaves the
//!   beam;
//! - the search ends when no live path is left or the token budget is
//!   spent; the result is the best finished path, or none.
//!
//! The scorer is the model's own likelihood rather than ToT's separate
//! value prompt: a small model trained from scratch has no "evaluate this
//! state" ability to call, and the rule check plays the part of ToT's
//! "impossible" verdict. What is measured is what paper B calls search
//! capability: whether the model's proposal distribution still contains
//! the solution when a search is allowed to look past its first choice.
//! It can fall while greedy (CoT) accuracy rises, which is the forgetting
//! the probes track stage by stage.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use thiserror::Error;

use super::decode::{generate_until, Decoding, LineEnd};
use crate::data::vocab::{self, VocabError, BOS, NEWLINE};
use crate::model::decode::{CachedDecoder, RowCache};
use crate::tasks::StepRules;

/// Why a search could not run.
#[derive(Debug, Error)]
pub enum BeamError {
    /// A prompt or line is not in the vocabulary.
    #[error(transparent)]
    Vocab(#[from] VocabError),
}

/// One candidate next line.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// The line, without its newline.
    pub line: String,
    /// Its log-probability given the state it extends.
    pub logprob: f64,
}

/// Proposes candidate next lines for states of a search.
pub trait Proposer {
    /// For each of `states` (the lines accepted so far after `prompt`),
    /// candidate next lines with their log-probabilities, in a fixed order
    /// (ties in score are broken by it). `max_tokens[i]` is the budget left
    /// for state `i`: its line, newline included, may take at most that
    /// many tokens. Duplicates and illegal lines are allowed (the search
    /// drops them). Returns one list per state.
    fn propose(
        &mut self,
        prompt: &str,
        states: &[&[String]],
        max_tokens: &[usize],
        rng: &mut StdRng,
    ) -> Result<Vec<Vec<Proposal>>, BeamError>;
}

/// The search's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeamSettings {
    /// Paths kept after every step (>= 1; 0 is taken as 1).
    pub width: usize,
    /// Most tokens of a completion, every line counted with its newline
    /// (one token per character: rewind's vocabulary). Also bounds the
    /// depth, since a line takes at least one token; the step rules bound
    /// it long before (Countdown: `count - 1` steps and the answer).
    pub max_tokens: usize,
}

/// A path of the search: accepted lines and their summed log-probability.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path {
    pub lines: Vec<String>,
    pub logprob: f64,
}

impl Path {
    /// The completion text: every line followed by a newline.
    pub fn completion(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Tokens the path takes (characters plus newlines).
    fn tokens(&self) -> usize {
        self.lines.iter().map(|l| l.chars().count() + 1).sum()
    }
}

/// What one search found, and how much it looked at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BeamOutcome {
    /// The highest-scoring finished path (the first found on ties), if any.
    pub best: Option<Path>,
    /// Steps (lines deep) the search ran.
    pub depth: usize,
    /// Candidate lines proposed, over all steps.
    pub proposed: usize,
    /// Those that were new for their state, within budget and legal.
    pub legal: usize,
}

/// Beam search over lines for `prompt` (module docs): `proposer` proposes,
/// `rules` prune, the best `settings.width` paths by cumulative
/// log-probability survive each step. Deterministic given the proposer's
/// output (ties keep the proposal order), so the same seed gives the same
/// path.
pub fn beam_search(
    rules: &dyn StepRules,
    proposer: &mut dyn Proposer,
    prompt: &str,
    settings: BeamSettings,
    rng: &mut StdRng,
) -> Result<BeamOutcome, BeamError> {
    let width = settings.width.max(1);
    let mut live = vec![Path::default()];
    let mut finished: Vec<Path> = vec![];
    let mut out = BeamOutcome::default();
    while !live.is_empty() && out.depth < settings.max_tokens {
        out.depth += 1;
        let states: Vec<&[String]> = live.iter().map(|p| &p.lines[..]).collect();
        let budgets: Vec<usize> = live
            .iter()
            .map(|p| settings.max_tokens.saturating_sub(p.tokens()))
            .collect();
        let proposals = proposer.propose(prompt, &states, &budgets, rng)?;
        let mut candidates: Vec<(Path, bool)> = vec![];
        for ((path, props), &budget) in live.iter().zip(proposals).zip(&budgets) {
            let mut seen = HashSet::new();
            for p in props {
                out.proposed += 1;
                // A NaN score cannot be ranked; a newline would make two lines.
                let fits = p.line.chars().count() < budget;
                if p.logprob.is_nan() || p.line.contains('\n') || !fits {
                    continue;
                }
                if !seen.insert(p.line.clone()) {
                    continue;
                }
                let mut lines = path.lines.clone();
                lines.push(p.line);
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                if !rules.legal_prefix(prompt, &refs) {
                    continue;
                }
                out.legal += 1;
                let is_final = rules.is_final(refs[refs.len() - 1]);
                let logprob = path.logprob + p.logprob;
                candidates.push((Path { lines, logprob }, is_final));
            }
        }
        // stable: equal scores keep the proposal order
        candidates.sort_by(|a, b| b.0.logprob.total_cmp(&a.0.logprob));
        candidates.truncate(width);
        live.clear();
        for (path, is_final) in candidates {
            if is_final {
                finished.push(path);
            } else {
                live.push(path);
            }
        }
    }
    out.best = finished
        .into_iter()
        .fold(None, |best: Option<Path>, p| match best {
            Some(b) if b.logprob >= p.logprob => Some(b),
            _ => Some(p),
        });
    Ok(out)
}

/// The model as a [`Proposer`]: for every state, `proposals` continuations
/// sampled with `decoding` up to and including the next `\n` (or `<eos>`),
/// all states × proposals decoded as one batch ([`generate_until`]), each
/// line scored by its log-probability at temperature 1. A continuation that
/// runs out of budget before ending its line is not proposed.
///
/// The decoding state of every line that ended in `\n` is kept until the
/// next call, so a state the search keeps continues from its cache instead
/// of re-reading its prompt and lines (the same numbers: a position's keys
/// and values depend only on the tokens up to it).
pub struct ModelProposer<'a> {
    decoder: &'a CachedDecoder,
    proposals: usize,
    decoding: Decoding,
    /// From the last call: the state after each line that ended in `\n`,
    /// that newline not yet run through the model, keyed by the state's
    /// tokens with the newline (`<bos>`, prompt, lines).
    kept: HashMap<Vec<u32>, RowCache>,
}

impl<'a> ModelProposer<'a> {
    /// A proposer sampling `proposals` (>= 1; 0 is taken as 1) lines per
    /// state with `decoding` from `decoder`.
    pub fn new(decoder: &'a CachedDecoder, proposals: usize, decoding: Decoding) -> Self {
        Self {
            decoder,
            proposals: proposals.max(1),
            decoding,
            kept: HashMap::new(),
        }
    }

    /// The decoding state of each state's tokens (`None` for a state the
    /// model cannot extend): continued from the last call's states where
    /// possible (their pending newline pushed now, in one batched step),
    /// prefilled otherwise.
    fn states(&mut self, keys: &[Vec<u32>], decodable: &[bool]) -> Vec<Option<RowCache>> {
        let decoder = self.decoder;
        let mut kept = std::mem::take(&mut self.kept);
        let mut rows: Vec<Option<RowCache>> = vec![None; keys.len()];
        let (mut reused, mut fresh) = (vec![], vec![]);
        for (i, key) in keys.iter().enumerate().filter(|&(i, _)| decodable[i]) {
            match kept.remove(key) {
                Some(row) => reused.push((i, row)),
                None => fresh.push(i),
            }
        }
        let mut batch: Vec<&mut RowCache> = reused.iter_mut().map(|(_, r)| r).collect();
        let newlines = vec![NEWLINE; batch.len()];
        if !batch.is_empty() {
            decoder.run(batch.len(), || decoder.push_many(&mut batch, &newlines));
        }
        for (i, row) in reused {
            rows[i] = Some(row);
        }
        let prompts: Vec<&[u32]> = fresh.iter().map(|&i| &keys[i][..]).collect();
        let filled = decoder.run(prompts.len(), || decoder.start_many(&prompts));
        for (i, row) in fresh.into_iter().zip(filled) {
            rows[i] = Some(row);
        }
        rows
    }
}

impl Proposer for ModelProposer<'_> {
    fn propose(
        &mut self,
        prompt: &str,
        states: &[&[String]],
        max_tokens: &[usize],
        rng: &mut StdRng,
    ) -> Result<Vec<Vec<Proposal>>, BeamError> {
        let max_len = self.decoder.cfg().max_len;
        let keys = states
            .iter()
            .map(|lines| {
                let text: String = std::iter::once(prompt.to_string())
                    .chain(lines.iter().map(|l| format!("{l}\n")))
                    .collect();
                Ok(std::iter::once(BOS).chain(vocab::encode(&text)?).collect())
            })
            .collect::<Result<Vec<Vec<u32>>, BeamError>>()?;
        // a state the model can add a token to, with budget for one
        let decodable: Vec<bool> = keys
            .iter()
            .zip(max_tokens)
            .map(|(k, &m)| k.len() < max_len && m > 0)
            .collect();
        let rows = self.states(&keys, &decodable);
        let (mut batch, mut owner, mut budgets) = (vec![], vec![], vec![]);
        for (i, row) in rows.into_iter().enumerate() {
            let Some(row) = row else { continue };
            for _ in 1..self.proposals {
                batch.push(row.clone());
                owner.push(i);
                budgets.push(max_tokens[i]);
            }
            batch.push(row);
            owner.push(i);
            budgets.push(max_tokens[i]);
        }
        let lines = generate_until(self.decoder, batch, &budgets, self.decoding, NEWLINE, rng);
        let mut out = vec![vec![]; states.len()];
        for (g, i) in lines.into_iter().zip(owner) {
            let output = &g.generation.output;
            let text = match g.end {
                LineEnd::Stop => &output[..output.len() - 1],
                LineEnd::Eos => &output[..],
                LineEnd::Budget => continue,
            };
            let line = vocab::decode(text)?;
            if g.end == LineEnd::Stop {
                let mut key = g.state.tokens().to_vec();
                key.push(NEWLINE);
                self.kept.entry(key).or_insert(g.state);
            }
            out[i].push(Proposal {
                line,
                logprob: g.logprob,
            });
        }
        Ok(out)
    }
}
