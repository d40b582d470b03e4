//! Configuration of `rewind data countdown CONFIG` ([`CountdownDataConfig`]).
//!
//! Every field has a default, so an empty file is the default build; keys
//! unknown to the config are errors (`deny_unknown_fields`). The example
//! with every key is `experiments/countdown_data.toml`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::path::PromptStyle;
use super::puzzle::{CountdownSpec, GAME24_SOLVABLE_COUNT};
use super::rules::MAX_NUMBERS;
use super::search::{StrategyMix, StrategySpec};

/// A configuration value out of range; `key` is its full dotted key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key} = {value}: {reason}")]
pub struct ConfigError {
    /// Full key, e.g. `countdown.number_max`.
    pub key: String,
    /// The offending value as written.
    pub value: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

fn err<T: std::fmt::Debug>(key: &str, value: T, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// The test-only targets of the learning-and-forgetting paper: what its
/// generator (`generate_problem.py --seed 4`: targets 10..=100 without 24,
/// `random.shuffle`, the first 9 held out, then 24 added) holds out;
/// re-running the reference's shuffle with Python's `random.seed(4)` gives
/// this list.
pub const PAPER_HELDOUT_TARGETS: [i64; 10] = [14, 24, 40, 42, 58, 63, 71, 87, 89, 90];

/// `heldout_targets`: the test-only targets written out, or a preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum HeldoutTargets {
    /// A preset name; `"paper"` is [`PAPER_HELDOUT_TARGETS`].
    Preset(String),
    /// The targets themselves.
    List(Vec<i64>),
}

impl HeldoutTargets {
    /// The targets; errors name `key` and the allowed values.
    pub fn targets(&self, key: &str) -> Result<Vec<i64>, ConfigError> {
        let list = match self {
            HeldoutTargets::Preset(name) if name == "paper" => PAPER_HELDOUT_TARGETS.to_vec(),
            HeldoutTargets::Preset(name) => {
                return Err(err(
                    key,
                    name,
                    "expected \"paper\" (14, 24, 40, 42, 58, 63, 71, 87, 89, 90) or a list of targets, each in 0..=1000000",
                ))
            }
            HeldoutTargets::List(list) => list.clone(),
        };
        if let Some(t) = list.iter().find(|&&t| !(0..=1_000_000).contains(&t)) {
            return Err(err(key, t, "each held-out target must be in 0..=1000000"));
        }
        Ok(list)
    }
}

/// Keys that `heldout_targets` excludes.
const HELDOUT_RULE_KEYS: [&str; 2] = ["heldout_target_frac", "heldout_extra_targets"];

/// Errors when a raw `[countdown]` / `[data]` table sets `heldout_targets`
/// together with `heldout_target_frac` or `heldout_extra_targets` (the
/// struct cannot tell a key written with its default value from a missing
/// one, so the check runs on the table as written).
pub fn check_heldout_keys(table: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    if let Some(v) = table.get("heldout_targets") {
        if let Some(k) = HELDOUT_RULE_KEYS.iter().find(|k| table.contains_key(**k)) {
            return Err(ConfigError {
                key: format!("{prefix}.heldout_targets"),
                value: v.to_string(),
                reason: format!(
                    "{prefix}.heldout_targets and {prefix}.{k} are exclusive: give the held-out targets as a list (or \"paper\"), or as {prefix}.heldout_target_frac + {prefix}.heldout_extra_targets"
                ),
            });
        }
    }
    Ok(())
}

/// Removes `heldout_target_frac` / `heldout_extra_targets` (their unused
/// defaults) from a serialised table that sets `heldout_targets`, so the
/// table reads back without tripping [`check_heldout_keys`].
pub fn strip_heldout_rule_keys(table: &mut toml::Table) {
    if table.contains_key("heldout_targets") {
        for k in HELDOUT_RULE_KEYS {
            table.remove(k);
        }
    }
}

/// The whole dataset build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountdownDataConfig {
    /// Master seed. Every random choice (held-out targets, problems,
    /// strategies, beam shuffles, failed-path sampling) derives from it, so
    /// the same config writes byte-identical files. Any u64; default 0.
    pub seed: u64,
    /// The prompts written: `"short"` (`Input: ...\nTarget: ...\nSteps:\n`)
    /// or `"paper"` (the same after the paper's instruction line, `Use
    /// numbers and basic arithmetic operations (+ - * /) to obtain the
    /// target number.`, for Game of 24 `... to obtain 24.`). Default
    /// "short".
    #[serde(skip_serializing_if = "PromptStyle::is_short")]
    pub prompt: PromptStyle,
    /// Countdown problems and splits.
    pub countdown: CountdownSection,
    /// Game-of-24 problems and splits.
    pub game24: Game24Section,
    /// Search strategies that produce the paths.
    pub search: SearchSection,
    /// Symbolic inference-time search baseline on the test splits.
    pub baseline: BaselineSection,
}

