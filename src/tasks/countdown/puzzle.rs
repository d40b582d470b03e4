//! Puzzle instances, generators and train/val/test splits.
//!
//! - Countdown ([`generate_countdown`]): the targets `target_min..=target_max`
//!   (minus the extra held-out targets) are shuffled with the seed and the
//!   first `floor(len * heldout_target_frac)` become test-only targets,
//!   together with the extra ones (the paper holds out 9 of 90 targets plus
//!   24). Train and val draw their targets from the rest, test only from the
//!   held-out ones. Each problem draws its target uniformly, then redraws
//!   the numbers (uniform in `number_min..=number_max`) until the exact
//!   solver finds a solution (rejection sampling, as in Stream-of-Search);
//!   the acceptance rate is solvable draws / all draws. Instances are
//!   distinct across and within splits (as a multiset of numbers plus the
//!   target); a draw repeating an earlier instance is redrawn and counted
//!   apart from the rejections.
//! - Game of 24 ([`game24_split`]): all 1820 multisets of 4 numbers from
//!   1..=13 in lexicographic order, the 1362 solvable ones kept, shuffled with
//!   `split_seed` (`StdRng::seed_from_u64`); the first `test_size` are the
//!   test split, the next `val_size` val, the rest train; each split is then
//!   sorted lexicographically. With the defaults (100 test, 180 val) the
//!   sizes mirror the paper's (100 test cases, 180 val, ToT's difficulty
//!   ranking is not used). With `split = "ranked"` ([`game24_ranked_split`])
//!   the paper's split is used instead: ToT's difficulty ranking
//!   (`data/game24_ranked.csv`, compiled in), test = ranks 901..=1000,
//!   ranks 1..=900 shuffled with `split_seed` into 180 val and 720 train.

use std::collections::HashSet;
use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

// `Game` lives with the rules; re-exported so `puzzle::Game` keeps working.
pub use super::rules::Game;
use super::rules::Ratio;
use super::solver::{is_solvable, solve};

/// A dataset split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training problems (D+ and D- paths).
    Train,
    /// Validation problems (same targets as train for Countdown).
    Val,
    /// Test problems (held-out targets for Countdown).
    Test,
}

impl Split {
    /// All splits in generation order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Salt of this split's random streams.
    pub fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7EA1_0001,
            Split::Val => 0x7EA1_0002,
            Split::Test => 0x7EA1_0003,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One puzzle: numbers (in the order shown in the prompt) and a target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// Input numbers, each used exactly once.
    pub numbers: Vec<i64>,
    /// The value to reach.
    pub target: i64,
}

impl Instance {
    /// Order-free identity: sorted numbers and the target.
    pub fn key(&self) -> (Vec<i64>, i64) {
        let mut n = self.numbers.clone();
        n.sort_unstable();
        (n, self.target)
    }

    /// Whether the instance is solvable under `game`'s rules.
    pub fn solvable(&self, game: Game) -> bool {
        match game {
            Game::Countdown => is_solvable(&self.numbers, self.target),
            Game::Game24 => {
                let nums: Vec<Ratio> = self.numbers.iter().map(|&n| Ratio::int(n)).collect();
                is_solvable(&nums, Ratio::int(self.target))
            }
        }
    }
}

/// SplitMix64 finaliser: mixes seeds and salts into independent streams.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random stream for one purpose, derived from the master seed and salts
/// (so each split/problem has its own stream, independent of the others).
pub fn derived_rng(seed: u64, salts: &[u64]) -> StdRng {
    let mut z = mix64(seed);
    for &s in salts {
        z = mix64(z ^ s);
    }
    StdRng::seed_from_u64(z)
}

/// The Countdown number and target ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountdownSpec {
    /// How many numbers per instance.
    pub count: usize,
    /// Smallest number (inclusive).
    pub number_min: i64,
    /// Largest number (inclusive).
    pub number_max: i64,
    /// Smallest target (inclusive).
    pub target_min: i64,
    /// Largest target (inclusive).
    pub target_max: i64,
}

