//! Property tests of the verifiers and rewards that read a prompt or a model's output:
//! arbitrary input never panics, and no response earns the accuracy reward unless its single
//! answer block holds the right answer.
//!
//! Failures are not written to a file (`failure_persistence: None`): proptest prints the
//! shrunk input, which becomes a named test in course/tests/reproducers/verifiers.rs.

use proptest::prelude::*;

use zero_to_r1::lm::reward::{extract_answer, format_ok, score, RewardWeights};
use zero_to_r1::lm::task::{
    evaluate, parse_countdown, task_by_name, Arithmetic, Countdown, Problem, Rational, Task,
    MAX_NUMBER, TASKS,
};

mod strategies;
use strategies::{cases, soup};

const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

// ---------------------------------------------------------------------------------------------
// Rewards: format, extraction and the safety property

const RESPONSE_PIECES: &[&str] = &[
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<eos>",
    "<pad>",
    "<",
    ">",
    "/",
    "1",
    "7",
    "42",
    "432",
    "71",
    "0",
    "+",
    "-",
    "*",
    "(",
    ")",
    " ",
    "\n",
    "x",
    "=",
    "c1",
    ",",
];

/// A problem of each task, and a right and a wrong answer to it.
fn task_problem() -> impl Strategy<Value = (&'static str, Problem, String, String)> {
    (
        prop::sample::select(TASKS.to_vec()),
        any::<u64>(),
        1usize..7,
    )
        .prop_map(|(name, seed, d)| {
            let task = task_by_name(name).unwrap();
            let p = task.generate(seed, d);
            let right = task.solve(&p).answer;
            let mut rng =
                <zero_to_r1::rand::rngs::StdRng as zero_to_r1::rand::SeedableRng>::seed_from_u64(
                    seed,
                );
            let wrong = task.slip(&p, &mut rng).answer;
            (name, p, right, wrong)
        })
}

/// Tag-free filler: scratchpad text, numbers, whitespace.
fn filler() -> impl Strategy<Value = String> {
    soup(
        &["1", "2", "+", "=", "c", ",", " ", "x", "7", "(", ")", "\n"],
        12,
    )
    .prop_map(|s| s.replace(['<', '>'], ""))
}