/// `[countdown]`: problem generator and split sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountdownSection {
    /// Build the Countdown datasets at all. Default true.
    pub enabled: bool,
    /// Numbers per problem, 2..=6. Default 4 (paper).
    pub numbers: usize,
    /// Smallest input number, >= 1. Default 1 (paper).
    pub number_min: i64,
    /// Largest input number, >= number_min; `max(number_max, 2)^numbers`
    /// must fit in i64 so no intermediate can overflow (e.g. <= 55108 for 4
    /// numbers). Default 99 (paper).
    pub number_max: i64,
    /// Smallest target, >= 0. Default 10 (paper).
    pub target_min: i64,
    /// Largest target, >= target_min, at most 1_000_000. Default 100 (paper).
    pub target_max: i64,
    /// Fraction of the targets target_min..=target_max (after removing the
    /// extra ones) held out for test only, in [0, 1). Default 0.1 (paper).
    pub heldout_target_frac: f64,
    /// Targets always held out for test (also outside the range), each >= 0.
    /// Default `[24]` (the paper holds out 24 to test on Game-of-24 style
    /// targets).
    pub heldout_extra_targets: Vec<i64>,
    /// The test-only targets as an explicit list (`[14, 24, 40]`, each in
    /// 0..=1000000, also outside the range), or `"paper"` for the paper's
    /// list 14, 24, 40, 42, 58, 63, 71, 87, 89, 90. Train and val use every
    /// other target of the range. Exclusive with heldout_target_frac and
    /// heldout_extra_targets. Default: unset (those two keys decide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heldout_targets: Option<HeldoutTargets>,
    /// Training problems, <= 10_000_000. Default 2000 (paper: 500_000).
    pub train_size: usize,
    /// Validation problems (train targets, distinct problems). Default 200
    /// (paper: 1000).
    pub val_size: usize,
    /// Test problems (held-out targets only). Default 200 (paper: 1000).
    pub test_size: usize,
    /// Rejection-sampling cap: draws of numbers for one problem before the
    /// build fails, >= 1. Default 100_000.
    pub max_draws: u64,
}

impl Default for CountdownSection {
    fn default() -> Self {
        let p = CountdownSpec::PAPER;
        CountdownSection {
            enabled: true,
            numbers: p.count,
            number_min: p.number_min,
            number_max: p.number_max,
            target_min: p.target_min,
            target_max: p.target_max,
            heldout_target_frac: 0.1,
            heldout_extra_targets: vec![24],
            heldout_targets: None,
            train_size: 2000,
            val_size: 200,
            test_size: 200,
            max_draws: 100_000,
        }
    }
}

impl CountdownSection {
    /// The held-out rule as `(heldout_frac, extra_targets)` for
    /// [`super::puzzle::split_targets`]: an explicit list is fraction 0
    /// plus the list. A bad preset gives no targets (`validate` names it).
    pub fn heldout(&self) -> (f64, Vec<i64>) {
        match &self.heldout_targets {
            Some(h) => (0.0, h.targets("").unwrap_or_default()),
            None => (self.heldout_target_frac, self.heldout_extra_targets.clone()),
        }
    }

    /// The generator ranges.
    pub fn spec(&self) -> CountdownSpec {
        CountdownSpec {
            count: self.numbers,
            number_min: self.number_min,
            number_max: self.number_max,
            target_min: self.target_min,
            target_max: self.target_max,
        }
    }
}

/// How the Game-of-24 puzzles are split (`split`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Game24SplitKind {
    /// All 1362 solvable multisets shuffled with `split_seed`.
    #[default]
    Random,
    /// The paper's: test = ranks 901..=1000 of ToT's difficulty ranking,
    /// ranks 1..=900 shuffled with `split_seed` into val and train.
    Ranked,
}

impl Game24SplitKind {
    /// `random` or `ranked`.
    pub fn name(self) -> &'static str {
        match self {
            Game24SplitKind::Random => "random",
            Game24SplitKind::Ranked => "ranked",
        }
    }

    /// Whether this is the default (then it is left out when serialised,
    /// so existing configs resolve to the same tables).
    pub fn is_random(&self) -> bool {
        *self == Game24SplitKind::Random
    }
}

