//! Countdown / Game-of-24: solver vs brute force, the 1362 count, printed
//! expressions, search paths vs verifier, corruption proptest, splits,
//! reproducible datasets and the CLI functions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use rewind::tasks::countdown::config::CountdownDataConfig;
use rewind::tasks::countdown::dataset::{PathRecord, ProblemRecord};
use rewind::tasks::countdown::path::{
    encode_example, prompt, render_completion, verify, Rejection,
};
use rewind::tasks::countdown::puzzle::{
    game24_multisets, game24_split, sample_solvable, CountdownSpec, Game, GAME24_SOLVABLE_COUNT,
};
use rewind::tasks::countdown::search::{self, StrategyMix};
use rewind::tasks::countdown::solver::{solve, Move, Ratio};
use rewind::tasks::countdown::{build_datasets, data_command, solve_command};

// ---------- an independent exact rational and brute-force enumerators ----------

/// `(num, den)` in lowest terms, `den > 0`, i128 so nothing overflows here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Q(i128, i128);

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

impl Q {
    fn new(n: i128, d: i128) -> Option<Q> {
        if d == 0 {
            return None;
        }
        let g = gcd(n, d).max(1);
        let (n, d) = (n / g, d / g);
        Some(if d < 0 { Q(-n, -d) } else { Q(n, d) })
    }
    fn int(n: i64) -> Q {
        Q(n as i128, 1)
    }
    fn add(self, o: Q) -> Q {
        Q::new(self.0 * o.1 + o.0 * self.1, self.1 * o.1).unwrap()
    }
    fn sub(self, o: Q) -> Q {
        Q::new(self.0 * o.1 - o.0 * self.1, self.1 * o.1).unwrap()
    }
    fn mul(self, o: Q) -> Q {
        Q::new(self.0 * o.0, self.1 * o.1).unwrap()
    }
    fn div(self, o: Q) -> Option<Q> {
        Q::new(self.0 * o.1, self.1 * o.0)
    }
}

/// All values of expression trees using every number exactly once, by
/// dynamic programming over subsets. `countdown`: non-negative integers,
/// `x - y` needs `x >= y`, `x / y` needs `y > 0` dividing `x`. Otherwise
/// unrestricted rationals (negatives allowed).
fn brute_force_values(nums: &[i64], countdown: bool) -> HashSet<Q> {
    let n = nums.len();
    let full = (1usize << n) - 1;
    let mut vals: Vec<HashSet<Q>> = vec![HashSet::new(); full + 1];
    for (i, &x) in nums.iter().enumerate() {
        vals[1 << i].insert(Q::int(x));
    }
    for mask in 1..=full {
        if mask.count_ones() < 2 {
            continue;
        }
        let mut out = HashSet::new();
        let mut sub = (mask - 1) & mask;
        while sub > 0 {
            let rest = mask ^ sub;
            for &x in &vals[sub] {
                for &y in &vals[rest] {
                    out.insert(x.add(y));
                    out.insert(x.mul(y));
                    if countdown {
                        if x >= y {
                            out.insert(x.sub(y));
                        }
                        if y.0 > 0 && x.0 % y.0 == 0 {
                            out.insert(x.div(y).unwrap());
                        }
                    } else {
                        out.insert(x.sub(y));
                        if let Some(d) = x.div(y) {
                            out.insert(d);
                        }
                    }
                }
            }
            sub = (sub - 1) & mask;
        }
        vals[mask] = out;
    }
    std::mem::take(&mut vals[full])
}

