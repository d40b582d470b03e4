//! Countdown and Game of 24 as [`Task`]s: the experiment kinds `countdown`
//! and `game24` that the trainer and the evaluator see.
//!
//! - **Training data** ([`Task::sample_train`]): a fresh problem from the
//!   training distribution, with the successful path of the search strategy
//!   chosen by `train_strategy` as the completion (the paper's D+). When
//!   that search fails on the problem, the completion is the exact solver's
//!   path instead, so the training problems keep the distribution of the
//!   val/test problems (uniform over solvable problems) rather than leaning
//!   towards the ones the heuristic finds easy. Training never sees a val or
//!   test problem.
//! - **Splits** `val` and `test`, fixed at construction: Countdown draws them
//!   from the seed given to `build` (test only from held-out targets, val
//!   from the training targets, all problems distinct; see
//!   [`super::puzzle`]); Game of 24 uses the fixed `split_seed` shuffle of
//!   the 1362 solvable multisets, the rest being the training pool.
//! - **References**: the exact solver's path in the same text format, so
//!   exact match has something to compare with; [`Task::verify`] is the
//!   real grader ([`super::path::verify_completion`]), which accepts any
//!   correct path.
//! - **Lengths**: [`Task::max_seq_len`] and [`Task::max_answer_len`] are
//!   upper bounds computed from the number ranges (see [`length_bounds`]),
//!   not measured, so they hold for every problem the task can produce.
//!
//! Texts are those of [`super::path`], e.g. prompt
//! `Input: 25 5 5 33\nTarget: 27\nSteps:\n` and completion
//! `25 + 5 = 30 (left: 5 33 30)\n...Answer: 33 - ((25 + 5) / 5) = 27\n`.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::{
    check_heldout_keys, strip_heldout_rule_keys, CountdownSection, Game24Section, Game24SplitKind,
    HeldoutTargets,
};
use super::dataset::merged_paths;
use super::path::{
    cut_at_answer, parse_prompt, prompt, render_completion, verify_completion, verify_prefix,
    PromptStyle,
};
use super::puzzle::{
    game24_ranked_split, game24_split, generate_countdown, sample_solvable, CountdownSpec,
    Instance, Split, GAME24_RANGE, GAME24_SOLVABLE_COUNT, GAME24_TARGET, SOLVE_MAX_NUMBERS,
    SOLVE_MAX_VALUE,
};
use super::rules::{Game, Move, Ratio, Value};
use super::search::{self, Strategy, StrategyMix, StrategySpec};
use super::solver::solve;
use crate::tasks::from_value;
use crate::tasks::{Problem, SearchPaths, StepRules, Task};

/// Most problems in one of the `val` / `test` splits (they are generated,
/// and solved, when the task is built).
pub const MAX_SPLIT_SIZE: usize = 100_000;

/// The evaluation splits of both kinds; `val` is monitored during training.
pub const SPLITS: [&str; 2] = ["val", "test"];

/// Where the training completions come from (`train_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TrainStrategy {
    /// The paper's "random" mode: per problem one of `dfs-sum`, `dfs-mult`,
    /// `bfs-sum`, `bfs-mult`, beam width uniform in 1..=5.
    #[default]
    Random,
    /// The exact solver's path only (no search).
    Exact,
    /// One strategy: `dfs-sum`, `bfs3-mult`, ... (`bfs-sum` / `bfs-mult`
    /// draw the beam width from 1..=5 per problem).
    Search(StrategySpec),
    /// The learning-and-forgetting paper's data generator: both `dfs-sum`
    /// and `bfs5-mult` run on every problem ([`search::PAPER_SEARCHES`]).
    Paper,
}

impl TrainStrategy {
    /// The strategy for one problem (`None`: use the solver).
    fn draw<R: Rng>(self, rng: &mut R) -> Option<Strategy> {
        let paper = StrategyMix::paper();
        match self {
            TrainStrategy::Exact => None,
            TrainStrategy::Random => Some(paper.sample(rng)),
            TrainStrategy::Search(spec) => Some(
                StrategyMix {
                    specs: vec![spec],
                    beam_widths: paper.beam_widths,
                }
                .sample(rng),
            ),
            // Callers that run every search use `runs`; one strategy alone
            // is the paper's first search.
            TrainStrategy::Paper => Some(search::PAPER_SEARCHES[0]),
        }
    }

    /// The searches to run on one problem, in order (empty: use the solver).
    fn runs<R: Rng>(self, rng: &mut R) -> Vec<Strategy> {
        match self {
            TrainStrategy::Paper => search::PAPER_SEARCHES.to_vec(),
            _ => self.draw(rng).into_iter().collect(),
        }
    }

    /// The widest beam it can draw (0 for none); bounds the search work.
    fn max_beam(self) -> usize {
        match self {
            TrainStrategy::Search(StrategySpec::Fixed(Strategy {
                algorithm: search::Algorithm::Bfs(k),
                ..
            })) => k,
            _ => 5,
        }
    }
}

