//! Exact arithmetic and the complete solver for both rule sets.
//!
//! A puzzle is a multiset of numbers and a target. One *move* takes two of
//! the remaining numbers, removes them and appends the result of one
//! operation (Stream-of-Search list order: the untouched numbers keep their
//! order, the result goes last). The puzzle is solved when one number is
//! left and it equals the target, so every input number is used exactly once.
//!
//! The rule set is carried by the value type ([`Value`]):
//! - `i64` = **Countdown** (Stream-of-Search `combine_nums`): for the pair
//!   `(a, b)` the moves are, in this order, `a + b`, `a * b`,
//!   `larger - smaller` and, when the smaller number is non-zero and divides
//!   the larger, `larger / smaller`. All values stay non-negative integers.
//!   Additions and multiplications that overflow `i64` are not moves (the
//!   dataset config forbids number ranges where that could happen).
//! - [`Ratio`] = **Game of 24**: exact non-negative rationals; the moves are
//!   `a + b`, `a * b`, `larger - smaller`, `larger / smaller` (smaller != 0)
//!   and `smaller / larger` (0 < smaller < larger). Negative intermediates
//!   are not needed: for any expression of value `v` over non-negative
//!   numbers there is one of value `|v|` whose intermediates are all
//!   non-negative (take absolute values bottom-up: `|x + y|` is `|x| + |y|`
//!   or `larger - smaller` of `|x|, |y|`, and so on), so the solvable set is
//!   the same as with unrestricted `+ - * /` (the tests check this against a
//!   brute-force enumerator that does allow negatives).
//!
//! [`solve`] is a complete depth-first enumeration of move sequences: it
//! returns a solution whenever one exists and `None` only after trying every
//! sequence (for 5+ numbers it remembers multisets already proved dead).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::expr::Expr;

/// Largest number count any solver, search or path in this module handles.
pub const MAX_NUMBERS: usize = 8;
/// Most moves one pair of numbers can produce under either rule set.
pub const MAX_MOVES: usize = 5;

/// One of the four arithmetic operations.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Op {
    /// `+`
    #[default]
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl Op {
    /// All four operations.
    pub const ALL: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

    /// The character written for this operation.
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }

    /// The operation written as `c`, if any.
    pub fn from_symbol(c: char) -> Option<Op> {
        match c {
            '+' => Some(Op::Add),
            '-' => Some(Op::Sub),
            '*' => Some(Op::Mul),
            '/' => Some(Op::Div),
            _ => None,
        }
    }

    /// Binding strength: 1 for `+ -`, 2 for `* /`.
    pub fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }

    /// `a op b` in unrestricted exact rational arithmetic (`None` on division
    /// by zero or `i64` overflow).
    pub fn apply(self, a: Ratio, b: Ratio) -> Option<Ratio> {
        match self {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
            Op::Mul => a.checked_mul(b),
            Op::Div => a.checked_div(b),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.symbol())
    }
}

fn gcd_u64(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// An exact rational number `num/den` in lowest terms with `den > 0`.
///
/// Arithmetic is checked: every operation returns `None` instead of
/// overflowing `i64` (never the case for Game-of-24 sized inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i64,
    den: i64,
}

impl Default for Ratio {
    fn default() -> Self {
        Ratio::int(0)
    }
}

impl Ratio {
    /// The integer `n`.
    pub const fn int(n: i64) -> Ratio {
        Ratio { num: n, den: 1 }
    }

    /// `num/den` in lowest terms; `None` when `den == 0` or on overflow.
    pub fn new(num: i64, den: i64) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        let (mut num, mut den) = (num, den);
        if den < 0 {
            num = num.checked_neg()?;
            den = den.checked_neg()?;
        }
        let g = gcd_u64(num.unsigned_abs(), den as u64) as i64;
        if g > 1 {
            num /= g;
            den /= g;
        }
        Some(Ratio { num, den })
    }

    /// Numerator (carries the sign).
    pub fn numer(self) -> i64 {
        self.num
    }

    /// Denominator (always positive).
    pub fn denom(self) -> i64 {
        self.den
    }

    /// Whether the value is an integer.
    pub fn is_integer(self) -> bool {
        self.den == 1
    }

    /// The value as an integer, if it is one.
    pub fn to_integer(self) -> Option<i64> {
        (self.den == 1).then_some(self.num)
    }

    /// Nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    /// `self + o`.
    pub fn checked_add(self, o: Ratio) -> Option<Ratio> {
        if self.den == 1 && o.den == 1 {
            return Some(Ratio::int(self.num.checked_add(o.num)?));
        }
        let g = gcd_u64(self.den as u64, o.den as u64) as i64;
        let (bd, dd) = (self.den / g, o.den / g);
        let num = self
            .num
            .checked_mul(dd)?
            .checked_add(o.num.checked_mul(bd)?)?;
        Ratio::new(num, self.den.checked_mul(dd)?)
    }

    /// `self - o`.
    pub fn checked_sub(self, o: Ratio) -> Option<Ratio> {
        self.checked_add(Ratio {
            num: o.num.checked_neg()?,
            den: o.den,
        })
    }

    /// `self * o`.
    pub fn checked_mul(self, o: Ratio) -> Option<Ratio> {
        if self.den == 1 && o.den == 1 {
            return Some(Ratio::int(self.num.checked_mul(o.num)?));
        }
        // Cross-reduce first to keep the products small.
        let g1 = gcd_u64(self.num.unsigned_abs(), o.den as u64).max(1) as i64;
        let g2 = gcd_u64(o.num.unsigned_abs(), self.den as u64).max(1) as i64;
        let num = (self.num / g1).checked_mul(o.num / g2)?;
        let den = (self.den / g2).checked_mul(o.den / g1)?;
        Ratio::new(num, den)
    }

    /// `self / o`; `None` when `o == 0`.
    pub fn checked_div(self, o: Ratio) -> Option<Ratio> {
        if o.num == 0 {
            return None;
        }
        let (num, den) = if o.num < 0 {
            (o.den.checked_neg()?, o.num.checked_neg()?)
        } else {
            (o.den, o.num)
        };
        self.checked_mul(Ratio { num, den })
    }

    /// `|self|`.
    pub fn abs(self) -> Option<Ratio> {
        Some(Ratio {
            num: self.num.checked_abs()?,
            den: self.den,
        })
    }
}

