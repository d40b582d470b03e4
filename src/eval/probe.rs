//! Evaluation probes: what capability is measured after every stage.
//!
//! A probe is a split of a task, a decoder and a grader:
//!
//! ```toml
//! [[eval.probes]]
//! split = "test"
//! decoder = { kind = "sample", n = 4, temperature = 0.7, top_p = 0.95 }
//! grader = "verifier"          # or "exact_match"
//! ```
//!
//! `decoder = { kind = "beam", width = 5 }` measures search capability
//! instead: the model inside a step-level beam search ([`super::beam`],
//! the Tree-of-Thoughts analogue), one completion per problem; the task
//! must have step rules ([`Task::step_rules`]: Countdown, Game of 24).
//! Every probe also records its wall time (`seconds_per_problem`), so a
//! search's cost can be set against its gain.
//!
//! Every probe runs after every stage on the same problems, in the same
//! order, with the same sampling seeds (keyed by the run seed, the probe's
//! name and the sample index, never by the stage or step), so a change
//! between stages is the model's, not the evaluation's. That is what makes
//! the stage × probe table a forgetting measurement.

use std::time::Instant;

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::beam::{beam_search, BeamSettings, ModelProposer};
use super::decode::{generate_cached, Decoding};
use crate::data::vocab::{self, BKSP};
use crate::model::decode::CachedDecoder;
use crate::tasks::countdown::TrainStrategy;
use crate::tasks::{Problem, StepRules, Task};

/// How completions are decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DecoderConfig {
    /// The most likely token at every step (one completion per problem).
    Greedy {},
    /// `n` sampled completions per problem.
    Sample {
        /// Completions per problem, >= 1. Default 1.
        #[serde(default = "one")]
        n: usize,
        /// Softmax temperature, > 0. Default 1.
        #[serde(default = "one_f")]
        temperature: f32,
        /// Nucleus cut-off in (0, 1]; 1 samples from the whole distribution. Default 1.
        #[serde(default = "one_f")]
        top_p: f32,
    },
    /// Step-level beam search over lines (the Tree-of-Thoughts analogue):
    /// the model proposes next lines, illegal ones are dropped, the best
    /// `width` paths by log-probability survive; one completion per
    /// problem. Needs a task with step rules (countdown, game24).
    Beam {
        /// Paths kept after every step, >= 1. Default 5 (paper B's ToT
        /// beam for Countdown).
        #[serde(default = "five")]
        width: usize,
        /// Lines sampled from the model per kept path and step, >= 1.
        /// Default 8.
        #[serde(default = "eight")]
        proposals: usize,
        /// Temperature the proposals are sampled at, > 0; they are scored
        /// by their log-probability at temperature 1 whatever it is.
        /// Default 1.
        #[serde(default = "one_f")]
        temperature: f32,
        /// Nucleus cut-off of the proposal sampling, in (0, 1]. Default 1.
        #[serde(default = "one_f")]
        top_p: f32,
    },
    /// No model: the task's symbolic search on each problem (the
    /// inference-time search baseline), timed like the model's probes.
    /// `strategy` as the Countdown key `train_strategy`: `"dfs-sum"`,
    /// `"bfs5-mult"`, `"random"` (the paper's mix, one drawn per problem)
    /// or `"exact"` (the complete solver). Countdown and Game of 24 only.
    Symbolic { strategy: String },
}

fn one() -> usize {
    1
}
fn five() -> usize {
    5
}
fn eight() -> usize {
    8
}
fn one_f() -> f32 {
    1.0
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self::Greedy {}
    }
}

impl DecoderConfig {
    /// Completions per problem.
    pub fn samples(&self) -> usize {
        match self {
            Self::Greedy {} | Self::Beam { .. } | Self::Symbolic { .. } => 1,
            Self::Sample { n, .. } => *n,
        }
    }

