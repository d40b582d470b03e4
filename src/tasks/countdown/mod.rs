//! Countdown and Game of 24: generators, an exact solver, symbolic search
//! strategies with traces, the step text format with its verifier, and the
//! success/failure path datasets (D+ / D-) of the learning-and-forgetting
//! paper (paper B, Ni et al. 2025, whose Countdown data comes from
//! Stream-of-Search's classic reasoners).
//!
//! # Rules
//! A puzzle is a list of numbers and a target. A move takes two of the
//! numbers left, replaces them by the result of one operation, and the
//! puzzle is solved when one number is left and it equals the target, so
//! every input number is used exactly once.
//! - **Countdown** (paper setting: 4 numbers in 1..=99, targets 10..=100):
//!   `a + b`, `a * b`, `larger - smaller`, and `larger / smaller` only when
//!   the division is exact; all values are non-negative integers.
//! - **Game of 24**: 4 numbers in 1..=13, target 24, all four operations on
//!   exact rationals (`8 / (3 - 8 / 3)`); 1362 of the 1820 multisets are
//!   solvable.
//!
//! The rules are written once, in [`rules`]: the value types, what a move
//! is, which moves each game allows ([`rules::Game::apply`]) and which ones
//! the solver and the search generate ([`rules::Value::moves`]).
//! [`solver::solve`] is complete for both rule sets (the value type picks
//! the rules: `i64` Countdown, [`rules::Ratio`] Game of 24).
//! [`solve_command`] is `rewind solve`: `rewind solve 4 7 8 8 --target 24
//! --game24` prints e.g. `(7-8/8)*4`, or `no solution`.
//!
//! # Search strategies ([`search`])
//! Heuristic DFS with pruning (`dfs-sum`, `dfs-mult`) and beam-limited
//! best-first search (`bfsK-sum`, `bfsK-mult`, K = 1..=5 in the paper), with
//! the sum heuristic (mean `|n - target|`) and the multiplicative one
//! (distance to the target's factors). Stream-of-Search's "random" mode
//! draws one per problem (`train_strategy = "random"`, `[search] mode =
//! "random"`, the defaults); the learning-and-forgetting paper's data runs
//! both `dfs-sum` and `bfs5-mult` on every problem and keeps the paths of
//! both (`train_strategy = "paper"`, `[search] mode = "paper"`: distinct
//! successful paths, up to `max_failed` failed paths per search,
//! deduplicated across the two). On 1,000 problems of the paper's setting
//! that gives 0.87 of the problems a successful path, 1.24 successful and
//! 4.88 failed paths per problem (reference: 0.86 / 1.21 / 4.96). Beam
//! search's queue pops ties in Python `heapq`'s order, as the reference
//! does. Each run gives a [`search::Trace`], from which come the
//! successful path (if any) and the failed leaf paths.
//!
//! # Text format ([`path`])
//! Prompt then completion (loss on the completion only):
//! ```text
//! Input: 25 5 5 33
//! Target: 27
//! Steps:
//! 25 + 5 = 30 (left: 5 33 30)
//! 30 / 5 = 6 (left: 33 6)
//! 33 - 6 = 27 (left: 27)
//! Answer: 33 - ((25 + 5) / 5) = 27
//! ```
//! With `prompt = "paper"` the task kinds put the paper's instruction line
//! (`Use numbers and basic arithmetic operations (+ - * /) to obtain the
//! target number.`, for Game of 24 `... to obtain 24.`) before `Input:`;
//! [`path::parse_prompt`] reads both forms.
//! A failed path (D-) has the same shape but its last value, and its
//! honest `Answer: ... = value`, differ from the target. Game-of-24 texts
//! write fractions as `p/q` (`8 / 3 = 8/3 (left: 3 8 8/3)`).
//! [`path::verify`] labels any text (each number used once, each step
//! legal and its arithmetic right, the final value equal to the target, the
//! answer the expression the steps build) and says why it rejects. Text
//! after the `Answer:` line: empty lines are allowed, anything else is
//! rejected ([`path::Rejection::TrailingText`]); the paper's evaluation
//! cuts a model's output after its first `Answer:` line and judges the
//! rest, which the task kinds do with `verifier = "paper"`
//! ([`path::cut_at_answer`]). Every text is printable ASCII plus `\n`, one token per
//! character in [`crate::data::vocab`] ([`path::encode_example`]).
//!
//! # Splits
//! - Countdown: 10% of the targets (plus 24) are held out for test; train
//!   and val use the other targets. Or the held-out targets are listed
//!   (`heldout_targets = [14, 24, 40]`, or `"paper"` for the paper's 14,
//!   24, 40, 42, 58, 63, 71, 87, 89, 90), exclusive with
//!   `heldout_target_frac` / `heldout_extra_targets`. Problems are drawn by rejection
//!   sampling (target first, numbers redrawn until solvable) and are
//!   distinct across and within splits. See [`puzzle`].
//! - Game of 24: the 1362 solvable multisets shuffled with a fixed
//!   `split_seed` (default 24): 100 test, 180 val, 1082 train. Or, with
//!   `split = "ranked"`, the paper's: test = ranks 901-1000 of ToT's
//!   difficulty ranking (`data/game24_ranked.csv`), ranks 1-900 shuffled
//!   with `split_seed` into 180 val and 720 train.
//!
//! # Dataset files ([`build_datasets`], `rewind data countdown CONFIG`)
//! Under the output folder (default `data/countdown/<config stem>`):
//! - `countdown/{train,val,test}_problems.jsonl`: one problem per line,
//!   `{"task","split","id","numbers","target","prompt","solution"}`
//!   (`solution` from the exact solver, e.g. `(7-8/8)*4`).
//! - `countdown/{split}_pos.jsonl` (D+) and `{split}_neg.jsonl` (D-): one
//!   path per line, `{"task","split","id","numbers","target","strategy",
//!   "search_solved","correct","prompt","completion","nodes_explored"}`;
//!   `correct` is the verifier label, `id` is shared with the problem line;
//!   at most `search.max_failed` D- paths per search run (one run per
//!   problem in `[search] mode = "random"`, two in `"paper"`, whose D+ and
//!   D- lines are deduplicated per problem and name the run's strategy).
//! - `game24/...`: the same files for Game of 24.
//! - `stats.json` ([`dataset::DatasetStats`]): per task and split the
//!   rejection-sampling acceptance rate, and per strategy the success rate,
//!   mean nodes explored, mean failed leaves, D+/D- counts and mean path
//!   lengths in tokens (the split total counts problems: in mode "paper"
//!   its success rate is the share of problems with a D+ path);
//!   `strategy_stats.csv` holds the same rows.
//! - `baseline.csv`: the symbolic inference-time search baseline, success
//!   rate and mean wall time per test problem of every strategy, the
//!   random mix and the exact solver.
//! - `config.toml`: the effective configuration.
//!
//! Same config, same bytes: every file but `baseline.csv` (wall times) is
//! reproducible from the seed.

