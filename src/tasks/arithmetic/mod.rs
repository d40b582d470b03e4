//! Add-or-sub in base `b`: the SequenceMatch paper's arithmetic task.
//!
//! The paper asks "In base 7, what is 25 + -133?"; rewind writes the same
//! question compactly as the prompt `b7:25+-133=` with the answer `-105`
//! (25₇ = 19, 133₇ = 73, 19 - 73 = -54 = -105₇).
//!
//! # Format options
//! How numbers are written decides whether a small transformer can learn the
//! task at all (see `shared/CALIBRATION.md`): with operands zero-padded and
//! the answer padded and written least-significant digit first, each answer
//! digit depends only on operand digits already seen plus one carry, and a
//! 2-layer model reaches ~100% in about a thousand steps; the plain format
//! stays near chance. Every such choice is therefore an option of
//! [`ArithmeticConfig`], and the defaults are the learnable format:
//!
//! | options | prompt | answer |
//! |---|---|---|
//! | defaults (padded, reversed) | `b10:045+123=` | `8610` (168 padded to `0168`, reversed) |
//! | `pad_operands`, `pad_answer`, `reverse_answer` = false | `b7:25+-133=` | `-105` |
//! | defaults + `explicit_signs`, `signed`, `ops = ["add", "sub"]` | `b10:-057++090=` | `+3300` |
//!
//! # Splits
//! Training questions are sampled fresh on demand ([`ArithmeticTask::sample_train`]);
//! the evaluation splits are fixed at construction from the seed:
//! - `val` and `test`: in-distribution questions (operands with
//!   `digits[0]..=digits[1]` digits), never seen in training;
//! - `long`: operands with `long_digits` digits, all longer than any
//!   in-distribution operand (length generalisation, where compounding
//!   errors show). Training never sees them unless `long_train_share > 0`,
//!   which mixes that share of (other) long questions into training.
//!
//! The three splits are pairwise disjoint and free of duplicates, and
//! `sample_train` rejects every question held out in any of them.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Smallest supported base.
pub const MIN_BASE: u32 = 2;
/// Largest supported base (digits `0-9` then `a-z`).
pub const MAX_BASE: u32 = 36;
/// Every operand magnitude stays below this (10^15), so that operands, their
/// sum and every intermediate fit in `i64` with a wide margin, and counting
/// the question space (operand count squared) fits in `u128`.
const VALUE_LIMIT: u128 = 1_000_000_000_000_000;

/// Per-split salts mixed into the task seed, so each split draws from its own
/// random stream: changing `val_size` does not reshuffle the long split, and
/// the test split changes only where it would have collided with val.
const VAL_SALT: u64 = 0x5EED_0A11_7A1D_0001;
const TEST_SALT: u64 = 0x5EED_0A11_7E57_0002;
const LONG_SALT: u64 = 0x5EED_0A11_1096_0003;

/// Errors from configuring the task, building its splits or parsing questions.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ArithmeticError {
    /// A configuration value is out of range; `key` is its full config key
    /// (e.g. `data.base`) so the message points at the line to fix.
    #[error("{key} = {value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A prompt could not be read back as a question of this task.
    #[error("cannot read {input:?} as a question: {reason}")]
    Parse { input: String, reason: String },
    /// A split name other than `val`, `test`, `long`.
    #[error("unknown split {0:?} (expected one of: val, test, long)")]
    UnknownSplit(String),
    /// Drawing enough distinct questions took too many attempts. Validation
    /// keeps sizes to at most half the question space, so this only happens
    /// when the sampling distribution concentrates on few questions.
    #[error(
        "drew only {got} of the {wanted} distinct questions for the {split} split in {attempts} attempts; \
         lower data.{split}_size or widen the question space (data.digits / long_digits, base, ops, signed)"
    )]
    SplitGeneration {
        split: Split,
        wanted: usize,
        got: usize,
        attempts: u64,
    },
}

/// The operation of one question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `a + b`, written `+`.
    Add,
    /// `a - b`, written `-`.
    Sub,
}