    /// Checks ranges; `at` is the key path for errors (`eval.probes[1].decoder`).
    pub fn validate(&self, at: &str) -> Result<()> {
        let (temperature, top_p) = match *self {
            Self::Greedy {} => return Ok(()),
            Self::Symbolic { ref strategy } => {
                return match strategy.parse::<TrainStrategy>() {
                    Ok(_) => Ok(()),
                    Err(e) => bail!("{at}.strategy: {e}"),
                }
            }
            Self::Sample {
                n,
                temperature,
                top_p,
            } => {
                if n == 0 {
                    bail!("{at}.n = 0: must be at least 1");
                }
                (temperature, top_p)
            }
            Self::Beam {
                width,
                proposals,
                temperature,
                top_p,
            } => {
                if width == 0 {
                    bail!("{at}.width = 0: must be at least 1");
                }
                if proposals == 0 {
                    bail!("{at}.proposals = 0: must be at least 1");
                }
                (temperature, top_p)
            }
        };
        if !(temperature > 0.0 && temperature.is_finite()) {
            bail!(
                "{at}.temperature = {temperature}: must be > 0 (use kind = \"greedy\" for argmax)"
            );
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            bail!("{at}.top_p = {top_p}: allowed range is (0, 1]");
        }
        Ok(())
    }

    /// [`DecoderConfig::validate`] for a decoder that samples completions
    /// one pass each (rollouts): a beam search is not one.
    pub fn validate_sampler(&self, at: &str) -> Result<()> {
        if let Self::Beam { .. } | Self::Symbolic { .. } = self {
            bail!("{at}: kind = \"beam\" (or \"symbolic\") is a search, not a sampler; use kind = \"greedy\" or \"sample\" here");
        }
        self.validate(at)
    }

    /// Checks that `task` can be decoded this way: a beam search needs
    /// the task's step rules.
    pub fn check_task(&self, task: &dyn Task) -> Result<()> {
        if let Self::Beam { .. } | Self::Symbolic { .. } = self {
            step_rules(task)?;
        }
        Ok(())
    }

    /// The per-token rule this decoder samples with (a beam search: the
    /// rule its proposals are sampled with).
    pub fn decoding(&self) -> Decoding {
        match *self {
            Self::Greedy {} | Self::Symbolic { .. } => Decoding::Greedy,
            Self::Sample {
                temperature, top_p, ..
            }
            | Self::Beam {
                temperature, top_p, ..
            } => Decoding::Sample { temperature, top_p },
        }
    }

    /// A short label for default probe names (`greedy`, `sample4_t0.7`).
    fn label(&self) -> String {
        match self {
            Self::Greedy {} => "greedy".into(),
            Self::Sample {
                n,
                temperature,
                top_p,
            } => {
                let p = if *top_p < 1.0 {
                    format!("_p{top_p}")
                } else {
                    String::new()
                };
                format!("sample{n}_t{temperature}{p}")
            }
            Self::Beam {
                width,
                proposals,
                temperature,
                top_p,
            } => {
                // only what differs from the defaults: `beam5`, `beam5_n16_t0.7`
                let mut s = format!("beam{width}");
                if *proposals != eight() {
                    s += &format!("_n{proposals}");
                }
                if *temperature != 1.0 {
                    s += &format!("_t{temperature}");
                }
                if *top_p < 1.0 {
                    s += &format!("_p{top_p}");
                }
                s
            }
            Self::Symbolic { strategy } => format!("search-{strategy}"),
        }
    }
}

/// The task's step rules, or an error saying a beam search needs them.
fn step_rules(task: &dyn Task) -> Result<&dyn StepRules> {
    match task.step_rules() {
        Some(r) => Ok(r),
        None => bail!(
            "kind = \"beam\" (and \"symbolic\") search over lines of steps, but this task has no step rules \
             (use it with kind = \"countdown\" or \"game24\", or decode with \"greedy\" / \"sample\")"
        ),
    }
}

/// How a completion is judged.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GraderKind {
    /// The decoded completion equals the reference answer exactly.
    #[default]
    ExactMatch,
    /// The task's own checker accepts it (Countdown: legal steps reaching
    /// the target), so any correct solution counts.
    Verifier,
}

