//! Arithmetic: addition and subtraction written out column by column.

use gridworld::rand::rngs::StdRng;
use gridworld::rand::{Rng, RngExt, SeedableRng};

use super::{Problem, Task, Trace};
use crate::error::{Error, Result};

/// Addition and subtraction of numbers with up to `difficulty` digits, written with leading
/// zeros to exactly `difficulty` digits so that every prompt of a difficulty has the same
/// shape. The scratchpad works column by column from the right, writing each column as
/// `a+b+c=dcC` (digits, carry in, result digit, carry out; for subtraction `a-b-c=dcC` with a
/// borrow): `347+085=` becomes
///
/// ```text
/// <think>7+5+0=2c1,4+8+1=3c1,3+0+1=4c0</think><answer>432</answer>
/// ```
///
/// Every column has the same width, so the answer is the result digits read backwards
/// (without leading zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct Arithmetic;

fn digits_rev(mut x: u64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let d = x % 10;
            x /= 10;
            d
        })
        .collect()
}

fn n_digits(x: u64) -> usize {
    x.to_string().len()
}

/// The `n` columns of `a op b`: (digit of a, digit of b, carry in, result digit, carry out).
fn columns(a: u64, b: u64, op: char, n: usize) -> Vec<[u64; 5]> {
    work_columns(a, b, op, n, || false).0
}

/// The `n` columns of `a op b`, where a carry (or borrow) into a column is dropped whenever
/// `drop()` says so, and the column worked without it; and whether any was dropped.
fn work_columns(
    a: u64,
    b: u64,
    op: char,
    n: usize,
    mut drop: impl FnMut() -> bool,
) -> (Vec<[u64; 5]>, bool) {
    let n = n.max(n_digits(a)).max(n_digits(b));
    let (da, db) = (digits_rev(a, n), digits_rev(b, n));
    let mut carry = 0;
    let mut dropped = false;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if carry == 1 && drop() {
            carry = 0;
            dropped = true;
        }
        let (d, c) = if op == '+' {
            let s = da[i] + db[i] + carry;
            (s % 10, s / 10)
        } else {
            let s = da[i] as i64 - db[i] as i64 - carry as i64;
            if s < 0 {
                ((s + 10) as u64, 1)
            } else {
                (s as u64, 0)
            }
        };
        out.push([da[i], db[i], carry, d, c]);
        carry = c;
    }
    (out, dropped)
}

