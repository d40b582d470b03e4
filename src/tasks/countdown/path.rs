//! The step text format for fine-tuning, its rule-based verifier and its
//! tokenisation.
//!
//! A text is a prompt followed by a completion:
//!
//! ```text
//! Input: 25 5 5 33
//! Target: 27
//! Steps:
//! 25 + 5 = 30 (left: 5 33 30)
//! 30 / 5 = 6 (left: 33 6)
//! 33 - 6 = 27 (left: 27)
//! Answer: 33 - ((25 + 5) / 5) = 27
//! ```
//!
//! - The prompt is `Input: <numbers>\nTarget: <target>\nSteps:\n` (Game of
//!   24 uses the same prompt with `Target: 24`).
//! - Each step is `a op b = c (left: <remaining numbers>)`: the operands are
//!   removed from the list (first appearance of each value), `c` is appended.
//!   Non-integer values (Game of 24) are written `p/q`, e.g. `8 / 3 = 8/3`.
//! - The completion has exactly `count - 1` steps, then
//!   `Answer: <expression> = <value>`, then a newline. The expression uses
//!   every input number once, every operation parenthesised except the
//!   outermost (the paper's style).
//! - A **successful** path's last step and answer equal the target. A
//!   **failed** path (D-) has the same shape, but its last value, and so
//!   its answer's value, differs from the target: the answer is honest
//!   (`Answer: 25 + ((33 - 5) * 5) = 165`), it just does not solve the
//!   puzzle. This is what the paper's post-processing produces for the
//!   failed leaves of the search.
//!
//! [`verify`] / [`verify_completion`] label any text: `Ok(())` iff
//! - it has that shape, every number written canonically (`5`, `8/3`; not
//!   `05` or `16/6`);
//! - every step takes its operands from the numbers still left, as a
//!   multiset (`5 + 5` needs two 5s left), is a legal operation under the
//!   game's rules ([`super::rules`]: Countdown needs non-negative integers,
//!   `a - b` with `a >= b` and exact division; Game of 24 accepts any exact
//!   rational arithmetic) and states its result right;
//! - each `left:` list is right (as a multiset) and the last step gives the
//!   target;
//! - the answer expression follows from the steps: it uses each input
//!   number exactly once, every one of its operations is legal under the
//!   game's rules, it is the expression tree the steps build (up to the
//!   order of the operands of `+` and `*`), and its stated value is its
//!   value, which is then the last step's result and the target.
//!
//! So a right value reached some other way (`Answer: 2 / 3 * 6 = 4` for
//! `6 / 3 = 2`, `2 * 2 = 4`) is rejected. Empty lines after the answer are
//! allowed, anything else is not ([`Rejection::TrailingText`]). The paper's
//! evaluation instead cuts a model's output after its first `Answer:` line
//! and judges only what comes before ([`cut_at_answer`]); the task kinds do
//! that with `verifier = "paper"`. Each [`Rejection`] says what was wrong.

use std::collections::HashMap;

use thiserror::Error;

use super::expr::{self, Expr};
use super::rules::{take_operands, Game, Move, Op, Ratio};
use crate::data::vocab::{self, VocabError};

/// The instruction line the learning-and-forgetting paper puts before
/// `Input:` in its Countdown fine-tuning texts (papers.md, "Trace text
/// format"), newline included.
pub const PAPER_INSTRUCTION_COUNTDOWN: &str =
    "Use numbers and basic arithmetic operations (+ - * /) to obtain the target number.\n";

/// The paper's Game-of-24 instruction line ("...to obtain 24."), newline
/// included.
pub const PAPER_INSTRUCTION_GAME24: &str =
    "Use numbers and basic arithmetic operations (+ - * /) to obtain 24.\n";

/// The paper's instruction line for `game`.
pub fn paper_instruction(game: Game) -> &'static str {
    match game {
        Game::Countdown => PAPER_INSTRUCTION_COUNTDOWN,
        Game::Game24 => PAPER_INSTRUCTION_GAME24,
    }
}