impl Op {
    /// The character written between the operands.
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
        }
    }

    /// `a op b`, or `None` on `i64` overflow (never for questions of a valid
    /// task, whose operands stay below 10^15).
    pub fn apply(self, a: i64, b: i64) -> Option<i64> {
        match self {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
        }
    }

    /// `a op b` computed without overflow, for formatting arbitrary operands.
    fn apply_wide(self, a: i64, b: i64) -> i128 {
        match self {
            Op::Add => a as i128 + b as i128,
            Op::Sub => a as i128 - b as i128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
        }
    }
}

impl fmt::Display for Op {
    /// The config spelling, `add` or `sub`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Configuration of the arithmetic task (the `[arithmetic]` table).
///
/// Every field is optional; a missing field takes its default, an unknown
/// field is an error (so typos do not silently fall back to defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ArithmeticConfig {
    /// Base of all numbers, 2..=36; digits are `0-9` then `a-z`. Default 10.
    pub base: u32,
    /// `[min, max]` digit count of each operand in training, val and test
    /// questions (inclusive, counted without sign or padding). Needs
    /// `1 <= min <= max` and `base^max < 10^15`. Each operand draws its digit
    /// count uniformly from the range, then its value uniformly among the
    /// numbers with exactly that many digits (`0` counts as one digit).
    /// Default `[1, 3]`.
    pub digits: [u32; 2],
    /// `[min, max]` digit count of each operand in the `long` split, which
    /// tests generalisation to longer numbers than seen in training. Needs
    /// `long_digits[0] > digits[1]`, `min <= max` and `base^max < 10^15`.
    /// Default `[4, 4]`.
    pub long_digits: [u32; 2],
    /// Operations to draw from, uniformly: any non-empty, duplicate-free list
    /// of `"add"` and `"sub"`. Default `["add"]`.
    pub ops: Vec<Op>,
    /// Whether operands may be negative (each operand's sign is a fair coin).
    /// Default `false`.
    pub signed: bool,
    /// Zero-pad operands to the split's largest digit count (`digits[1]` for
    /// train/val/test, `long_digits[1]` for long), so each digit position
    /// always sits at the same offset in the prompt. Default `true`.
    pub pad_operands: bool,
    /// Pad every split to the `long` split's width (`long_digits[1]`), not
    /// only the long split: training questions then have the long layout
    /// (`+0025` in a 4-digit setting) and `long` questions differ only in
    /// their leading digits, so a model with absolute positions can reach
    /// them (no unseen position); without it `long` prompts are longer than
    /// any training prompt. Needs `pad_operands`. Default `false`.
    #[serde(skip_serializing_if = "is_false")]
    pub pad_to_long: bool,
    /// Fraction of *training* questions drawn from the long distribution
    /// (`long_digits`, long layout) instead of `digits`, in `[0, 1)`. With
    /// a small share the `long` split is no longer unseen in kind but rare:
    /// the model meets a few long questions (never the held-out ones), so
    /// it can reach them, and errors on their longer answers still
    /// compound. With absolute positions a `long` split that is never
    /// trained stays at 0% (results/sequencematch_long_calibration); this
    /// is the knob that gives it headroom. Default 0 (long is unseen).
    #[serde(skip_serializing_if = "is_zero")]
    pub long_train_share: f64,
    /// Write the answer's digits least-significant first (a sign, if any,
    /// stays in front), so the model emits digits in the order carries
    /// propagate. Default `true`.
    pub reverse_answer: bool,
    /// Zero-pad the answer's digits to the split's operand width + 1 (the
    /// most digits a sum can have); padding is applied before reversing, so
    /// `45+123` gives `8610` when reversed. Default `true`.
    pub pad_answer: bool,
    /// Give every operand and the answer a sign, `+` or `-` (`+` for zero),
    /// e.g. `b10:-057++090=` -> `+3300`. When `false`, only negative numbers
    /// carry a sign (`b7:25+-133=`). Default `false`.
    pub explicit_signs: bool,
    /// Number of questions in the `val` split. `val_size + test_size` may be
    /// at most half the number of distinct in-distribution questions, so that
    /// training keeps at least half of them. Default 500.
    pub val_size: usize,
    /// Number of questions in the `test` split (see `val_size` for the
    /// limit). Default 500.
    pub test_size: usize,
    /// Number of questions in the `long` split; at most half the number of
    /// distinct long questions. Default 500.
    pub long_size: usize,
}