/// An independent statement of "a single answer block holding `right`": exactly one
/// `<answer>` and one `</answer>`, in that order, nothing but whitespace after, and between
/// them no tag and text the task accepts.
fn single_block_holds(task: &dyn Task, p: &Problem, response: &str) -> bool {
    let (Some(open), Some(close)) = (response.find("<answer>"), response.find("</answer>")) else {
        return false;
    };
    if response.rfind("<answer>") != Some(open) || response.rfind("</answer>") != Some(close) {
        return false;
    }
    let Some(inner) = response.get(open + "<answer>".len()..close) else {
        return false;
    };
    open < close
        && response[close + "</answer>".len()..].trim().is_empty()
        && TAGS.iter().all(|t| !inner.contains(t))
        && task.verify(p, inner)
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn rewards_never_panic(
        (name, p, _right, _wrong) in task_problem(),
        text in soup(RESPONSE_PIECES, 60),
        other in any::<String>(),
    ) {
        let task = task_by_name(name).unwrap();
        let w = RewardWeights::default();
        for response in [&text, &other] {
            let r = score(task.as_ref(), &p, response, &w);
            prop_assert!(r.total.is_finite());
            prop_assert_eq!(r.format == 1.0, format_ok(response));
            if format_ok(response) {
                prop_assert!(extract_answer(response).is_some());
            }
        }
    }

    /// The key property: accuracy is earned exactly when the response's single answer block
    /// holds the right answer, whatever else the response says and wherever else the right
    /// answer appears.
    #[test]
    fn accuracy_needs_the_single_answer_block_to_hold_the_right_answer(
        (name, p, right, wrong) in task_problem(),
        pieces in prop::collection::vec(
            prop_oneof![
                3 => Just(0u8), // the right answer
                2 => Just(1u8), // a wrong answer
                3 => Just(2u8), // a tag
                3 => Just(3u8), // filler
            ],
            0..12,
        ),
        tags in prop::collection::vec(prop::sample::select(TAGS.to_vec()), 12),
        fill in prop::collection::vec(filler(), 12),
    ) {
        let task = task_by_name(name).unwrap();
        let response: String = pieces
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                0 => right.clone(),
                1 => wrong.clone(),
                2 => tags[i].to_string(),
                _ => fill[i].clone(),
            })
            .collect();
        let r = score(task.as_ref(), &p, &response, &RewardWeights::default());
        prop_assert_eq!(
            r.accuracy == 1.0,
            single_block_holds(task.as_ref(), &p, &response),
            "{:?} on {:?}", response, p
        );
    }

    #[test]
    fn the_right_answer_elsewhere_earns_nothing(
        (name, p, right, wrong) in task_problem(),
        think in filler(),
        shape in 0usize..8,
    ) {
        let task = task_by_name(name).unwrap();
        let r = &right;
        let response = match shape {
            0 => format!("<think>{think}{r}</think><answer>{wrong}</answer>"),
            1 => format!("<think>{think}</think><answer>{r}</answer><answer>{r}</answer>"),
            2 => format!("<think>{think}</think><answer>{wrong}</answer><answer>{r}</answer>"),
            3 => format!("<think>{think}</think><answer>{r}</answer><answer>{wrong}</answer>"),
            4 => format!("<think>{think}</think><answer>{wrong}</answer>{r}"),
            5 => format!("<think>{think}</think>{r}"),
            6 => format!("<think>{think}</think><answer>{r}"),
            _ => format!("<think><answer>{r}</answer></think><answer>{wrong}</answer>"),
        };
        let s = score(task.as_ref(), &p, &response, &RewardWeights::default());
        prop_assert_eq!(s.accuracy, 0.0, "{}", response);
    }

    #[test]
    fn one_clean_block_with_the_right_answer_earns_it(
        (name, p, right, _wrong) in task_problem(),
        think in filler(),
        pad in prop::sample::select(vec!["", " ", "\n", "  \n"]),
    ) {
        let task = task_by_name(name).unwrap();
        let w = RewardWeights::default();
        let strict = format!("<think>{think}</think><answer>{right}</answer>");
        let s = score(task.as_ref(), &p, &strict, &w);
        prop_assert_eq!((s.format, s.accuracy), (1.0, 1.0));
        // Trailing whitespace, or text before the block, costs the format reward only.
        let loose = format!("{think}<answer>{pad}{right}{pad}</answer>{pad}");
        prop_assert_eq!(score(task.as_ref(), &p, &loose, &w).accuracy, 1.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Verifiers and solvers

const EXPRESSION_PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "9",
    "25",
    "100",
    "1000000",
    "4611686018427387904",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    " ",
];

/// An expression tree over small numbers, as text (with random spaces and parentheses) and
/// as an exact value computed independently: (numerator, denominator) unreduced, or `None`
/// after a division by zero.
#[derive(Clone, Debug)]
enum Expr {
    Num(i64),
    Op(Box<Expr>, char, Box<Expr>),
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = (0i64..30).prop_map(Expr::Num);
    leaf.prop_recursive(3, 8, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!['+', '-', '*', '/']),
            inner,
        )
            .prop_map(|(a, op, b)| Expr::Op(Box::new(a), op, Box::new(b)))
    })
}

impl Expr {
    fn text(&self, spaces: bool) -> String {
        let sp = if spaces { " " } else { "" };
        match self {
            Expr::Num(n) => n.to_string(),
            Expr::Op(a, op, b) => format!("({}{sp}{op}{sp}{})", a.text(spaces), b.text(!spaces)),
        }
    }

    fn value(&self) -> Option<(i128, i128)> {
        match self {
            Expr::Num(n) => Some((*n as i128, 1)),
            Expr::Op(a, op, b) => {
                let ((p, q), (r, s)) = (a.value()?, b.value()?);
                match op {
                    '+' => Some((p * s + r * q, q * s)),
                    '-' => Some((p * s - r * q, q * s)),
                    '*' => Some((p * r, q * s)),
                    _ if r == 0 => None,
                    _ => Some((p * s, q * r)),
                }
            }
        }
    }

    fn atoms(&self, out: &mut Vec<i64>) {
        match self {
            Expr::Num(n) => out.push(*n),
            Expr::Op(a, _, b) => {
                a.atoms(out);
                b.atoms(out);
            }
        }
    }
}