impl TryFrom<String> for Game24SplitKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "random" => Ok(Game24SplitKind::Random),
            "ranked" => Ok(Game24SplitKind::Ranked),
            _ => Err(format!(
                "split = {s:?}: expected \"random\" (the solvable multisets shuffled) or \"ranked\" (the paper's: test = ranks 901-1000, val/train from ranks 1-900)"
            )),
        }
    }
}

impl From<Game24SplitKind> for String {
    fn from(m: Game24SplitKind) -> String {
        m.name().into()
    }
}

/// `[game24]`: the deterministic Game-of-24 split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Game24Section {
    /// Build the Game-of-24 datasets. Default true.
    pub enabled: bool,
    /// Validation multisets; val_size + test_size < 1362. Default 180 (paper).
    pub val_size: usize,
    /// Test multisets. Default 100 (paper).
    pub test_size: usize,
    /// Seed of the split shuffle, independent of `seed` so that datasets
    /// built with different seeds share one Game-of-24 split. Default 24.
    pub split_seed: u64,
    /// `"random"`: the 1362 solvable multisets shuffled with split_seed,
    /// test_size to test, val_size to val, the rest to train. `"ranked"`:
    /// the paper's split by ToT's difficulty ranking
    /// (`data/game24_ranked.csv`): test = ranks 901..=900+test_size
    /// (test_size <= 462; default 100 = ranks 901-1000), ranks 1..=900
    /// shuffled with split_seed into val_size val (< 900; 180 = the paper's)
    /// and the rest train (720). Default "random".
    #[serde(skip_serializing_if = "Game24SplitKind::is_random")]
    pub split: Game24SplitKind,
}

impl Default for Game24Section {
    fn default() -> Self {
        Game24Section {
            enabled: true,
            val_size: 180,
            test_size: 100,
            split_seed: 24,
            split: Game24SplitKind::Random,
        }
    }
}

/// How many searches run on each problem (`search.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SearchMode {
    /// One strategy per problem, drawn from `search.strategies` (SoS's
    /// "random" mode with the default list).
    #[default]
    Random,
    /// The learning-and-forgetting paper's data: `dfs-sum` and `bfs5-mult`
    /// both run on every problem ([`super::search::PAPER_SEARCHES`]).
    Paper,
}

impl SearchMode {
    /// Whether this is the default (then it is left out when serialised,
    /// so existing configs write the same `config.toml`).
    pub fn is_random(&self) -> bool {
        *self == SearchMode::Random
    }

    /// `random` or `paper`.
    pub fn name(self) -> &'static str {
        match self {
            SearchMode::Random => "random",
            SearchMode::Paper => "paper",
        }
    }
}

impl TryFrom<String> for SearchMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "random" => Ok(SearchMode::Random),
            "paper" => Ok(SearchMode::Paper),
            _ => Err(format!(
                "search.mode = {s:?}: expected \"random\" (one strategy drawn from search.strategies per problem) or \"paper\" (dfs-sum and bfs5-mult on every problem)"
            )),
        }
    }
}

impl From<SearchMode> for String {
    fn from(m: SearchMode) -> String {
        m.name().into()
    }
}

/// `[search]`: which strategies generate the paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSection {
    /// `"random"`: one strategy per problem, drawn uniformly from
    /// `strategies` (today's default). `"paper"`: the learning-and-forgetting
    /// paper's generator, which runs both `dfs-sum` and `bfs5-mult` on
    /// every problem and keeps the paths of both: the distinct successful
    /// paths, and up to `max_failed` failed paths per search deduplicated
    /// across the two (`strategies` and `beam_widths` are then unused).
    /// Default "random".
    #[serde(skip_serializing_if = "SearchMode::is_random")]
    pub mode: SearchMode,
    /// Strategies drawn uniformly per problem: `dfs-sum`, `dfs-mult`,
    /// `bfs-sum`, `bfs-mult` (beam width drawn from beam_widths) or a fixed
    /// width `bfsK-sum` / `bfsK-mult`. Non-empty. Default the paper's
    /// random mode: `["dfs-sum", "dfs-mult", "bfs-sum", "bfs-mult"]`.
    pub strategies: Vec<StrategySpec>,
    /// Beam widths for `bfs-*` entries, drawn uniformly, each 1..=64.
    /// Default `[1, 2, 3, 4, 5]` (paper).
    pub beam_widths: Vec<usize>,
    /// Most failed paths (D-) kept per search run, sampled uniformly from
    /// the distinct failed leaves of its trace (so per problem in mode
    /// "random", per search in mode "paper"); 0 = no D-, <= 10_000.
    /// Default 3 (paper's downsample_size).
    pub max_failed: usize,
}

