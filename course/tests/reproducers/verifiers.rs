//! Model output and prompts typed by hand are user input: the verifiers, the solvers and the
//! generators facing hostile or unusual text. Every case here once panicked, hung, or scored
//! a response against a wrong truth.

use std::sync::mpsc;
use std::time::Duration;

use zero_to_r1::lm::reward::{score, RewardWeights};
use zero_to_r1::lm::task::{
    evaluate, parse_countdown, task_by_name, Addition, Arithmetic, Countdown, Problem, Rational,
    Task, MAX_NUMBER, TASKS,
};

fn problem(prompt: &str, truth: &str) -> Problem {
    Problem {
        prompt: prompt.into(),
        truth: truth.into(),
    }
}

/// Runs `f` on another thread and fails if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

const BIG: &str = "4611686018427387904"; // 2^62

#[test]
fn rationals_at_the_edge_of_i128_are_checked() {
    // i128::MIN % -1 overflows; -i128::MIN overflows; the gcd of i128::MIN and 0 is 2^127.
    assert_eq!(Rational::new(i128::MIN, -1), None);
    assert_eq!(Rational::new(i128::MIN, 1).unwrap().num, i128::MIN);
    assert_eq!(Rational::new(0, i128::MIN), Some(Rational::from(0)));
    assert_eq!(Rational::new(i128::MIN, i128::MIN), Some(Rational::from(1)));
    assert_eq!(Rational::new(i128::MIN, 2).unwrap().num, i128::MIN / 2);
    assert_eq!(Rational::new(i128::MAX, -1).unwrap().num, -i128::MAX);
    assert_eq!(Rational::new(6, -4), Rational::new(-3, 2));
    assert_eq!(Rational::new(1, 0), None);
    let min = Rational::new(i128::MIN, 1).unwrap();
    assert_eq!(min.apply('/', Rational::from(-1)), None);
    assert_eq!(min.apply('*', Rational::from(-1)), None);
    assert_eq!(min.apply('/', min), Some(Rational::from(1)));
    assert_eq!(Rational::from(0).apply('/', min), Some(Rational::from(0)));
}

#[test]
fn countdown_answers_that_overflow_are_not_answers() {
    let p = problem("1,8 to 8=", "8");
    let min = format!("((0-8)*{BIG}*{BIG})"); // i128::MIN
    let answers = [
        // i128::MIN / -1: "attempt to calculate the remainder with overflow", in release too.
        format!("((0-8)*{BIG}*{BIG})/(0-1)"),
        // 0 / i128::MIN and i128::MIN / i128::MIN: "attempt to negate with overflow".
        format!("0/{min}"),
        format!("{min}/{min}"),
        format!("8+0*{min}/{min}"),
        "9223372036854775807*9223372036854775807".into(),
        "99999999999999999999".into(),
    ];
    for a in &answers {
        assert!(!Countdown.verify(&p, a), "{a}");
        assert!(evaluate(a).is_none(), "{a}");
        let r = score(
            &Countdown,
            &p,
            &format!("<think></think><answer>{a}</answer>"),
            &RewardWeights::default(),
        );
        assert_eq!(r.accuracy, 0.0, "{a}");
    }
}

#[test]
fn numbers_and_intermediate_values_are_bounded() {
    let max = MAX_NUMBER.to_string();
    assert_eq!(evaluate(&max).unwrap().0, Rational::from(MAX_NUMBER));
    assert!(evaluate(&(MAX_NUMBER + 1).to_string()).is_none());
    // Longer than any number a problem can have, even when its value is small.
    assert!(evaluate(&format!("0{max}")).is_none());
    assert_eq!(evaluate("0000007").unwrap().0, Rational::from(7));
    assert!(evaluate("00000007").is_none());
    // Intermediate values beyond 10^18 (numerator or denominator) are not answers.
    assert!(evaluate(&format!("{max}*{max}*{max}")).is_some());
    assert!(evaluate(&format!("{max}*{max}*{max}*{max}")).is_none());
    assert!(evaluate(&format!("1/({max}*{max}*{max}*{max})")).is_none());
    assert!(evaluate(&format!("{max}*{max}*{max}*10/10")).is_none());
}

#[test]
fn countdown_prompts_outside_the_task_are_rejected_and_never_panic() {
    let bad = [
        "9223372036854775807,1 to 5=",
        "-9223372036854775808,1 to 5=",
        "1,2 to -3=",
        "+1,2 to 3=",
        "1, 2 to 3=",
        "1,2 to 9223372036854775807=",
        "1000001,2 to 3=",
        "5 to 5=",
        " to 5=",
        "1,2,3,4,5,6,7 to 28=",
        "1,2 to 3",
        "",
    ];
    for prompt in bad {
        assert_eq!(parse_countdown(prompt), None, "{prompt}");
        assert!(Countdown.check_prompt(prompt).is_err(), "{prompt}");
        // What a prompt typed by hand meets in `lm sample`: no panic, no claim of a solution.
        let t = Countdown.solve(&problem(prompt, ""));
        assert_eq!((t.think.as_str(), t.answer.as_str()), ("", ""), "{prompt}");
        assert!(!Countdown.verify(&problem(prompt, "5"), "1+2"));
    }
    let max = MAX_NUMBER;
    let p = Countdown
        .check_prompt(&format!("{max},{max},{max},{max},{max},{max} to {max}="))
        .unwrap();
    assert_eq!(p.truth, max.to_string());
    let q = p.clone();
    let t = within(60, "solve", move || Countdown.solve(&q));
    assert!(
        t.answer.is_empty() || Countdown.verify(&p, &t.answer),
        "{t:?}"
    );
}