impl Default for ArithmeticConfig {
    fn default() -> Self {
        Self {
            base: 10,
            digits: [1, 3],
            long_digits: [4, 4],
            ops: vec![Op::Add],
            signed: false,
            pad_operands: true,
            pad_to_long: false,
            long_train_share: 0.0,
            reverse_answer: true,
            pad_answer: true,
            explicit_signs: false,
            val_size: 500,
            test_size: 500,
            long_size: 500,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Keeps `long_train_share = 0` out of serialized configs, so the run ids of
/// configs written before the key existed do not change.
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Shorthand for a configuration error.
fn invalid(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> ArithmeticError {
    ArithmeticError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Largest digit count `n` with `base^n < 10^15` (`base` must be 2..=36).
fn max_digits_for(base: u32) -> u32 {
    let mut n = 0;
    while (base as u128).pow(n + 1) < VALUE_LIMIT {
        n += 1;
    }
    n
}

/// Number of distinct operand values with `range[0]..=range[1]` digits
/// (the range must already be validated).
fn operand_value_count(base: u32, range: [u32; 2], signed: bool) -> u128 {
    let b = base as u128;
    // Numbers with exactly k digits: b^k - b^(k-1), plus 0 among 1-digit ones.
    let unsigned = if range[0] == 1 {
        b.pow(range[1])
    } else {
        b.pow(range[1]) - b.pow(range[0] - 1)
    };
    if signed {
        // Every value but zero comes in both signs.
        2 * unsigned - u128::from(range[0] == 1)
    } else {
        unsigned
    }
}

impl ArithmeticConfig {
    /// Checks every field; the first violation is returned, naming its key.
    pub fn validate(&self) -> Result<(), ArithmeticError> {
        let base = self.base;
        if !(MIN_BASE..=MAX_BASE).contains(&base) {
            return Err(invalid(
                "data.base",
                base,
                format!("allowed {MIN_BASE}..={MAX_BASE} (digits are 0-9 then a-z)"),
            ));
        }
        let max_digits = max_digits_for(base);
        let cap_reason = || {
            format!(
                "in base {base} operands may have at most {max_digits} digits \
                 (base^digits must stay below 10^15 so values fit in i64 with room to spare)"
            )
        };

        let [dmin, dmax] = self.digits;
        let digits_value = format!("[{dmin}, {dmax}]");
        if dmin < 1 || dmin > dmax {
            return Err(invalid(
                "data.digits",
                digits_value,
                "need 1 <= digits[0] <= digits[1] (inclusive digit counts of each operand)",
            ));
        }
        if dmax > max_digits {
            return Err(invalid("data.digits", digits_value, cap_reason()));
        }

        if self.pad_to_long && !self.pad_operands {
            return Err(invalid(
                "data.pad_to_long",
                true,
                "needs data.pad_operands = true (it sets the width operands are padded to)",
            ));
        }

        let [lmin, lmax] = self.long_digits;
        let long_value = format!("[{lmin}, {lmax}]");
        if lmin <= dmax {
            return Err(invalid(
                "data.long_digits",
                long_value,
                format!(
                    "long_digits[0] must be greater than data.digits[1] = {dmax}, \
                     so long questions are longer than every training question"
                ),
            ));
        }
        if lmin > lmax {
            return Err(invalid(
                "data.long_digits",
                long_value,
                "need long_digits[0] <= long_digits[1]",
            ));
        }
        if lmax > max_digits {
            return Err(invalid("data.long_digits", long_value, cap_reason()));
        }

        let ops_value = format!(
            "{:?}",
            self.ops.iter().map(|op| op.name()).collect::<Vec<_>>()
        );
        if self.ops.is_empty() {
            return Err(invalid(
                "data.ops",
                ops_value,
                "need at least one of \"add\", \"sub\"",
            ));
        }
        let distinct: HashSet<Op> = self.ops.iter().copied().collect();
        if distinct.len() != self.ops.len() {
            return Err(invalid(
                "data.ops",
                ops_value,
                "each operation may appear only once",
            ));
        }

        let share = self.long_train_share;
        if !(share.is_finite() && (0.0..1.0).contains(&share)) {
            return Err(invalid(
                "data.long_train_share",
                share,
                "allowed 0 <= share < 1 (the fraction of training questions drawn with data.long_digits)",
            ));
        }

        let in_space = self.question_count(self.digits);
        let held = self.val_size as u128 + self.test_size as u128;
        if held > in_space / 2 {
            return Err(invalid(
                "data.val_size + data.test_size",
                format!("{} + {} = {held}", self.val_size, self.test_size),
                format!(
                    "more than half of the {in_space} distinct in-distribution questions \
                     (set by data.base, digits, ops, signed); training needs the rest"
                ),
            ));
        }
        let long_space = self.question_count(self.long_digits);
        if self.long_size as u128 > long_space / 2 {
            return Err(invalid(
                "data.long_size",
                self.long_size,
                format!(
                    "more than half of the {long_space} distinct long questions \
                     (set by data.base, long_digits, ops, signed)"
                ),
            ));
        }
        Ok(())
    }

    /// Number of distinct questions `(a, op, b)` with operand digit counts in
    /// `range` (base, range and ops must already be validated).
    fn question_count(&self, range: [u32; 2]) -> u128 {
        let values = operand_value_count(self.base, range, self.signed);
        self.ops.len() as u128 * values * values
    }
}

/// One of the fixed evaluation splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// In-distribution questions for model selection.
    Val,
    /// In-distribution questions for the final numbers.
    Test,
    /// Questions with longer operands than any training question.
    Long,
}

impl Split {
    /// All splits, in construction order.
    pub const ALL: [Split; 3] = [Split::Val, Split::Test, Split::Long];
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Val => "val",
            Split::Test => "test",
            Split::Long => "long",
        })
    }
}

impl FromStr for Split {
    type Err = ArithmeticError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            "long" => Ok(Split::Long),
            other => Err(ArithmeticError::UnknownSplit(other.to_string())),
        }
    }
}

