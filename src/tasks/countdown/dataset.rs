//! Success/failure path datasets (D+ / D-), their statistics and the
//! symbolic search baseline. See the module docs of [`super`] for the file
//! layout and the line formats.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::{strip_heldout_rule_keys, CountdownDataConfig, Game24SplitKind, SearchMode};
use super::path::{prompt, render_completion, verify_completion};
use super::puzzle::{
    derived_rng, game24_ranked_split, game24_split, generate_countdown, Split, GAME24_TARGET,
};
use super::rules::{Game, Move, Ratio, Value};
use super::search::{self, Strategy, StrategyMix, StrategySpec, PAPER_SEARCHES};
use super::solver::solve;

const PATHS_SALT: u64 = 0xDA7A_0001;
const BASELINE_SALT: u64 = 0xBA5E_0001;

/// One line of `{split}_pos.jsonl` / `{split}_neg.jsonl`: one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRecord {
    /// `countdown` or `game24`.
    pub task: Game,
    /// `train`, `val` or `test`.
    pub split: Split,
    /// Problem id, `{task}-{split}-{index:06}` (shared by all paths of a problem).
    pub id: String,
    /// Input numbers, in prompt order.
    pub numbers: Vec<i64>,
    /// Target.
    pub target: i64,
    /// Strategy that produced the path, e.g. `dfs-sum`, `bfs3-mult`.
    pub strategy: String,
    /// Whether that search run solved the problem.
    pub search_solved: bool,
    /// Verifier label of `prompt + completion` (true in D+, false in D-).
    pub correct: bool,
    /// `Input: ...\nTarget: ...\nSteps:\n`.
    pub prompt: String,
    /// Steps and `Answer:` line, newline-terminated.
    pub completion: String,
    /// Nodes the search explored on this problem (visits + 1).
    pub nodes_explored: usize,
}

/// One line of `{split}_problems.jsonl`: a problem with one exact solution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRecord {
    /// `countdown` or `game24`.
    pub task: Game,
    /// `train`, `val` or `test`.
    pub split: Split,
    /// `{task}-{split}-{index:06}`.
    pub id: String,
    /// Input numbers, in prompt order.
    pub numbers: Vec<i64>,
    /// Target.
    pub target: i64,
    /// The prompt.
    pub prompt: String,
    /// One solution from the exact solver, minimal parentheses (`(7-8/8)*4`).
    pub solution: String,
}

/// Per-strategy statistics of one split (a row of `strategy_stats.csv`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StrategyStats {
    /// `countdown` or `game24`.
    pub task: String,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Concrete strategy, or `all` for the split total.
    pub strategy: String,
    /// Problems this strategy was drawn for.
    pub problems: usize,
    /// Problems it solved.
    pub solved: usize,
    /// solved / problems.
    pub success_rate: f64,
    /// Mean nodes explored per problem.
    pub mean_nodes_explored: f64,
    /// Mean distinct failed leaves per problem (before the max_failed cap).
    pub mean_failed_leaves: f64,
    /// D+ paths written.
    pub pos_paths: usize,
    /// D- paths written.
    pub neg_paths: usize,
    /// Mean completion length of D+ paths in tokens (= characters).
    pub mean_pos_tokens: f64,
    /// Mean completion length of D- paths in tokens (= characters).
    pub mean_neg_tokens: f64,
}

/// Statistics of one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Which split.
    pub split: Split,
    /// Problems in the split.
    pub problems: usize,
    /// Rejection sampling: number draws in total (Countdown; = problems for Game of 24).
    pub draws: u64,
    /// Draws redrawn because the instance was already taken.
    pub duplicates: u64,
    /// Solvable draws / non-duplicate draws.
    pub acceptance_rate: f64,
    /// Totals over the split (`strategy = "all"`).
    pub total: StrategyStats,
    /// One row per concrete strategy drawn, sorted by name.
    pub strategies: Vec<StrategyStats>,
}

/// Statistics of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStats {
    /// `countdown` or `game24`.
    pub task: Game,
    /// Targets of train/val (Countdown) or `[24]`.
    pub train_targets: Vec<i64>,
    /// Held-out test targets (Countdown) or `[24]`.
    pub test_targets: Vec<i64>,
    /// Train, val, test.
    pub splits: Vec<SplitStats>,
}

