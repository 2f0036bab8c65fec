//! Tokenizer, tasks, verifiers and rule rewards, including attempts to game them.

use zero_to_r1::lm::data::{self, DataConfig, Flaw};
use zero_to_r1::lm::eval::heldout;
use zero_to_r1::lm::reward::{extract_answer, format_ok, score, RewardWeights};
use zero_to_r1::lm::task::{
    draft_columns, evaluate, has_check, sample_problem, task_by_name, Addition, Arithmetic,
    Countdown, Problem, Rational, Split, Style, Task, Template, Templated,
};
use zero_to_r1::lm::tokenizer::{Tokenizer, ANSWER, EOS, PAD, THINK};
use zero_to_r1::rand::rngs::StdRng;
use zero_to_r1::rand::SeedableRng;

#[test]
fn tokenizer_round_trips_and_rejects_unknown_characters() {
    let tok = Tokenizer;
    let text = "347+85=<think>7+5+0=2c1</think><answer>432</answer><eos>";
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids[7], THINK);
    assert_eq!(*ids.last().unwrap(), EOS);
    assert_eq!(tok.decode(&ids).unwrap(), text);
    let all: Vec<u32> = (0..tok.vocab_size() as u32).collect();
    assert_eq!(tok.encode(&tok.decode(&all).unwrap()).unwrap(), all);
    for bad in ["3×4", "<thinking>", "A", "é", "<"] {
        let e = tok.encode(bad).unwrap_err().to_string();
        assert!(
            e.contains("not in the tokenizer's vocabulary"),
            "{bad}: {e}"
        );
    }
    assert!(tok.decode(&[tok.vocab_size() as u32]).is_err());
    // A response is read up to end-of-sequence, padding skipped, and never fails.
    assert_eq!(tok.decode_response(&[ANSWER, 6, EOS, 7, PAD]), "<answer>0");
    assert_eq!(tok.decode_response(&[9999]), "?");
}

#[test]
fn the_arithmetic_scratchpad_by_hand() {
    let p = Problem {
        prompt: "347+85=".into(),
        truth: "432".into(),
    };
    let t = Arithmetic.solve(&p);
    assert_eq!(t.think, "7+5+0=2c1,4+8+1=3c1,3+0+1=4c0");
    assert_eq!(t.answer, "432");
    let p = Problem {
        prompt: "503-78=".into(),
        truth: "425".into(),
    };
    let t = Arithmetic.solve(&p);
    assert_eq!(t.think, "3-8-0=5c1,0-7-1=2c1,5-0-1=4c0");
    assert_eq!(t.answer, "425");
    let p = Problem {
        prompt: "99+1=".into(),
        truth: "100".into(),
    };
    assert_eq!(Arithmetic.solve(&p).answer, "100");
    let p = Problem {
        prompt: "5-5=".into(),
        truth: "0".into(),
    };
    assert_eq!(Arithmetic.solve(&p).answer, "0");
}

#[test]
fn generated_problems_are_solved_and_slips_are_wrong() {
    for task in ["arithmetic", "addition", "countdown"] {
        let task = task_by_name(task).unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        for seed in 0..200 {
            let d = 1 + (seed as usize) % task.max_difficulty();
            let p = task.generate(seed, d);
            assert_eq!(task.generate(seed, d), p, "same seed, same problem");
            let t = task.solve(&p);
            assert!(task.verify(&p, &t.answer), "{p:?} {t:?}");
            Tokenizer.encode(&p.prompt).unwrap();
            Tokenizer.encode(&t.response()).unwrap();
            let s = task.slip(&p, &mut rng);
            assert!(!task.verify(&p, &s.answer), "{p:?} {s:?}");
        }
    }
}

#[test]
fn training_and_heldout_prompts_never_overlap() {
    let train: std::collections::HashSet<String> = (0..3000)
        .map(|i| sample_problem(&Arithmetic, 5, i, 2, Split::Train).prompt)
        .collect();
    let test = heldout(&Arithmetic, 200, 2);
    assert_eq!(test.len(), 200);
    assert!(test.iter().all(|p| !train.contains(&p.prompt)));
    assert!(test.iter().all(|p| Split::of(&p.prompt) == Split::Test));
}

#[test]
fn arithmetic_verifier() {
    let p = Problem {
        prompt: "347+85=".into(),
        truth: "432".into(),
    };
    for (a, ok) in [
        ("432", true),
        (" 432 ", true),
        ("0432", true),
        ("433", false),
        ("", false),
        ("4 32", false),
        ("432+0", false),
        ("-432", false),
        (&"9".repeat(500), false),
    ] {
        assert_eq!(Arithmetic.verify(&p, a), ok, "{a:?}");
    }
}