impl Ord for Ratio {
    fn cmp(&self, o: &Ratio) -> Ordering {
        if self.den == o.den {
            return self.num.cmp(&o.num);
        }
        (self.num as i128 * o.den as i128).cmp(&(o.num as i128 * self.den as i128))
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, o: &Ratio) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl From<i64> for Ratio {
    fn from(n: i64) -> Ratio {
        Ratio::int(n)
    }
}

impl fmt::Display for Ratio {
    /// `p` for integers, `p/q` otherwise (no spaces), e.g. `8/3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl FromStr for Ratio {
    type Err = String;

    /// Reads `p`, `-p` or `p/q` (digits only, `q > 0`, no spaces).
    fn from_str(s: &str) -> Result<Ratio, String> {
        fn int(s: &str, whole: &str) -> Result<i64, String> {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{whole:?} is not a number"));
            }
            s.parse::<i64>()
                .map_err(|_| format!("{whole:?} is out of range"))
        }
        match s.split_once('/') {
            None => Ok(Ratio::int(int(s, s)?)),
            Some((p, q)) => {
                if q.starts_with('-') {
                    return Err(format!("{s:?} has a negative denominator"));
                }
                let (p, q) = (int(p, s)?, int(q, s)?);
                if q == 0 {
                    return Err(format!("{s:?} divides by zero"));
                }
                Ratio::new(p, q).ok_or_else(|| format!("{s:?} is out of range"))
            }
        }
    }
}

/// One move: `lhs op rhs = result`, with the operands in written order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Move<V> {
    /// Left operand as written.
    pub lhs: V,
    /// The operation.
    pub op: Op,
    /// Right operand as written.
    pub rhs: V,
    /// The value the two operands are replaced by.
    pub result: V,
}

impl<V: Value> Move<V> {
    /// The same move with exact rational values.
    pub fn to_ratio(self) -> Move<Ratio> {
        Move {
            lhs: self.lhs.to_ratio(),
            op: self.op,
            rhs: self.rhs.to_ratio(),
            result: self.result.to_ratio(),
        }
    }
}

impl<V: fmt::Display> fmt::Display for Move<V> {
    /// `a op b = c` with spaces, as in the path format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} = {}", self.lhs, self.op, self.rhs, self.result)
    }
}

/// A number type together with the rule set of the puzzle it plays
/// (`i64` = Countdown, [`Ratio`] = Game of 24). See the module docs.
pub trait Value:
    Copy + Default + Eq + Hash + Ord + fmt::Display + fmt::Debug + Send + Sync + 'static
{
    /// Short name of the rule set, `countdown` or `game24`.
    const RULES: &'static str;
    /// The integer `n` as a value of this type.
    fn from_int(n: i64) -> Self;
    /// Nearest `f64` (used by the search heuristics).
    fn to_f64(self) -> f64;
    /// The exact value as a [`Ratio`].
    fn to_ratio(self) -> Ratio;
    /// Writes the moves allowed for the pair `(a, b)` (`a` before `b` in
    /// the list) into `out`, in the fixed order of the module docs, and
    /// returns how many there are.
    fn moves(a: Self, b: Self, out: &mut [Move<Self>; MAX_MOVES]) -> usize;
}

impl Value for i64 {
    const RULES: &'static str = "countdown";

    fn from_int(n: i64) -> i64 {
        n
    }

    fn to_f64(self) -> f64 {
        self as f64
    }