/// One question with its formatted prompt and answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// First operand.
    pub a: i64,
    /// Operation.
    pub op: Op,
    /// Second operand.
    pub b: i64,
    /// Model input, e.g. `b10:045+123=` (always ends with `=`).
    pub prompt: String,
    /// Expected model output (without `<eos>`), e.g. `8610`: `a op b` in the
    /// configured format.
    pub answer: String,
}

/// A question's identity, used for held-out checks.
type Question = (i64, Op, i64);

/// The arithmetic task: configuration plus the fixed evaluation splits.
#[derive(Clone, Debug)]
pub struct ArithmeticTask {
    cfg: ArithmeticConfig,
    val: Vec<Problem>,
    test: Vec<Problem>,
    long: Vec<Problem>,
    /// Every question of val, test and long, for rejecting them in training.
    held_out: HashSet<Question>,
}

impl ArithmeticTask {
    /// Validates `cfg` and draws the val, test and long splits from `seed`.
    ///
    /// Each split uses its own random stream derived from `seed`, so the
    /// same seed always gives the same splits. Questions already drawn (in
    /// this or an earlier split) are redrawn, which makes the splits pairwise
    /// disjoint and duplicate-free.
    pub fn new(cfg: ArithmeticConfig, seed: u64) -> Result<Self, ArithmeticError> {
        cfg.validate()?;
        let mut task = Self {
            cfg,
            val: Vec::new(),
            test: Vec::new(),
            long: Vec::new(),
            held_out: HashSet::new(),
        };
        let mut held_out = HashSet::new();
        let val = task.draw_split(Split::Val, seed, &mut held_out)?;
        let test = task.draw_split(Split::Test, seed, &mut held_out)?;
        let long = task.draw_split(Split::Long, seed, &mut held_out)?;
        task.val = val;
        task.test = test;
        task.long = long;
        task.held_out = held_out;
        Ok(task)
    }

