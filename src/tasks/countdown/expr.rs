//! Arithmetic expression trees: built from move sequences, printed in two
//! styles, parsed back and evaluated exactly.
//!
//! - [`Expr::to_minimal`]: fewest parentheses, no spaces (`(7-8/8)*4`), the
//!   `rewind solve` output.
//! - [`Expr::to_paper`]: every operation parenthesised except the outermost,
//!   with spaces (`33 - ((25 + 5) / 5)`), the `Answer:` line of the path
//!   format (the paper's `parse_game_input` style).
//!
//! [`parse`] reads either style (integers, `+ - * /`, parentheses, spaces;
//! usual precedence, left associative). [`Expr::eval_in`] evaluates under
//! a game's rules ([`super::rules`]) and [`Expr::canonical`] compares
//! trees up to the order of the operands of `+` and `*`.

use std::fmt::Write as _;

use super::rules::{take_operands, Game, Illegal, Move, Op, Ratio};

/// An arithmetic expression over numbers. The derived order (numbers
/// before operations, then by operator and operands) only serves
/// [`Expr::canonical`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expr {
    /// A number (a leaf; input numbers are integers).
    Num(Ratio),
    /// `left op right`.
    Bin(Op, Box<Expr>, Box<Expr>),
}

/// Deepest parenthesis nesting [`parse`] accepts (guards the recursion).
pub const MAX_PARSE_DEPTH: usize = 64;

impl Expr {
    /// Replays `moves` on `numbers` and returns the expression of the last
    /// number left. Each move's operands are taken from the current list by
    /// value (first appearance, [`take_operands`]), the result is appended,
    /// as the paper's post-processing does. `None` when an operand is not
    /// available, a stated result is not `lhs op rhs` (in exact rational
    /// arithmetic: the game's legality is the caller's check), or more than
    /// one number is left.
    pub fn from_moves(numbers: &[Ratio], moves: &[Move<Ratio>]) -> Option<Expr> {
        let mut items: Vec<(Ratio, Expr)> = numbers.iter().map(|&n| (n, Expr::Num(n))).collect();
        for m in moves {
            if m.op.apply(m.lhs, m.rhs) != Some(m.result) {
                return None;
            }
            let ((_, l), (_, r)) = take_operands(&mut items, |(v, _)| *v, m.lhs, m.rhs).ok()?;
            items.push((m.result, Expr::Bin(m.op, Box::new(l), Box::new(r))));
        }
        (items.len() == 1).then(|| items.pop().unwrap().1)
    }

    /// Exact value in unrestricted rational arithmetic (`None` on division by
    /// zero or overflow).
    pub fn eval(&self) -> Option<Ratio> {
        match self {
            Expr::Num(n) => Some(*n),
            Expr::Bin(op, l, r) => op.apply(l.eval()?, r.eval()?),
        }
    }

    /// Value under `game`'s rules ([`Game::apply`] at every operation, so
    /// under Countdown every intermediate must be a non-negative integer,
    /// `a - b` needs `a >= b` and `a / b` an exact division). The error
    /// names the first operation, in evaluation order, that breaks them.
    pub fn eval_in(&self, game: Game) -> Result<Ratio, Illegal> {
        match self {
            Expr::Num(n) => match game {
                Game::Countdown if !(n.is_integer() && *n >= Ratio::int(0)) => {
                    Err(Illegal::NotNatural(*n))
                }
                _ => Ok(*n),
            },
            Expr::Bin(op, l, r) => game.apply(*op, l.eval_in(game)?, r.eval_in(game)?),
        }
    }

    /// [`Expr::eval_in`] under the Countdown rules, as an integer.
    pub fn eval_countdown(&self) -> Result<i64, Illegal> {
        self.eval_in(Game::Countdown)
            .map(|v| v.to_integer().expect("Countdown values are integers"))
    }