impl CountdownSpec {
    /// The paper's setting: 4 numbers in 1..=99, targets 10..=100.
    pub const PAPER: CountdownSpec = CountdownSpec {
        count: 4,
        number_min: 1,
        number_max: 99,
        target_min: 10,
        target_max: 100,
    };
}

/// Which targets each split may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSplit {
    /// Targets of train and val (sorted).
    pub train: Vec<i64>,
    /// Held-out targets, only in test (sorted).
    pub test: Vec<i64>,
}

/// Splits the targets into train/val targets and held-out test targets
/// (see the module docs). `extra` targets always go to test.
pub fn split_targets(
    spec: &CountdownSpec,
    heldout_frac: f64,
    extra: &[i64],
    seed: u64,
) -> TargetSplit {
    let mut list: Vec<i64> = (spec.target_min..=spec.target_max)
        .filter(|t| !extra.contains(t))
        .collect();
    list.shuffle(&mut derived_rng(seed, &[0x7A46_E75E]));
    let k = ((list.len() as f64) * heldout_frac).floor() as usize;
    let mut test: Vec<i64> = list[..k].to_vec();
    test.extend_from_slice(extra);
    test.sort_unstable();
    test.dedup();
    let mut train = list[k..].to_vec();
    train.sort_unstable();
    TargetSplit { train, test }
}

/// One generated split with its rejection-sampling counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedSplit {
    /// Which split.
    pub split: Split,
    /// The accepted (solvable, distinct) instances.
    pub instances: Vec<Instance>,
    /// Number tuples drawn in total (accepted + unsolvable + duplicates).
    pub draws: u64,
    /// Draws rejected because the instance was already taken.
    pub duplicates: u64,
}

impl GeneratedSplit {
    /// Solvable draws / draws that were not duplicates (1.0 when nothing was drawn).
    pub fn acceptance_rate(&self) -> f64 {
        let fresh = self.draws - self.duplicates;
        if fresh == 0 {
            1.0
        } else {
            self.instances.len() as f64 / fresh as f64
        }
    }
}

/// Countdown train/val/test problems and the target split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountdownSplits {
    /// Targets per split.
    pub targets: TargetSplit,
    /// Train, val, test in that order.
    pub splits: Vec<GeneratedSplit>,
}

/// Error when rejection sampling gives up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{split} problem {index}: no new solvable instance for target {target} in {draws} draws \
     (countdown.max_draws); widen countdown.number_min/number_max or the target range, or lower the split sizes"
)]
pub struct SamplingError {
    /// Split being generated.
    pub split: Split,
    /// Index of the problem within the split.
    pub index: usize,
    /// The target drawn for it.
    pub target: i64,
    /// Draws spent.
    pub draws: u64,
}

/// Draws one solvable instance not in `seen` for a uniformly drawn target
/// (numbers redrawn until solvable). Returns the instance, the draws spent
/// and how many of them were duplicates.
pub fn sample_solvable<R: Rng>(
    rng: &mut R,
    spec: &CountdownSpec,
    targets: &[i64],
    seen: &HashSet<(Vec<i64>, i64)>,
    max_draws: u64,
) -> Result<(Instance, u64, u64), i64> {
    let target = targets[rng.gen_range(0..targets.len())];
    let mut dups = 0;
    for draw in 1..=max_draws {
        let numbers: Vec<i64> = (0..spec.count)
            .map(|_| rng.gen_range(spec.number_min..=spec.number_max))
            .collect();
        let inst = Instance { numbers, target };
        if seen.contains(&inst.key()) {
            dups += 1;
            continue;
        }
        if inst.solvable(Game::Countdown) {
            return Ok((inst, draw, dups));
        }
    }
    Err(target)
}