/// A row of `baseline.csv`: one strategy on one task's test problems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    /// `countdown` or `game24`.
    pub task: String,
    /// Concrete strategy, `random` (the search mix) or `exact` (the solver).
    pub strategy: String,
    /// Test problems run.
    pub problems: usize,
    /// Problems solved.
    pub solved: usize,
    /// solved / problems.
    pub success_rate: f64,
    /// Mean nodes explored (0 for `exact`).
    pub mean_nodes_explored: f64,
    /// Mean wall time per problem in microseconds (machine dependent).
    pub mean_wall_us: f64,
}

/// What [`build_datasets`] wrote. Serialised (without the baseline, the
/// file list and the timing, which are not reproducible) to `stats.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Master seed used.
    pub seed: u64,
    /// Countdown statistics, if built.
    pub countdown: Option<TaskStats>,
    /// Game-of-24 statistics, if built.
    pub game24: Option<TaskStats>,
    /// Baseline rows (also in `baseline.csv`).
    #[serde(skip)]
    pub baseline: Vec<BaselineRow>,
    /// Every file written.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Wall time of the build in seconds.
    #[serde(skip)]
    pub elapsed_s: f64,
}

impl DatasetStats {
    /// A human-readable multi-line summary.
    pub fn summary(&self, out_dir: &Path) -> String {
        let mut s = format!(
            "countdown/game24 datasets written to {} in {:.2} s (seed {})\n",
            out_dir.display(),
            self.elapsed_s,
            self.seed
        );
        for t in [&self.countdown, &self.game24].into_iter().flatten() {
            if t.task == Game::Countdown {
                s += &format!("countdown held-out test targets: {:?}\n", t.test_targets);
            }
            for sp in &t.splits {
                s += &format!(
                    "{} {:5}: {:6} problems, acceptance {:5.1}%, search success {:5.1}%, D+ {:6}, D- {:6}, mean nodes {:.1}\n",
                    t.task,
                    sp.split.name(),
                    sp.problems,
                    100.0 * sp.acceptance_rate,
                    100.0 * sp.total.success_rate,
                    sp.total.pos_paths,
                    sp.total.neg_paths,
                    sp.total.mean_nodes_explored
                );
            }
        }
        if !self.baseline.is_empty() {
            s += "baseline on the test split (success rate, mean wall time per problem):\n";
            for b in &self.baseline {
                s += &format!(
                    "  {:9} {:9}: {:5.1}% of {:4}, {:8.1} us, {:6.1} nodes\n",
                    b.task,
                    b.strategy,
                    100.0 * b.success_rate,
                    b.problems,
                    b.mean_wall_us,
                    b.mean_nodes_explored
                );
            }
        }
        s
    }
}

/// The result of one search run turned into paths.
pub(crate) struct ProblemPaths {
    pub strategy: Strategy,
    pub solved: bool,
    pub nodes_explored: usize,
    pub failed_leaves: usize,
    /// The successful path's completion text, if the search succeeded.
    pub pos: Option<String>,
    /// At most `max_failed` distinct failed paths' completion texts.
    pub neg: Vec<String>,
}

/// [`problem_paths`] with the value type of `game` (`i64` for Countdown,
/// exact rationals for Game of 24).
pub(crate) fn game_paths<R: Rng>(
    game: Game,
    numbers: &[i64],
    target: i64,
    strategy: Strategy,
    max_failed: usize,
    rng: &mut R,
) -> Result<ProblemPaths> {
    match game {
        Game::Countdown => {
            problem_paths::<i64, R>(game, numbers, target, strategy, max_failed, rng)
        }
        Game::Game24 => problem_paths::<Ratio, R>(game, numbers, target, strategy, max_failed, rng),
    }
}

/// The paths of several search runs on one problem, merged.
pub(crate) struct MergedPaths {
    /// Each run, in order (its own `pos` and up to `max_failed` `neg`).
    pub runs: Vec<ProblemPaths>,
    /// Distinct successful paths, with the index of the first run that
    /// found each one.
    pub pos: Vec<(usize, String)>,
    /// Distinct failed paths over all runs (at most `max_failed` per run
    /// before the merge), with the first run that kept each one.
    pub neg: Vec<(usize, String)>,
}

impl MergedPaths {
    /// Whether any run solved the problem.
    pub fn solved(&self) -> bool {
        self.runs.iter().any(|r| r.solved)
    }
}