    /// The validated configuration.
    pub fn config(&self) -> &ArithmeticConfig {
        &self.cfg
    }

    /// The problems of one evaluation split, in drawing order.
    pub fn split(&self, split: Split) -> &[Problem] {
        match split {
            Split::Val => &self.val,
            Split::Test => &self.test,
            Split::Long => &self.long,
        }
    }

    /// Whether `(a, op, b)` belongs to one of the evaluation splits.
    pub fn is_held_out(&self, a: i64, op: Op, b: i64) -> bool {
        self.held_out.contains(&(a, op, b))
    }

    /// A fresh training question, never one of val, test or long.
    ///
    /// Draws from the same distribution as val/test, or with probability
    /// `long_train_share` from the long one, and redraws held-out questions.
    /// Validation keeps each held-out set to at most half its question
    /// space, so a redraw is needed only occasionally and this terminates.
    pub fn sample_train<R: Rng + ?Sized>(&self, rng: &mut R) -> Problem {
        // No coin is drawn at share 0, so configs without long training
        // questions draw exactly the questions they drew before the option.
        let share = self.cfg.long_train_share;
        let long = share > 0.0 && rng.gen_bool(share);
        loop {
            let (a, op, b) = self.sample_question(rng, long);
            if !self.held_out.contains(&(a, op, b)) {
                return self.problem(a, op, b, long);
            }
        }
    }

    /// Formats `a op b` as a problem. `long` selects the long split's pad
    /// width (`long_digits[1]` instead of `digits[1]`; every split uses it
    /// with `pad_to_long`).
    ///
    /// Formatting only: any operands are accepted, and numbers wider than
    /// the pad width are written in full, never truncated.
    pub fn problem(&self, a: i64, op: Op, b: i64, long: bool) -> Problem {
        let width = self.operand_width(long);
        let prompt = format!(
            "b{}:{}{}{}=",
            self.cfg.base,
            self.format_operand(a, width),
            op.symbol(),
            self.format_operand(b, width)
        );
        let answer = self.format_answer(op.apply_wide(a, b), width + 1);
        Problem {
            a,
            op,
            b,
            prompt,
            answer,
        }
    }

    /// Reads a question back from prompt text (the inverse of the prompt
    /// format), for questions typed by a user.
    ///
    /// Lenient about form: whitespace is ignored, the `b{base}:` prefix and
    /// the final `=` are optional, operands may be unpadded, `+` signs are
    /// optional and letter digits may be upper case. Strict about content,
    /// so that the question fits the model's `max_prompt_len` /
    /// `max_answer_len`: a prefix must name this task's base, the operation
    /// must be in `ops`, negative operands need `signed`, and operands may
    /// have at most `long_digits[1]` significant digits.
    pub fn parse_prompt(&self, prompt: &str) -> Result<(i64, Op, i64), ArithmeticError> {
        let fail = |reason: String| ArithmeticError::Parse {
            input: prompt.to_string(),
            reason,
        };
        let base = self.cfg.base;
        let text: String = prompt.chars().filter(|c| !c.is_whitespace()).collect();
        let body = match text.split_once(':') {
            Some((prefix, rest)) => {
                let named = prefix
                    .strip_prefix('b')
                    .and_then(|digits| digits.parse::<u32>().ok())
                    .ok_or_else(|| {
                        fail(format!("expected the prefix `b{base}:`, found `{prefix}:`"))
                    })?;
                if named != base {
                    return Err(fail(format!(
                        "the question is in base {named} but this task uses base {base} (data.base)"
                    )));
                }
                rest
            }
            None => text.as_str(),
        };
        let body = body.strip_suffix('=').unwrap_or(body);
        let chars: Vec<char> = body.chars().collect();
        let mut pos = 0;

        let a = self
            .parse_operand(&chars, &mut pos)
            .map_err(|r| fail(format!("first operand: {r}")))?;
        let op = match chars.get(pos) {
            Some('+') => Op::Add,
            Some('-') => Op::Sub,
            Some(c) => {
                return Err(fail(format!(
                    "expected `+` or `-` after the first operand, found {c:?} (not a digit in base {base})"
                )))
            }
            None => return Err(fail("expected `+` or `-` after the first operand".into())),
        };
        pos += 1;
        if !self.cfg.ops.contains(&op) {
            return Err(fail(format!(
                "operation `{}` ({op}) is not in data.ops",
                op.symbol()
            )));
        }
        let b = self
            .parse_operand(&chars, &mut pos)
            .map_err(|r| fail(format!("second operand: {r}")))?;
        if let Some(c) = chars.get(pos) {
            return Err(fail(format!(
                "unexpected {c:?} after the second operand (not a digit in base {base})"
            )));
        }
        Ok((a, op, b))
    }