fn gcd(a: i128, b: i128) -> u128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Strings that look like Countdown prompts, including out-of-range and malformed ones.
fn countdown_prompt_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        6 => (0i64..130).prop_map(|x| x.to_string()),
        1 => any::<i64>().prop_map(|x| x.to_string()),
        1 => (MAX_NUMBER - 2..MAX_NUMBER + 2).prop_map(|x| x.to_string()),
        1 => prop::sample::select(vec!["", "+3", "03", " 4", "1e3", "99999999999999999999"])
            .prop_map(str::to_string),
    ];
    (
        prop::collection::vec(number.clone(), 0..9),
        number,
        any::<bool>(),
    )
        .prop_map(|(nums, t, eq)| format!("{} to {t}{}", nums.join(","), if eq { "=" } else { "" }))
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn verifiers_never_panic(
        (name, p, _right, _wrong) in task_problem(),
        answer in soup(EXPRESSION_PIECES, 40),
        other in any::<String>(),
        prompt in any::<String>(),
    ) {
        let task = task_by_name(name).unwrap();
        for a in [&answer, &other] {
            let _ = task.verify(&p, a);
            let _ = evaluate(a);
            for t in TASKS {
                let _ = task_by_name(t).unwrap().verify(&Problem { prompt: prompt.clone(), truth: other.clone() }, a);
            }
        }
        let _ = parse_countdown(&prompt);
        let _ = parse_countdown(&answer);
    }

    #[test]
    fn expressions_evaluate_exactly(e in expr(), spaces in any::<bool>()) {
        let text = e.text(spaces);
        let mut atoms = Vec::new();
        e.atoms(&mut atoms);
        match (evaluate(&text), e.value()) {
            (Some((v, used)), Some((n, d))) => {
                prop_assert!(v.den > 0 && gcd(v.num, v.den) == 1, "{:?}", v);
                prop_assert_eq!(v.num * d, n * v.den, "{}", text);
                prop_assert_eq!(used, atoms);
            }
            (None, None) => {}
            (got, want) => prop_assert!(false, "{}: {:?} vs {:?}", text, got, want),
        }
    }

    #[test]
    fn rationals_are_reduced_or_refused(num in any::<i128>(), den in any::<i128>(), op in prop::sample::select(vec!['+', '-', '*', '/'])) {
        if let Some(r) = Rational::new(num, den) {
            prop_assert!(r.den > 0);
            prop_assert_eq!(gcd(r.num, r.den), 1);
            let _ = r.apply(op, r);
            let _ = r.apply(op, Rational::from(-1));
        } else {
            prop_assert!(den == 0 || num == i128::MIN || den == i128::MIN);
        }
    }

    #[test]
    fn countdown_prompts_round_trip(
        nums in prop::collection::vec(0..=MAX_NUMBER, 2..=6),
        target in 0..=MAX_NUMBER,
    ) {
        let list = nums.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        let prompt = format!("{list} to {target}=");
        prop_assert_eq!(parse_countdown(&prompt), Some((nums, target)));
        prop_assert_eq!(Countdown.check_prompt(&prompt).unwrap().truth, target.to_string());
    }

    #[test]
    fn countdown_accepts_exactly_the_given_numbers(e in expr(), extra in 0i64..30, spaces in any::<bool>()) {
        let mut atoms = Vec::new();
        e.atoms(&mut atoms);
        let Some((n, d)) = e.value() else { return Ok(()) };
        // A target above MAX_NUMBER is outside the task (its prompt does not parse): see
        // a_target_above_the_largest_number_is_outside_the_task.
        if !(2..=6).contains(&atoms.len()) || n % d != 0 || n / d < 0 || n / d > i128::from(MAX_NUMBER) {
            return Ok(());
        }
        let mut given = atoms.clone();
        given.sort_unstable();
        let list = given.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        let p = Problem { prompt: format!("{list} to {}=", n / d), truth: (n / d).to_string() };
        let text = e.text(spaces);
        prop_assert!(Countdown.verify(&p, &text), "{} for {}", text, p.prompt);
        // Every given number is used already: one more use is never accepted.
        let more = format!("{text}+{extra}-{extra}");
        prop_assert!(!Countdown.verify(&p, &more), "{}", more);
    }
}