/// Generates the Countdown splits (module docs): train, then val, then
/// test, each from its own seeded stream, all instances distinct.
pub fn generate_countdown(
    spec: &CountdownSpec,
    heldout_frac: f64,
    extra_targets: &[i64],
    sizes: [usize; 3],
    max_draws: u64,
    seed: u64,
) -> Result<CountdownSplits, SamplingError> {
    let targets = split_targets(spec, heldout_frac, extra_targets, seed);
    let mut seen = HashSet::new();
    let mut splits = Vec::new();
    for (split, size) in Split::ALL.into_iter().zip(sizes) {
        let pool = if split == Split::Test {
            &targets.test
        } else {
            &targets.train
        };
        let mut rng = derived_rng(seed, &[0xC0DE_0001, split.salt()]);
        let mut g = GeneratedSplit {
            split,
            instances: Vec::with_capacity(size),
            draws: 0,
            duplicates: 0,
        };
        for index in 0..size {
            match sample_solvable(&mut rng, spec, pool, &seen, max_draws) {
                Ok((inst, draws, dups)) => {
                    g.draws += draws;
                    g.duplicates += dups;
                    seen.insert(inst.key());
                    g.instances.push(inst);
                }
                Err(target) => {
                    return Err(SamplingError {
                        split,
                        index,
                        target,
                        draws: max_draws,
                    })
                }
            }
        }
        splits.push(g);
    }
    Ok(CountdownSplits { targets, splits })
}

/// Most numbers a typed-in Countdown puzzle may have (`rewind solve`,
/// `rewind sample`).
pub const SOLVE_MAX_NUMBERS: usize = 6;
/// Largest number of a typed-in Countdown puzzle.
pub const SOLVE_MAX_VALUE: i64 = 1_000_000_000;

/// Smallest and largest Game-of-24 number.
pub const GAME24_RANGE: (i64, i64) = (1, 13);
/// The Game-of-24 target.
pub const GAME24_TARGET: i64 = 24;
/// How many of the 1820 multisets are solvable (computed in the tests).
pub const GAME24_SOLVABLE_COUNT: usize = 1362;

/// All 1820 multisets of four numbers from 1..=13, each sorted ascending,
/// in lexicographic order.
pub fn game24_multisets() -> Vec<[i64; 4]> {
    let (lo, hi) = GAME24_RANGE;
    let mut out = Vec::with_capacity(1820);
    for a in lo..=hi {
        for b in a..=hi {
            for c in b..=hi {
                for d in c..=hi {
                    out.push([a, b, c, d]);
                }
            }
        }
    }
    out
}

/// Whether four numbers make 24 under the Game-of-24 rules.
pub fn game24_solvable(nums: &[i64; 4]) -> bool {
    let r: Vec<Ratio> = nums.iter().map(|&n| Ratio::int(n)).collect();
    solve(&r, Ratio::int(GAME24_TARGET)).is_some()
}

/// The solvable Game-of-24 multisets (1362), lexicographic order.
pub fn game24_solvable_multisets() -> Vec<[i64; 4]> {
    game24_multisets()
        .into_iter()
        .filter(game24_solvable)
        .collect()
}

/// The deterministic Game-of-24 split (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Game24Split {
    /// Training multisets (the rest).
    pub train: Vec<[i64; 4]>,
    /// Validation multisets.
    pub val: Vec<[i64; 4]>,
    /// Test multisets.
    pub test: Vec<[i64; 4]>,
}

