//! Grading tests of chapter 8 (from cats to language models). A test named `ex_8_N_…`
//! grades exercise 8.N.

mod common;

use common::{model, prompts};
use zero_to_r1::lm::generate::{generate, pack, response_logp, SampleConfig};
use zero_to_r1::lm::tokenizer::Tokenizer;

#[test]
fn ex_8_1_sampled_logp_equal_a_full_forward_pass_with_padding() {
    let m = model(2);
    let config = SampleConfig {
        temperature: 1.0,
        top_k: 0,
        max_new_tokens: 12,
    };
    let r = generate(&m, &prompts(), &config, 7).unwrap();
    assert_eq!(r.prompt_len, 7);
    assert_eq!(r.pads, vec![0, 3, 2]);
    let (logp, entropy) = response_logp(&m, &r.tokens, r.prompt_len, &r.pads, true).unwrap();
    let mask = r.mask.to_vec2::<f32>().unwrap();
    let (a, b) = (
        logp.to_vec2::<f32>().unwrap(),
        r.logp.to_vec2::<f32>().unwrap(),
    );
    for i in 0..3 {
        for t in 0..r.response_len() {
            if mask[i][t] > 0.0 {
                assert!(
                    (a[i][t] - b[i][t]).abs() < 1e-5,
                    "row {i} step {t}: {} vs {}",
                    a[i][t],
                    b[i][t]
                );
            } else {
                assert_eq!(b[i][t], 0.0);
            }
        }
    }
    // Entropy of a softmax over V tokens lies in [0, ln V].
    let v = (m.config().vocab as f32).ln();
    for row in entropy.unwrap().to_vec2::<f32>().unwrap() {
        assert!(row.iter().all(|&e| (-1e-5..=v + 1e-4).contains(&e)));
    }
}

#[test]
fn ex_8_1_left_padding_does_not_change_a_response() {
    let m = model(4);
    let tok = Tokenizer;
    let short = tok.encode("7-3=").unwrap();
    let long = tok.encode("347+85=").unwrap();
    let resp = tok
        .encode("<think>7-3-0=4c0</think><answer>4</answer><eos>")
        .unwrap();
    let dev = m.device();
    let alone = {
        let (t, p, pads, _) = pack(
            std::slice::from_ref(&short),
            std::slice::from_ref(&resp),
            dev,
        )
        .unwrap();
        response_logp(&m, &t, p, &pads, false)
            .unwrap()
            .0
            .to_vec2::<f32>()
            .unwrap()
    };
    let batched = {
        let (t, p, pads, _) = pack(&[long, short], &[resp.clone(), resp], dev).unwrap();
        assert_eq!(pads, vec![0, 3]);
        response_logp(&m, &t, p, &pads, false)
            .unwrap()
            .0
            .to_vec2::<f32>()
            .unwrap()
    };
    for (a, b) in alone[0].iter().zip(&batched[1]) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn ex_8_1_logp_is_differentiable() {
    let m = model(5);
    let dev = m.device();
    let tok = Tokenizer;
    let (t, p, pads, mask) = pack(
        &[tok.encode("12+9=").unwrap()],
        &[tok.encode("<think>2+9=11</think>").unwrap()],
        dev,
    )
    .unwrap();
    let (logp, _) = response_logp(&m, &t, p, &pads, false).unwrap();
    let total = (logp * &mask).unwrap().sum_all().unwrap();
    let grads = total.backward().unwrap();
    let moved = m
        .named_vars()
        .iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
        .count();
    assert_eq!(moved, m.named_vars().len(), "every weight gets a gradient");
    assert!(total.to_scalar::<f32>().unwrap() < 0.0);
}