/// Runs every strategy in `strategies` on one problem, in order (one
/// [`game_paths`] each, sharing `rng`), and merges their paths: successful
/// paths deduplicated, failed paths sampled per run as in [`game_paths`]
/// and then deduplicated across runs (the paper's D+ / D- files are built
/// per search and deduplicated per case, then concatenated). With one
/// strategy this is exactly [`game_paths`].
pub(crate) fn merged_paths<R: Rng>(
    game: Game,
    numbers: &[i64],
    target: i64,
    strategies: &[Strategy],
    max_failed: usize,
    rng: &mut R,
) -> Result<MergedPaths> {
    let mut out = MergedPaths {
        runs: Vec::with_capacity(strategies.len()),
        pos: Vec::new(),
        neg: Vec::new(),
    };
    let (mut seen_pos, mut seen_neg) = (HashSet::new(), HashSet::new());
    for (i, &s) in strategies.iter().enumerate() {
        let p = game_paths(game, numbers, target, s, max_failed, rng)?;
        if let Some(c) = &p.pos {
            if seen_pos.insert(c.clone()) {
                out.pos.push((i, c.clone()));
            }
        }
        for c in &p.neg {
            if seen_neg.insert(c.clone()) {
                out.neg.push((i, c.clone()));
            }
        }
        out.runs.push(p);
    }
    Ok(out)
}

fn to_ratio<V: Value>(moves: &[Move<V>]) -> Vec<Move<Ratio>> {
    moves.iter().map(|m| m.to_ratio()).collect()
}

/// Runs the drawn strategy on one problem and extracts the successful path
/// and at most `max_failed` distinct failed paths (sampled uniformly, kept
/// in visit order). Every path is checked with the verifier.
fn problem_paths<V: Value, R: Rng>(
    game: Game,
    numbers: &[i64],
    target: i64,
    strategy: Strategy,
    max_failed: usize,
    rng: &mut R,
) -> Result<ProblemPaths> {
    let nums: Vec<V> = numbers.iter().map(|&n| V::from_int(n)).collect();
    let trace = search::run(&nums, V::from_int(target), strategy, rng);
    let pos = match trace.success_path() {
        Some(p) => Some(render_completion(numbers, &to_ratio(&p))?),
        None => None,
    };
    let mut seen = HashSet::new();
    let failed: Vec<Vec<Move<V>>> = trace
        .failed_paths()
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect();
    let mut picked: Vec<usize> = if failed.len() <= max_failed {
        (0..failed.len()).collect()
    } else {
        rand::seq::index::sample(rng, failed.len(), max_failed).into_vec()
    };
    picked.sort_unstable();
    let mut neg = Vec::with_capacity(picked.len());
    for i in picked {
        neg.push(render_completion(numbers, &to_ratio(&failed[i]))?);
    }
    if let Some(p) = &pos {
        if let Err(e) = verify_completion(numbers, target, p, game) {
            bail!("internal error: the verifier rejects a successful {strategy} path for {numbers:?} -> {target}: {e}\n{p}");
        }
    }
    for n in &neg {
        if verify_completion(numbers, target, n, game).is_ok() {
            bail!("internal error: the verifier accepts a failed {strategy} path for {numbers:?} -> {target}\n{n}");
        }
    }
    Ok(ProblemPaths {
        strategy,
        solved: trace.solved(),
        nodes_explored: trace.nodes_explored(),
        failed_leaves: failed.len(),
        pos,
        neg,
    })
}

#[derive(Default)]
struct Acc {
    problems: usize,
    solved: usize,
    nodes: usize,
    failed_leaves: usize,
    pos: usize,
    neg: usize,
    pos_tokens: usize,
    neg_tokens: usize,
}