impl Game24Split {
    /// The multisets of `split`.
    pub fn get(&self, split: Split) -> &[[i64; 4]] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// Splits the solvable multisets: shuffle with `split_seed`, first
/// `test_size` to test, next `val_size` to val, rest to train (each sorted).
/// Sizes beyond the 1362 available are clipped.
pub fn game24_split(split_seed: u64, val_size: usize, test_size: usize) -> Game24Split {
    let mut all = game24_solvable_multisets();
    all.shuffle(&mut StdRng::seed_from_u64(split_seed));
    let t = test_size.min(all.len());
    let v = val_size.min(all.len() - t);
    let mut test = all[..t].to_vec();
    let mut val = all[t..t + v].to_vec();
    let mut train = all[t + v..].to_vec();
    test.sort_unstable();
    val.sort_unstable();
    train.sort_unstable();
    Game24Split { train, val, test }
}

/// Tree of Thoughts' Game-of-24 puzzles ranked by human solving time
/// (`data/game24_ranked.csv`, see `data/README.md`): `rank,puzzle`.
pub const GAME24_RANKED_CSV: &str = include_str!("../../../data/game24_ranked.csv");

/// Ranks after the first `GAME24_RANKED_POOL` hold the paper's test puzzles; the
/// ranks before them are its train/val pool (900 puzzles).
pub const GAME24_RANKED_POOL: usize = 900;

/// The 1362 ranked puzzles in rank order, each as a sorted multiset.
pub fn game24_ranked() -> Vec<[i64; 4]> {
    GAME24_RANKED_CSV
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (_, puzzle) = l.split_once(',').expect("rank,puzzle");
            let mut m = [0i64; 4];
            for (slot, n) in m.iter_mut().zip(puzzle.split_whitespace()) {
                *slot = n.parse().expect("a number");
            }
            m.sort_unstable();
            m
        })
        .collect()
}

/// The paper's ranked split (`splits.py`): test = ranks 901..=900 +
/// `test_size` (default 100: 901..=1000, ToT's test cases); ranks 1..=900
/// shuffled with `split_seed`, the first `val_size` to val and the rest to
/// train (default 180 / 720). Each split sorted. Sizes beyond what is
/// available are clipped (the config checks them).
pub fn game24_ranked_split(split_seed: u64, val_size: usize, test_size: usize) -> Game24Split {
    let ranked = game24_ranked();
    let (pool, rest) = ranked.split_at(GAME24_RANKED_POOL);
    let mut test = rest[..test_size.min(rest.len())].to_vec();
    let mut pool = pool.to_vec();
    pool.shuffle(&mut StdRng::seed_from_u64(split_seed));
    let v = val_size.min(pool.len());
    let mut val = pool[..v].to_vec();
    let mut train = pool[v..].to_vec();
    test.sort_unstable();
    val.sort_unstable();
    train.sort_unstable();
    Game24Split { train, val, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_puzzles_are_the_solvable_multisets() {
        let ranked = game24_ranked();
        assert_eq!(ranked.len(), GAME24_SOLVABLE_COUNT);
        assert_eq!(ranked[0], [1, 1, 4, 6]);
        let mut a = ranked.clone();
        a.sort_unstable();
        let mut b = game24_solvable_multisets();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    #[test]
    fn paper_targets_hold_out_nine_plus_24() {
        let t = split_targets(&CountdownSpec::PAPER, 0.1, &[24], 0);
        assert_eq!(t.test.len(), 10);
        assert_eq!(t.train.len(), 81);
        assert!(t.test.contains(&24));
        assert!(t.train.iter().all(|x| !t.test.contains(x)));
    }

    #[test]
    fn small_generation_is_disjoint_and_solvable() {
        let s = generate_countdown(&CountdownSpec::PAPER, 0.1, &[24], [50, 20, 20], 100_000, 3)
            .unwrap();
        let mut keys = HashSet::new();
        for g in &s.splits {
            assert!(g.acceptance_rate() > 0.0 && g.acceptance_rate() <= 1.0);
            for inst in &g.instances {
                assert!(inst.solvable(Game::Countdown));
                assert!(keys.insert(inst.key()));
                let pool = if g.split == Split::Test {
                    &s.targets.test
                } else {
                    &s.targets.train
                };
                assert!(pool.contains(&inst.target));
            }
        }
    }
}