impl fmt::Display for TrainStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainStrategy::Random => f.write_str("random"),
            TrainStrategy::Exact => f.write_str("exact"),
            TrainStrategy::Paper => f.write_str("paper"),
            TrainStrategy::Search(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for TrainStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(TrainStrategy::Random),
            "exact" => Ok(TrainStrategy::Exact),
            "paper" => Ok(TrainStrategy::Paper),
            _ => s.parse().map(TrainStrategy::Search).map_err(|_| {
                format!(
                    "unknown train_strategy {s:?} (expected \"random\", \"paper\", \"exact\", dfs-sum, dfs-mult, \
                     bfs-sum, bfs-mult, or bfsK-sum / bfsK-mult with a beam width K in 1..=64)"
                )
            }),
        }
    }
}

impl TryFrom<String> for TrainStrategy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TrainStrategy> for String {
    fn from(s: TrainStrategy) -> String {
        s.to_string()
    }
}

fn check_train_strategy(s: TrainStrategy) -> Result<()> {
    let k = s.max_beam();
    if !(1..=64).contains(&k) {
        bail!(
            "data.train_strategy = {:?}: the beam width must be in 1..=64",
            s.to_string()
        );
    }
    Ok(())
}

/// How a completion is graded (`verifier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierMode {
    /// The whole completion: non-empty text after the `Answer:` line is
    /// rejected.
    #[default]
    Strict,
    /// The paper's: the completion is cut after its first line containing
    /// `Answer:`, and only that part is judged.
    Paper,
}

impl VerifierMode {
    fn is_strict(&self) -> bool {
        *self == VerifierMode::Strict
    }
}

/// Default of `data.max_failed`.
pub const DEFAULT_MAX_FAILED: usize = 3;

fn check_max_failed(n: usize) -> Result<()> {
    if n > 1000 {
        bail!("data.max_failed = {n}: must be in 0..=1000");
    }
    Ok(())
}

fn check_split_sizes(val: usize, test: usize) -> Result<()> {
    for (key, n) in [("val_size", val), ("test_size", test)] {
        if n > MAX_SPLIT_SIZE {
            bail!("data.{key} = {n}: must be <= {MAX_SPLIT_SIZE}");
        }
    }
    if val + test == 0 {
        bail!("data.val_size + data.test_size = 0: give at least one evaluation problem");
    }
    Ok(())
}

/// `[data]` of an experiment of kind `countdown`.
///
/// Every key is optional (defaults: the paper's setting); unknown keys are
/// errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CountdownTaskConfig {
    /// Numbers per problem, 2..=6. Default 4 (paper).
    pub numbers: usize,
    /// Smallest input number, >= 1. Default 1 (paper).
    pub number_min: i64,
    /// Largest input number, >= number_min; `max(number_max, 2)^numbers`
    /// must fit in i64. Longer numbers make longer sequences (see
    /// `model.max_len`). Default 99 (paper).
    pub number_max: i64,
    /// Smallest target, >= 0. Default 10 (paper).
    pub target_min: i64,
    /// Largest target, target_min..=1_000_000. Default 100 (paper).
    pub target_max: i64,
    /// Fraction of the targets target_min..=target_max (after removing the
    /// extra ones) held out for the test split only, in [0, 1); which ones
    /// depends on the run's seed. Default 0.1 (paper: 9 of 90 targets).
    pub heldout_target_frac: f64,
    /// Targets always held out for test (also outside the range), each in
    /// 0..=1_000_000. Default `[24]` (paper).
    pub heldout_extra_targets: Vec<i64>,
    /// The test-only targets as an explicit list (`[14, 24, 40]`, each in
    /// 0..=1_000_000, also outside the range), or `"paper"` for the
    /// paper's list 14, 24, 40, 42, 58, 63, 71, 87, 89, 90 (what its
    /// generator holds out with its seed). Train and val use every other
    /// target of the range. Exclusive with heldout_target_frac and
    /// heldout_extra_targets. Default: unset (those two keys decide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heldout_targets: Option<HeldoutTargets>,
    /// Problems in the `val` split (training targets, never trained on),
    /// 0..=100_000. Default 200.
    pub val_size: usize,
    /// Problems in the `test` split (held-out targets only), 0..=100_000.
    /// Default 200.
    pub test_size: usize,
    /// Rejection-sampling cap: draws of numbers for one problem before the
    /// task gives up, >= 1. Default 100_000.
    pub max_draws: u64,
    /// Where the training completions come from: `"random"` (SoS's mix of
    /// dfs/bfs x sum/mult, beam 1..=5, one drawn per problem), `"paper"`
    /// (the learning-and-forgetting paper's data: `dfs-sum` and
    /// `bfs5-mult` both run on every problem; a training completion is one
    /// of their distinct successful paths drawn uniformly, and a search
    /// stage gets all of them plus up to `max_failed` failed paths per
    /// search, deduplicated), `"exact"` (the solver's path), or one
    /// strategy (`"dfs-sum"`, `"dfs-mult"`, `"bfs3-sum"`, `"bfs-mult"` =
    /// beam width drawn from 1..=5, ...). When the search fails on a
    /// problem the solver's path is used. Default "random".
    #[schemars(with = "String")]
    pub train_strategy: TrainStrategy,
    /// Failed paths kept per search run for `source = "search"` stages
    /// (distinct failed leaves, drawn uniformly; with `train_strategy =
    /// "paper"` per each of the two searches, then deduplicated), 0..=1000.
    /// Default 3 (the paper's D- files).
    pub max_failed: usize,
    /// The prompt: `"short"` (`Input: ...\nTarget: ...\nSteps:\n`) or
    /// `"paper"` (the same after the paper's instruction line, `Use numbers
    /// and basic arithmetic operations (+ - * /) to obtain the target
    /// number.` for Countdown, `... to obtain 24.` for Game of 24).
    /// Default "short".
    #[serde(skip_serializing_if = "PromptStyle::is_short")]
    #[schemars(with = "String")]
    pub prompt: PromptStyle,
    /// How completions are graded: `"strict"` (the whole completion;
    /// non-empty text after the `Answer:` line is wrong) or `"paper"` (as
    /// the paper's evaluation: cut after the first line containing
    /// `Answer:`, whatever follows is ignored). Default "strict".
    #[serde(skip_serializing_if = "VerifierMode::is_strict")]
    #[schemars(with = "String")]
    pub verifier: VerifierMode,
}