    /// Longest prompt, in characters, over all splits including long (for
    /// sizing the model's context). Exact: some question attains it.
    pub fn max_prompt_len(&self) -> usize {
        let sign = usize::from(self.cfg.explicit_signs || self.cfg.signed);
        let prefix = format!("b{}:", self.cfg.base).len();
        // Both operands may have the full width (padded or not) and a sign,
        // plus the operation and `=`.
        let width = self.cfg.long_digits[1].max(self.cfg.digits[1]) as usize;
        prefix + 2 * (sign + width) + 2
    }

    /// Longest answer, in characters (without `<eos>`), over all splits
    /// including long (for decode budgets).
    ///
    /// An upper bound for every question this task formats from its own
    /// operations and signs with operands of at most `long_digits[1]` digits
    /// (all splits, `sample_train`, and whatever `parse_prompt` accepts); it
    /// is attained whenever `ops` contains `add` or `signed` is true.
    pub fn max_answer_len(&self) -> usize {
        self.max_answer_len_for(self.cfg.digits[1])
            .max(self.max_answer_len_for(self.cfg.long_digits[1]))
    }

    /// Longest answer for operands of at most `max_digits` digits, padded to
    /// `max_digits + 1` digits.
    fn max_answer_len_for(&self, max_digits: u32) -> usize {
        let cfg = &self.cfg;
        let largest = (cfg.base as u128).pow(max_digits) - 1;
        let has_add = cfg.ops.contains(&Op::Add);
        let has_sub = cfg.ops.contains(&Op::Sub);
        // Magnitudes add when the signs line up (add with like signs, sub
        // with unlike signs); unsigned subtraction stays below the largest
        // operand (0 - largest at the extreme).
        let max_magnitude = if has_add || (cfg.signed && has_sub) {
            2 * largest
        } else {
            largest
        };
        let digits = digits_u128(max_magnitude, cfg.base).len();
        let width = if cfg.pad_answer {
            digits.max(max_digits as usize + 1)
        } else {
            digits
        };
        // Negative answers need signed operands or subtraction.
        let sign = usize::from(cfg.explicit_signs || cfg.signed || has_sub);
        sign + width
    }

    /// Operand pad width of the train/val/test (`false`) or long (`true`) split.
    fn operand_width(&self, long: bool) -> usize {
        if long || self.cfg.pad_to_long {
            self.cfg.long_digits[1] as usize
        } else {
            self.cfg.digits[1] as usize
        }
    }

