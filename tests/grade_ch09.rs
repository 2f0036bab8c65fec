//! Grading tests of chapter 9 (R1-Zero on a laptop). A test named `ex_9_N_…` grades exercise
//! 9.N.

mod common;

use common::model;
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::lm::generate::{attention_mask, pack, positions};
use zero_to_r1::lm::grpo::{part_loss, token_advantages, Tokens};
use zero_to_r1::lm::model::Gpt;
use zero_to_r1::lm::tokenizer::Tokenizer;
use zero_to_r1::objective::{Aggregation, LossSettings};
use zero_to_r1::update::{PartLoss, Rows};

type Part = Rows<Tokens>;

/// The GRPO loss of `part` with `response-mean` aggregation.
fn loss_of(m: &Gpt, part: &Part, clip: f64, beta: f64) -> PartLoss {
    let settings = LossSettings {
        clip,
        beta,
        aggregation: Aggregation::ResponseMean,
        ..Default::default()
    };
    part_loss(m, part, &settings, false).unwrap()
}

fn grid(rows: &[&[f32]]) -> Tensor {
    let (b, r) = (rows.len(), rows[0].len());
    let flat: Vec<f32> = rows.iter().flat_map(|x| x.iter().copied()).collect();
    // Advantages only, no model: the CPU.
    Tensor::from_vec(flat, (b, r), &Device::Cpu).unwrap()
}

#[test]
fn ex_9_1_token_advantages_by_hand() {
    // Two groups of 4. Group 1: rewards 1, 0, 0, 1 — mean 1/2, unbiased std √(1/3), so
    // ±(1/2)/(√(1/3) + ε) ≈ ±0.8659 with ε = 1e-4. Group 2: all 0.2 — every advantage
    // exactly 0.
    let rewards = [1.0, 0.0, 0.0, 1.0, 0.2, 0.2, 0.2, 0.2];
    let mask = grid(&[
        &[1.0, 1.0, 1.0],
        &[1.0, 0.0, 0.0],
        &[1.0, 1.0, 0.0],
        &[1.0, 1.0, 1.0],
        &[1.0, 1.0, 1.0],
        &[1.0, 0.0, 0.0],
        &[1.0, 1.0, 0.0],
        &[1.0, 1.0, 1.0],
    ]);
    let a = 0.5 / ((1.0f64 / 3.0).sqrt() + zero_to_r1::advantage::STD_EPS);
    let got = token_advantages(&rewards, 4, true, &mask)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = [
        [a, a, a],
        [-a, 0.0, 0.0],
        [-a, -a, 0.0],
        [a, a, a],
        [0.0; 3],
        [0.0; 3],
        [0.0; 3],
        [0.0; 3],
    ];
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for t in 0..3 {
            assert!(
                (g[t] as f64 - w[t]).abs() < 1e-5,
                "response {i}, token {t}: {} instead of {}",
                g[t],
                w[t]
            );
        }
    }
}

#[test]
fn ex_9_1_without_std_scaling_the_advantages_are_only_centred() {
    let rewards = [1.2, 0.2, 0.0, 0.2];
    let mask = grid(&[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 0.0], &[1.0, 1.0]]);
    let got = token_advantages(&rewards, 4, false, &mask)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = [[0.8, 0.8], [-0.2, -0.2], [-0.4, 0.0], [-0.2, -0.2]];
    for (g, w) in got.iter().zip(want) {
        for t in 0..2 {
            assert!((g[t] as f64 - w[t]).abs() < 1e-5, "{got:?}");
        }
    }
    assert!(token_advantages(&rewards, 3, false, &mask).is_err());
}

/// log π(response token t) for one unpadded prompt + response, by a plain forward pass and a
/// log-softmax in f64.
fn naive_logp(m: &Gpt, prompt: &[u32], response: &[u32]) -> Vec<f64> {
    let ids: Vec<u32> = prompt.iter().chain(response).copied().collect();
    let l = ids.len();
    let dev = m.device();
    let tokens = Tensor::from_vec(ids.clone(), (1, l), dev).unwrap();
    let pos = positions(&[0], 0, l, dev).unwrap();
    let mask = attention_mask(&[0], 0, l, dev).unwrap();
    let logits = m.forward(&tokens, &pos, &mask, None).unwrap();
    let logits = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    (0..response.len())
        .map(|t| {
            let row = &logits[prompt.len() + t - 1];
            let max = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
            let z: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            row[response[t] as usize] as f64 - max - z.ln()
        })
        .collect()
}

