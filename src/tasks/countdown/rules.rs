//! The rules of Countdown and Game of 24, written once: the value types,
//! the operations, what a move is, which moves are legal in each game and
//! what playing a move does to the list of numbers. Everything else in
//! [`super`] (the solver, the search strategies, expressions, the path text
//! and its verifier) asks this module; nothing here depends on them.
//!
//! # A move
//! A puzzle is a list of numbers and a target. A *move* `a op b = c` takes
//! two of the numbers left, removes them and appends `c` (Stream-of-Search
//! list order: the untouched numbers keep their order, the result goes
//! last). The puzzle is solved when one number is left and it equals the
//! target, so every input number is used exactly once. The operands are a
//! multiset: `5 + 5` needs two 5s left ([`take_operands`]).
//!
//! # Legal operations ([`Game::apply`])
//! - **Countdown** ([`countdown_apply`]): values are non-negative integers;
//!   `a + b`, `a * b`, `a - b` only when `a >= b`, `a / b` only when
//!   `b != 0` divides `a`. Results that overflow `i64` are not legal.
//! - **Game of 24** ([`rational_apply`]): all four operations on exact
//!   rationals (negative values allowed), `a / b` only when `b != 0`.
//!
//! # The moves the solver and the search generate ([`Value::moves`])
//! For a pair `(a, b)` (`a` before `b` in the list) the candidates are, in
//! this order, `a + b`, `a * b`, `larger - smaller`, `larger / smaller`
//! and, under Game-of-24 rules only, `smaller / larger` (when
//! `0 < smaller < larger`); the legal candidates are the moves. So a
//! generated move is always legal by [`Game::apply`]. Under Game-of-24
//! rules the generator never writes `smaller - larger` (a negative value):
//! that loses no solution, because for any expression of value `v` over
//! non-negative numbers there is one of value `|v|` whose intermediates are
//! all non-negative (take absolute values bottom-up: `|x + y|` is
//! `|x| + |y|` or `larger - smaller` of `|x|, |y|`, and so on). The
//! verifier still accepts any legal Game-of-24 step, negative or not.

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

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

/// Which puzzle, and so which rule set (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Game {
    /// Integer rules: non-negative values, `larger - smaller`, exact division only.
    Countdown,
    /// Rational rules, target 24, numbers 1..=13.
    Game24,
}

impl Game {
    /// `countdown` or `game24` (file and id prefix).
    pub fn name(self) -> &'static str {
        match self {
            Game::Countdown => "countdown",
            Game::Game24 => "game24",
        }
    }

    /// `a op b` under this game's rules: the result, or why the operation
    /// is not a legal move. The one definition of legality; the verifier,
    /// answer expressions (`Expr::eval_in`) and, through [`Value::apply`],
    /// the solver and the search all use it.
    pub fn apply(self, op: Op, a: Ratio, b: Ratio) -> Result<Ratio, Illegal> {
        match self {
            Game::Countdown => countdown_apply(op, natural(a)?, natural(b)?).map(Ratio::int),
            Game::Game24 => rational_apply(op, a, b),
        }
    }
}

impl fmt::Display for Game {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why `a op b` is not a legal move. Small and `Copy`, so that the solver's
/// inner loop can ask [`countdown_apply`] without allocating; the message is
/// only formatted when shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Illegal {
    /// A Countdown value that is negative or a fraction.
    #[error("{0} is not a non-negative integer (Countdown values are non-negative integers)")]
    NotNatural(Ratio),
    /// Countdown `a - b` with `a < b`.
    #[error("{a} - {b} is negative (Countdown subtracts the smaller number from the larger)")]
    NegativeDifference { a: Ratio, b: Ratio },
    /// Countdown `a / b` where `b` does not divide `a`.
    #[error(
        "{a} / {b} is not an exact division (Countdown divides only when the result is an integer)"
    )]
    InexactDivision { a: Ratio, b: Ratio },
    /// `a / 0`.
    #[error("{a} / 0 divides by zero")]
    DivisionByZero { a: Ratio },
    /// The result does not fit in `i64` (numerator or denominator).
    #[error("{a} {op} {b} overflows")]
    Overflow { a: Ratio, op: Op, b: Ratio },
}

/// `a` as a Countdown value (a non-negative integer).
fn natural(a: Ratio) -> Result<i64, Illegal> {
    match a.to_integer() {
        Some(v) if v >= 0 => Ok(v),
        _ => Err(Illegal::NotNatural(a)),
    }
}