    /// The sign prefix of a number: `-` for negatives, `+` for the rest when
    /// signs are explicit, nothing otherwise.
    fn sign(&self, negative: bool) -> &'static str {
        match (negative, self.cfg.explicit_signs) {
            (true, _) => "-",
            (false, true) => "+",
            (false, false) => "",
        }
    }

    fn format_operand(&self, value: i64, width: usize) -> String {
        let mut digits = digits_u128(value.unsigned_abs() as u128, self.cfg.base);
        if self.cfg.pad_operands {
            digits = zero_pad(&digits, width);
        }
        format!("{}{digits}", self.sign(value < 0))
    }

    fn format_answer(&self, value: i128, width: usize) -> String {
        let mut digits = digits_u128(value.unsigned_abs(), self.cfg.base);
        if self.cfg.pad_answer {
            digits = zero_pad(&digits, width);
        }
        if self.cfg.reverse_answer {
            digits = digits.chars().rev().collect();
        }
        format!("{}{digits}", self.sign(value < 0))
    }

    /// Reads `[+-]?digits` at `pos`, advancing it; the reason on failure.
    fn parse_operand(&self, chars: &[char], pos: &mut usize) -> Result<i64, String> {
        let base = self.cfg.base;
        let negative = match chars.get(*pos) {
            Some('-') => {
                *pos += 1;
                true
            }
            Some('+') => {
                *pos += 1;
                false
            }
            _ => false,
        };
        let start = *pos;
        while chars.get(*pos).is_some_and(|c| c.is_digit(base)) {
            *pos += 1;
        }
        let digits = &chars[start..*pos];
        if digits.is_empty() {
            return Err(match chars.get(*pos) {
                Some(c) => format!("expected a digit in base {base}, found {c:?}"),
                None => "missing".into(),
            });
        }
        let significant: Vec<char> = digits.iter().copied().skip_while(|&c| c == '0').collect();
        let max_digits = self.cfg.long_digits[1] as usize;
        if significant.len() > max_digits {
            return Err(format!(
                "{} has {} digits but this task's questions have at most {max_digits} \
                 (data.long_digits[1])",
                digits.iter().collect::<String>(),
                significant.len()
            ));
        }
        // Safe from overflow: at most long_digits[1] digits, validated to
        // stay below 10^15.
        let magnitude = significant
            .iter()
            .filter_map(|c| c.to_digit(base))
            .fold(0i64, |acc, d| acc * base as i64 + d as i64);
        if negative && magnitude != 0 && !self.cfg.signed {
            return Err("negative operands need data.signed = true".into());
        }
        Ok(if negative { -magnitude } else { magnitude })
    }

    /// Draws `size` new questions of `split` into a vector, adding each to
    /// `held_out` (which also holds the earlier splits' questions).
    fn draw_split(
        &self,
        split: Split,
        seed: u64,
        held_out: &mut HashSet<Question>,
    ) -> Result<Vec<Problem>, ArithmeticError> {
        let (size, salt, long) = match split {
            Split::Val => (self.cfg.val_size, VAL_SALT, false),
            Split::Test => (self.cfg.test_size, TEST_SALT, false),
            Split::Long => (self.cfg.long_size, LONG_SALT, true),
        };
        let mut rng = StdRng::seed_from_u64(seed ^ salt);
        // Generous: sizes are at most half the space, so a typical draw
        // succeeds within a few attempts; the cap only stops pathological
        // (highly concentrated) distributions from looping for a long time.
        let max_attempts = 1_000 * size as u64 + 100_000;
        let mut problems = Vec::with_capacity(size);
        let mut attempts = 0u64;
        while problems.len() < size {
            if attempts == max_attempts {
                return Err(ArithmeticError::SplitGeneration {
                    split,
                    wanted: size,
                    got: problems.len(),
                    attempts,
                });
            }
            attempts += 1;
            let (a, op, b) = self.sample_question(&mut rng, long);
            if held_out.insert((a, op, b)) {
                problems.push(self.problem(a, op, b, long));
            }
        }
        Ok(problems)
    }

    /// One question from the in-distribution (`long = false`) or long
    /// distribution.
    fn sample_question<R: Rng + ?Sized>(&self, rng: &mut R, long: bool) -> Question {
        let range = if long {
            self.cfg.long_digits
        } else {
            self.cfg.digits
        };
        let a = self.sample_operand(rng, range);
        let op = self.cfg.ops[rng.gen_range(0..self.cfg.ops.len())];
        let b = self.sample_operand(rng, range);
        (a, op, b)
    }

    /// Digit count uniform in `range`, then a value uniform among numbers
    /// with exactly that many digits (0 counts as one digit), then a fair
    /// sign if `signed`.
    fn sample_operand<R: Rng + ?Sized>(&self, rng: &mut R, range: [u32; 2]) -> i64 {
        let base = self.cfg.base as i64;
        let digits = rng.gen_range(range[0]..=range[1]);
        let low = if digits == 1 { 0 } else { base.pow(digits - 1) };
        let value = rng.gen_range(low..base.pow(digits));
        if self.cfg.signed && rng.gen_bool(0.5) {
            -value
        } else {
            value
        }
    }
}