/// Independent infix parser/evaluator: returns (value, leaves).
fn eval_infix(s: &str) -> Result<(Q, Vec<i64>), String> {
    fn expr(t: &[u8], i: &mut usize, leaves: &mut Vec<i64>) -> Result<Q, String> {
        let mut v = term(t, i, leaves)?;
        while *i < t.len() && (t[*i] == b'+' || t[*i] == b'-') {
            let op = t[*i];
            *i += 1;
            let r = term(t, i, leaves)?;
            v = if op == b'+' { v.add(r) } else { v.sub(r) };
        }
        Ok(v)
    }
    fn term(t: &[u8], i: &mut usize, leaves: &mut Vec<i64>) -> Result<Q, String> {
        let mut v = atom(t, i, leaves)?;
        while *i < t.len() && (t[*i] == b'*' || t[*i] == b'/') {
            let op = t[*i];
            *i += 1;
            let r = atom(t, i, leaves)?;
            v = if op == b'*' {
                v.mul(r)
            } else {
                v.div(r).ok_or("division by zero")?
            };
        }
        Ok(v)
    }
    fn atom(t: &[u8], i: &mut usize, leaves: &mut Vec<i64>) -> Result<Q, String> {
        if *i < t.len() && t[*i] == b'(' {
            *i += 1;
            let v = expr(t, i, leaves)?;
            if *i >= t.len() || t[*i] != b')' {
                return Err("missing )".into());
            }
            *i += 1;
            return Ok(v);
        }
        let start = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        let n: i64 = std::str::from_utf8(&t[start..*i])
            .unwrap()
            .parse()
            .map_err(|_| format!("bad number at {start}"))?;
        leaves.push(n);
        Ok(Q::int(n))
    }
    let t: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    let mut i = 0;
    let mut leaves = Vec::new();
    let v = expr(&t, &mut i, &mut leaves)?;
    if i != t.len() {
        return Err(format!("trailing text in {s:?}"));
    }
    Ok((v, leaves))
}

fn assert_expression_solves(expr: &str, numbers: &[i64], target: i64) {
    let (v, mut leaves) =
        eval_infix(expr).unwrap_or_else(|e| panic!("{expr:?} does not parse: {e}"));
    assert_eq!(v, Q::int(target), "{expr} for {numbers:?}");
    let mut want = numbers.to_vec();
    want.sort();
    leaves.sort();
    assert_eq!(leaves, want, "{expr} must use each of {numbers:?} once");
}

fn rat(ns: &[i64]) -> Vec<Ratio> {
    ns.iter().map(|&n| Ratio::int(n)).collect()
}

// ---------- solver ----------

#[test]
fn countdown_solver_agrees_with_brute_force() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut solvable, mut total) = (0, 0);
    for round in 0..400 {
        let count = 2 + round % 3; // 2, 3 or 4 numbers
        let hi = if round % 2 == 0 { 12 } else { 40 };
        let nums: Vec<i64> = (0..count).map(|_| rng.gen_range(1..=hi)).collect();
        let reach = brute_force_values(&nums, true);
        for target in (0..=60).chain([rng.gen_range(61..500)]) {
            total += 1;
            let want = reach.contains(&Q::int(target));
            let got = solve(&nums, target);
            assert_eq!(got.is_some(), want, "{nums:?} -> {target}");
            if let Some(s) = got {
                solvable += 1;
                assert_expression_solves(&s.expression(), &nums, target);
                assert_eq!(s.moves.len(), nums.len() - 1);
            }
        }
    }
    assert!(
        solvable > total / 10 && solvable < total,
        "{solvable} of {total}"
    );
}

#[test]
fn game24_solver_agrees_with_brute_force_and_counts_1362() {
    let all = game24_multisets();
    assert_eq!(all.len(), 1820);
    let mut solvable = 0;
    let mut rng = StdRng::seed_from_u64(2);
    for (k, m) in all.iter().enumerate() {
        let reach = brute_force_values(m, false);
        let s = solve(&rat(m), Ratio::int(24));
        assert_eq!(s.is_some(), reach.contains(&Q::int(24)), "{m:?}");
        if let Some(s) = &s {
            solvable += 1;
            assert_expression_solves(&s.expression(), m, 24);
        }
        // Other targets too, on a sample (rules are not specific to 24).
        if k % 7 == 0 {
            for _ in 0..5 {
                let t = rng.gen_range(0..=60);
                assert_eq!(
                    solve(&rat(m), Ratio::int(t)).is_some(),
                    reach.contains(&Q::int(t)),
                    "{m:?} -> {t}"
                );
            }
        }
    }
    assert_eq!(solvable, 1362, "solvable Game-of-24 multisets");
    assert_eq!(GAME24_SOLVABLE_COUNT, 1362);
    // Three numbers, rationals, random targets.
    for _ in 0..300 {
        let m: Vec<i64> = (0..3).map(|_| rng.gen_range(1..=13)).collect();
        let reach = brute_force_values(&m, false);
        let t = rng.gen_range(0..=50);
        assert_eq!(
            solve(&rat(&m), Ratio::int(t)).is_some(),
            reach.contains(&Q::int(t)),
            "{m:?} -> {t}"
        );
    }
}