impl Acc {
    /// One problem: whether it was solved, the search work, and the D+ /
    /// D- completions written for it.
    fn add<'a>(
        &mut self,
        solved: bool,
        nodes: usize,
        failed_leaves: usize,
        pos: impl Iterator<Item = &'a String>,
        neg: impl Iterator<Item = &'a String>,
    ) {
        self.problems += 1;
        self.solved += solved as usize;
        self.nodes += nodes;
        self.failed_leaves += failed_leaves;
        for c in pos {
            self.pos += 1;
            self.pos_tokens += c.len();
        }
        for c in neg {
            self.neg += 1;
            self.neg_tokens += c.len();
        }
    }

    fn stats(&self, task: Game, split: Split, strategy: &str) -> StrategyStats {
        let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        StrategyStats {
            task: task.name().into(),
            split: split.name().into(),
            strategy: strategy.into(),
            problems: self.problems,
            solved: self.solved,
            success_rate: div(self.solved, self.problems),
            mean_nodes_explored: div(self.nodes, self.problems),
            mean_failed_leaves: div(self.failed_leaves, self.problems),
            pos_paths: self.pos,
            neg_paths: self.neg,
            mean_pos_tokens: div(self.pos_tokens, self.pos),
            mean_neg_tokens: div(self.neg_tokens, self.neg),
        }
    }
}

struct Writers {
    problems: BufWriter<File>,
    pos: BufWriter<File>,
    neg: BufWriter<File>,
}