struct Case {
    part: Part,
    logp: Vec<Vec<f64>>,
    old: Vec<Vec<f64>>,
    reference: Vec<Vec<f64>>,
    adv: Vec<f64>,
}

/// Three responses to prompts of different lengths, with old and reference log-probs moved
/// away from the model's so that ratios differ from 1 (some beyond the clip).
fn case(m: &Gpt) -> Case {
    let tok = Tokenizer;
    let prompts: Vec<Vec<u32>> = ["347+85=", "7-3=", "12+9="]
        .iter()
        .map(|p| tok.encode(p).unwrap())
        .collect();
    let responses: Vec<Vec<u32>> = [
        "<think>7+5+0=2c1</think><answer>432</answer><eos>",
        "<think>7-3</think><eos>",
        "<answer>21</answer><eos>",
    ]
    .iter()
    .map(|r| tok.encode(r).unwrap())
    .collect();
    let (tokens, p, pads, mask) = pack(&prompts, &responses, m.device()).unwrap();
    let logp: Vec<Vec<f64>> = prompts
        .iter()
        .zip(&responses)
        .map(|(x, y)| naive_logp(m, x, y))
        .collect();
    let r = responses.iter().map(Vec::len).max().unwrap();
    let shifted = |by: &dyn Fn(usize, usize) -> f64| -> Vec<Vec<f64>> {
        logp.iter()
            .enumerate()
            .map(|(i, row)| {
                (0..r)
                    .map(|t| row.get(t).map_or(0.0, |&x| x + by(i, t)))
                    .collect()
            })
            .collect()
    };
    let old = shifted(&|i, t| 0.3 * ((i * 7 + t * 3) % 5) as f64 / 4.0 - 0.15);
    let reference = shifted(&|i, t| 0.5 * ((i * 3 + t * 5) % 7) as f64 / 6.0 - 0.2);
    let adv = vec![1.3, -0.7, 0.4];
    let to_tensor = |rows: &[Vec<f64>]| {
        let flat: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
        Tensor::from_vec(flat, (3, r), m.device()).unwrap()
    };
    let m_rows: Vec<Vec<f32>> = mask.to_vec2().unwrap();
    let adv_rows: Vec<Vec<f64>> = (0..3)
        .map(|i| (0..r).map(|t| adv[i] * m_rows[i][t] as f64).collect())
        .collect();
    Case {
        part: Rows {
            inputs: Tokens {
                tokens,
                prompt_len: p,
                pads,
            },
            old_logp: to_tensor(&old),
            ref_logp: to_tensor(&reference),
            advantages: to_tensor(&adv_rows),
            mask,
        },
        logp,
        old,
        reference,
        adv,
    }
}

/// The GRPO loss with the per-response mean, in plain f64.
fn naive_loss(c: &Case, clip: f64, beta: f64) -> f64 {
    let mut total = 0.0;
    for i in 0..3 {
        let n = c.logp[i].len();
        let mut sum = 0.0;
        for t in 0..n {
            let ratio = (c.logp[i][t] - c.old[i][t]).exp();
            let a = c.adv[i];
            let surrogate = (ratio * a).min(ratio.clamp(1.0 - clip, 1.0 + clip) * a);
            let x = c.reference[i][t] - c.logp[i][t];
            sum += -surrogate + beta * (x.exp() - 1.0 - x);
        }
        total += sum / n as f64;
    }
    total / 3.0
}

#[test]
fn ex_9_2_part_loss_matches_a_naive_reference() {
    let m = model(6);
    let c = case(&m);
    for (clip, beta) in [(0.2, 0.04), (0.05, 0.0), (10.0, 0.5)] {
        let PartLoss { loss, logp, .. } = loss_of(&m, &c.part, clip, beta);
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        let want = naive_loss(&c, clip, beta);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "clip {clip}, β {beta}: loss {got} instead of {want}"
        );
        let rows = logp.to_vec2::<f32>().unwrap();
        for (i, row) in c.logp.iter().enumerate() {
            for (t, &x) in row.iter().enumerate() {
                assert!((rows[i][t] as f64 - x).abs() < 1e-4, "log-prob {i},{t}");
            }
        }
    }
}