#[test]
fn countdown_expressions_are_evaluated_exactly() {
    let v = evaluate;
    assert_eq!(v("((25+50)-7)+3").unwrap().0, Rational::from(71));
    assert_eq!(v("2*3+4").unwrap().0, Rational::from(10));
    assert_eq!(v("2*(3+4)").unwrap().0, Rational::from(14));
    assert_eq!(v("7/2*2").unwrap().0, Rational::from(7));
    assert_eq!(v("1/3+1/6").unwrap().0, Rational::new(1, 2).unwrap());
    assert_eq!(v("10-2-3").unwrap().0, Rational::from(5));
    assert_eq!(v("8/4/2").unwrap().0, Rational::from(1));
    assert_eq!(v("3 * 4").unwrap().1, vec![3, 4]);
    for bad in [
        "",
        "1/0",
        "5/(3-3)",
        "(1+2",
        "1+2)",
        "1++2",
        "2x3",
        "-3+5",
        "()",
        "99999999999999999999",
        "1<answer>2",
    ] {
        assert!(v(bad).is_none(), "{bad:?}");
    }
    // Deep nesting and huge products are refused, not a stack overflow or an overflow panic.
    assert!(v(&format!("{}1{}", "(".repeat(5000), ")".repeat(5000))).is_none());
    let big = vec!["999999999"; 19].join("*");
    assert!(v(&big).is_none());
}

#[test]
fn countdown_verifier_uses_each_number_at_most_once() {
    let p = Problem {
        prompt: "3,7,25,50 to 71=".into(),
        truth: "71".into(),
    };
    assert!(Countdown.verify(&p, "((25+50)-7)+3"));
    assert!(Countdown.verify(&p, "50+25-7+3"));
    assert!(!Countdown.verify(&p, "50+25-7+3+0"), "0 is not given");
    assert!(!Countdown.verify(&p, "50+7+7+7"), "7 reused");
    assert!(!Countdown.verify(&p, "50+25-7"), "wrong value");
    assert!(!Countdown.verify(&p, "71"), "71 is not given");
    assert!(!Countdown.verify(&p, "50+21"), "21 is not given");
    let p2 = Problem {
        prompt: "2,2,5 to 9=".into(),
        truth: "9".into(),
    };
    assert!(
        Countdown.verify(&p2, "2+2+5"),
        "a number given twice may be used twice"
    );
    assert!(!Countdown.verify(&p2, "2+2+2+3"));
    let garbage = Problem {
        prompt: "junk".into(),
        truth: "1".into(),
    };
    assert!(!Countdown.verify(&garbage, "1"));
}

#[test]
fn format_reward_is_strict() {
    assert!(format_ok("<think>x</think><answer>4</answer>"));
    assert!(format_ok("<think></think><answer>4</answer>"));
    for bad in [
        "<think>x</think><answer></answer>",
        "<think>x</think><answer> </answer>",
        "<think>x</think> <answer>4</answer>",
        "<think>x</think><answer>4</answer>!",
        "x<think>x</think><answer>4</answer>",
        "<think>x</think><answer>4</answer><answer>5</answer>",
        "<think>x<think>y</think><answer>4</answer>",
        "<answer>4</answer>",
        "<think>x</think>",
        "",
    ] {
        assert!(!format_ok(bad), "{bad:?}");
    }
}

#[test]
fn rewards_cannot_be_gamed() {
    let task = Arithmetic;
    let p = Problem {
        prompt: "347+85=".into(),
        truth: "432".into(),
    };
    let w = RewardWeights::default();
    let r = score(
        &task,
        &p,
        "<think>7+5+0=2c1</think><answer>432</answer>",
        &w,
    );
    assert_eq!((r.format, r.accuracy), (1.0, 1.0));
    assert!((r.total - (w.format + w.accuracy)).abs() < 1e-12);
    let r = score(&task, &p, "<think>x</think><answer>431</answer>", &w);
    assert_eq!((r.format, r.accuracy, r.total), (1.0, 0.0, w.format));
    let ramble: String = "1+".repeat(5000) + "432";
    let hacks = [
        "<think>x</think><answer>432</answer><answer>432</answer>",
        "<think>x</think><answer>431</answer><answer>432</answer>",
        "<think>x</think>432",
        "432",
        "<think>x</think><answer></answer>",
        "<think><answer>432</answer></think>",
        "<think>x</think><answer>432</answer>432",
        "<think>x</think><answer>432",
        "<think>x</think><answer><think>432</answer>",
        ramble.as_str(),
    ];
    for h in hacks {
        let r = score(&task, &p, h, &w);
        assert_eq!(r.accuracy, 0.0, "{h:.60}");
    }
    // A 10,000-token ramble, made of real tokens, inside well-formed tags: no accuracy, no panic.
    let long = format!(
        "<think>{}</think><answer>{}</answer>",
        "7+".repeat(5000),
        "1".repeat(5000)
    );
    assert_eq!(score(&task, &p, &long, &w).accuracy, 0.0);
    let cd = Problem {
        prompt: "3,7,25,50 to 71=".into(),
        truth: "71".into(),
    };
    for h in [
        "<think>x</think><answer>71</answer>",
        "<think>x</think><answer>50+7+7+7</answer>",
        "<think>x</think><answer>50+25-7+3)</answer>",
        "<think>x</think><answer>50/0+71</answer>",
        long.as_str(),
    ] {
        assert_eq!(score(&Countdown, &cd, h, &w).accuracy, 0.0, "{h:.60}");
    }
    assert_eq!(
        score(
            &Countdown,
            &cd,
            "<think>x</think><answer>50+25-7+3</answer>",
            &w
        )
        .accuracy,
        1.0
    );
    assert_eq!(extract_answer("<answer> 12 </answer>\n"), Some(" 12 "));
}