#[test]
fn solve_command_prints_checked_expressions() {
    let line = solve_command(&[4, 7, 8, 8], 24, true).unwrap();
    assert_expression_solves(&line, &[4, 7, 8, 8], 24);
    let line = solve_command(&[25, 5, 5, 33], 27, false).unwrap();
    assert_expression_solves(&line, &[25, 5, 5, 33], 27);
    assert_eq!(
        solve_command(&[1, 1, 1, 1], 24, true).unwrap(),
        "no solution"
    );
    assert_eq!(
        solve_command(&[3, 3, 8, 8], 24, false).unwrap(),
        "no solution",
        "needs fractions"
    );
    assert_expression_solves(
        &solve_command(&[3, 3, 8, 8], 24, true).unwrap(),
        &[3, 3, 8, 8],
        24,
    );
    assert_eq!(solve_command(&[5], 5, false).unwrap(), "5");
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..300 {
        let n = rng.gen_range(1..=5);
        let nums: Vec<i64> = (0..n).map(|_| rng.gen_range(1..=30)).collect();
        let target = rng.gen_range(0..=120);
        let line = solve_command(&nums, target, false).unwrap();
        assert!(!line.contains('\n'));
        if line != "no solution" {
            assert_expression_solves(&line, &nums, target);
        } else {
            assert!(!brute_force_values(&nums, true).contains(&Q::int(target)));
        }
    }
    // Six numbers finish quickly (memoised dead states).
    let line = solve_command(&[2, 3, 7, 11, 13, 17], 997, false).unwrap();
    if line != "no solution" {
        assert_expression_solves(&line, &[2, 3, 7, 11, 13, 17], 997);
    }
    for (nums, t, g24, msg) in [
        (vec![], 24, false, "no numbers"),
        (vec![0, 3], 3, false, "positive"),
        (vec![-2, 3], 3, false, "positive"),
        (vec![1; 7], 7, false, "at most 6"),
        (vec![4, 7, 8], 24, true, "exactly 4"),
        (vec![4, 7, 8, 0], 24, true, "1..=13"),
        (vec![4, 7, 8, 8], 23, true, "--target 24"),
    ] {
        let e = solve_command(&nums, t, g24).unwrap_err().to_string();
        assert!(e.contains(msg), "{nums:?}: {e}");
    }
}

// ---------- search paths and the verifier ----------

fn all_strategies() -> Vec<search::Strategy> {
    StrategyMix::paper().concrete()
}

fn countdown_instances(n: usize, seed: u64) -> Vec<(Vec<i64>, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let targets: Vec<i64> = (10..=100).collect();
    (0..n)
        .map(|_| {
            let (inst, _, _) = sample_solvable(
                &mut rng,
                &CountdownSpec::PAPER,
                &targets,
                &HashSet::new(),
                100_000,
            )
            .unwrap();
            (inst.numbers, inst.target)
        })
        .collect()
}

fn full_text(numbers: &[i64], target: i64, moves: &[Move<Ratio>]) -> String {
    prompt(numbers, target) + &render_completion(numbers, moves).unwrap()
}

#[test]
fn verifier_accepts_every_success_and_rejects_every_failure() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut pos, mut neg) = (0, 0);
    for (nums, target) in countdown_instances(120, 5) {
        for s in all_strategies() {
            let t = search::run(&nums, target, s, &mut rng);
            if let Some(p) = t.success_path() {
                let text = full_text(
                    &nums,
                    target,
                    &p.iter().map(|m| m.to_ratio()).collect::<Vec<_>>(),
                );
                assert_eq!(verify(&text, Game::Countdown), Ok(()), "{s}\n{text}");
                encode_example(&text, "").unwrap();
                pos += 1;
            }
            for f in t.failed_paths() {
                let text = full_text(
                    &nums,
                    target,
                    &f.iter().map(|m| m.to_ratio()).collect::<Vec<_>>(),
                );
                assert!(verify(&text, Game::Countdown).is_err(), "{s}\n{text}");
                neg += 1;
            }
        }
    }
    let solvable: Vec<[i64; 4]> = game24_split(24, 0, 0).train;
    for m in solvable.iter().step_by(9) {
        let nums = rat(m);
        for s in all_strategies() {
            let t = search::run(&nums, Ratio::int(24), s, &mut rng);
            if let Some(p) = t.success_path() {
                let text = full_text(m, 24, &p);
                assert_eq!(verify(&text, Game::Game24), Ok(()), "{s}\n{text}");
                pos += 1;
            }
            for f in t.failed_paths() {
                let text = full_text(m, 24, &f);
                assert!(verify(&text, Game::Game24).is_err(), "{s}\n{text}");
                neg += 1;
            }
        }
    }
    assert!(pos > 1000 && neg > 1000, "{pos} successes, {neg} failures");
}

