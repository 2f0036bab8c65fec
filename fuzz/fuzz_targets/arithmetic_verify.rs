//! Arithmetic prompts and answers: checking, solving, slipping and verifying never panic; an
//! accepted prompt's truth is the true value and its worked solution reaches it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::task::{Addition, Arithmetic, Problem, Task};
use zero_to_r1::rand::{rngs::StdRng, SeedableRng};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "prompt|answer", or the whole text as both.
    let (prompt, answer) = text.split_once('|').unwrap_or((text, text));
    let p = Problem {
        prompt: prompt.into(),
        truth: String::new(),
    };
    let t = Arithmetic.solve(&p);
    let _ = Arithmetic.slip(&p, &mut StdRng::seed_from_u64(0));
    let _ = Addition.check_prompt(prompt);
    match Arithmetic.check_prompt(prompt) {
        Ok(q) => {
            assert_eq!(t.answer, q.truth, "{prompt:?}");
            assert!(Arithmetic.verify(&q, &t.answer));
            let _ = Arithmetic.verify(&q, answer);
        }
        Err(_) => assert_eq!(t.answer, "", "{prompt:?}"),
    }
    let _ = Arithmetic.verify(
        &Problem {
            prompt: prompt.into(),
            truth: answer.into(),
        },
        answer,
    );
});