impl Default for CountdownTaskConfig {
    fn default() -> Self {
        let s = CountdownSection::default();
        CountdownTaskConfig {
            numbers: s.numbers,
            number_min: s.number_min,
            number_max: s.number_max,
            target_min: s.target_min,
            target_max: s.target_max,
            heldout_target_frac: s.heldout_target_frac,
            heldout_extra_targets: s.heldout_extra_targets,
            heldout_targets: None,
            val_size: s.val_size,
            test_size: s.test_size,
            max_draws: s.max_draws,
            train_strategy: TrainStrategy::Random,
            max_failed: DEFAULT_MAX_FAILED,
            prompt: PromptStyle::Short,
            verifier: VerifierMode::Strict,
        }
    }
}

impl CountdownTaskConfig {
    /// The same settings as a dataset-builder section, whose checks and
    /// generator the task reuses. Training problems are drawn on demand;
    /// `train_size = 1` only makes the check "some target is left for
    /// training" apply.
    pub fn section(&self) -> CountdownSection {
        CountdownSection {
            enabled: true,
            numbers: self.numbers,
            number_min: self.number_min,
            number_max: self.number_max,
            target_min: self.target_min,
            target_max: self.target_max,
            heldout_target_frac: self.heldout_target_frac,
            heldout_extra_targets: self.heldout_extra_targets.clone(),
            heldout_targets: self.heldout_targets.clone(),
            train_size: 1,
            val_size: self.val_size,
            test_size: self.test_size,
            max_draws: self.max_draws,
        }
    }

    /// Checks every key; errors name it as `data.<key>`.
    pub fn validate(&self) -> Result<()> {
        // The number of held-out targets does not depend on the seed.
        self.section().validate("data", 0)?;
        check_split_sizes(self.val_size, self.test_size)?;
        check_train_strategy(self.train_strategy)?;
        check_max_failed(self.max_failed)
    }
}

/// `[data]` of an experiment of kind `game24`: 4 numbers in 1..=13, target
/// 24, exact rational arithmetic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Game24TaskConfig {
    /// Multisets in the `val` split; val_size + test_size < 1362 (the
    /// solvable multisets; the rest are the training pool). Default 180
    /// (paper).
    pub val_size: usize,
    /// Multisets in the `test` split. Default 100 (paper).
    pub test_size: usize,
    /// Seed of the split shuffle, independent of the run's seed so that
    /// every run shares one split. Any u64; default 24.
    pub split_seed: u64,
    /// `"random"`: the 1362 solvable multisets shuffled with split_seed
    /// (test_size test, val_size val, the rest the training pool).
    /// `"ranked"`: the paper's split by ToT's difficulty ranking
    /// (`data/game24_ranked.csv`): test = ranks 901..=900+test_size
    /// (test_size <= 462; 100 = ranks 901-1000), ranks 1..=900 shuffled
    /// with split_seed into val_size val (< 900; 180 = the paper's) and the
    /// training pool (720). Default "random".
    #[serde(skip_serializing_if = "Game24SplitKind::is_random")]
    #[schemars(with = "String")]
    pub split: Game24SplitKind,
    /// Where the training completions come from; as for `countdown`:
    /// `"random"`, `"paper"`, `"exact"` or one strategy such as
    /// `"dfs-sum"`. Default "random".
    #[schemars(with = "String")]
    pub train_strategy: TrainStrategy,
    /// Failed paths kept per search run, as for `countdown`. Default 3.
    pub max_failed: usize,
    /// The prompt: `"short"` (`Input: ...\nTarget: ...\nSteps:\n`) or
    /// `"paper"` (the same after the paper's instruction line, `Use numbers
    /// and basic arithmetic operations (+ - * /) to obtain the target
    /// number.` for Countdown, `... to obtain 24.` for Game of 24).
    /// Default "short".
    #[serde(skip_serializing_if = "PromptStyle::is_short")]
    #[schemars(with = "String")]
    pub prompt: PromptStyle,
    /// How completions are graded: `"strict"` (the whole completion;
    /// non-empty text after the `Answer:` line is wrong) or `"paper"` (as
    /// the paper's evaluation: cut after the first line containing
    /// `Answer:`, whatever follows is ignored). Default "strict".
    #[serde(skip_serializing_if = "VerifierMode::is_strict")]
    #[schemars(with = "String")]
    pub verifier: VerifierMode,
}