    /// The same tree with the operands of every `+` and `*` in a fixed
    /// order, so that two trees are equal up to commutativity iff their
    /// canonical forms are equal (`(5 + 25) * 2` and `2 * (25 + 5)`; not
    /// associativity: `(1 + 2) + 3` and `1 + (2 + 3)` stay different).
    pub fn canonical(&self) -> Expr {
        match self {
            Expr::Num(n) => Expr::Num(*n),
            Expr::Bin(op, l, r) => {
                let (mut l, mut r) = (l.canonical(), r.canonical());
                if matches!(op, Op::Add | Op::Mul) && r < l {
                    std::mem::swap(&mut l, &mut r);
                }
                Expr::Bin(*op, Box::new(l), Box::new(r))
            }
        }
    }

    /// The leaves, left to right.
    pub fn leaves(&self) -> Vec<Ratio> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves(&self, out: &mut Vec<Ratio>) {
        match self {
            Expr::Num(n) => out.push(*n),
            Expr::Bin(_, l, r) => {
                l.collect_leaves(out);
                r.collect_leaves(out);
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Num(_) => 3,
            Expr::Bin(op, _, _) => op.precedence(),
        }
    }

    /// Infix with the fewest parentheses that keep the tree's value and no
    /// spaces, e.g. `(7-8/8)*4`. A right operand of `-` or `/` with the same
    /// precedence keeps its parentheses (`a-(b-c)`, `a/(b*c)`); fractional
    /// leaves are wrapped, `(8/3)`.
    pub fn to_minimal(&self) -> String {
        let mut s = String::new();
        self.write_minimal(&mut s);
        s
    }

    fn write_minimal(&self, s: &mut String) {
        match self {
            Expr::Num(n) if n.is_integer() => {
                let _ = write!(s, "{n}");
            }
            Expr::Num(n) => {
                let _ = write!(s, "({n})");
            }
            Expr::Bin(op, l, r) => {
                let p = op.precedence();
                let lp = l.precedence() < p;
                let rp =
                    r.precedence() < p || (r.precedence() == p && matches!(op, Op::Sub | Op::Div));
                wrap(s, lp, |s| l.write_minimal(s));
                s.push(op.symbol());
                wrap(s, rp, |s| r.write_minimal(s));
            }
        }
    }

    /// The paper's answer style: every operation in parentheses except the
    /// outermost, spaces around operators, e.g. `33 - ((25 + 5) / 5)`.
    pub fn to_paper(&self) -> String {
        let mut s = String::new();
        match self {
            Expr::Bin(op, l, r) => {
                l.write_paper(&mut s);
                let _ = write!(s, " {op} ");
                r.write_paper(&mut s);
            }
            leaf => leaf.write_paper(&mut s),
        }
        s
    }

    fn write_paper(&self, s: &mut String) {
        match self {
            Expr::Num(n) if n.is_integer() => {
                let _ = write!(s, "{n}");
            }
            Expr::Num(n) => {
                let _ = write!(s, "({n})");
            }
            Expr::Bin(op, l, r) => {
                s.push('(');
                l.write_paper(s);
                let _ = write!(s, " {op} ");
                r.write_paper(s);
                s.push(')');
            }
        }
    }
}

fn wrap(s: &mut String, parens: bool, f: impl FnOnce(&mut String)) {
    if parens {
        s.push('(');
    }
    f(s);
    if parens {
        s.push(')');
    }
}

/// Parses an infix expression of non-negative integers, `+ - * /` and
/// parentheses (spaces anywhere between tokens). Never panics; the error
/// names the offending position.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected {:?} at byte {} of {text:?}",
            p.s[p.pos] as char, p.pos
        ));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek_op(&mut self, ops: &[u8]) -> Option<Op> {
        self.skip_ws();
        let c = *self.s.get(self.pos)?;
        if ops.contains(&c) {
            self.pos += 1;
            Op::from_symbol(c as char)
        } else {
            None
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        while let Some(op) = self.peek_op(b"+-") {
            let r = self.term()?;
            e = Expr::Bin(op, Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.factor()?;
        while let Some(op) = self.peek_op(b"*/") {
            let r = self.factor()?;
            e = Expr::Bin(op, Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        match self.s.get(self.pos) {
            Some(b'(') => {
                self.depth += 1;
                if self.depth > MAX_PARSE_DEPTH {
                    return Err(format!("parentheses nested deeper than {MAX_PARSE_DEPTH}"));
                }
                self.pos += 1;
                let e = self.expr()?;
                self.skip_ws();
                if self.s.get(self.pos) != Some(&b')') {
                    return Err(format!("missing ')' at byte {}", self.pos));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).expect("ascii digits");
                let n: i64 = digits
                    .parse()
                    .map_err(|_| format!("number {digits} is out of range"))?;
                Ok(Expr::Num(Ratio::int(n)))
            }
            Some(&c) => Err(format!(
                "expected a number or '(' at byte {}, found {:?}",
                self.pos, c as char
            )),
            None => Err("expression ends where a number or '(' was expected".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> Ratio {
        Ratio::int(n)
    }

    #[test]
    fn minimal_parentheses() {
        let e = parse("(7 - (8 / 8)) * 4").unwrap();
        assert_eq!(e.to_minimal(), "(7-8/8)*4");
        assert!(parse("a").is_err());
        for (src, want) in [
            ("1+(2+3)", "1+2+3"),
            ("1-(2+3)", "1-(2+3)"),
            ("1-(2-3)", "1-(2-3)"),
            ("(1-2)-3", "1-2-3"),
            ("2*(3/4)", "2*3/4"),
            ("2/(3*4)", "2/(3*4)"),
            ("(2+3)*(4-1)", "(2+3)*(4-1)"),
            ("2*3+4", "2*3+4"),
        ] {
            let e = parse(src).unwrap();
            let m = e.to_minimal();
            assert_eq!(m, want, "{src}");
            assert_eq!(parse(&m).unwrap().eval(), e.eval(), "{src}");
        }
    }

    #[test]
    fn paper_style_from_moves() {
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
        let e = Expr::from_moves(&[r(25), r(5), r(5), r(33)], &moves).unwrap();
        assert_eq!(e.to_paper(), "33 - ((25 + 5) / 5)");
        assert_eq!(e.eval_countdown(), Ok(27));
        assert_eq!(parse(&e.to_paper()).unwrap(), e);
        assert!(Expr::from_moves(&[r(25), r(5)], &moves[..1]).is_some());
        assert!(Expr::from_moves(&[r(25), r(4)], &moves[..1]).is_none());
    }

    #[test]
    fn parser_rejects_garbage_without_panicking() {
        for bad in [
            "",
            "(",
            "1+",
            "1 2",
            "((1)",
            "1)",
            "-1",
            "1 % 2",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(parse(&deep).is_err());
        assert_eq!(parse("8/(3-8/3)").unwrap().eval(), Some(r(24)));
        assert!(parse("1-2").unwrap().eval_countdown().is_err());
        assert!(parse("7/2").unwrap().eval_countdown().is_err());
        assert!(parse("2/3*6").unwrap().eval_in(Game::Countdown).is_err());
        assert_eq!(
            parse("2/3*6").unwrap().eval_in(Game::Game24),
            Ok(Ratio::int(4))
        );
    }

    #[test]
    fn canonical_form_allows_commutativity_only() {
        let c = |s: &str| parse(s).unwrap().canonical();
        assert_eq!(c("(5 + 25) * 2"), c("2 * (25 + 5)"));
        assert_ne!(c("25 - 5"), c("5 - 25"));
        assert_ne!(c("8 / 2"), c("2 / 8"));
        assert_ne!(c("(1 + 2) + 3"), c("1 + (2 + 3)"));
        assert_ne!(c("2 / 3 * 6"), c("6 / 3 * 2"));
        assert_eq!(c("6 / 3 * 2"), c("2 * (6 / 3)"));
    }
}
