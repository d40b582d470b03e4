//! The complete solver for both rule sets.
//!
//! The rules (what a move is and which moves each game allows) live in
//! [`super::rules`]; the value type picks them: `i64` = Countdown,
//! [`Ratio`] = Game of 24. The moves tried for each pair are
//! [`Value::moves`], in Stream-of-Search `combine_nums` order.
//!
//! [`solve`] is a complete depth-first enumeration of move sequences: it
//! returns a solution whenever one exists and `None` only after trying every
//! sequence (for 5+ numbers it remembers multisets already proved dead).
//! Under Game-of-24 rules the generated moves keep every value
//! non-negative, which loses no solution (see [`super::rules`]); the tests
//! check this against a brute-force enumerator that allows negatives.

use std::collections::HashSet;

use super::expr::Expr;
// Re-exported so that `solver::{Move, Ratio, ...}` keeps working for callers
// written before the rules moved to their own module.
use super::rules::remove_pair_into;
pub use super::rules::{Move, Op, Ratio, Value, MAX_MOVES, MAX_NUMBERS};

/// A solved puzzle: the input numbers and the moves that reach the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution<V> {
    /// The input numbers, in input order.
    pub numbers: Vec<V>,
    /// `numbers.len() - 1` moves; the last result is the target.
    pub moves: Vec<Move<V>>,
}

impl<V: Value> Solution<V> {
    /// The expression tree of the solution.
    pub fn expr(&self) -> Expr {
        let numbers: Vec<Ratio> = self.numbers.iter().map(|v| v.to_ratio()).collect();
        let moves: Vec<Move<Ratio>> = self.moves.iter().map(|m| m.to_ratio()).collect();
        Expr::from_moves(&numbers, &moves).expect("a solver solution replays on its own numbers")
    }

    /// The solution in infix with the fewest parentheses and no spaces, e.g.
    /// `(7-8/8)*4`.
    pub fn expression(&self) -> String {
        self.expr().to_minimal()
    }
}

struct SolverState<V> {
    target: V,
    path: Vec<Move<V>>,
    dead: Option<HashSet<Vec<V>>>,
}

impl<V: Value> SolverState<V> {
    fn rec(&mut self, nums: &[V]) -> bool {
        let n = nums.len();
        let mut mv = [Move::default(); MAX_MOVES];
        if n == 2 {
            let k = V::moves(nums[0], nums[1], &mut mv);
            for m in &mv[..k] {
                if m.result == self.target {
                    self.path.push(*m);
                    return true;
                }
            }
            return false;
        }
        let key = if n >= 5 && self.dead.is_some() {
            let mut key = nums.to_vec();
            key.sort_unstable();
            if self.dead.as_ref().is_some_and(|d| d.contains(&key)) {
                return false;
            }
            Some(key)
        } else {
            None
        };
        let mut buf = [V::default(); MAX_NUMBERS];
        for i in 0..n {
            for j in i + 1..n {
                let rest = remove_pair_into(nums, i, j, &mut buf);
                let k = V::moves(nums[i], nums[j], &mut mv);
                for m in &mv[..k] {
                    buf[rest] = m.result;
                    self.path.push(*m);
                    if self.rec(&buf[..rest + 1]) {
                        return true;
                    }
                    self.path.pop();
                }
            }
        }
        if let (Some(key), Some(dead)) = (key, self.dead.as_mut()) {
            dead.insert(key);
        }
        false
    }
}

/// Solves the puzzle exactly under the rule set of `V` (see the module
/// docs): `Some` with a solution whenever one exists, `None` when no
/// sequence of moves reaches `target`.
///
/// # Panics
/// When `numbers` is empty or longer than [`MAX_NUMBERS`].
pub fn solve<V: Value>(numbers: &[V], target: V) -> Option<Solution<V>> {
    assert!(
        !numbers.is_empty() && numbers.len() <= MAX_NUMBERS,
        "solve takes 1..={MAX_NUMBERS} numbers, got {}",
        numbers.len()
    );
    if numbers.len() == 1 {
        return (numbers[0] == target).then(|| Solution {
            numbers: numbers.to_vec(),
            moves: vec![],
        });
    }
    let mut st = SolverState {
        target,
        path: Vec::with_capacity(numbers.len()),
        dead: (numbers.len() >= 5).then(HashSet::new),
    };
    st.rec(numbers).then(|| Solution {
        numbers: numbers.to_vec(),
        moves: st.path,
    })
}

/// Whether the puzzle has a solution (same search as [`solve`]).
pub fn is_solvable<V: Value>(numbers: &[V], target: V) -> bool {
    solve(numbers, target).is_some()
}

/// Countdown rules on integers: [`solve`] with `i64`.
pub fn solve_countdown(numbers: &[i64], target: i64) -> Option<Solution<i64>> {
    solve(numbers, target)
}

/// Game-of-24 rules (exact rationals) on integer inputs: [`solve`] with [`Ratio`].
pub fn solve_rational(numbers: &[i64], target: i64) -> Option<Solution<Ratio>> {
    let nums: Vec<Ratio> = numbers.iter().map(|&n| Ratio::int(n)).collect();
    solve(&nums, Ratio::int(target))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_examples() {
        let s = solve_rational(&[4, 7, 8, 8], 24).unwrap();
        assert_eq!(s.expr().eval().unwrap(), Ratio::int(24));
        let s = solve_countdown(&[25, 5, 5, 33], 27).unwrap();
        assert_eq!(s.moves.len(), 3);
        assert_eq!(s.expr().eval().unwrap(), Ratio::int(27));
        assert!(solve_countdown(&[1, 1, 1, 1], 99).is_none());
        // 3 3 8 8 needs fractions: 8 / (3 - 8/3).
        assert!(solve_rational(&[3, 3, 8, 8], 24).is_some());
        assert!(solve_countdown(&[3, 3, 8, 8], 24).is_none());
        assert_eq!(solve_countdown(&[7], 7).unwrap().expression(), "7");
        let s = solve_countdown(&[2, 3, 5, 7, 11, 13], 997);
        if let Some(s) = s {
            assert_eq!(s.expr().eval().unwrap(), Ratio::int(997));
        }
    }
}