impl Default for SearchSection {
    fn default() -> Self {
        let m = StrategyMix::paper();
        SearchSection {
            mode: SearchMode::Random,
            strategies: m.specs,
            beam_widths: m.beam_widths,
            max_failed: 3,
        }
    }
}

impl SearchSection {
    /// The strategy distribution.
    pub fn mix(&self) -> StrategyMix {
        StrategyMix {
            specs: self.strategies.clone(),
            beam_widths: self.beam_widths.clone(),
        }
    }
}

/// `[baseline]`: success rate and wall time of each symbolic strategy on the
/// test problems (`baseline.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSection {
    /// Run the baseline. Default true.
    pub enabled: bool,
    /// Strategies to time; `bfs-*` entries expand to every width in
    /// search.beam_widths. A row for the strategy mix itself ("random") and
    /// for the exact solver ("exact") is always added. Default
    /// `["dfs-sum", "dfs-mult", "bfs-sum", "bfs-mult"]`.
    pub strategies: Vec<StrategySpec>,
    /// Use at most this many test problems per task; 0 = all. Default 0.
    pub max_problems: usize,
}

impl Default for BaselineSection {
    fn default() -> Self {
        BaselineSection {
            enabled: true,
            strategies: StrategyMix::paper().specs,
            max_problems: 0,
        }
    }
}

impl CountdownSection {
    /// Checks the section; errors name the key as `{prefix}.<key>`
    /// (`countdown.number_max` here, `data.number_max` for the task kind).
    /// `seed` places the held-out targets (their number does not depend on it).
    pub fn validate(&self, prefix: &str, seed: u64) -> Result<(), ConfigError> {
        let c = self;
        let key = |k: &str| format!("{prefix}.{k}");
        if !(2..=6).contains(&c.numbers) || c.numbers > MAX_NUMBERS {
            return Err(err(&key("numbers"), c.numbers, "must be in 2..=6"));
        }
        if c.number_min < 1 {
            return Err(err(&key("number_min"), c.number_min, "must be >= 1"));
        }
        if c.number_max < c.number_min {
            return Err(err(
                &key("number_max"),
                c.number_max,
                format!("must be >= {prefix}.number_min ({})", c.number_min),
            ));
        }
        let fits = (0..c.numbers)
            .try_fold(1i64, |acc, _| acc.checked_mul(c.number_max.max(2)))
            .is_some();
        if !fits {
            return Err(err(
                &key("number_max"),
                c.number_max,
                format!(
                    "number_max^{} must fit in i64 so that no intermediate value can overflow",
                    c.numbers
                ),
            ));
        }
        if c.target_min < 0 {
            return Err(err(&key("target_min"), c.target_min, "must be >= 0"));
        }
        if c.target_max < c.target_min || c.target_max > 1_000_000 {
            return Err(err(
                &key("target_max"),
                c.target_max,
                format!(
                    "must be in {prefix}.target_min ({})..=1000000",
                    c.target_min
                ),
            ));
        }
        if !(0.0..1.0).contains(&c.heldout_target_frac) {
            return Err(err(
                &key("heldout_target_frac"),
                c.heldout_target_frac,
                "must be in [0, 1)",
            ));
        }
        if let Some(t) = c
            .heldout_extra_targets
            .iter()
            .find(|&&t| !(0..=1_000_000).contains(&t))
        {
            return Err(err(
                &key("heldout_extra_targets"),
                t,
                "each extra target must be in 0..=1000000",
            ));
        }
        if let Some(h) = &c.heldout_targets {
            let d = CountdownSection::default();
            let k = if c.heldout_target_frac != d.heldout_target_frac {
                Some("heldout_target_frac")
            } else if c.heldout_extra_targets != d.heldout_extra_targets {
                Some("heldout_extra_targets")
            } else {
                None
            };
            if let Some(k) = k {
                return Err(err(
                    &key("heldout_targets"),
                    h,
                    format!("{prefix}.heldout_targets and {prefix}.{k} are exclusive: give the held-out targets as a list (or \"paper\"), or as {prefix}.heldout_target_frac + {prefix}.heldout_extra_targets"),
                ));
            }
            h.targets(&key("heldout_targets"))?;
        }
        if c.train_size > 10_000_000 {
            return Err(err(&key("train_size"), c.train_size, "must be <= 10000000"));
        }
        if c.max_draws == 0 {
            return Err(err(&key("max_draws"), c.max_draws, "must be >= 1"));
        }
        if c.enabled {
            let (frac, extra) = c.heldout();
            let t = super::puzzle::split_targets(&c.spec(), frac, &extra, seed);
            let (rule, value) = if c.heldout_targets.is_some() {
                ("heldout_targets", format!("{extra:?}"))
            } else {
                (
                    "heldout_target_frac",
                    format!("{:?}", c.heldout_target_frac),
                )
            };
            let fail = |reason: String| ConfigError {
                key: key(rule),
                value: value.clone(),
                reason,
            };
            if c.test_size > 0 && t.test.is_empty() {
                return Err(fail(
                    format!("holds out no target, but test_size > 0: raise it or add {prefix}.heldout_extra_targets (or list {prefix}.heldout_targets)"),
                ));
            }
            if c.train_size + c.val_size > 0 && t.train.is_empty() {
                return Err(fail(format!(
                    "leaves no target for train/val: widen {prefix}.target_min..target_max"
                )));
            }
        }
        Ok(())
    }
}