fn create(path: &Path, files: &mut Vec<PathBuf>) -> Result<BufWriter<File>> {
    files.push(path.to_path_buf());
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

fn json_line<T: Serialize>(w: &mut impl Write, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Builds one split of one task: writes its three files and returns its stats.
#[allow(clippy::too_many_arguments)]
fn build_split(
    cfg: &CountdownDataConfig,
    game: Game,
    split: Split,
    instances: &[(Vec<i64>, i64)],
    draws: u64,
    duplicates: u64,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<SplitStats> {
    let mut w = Writers {
        problems: create(&dir.join(format!("{split}_problems.jsonl")), files)?,
        pos: create(&dir.join(format!("{split}_pos.jsonl")), files)?,
        neg: create(&dir.join(format!("{split}_neg.jsonl")), files)?,
    };
    let mix = cfg.search.mix();
    let mut total = Acc::default();
    let mut per: BTreeMap<String, Acc> = BTreeMap::new();
    for (index, (numbers, target)) in instances.iter().enumerate() {
        let id = format!("{game}-{split}-{index:06}");
        let mut rng = derived_rng(
            cfg.seed,
            &[PATHS_SALT, game as u64, split.salt(), index as u64],
        );
        let strategies = match cfg.search.mode {
            SearchMode::Random => vec![mix.sample(&mut rng)],
            SearchMode::Paper => PAPER_SEARCHES.to_vec(),
        };
        let m = merged_paths(
            game,
            numbers,
            *target,
            &strategies,
            cfg.search.max_failed,
            &mut rng,
        )?;
        let solution = match game {
            Game::Countdown => solve(numbers, *target).map(|s| s.expression()),
            Game::Game24 => {
                let nums: Vec<Ratio> = numbers.iter().map(|&n| Ratio::int(n)).collect();
                solve(&nums, Ratio::int(*target)).map(|s| s.expression())
            }
        };
        let solution = solution.with_context(|| {
            format!("internal error: {id} {numbers:?} -> {target} is not solvable")
        })?;
        let pr = format!("{}{}", cfg.prompt.preamble(game), prompt(numbers, *target));
        json_line(
            &mut w.problems,
            &ProblemRecord {
                task: game,
                split,
                id: id.clone(),
                numbers: numbers.clone(),
                target: *target,
                prompt: pr.clone(),
                solution,
            },
        )?;
        let record = |run: usize, completion: &String, correct: bool| {
            let p = &m.runs[run];
            PathRecord {
                task: game,
                split,
                id: id.clone(),
                numbers: numbers.clone(),
                target: *target,
                strategy: p.strategy.to_string(),
                search_solved: p.solved,
                correct,
                prompt: pr.clone(),
                completion: completion.clone(),
                nodes_explored: p.nodes_explored,
            }
        };
        for (run, c) in &m.pos {
            json_line(&mut w.pos, &record(*run, c, true))?;
        }
        for (run, c) in &m.neg {
            json_line(&mut w.neg, &record(*run, c, false))?;
        }
        // The split total counts problems; each strategy row counts its
        // runs and the paths written on its behalf.
        total.add(
            m.solved(),
            m.runs.iter().map(|r| r.nodes_explored).sum(),
            m.runs.iter().map(|r| r.failed_leaves).sum(),
            m.pos.iter().map(|(_, c)| c),
            m.neg.iter().map(|(_, c)| c),
        );
        for (i, r) in m.runs.iter().enumerate() {
            per.entry(r.strategy.to_string()).or_default().add(
                r.solved,
                r.nodes_explored,
                r.failed_leaves,
                m.pos.iter().filter(|(run, _)| *run == i).map(|(_, c)| c),
                m.neg.iter().filter(|(run, _)| *run == i).map(|(_, c)| c),
            );
        }
    }
    for f in [&mut w.problems, &mut w.pos, &mut w.neg] {
        f.flush()?;
    }
    let fresh = draws - duplicates;
    Ok(SplitStats {
        split,
        problems: instances.len(),
        draws,
        duplicates,
        acceptance_rate: if fresh == 0 {
            1.0
        } else {
            instances.len() as f64 / fresh as f64
        },
        total: total.stats(game, split, "all"),
        strategies: per
            .iter()
            .map(|(name, a)| a.stats(game, split, name))
            .collect(),
    })
}

/// Baseline rows for one task's test problems.
fn baseline_rows(
    cfg: &CountdownDataConfig,
    game: Game,
    problems: &[(Vec<i64>, i64)],
) -> Vec<BaselineRow> {
    let n = if cfg.baseline.max_problems == 0 {
        problems.len()
    } else {
        cfg.baseline.max_problems.min(problems.len())
    };
    let problems = &problems[..n];
    let mix = cfg.search.mix();
    let baseline_mix = StrategyMix {
        specs: cfg.baseline.strategies.clone(),
        beam_widths: cfg.search.beam_widths.clone(),
    };
    let mut entries: Vec<(String, Option<StrategySpec>)> = baseline_mix
        .concrete()
        .into_iter()
        .map(|s| (s.to_string(), Some(StrategySpec::Fixed(s))))
        .collect();
    entries.push(("random".into(), None));
    let mut rows = Vec::new();
    let run_one =
        |numbers: &[i64], target: i64, s: Strategy, rng: &mut rand::rngs::StdRng| match game {
            Game::Countdown => {
                let t = search::run(numbers, target, s, rng);
                (t.solved(), t.nodes_explored())
            }
            Game::Game24 => {
                let nums: Vec<Ratio> = numbers.iter().map(|&x| Ratio::int(x)).collect();
                let t = search::run(&nums, Ratio::int(target), s, rng);
                (t.solved(), t.nodes_explored())
            }
        };
    for (name, spec) in entries {
        let (mut solved, mut nodes) = (0, 0);
        let start = Instant::now();
        for (i, (numbers, target)) in problems.iter().enumerate() {
            let mut rng = derived_rng(cfg.seed, &[BASELINE_SALT, game as u64, i as u64]);
            let s = match spec {
                Some(StrategySpec::Fixed(s)) => s,
                _ => mix.sample(&mut rng),
            };
            let (ok, k) = run_one(numbers, *target, s, &mut rng);
            solved += ok as usize;
            nodes += k;
        }
        let us = start.elapsed().as_secs_f64() * 1e6;
        rows.push(row(game, &name, n, solved, nodes, us));
    }
    let start = Instant::now();
    let mut solved = 0;
    for (numbers, target) in problems {
        let ok = match game {
            Game::Countdown => solve(numbers, *target).is_some(),
            Game::Game24 => {
                let nums: Vec<Ratio> = numbers.iter().map(|&x| Ratio::int(x)).collect();
                solve(&nums, Ratio::int(*target)).is_some()
            }
        };
        solved += std::hint::black_box(ok) as usize;
    }
    let us = start.elapsed().as_secs_f64() * 1e6;
    rows.push(row(game, "exact", n, solved, 0, us));
    rows
}

fn row(game: Game, name: &str, n: usize, solved: usize, nodes: usize, us: f64) -> BaselineRow {
    let d = n.max(1) as f64;
    BaselineRow {
        task: game.name().into(),
        strategy: name.into(),
        problems: n,
        solved,
        success_rate: solved as f64 / d,
        mean_nodes_explored: nodes as f64 / d,
        mean_wall_us: us / d,
    }
}

/// Builds every enabled dataset under `out_dir` and returns the statistics.
/// Prints nothing. Files (see [`super`] for the formats):
/// `countdown/{split}_{problems,pos,neg}.jsonl`, the same under `game24/`,
/// `stats.json`, `strategy_stats.csv`, `config.toml` (the effective config)
/// and, when the baseline is enabled, `baseline.csv`. Everything except
/// `baseline.csv` (wall times) is byte-identical for the same config.
pub fn build_datasets(cfg: &CountdownDataConfig, out_dir: &Path) -> Result<DatasetStats> {
    let start = Instant::now();
    cfg.validate()?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut files = Vec::new();
    let mut stats = DatasetStats {
        seed: cfg.seed,
        countdown: None,
        game24: None,
        baseline: vec![],
        files: vec![],
        elapsed_s: 0.0,
    };
    let mut baseline = Vec::new();

    if cfg.countdown.enabled {
        let c = &cfg.countdown;
        let (heldout_frac, extra_targets) = c.heldout();
        let gen = generate_countdown(
            &c.spec(),
            heldout_frac,
            &extra_targets,
            [c.train_size, c.val_size, c.test_size],
            c.max_draws,
            cfg.seed,
        )?;
        let dir = out_dir.join("countdown");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut splits = Vec::new();
        for g in &gen.splits {
            let inst: Vec<(Vec<i64>, i64)> = g
                .instances
                .iter()
                .map(|i| (i.numbers.clone(), i.target))
                .collect();
            splits.push(build_split(
                cfg,
                Game::Countdown,
                g.split,
                &inst,
                g.draws,
                g.duplicates,
                &dir,
                &mut files,
            )?);
            if g.split == Split::Test && cfg.baseline.enabled {
                baseline.extend(baseline_rows(cfg, Game::Countdown, &inst));
            }
        }
        stats.countdown = Some(TaskStats {
            task: Game::Countdown,
            train_targets: gen.targets.train.clone(),
            test_targets: gen.targets.test.clone(),
            splits,
        });
    }

    if cfg.game24.enabled {
        let g = &cfg.game24;
        let sp = match g.split {
            Game24SplitKind::Random => game24_split(g.split_seed, g.val_size, g.test_size),
            Game24SplitKind::Ranked => game24_ranked_split(g.split_seed, g.val_size, g.test_size),
        };
        let dir = out_dir.join("game24");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut splits = Vec::new();
        for split in Split::ALL {
            let inst: Vec<(Vec<i64>, i64)> = sp
                .get(split)
                .iter()
                .map(|m| (m.to_vec(), GAME24_TARGET))
                .collect();
            let n = inst.len() as u64;
            splits.push(build_split(
                cfg,
                Game::Game24,
                split,
                &inst,
                n,
                0,
                &dir,
                &mut files,
            )?);
            if split == Split::Test && cfg.baseline.enabled {
                baseline.extend(baseline_rows(cfg, Game::Game24, &inst));
            }
        }
        stats.game24 = Some(TaskStats {
            task: Game::Game24,
            train_targets: vec![GAME24_TARGET],
            test_targets: vec![GAME24_TARGET],
            splits,
        });
    }

    let p = out_dir.join("stats.json");
    fs::write(&p, serde_json::to_string_pretty(&stats)? + "\n")
        .with_context(|| format!("writing {}", p.display()))?;
    files.push(p);

    let p = out_dir.join("strategy_stats.csv");
    let mut w = csv::Writer::from_path(&p).with_context(|| format!("writing {}", p.display()))?;
    for t in [&stats.countdown, &stats.game24].into_iter().flatten() {
        for s in &t.splits {
            w.serialize(&s.total)?;
            for r in &s.strategies {
                w.serialize(r)?;
            }
        }
    }
    w.flush()?;
    files.push(p);

    let p = out_dir.join("config.toml");
    let text = if cfg.countdown.heldout_targets.is_some() {
        // Without the unused heldout_target_frac / heldout_extra_targets,
        // which the file may not set together with heldout_targets.
        let mut t = toml::Value::try_from(cfg)?;
        if let Some(toml::Value::Table(c)) = t.get_mut("countdown") {
            strip_heldout_rule_keys(c);
        }
        toml::to_string(&t)?
    } else {
        toml::to_string(cfg)?
    };
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    files.push(p);

    if cfg.baseline.enabled {
        let p = out_dir.join("baseline.csv");
        let mut w =
            csv::Writer::from_path(&p).with_context(|| format!("writing {}", p.display()))?;
        for r in &baseline {
            w.serialize(r)?;
        }
        w.flush()?;
        files.push(p);
    }

    stats.baseline = baseline;
    stats.files = files;
    stats.elapsed_s = start.elapsed().as_secs_f64();
    Ok(stats)
}