impl Default for Game24TaskConfig {
    fn default() -> Self {
        let s = Game24Section::default();
        Game24TaskConfig {
            val_size: s.val_size,
            test_size: s.test_size,
            split_seed: s.split_seed,
            split: s.split,
            train_strategy: TrainStrategy::Random,
            max_failed: DEFAULT_MAX_FAILED,
            prompt: PromptStyle::Short,
            verifier: VerifierMode::Strict,
        }
    }
}

impl Game24TaskConfig {
    /// Checks every key; errors name it as `data.<key>`.
    pub fn validate(&self) -> Result<()> {
        Game24Section {
            enabled: true,
            val_size: self.val_size,
            test_size: self.test_size,
            split_seed: self.split_seed,
            split: self.split,
        }
        .validate("data")?;
        check_split_sizes(self.val_size, self.test_size)?;
        check_train_strategy(self.train_strategy)?;
        check_max_failed(self.max_failed)
    }
}

/// Where [`CountdownTask::sample_train`] draws its problems.
#[derive(Clone, Debug)]
enum TrainPool {
    /// Rejection sampling on the training targets, skipping val/test problems.
    Countdown {
        spec: CountdownSpec,
        targets: Vec<i64>,
        max_draws: u64,
        heldout: HashSet<(Vec<i64>, i64)>,
    },
    /// The training multisets of the fixed split, drawn uniformly.
    Game24(Vec<[i64; 4]>),
}

/// Countdown or Game of 24 as a [`Task`] (module docs).
#[derive(Clone, Debug)]
pub struct CountdownTask {
    game: Game,
    prompt_style: PromptStyle,
    verifier: VerifierMode,
    train_strategy: TrainStrategy,
    max_failed: usize,
    pool: TrainPool,
    val: Vec<Problem>,
    test: Vec<Problem>,
    max_prompt_len: usize,
    max_completion_len: usize,
}

/// The moves of a solution as exact rationals.
fn to_ratio<V: Value>(moves: &[Move<V>]) -> Vec<Move<Ratio>> {
    moves.iter().map(|m| m.to_ratio()).collect()
}

/// The exact solver's path, or `None` when the puzzle has no solution.
fn solver_path(game: Game, numbers: &[i64], target: i64) -> Option<Vec<Move<Ratio>>> {
    fn go<V: Value>(numbers: &[i64], target: i64) -> Option<Vec<Move<Ratio>>> {
        let nums: Vec<V> = numbers.iter().map(|&n| V::from_int(n)).collect();
        solve(&nums, V::from_int(target)).map(|s| to_ratio(&s.moves))
    }
    match game {
        Game::Countdown => go::<i64>(numbers, target),
        Game::Game24 => go::<Ratio>(numbers, target),
    }
}

/// The successful path of one search run, if it succeeds.
fn search_path<R: Rng>(
    game: Game,
    numbers: &[i64],
    target: i64,
    strategy: Strategy,
    rng: &mut R,
) -> Option<Vec<Move<Ratio>>> {
    fn go<V: Value, R: Rng>(
        numbers: &[i64],
        target: i64,
        strategy: Strategy,
        rng: &mut R,
    ) -> Option<Vec<Move<Ratio>>> {
        let nums: Vec<V> = numbers.iter().map(|&n| V::from_int(n)).collect();
        search::run(&nums, V::from_int(target), strategy, rng)
            .success_path()
            .map(|p| to_ratio(&p))
    }
    match game {
        Game::Countdown => go::<i64, R>(numbers, target, strategy, rng),
        Game::Game24 => go::<Ratio, R>(numbers, target, strategy, rng),
    }
}

/// The reference completion: the solver's path as text, `None` when the
/// puzzle has no solution.
fn reference(game: Game, numbers: &[i64], target: i64) -> Result<Option<String>> {
    match solver_path(game, numbers, target) {
        Some(p) => Ok(Some(render_completion(numbers, &p)?)),
        None => Ok(None),
    }
}

fn problems_of(game: Game, style: PromptStyle, instances: &[Instance]) -> Result<Vec<Problem>> {
    instances
        .iter()
        .map(|i| {
            let r = reference(game, &i.numbers, i.target)?.with_context(|| {
                format!(
                    "internal error: {:?} -> {} has no solution",
                    i.numbers, i.target
                )
            })?;
            let text = format!("{}{}", style.preamble(game), prompt(&i.numbers, i.target));
            Ok(Problem::new(&text, &r))
        })
        .collect()
}