impl Game24Section {
    /// Checks the section; errors name the key as `{prefix}.<key>`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let g = self;
        if g.split == Game24SplitKind::Ranked {
            let pool = super::puzzle::GAME24_RANKED_POOL;
            if g.val_size >= pool {
                return Err(err(
                    &format!("{prefix}.val_size"),
                    g.val_size,
                    format!("with {prefix}.split = \"ranked\" val and train share ranks 1..={pool}: must be < {pool}"),
                ));
            }
            let tests = GAME24_SOLVABLE_COUNT - pool;
            if g.test_size > tests {
                return Err(err(
                    &format!("{prefix}.test_size"),
                    g.test_size,
                    format!("with {prefix}.split = \"ranked\" the test split is ranks {}..: must be <= {tests}", pool + 1),
                ));
            }
            return Ok(());
        }
        let available = GAME24_SOLVABLE_COUNT;
        if g.val_size + g.test_size >= available {
            return Err(err(
                &format!("{prefix}.test_size"),
                g.test_size,
                format!("{prefix}.val_size + {prefix}.test_size must be < {available} (the solvable multisets)"),
            ));
        }
        Ok(())
    }
}

impl CountdownDataConfig {
    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.countdown.validate("countdown", self.seed)?;
        self.game24.validate("game24")?;
        let s = &self.search;
        if s.strategies.is_empty() {
            return Err(err(
                "search.strategies",
                &s.strategies,
                "must list at least one strategy",
            ));
        }
        if s.beam_widths.is_empty() {
            return Err(err(
                "search.beam_widths",
                &s.beam_widths,
                "must list at least one width",
            ));
        }
        if let Some(k) = s.beam_widths.iter().find(|&&k| !(1..=64).contains(&k)) {
            return Err(err("search.beam_widths", k, "each width must be in 1..=64"));
        }
        if s.max_failed > 10_000 {
            return Err(err("search.max_failed", s.max_failed, "must be <= 10000"));
        }
        if self.baseline.enabled && self.baseline.strategies.is_empty() {
            return Err(err(
                "baseline.strategies",
                &self.baseline.strategies,
                "must list at least one strategy",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_errors_name_keys() {
        CountdownDataConfig::default().validate().unwrap();
        let mut c = CountdownDataConfig::default();
        c.countdown.number_max = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("countdown.number_max"));
        let mut c = CountdownDataConfig::default();
        c.search.beam_widths = vec![0];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("search.beam_widths"));
        let mut c = CountdownDataConfig::default();
        c.countdown.heldout_target_frac = 0.0;
        c.countdown.heldout_extra_targets.clear();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("countdown.heldout_target_frac"));
        let mut c = CountdownDataConfig::default();
        c.countdown.numbers = 7;
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = CountdownDataConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<CountdownDataConfig>(&text).unwrap(), c);
        let e = toml::from_str::<CountdownDataConfig>("[countdown]\nnumbrs = 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("numbrs"), "{e}");
        let e = toml::from_str::<CountdownDataConfig>("[search]\nstrategies = [\"dfs-max\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dfs-max"), "{e}");
    }
}
