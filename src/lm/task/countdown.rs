//! Countdown: reach a target from given numbers with + - * / and parentheses.

use gridworld::rand::rngs::StdRng;
use gridworld::rand::{Rng, RngExt, SeedableRng};

use super::{Problem, Task, Trace};
use crate::error::{Error, Result};
use crate::rollout::derive_seed;

/// Countdown: reach the target from the given numbers with `+ - * /` and parentheses, each
/// number used at most once. `difficulty` is how many numbers (2 to 6). The prompt lists the
/// numbers and the target, `3,7,25,50 to 71=`; the scratchpad is one operation per step,
/// `25+50=75,75-7=68,68+3=71`, and the answer an expression, `((25+50)-7)+3`. The target is
/// never one of the numbers (copying it would be a full answer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Countdown;

/// The most numbers a Countdown prompt gives.
pub const COUNTDOWN_MAX_NUMBERS: usize = 6;

/// The numbers and target of a Countdown prompt `n1,n2,… to t=`: 2 to
/// [`COUNTDOWN_MAX_NUMBERS`] numbers and a target, each in plain digits and at most
/// [`MAX_NUMBER`]. `None` for anything else: such a prompt is outside the task.
pub fn parse_countdown(prompt: &str) -> Option<(Vec<i64>, i64)> {
    let body = prompt.strip_suffix('=')?;
    let (nums, target) = body.split_once(" to ")?;
    let nums = nums
        .split(',')
        .map(read_number)
        .collect::<Option<Vec<i64>>>()?;
    if !(2..=COUNTDOWN_MAX_NUMBERS).contains(&nums.len()) {
        return None;
    }
    Some((nums, read_number(target)?))
}

/// A number in plain digits (leading zeros allowed), at most [`MAX_NUMBER`].
fn read_number(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > MAX_NUMBER_DIGITS || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n <= MAX_NUMBER)
}

/// Numbers, and a target reached by combining them in drawing order with random operations.
fn countdown_numbers(seed: u64, difficulty: usize) -> (Vec<i64>, i64) {
    let n = difficulty.clamp(2, 6);
    let mut rng = StdRng::seed_from_u64(seed);
    let nums: Vec<i64> = (0..n)
        .map(|_| {
            if rng.random_bool(0.2) {
                25 * rng.random_range(1..=4)
            } else {
                rng.random_range(1..=12)
            }
        })
        .collect();
    let mut cur = nums[0];
    for &x in &nums[1..] {
        let mut ops = vec!['+'];
        if cur > x {
            ops.push('-');
        }
        if cur * x <= 1000 && x > 1 {
            ops.push('*');
        }
        if x > 1 && cur % x == 0 {
            ops.push('/');
        }
        let op = ops[rng.random_range(0..ops.len())];
        let z = match op {
            '+' => cur + x,
            '-' => cur - x,
            '*' => cur * x,
            _ => cur / x,
        };
        cur = z;
    }
    (nums, cur)
}

impl Task for Countdown {
    fn name(&self) -> &'static str {
        "countdown"
    }

    fn generate(&self, seed: u64, difficulty: usize) -> Problem {
        // A target equal to one of the numbers is reached by copying it: draw again, from
        // seeds derived from this one (2–7 % of first draws, depending on the difficulty).
        let (mut nums, mut target) = countdown_numbers(seed, difficulty);
        let mut k = 0;
        while nums.contains(&target) {
            k += 1;
            (nums, target) = countdown_numbers(derive_seed(seed, k), difficulty);
        }
        nums.sort_unstable();
        let list = nums
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Problem {
            prompt: format!("{list} to {target}="),
            truth: target.to_string(),
        }
    }

    fn verify(&self, problem: &Problem, answer: &str) -> bool {
        let Some((nums, target)) = parse_countdown(&problem.prompt) else {
            return false;
        };
        match evaluate(answer) {
            Some((value, used)) => {
                value == Rational::from(target) && uses_at_most_once(&used, &nums)
            }
            None => false,
        }
    }

    fn solve(&self, problem: &Problem) -> Trace {
        // Re-derive the steps: search the seed-free way, by trying every combination in order.
        let Some((nums, target)) = parse_countdown(&problem.prompt) else {
            return Trace {
                think: String::new(),
                answer: problem.truth.clone(),
            };
        };
        match search(&nums, target) {
            Some((steps, expr)) => Trace {
                think: steps,
                answer: expr,
            },
            None => Trace {
                think: String::new(),
                answer: problem.truth.clone(),
            },
        }
    }

    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace {
        let mut t = self.solve(problem);
        // The last step's result is miscounted, and the answer claims the wrong number.
        let off = rng.random_range(1..=3);
        if let Some(pos) = t.think.rfind('=') {
            if let Ok(z) = t.think[pos + 1..].parse::<i64>() {
                t.think = format!("{}={}", &t.think[..pos], z.saturating_add(off));
            }
        }
        t.answer = format!("{}+{}", t.answer, off);
        t
    }

    fn max_difficulty(&self) -> usize {
        COUNTDOWN_MAX_NUMBERS
    }

    /// `n1,n2,… to t=` as [`parse_countdown`] reads it: 2 to 6 numbers and a target, each
    /// at most [`MAX_NUMBER`]. The truth is the target (a prompt without a solution is
    /// still a prompt: no answer earns the accuracy reward).
    fn check_prompt(&self, prompt: &str) -> Result<Problem> {
        let (_, target) = parse_countdown(prompt).ok_or_else(|| {
            Error::invalid(
                "prompt",
                format!(
                    "{prompt:?} is not a countdown prompt like 3,7,25,50 to 71= \
                     (2 to {COUNTDOWN_MAX_NUMBERS} numbers and a target, each 0 to {MAX_NUMBER})"
                ),
            )
        })?;
        Ok(Problem {
            prompt: prompt.into(),
            truth: target.to_string(),
        })
    }
}