/// The answer a scratchpad's columns lead to: the digits read backwards, with the last
/// carry of an addition in front, without leading zeros.
fn read_answer(cols: &[[u64; 5]], op: char) -> String {
    let mut s = String::new();
    if op == '+' && cols.last().map(|c| c[4]) == Some(1) {
        s.push('1');
    }
    for c in cols.iter().rev() {
        s.push(char::from(b'0' + c[3] as u8));
    }
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

fn write_columns(cols: &[[u64; 5]], op: char) -> String {
    cols.iter()
        .map(|[a, b, c, d, k]| format!("{a}{op}{b}{op}{c}={d}c{k}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What marks a check in a scratchpad: `;check ` and then the inverse operation.
pub const CHECK: &str = ";check ";

/// Does a response check its result? (It contains [`CHECK`].)
pub fn has_check(response: &str) -> bool {
    response.contains(CHECK)
}

/// How a draft is written: each carry dropped with probability `drop_rate`, and the result
/// checked or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    pub drop_rate: f64,
    pub check: bool,
}

/// A worked solution as a fallible writer drafts it, with what happened in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub trace: Trace,
    /// A carry (or borrow) was dropped in the first pass.
    pub dropped: bool,
    /// The scratchpad checks its result.
    pub checked: bool,
    /// The check failed and the columns were worked again.
    pub redone: bool,
}

// ANCHOR: draft
/// Drafts a solution of `a op b`: the columns, with each carry dropped with probability
/// `style.drop_rate`; then, if `style.check`, the problem worked again, carefully (no
/// carry dropped) — for a sum the other way round, `b+a`. A second pass that agrees
/// with the first ends in ` ok`; one that does not ends in ` no`, and the answer is the
/// careful result. For `47+85=`, a dropped carry caught by the check reads
///
/// ```text
/// 7+5+0=2c1,4+8+0=2c1;check 85+47:5+7+0=2c1,8+4+1=3c1 no
/// ```
///
/// and the answer is 132.
pub fn draft_columns(problem: &Problem, style: Style, rng: &mut dyn Rng) -> Option<Draft> {
    let (a, op, b, n) = parse_arithmetic(&problem.prompt)?;
    let (cols, dropped) = work_columns(a, b, op, n, || rng.random::<f64>() < style.drop_rate);
    let first = read_answer(&cols, op);
    let mut think = write_columns(&cols, op);
    let mut answer = first.clone();
    let mut redone = false;
    if style.check {
        let (x, y) = if op == '+' { (b, a) } else { (a, b) };
        let careful = columns(x, y, op, n);
        let second = read_answer(&careful, op);
        let agrees = second == first;
        think += &format!("{CHECK}{x:0n$}{op}{y:0n$}:{}", write_columns(&careful, op));
        think += if agrees { " ok" } else { " no" };
        redone = !agrees;
        answer = second;
    }
    Some(Draft {
        trace: Trace { think, answer },
        dropped,
        checked: style.check,
        redone,
    })
}
// ANCHOR_END: draft

/// The most digits an arithmetic operand may have (sums then fit in a `u64`).
pub const MAX_DIGITS: usize = 18;

/// Parses an arithmetic prompt `a+b=` or `a-b=`: the numbers, the operation and the number
/// of columns (the wider operand's width, leading zeros included). Each operand is 1 to
/// [`MAX_DIGITS`] plain digits, and a subtraction never goes below zero: its scratchpad
/// has no way to write a negative result, and the generator never asks for one.
fn read_arithmetic(prompt: &str) -> Result<(u64, char, u64, usize)> {
    let bad = |why: &str| {
        Error::invalid(
            "prompt",
            format!("{prompt:?} is not an arithmetic prompt like 347+085= ({why})"),
        )
    };
    let body = prompt
        .strip_suffix('=')
        .ok_or_else(|| bad("it must end with ="))?;
    let at = body
        .find(['+', '-'])
        .ok_or_else(|| bad("no + or - between the numbers"))?;
    let op = if body.as_bytes()[at] == b'+' {
        '+'
    } else {
        '-'
    };
    let (x, y) = (&body[..at], &body[at + 1..]);
    let number = |s: &str| -> Result<u64> {
        if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(&format!(
                "each number is 1 to {MAX_DIGITS} digits, found {s:?}"
            )));
        }
        s.parse().map_err(|_| bad("unreadable number"))
    };
    let (a, b) = (number(x)?, number(y)?);
    if op == '-' && a < b {
        return Err(bad(
            "the result would be negative, and answers are never negative",
        ));
    }
    Ok((a, op, b, x.len().max(y.len())))
}

fn parse_arithmetic(prompt: &str) -> Option<(u64, char, u64, usize)> {
    read_arithmetic(prompt).ok()
}

fn random_number(rng: &mut dyn Rng, digits: usize) -> u64 {
    let lo = if digits == 1 {
        0
    } else {
        10u64.pow(digits as u32 - 1)
    };
    rng.random_range(lo..10u64.pow(digits as u32))
}

/// A problem of `d`-digit arithmetic: addition, or (if `subtract`) addition or subtraction.
fn arithmetic_problem(seed: u64, d: usize, subtract: bool) -> Problem {
    let mut rng = StdRng::seed_from_u64(seed);
    let op = if subtract && rng.random_bool(0.5) {
        '-'
    } else {
        '+'
    };
    let na = rng.random_range(1..=d);
    let nb = rng.random_range(1..=d);
    let mut a = random_number(&mut rng, na);
    let mut b = random_number(&mut rng, nb);
    if op == '-' && a < b {
        std::mem::swap(&mut a, &mut b);
    }
    let result = if op == '+' { a + b } else { a - b };
    Problem {
        prompt: format!("{a:0d$}{op}{b:0d$}="),
        truth: result.to_string(),
    }
}