/// `a op b` under the Countdown rules (module docs).
#[inline]
pub fn countdown_apply(op: Op, a: i64, b: i64) -> Result<i64, Illegal> {
    let (ra, rb) = (Ratio::int(a), Ratio::int(b));
    if a < 0 {
        return Err(Illegal::NotNatural(ra));
    }
    if b < 0 {
        return Err(Illegal::NotNatural(rb));
    }
    let overflow = Illegal::Overflow { a: ra, op, b: rb };
    match op {
        Op::Add => a.checked_add(b).ok_or(overflow),
        Op::Mul => a.checked_mul(b).ok_or(overflow),
        Op::Sub if a >= b => Ok(a - b),
        Op::Sub => Err(Illegal::NegativeDifference { a: ra, b: rb }),
        Op::Div if b == 0 => Err(Illegal::DivisionByZero { a: ra }),
        Op::Div if a % b == 0 => Ok(a / b),
        Op::Div => Err(Illegal::InexactDivision { a: ra, b: rb }),
    }
}

/// `a op b` under the Game-of-24 rules: exact rational arithmetic.
#[inline]
pub fn rational_apply(op: Op, a: Ratio, b: Ratio) -> Result<Ratio, Illegal> {
    if op == Op::Div && b.is_zero() {
        return Err(Illegal::DivisionByZero { a });
    }
    op.apply(a, b).ok_or(Illegal::Overflow { a, op, b })
}

/// A number type together with the rule set of the puzzle it plays
/// (`i64` = Countdown, [`Ratio`] = Game of 24), so that the solver and the
/// search are monomorphised per game.
pub trait Value:
    Copy + Default + Eq + Hash + Ord + fmt::Display + fmt::Debug + Send + Sync + 'static
{
    /// The game whose rules this type plays.
    const GAME: Game;
    /// Short name of the rule set, `countdown` or `game24`.
    const RULES: &'static str;
    /// The integer `n` as a value of this type.
    fn from_int(n: i64) -> Self;
    /// Nearest `f64` (used by the search heuristics).
    fn to_f64(self) -> f64;
    /// The exact value as a [`Ratio`].
    fn to_ratio(self) -> Ratio;
    /// `a op b` under [`Self::GAME`]'s rules; agrees with [`Game::apply`]
    /// (a test checks it), without the conversion to [`Ratio`].
    fn apply(op: Op, a: Self, b: Self) -> Result<Self, Illegal>;

    /// Writes the moves generated for the pair `(a, b)` (`a` before `b` in
    /// the list) into `out`, in the fixed order of the module docs, and
    /// returns how many there are. Each is legal by [`Self::apply`].
    #[inline]
    fn moves(a: Self, b: Self, out: &mut [Move<Self>; MAX_MOVES]) -> usize {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut k = 0;
        let mut push = |lhs: Self, op: Op, rhs: Self| {
            if let Ok(result) = Self::apply(op, lhs, rhs) {
                out[k] = Move {
                    lhs,
                    op,
                    rhs,
                    result,
                };
                k += 1;
            }
        };
        push(a, Op::Add, b);
        push(a, Op::Mul, b);
        push(hi, Op::Sub, lo);
        push(hi, Op::Div, lo);
        // `0 / x` would only repeat `0 * x`, and `x / x` the move above.
        if Self::GAME == Game::Game24 && lo != hi && lo != Self::from_int(0) {
            push(lo, Op::Div, hi);
        }
        k
    }
}

impl Value for i64 {
    const GAME: Game = Game::Countdown;
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
    fn apply(op: Op, a: i64, b: i64) -> Result<i64, Illegal> {
        countdown_apply(op, a, b)
    }
}

impl Value for Ratio {
    const GAME: Game = Game::Game24;
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
    fn apply(op: Op, a: Ratio, b: Ratio) -> Result<Ratio, Illegal> {
        rational_apply(op, a, b)
    }
}

/// Takes a move's operands out of `left`: the first item whose value is
/// `lhs`, then the first other item whose value is `rhs` (so `5 + 5` needs
/// two 5s), and returns them in that order; the caller appends the result.
/// This is how the path text writes and checks its `left:` lists (and how
/// `Expr::from_moves` builds its tree). `Err` holds the
/// missing operand and leaves `left` unchanged.
pub fn take_operands<T, V: PartialEq + Copy>(
    left: &mut Vec<T>,
    value: impl Fn(&T) -> V,
    lhs: V,
    rhs: V,
) -> Result<(T, T), V> {
    let i = left.iter().position(|t| value(t) == lhs).ok_or(lhs)?;
    let j = left
        .iter()
        .enumerate()
        .position(|(k, t)| k != i && value(t) == rhs)
        .ok_or(rhs)?;
    // Remove the later index first so the earlier one stays valid.
    Ok(if i > j {
        let a = left.remove(i);
        (a, left.remove(j))
    } else {
        let b = left.remove(j);
        (left.remove(i), b)
    })
}