proptest! {
    // The search behind `solve` is the slow part: fewer cases.
    #![proptest_config(cases(256))]

    #[test]
    fn countdown_solve_never_panics_and_solutions_verify(prompt in countdown_prompt_text()) {
        let p = Problem { prompt: prompt.clone(), truth: String::new() };
        let t = Countdown.solve(&p);
        match Countdown.check_prompt(&prompt) {
            Ok(q) => {
                prop_assert_eq!(q.prompt, prompt);
                if !t.answer.is_empty() {
                    prop_assert!(Countdown.verify(&p, &t.answer), "{:?}", t);
                }
            }
            Err(_) => prop_assert_eq!(t.answer, ""),
        }
        let mut rng = <zero_to_r1::rand::rngs::StdRng as zero_to_r1::rand::SeedableRng>::seed_from_u64(0);
        let _ = Countdown.slip(&p, &mut rng);
    }
}

proptest! {
    #![proptest_config(cases(1024))]

    /// No arithmetic prompt is ever scored against a wrong truth: either the prompt is
    /// rejected (a subtraction below zero), or its truth is the true value, the worked
    /// solution reaches it, and every column of the scratchpad is a true fact.
    #[test]
    fn arithmetic_truth_is_the_true_value_or_the_prompt_is_rejected(
        wa in 1usize..=18, wb in 1usize..=18,
        a in any::<u64>(), b in any::<u64>(),
        pad in any::<bool>(),
        subtract in any::<bool>(),
    ) {
        let (a, b) = (a % 10u64.pow(wa as u32), b % 10u64.pow(wb as u32));
        let op = if subtract { '-' } else { '+' };
        let prompt = if pad { format!("{a:0wa$}{op}{b:0wb$}=") } else { format!("{a}{op}{b}=") };
        let solved = Arithmetic.solve(&Problem { prompt: prompt.clone(), truth: String::new() });
        match Arithmetic.check_prompt(&prompt) {
            Ok(p) => {
                let truth = if subtract { a.checked_sub(b) } else { Some(a + b) };
                prop_assert_eq!(Some(p.truth.clone()), truth.map(|t| t.to_string()));
                prop_assert_eq!(&solved.answer, &p.truth);
                prop_assert!(Arithmetic.verify(&p, &solved.answer));
                for col in solved.think.split(',') {
                    let d: Vec<u64> = col.bytes().filter(u8::is_ascii_digit).map(|c| u64::from(c - b'0')).collect();
                    prop_assert_eq!(d.len(), 5, "{}", col);
                    if subtract {
                        prop_assert_eq!(d[0] + 10 * d[4], d[1] + d[2] + d[3], "{}", col);
                    } else {
                        prop_assert_eq!(d[0] + d[1] + d[2], d[3] + 10 * d[4], "{}", col);
                    }
                }
            }
            Err(_) => {
                prop_assert!(subtract && a < b, "{} rejected", prompt);
                prop_assert_eq!(solved.answer, "");
            }
        }
    }

    #[test]
    fn arithmetic_prompts_never_panic(prompt in soup(&["1", "0", "9", "+", "-", "=", " ", "*", "00"], 50)) {
        let p = Problem { prompt: prompt.clone(), truth: String::new() };
        let t = Arithmetic.solve(&p);
        let mut rng = <zero_to_r1::rand::rngs::StdRng as zero_to_r1::rand::SeedableRng>::seed_from_u64(0);
        let _ = Arithmetic.slip(&p, &mut rng);
        if let Ok(q) = Arithmetic.check_prompt(&prompt) {
            prop_assert_eq!(t.answer, q.truth);
        }
    }
}

/// Found by the property test above: an expression of the given numbers whose value passes
/// MAX_NUMBER makes a prompt the task does not accept, so even the right expression earns
/// nothing, and the prompt itself is refused.
#[test]
fn a_target_above_the_largest_number_is_outside_the_task() {
    let text = "((2*12)*(28*21))*(6*12)";
    let target = 2 * 12 * 28 * 21 * 6 * 12;
    assert!(target > MAX_NUMBER);
    let prompt = format!("2,6,12,12,21,28 to {target}=");
    assert_eq!(parse_countdown(&prompt), None);
    assert!(Countdown.check_prompt(&prompt).is_err());
    let p = Problem {
        prompt,
        truth: target.to_string(),
    };
    assert!(!Countdown.verify(&p, text));
    // The same expression is accepted for a target within the task.
    let p = Problem {
        prompt: "2,12,28,21 to 14112=".into(),
        truth: "14112".into(),
    };
    assert!(Countdown.verify(&p, "(2*12)*(28*21)"));
}