/// Depth-first search for a left-to-right chain of operations reaching `target`, using
/// every number: (the steps as text, the expression). Its cost is bounded by the prompt's
/// limits (at most 6 numbers: 6!·4⁵ chains), and every step is checked arithmetic.
fn search(nums: &[i64], target: i64) -> Option<(String, String)> {
    /// One step: (left operand, operation, right operand, result).
    type Step = (i64, char, i64, i64);
    fn go(cur: i64, rest: &[i64], target: i64, steps: &mut Vec<Step>) -> bool {
        if rest.is_empty() {
            return cur == target;
        }
        for i in 0..rest.len() {
            let x = rest[i];
            // An equal number tried earlier led to the same subtree, and it failed.
            if rest[..i].contains(&x) {
                continue;
            }
            let mut others = rest.to_vec();
            others.remove(i);
            let cands = [
                ('+', cur.checked_add(x)),
                ('-', if cur > x { cur.checked_sub(x) } else { None }),
                (
                    '*',
                    if x > 1 { cur.checked_mul(x) } else { None }.filter(|&z| z <= 100_000),
                ),
                ('/', (x > 1 && cur % x == 0).then(|| cur / x)),
            ];
            for (op, z) in cands {
                let Some(z) = z else { continue };
                steps.push((cur, op, x, z));
                if go(z, &others, target, steps) {
                    return true;
                }
                steps.pop();
            }
        }
        false
    }
    if nums.is_empty() || nums.len() > COUNTDOWN_MAX_NUMBERS {
        return None;
    }
    for i in 0..nums.len() {
        if nums[..i].contains(&nums[i]) {
            continue;
        }
        let mut rest = nums.to_vec();
        let first = rest.remove(i);
        let mut steps = Vec::new();
        if go(first, &rest, target, &mut steps) {
            let text = steps
                .iter()
                .map(|(a, op, x, z)| format!("{a}{op}{x}={z}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut expr = first.to_string();
            for (k, (_, op, x, _)) in steps.iter().enumerate() {
                expr = if k == 0 {
                    format!("{expr}{op}{x}")
                } else {
                    format!("({expr}){op}{x}")
                };
            }
            return Some((text, expr));
        }
    }
    None
}

fn uses_at_most_once(used: &[i64], available: &[i64]) -> bool {
    let mut pool = available.to_vec();
    for u in used {
        match pool.iter().position(|x| x == u) {
            Some(i) => {
                pool.swap_remove(i);
            }
            None => return false,
        }
    }
    true
}

// ANCHOR: rational
/// An exact fraction p/q with q > 0, in lowest terms; every operation is checked, so an
/// overflow is "not a valid answer", never a wrong one or a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rational {
    pub num: i128,
    pub den: i128,
}

impl From<i64> for Rational {
    fn from(x: i64) -> Self {
        Rational {
            num: x as i128,
            den: 1,
        }
    }
}

/// The greatest common divisor of |a| and |b|, on magnitudes: `i128::MIN % -1` and
/// `i128::MIN.abs()` would overflow.
fn gcd(a: i128, b: i128) -> u128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rational {
    /// The fraction num/den in lowest terms; `None` for a zero denominator or an overflow
    /// (a result that does not fit, such as `i128::MIN / -1`).
    pub fn new(num: i128, den: i128) -> Option<Rational> {
        if den == 0 {
            return None;
        }
        // Reduce the magnitudes, then put the sign on the numerator.
        let g = gcd(num, den); // ≥ 1, as den ≠ 0
        let (n, d) = (num.unsigned_abs() / g, den.unsigned_abs() / g);
        let num = if (num < 0) != (den < 0) {
            0i128.checked_sub_unsigned(n)?
        } else {
            i128::try_from(n).ok()?
        };
        Some(Rational {
            num,
            den: i128::try_from(d).ok()?,
        })
    }

    /// a op b, exactly; `None` on division by zero or overflow.
    pub fn apply(self, op: char, b: Rational) -> Option<Rational> {
        let (p, q, r, s) = (self.num, self.den, b.num, b.den);
        match op {
            '+' => Rational::new(
                p.checked_mul(s)?.checked_add(r.checked_mul(q)?)?,
                q.checked_mul(s)?,
            ),
            '-' => Rational::new(
                p.checked_mul(s)?.checked_sub(r.checked_mul(q)?)?,
                q.checked_mul(s)?,
            ),
            '*' => Rational::new(p.checked_mul(r)?, q.checked_mul(s)?),
            '/' => Rational::new(p.checked_mul(s)?, q.checked_mul(r)?),
            _ => None,
        }
    }
}
// ANCHOR_END: rational

/// The longest expression [`evaluate`] accepts, and its deepest nesting of parentheses.
pub const MAX_EXPRESSION_LEN: usize = 200;
const MAX_DEPTH: usize = 32;
/// The largest number a Countdown prompt may hold and [`evaluate`] reads: a million
/// (generated problems stay below 2,000).
pub const MAX_NUMBER: i64 = 1_000_000;
/// Digits of [`MAX_NUMBER`]: a longer number is refused before it is read.
const MAX_NUMBER_DIGITS: usize = 7;
/// The largest numerator or denominator an intermediate value of [`evaluate`] may reach:
/// 10¹⁸. Below it no operation on two values can overflow an `i128`.
pub const MAX_VALUE: i128 = 1_000_000_000_000_000_000;

// ANCHOR: evaluate
/// Evaluates an arithmetic expression of non-negative integers, `+ - * /` and
/// parentheses exactly: its value and the numbers it uses. Whitespace (spaces,
/// newlines) is skipped, as the arithmetic verifier skips it around its answer. `None`
/// for anything else (unknown characters, unbalanced parentheses, division by zero,
/// more than [`MAX_EXPRESSION_LEN`] characters or 32 nested parentheses, a number above
/// [`MAX_NUMBER`] or longer than 7 digits, a value whose numerator or denominator
/// passes [`MAX_VALUE`]).
pub fn evaluate(text: &str) -> Option<(Rational, Vec<i64>)> {
    let s: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if s.is_empty() || s.len() > MAX_EXPRESSION_LEN {
        return None;
    }
    let mut p = Parser {
        s: &s,
        at: 0,
        used: Vec::new(),
    };
    let v = p.expr(0)?;
    (p.at == s.len()).then_some((v, p.used))
}

/// Recursive descent: expr = term (('+'|'-') term)*, term = atom (('*'|'/') atom)*,
/// atom = number | '(' expr ')'.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    used: Vec<i64>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn expr(&mut self, depth: usize) -> Option<Rational> {
        let mut v = self.term(depth)?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            v = bounded(v.apply(op as char, self.term(depth)?)?)?;
        }
        Some(v)
    }

    fn term(&mut self, depth: usize) -> Option<Rational> {
        let mut v = self.atom(depth)?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.at += 1;
            v = bounded(v.apply(op as char, self.atom(depth)?)?)?;
        }
        Some(v)
    }

    fn atom(&mut self, depth: usize) -> Option<Rational> {
        match self.peek()? {
            b'(' if depth < MAX_DEPTH => {
                self.at += 1;
                let v = self.expr(depth + 1)?;
                (self.peek()? == b')').then(|| self.at += 1)?;
                Some(v)
            }
            c if c.is_ascii_digit() => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                let n = read_number(std::str::from_utf8(&self.s[start..self.at]).ok()?)?;
                self.used.push(n);
                Some(Rational::from(n))
            }
            _ => None,
        }
    }
}

/// `v` if its numerator and denominator are within [`MAX_VALUE`].
fn bounded(v: Rational) -> Option<Rational> {
    (v.num.unsigned_abs() <= MAX_VALUE as u128 && v.den <= MAX_VALUE).then_some(v)
}
// ANCHOR_END: evaluate