#[test]
fn ex_9_2_a_step_on_the_loss_makes_good_responses_likelier() {
    // Old = current policy (ratio 1), β = 0: one gradient step must raise the log-probability
    // of the response with the positive advantage and lower the one with the negative.
    let m = model(8);
    let mut c = case(&m);
    let r = c.part.mask.dim(1).unwrap();
    let current: Vec<f32> = c
        .logp
        .iter()
        .flat_map(|row| (0..r).map(|t| row.get(t).copied().unwrap_or(0.0) as f32))
        .collect();
    c.part.old_logp = Tensor::from_vec(current, (3, r), m.device()).unwrap();
    let total = |m: &Gpt, i: usize| -> f64 {
        let logp = loss_of(m, &c.part, 0.2, 0.0).logp;
        let row = logp.to_vec2::<f32>().unwrap();
        let mask = c.part.mask.to_vec2::<f32>().unwrap();
        (0..r).map(|t| (row[i][t] * mask[i][t]) as f64).sum()
    };
    let before = (total(&m, 0), total(&m, 1));
    let loss = loss_of(&m, &c.part, 0.2, 0.0).loss;
    let grads = loss.backward().unwrap();
    for v in m.vars() {
        if let Some(g) = grads.get(v.as_tensor()) {
            v.set(&(v.as_tensor() - (g * 0.05).unwrap()).unwrap())
                .unwrap();
        }
    }
    let after = (total(&m, 0), total(&m, 1));
    assert!(
        after.0 > before.0,
        "advantage +1.3: log π {} → {}",
        before.0,
        after.0
    );
    assert!(
        after.1 < before.1,
        "advantage −0.7: log π {} → {}",
        before.1,
        after.1
    );
}

/// GSPO's sequence log-ratio of the example below, with `logp` differentiable.
fn gspo_example() -> (zero_to_r1::candle::Var, Tensor, Tensor) {
    let logp =
        zero_to_r1::candle::Var::from_tensor(&grid(&[&[-1.0, -2.0, 0.0], &[-0.5, -0.5, -0.5]]))
            .unwrap();
    let old = grid(&[&[-1.5, -1.0, 0.0], &[-1.0, -1.0, -1.0]]);
    let mask = grid(&[&[1.0, 1.0, 0.0], &[1.0, 1.0, 1.0]]);
    (logp, old, mask)
}

#[test]
fn ex_9_3_sequence_log_ratio_by_hand() {
    // Row 0: real steps 0 and 1, log-ratios 0.5 and −1, mean −0.25 (step 2 is padding and
    // does not count). Row 1: three steps of 0.5, mean 0.5.
    let (logp, old, mask) = gspo_example();
    let got = zero_to_r1::objective::sequence_log_ratio(logp.as_tensor(), &old, &mask)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = [[-0.25f32; 3], [0.5; 3]];
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-6, "got {got:?}, want {want:?}");
        }
    }
}

#[test]
fn ex_9_3_the_gradient_reaches_logp_only_through_the_mean() {
    // The sum of the output counts each row's mean three times (once per column), so the
    // gradient is 3 / |o_i| on each real step of row i, 0 on padding, and nothing reaches
    // old_logp.
    let (logp, old, mask) = gspo_example();
    let old = zero_to_r1::candle::Var::from_tensor(&old).unwrap();
    let out = zero_to_r1::objective::sequence_log_ratio(logp.as_tensor(), old.as_tensor(), &mask)
        .unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    let g = grads
        .get(logp.as_tensor())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = [[1.5f32, 1.5, 0.0], [1.0, 1.0, 1.0]];
    for (r, w) in g.iter().zip(&want) {
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-5, "got {g:?}, want {want:?}");
        }
    }
    let into_old = grads.get(old.as_tensor()).map(|t| {
        t.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    });
    assert!(
        into_old.unwrap_or(0.0) == 0.0,
        "a gradient reached old_logp"
    );
}
