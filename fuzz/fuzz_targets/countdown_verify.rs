//! A model's Countdown answer: the expression evaluator and the verifier never panic, and an
//! accepted answer uses only the given numbers and reaches the target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::task::{evaluate, Countdown, Problem, Rational, Task};

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = std::str::from_utf8(data) else {
        return;
    };
    let p = Problem {
        prompt: "3,7,25,50 to 71=".into(),
        truth: "71".into(),
    };
    let value = evaluate(answer);
    if let Some((v, _)) = &value {
        assert!(v.den > 0, "{answer:?}");
    }
    if Countdown.verify(&p, answer) {
        let (v, mut used) = value.expect("an accepted answer evaluates");
        assert_eq!(v, Rational::from(71), "{answer:?}");
        used.sort_unstable();
        assert!(used.len() <= 4, "{answer:?}");
    }
});
