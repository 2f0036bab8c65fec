//! A Countdown prompt typed by hand (`lm sample --prompt`): parsing, checking, solving and
//! slipping never panic, and a solution found verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zero_to_r1::lm::task::{parse_countdown, Countdown, Problem, Task};
use zero_to_r1::rand::{rngs::StdRng, SeedableRng};

fuzz_target!(|data: &[u8]| {
    let Ok(prompt) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_countdown(prompt);
    assert_eq!(parsed.is_some(), Countdown.check_prompt(prompt).is_ok());
    let p = Problem {
        prompt: prompt.into(),
        truth: String::new(),
    };
    let t = Countdown.solve(&p);
    if parsed.is_some() && !t.answer.is_empty() {
        assert!(Countdown.verify(&p, &t.answer), "{prompt:?}: {t:?}");
    }
    let _ = Countdown.slip(&p, &mut StdRng::seed_from_u64(0));
});