#[test]
fn flawed_traces_come_at_the_configured_rates() {
    let config = DataConfig {
        slip_rate: 0.3,
        missing_tag_rate: 0.1,
        ..DataConfig::default()
    };
    let examples = data::batch(&Arithmetic, 3, &config, 1, 0, 2000);
    let count = |f: Flaw| examples.iter().filter(|e| e.flaw == f).count() as f64 / 2000.0;
    assert!((count(Flaw::Slip) - 0.3).abs() < 0.04);
    assert!((count(Flaw::MissingTag) - 0.1).abs() < 0.03);
    let w = RewardWeights::default();
    for e in &examples {
        let r = score(&Arithmetic, &e.problem, &e.response, &w);
        match e.flaw {
            Flaw::None => assert_eq!((r.format, r.accuracy), (1.0, 1.0)),
            Flaw::Slip => assert_eq!((r.format, r.accuracy), (1.0, 0.0), "{}", e.response),
            Flaw::MissingTag => assert_eq!(r.format, 0.0),
            Flaw::Draft { .. } => panic!("no drafts were asked for"),
        }
        assert_eq!(Split::of(&e.problem.prompt), Split::Train);
    }
    assert!(DataConfig {
        slip_rate: 0.8,
        missing_tag_rate: 0.3,
        ..DataConfig::default()
    }
    .validate()
    .is_err());
    assert!(DataConfig {
        slip_rate: -0.1,
        missing_tag_rate: 0.0,
        ..DataConfig::default()
    }
    .validate()
    .is_err());
}

fn problem(prompt: &str) -> Problem {
    Addition.check_prompt(prompt).unwrap()
}

/// A draft of `p`, each carry dropped with probability `drop_rate`, checked if `check`.
fn drafted(p: &Problem, drop_rate: f64, check: bool) -> zero_to_r1::lm::task::Draft {
    let style = Style { drop_rate, check };
    draft_columns(p, style, &mut StdRng::seed_from_u64(0)).unwrap()
}

#[test]
fn drafts_by_hand() {
    let p = problem("47+85=");
    // Every carry dropped, then caught by the check.
    let d = drafted(&p, 1.0, true);
    assert_eq!(
        d.trace.think,
        "7+5+0=2c1,4+8+0=2c1;check 85+47:5+7+0=2c1,8+4+1=3c1 no"
    );
    assert_eq!(d.trace.answer, "132");
    assert!(d.dropped && d.checked && d.redone);
    // No carry dropped: the check agrees.
    let d = drafted(&p, 0.0, true);
    assert_eq!(
        d.trace.think,
        "7+5+0=2c1,4+8+1=3c1;check 85+47:5+7+0=2c1,8+4+1=3c1 ok"
    );
    assert!(!d.dropped && !d.redone);
    // A dropped carry without a check gives a wrong answer.
    let d = drafted(&p, 1.0, false);
    assert_eq!(
        (d.trace.think.as_str(), d.trace.answer.as_str()),
        ("7+5+0=2c1,4+8+0=2c1", "122")
    );
    // Nothing to drop: 12+34 has no carry.
    let d = drafted(&problem("12+34="), 1.0, false);
    assert_eq!(d.trace.answer, "46");
    assert!(!d.dropped);
    // A subtraction checks itself by working again in the same order.
    let d = drafted(&Arithmetic.check_prompt("52-17=").unwrap(), 1.0, true);
    assert_eq!(
        d.trace.think,
        "2-7-0=5c1,5-1-0=4c0;check 52-17:2-7-0=5c1,5-1-1=3c0 no"
    );
    assert_eq!(d.trace.answer, "35");
    // A task without drafts says so.
    assert!(Countdown
        .draft(
            &Countdown.generate(0, 3),
            Style {
                drop_rate: 0.5,
                check: true
            },
            &mut StdRng::seed_from_u64(0)
        )
        .is_none());
}