//!
//! # Experiment kinds ([`task`])
//! `kind = "countdown"` and `kind = "game24"` make the puzzles a
//! [`crate::tasks::Task`] for training runs: fresh training problems with
//! the successful path of a search strategy as the completion, fixed `val`
//! and `test` splits with the solver's path as reference, and the verifier
//! as grader. The paper's data settings are options, their defaults
//! unchanged: `train_strategy = "paper"` (both searches per problem),
//! `heldout_targets = "paper"`, `split = "ranked"` (Game of 24),
//! `prompt = "paper"`, `verifier = "paper"`. Example configs:
//! `experiments/countdown.toml`, `experiments/countdown_game24.toml`.
//!
//! # Modules
//! Dependencies point down only (no cycles); [`rules`] is at the bottom:
//! ```text
//! cli     -> dataset, config, puzzle, solver
//! task    -> config, path, puzzle, search, solver   (+ crate::tasks::from_value)
//! dataset -> config, path, puzzle, search, solver
//! config  -> path, puzzle, search
//! path    -> expr
//! puzzle  -> solver -> expr
//! config, dataset, expr, path, puzzle, search, solver, task -> rules
//! ```

pub mod cli;
pub mod config;
pub mod dataset;
pub mod expr;
pub mod path;
pub mod puzzle;
pub mod rules;
pub mod search;
pub mod solver;
pub mod task;

pub use cli::{data_command, load_config, solve_command};
pub use config::{
    ConfigError, CountdownDataConfig, Game24SplitKind, HeldoutTargets, SearchMode,
    PAPER_HELDOUT_TARGETS,
};
pub use dataset::{build_datasets, DatasetStats, PathRecord, ProblemRecord};
pub use path::{
    cut_at_answer, prompt, render_completion, verify, verify_completion, PromptStyle, Rejection,
};
pub use puzzle::{Instance, Split};
pub use rules::{Game, Illegal, Move, Op, Ratio, Value};
pub use search::{Heuristic, Strategy, StrategyMix, Trace};
pub use solver::{solve, solve_countdown, solve_rational, Solution};
pub use task::{CountdownTask, CountdownTaskConfig, Game24TaskConfig, TrainStrategy, VerifierMode};