/// The same step by position, for the solver and the search: copies
/// `nums` without the entries `i` and `j` into `out` (order kept) and
/// returns how many were copied; the caller writes the result after them.
/// As multisets the two agree: removing equal values at different
/// positions leaves the same numbers.
#[inline]
pub fn remove_pair_into<V: Copy>(
    nums: &[V],
    i: usize,
    j: usize,
    out: &mut [V; MAX_NUMBERS],
) -> usize {
    let mut k = 0;
    for (idx, &v) in nums.iter().enumerate() {
        if idx != i && idx != j {
            out[k] = v;
            k += 1;
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> Ratio {
        Ratio::int(n)
    }

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
        let k = i64::moves(i64::MAX - 1, 2, &mut out);
        assert_eq!(k, 2, "overflowing + and * are not moves");
        assert_eq!((out[0].op, out[1].op), (Op::Sub, Op::Div));
    }

    #[test]
    fn game24_moves_include_smaller_over_larger() {
        let mut out = [Move::default(); MAX_MOVES];
        let k = Ratio::moves(r(8), r(3), &mut out);
        let s: Vec<String> = out[..k].iter().map(|m| m.to_string()).collect();
        assert_eq!(
            s,
            [
                "8 + 3 = 11",
                "8 * 3 = 24",
                "8 - 3 = 5",
                "8 / 3 = 8/3",
                "3 / 8 = 3/8"
            ]
        );
        assert_eq!(Ratio::moves(r(0), r(3), &mut out), 3);
        assert_eq!(Ratio::moves(r(3), r(3), &mut out), 4);
    }

    /// The generated moves are exactly the legal moves of the candidate
    /// shapes, and `Value::apply` agrees with `Game::apply`.
    #[test]
    fn generated_moves_are_the_legal_ones() {
        let vals: Vec<Ratio> = [0, 1, 2, 3, 6, 7, 12]
            .into_iter()
            .map(r)
            .chain([Ratio::new(1, 3).unwrap(), Ratio::new(8, 3).unwrap()])
            .collect();
        let mut out = [Move::default(); MAX_MOVES];
        for &a in &vals {
            for &b in &vals {
                for op in Op::ALL {
                    let g24 = Game::Game24.apply(op, a, b);
                    assert_eq!(Ratio::apply(op, a, b), g24);
                    let cd = Game::Countdown.apply(op, a, b);
                    if let (Some(x), Some(y)) = (a.to_integer(), b.to_integer()) {
                        assert_eq!(i64::apply(op, x, y).map(Ratio::int), cd);
                    } else {
                        assert!(matches!(cd, Err(Illegal::NotNatural(_))));
                    }
                    if let Ok(v) = cd {
                        assert_eq!(Ok(v), g24, "Countdown moves are Game-of-24 moves");
                    }
                }
                let k = Ratio::moves(a, b, &mut out);
                for m in &out[..k] {
                    assert_eq!(Game::Game24.apply(m.op, m.lhs, m.rhs), Ok(m.result));
                    assert!(m.result >= r(0));
                }
                if let (Some(x), Some(y)) = (a.to_integer(), b.to_integer()) {
                    let mut iout = [Move::default(); MAX_MOVES];
                    let k = i64::moves(x, y, &mut iout);
                    let (lo, hi) = (x.min(y), x.max(y));
                    let legal: Vec<(i64, Op, i64)> = [
                        (x, Op::Add, y),
                        (x, Op::Mul, y),
                        (hi, Op::Sub, lo),
                        (hi, Op::Div, lo),
                    ]
                    .into_iter()
                    .filter(|&(p, op, q)| countdown_apply(op, p, q).is_ok())
                    .collect();
                    let got: Vec<(i64, Op, i64)> =
                        iout[..k].iter().map(|m| (m.lhs, m.op, m.rhs)).collect();
                    assert_eq!(got, legal);
                }
            }
        }
        assert!(Game::Countdown.apply(Op::Sub, r(3), r(5)).is_err());
        assert!(Game::Game24.apply(Op::Sub, r(3), r(5)).is_ok());
        assert_eq!(
            Game::Countdown
                .apply(Op::Div, r(7), r(2))
                .unwrap_err()
                .to_string(),
            "7 / 2 is not an exact division (Countdown divides only when the result is an integer)"
        );
    }

    #[test]
    fn operands_are_a_multiset() {
        let take = |left: &[i64], a: i64, b: i64| {
            let mut v = left.to_vec();
            take_operands(&mut v, |x| *x, a, b).map(|pair| (pair, v))
        };
        assert_eq!(take(&[5, 3, 5], 5, 5), Ok(((5, 5), vec![3])));
        assert_eq!(take(&[7, 5, 3], 3, 7), Ok(((3, 7), vec![5])));
        assert_eq!(take(&[5, 3], 5, 5), Err(5));
        assert_eq!(take(&[5, 3], 3, 4), Err(4));
        let mut out = [0; MAX_NUMBERS];
        let k = remove_pair_into(&[1, 2, 3, 4], 0, 2, &mut out);
        assert_eq!(&out[..k], &[2, 4]);
    }
}