/// Upper bounds on the prompt and completion lengths, in characters (=
/// tokens), of every full-length path (successful or failed) of a puzzle
/// with `count` numbers.
///
/// `value_len(k)` bounds the characters of any value built from `k` input
/// numbers (`k = 1`: an input number), `target_len` those of the target.
/// The steps merge groups of inputs; the bound is the maximum over every
/// order of merges of the written lengths (a few thousand orders for six
/// numbers), so it is tight for the given `value_len`.
pub fn length_bounds(
    count: usize,
    value_len: impl Fn(usize) -> usize,
    target_len: usize,
) -> (usize, usize) {
    let n = count.max(1);
    // `Input: a b c d\nTarget: t\nSteps:\n`
    let prompt = "Input: ".len()
        + n * value_len(1)
        + (n - 1)
        + "\nTarget: ".len()
        + target_len
        + "\nSteps:\n".len();
    // Every step line `a op b = c (left: ...)\n` over all merge orders.
    fn steps(groups: &[usize], value_len: &dyn Fn(usize) -> usize) -> usize {
        if groups.len() < 2 {
            return 0;
        }
        let mut best = 0;
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let mut next: Vec<usize> = groups
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i && k != j)
                    .map(|(_, &g)| g)
                    .collect();
                next.push(groups[i] + groups[j]);
                next.sort_unstable();
                let left: usize =
                    next.iter().map(|&g| value_len(g)).sum::<usize>() + next.len() - 1;
                let line = value_len(groups[i])
                    + " + ".len()
                    + value_len(groups[j])
                    + " = ".len()
                    + value_len(groups[i] + groups[j])
                    + " (left: ".len()
                    + left
                    + ")\n".len();
                best = best.max(line + steps(&next, value_len));
            }
        }
        best
    }
    let steps = steps(&vec![1; n], &value_len);
    // `Answer: <expr> = <value>\n`: n leaves, n - 1 operators written
    // ` op `, and every operation but the outermost in parentheses; the
    // value is the target, or for a failed path (D-) whatever the steps
    // reached.
    let expr = n * value_len(1) + 3 * (n - 1) + 2 * n.saturating_sub(2);
    let value = target_len.max(value_len(n));
    let answer = "Answer: ".len() + expr + " = ".len() + value + "\n".len();
    (prompt, steps + answer)
}

fn digits(x: u128) -> usize {
    x.to_string().len()
}

impl CountdownTask {
    /// The `countdown` kind: val/test drawn from `seed` (module docs).
    pub fn countdown(cfg: &CountdownTaskConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let sec = cfg.section();
        let spec = sec.spec();
        let (heldout_frac, extra_targets) = sec.heldout();
        // Train size 0: only val and test are fixed; training draws on demand.
        let gen = generate_countdown(
            &spec,
            heldout_frac,
            &extra_targets,
            [0, cfg.val_size, cfg.test_size],
            cfg.max_draws,
            seed,
        )
        .context("generating the countdown val/test splits (data.max_draws)")?;
        let split = |s: Split| {
            gen.splits
                .iter()
                .find(|g| g.split == s)
                .map_or(&[][..], |g| &g.instances[..])
        };
        let (val, test) = (split(Split::Val), split(Split::Test));
        // sample_train skips these, so training never sees an eval problem
        // (test targets are held out anyway; val shares the train targets).
        let heldout = val.iter().chain(test).map(|i| i.key()).collect();
        // Values built from k inputs are at most max(number_max, 2)^k (a
        // sum of two numbers >= 0 is at most the product of their maxima
        // with 2); the config keeps that within i64.
        let m = cfg.number_max.max(2) as u128;
        let value_len = |k: usize| {
            if k == 1 {
                digits(cfg.number_max as u128)
            } else {
                digits(m.pow(k as u32))
            }
        };
        let max_target = extra_targets
            .iter()
            .copied()
            .chain([cfg.target_max])
            .max()
            .unwrap_or(cfg.target_max);
        let (max_prompt_len, max_completion_len) =
            length_bounds(cfg.numbers, value_len, digits(max_target as u128));
        let max_prompt_len = max_prompt_len + cfg.prompt.preamble(Game::Countdown).len();
        Ok(CountdownTask {
            game: Game::Countdown,
            prompt_style: cfg.prompt,
            verifier: cfg.verifier,
            train_strategy: cfg.train_strategy,
            max_failed: cfg.max_failed,
            pool: TrainPool::Countdown {
                spec,
                targets: gen.targets.train.clone(),
                max_draws: cfg.max_draws,
                heldout,
            },
            val: problems_of(Game::Countdown, cfg.prompt, val)?,
            test: problems_of(Game::Countdown, cfg.prompt, test)?,
            max_prompt_len,
            max_completion_len,
        })
    }

    /// The `game24` kind: the fixed `split_seed` split (module docs).
    pub fn game24(cfg: &Game24TaskConfig) -> Result<Self> {
        cfg.validate()?;
        let sp = match cfg.split {
            Game24SplitKind::Random => game24_split(cfg.split_seed, cfg.val_size, cfg.test_size),
            Game24SplitKind::Ranked => {
                game24_ranked_split(cfg.split_seed, cfg.val_size, cfg.test_size)
            }
        };
        let inst = |ms: &[[i64; 4]]| -> Vec<Instance> {
            ms.iter()
                .map(|m| Instance {
                    numbers: m.to_vec(),
                    target: GAME24_TARGET,
                })
                .collect()
        };
        // Values built from k inputs are p/q with p, q <= 2^(k-1) * 13^k
        // (induction: (a/b) + (c/d) = (ad + bc) / bd, and * and / only
        // multiply), written `p/q`; the inputs themselves are integers.
        let value_len = |k: usize| {
            if k == 1 {
                digits(GAME24_RANGE.1 as u128)
            } else {
                let c = (1u128 << (k - 1)) * (GAME24_RANGE.1 as u128).pow(k as u32);
                2 * digits(c) + 1
            }
        };
        let (max_prompt_len, max_completion_len) =
            length_bounds(4, value_len, digits(GAME24_TARGET as u128));
        let max_prompt_len = max_prompt_len + cfg.prompt.preamble(Game::Game24).len();
        debug_assert!(sp.train.len() + sp.val.len() + sp.test.len() <= GAME24_SOLVABLE_COUNT);
        Ok(CountdownTask {
            game: Game::Game24,
            prompt_style: cfg.prompt,
            verifier: cfg.verifier,
            train_strategy: cfg.train_strategy,
            max_failed: cfg.max_failed,
            val: problems_of(Game::Game24, cfg.prompt, &inst(&sp.val))?,
            test: problems_of(Game::Game24, cfg.prompt, &inst(&sp.test))?,
            pool: TrainPool::Game24(sp.train),
            max_prompt_len,
            max_completion_len,
        })
    }