#[test]
fn countdown_search_is_bounded() {
    // Twenty distinct numbers: a search over every ordering never ends. The prompt is outside
    // the task (at most six numbers), so it is rejected at once.
    let prompt: String = (1..=20)
        .map(|x| format!("{},", 1000 + x))
        .collect::<String>();
    let prompt = format!("{} to 999983=", prompt.trim_end_matches(','));
    let p = problem(&prompt, "");
    let t = within(20, "solve of 20 numbers", move || Countdown.solve(&p));
    assert_eq!(t.answer, "");
    // Six numbers without a solution: the whole search, within a bound.
    let p = problem("997,991,983,977,971,967 to 1=", "");
    let t = within(60, "solve of 6 numbers", move || Countdown.solve(&p));
    assert_eq!(t.answer, "");
}

#[test]
fn no_generated_countdown_target_is_one_of_its_numbers() {
    for difficulty in 1..=Countdown.max_difficulty() {
        for seed in 0..3000 {
            let p = Countdown.generate(seed, difficulty);
            let (nums, target) = parse_countdown(&p.prompt).unwrap();
            assert!(!nums.contains(&target), "seed {seed}: {}", p.prompt);
            assert_eq!(p.truth, target.to_string());
        }
    }
}

#[test]
fn subtraction_below_zero_is_outside_the_arithmetic_task() {
    // `lm sample --prompt 1-5=` was scored against the truth 6.
    for prompt in ["1-5=", "0-1=", "099-100=", "1-05="] {
        let e = Arithmetic.check_prompt(prompt).unwrap_err().to_string();
        assert!(e.contains("negative"), "{prompt}: {e}");
        let t = Arithmetic.solve(&problem(prompt, ""));
        assert_eq!(t.answer, "", "{prompt}");
    }
    let p = Arithmetic.check_prompt("5-5=").unwrap();
    assert_eq!(p.truth, "0");
    assert_eq!(Arithmetic.check_prompt("503-078=").unwrap().truth, "425");
    assert_eq!(Arithmetic.check_prompt("347+85=").unwrap().truth, "432");
    let max = "9".repeat(18);
    assert_eq!(
        Arithmetic
            .check_prompt(&format!("{max}+{max}="))
            .unwrap()
            .truth,
        "1999999999999999998"
    );
    for bad in [
        "5++3=", "5+-3=", "+5+3=", "5+3", "5+ 3=", "5*3=", "=", "", "5+=", "+5=", "１+2=",
    ] {
        assert!(Arithmetic.check_prompt(bad).is_err(), "{bad}");
        assert_eq!(Arithmetic.solve(&problem(bad, "")).answer, "", "{bad}");
    }
    assert!(Arithmetic.check_prompt(&format!("1{max}+1=")).is_err());
    // The addition task only adds.
    assert!(Addition.check_prompt("5-3=").is_err());
    assert_eq!(Addition.check_prompt("5+3=").unwrap().truth, "8");
}

#[test]
fn every_generated_prompt_passes_its_own_check() {
    for name in TASKS {
        let task = task_by_name(name).unwrap();
        for d in 1..=task.max_difficulty() {
            for seed in 0..300 {
                let p = task.generate(seed, d);
                assert_eq!(task.check_prompt(&p.prompt).unwrap(), p, "{name}");
            }
        }
    }
}

#[test]
fn whitespace_around_an_answer_counts_the_same_in_every_task() {
    // The arithmetic verifier ignored a newline around its answer; Countdown's refused it.
    let w = RewardWeights::default();
    let sum = problem("347+85=", "432");
    let cd = problem("10,75 to 750=", "750");
    for pad in ["", " ", "\n", " \n "] {
        let r = score(
            &Arithmetic,
            &sum,
            &format!("<answer>{pad}432{pad}</answer>"),
            &w,
        );
        assert_eq!(r.accuracy, 1.0, "{pad:?}");
        let r = score(
            &Countdown,
            &cd,
            &format!("<answer>{pad}10*75{pad}</answer>"),
            &w,
        );
        assert_eq!(r.accuracy, 1.0, "{pad:?}");
    }
    assert!(Countdown.verify(&cd, "10\n*\n75"));
}