#[test]
fn drafted_documents_come_at_the_configured_rates() {
    let config = DataConfig {
        slip_rate: 0.0,
        missing_tag_rate: 0.0,
        template_rate: 0.25,
        check_rate: 0.2,
        dropped_carry_rate: 0.6,
    };
    assert!(config.drafts());
    let n = 4000;
    let examples = data::batch(&Addition, 2, &config, 3, 0, n);
    let w = RewardWeights::default();
    let (mut template, mut checked, mut carries, mut dropped) = (0.0, 0.0, 0.0, 0.0);
    for e in &examples {
        let Flaw::Draft {
            dropped: d,
            checked: c,
            redone,
            template: t,
        } = e.flaw
        else {
            panic!("not a draft: {:?}", e.flaw);
        };
        let r = score(&Addition, &e.problem, &e.response, &w);
        // The exact template exactly when drawn so; a check always ends in the right answer,
        // and an unchecked draft is right exactly when no carry was dropped.
        assert_eq!(r.format == 1.0, t, "{}", e.response);
        assert_eq!(c, has_check(&e.response));
        let tail = e.response.split("</think>").nth(1).unwrap();
        let answer = tail
            .trim_start_matches("<answer>")
            .trim_end_matches("</answer>")
            .trim_start_matches("answer:");
        let right = Addition.verify(&e.problem, answer);
        assert_eq!(right, c || !d, "{}{}", e.problem.prompt, e.response);
        assert_eq!(redone, c && d);
        // Carries into the tens column: the ones digits sum to ten or more.
        let ones = |i: usize| u32::from(e.problem.prompt.as_bytes()[i] - b'0');
        if ones(1) + ones(4) >= 10 {
            carries += 1.0;
            dropped += f64::from(u8::from(d));
        } else {
            assert!(!d);
        }
        template += f64::from(u8::from(t));
        checked += f64::from(u8::from(c));
        assert_eq!(Split::of(&e.problem.prompt), Split::Train);
    }
    let close = |x: f64, n: f64, p: f64| (x / n - p).abs() < 4.0 * (p * (1.0 - p) / n).sqrt();
    assert!(close(template, n as f64, 0.25), "{template}");
    assert!(close(checked, n as f64, 0.2), "{checked}");
    assert!(close(dropped, carries, 0.6), "{dropped} of {carries}");
    // Drafts are not mixed with slips, and rates outside [0, 1] are refused by key.
    let mixed = DataConfig {
        slip_rate: 0.1,
        ..config
    };
    assert!(mixed
        .validate()
        .unwrap_err()
        .to_string()
        .contains("data.slip_rate"));
    let bad = DataConfig {
        check_rate: 1.5,
        ..config
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("data.check_rate"));
}

#[test]
fn the_think_template_puts_the_opening_in_the_prompt() {
    let task = Templated {
        inner: Box::new(Addition),
        template: Template::Think,
    };
    let p = problem("47+85=");
    assert_eq!(task.pose(&p), "47+85=<think>");
    let w = RewardWeights::default();
    // The model writes only what follows <think>; it is scored with the opening in front.
    let r = score(
        &task,
        &p,
        "7+5+0=2c1,4+8+1=3c1</think><answer>132</answer>",
        &w,
    );
    assert_eq!((r.format, r.accuracy), (1.0, 1.0));
    let r = score(
        &task,
        &p,
        "<think>7+5+0=2c1</think><answer>132</answer>",
        &w,
    );
    assert_eq!(r.format, 0.0, "a second <think> breaks the format");
    let r = score(&task, &p, "7+5+0=2c1,4+8+1=3c1</think>132", &w);
    assert_eq!(
        (r.format, r.accuracy),
        (0.0, 0.0),
        "an answer outside its tags earns nothing"
    );
    // Training documents are cut the same way: the opening moves into the prompt.
    let e = data::Example {
        problem: p.clone(),
        response: "<think>7+5+0=2c1,4+8+1=3c1</think><answer>132</answer>".into(),
        flaw: Flaw::None,
    };
    let (prompts, responses) = data::encode(&task, std::slice::from_ref(&e)).unwrap();
    let tok = Tokenizer;
    assert_eq!(tok.decode(&prompts[0]).unwrap(), "47+85=<think>");
    assert_eq!(
        tok.decode(&responses[0]).unwrap(),
        "7+5+0=2c1,4+8+1=3c1</think><answer>132</answer><eos>"
    );
    let (plain, _) = data::encode(&Addition, &[e]).unwrap();
    assert_eq!(tok.decode(&plain[0]).unwrap(), "47+85=");
}