/// The completion up to and including its first line that contains
/// `Answer:` (with that line's newline), as the paper's evaluation reads a
/// model's output (`base_cot.py`: "find the first appearance", then
/// `output.split("\n")[: index + 1]`): whatever follows is dropped, not
/// judged. Without such a line the completion is returned whole.
pub fn cut_at_answer(completion: &str) -> &str {
    let mut start = 0;
    for line in completion.split_inclusive('\n') {
        let end = start + line.len();
        if line.contains("Answer:") {
            return &completion[..end];
        }
        start = end;
    }
    completion
}

/// The prompt text (`prompt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// `Input: ...\nTarget: ...\nSteps:\n`.
    #[default]
    Short,
    /// The paper's instruction line, then the short prompt.
    Paper,
}

impl PromptStyle {
    /// Whether this is the default (left out when serialised).
    pub fn is_short(&self) -> bool {
        *self == PromptStyle::Short
    }

    /// The text before `Input:`.
    pub fn preamble(self, game: Game) -> &'static str {
        match self {
            PromptStyle::Short => "",
            PromptStyle::Paper => paper_instruction(game),
        }
    }
}

/// The prompt for a puzzle.
pub fn prompt(numbers: &[i64], target: i64) -> String {
    format!(
        "Input: {}\nTarget: {target}\nSteps:\n",
        join(numbers.iter())
    )
}

fn join<T: ToString>(it: impl Iterator<Item = T>) -> String {
    it.map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
}

/// Error from rendering a move list that does not replay on its numbers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("move {index} ({mv}) does not replay on the remaining numbers [{left}]")]
pub struct RenderError {
    /// 0-based index of the offending move.
    pub index: usize,
    /// The move as text.
    pub mv: String,
    /// The numbers left before it.
    pub left: String,
}

/// The completion text for `moves` played on `numbers` (format in the
/// module docs), ending with the `Answer:` line and a newline.
pub fn render_completion(numbers: &[i64], moves: &[Move<Ratio>]) -> Result<String, RenderError> {
    let start: Vec<Ratio> = numbers.iter().map(|&n| Ratio::int(n)).collect();
    let mut left = start.clone();
    let mut out = String::new();
    for (index, m) in moves.iter().enumerate() {
        let before = join(left.iter());
        take_operands(&mut left, |v| *v, m.lhs, m.rhs).map_err(|_| RenderError {
            index,
            mv: m.to_string(),
            left: before,
        })?;
        left.push(m.result);
        out.push_str(&format!("{m} (left: {})\n", join(left.iter())));
    }
    let e = Expr::from_moves(&start, moves).ok_or_else(|| RenderError {
        index: moves.len(),
        mv: "answer".into(),
        left: join(left.iter()),
    })?;
    out.push_str(&format!("Answer: {} = {}\n", e.to_paper(), left[0]));
    Ok(out)
}