impl GraderKind {
    /// The metric name in metrics.csv.
    pub fn metric(self) -> &'static str {
        match self {
            Self::ExactMatch => "exact_match",
            Self::Verifier => "verified",
        }
    }
}

/// `[[eval.probes]]`: one measurement run after every stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Name in metrics.csv (`split` column) and in summary.csv
    /// (`after:<stage>:<name>`). Default: the split for greedy exact match,
    /// else `<split>/<decoder>/<grader>` (e.g. `test/sample4_t0.7/verifier`).
    #[serde(default)]
    pub name: String,
    /// Which split of the task, e.g. `test`.
    pub split: String,
    /// Decoder, e.g. `{ kind = "greedy" }` (default),
    /// `{ kind = "sample", n = 4, temperature = 0.7, top_p = 0.95 }` or
    /// `{ kind = "beam", width = 5 }` (step-level search; countdown, game24).
    #[serde(default)]
    pub decoder: DecoderConfig,
    /// `exact_match` (default) or `verifier`.
    #[serde(default)]
    pub grader: GraderKind,
    /// Probe another task than the experiment's: its kind and `[data]`
    /// keys, e.g. `{ kind = "game24" }` or `{ kind = "arithmetic", base =
    /// 7 }` (a capability the stages do not train, to measure forgetting).
    /// Default: the experiment's task. The name then defaults to
    /// `<kind>/<...>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub task: Option<toml::Table>,
}

impl ProbeConfig {
    /// The `kind` of [`ProbeConfig::task`], if it names another task.
    pub fn task_kind(&self) -> Option<&str> {
        self.task.as_ref()?.get("kind")?.as_str()
    }

    /// [`ProbeConfig::task`] without its `kind` (the task's `[data]`).
    pub fn task_data(&self) -> toml::Table {
        let mut t = self.task.clone().unwrap_or_default();
        t.remove("kind");
        t
    }

    /// A greedy exact-match probe of `split` (what `eval.splits` means).
    pub fn greedy(split: &str, temperature: f32) -> Self {
        let decoder = if temperature > 0.0 {
            DecoderConfig::Sample {
                n: 1,
                temperature,
                top_p: 1.0,
            }
        } else {
            DecoderConfig::Greedy {}
        };
        Self {
            name: split.into(),
            split: split.into(),
            decoder,
            grader: GraderKind::ExactMatch,
            task: None,
        }
    }

    /// Fills the default name.
    pub fn resolve(&mut self) {
        if self.name.is_empty() {
            let greedy = matches!(self.decoder, DecoderConfig::Greedy {});
            self.name = if greedy && self.grader == GraderKind::ExactMatch {
                self.split.clone()
            } else {
                format!(
                    "{}/{}/{}",
                    self.split,
                    self.decoder.label(),
                    match self.grader {
                        GraderKind::ExactMatch => "exact_match",
                        GraderKind::Verifier => "verifier",
                    }
                )
            };
            if let Some(kind) = self.task_kind() {
                self.name = format!("{kind}/{}", self.name);
            }
        }
    }

    /// Checks ranges; `at` is the key path for errors (`eval.probes[1]`).
    pub fn validate(&self, at: &str) -> Result<()> {
        self.decoder.validate(&format!("{at}.decoder"))?;
        if self.task.is_some() && self.task_kind().is_none() {
            bail!("{at}.task: give the task's kind, e.g. task = {{ kind = \"game24\" }}");
        }
        if self.name.contains(',') || self.name.contains(':') {
            bail!(
                "{at}.name = {:?}: may not contain ',' or ':' (it names CSV columns)",
                self.name
            );
        }
        Ok(())
    }
}

/// What one probe measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// Problems evaluated.
    pub n: usize,
    /// Completions judged correct, over all samples.
    pub correct: usize,
    /// Completions decoded (`n` × samples per problem).
    pub samples: usize,
    /// Problems with at least one correct completion.
    pub solved: usize,
    /// A few (prompt, reference, got) triples of wrong completions.
    pub wrong_examples: Vec<(String, String, String)>,
    /// `<bksp>` actions and what they did, over all completions (none for
    /// a beam search, whose lines are states with backspaces applied).
    pub backspace: BackspaceStats,
    /// Wall time of the probe (decoding or searching, and grading), seconds.
    pub seconds: f64,
}