    fn to_ratio(self) -> Ratio {
        Ratio::int(self)
    }

    #[inline]
    fn moves(a: i64, b: i64, out: &mut [Move<i64>; MAX_MOVES]) -> usize {
        let mut k = 0;
        if let Some(result) = a.checked_add(b) {
            out[k] = Move {
                lhs: a,
                op: Op::Add,
                rhs: b,
                result,
            };
            k += 1;
        }
        if let Some(result) = a.checked_mul(b) {
            out[k] = Move {
                lhs: a,
                op: Op::Mul,
                rhs: b,
                result,
            };
            k += 1;
        }
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if let Some(result) = hi.checked_sub(lo) {
            out[k] = Move {
                lhs: hi,
                op: Op::Sub,
                rhs: lo,
                result,
            };
            k += 1;
        }
        if lo != 0 && hi % lo == 0 {
            out[k] = Move {
                lhs: hi,
                op: Op::Div,
                rhs: lo,
                result: hi / lo,
            };
            k += 1;
        }
        k
    }
}

impl Value for Ratio {
    const RULES: &'static str = "game24";

    fn from_int(n: i64) -> Ratio {
        Ratio::int(n)
    }

    fn to_f64(self) -> f64 {
        Ratio::to_f64(self)
    }

    fn to_ratio(self) -> Ratio {
        self
    }

    #[inline]
    fn moves(a: Ratio, b: Ratio, out: &mut [Move<Ratio>; MAX_MOVES]) -> usize {
        let mut k = 0;
        if let Some(result) = a.checked_add(b) {
            out[k] = Move {
                lhs: a,
                op: Op::Add,
                rhs: b,
                result,
            };
            k += 1;
        }
        if let Some(result) = a.checked_mul(b) {
            out[k] = Move {
                lhs: a,
                op: Op::Mul,
                rhs: b,
                result,
            };
            k += 1;
        }
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if let Some(result) = hi.checked_sub(lo) {
            out[k] = Move {
                lhs: hi,
                op: Op::Sub,
                rhs: lo,
                result,
            };
            k += 1;
        }
        if !lo.is_zero() {
            if let Some(result) = hi.checked_div(lo) {
                out[k] = Move {
                    lhs: hi,
                    op: Op::Div,
                    rhs: lo,
                    result,
                };
                k += 1;
            }
            if lo != hi {
                if let Some(result) = lo.checked_div(hi) {
                    out[k] = Move {
                        lhs: lo,
                        op: Op::Div,
                        rhs: hi,
                        result,
                    };
                    k += 1;
                }
            }
        }
        k
    }
}

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

/// Moves of the puzzle in list order: all pairs `i < j`, each with its
/// moves, the remaining numbers keep their order and the result goes last.
#[inline]
fn reduce_into<V: Copy>(nums: &[V], i: usize, j: usize, out: &mut [V; MAX_NUMBERS]) -> usize {
    let mut k = 0;
    for (idx, &v) in nums.iter().enumerate() {
        if idx != i && idx != j {
            out[k] = v;
            k += 1;
        }
    }
    k
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
                let rest = reduce_into(nums, i, j, &mut buf);
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
    fn ratio_normalises_and_orders() {
        let a = Ratio::new(6, -4).unwrap();
        assert_eq!((a.numer(), a.denom()), (-3, 2));
        assert_eq!(a.to_string(), "-3/2");
        assert_eq!("8/3".parse::<Ratio>().unwrap(), Ratio::new(16, 6).unwrap());
        assert!("8/0".parse::<Ratio>().is_err());
        assert!("x".parse::<Ratio>().is_err());
        assert!("1/-2".parse::<Ratio>().is_err());
        let third = Ratio::new(1, 3).unwrap();
        assert_eq!(
            third
                .checked_add(third)
                .unwrap()
                .checked_add(third)
                .unwrap(),
            Ratio::int(1)
        );
        assert!(third < Ratio::new(1, 2).unwrap());
        assert_eq!(
            Ratio::int(8)
                .checked_div(Ratio::int(3))
                .unwrap()
                .to_string(),
            "8/3"
        );
        assert!(Ratio::int(1).checked_div(Ratio::int(0)).is_none());
        assert!(Ratio::int(i64::MAX).checked_add(Ratio::int(1)).is_none());
    }

    #[test]
    fn countdown_moves_follow_sos_order() {
        let mut out = [Move::default(); MAX_MOVES];
        let k = i64::moves(5, 25, &mut out);
        let s: Vec<String> = out[..k].iter().map(|m| m.to_string()).collect();
        assert_eq!(
            s,
            ["5 + 25 = 30", "5 * 25 = 125", "25 - 5 = 20", "25 / 5 = 5"]
        );
        let k = i64::moves(7, 3, &mut out);
        assert_eq!(k, 3, "7/3 is not exact");
        let k = i64::moves(0, 3, &mut out);
        assert_eq!(k, 3, "no division by zero");
    }

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