    /// Which game this task plays.
    pub fn game(&self) -> Game {
        self.game
    }

    /// The prompt for a puzzle in the task's `prompt` style.
    pub fn prompt_text(&self, numbers: &[i64], target: i64) -> String {
        format!(
            "{}{}",
            self.prompt_style.preamble(self.game),
            prompt(numbers, target)
        )
    }

    /// Draws one training problem (never a val/test one).
    pub fn sample_train_instance(&self, rng: &mut StdRng) -> Result<Instance> {
        match &self.pool {
            TrainPool::Countdown {
                spec,
                targets,
                max_draws,
                heldout,
            } => sample_solvable(rng, spec, targets, heldout, *max_draws)
                .map(|(inst, _, _)| inst)
                .map_err(|target| {
                    anyhow::anyhow!(
                        "no new solvable training problem for target {target} in {max_draws} draws \
                         (data.max_draws); widen data.number_min/number_max or lower the split sizes"
                    )
                }),
            TrainPool::Game24(pool) => {
                if pool.is_empty() {
                    bail!("the game24 split leaves no training multiset; lower data.val_size/test_size");
                }
                Ok(Instance {
                    numbers: pool[rng.gen_range(0..pool.len())].to_vec(),
                    target: GAME24_TARGET,
                })
            }
        }
    }

    /// The training completion for a problem: the chosen strategy's
    /// successful path (`"paper"`: one of the two searches' distinct
    /// successful paths, drawn uniformly), else the solver's.
    pub fn train_completion(&self, inst: &Instance, rng: &mut StdRng) -> Result<String> {
        let (numbers, target) = (&inst.numbers, inst.target);
        if self.train_strategy == TrainStrategy::Paper {
            // Every distinct successful path of both searches, one drawn.
            let mut m = merged_paths(self.game, numbers, target, &search::PAPER_SEARCHES, 0, rng)?;
            if !m.pos.is_empty() {
                let i = rng.gen_range(0..m.pos.len());
                return Ok(m.pos.swap_remove(i).1);
            }
        }
        let path = match self.train_strategy {
            TrainStrategy::Paper => None,
            s => s.draw(rng),
        }
        .and_then(|s| search_path(self.game, numbers, target, s, rng))
        .or_else(|| solver_path(self.game, numbers, target))
        .with_context(|| {
            format!("internal error: training problem {numbers:?} -> {target} has no solution")
        })?;
        Ok(render_completion(numbers, &path)?)
    }

    /// Reads a question typed by a user (see [`Task::user_prompt`]).
    pub fn parse_question(&self, text: &str) -> Result<(Vec<i64>, i64)> {
        let text = text.trim();
        let (numbers, target) = if text.starts_with("Input:") {
            let with_steps = if text.ends_with("Steps:") {
                format!("{text}\n")
            } else {
                format!("{text}\nSteps:\n")
            };
            let (numbers, target, _) =
                parse_prompt(&with_steps).map_err(|e| anyhow::anyhow!("{e}"))?;
            (numbers, target)
        } else {
            let (nums, target) = match text.split_once("->") {
                Some((n, t)) => (n, Some(t.trim())),
                None => (text, None),
            };
            let numbers = nums
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("{t:?} is not an integer"))
                })
                .collect::<Result<Vec<_>>>()?;
            let target = match (target, self.game) {
                (Some(t), _) => t
                    .parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("target {t:?} is not an integer"))?,
                (None, Game::Game24) => GAME24_TARGET,
                (None, Game::Countdown) => {
                    bail!("no target: write the numbers, then `->` and the target, e.g. `25 5 5 33 -> 27`")
                }
            };
            (numbers, target)
        };
        match self.game {
            Game::Countdown => {
                if !(1..=SOLVE_MAX_NUMBERS).contains(&numbers.len()) {
                    bail!(
                        "give 1..={SOLVE_MAX_NUMBERS} numbers, got {}",
                        numbers.len()
                    );
                }
                if let Some(n) = numbers
                    .iter()
                    .find(|&&n| !(1..=SOLVE_MAX_VALUE).contains(&n))
                {
                    bail!("numbers must be positive integers up to {SOLVE_MAX_VALUE}, got {n}");
                }
                if target < 0 {
                    bail!(
                        "the target must be >= 0 (Countdown values are non-negative), got {target}"
                    );
                }
            }
            Game::Game24 => {
                let (lo, hi) = GAME24_RANGE;
                if numbers.len() != 4 {
                    bail!("Game of 24 takes exactly 4 numbers, got {}", numbers.len());
                }
                if let Some(n) = numbers.iter().find(|n| !(lo..=hi).contains(*n)) {
                    bail!("Game-of-24 numbers must be in {lo}..={hi}, got {n}");
                }
                if target != GAME24_TARGET {
                    bail!("the Game-of-24 target is {GAME24_TARGET}, got {target}");
                }
            }
        }
        Ok((numbers, target))
    }
}