impl Task for Arithmetic {
    fn name(&self) -> &'static str {
        "arithmetic"
    }

    fn generate(&self, seed: u64, difficulty: usize) -> Problem {
        arithmetic_problem(seed, difficulty.clamp(1, self.max_difficulty()), true)
    }

    fn verify(&self, problem: &Problem, answer: &str) -> bool {
        let a = answer.trim();
        if a.is_empty() || a.len() > 40 || !a.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        let a = a.trim_start_matches('0');
        let a = if a.is_empty() { "0" } else { a };
        a == problem.truth
    }

    fn solve(&self, problem: &Problem) -> Trace {
        match parse_arithmetic(&problem.prompt) {
            Some((a, op, b, n)) => {
                let cols = columns(a, b, op, n);
                Trace {
                    think: write_columns(&cols, op),
                    answer: read_answer(&cols, op),
                }
            }
            None => Trace {
                think: String::new(),
                answer: problem.truth.clone(),
            },
        }
    }

    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace {
        let Some((a, op, b, n)) = parse_arithmetic(&problem.prompt) else {
            return self.solve(problem);
        };
        let mut cols = columns(a, b, op, n);
        let right = read_answer(&cols, op);
        // One column's result digit is written wrong; the answer is read from the (wrong)
        // scratchpad. A slip in a leading zero column could vanish from the answer, so retry.
        for _ in 0..16 {
            let mut c = cols.clone();
            let k = rng.random_range(0..c.len());
            c[k][3] = (c[k][3] + rng.random_range(1..10)) % 10;
            if read_answer(&c, op) != right {
                cols = c;
                break;
            }
        }
        Trace {
            think: write_columns(&cols, op),
            answer: read_answer(&cols, op),
        }
    }

    fn max_difficulty(&self) -> usize {
        9
    }

    fn draft(&self, problem: &Problem, style: Style, rng: &mut dyn Rng) -> Option<Draft> {
        draft_columns(problem, style, rng)
    }

    /// `a+b=` or `a-b=` with operands of 1 to [`MAX_DIGITS`] digits (leading zeros allowed)
    /// and, for a subtraction, a ≥ b.
    fn check_prompt(&self, prompt: &str) -> Result<Problem> {
        let (a, op, b, _) = read_arithmetic(prompt)?;
        let result = if op == '+' { a + b } else { a - b };
        Ok(Problem {
            prompt: prompt.into(),
            truth: result.to_string(),
        })
    }
}

/// [`Arithmetic`] with addition only: half as many column facts to learn.
#[derive(Clone, Copy, Debug, Default)]
pub struct Addition;

impl Task for Addition {
    fn name(&self) -> &'static str {
        "addition"
    }

    fn generate(&self, seed: u64, difficulty: usize) -> Problem {
        arithmetic_problem(seed, difficulty.clamp(1, self.max_difficulty()), false)
    }

    fn verify(&self, problem: &Problem, answer: &str) -> bool {
        Arithmetic.verify(problem, answer)
    }

    fn solve(&self, problem: &Problem) -> Trace {
        Arithmetic.solve(problem)
    }

    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace {
        Arithmetic.slip(problem, rng)
    }

    fn max_difficulty(&self) -> usize {
        Arithmetic.max_difficulty()
    }

    fn draft(&self, problem: &Problem, style: Style, rng: &mut dyn Rng) -> Option<Draft> {
        draft_columns(problem, style, rng)
    }

    /// As for [`Arithmetic`], additions only.
    fn check_prompt(&self, prompt: &str) -> Result<Problem> {
        let p = Arithmetic.check_prompt(prompt)?;
        if read_arithmetic(prompt)?.1 != '+' {
            return Err(Error::invalid(
                "prompt",
                format!("{prompt:?}: the addition task only adds, as in 347+085="),
            ));
        }
        Ok(p)
    }
}