/// The `Answer:` line must be the expression the steps build, legal under
/// the game's rules, not just any expression with the right value.
#[test]
fn verifier_rejects_an_answer_that_does_not_follow_from_the_steps() {
    let steps = "Input: 2 3 6\nTarget: 4\nSteps:\n6 / 3 = 2 (left: 2 2)\n2 * 2 = 4 (left: 4)\n";
    let with = |answer: &str| format!("{steps}Answer: {answer}\n");
    for game in [Game::Countdown, Game::Game24] {
        // The steps' own tree, as written and with * operands swapped.
        assert_eq!(verify(&with("2 * (6 / 3) = 4"), game), Ok(()));
        assert_eq!(verify(&with("(6 / 3) * 2 = 4"), game), Ok(()));
        assert_eq!(verify(&with("6/3*2 = 4"), game), Ok(()));
        // Right value and numbers, but not the steps' expression.
        let e = verify(&with("2 / 3 * 6 = 4"), game).unwrap_err();
        match game {
            // 2 / 3 is not a Countdown division, whatever the steps say.
            Game::Countdown => {
                assert!(matches!(e, Rejection::AnswerIllegal { .. }), "{e:?}");
                assert!(
                    e.to_string().contains("2 / 3 is not an exact division"),
                    "{e}"
                );
            }
            Game::Game24 => {
                assert!(matches!(e, Rejection::AnswerNotFromSteps { .. }), "{e:?}");
                assert!(e.to_string().contains("2 * (6 / 3)"), "{e}");
            }
        }
        // Division operands may not be swapped, and the printed value must be the value.
        let e = verify(&with("2 * (3 / 6) = 4"), game).unwrap_err();
        assert!(
            matches!(
                e,
                Rejection::AnswerIllegal { .. } | Rejection::AnswerValue { .. }
            ),
            "{e:?}"
        );
        let e = verify(&with("2 * (6 / 3) = 5"), game).unwrap_err();
        assert!(matches!(e, Rejection::AnswerValue { .. }), "{e:?}");
        let e = verify(&with("2 + 2 = 4"), game).unwrap_err();
        assert!(matches!(e, Rejection::AnswerNumbers { .. }), "{e:?}");
    }
    // Same numbers and value, other tree: 1 + (2 + 3) is not (1 + 2) + 3
    // (commutativity is allowed, associativity is not).
    let t = "Input: 1 2 3\nTarget: 6\nSteps:\n1 + 2 = 3 (left: 3 3)\n3 + 3 = 6 (left: 6)\n";
    assert_eq!(
        verify(&format!("{t}Answer: 3 + (2 + 1) = 6\n"), Game::Countdown),
        Ok(())
    );
    let e = verify(&format!("{t}Answer: 1 + (2 + 3) = 6\n"), Game::Countdown).unwrap_err();
    assert!(matches!(e, Rejection::AnswerNotFromSteps { .. }), "{e:?}");
    // (6 / 3) + 2 = 4 is legal and right, but the steps multiplied.
    for game in [Game::Countdown, Game::Game24] {
        let e = verify(&with("(6 / 3) + 2 = 4"), game).unwrap_err();
        assert!(matches!(e, Rejection::AnswerNotFromSteps { .. }), "{e:?}");
    }
    // The paper's Game-of-24 example: fractions in the steps and the answer.
    let g = "Input: 3 3 8 8\nTarget: 24\nSteps:\n8 / 3 = 8/3 (left: 3 8 8/3)\n3 - 8/3 = 1/3 (left: 8 1/3)\n8 / 1/3 = 24 (left: 24)\n";
    assert_eq!(
        verify(
            &format!("{g}Answer: 8 / (3 - (8 / 3)) = 24\n"),
            Game::Game24
        ),
        Ok(())
    );
    let e = verify(
        &format!("{g}Answer: 8 / (3 - (3 / 8)) = 24\n"),
        Game::Game24,
    )
    .unwrap_err();
    assert!(matches!(e, Rejection::AnswerValue { .. }), "{e:?}");
}