impl Task for CountdownTask {
    /// A training problem with the successful path of `train_strategy`
    /// (the exact solver's where the search fails) as its reference.
    fn sample_problem(&self, rng: &mut StdRng) -> Result<Problem> {
        let inst = self.sample_train_instance(rng)?;
        let completion = self.train_completion(&inst, rng)?;
        Ok(Problem::new(
            &self.prompt_text(&inst.numbers, inst.target),
            &completion,
        ))
    }

    fn splits(&self) -> Vec<String> {
        SPLITS.iter().map(|s| s.to_string()).collect()
    }

    fn problems(&self, split: &str) -> Result<Vec<Problem>> {
        match split {
            "val" => Ok(self.val.clone()),
            "test" => Ok(self.test.clone()),
            _ => bail!(
                "unknown split {split:?} for {} (expected one of: {})",
                self.game,
                SPLITS.join(", ")
            ),
        }
    }

    /// Parses the numbers and target from the problem's prompt and runs the
    /// rule-based verifier ([`verify_completion`]) on the completion, cut
    /// after its first `Answer:` line with `verifier = "paper"`
    /// ([`cut_at_answer`]); a prompt that does not parse is graded `false`.
    fn verify(&self, problem: &Problem, completion: &str) -> Option<bool> {
        let ok = match parse_prompt(&problem.prompt) {
            Ok((numbers, target, "")) => {
                let completion = match self.verifier {
                    VerifierMode::Strict => completion,
                    VerifierMode::Paper => cut_at_answer(completion),
                };
                verify_completion(&numbers, target, completion, self.game).is_ok()
            }
            _ => false,
        };
        Some(ok)
    }

    /// One run of a strategy drawn from `train_strategy` on a fresh
    /// training problem (`"paper"`: both `dfs-sum` and `bfs5-mult`): the
    /// distinct successful paths and at most `max_failed` distinct failed
    /// paths per run, deduplicated across runs, every one checked by the
    /// verifier.
    fn search_paths(&self, rng: &mut StdRng) -> Result<SearchPaths> {
        let inst = self.sample_train_instance(rng)?;
        let strategies = self.train_strategy.runs(rng);
        if strategies.is_empty() {
            bail!("data.train_strategy = \"exact\" runs no search, so it has no failed paths; data source \"search\" needs \"random\", \"paper\" or a strategy such as \"dfs-sum\"");
        }
        let m = merged_paths(
            self.game,
            &inst.numbers,
            inst.target,
            &strategies,
            self.max_failed,
            rng,
        )?;
        Ok(SearchPaths {
            prompt: self.prompt_text(&inst.numbers, inst.target),
            successes: m.pos.into_iter().map(|(_, c)| c).collect(),
            failures: m.neg.into_iter().map(|(_, c)| c).collect(),
        })
    }

    /// `strategy` as `train_strategy` (`"exact"`: the complete solver).
    fn symbolic_solve(
        &self,
        prompt_text: &str,
        strategy: &str,
        rng: &mut StdRng,
    ) -> Result<Option<String>> {
        let strategy: TrainStrategy = strategy.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let Ok((numbers, target, "")) = parse_prompt(prompt_text) else {
            bail!("not a {} prompt: {prompt_text:?}", self.game);
        };
        // `"paper"`: the first search that succeeds.
        let runs = strategy.runs(rng);
        let path = if runs.is_empty() {
            solver_path(self.game, &numbers, target)
        } else {
            runs.into_iter()
                .find_map(|s| search_path(self.game, &numbers, target, s, rng))
        };
        Ok(match path {
            Some(p) => Some(render_completion(&numbers, &p)?),
            None => None,
        })
    }

    fn step_rules(&self) -> Option<&dyn StepRules> {
        Some(self)
    }

    fn max_seq_len(&self) -> usize {
        self.max_prompt_len + self.max_completion_len + 2
    }

    fn max_answer_len(&self) -> usize {
        self.max_completion_len
    }

    /// Accepts `4 7 8 8 -> 24` (numbers separated by spaces or commas, then
    /// `->` and the target; for `game24` the `-> 24` may be left out), or a
    /// prompt in the task's own format (`Input: 4 7 8 8\nTarget: 24`).
    /// Countdown: 1..=6 numbers in 1..=10^9 and a target >= 0; Game of 24:
    /// 4 numbers in 1..=13 and target 24. The reference is the solver's
    /// path, `None` when the puzzle has no solution.
    fn user_prompt(&self, text: &str) -> Result<(String, Option<String>)> {
        let (numbers, target) = self.parse_question(text)?;
        Ok((
            self.prompt_text(&numbers, target),
            reference(self.game, &numbers, target)?,
        ))
    }
}

/// The step rules of the path format ([`verify_prefix`]), for a step-level
/// search over the model's lines.
impl StepRules for CountdownTask {
    /// Numbers and target come from the prompt ([`parse_prompt`]); a prompt
    /// that does not parse, or has text after it, admits nothing.
    fn legal_prefix(&self, prompt: &str, lines: &[&str]) -> bool {
        match parse_prompt(prompt) {
            Ok((numbers, target, "")) => verify_prefix(&numbers, target, lines, self.game).is_ok(),
            _ => false,
        }
    }

