//! A model's whole response: format check, answer extraction and scoring never panic, and
//! accuracy is earned only through a single answer block that the verifier accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::reward::{extract_answer, format_ok, score, RewardWeights};
use zero_to_r1::lm::task::{Arithmetic, Countdown, Problem, Task};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = std::str::from_utf8(data) else {
        return;
    };
    let w = RewardWeights::default();
    let problems: [(&dyn Task, Problem); 2] = [
        (
            &Arithmetic,
            Problem {
                prompt: "347+085=".into(),
                truth: "432".into(),
            },
        ),
        (
            &Countdown,
            Problem {
                prompt: "3,7,25,50 to 71=".into(),
                truth: "71".into(),
            },
        ),
    ];
    let ok = format_ok(response);
    let answer = extract_answer(response);
    if ok {
        assert!(answer.is_some(), "{response:?}");
    }
    for (task, p) in &problems {
        let r = score(*task, p, response, &w);
        assert_eq!(r.format == 1.0, ok);
        if r.accuracy == 1.0 {
            let a = answer.expect("accuracy needs an answer block");
            assert_eq!(response.matches("<answer>").count(), 1);
            assert_eq!(response.matches("</answer>").count(), 1);
            assert!(task.verify(p, a));
        }
    }
});