/// `n` written in `base` with digits `0-9a-z`, most significant first;
/// `"0"` for zero.
///
/// # Panics
/// If `base` is not in 2..=36 (a programming error: configured bases are
/// validated).
pub fn to_base(n: u64, base: u32) -> String {
    digits_u128(n as u128, base)
}

/// [`to_base`] for `u128`, so answers of arbitrary `i64` operands format
/// without overflow.
fn digits_u128(mut n: u128, base: u32) -> String {
    assert!(
        (MIN_BASE..=MAX_BASE).contains(&base),
        "base {base} outside {MIN_BASE}..={MAX_BASE}"
    );
    let mut digits = Vec::new();
    loop {
        let d = (n % base as u128) as u32;
        // `from_digit` is Some for every d < base <= 36.
        digits.push(char::from_digit(d, base).unwrap_or('?'));
        n /= base as u128;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// `digits` left-padded with zeros to at least `width` characters.
fn zero_pad(digits: &str, width: usize) -> String {
    format!("{digits:0>width$}")
}

mod task;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_base_examples() {
        assert_eq!(to_base(0, 10), "0");
        assert_eq!(to_base(54, 7), "105");
        assert_eq!(to_base(35, 36), "z");
        assert_eq!(to_base(5, 2), "101");
        assert_eq!(to_base(u64::MAX, 16), "ffffffffffffffff");
    }

    #[test]
    fn max_digits_respects_limit() {
        assert_eq!(max_digits_for(10), 14);
        assert_eq!(max_digits_for(2), 49);
        for base in MIN_BASE..=MAX_BASE {
            let n = max_digits_for(base);
            assert!((base as u128).pow(n) < VALUE_LIMIT);
            assert!((base as u128).pow(n + 1) >= VALUE_LIMIT);
        }
    }

    #[test]
    fn value_counts_match_enumeration() {
        for base in [2u32, 3, 10] {
            for range in [[1, 1], [1, 2], [2, 3], [3, 3]] {
                for signed in [false, true] {
                    let mut values = HashSet::new();
                    let hi = (base as i64).pow(range[1]);
                    for v in 0..hi {
                        let len = to_base(v as u64, base).len() as u32;
                        if (range[0]..=range[1]).contains(&len) {
                            values.insert(v);
                            if signed {
                                values.insert(-v);
                            }
                        }
                    }
                    assert_eq!(
                        operand_value_count(base, range, signed),
                        values.len() as u128,
                        "base {base} range {range:?} signed {signed}"
                    );
                }
            }
        }
    }

    #[test]
    fn extreme_operands_format_without_overflow() {
        let task = ArithmeticTask::new(
            ArithmeticConfig {
                ops: vec![Op::Add, Op::Sub],
                signed: true,
                val_size: 0,
                test_size: 0,
                long_size: 0,
                ..Default::default()
            },
            0,
        )
        .unwrap();
        let p = task.problem(i64::MIN, Op::Sub, i64::MAX, false);
        assert!(p.answer.starts_with('-'));
        let p = task.problem(i64::MIN, Op::Add, i64::MIN, false);
        let digits: String = p.answer[1..].chars().rev().collect();
        assert_eq!(digits.parse::<u128>().unwrap(), 2u128 << 63);
    }
}