    fn is_final(&self, line: &str) -> bool {
        line.starts_with("Answer:")
    }
}

/// Parses and validates a `countdown` `[data]` table, filling defaults.
pub fn resolve_countdown_data(data: &toml::Table) -> Result<toml::Table> {
    check_heldout_keys(data, "data")?;
    let cfg: CountdownTaskConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    cfg.validate()?;
    let mut table = to_table(&cfg)?;
    strip_heldout_rule_keys(&mut table);
    Ok(table)
}

/// Builds the `countdown` task from a resolved `[data]` table.
pub fn build_countdown(data: &toml::Table, seed: u64) -> Result<Box<dyn Task>> {
    let cfg: CountdownTaskConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    Ok(Box::new(CountdownTask::countdown(&cfg, seed)?))
}

/// Parses and validates a `game24` `[data]` table, filling defaults.
pub fn resolve_game24_data(data: &toml::Table) -> Result<toml::Table> {
    let cfg: Game24TaskConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    cfg.validate()?;
    to_table(&cfg)
}

/// Builds the `game24` task from a resolved `[data]` table (the seed is not
/// used: the split has its own `split_seed`).
pub fn build_game24(data: &toml::Table, _seed: u64) -> Result<Box<dyn Task>> {
    let cfg: Game24TaskConfig = from_value(toml::Value::Table(data.clone()), "data")?;
    Ok(Box::new(CountdownTask::game24(&cfg)?))
}

fn to_table<T: Serialize>(cfg: &T) -> Result<toml::Table> {
    match toml::Value::try_from(cfg)? {
        toml::Value::Table(t) => Ok(t),
        _ => bail!("internal error: the config did not serialise to a table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::countdown::rules::{MAX_MOVES, MAX_NUMBERS};

    /// Every path of every legal move order, rendered.
    fn all_completions<V: Value>(numbers: &[i64], out: &mut Vec<usize>) {
        fn rec<V: Value>(
            inputs: &[i64],
            nums: &[V],
            path: &mut Vec<Move<Ratio>>,
            out: &mut Vec<usize>,
        ) {
            if nums.len() == 1 {
                let text = render_completion(inputs, path).unwrap();
                // the answer is written with the target = the last value
                out.push(text.len());
                return;
            }
            let mut mv = [Move::default(); MAX_MOVES];
            let mut buf = [V::default(); MAX_NUMBERS];
            for i in 0..nums.len() {
                for j in i + 1..nums.len() {
                    let k = V::moves(nums[i], nums[j], &mut mv);
                    for m in &mv[..k] {
                        let r =
                            crate::tasks::countdown::rules::remove_pair_into(nums, i, j, &mut buf);
                        buf[r] = m.result;
                        path.push(m.to_ratio());
                        rec(inputs, &buf[..r + 1], path, out);
                        path.pop();
                    }
                }
            }
        }
        let nums: Vec<V> = numbers.iter().map(|&n| V::from_int(n)).collect();
        rec(numbers, &nums, &mut Vec::new(), out);
    }

    #[test]
    fn length_bounds_hold_for_every_move_order() {
        let cd = CountdownTask::countdown(
            &CountdownTaskConfig {
                val_size: 2,
                test_size: 2,
                ..Default::default()
            },
            0,
        )
        .unwrap();
        // The answer's value is the target; a non-target last value may be
        // longer than the target, so compare against the bound with the
        // longest value written instead of the target (8 digits here).
        let (_, bound_any) = length_bounds(4, |k| 2 * k, 8);
        let mut lens = Vec::new();
        for nums in [[99, 99, 99, 99], [98, 97, 99, 96], [1, 1, 1, 99]] {
            all_completions::<i64>(&nums, &mut lens);
        }
        let longest = *lens.iter().max().unwrap();
        assert!(longest <= bound_any, "{longest} > {bound_any}");
        assert!(cd.max_answer_len() <= bound_any);
        let g = CountdownTask::game24(&Game24TaskConfig::default()).unwrap();
        let mut lens = Vec::new();
        for nums in [
            [13, 13, 13, 13],
            [11, 12, 13, 13],
            [7, 9, 11, 13],
            [1, 3, 7, 13],
        ] {
            all_completions::<Ratio>(&nums, &mut lens);
        }
        let longest = *lens.iter().max().unwrap();
        // Same correction: bound with the longest value in the answer.
        let value_len = |k: usize| {
            if k == 1 {
                2
            } else {
                2 * digits((1u128 << (k - 1)) * 13u128.pow(k as u32)) + 1
            }
        };
        let (_, bound_any) = length_bounds(4, value_len, value_len(4));
        assert!(longest <= bound_any, "{longest} > {bound_any}");
        assert!(g.max_answer_len() <= bound_any);
    }

    #[test]
    fn train_strategy_names() {
        for s in [
            "random", "paper", "exact", "dfs-sum", "bfs-mult", "bfs3-sum",
        ] {
            assert_eq!(s.parse::<TrainStrategy>().unwrap().to_string(), s);
        }
        assert!("bfs0-sum".parse::<TrainStrategy>().is_err());
        assert!("greedy".parse::<TrainStrategy>().is_err());
        assert!(check_train_strategy("bfs65-sum".parse().unwrap()).is_err());
        assert_eq!(TrainStrategy::default(), TrainStrategy::Random);
    }
}