/// Why a text is labelled incorrect. Line numbers count completion lines
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// The prompt lines are missing or malformed.
    #[error("prompt: {0}")]
    Prompt(String),
    /// A step line is not `a op b = c (left: ...)`.
    #[error("line {line}: {reason}: {text:?}")]
    StepFormat {
        line: usize,
        text: String,
        reason: String,
    },
    /// A step uses a number that is not left.
    #[error("line {line}: {number} is not among the numbers left [{left}]")]
    Unavailable {
        line: usize,
        number: String,
        left: String,
    },
    /// A step `x op x` when only one `x` is left (operands are a multiset).
    #[error("line {line}: {text:?} uses {number} twice, but only one {number} is left [{left}]")]
    UsedTwice {
        line: usize,
        text: String,
        number: String,
        left: String,
    },
    /// A step's result is wrong, or the operation is not legal under the
    /// game's rules (`detail` says which).
    #[error("line {line}: {text:?} is wrong ({detail})")]
    Arithmetic {
        line: usize,
        text: String,
        detail: String,
    },
    /// A step's `left:` list is wrong.
    #[error("line {line}: left numbers should be [{expected}], got [{got}]")]
    WrongLeft {
        line: usize,
        expected: String,
        got: String,
    },
    /// Too few or too many steps before the answer.
    #[error("expected {expected} steps before the answer, got {got}")]
    StepCount { expected: usize, got: usize },
    /// The last step does not give the target.
    #[error("the steps end at {value}, not the target {target}")]
    FinalNotTarget { value: String, target: i64 },
    /// No `Answer:` line.
    #[error("no 'Answer:' line after the steps")]
    MissingAnswer,
    /// The answer line is malformed or its expression does not parse.
    #[error("answer line {line}: {reason}")]
    AnswerFormat { line: usize, reason: String },
    /// The answer does not use each input number exactly once.
    #[error("the answer uses [{got}] but the input is [{expected}]")]
    AnswerNumbers { expected: String, got: String },
    /// An operation of the answer expression is not legal under the
    /// game's rules (e.g. a Countdown division that is not exact).
    #[error("the answer breaks the {game} rules: {detail}")]
    AnswerIllegal { game: Game, detail: String },
    /// The answer is not the expression the steps build (up to the order of
    /// the operands of `+` and `*`).
    #[error("the answer {got} is not the expression of the steps, {expected} (only the operands of + and * may be swapped)")]
    AnswerNotFromSteps { expected: String, got: String },
    /// The answer expression does not evaluate to its stated value.
    #[error("the answer expression evaluates to {actual}, not the stated {stated}")]
    AnswerValue { stated: String, actual: String },
    /// The answer's value is not the target.
    #[error("the answer is {value}, not the target {target}")]
    AnswerNotTarget { value: String, target: i64 },
    /// Non-empty text after the answer line.
    #[error("line {line}: unexpected text after the answer: {text:?}")]
    TrailingText { line: usize, text: String },
}

/// Labels a full text (prompt + completion): `Ok(())` = correct. Never
/// panics, whatever the text.
pub fn verify(text: &str, game: Game) -> Result<(), Rejection> {
    let (numbers, target, completion) = parse_prompt(text)?;
    verify_completion(&numbers, target, completion, game)
}

/// `true` iff [`verify`] accepts the text.
pub fn is_correct(text: &str, game: Game) -> bool {
    verify(text, game).is_ok()
}

/// Reads the prompt: returns the numbers, the target and the rest of the
/// text (the completion).
///
/// The paper's instruction line ([`PAPER_INSTRUCTION_COUNTDOWN`] or
/// [`PAPER_INSTRUCTION_GAME24`]) may come before `Input:`.
pub fn parse_prompt(text: &str) -> Result<(Vec<i64>, i64, &str), Rejection> {
    let bad = |s: &str| Rejection::Prompt(s.to_string());
    let text = [PAPER_INSTRUCTION_COUNTDOWN, PAPER_INSTRUCTION_GAME24]
        .iter()
        .find_map(|i| text.strip_prefix(i))
        .unwrap_or(text);
    let rest = text
        .strip_prefix("Input:")
        .ok_or_else(|| bad("text must start with 'Input:'"))?;
    let (input, rest) = rest
        .split_once('\n')
        .ok_or_else(|| bad("no newline after the Input line"))?;
    let numbers: Vec<i64> = input
        .split_whitespace()
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| bad(&format!("input number {t:?} is not an integer")))
        })
        .collect::<Result<_, _>>()?;
    if numbers.is_empty() {
        return Err(bad("no input numbers"));
    }
    let rest = rest
        .strip_prefix("Target:")
        .ok_or_else(|| bad("second line must start with 'Target:'"))?;
    let (t, rest) = rest
        .split_once('\n')
        .ok_or_else(|| bad("no newline after the Target line"))?;
    let target: i64 = t
        .trim()
        .parse()
        .map_err(|_| bad(&format!("target {:?} is not an integer", t.trim())))?;
    let rest = rest
        .strip_prefix("Steps:\n")
        .ok_or_else(|| bad("third line must be 'Steps:'"))?;
    Ok((numbers, target, rest))
}