/// A step's operands come out of the numbers left as a multiset.
#[test]
fn verifier_rejects_a_step_using_a_number_not_left() {
    // `5 + 5` needs two 5s; only one is left.
    let t = "Input: 5 3 2\nTarget: 10\nSteps:\n5 + 5 = 10 (left: 3 2 10)\n";
    let e = verify(t, Game::Countdown).unwrap_err();
    assert!(matches!(e, Rejection::UsedTwice { line: 1, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("uses 5 twice, but only one 5 is left [5 3 2]"),
        "{e}"
    );
    // With two 5s it is a legal step.
    let ok = "Input: 5 5 2\nTarget: 20\nSteps:\n5 + 5 = 10 (left: 2 10)\n2 * 10 = 20 (left: 20)\nAnswer: 2 * (5 + 5) = 20\n";
    assert_eq!(verify(ok, Game::Countdown), Ok(()));
    // A number that was never there, or that an earlier step used up.
    let t = "Input: 5 3 2\nTarget: 10\nSteps:\n7 + 3 = 10 (left: 5 2 10)\n";
    let e = verify(t, Game::Countdown).unwrap_err();
    assert!(matches!(e, Rejection::Unavailable { line: 1, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("7 is not among the numbers left [5 3 2]"),
        "{e}"
    );
    let t = "Input: 5 3 2\nTarget: 16\nSteps:\n5 + 3 = 8 (left: 2 8)\n8 * 3 = 24 (left: 2 24)\n";
    let e = verify(t, Game::Game24).unwrap_err();
    assert!(
        e.to_string()
            .contains("line 2: 3 is not among the numbers left [2 8]"),
        "{e}"
    );
    // Non-canonical numbers are a format error, not a silent match.
    let t = "Input: 5 3\nTarget: 8\nSteps:\n05 + 3 = 8 (left: 8)\nAnswer: 5 + 3 = 8\n";
    let e = verify(t, Game::Countdown).unwrap_err();
    assert!(e.to_string().contains("not written canonically"), "{e}");
}

/// A correct path (from the exact solver) for a random solvable instance.
fn correct_text(seed: u64, game24: bool) -> (String, Game) {
    if game24 {
        let all = game24_split(24, 0, 0).train;
        let m = all[(seed as usize) % all.len()];
        let s = solve(&rat(&m), Ratio::int(24)).unwrap();
        (full_text(&m, 24, &s.moves), Game::Game24)
    } else {
        let (nums, target) = countdown_instances(1, seed).pop().unwrap();
        let s = solve(&nums, target).unwrap();
        let moves: Vec<Move<Ratio>> = s.moves.iter().map(|m| m.to_ratio()).collect();
        (full_text(&nums, target, &moves), Game::Countdown)
    }
}

/// Byte ranges of the number tokens (`12`, `8/3`) of a line.
fn number_tokens(line: &str) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            // a fraction literal `p/q` (no spaces) is one token
            if i + 1 < b.len() && b[i] == b'/' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn corrupting_any_step_makes_the_verifier_reject(
        seed in 0u64..1_000_000,
        game24 in any::<bool>(),
        kind in 0usize..4,
        line_pick in any::<prop::sample::Index>(),
        tok_pick in any::<prop::sample::Index>(),
        delta in 1i64..40,
        op_pick in 0usize..3,
    ) {
        let (text, game) = correct_text(seed, game24);
        prop_assert_eq!(verify(&text, game), Ok(()));
        let lines: Vec<&str> = text.lines().collect();
        // lines: Input, Target, Steps:, steps..., Answer
        let steps: Vec<usize> = (3..lines.len() - 1).collect();
        let answer = lines.len() - 1;
        let mut new_lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        match kind {
            // change one number of a step (operand, result or left list) or of the answer
            0 | 1 => {
                let li = if kind == 0 { steps[line_pick.index(steps.len())] } else { answer };
                let line = lines[li];
                let toks = number_tokens(line);
                let (s, e) = toks[tok_pick.index(toks.len())];
                let old: Ratio = line[s..e].parse().unwrap();
                let new = old.checked_add(Ratio::int(delta)).unwrap();
                new_lines[li] = format!("{}{}{}", &line[..s], new, &line[e..]);
            }
            // change the operator of a step to one that gives another value
            2 => {
                let li = steps[line_pick.index(steps.len())];
                let line = lines[li];
                let toks: Vec<&str> = line.split_whitespace().collect();
                let (a, op, b, c): (Ratio, char, Ratio, Ratio) =
                    (toks[0].parse().unwrap(), toks[1].chars().next().unwrap(), toks[2].parse().unwrap(), toks[4].parse().unwrap());
                let others: Vec<char> = ['+', '-', '*', '/'].into_iter().filter(|&o| o != op).collect();
                let new_op = others[op_pick];
                let value = match new_op {
                    '+' => a.checked_add(b),
                    '-' => a.checked_sub(b),
                    '*' => a.checked_mul(b),
                    _ => a.checked_div(b),
                };
                prop_assume!(value != Some(c));
                new_lines[li] = line.replacen(&format!(" {op} "), &format!(" {new_op} "), 1);
            }
            // drop a step
            _ => {
                let li = steps[line_pick.index(steps.len())];
                new_lines.remove(li);
            }
        }
        let corrupted = new_lines.join("\n") + "\n";
        prop_assert_ne!(&corrupted, &text);
        prop_assert!(verify(&corrupted, game).is_err(), "accepted:\n{}", corrupted);
    }

    #[test]
    fn verifier_never_panics_on_arbitrary_text(s in "(Input: [0-9 ]{0,12}\nTarget: [0-9]{0,3}\nSteps:\n)?[0-9 +*/()=a-z:\n-]{0,80}") {
        let _ = verify(&s, Game::Countdown);
        let _ = verify(&s, Game::Game24);
    }
}

// ---------- datasets, splits, reproducibility ----------

fn small_config(seed: u64) -> CountdownDataConfig {
    let mut c = CountdownDataConfig {
        seed,
        ..Default::default()
    };
    c.countdown.train_size = 400;
    c.countdown.val_size = 100;
    c.countdown.test_size = 100;
    c.baseline.enabled = false;
    c
}

fn read_jsonl<T: serde::de::DeserializeOwned>(p: &Path) -> Vec<T> {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn dir_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(root) {
        out.push((
            e.strip_prefix(root).unwrap().display().to_string(),
            fs::read(&e).unwrap(),
        ));
    }
    out.sort();
    out
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

#[test]
fn datasets_have_disjoint_splits_and_verified_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(7);
    let stats = build_datasets(&cfg, dir.path()).unwrap();
    let cd = stats.countdown.as_ref().unwrap();
    for task in ["countdown", "game24"] {
        let game = if task == "countdown" {
            Game::Countdown
        } else {
            Game::Game24
        };
        let mut keys: HashMap<(Vec<i64>, i64), String> = HashMap::new();
        let mut targets: HashMap<&str, BTreeSet<i64>> = HashMap::new();
        for split in ["train", "val", "test"] {
            let problems: Vec<ProblemRecord> = read_jsonl(
                &dir.path()
                    .join(task)
                    .join(format!("{split}_problems.jsonl")),
            );
            let ids: HashSet<String> = problems.iter().map(|p| p.id.clone()).collect();
            for p in &problems {
                let mut k = p.numbers.clone();
                k.sort();
                if let Some(other) = keys.insert((k, p.target), split.to_string()) {
                    panic!(
                        "{task} instance {:?} -> {} in {other} and {split}",
                        p.numbers, p.target
                    );
                }
                targets.entry(split).or_default().insert(p.target);
                assert_expression_solves(&p.solution, &p.numbers, p.target);
                assert_eq!(p.prompt, prompt(&p.numbers, p.target));
            }
            for (file, label) in [("pos", true), ("neg", false)] {
                let paths: Vec<PathRecord> =
                    read_jsonl(&dir.path().join(task).join(format!("{split}_{file}.jsonl")));
                assert!(!paths.is_empty(), "{task} {split} {file}");
                let mut per_problem: HashMap<&str, usize> = HashMap::new();
                for r in &paths {
                    assert!(ids.contains(&r.id));
                    assert_eq!(r.correct, label);
                    let text = format!("{}{}", r.prompt, r.completion);
                    assert_eq!(verify(&text, game).is_ok(), label, "{text}");
                    let enc = encode_example(&r.prompt, &r.completion).unwrap();
                    assert_eq!(enc.ids.len(), text.len());
                    *per_problem.entry(&r.id).or_default() += 1;
                }
                let cap = if label { 1 } else { cfg.search.max_failed };
                assert!(per_problem.values().all(|&n| n <= cap));
            }
        }
        if task == "countdown" {
            let train: BTreeSet<i64> = targets["train"].union(&targets["val"]).copied().collect();
            assert!(
                targets["test"].is_disjoint(&train),
                "a test target appears in train/val"
            );
            assert!(targets["test"].iter().all(|t| cd.test_targets.contains(t)));
            assert!(cd.test_targets.contains(&24));
        }
    }
    for s in &cd.splits {
        assert!(s.acceptance_rate > 0.0 && s.acceptance_rate <= 1.0);
        assert!(s.total.success_rate > 0.2 && s.total.success_rate <= 1.0);
        assert_eq!(
            s.strategies.iter().map(|r| r.problems).sum::<usize>(),
            s.problems
        );
    }
    assert_eq!(
        stats
            .game24
            .as_ref()
            .unwrap()
            .splits
            .iter()
            .map(|s| s.problems)
            .sum::<usize>(),
        1362
    );
    let stats_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("stats.json")).unwrap()).unwrap();
    assert!(
        stats_json["countdown"]["splits"][0]["acceptance_rate"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(fs::read_to_string(dir.path().join("strategy_stats.csv"))
        .unwrap()
        .starts_with("task,split,strategy,"));
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut cfg = small_config(11);
    cfg.countdown.train_size = 150;
    cfg.countdown.val_size = 30;
    cfg.countdown.test_size = 30;
    build_datasets(&cfg, a.path()).unwrap();
    build_datasets(&cfg, b.path()).unwrap();
    let (fa, fb) = (dir_files(a.path()), dir_files(b.path()));
    assert!(fa.len() >= 9 + 3);
    assert_eq!(fa, fb);
    cfg.seed = 12;
    build_datasets(&cfg, c.path()).unwrap();
    let fc = dir_files(c.path());
    let train = |f: &[(String, Vec<u8>)]| {
        f.iter()
            .find(|(n, _)| n.ends_with("countdown/train_pos.jsonl"))
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(train(&fa), train(&fc), "another seed gives other data");
}

#[test]
fn baseline_reports_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(3);
    cfg.countdown.train_size = 10;
    cfg.countdown.val_size = 10;
    cfg.countdown.test_size = 40;
    cfg.baseline.enabled = true;
    let stats = build_datasets(&cfg, dir.path()).unwrap();
    let names: BTreeSet<&str> = stats
        .baseline
        .iter()
        .filter(|r| r.task == "countdown")
        .map(|r| r.strategy.as_str())
        .collect();
    assert_eq!(names.len(), 12 + 2, "{names:?}");
    for r in &stats.baseline {
        assert!(r.success_rate >= 0.0 && r.success_rate <= 1.0 && r.mean_wall_us >= 0.0);
        if r.strategy == "exact" {
            assert_eq!(r.success_rate, 1.0);
        }
    }
    assert!(dir.path().join("baseline.csv").exists());
}

// ---------- config files and the data command ----------

#[test]
fn data_command_reads_toml_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("tiny.toml");
    fs::write(
        &cfg_path,
        "seed = 5\n[countdown]\ntrain_size = 20\nval_size = 5\ntest_size = 5\n[game24]\nenabled = false\n[baseline]\nmax_problems = 5\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = data_command(&cfg_path, Some(&out)).unwrap();
    assert!(summary.contains("countdown train"), "{summary}");
    assert!(out.join("countdown/train_pos.jsonl").exists());
    assert!(!out.join("game24").exists());

    fs::write(&cfg_path, "[countdown]\nnumbrs = 4\n").unwrap();
    let e = format!("{:#}", data_command(&cfg_path, Some(&out)).unwrap_err());
    assert!(e.contains("tiny.toml") && e.contains("numbrs"), "{e}");
    fs::write(&cfg_path, "[search]\nbeam_widths = [0]\n").unwrap();
    let e = format!("{:#}", data_command(&cfg_path, Some(&out)).unwrap_err());
    assert!(
        e.contains("tiny.toml") && e.contains("search.beam_widths"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        data_command(&dir.path().join("missing.toml"), None).unwrap_err()
    );
    assert!(e.contains("missing.toml"), "{e}");
}

#[test]
fn example_config_is_valid() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/countdown_data.toml");
    let cfg = rewind::tasks::countdown::load_config(&p).unwrap();
    assert_eq!(
        cfg,
        CountdownDataConfig::default(),
        "the example spells out the defaults"
    );
}