/// What the `<bksp>` actions of completions did, against the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackspaceStats {
    /// `<bksp>` actions emitted.
    pub emitted: usize,
    /// Those that deleted a generated token (not a no-op on the bare prompt).
    pub deletions: usize,
    /// Deletions of a token that was wrong: it differs from the reference
    /// completion's token at that position (or lies past its end).
    pub fixes: usize,
}

impl BackspaceStats {
    /// The stats of one completion's `actions` against `reference`.
    pub fn of(actions: &[u32], reference: &[u32]) -> Self {
        let mut s = Self::default();
        let mut state: Vec<u32> = Vec::with_capacity(actions.len());
        for &a in actions {
            if a != BKSP {
                state.push(a);
                continue;
            }
            s.emitted += 1;
            if let Some(t) = state.pop() {
                s.deletions += 1;
                if reference.get(state.len()) != Some(&t) {
                    s.fixes += 1;
                }
            }
        }
        s
    }

    fn add(&mut self, o: Self) {
        self.emitted += o.emitted;
        self.deletions += o.deletions;
        self.fixes += o.fixes;
    }

    /// Share of deletions that removed a wrong token; `None` without
    /// deletions.
    pub fn fix_rate(&self) -> Option<f64> {
        (self.deletions > 0).then(|| self.fixes as f64 / self.deletions as f64)
    }
}

impl ProbeResult {
    /// Mean correctness over every completion (accuracy for one sample).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }

    /// Mean `<bksp>` actions per completion.
    pub fn backspaces_per_answer(&self) -> f64 {
        self.backspace.emitted as f64 / self.samples.max(1) as f64
    }

    /// Fraction of problems solved by at least one of the samples (pass@n).
    pub fn pass_at_n(&self) -> f64 {
        self.solved as f64 / self.n.max(1) as f64
    }

    /// Mean wall time per problem, seconds (0 without problems).
    pub fn seconds_per_problem(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.seconds / self.n as f64
        }
    }
}

/// Whether `completion` solves `problem` by `grader`.
pub fn grade(
    task: &dyn Task,
    grader: GraderKind,
    problem: &Problem,
    completion: &str,
) -> Result<bool> {
    Ok(match grader {
        GraderKind::ExactMatch => completion == problem.reference,
        GraderKind::Verifier => match task.verify(problem, completion) {
            Some(ok) => ok,
            None => bail!("grader = \"verifier\": this task has no verifier (use \"exact_match\")"),
        },
    })
}

/// Runs `probe` on `problems`: decodes `samples()` completions of each with
/// `decoder` (the model in decoding mode: build it once per set of weights
/// and run every probe with it), in batches of `batch_size`, at most
/// `max_new` actions each; sample `k` of every problem draws from `rngs(k)`.
/// A beam probe instead searches each problem alone, problem `i` drawing
/// from `rngs(i)` (so its result does not depend on which problems run
/// with it), within `max_new` tokens. Records the wall time.
pub fn run_probe(
    decoder: &CachedDecoder,
    task: &dyn Task,
    problems: &[Problem],
    probe: &ProbeConfig,
    max_new: usize,
    batch_size: usize,
    rngs: impl Fn(usize) -> StdRng,
) -> Result<ProbeResult> {
    let start = Instant::now();
    let mut res = match probe.decoder {
        DecoderConfig::Beam {
            width, proposals, ..
        } => {
            let settings = BeamSettings {
                width,
                max_tokens: max_new,
            };
            search_probe(decoder, task, problems, probe, settings, proposals, rngs)?
        }
        DecoderConfig::Symbolic { ref strategy } => {
            symbolic_probe(task, problems, probe, strategy, rngs)?
        }
        _ => decode_probe(decoder, task, problems, probe, max_new, batch_size, rngs)?,
    };
    res.seconds = start.elapsed().as_secs_f64();
    Ok(res)
}