fn multiset(xs: &[Ratio]) -> HashMap<Ratio, i64> {
    let mut m = HashMap::new();
    for &x in xs {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}

fn sorted_text(xs: &[Ratio]) -> String {
    let mut v = xs.to_vec();
    v.sort();
    join(v.iter())
}

/// Labels a completion for the given puzzle (see the module docs).
pub fn verify_completion(
    numbers: &[i64],
    target: i64,
    completion: &str,
    game: Game,
) -> Result<(), Rejection> {
    let inputs: Vec<Ratio> = numbers.iter().map(|&n| Ratio::int(n)).collect();
    let expected_steps = numbers.len().saturating_sub(1);
    let lines: Vec<&str> = completion.split('\n').collect();
    let mut left = inputs.clone();
    let mut moves: Vec<Move<Ratio>> = Vec::with_capacity(expected_steps);
    let mut idx = 0;
    for steps in 0..expected_steps {
        let text = lines.get(idx).copied().unwrap_or("");
        if text.starts_with("Answer:") || text.trim().is_empty() {
            return Err(Rejection::StepCount {
                expected: expected_steps,
                got: steps,
            });
        }
        let line = idx + 1;
        let fmt_err = |reason: &str| Rejection::StepFormat {
            line,
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (lhs, rest) = text
            .split_once("(left:")
            .ok_or_else(|| fmt_err("no '(left:' list"))?;
        let list = rest
            .trim_end()
            .strip_suffix(')')
            .ok_or_else(|| fmt_err("the left list must end with ')'"))?;
        let toks: Vec<&str> = lhs.split_whitespace().collect();
        if toks.len() != 5 || toks[3] != "=" {
            return Err(fmt_err("expected 'a op b = c' before the left list"));
        }
        // Canonical spelling only, so that one value has one text.
        let num = |t: &str| match t.parse::<Ratio>() {
            Ok(x) if x.to_string() == t => Ok(x),
            Ok(x) => Err(fmt_err(&format!("{t:?} is not written canonically ({x})"))),
            Err(e) => Err(fmt_err(&e)),
        };
        let (a, b, c) = (num(toks[0])?, num(toks[2])?, num(toks[4])?);
        let mut op_chars = toks[1].chars();
        let op = match (op_chars.next().and_then(Op::from_symbol), op_chars.next()) {
            (Some(op), None) => op,
            _ => return Err(fmt_err("the operator must be one of + - * /")),
        };
        // Availability: the operands come out of the numbers left, as a multiset.
        let mut next = left.clone();
        if let Err(missing) = take_operands(&mut next, |v| *v, a, b) {
            let left_text = join(left.iter());
            return Err(if a == b && left.contains(&a) {
                Rejection::UsedTwice {
                    line,
                    text: lhs.trim().to_string(),
                    number: a.to_string(),
                    left: left_text,
                }
            } else {
                Rejection::Unavailable {
                    line,
                    number: missing.to_string(),
                    left: left_text,
                }
            });
        }
        // Legality and arithmetic under the game's rules.
        let value = game
            .apply(op, a, b)
            .map_err(|illegal| Rejection::Arithmetic {
                line,
                text: lhs.trim().to_string(),
                detail: illegal.to_string(),
            })?;
        if value != c {
            return Err(Rejection::Arithmetic {
                line,
                text: lhs.trim().to_string(),
                detail: format!("{a} {op} {b} is {value}"),
            });
        }
        next.push(c);
        // Left list.
        let got: Vec<Ratio> = list.split_whitespace().map(num).collect::<Result<_, _>>()?;
        if multiset(&got) != multiset(&next) {
            return Err(Rejection::WrongLeft {
                line,
                expected: sorted_text(&next),
                got: sorted_text(&got),
            });
        }
        left = next;
        moves.push(Move {
            lhs: a,
            op,
            rhs: b,
            result: c,
        });
        idx += 1;
    }
    let answer_line = lines.get(idx).copied().unwrap_or("");
    if !answer_line.starts_with("Answer:") {
        if answer_line.contains("(left:") {
            return Err(Rejection::StepCount {
                expected: expected_steps,
                got: expected_steps + 1,
            });
        }
        return Err(Rejection::MissingAnswer);
    }
    if left.len() != 1 || left[0] != Ratio::int(target) {
        return Err(Rejection::FinalNotTarget {
            value: join(left.iter()),
            target,
        });
    }
    // Answer.
    let line = idx + 1;
    let ans = answer_line.strip_prefix("Answer:").expect("checked above");
    let afmt = |reason: String| Rejection::AnswerFormat { line, reason };
    let (e_text, v_text) = ans
        .rsplit_once('=')
        .ok_or_else(|| afmt("expected 'Answer: <expression> = <value>'".into()))?;
    let v_text = v_text.trim();
    let stated: Ratio = match v_text.parse::<Ratio>() {
        Ok(x) if x.to_string() == v_text => x,
        Ok(x) => return Err(afmt(format!("{v_text:?} is not written canonically ({x})"))),
        Err(e) => return Err(afmt(e)),
    };
    let e = expr::parse(e_text.trim()).map_err(afmt)?;
    let mut used = e.leaves();
    let mut want = inputs.clone();
    used.sort();
    want.sort();
    if used != want {
        return Err(Rejection::AnswerNumbers {
            expected: join(want.iter()),
            got: join(used.iter()),
        });
    }
    let actual = e
        .eval_in(game)
        .map_err(|illegal| Rejection::AnswerIllegal {
            game,
            detail: illegal.to_string(),
        })?;
    if actual != stated {
        return Err(Rejection::AnswerValue {
            stated: stated.to_string(),
            actual: actual.to_string(),
        });
    }
    // The steps were checked above, so they replay into one tree.
    let from_steps = Expr::from_moves(&inputs, &moves).ok_or_else(|| {
        afmt("internal error: the checked steps do not build an expression".into())
    })?;
    if e.canonical() != from_steps.canonical() {
        return Err(Rejection::AnswerNotFromSteps {
            expected: from_steps.to_paper(),
            got: e.to_paper(),
        });
    }
    if stated != Ratio::int(target) {
        return Err(Rejection::AnswerNotTarget {
            value: stated.to_string(),
            target,
        });
    }
    for (k, l) in lines.iter().enumerate().skip(idx + 1) {
        if !l.trim().is_empty() {
            return Err(Rejection::TrailingText {
                line: k + 1,
                text: l.to_string(),
            });
        }
    }
    Ok(())
}

/// Labels the beginning of a completion, given as its complete `lines`
/// (without newlines): `Ok(())` iff some continuation could make it a
/// completion [`verify_completion`] accepts, as far as the lines go. Every
/// step must be legal (operands left as a multiset, a legal operation, the
/// stated result and `left:` list right), there may be at most
/// `count - 1` steps, and a final `Answer:` line is checked exactly as the
/// full verifier checks the whole completion (so it must reach the
/// target). What a step-level search prunes with.
///
/// It runs [`verify_completion`] itself on the lines, so there is one
/// checker: that checks the steps in order and stops at the first fault,
/// and when every given step passed it reports running out of lines as
/// `StepCount { got: <lines given> }` (fewer than `count - 1` steps) or
/// `MissingAnswer` (all of them); those two mean the prefix is legal.
pub fn verify_prefix(
    numbers: &[i64],
    target: i64,
    lines: &[&str],
    game: Game,
) -> Result<(), Rejection> {
    let expected = numbers.len().saturating_sub(1);
    if let Some((k, text)) = lines.iter().enumerate().find(|(_, l)| l.contains('\n')) {
        return Err(Rejection::StepFormat {
            line: k + 1,
            text: text.to_string(),
            reason: "a line may not contain a newline".into(),
        });
    }
    let completion: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if lines.last().is_some_and(|l| l.starts_with("Answer:")) {
        return verify_completion(numbers, target, &completion, game);
    }
    if lines.len() > expected {
        return Err(Rejection::StepCount {
            expected,
            got: lines.len(),
        });
    }
    match verify_completion(numbers, target, &completion, game) {
        Err(Rejection::StepCount { got, .. }) if got == lines.len() && got < expected => Ok(()),
        Err(Rejection::MissingAnswer) if lines.len() == expected => Ok(()),
        other => other,
    }
}

/// Token ids of one example in the shared vocabulary (no `<bos>`/`<eos>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPath {
    /// Prompt ids followed by completion ids.
    pub ids: Vec<u32>,
    /// Index of the first completion token (= prompt length); the loss goes
    /// on `ids[completion_start..]`.
    pub completion_start: usize,
}

/// Encodes a prompt and completion with [`crate::data::vocab::encode`] (one token
/// per character; every text this module writes is printable ASCII + `\n`).
pub fn encode_example(prompt: &str, completion: &str) -> Result<EncodedPath, VocabError> {
    let mut ids = vocab::encode(prompt)?;
    let completion_start = ids.len();
    ids.extend(vocab::encode(completion)?);
    Ok(EncodedPath {
        ids,
        completion_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> Ratio {
        Ratio::int(n)
    }

    const EXAMPLE: &str = "Input: 25 5 5 33\nTarget: 27\nSteps:\n25 + 5 = 30 (left: 5 33 30)\n30 / 5 = 6 (left: 33 6)\n33 - 6 = 27 (left: 27)\nAnswer: 33 - ((25 + 5) / 5) = 27\n";

    #[test]
    fn renders_the_paper_example() {
        let moves = [
            Move {
                lhs: r(25),
                op: Op::Add,
                rhs: r(5),
                result: r(30),
            },
            Move {
                lhs: r(30),
                op: Op::Div,
                rhs: r(5),
                result: r(6),
            },
            Move {
                lhs: r(33),
                op: Op::Sub,
                rhs: r(6),
                result: r(27),
            },
        ];
        let text =
            prompt(&[25, 5, 5, 33], 27) + &render_completion(&[25, 5, 5, 33], &moves).unwrap();
        assert_eq!(text, EXAMPLE);
        assert_eq!(verify(&text, Game::Countdown), Ok(()));
        assert_eq!(verify(&text, Game::Game24), Ok(()));
        let enc = encode_example(&prompt(&[25, 5, 5, 33], 27), "x").unwrap();
        assert_eq!(enc.ids.len(), enc.completion_start + 1);
    }

    #[test]
    fn rejections_name_the_problem() {
        let cases = [
            (EXAMPLE.replace("30 / 5 = 6", "30 / 5 = 7"), "wrong"),
            (
                EXAMPLE.replace("(left: 33 6)", "(left: 33 7)"),
                "left numbers",
            ),
            (
                EXAMPLE.replace("Answer: 33 - ((25 + 5) / 5) = 27\n", ""),
                "Answer",
            ),
            (
                EXAMPLE.replace("33 - ((25 + 5) / 5)", "33 - ((25 + 5) / 5) + 0"),
                "uses",
            ),
            (EXAMPLE.replace("Input:", "Numbers:"), "prompt"),
            (EXAMPLE.to_string() + "more\n", "after the answer"),
            (
                EXAMPLE.replace("25 + 5 = 30 (left: 5 33 30)\n", ""),
                "not among",
            ),
            (
                EXAMPLE.replace("33 - 6 = 27 (left: 27)\n", ""),
                "expected 3 steps",
            ),
        ];
        for (text, want) in cases {
            let err = verify(&text, Game::Countdown).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want:?})");
        }
        // Countdown forbids fractions and negatives; Game of 24 accepts them.
        let g = "Input: 3 3 8 8\nTarget: 24\nSteps:\n8 / 3 = 8/3 (left: 3 8 8/3)\n3 - 8/3 = 1/3 (left: 8 1/3)\n8 / 1/3 = 24 (left: 24)\nAnswer: 8 / (3 - (8 / 3)) = 24\n";
        assert_eq!(verify(g, Game::Game24), Ok(()));
        assert!(matches!(
            verify(g, Game::Countdown),
            Err(Rejection::Arithmetic { line: 1, .. })
        ));
        for junk in [
            "",
            "Input:",
            "Input: 1\nTarget: 1\nSteps:\n",
            "Input: 1 2\nTarget: x\nSteps:\n",
            "\u{0}\n\n",
        ] {
            let _ = verify(junk, Game::Countdown);
        }
        assert_eq!(
            verify(
                "Input: 7\nTarget: 7\nSteps:\nAnswer: 7 = 7\n",
                Game::Countdown
            ),
            Ok(())
        );
    }
}