/// [`run_probe`] for a beam decoder: one search per problem.
fn search_probe(
    decoder: &CachedDecoder,
    task: &dyn Task,
    problems: &[Problem],
    probe: &ProbeConfig,
    settings: BeamSettings,
    proposals: usize,
    rngs: impl Fn(usize) -> StdRng,
) -> Result<ProbeResult> {
    let rules = step_rules(task).map_err(|e| anyhow::anyhow!("probe {:?}: {e}", probe.name))?;
    one_per_problem(task, problems, probe, |i, p| {
        let mut proposer = ModelProposer::new(decoder, proposals, probe.decoder.decoding());
        let found = beam_search(rules, &mut proposer, &p.prompt, settings, &mut rngs(i))?;
        Ok(found.best.map(|b| b.completion()))
    })
}

/// [`run_probe`] for the task's symbolic search (no model).
fn symbolic_probe(
    task: &dyn Task,
    problems: &[Problem],
    probe: &ProbeConfig,
    strategy: &str,
    rngs: impl Fn(usize) -> StdRng,
) -> Result<ProbeResult> {
    one_per_problem(task, problems, probe, |i, p| {
        task.symbolic_solve(&p.prompt, strategy, &mut rngs(i))
    })
}

/// Grades one completion per problem from `solve(index, problem)` (`None`:
/// the search found nothing, graded wrong).
fn one_per_problem(
    task: &dyn Task,
    problems: &[Problem],
    probe: &ProbeConfig,
    mut solve: impl FnMut(usize, &Problem) -> Result<Option<String>>,
) -> Result<ProbeResult> {
    let mut res = ProbeResult {
        n: problems.len(),
        correct: 0,
        samples: problems.len(),
        solved: 0,
        wrong_examples: vec![],
        backspace: BackspaceStats::default(),
        seconds: 0.0,
    };
    for (i, p) in problems.iter().enumerate() {
        match solve(i, p)? {
            Some(c) if grade(task, probe.grader, p, &c)? => {
                res.correct += 1;
                res.solved += 1;
            }
            got if res.wrong_examples.len() < 5 => res.wrong_examples.push((
                p.prompt.clone(),
                p.reference.clone(),
                got.unwrap_or_default(),
            )),
            _ => {}
        }
    }
    Ok(res)
}

/// [`run_probe`] for a greedy or sampling decoder.
fn decode_probe(
    decoder: &CachedDecoder,
    task: &dyn Task,
    problems: &[Problem],
    probe: &ProbeConfig,
    max_new: usize,
    batch_size: usize,
    rngs: impl Fn(usize) -> StdRng,
) -> Result<ProbeResult> {
    let samples = probe.decoder.samples();
    let mut res = ProbeResult {
        n: problems.len(),
        correct: 0,
        samples: problems.len() * samples,
        solved: 0,
        wrong_examples: vec![],
        backspace: BackspaceStats::default(),
        seconds: 0.0,
    };
    let mut solved = vec![false; problems.len()];
    for k in 0..samples {
        let mut rng = rngs(k);
        for (c, chunk) in problems.chunks(batch_size.max(1)).enumerate() {
            let prompts = chunk
                .iter()
                .map(|p| vocab::encode(&p.prompt))
                .collect::<Result<Vec<_>, _>>()?;
            let gens = generate_cached(
                decoder,
                &prompts,
                max_new,
                probe.decoder.decoding(),
                &mut rng,
            );
            for (i, (p, g)) in chunk.iter().zip(gens).enumerate() {
                res.backspace.add(BackspaceStats::of(
                    &g.actions,
                    &vocab::encode(&p.reference)?,
                ));
                let got = vocab::decode(&g.output)?;
                if g.finished && grade(task, probe.grader, p, &got)? {
                    res.correct += 1;
                    solved[c * batch_size.max(1) + i] = true;
                } else if res.wrong_examples.len() < 5 {
                    res.wrong_examples
                        .push((p.prompt.clone(), p.reference.clone(), got));
                }
            }
        }
    }
    res.solved = solved.iter().filter(|&&s| s).count();
    Ok(res)
}
