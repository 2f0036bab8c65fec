//! The tiny GPT: a naive reference forward pass, KV-cache generation against a full forward
//! pass, padding, seeding and the response layout.

mod common;

use common::{device, flat_params, model, prompts, tiny};
use zero_to_r1::candle::Tensor;
use zero_to_r1::lm::generate::{attention_mask, generate, positions, response_logp, SampleConfig};
use zero_to_r1::lm::model::{Gpt, GptConfig};
use zero_to_r1::lm::tokenizer::{Tokenizer, EOS, PAD};

/// Row-major weights of a parameter as f64.
fn w(m: &Gpt, name: &str) -> Vec<f64> {
    let (_, v) = m.named_vars().into_iter().find(|(n, _)| n == name).unwrap();
    v.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// y = x W^T + b for a candle Linear weight (out, in).
fn linear(x: &[f64], weight: &[f64], bias: Option<&[f64]>, out: usize) -> Vec<f64> {
    let n = x.len();
    (0..out)
        .map(|o| {
            let s: f64 = (0..n).map(|i| x[i] * weight[o * n + i]).sum();
            s + bias.map_or(0.0, |b| b[o])
        })
        .collect()
}

fn norm(x: &[f64], g: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean) / (var + 1e-5).sqrt() * g[i] + b[i])
        .collect()
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// The transformer written with loops, one sequence, no padding: logits (T, V).
fn naive_forward(m: &Gpt, tokens: &[u32]) -> Vec<Vec<f64>> {
    let c = m.config().clone();
    let (d, h) = (c.d_model, c.heads);
    let dh = d / h;
    let (te, pe) = (w(m, "tok_emb.weight"), w(m, "pos_emb.weight"));
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(t, &id)| {
            (0..d)
                .map(|i| te[id as usize * d + i] + pe[t * d + i])
                .collect()
        })
        .collect();
    for l in 0..c.layers {
        let p = |s: &str| format!("blocks.{l}.{s}");
        let hs: Vec<Vec<f64>> = x
            .iter()
            .map(|v| norm(v, &w(m, &p("ln1.weight")), &w(m, &p("ln1.bias"))))
            .collect();
        let qkv: Vec<Vec<f64>> = hs
            .iter()
            .map(|v| {
                linear(
                    v,
                    &w(m, &p("attn.qkv.weight")),
                    Some(&w(m, &p("attn.qkv.bias"))),
                    3 * d,
                )
            })
            .collect();
        let mut y = vec![vec![0.0; d]; tokens.len()];
        for head in 0..h {
            for i in 0..tokens.len() {
                let q = &qkv[i][head * dh..(head + 1) * dh];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let k = &qkv[j][d + head * dh..d + (head + 1) * dh];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (dh as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    let a = (s - max).exp() / z;
                    for e in 0..dh {
                        y[i][head * dh + e] += a * qkv[j][2 * d + head * dh + e];
                    }
                }
            }
        }
        for i in 0..tokens.len() {
            let o = linear(
                &y[i],
                &w(m, &p("attn.proj.weight")),
                Some(&w(m, &p("attn.proj.bias"))),
                d,
            );
            for e in 0..d {
                x[i][e] += o[e];
            }
            let h2 = norm(&x[i], &w(m, &p("ln2.weight")), &w(m, &p("ln2.bias")));
            let f: Vec<f64> = linear(
                &h2,
                &w(m, &p("mlp.fc1.weight")),
                Some(&w(m, &p("mlp.fc1.bias"))),
                c.mlp,
            )
            .into_iter()
            .map(gelu)
            .collect();
            let o2 = linear(
                &f,
                &w(m, &p("mlp.fc2.weight")),
                Some(&w(m, &p("mlp.fc2.bias"))),
                d,
            );
            for e in 0..d {
                x[i][e] += o2[e];
            }
        }
    }
    x.iter()
        .map(|v| {
            let n = norm(v, &w(m, "ln_f.weight"), &w(m, "ln_f.bias"));
            linear(&n, &w(m, "head.weight"), None, c.vocab)
        })
        .collect()
}

fn full_logits(m: &Gpt, tokens: &[u32], pads: &[usize], len: usize) -> Tensor {
    let dev = m.device();
    let t = Tensor::from_vec(tokens.to_vec(), (pads.len(), len), dev).unwrap();
    let pos = positions(pads, 0, len, dev).unwrap();
    let mask = attention_mask(pads, 0, len, dev).unwrap();
    m.forward(&t, &pos, &mask, None).unwrap()
}

#[test]
fn forward_matches_a_naive_loop_implementation() {
    // Bigger weights than the init, so that attention is far from uniform.
    let m = model(3);
    for (_, v) in m.named_vars() {
        let t = (v.as_tensor() * 20.0).unwrap();
        v.set(&t).unwrap();
    }
    let tokens = Tokenizer.encode("<think>12+34=46</think>").unwrap();
    let got = full_logits(&m, &tokens, &[0], tokens.len())
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = naive_forward(&m, &tokens);
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            assert!((*a as f64 - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn logits_with_the_kv_cache_equal_a_full_forward_pass() {
    let m = model(1);
    let dev = m.device();
    let tokens = Tokenizer.encode("347+85=<think>7+5+0=2c1</think>").unwrap();
    let n = tokens.len();
    let full = full_logits(&m, &tokens, &[0], n).squeeze(0).unwrap();
    // Read the first 5 tokens at once, then one at a time.
    let mut cache = m.new_cache();
    let mut rows = Vec::new();
    let mut start = 0;
    for len in std::iter::once(5).chain(std::iter::repeat_n(1, n - 5)) {
        let t = Tensor::from_vec(tokens[start..start + len].to_vec(), (1, len), dev).unwrap();
        let pos = positions(&[0], start, len, dev).unwrap();
        let mask = attention_mask(&[0], start, len, dev).unwrap();
        rows.push(
            m.forward(&t, &pos, &mask, Some(&mut cache))
                .unwrap()
                .squeeze(0)
                .unwrap(),
        );
        start += len;
    }
    assert_eq!(cache.len(), n);
    let cached = Tensor::cat(&rows, 0).unwrap();
    let diff = (cached - full)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "largest difference {diff}");
}

#[test]
fn sampling_is_seeded_and_stops_at_end_of_sequence() {
    let m = model(5);
    let config = SampleConfig {
        temperature: 1.5,
        top_k: 0,
        max_new_tokens: 20,
    };
    let a = generate(&m, &prompts(), &config, 11).unwrap();
    let b = generate(&m, &prompts(), &config, 11).unwrap();
    let c = generate(&m, &prompts(), &config, 12).unwrap();
    assert_eq!(a.responses, b.responses);
    assert_ne!(a.responses, c.responses);
    let tokens = a.tokens.to_vec2::<u32>().unwrap();
    let mask = a.mask.to_vec2::<f32>().unwrap();
    for (i, resp) in a.responses.iter().enumerate() {
        assert!(resp.len() <= 20);
        // EOS, if any, is the last token; the mask covers exactly the response.
        if let Some(k) = resp.iter().position(|&t| t == EOS) {
            assert_eq!(k, resp.len() - 1);
        }
        let real: f32 = mask[i].iter().sum();
        assert_eq!(real as usize, resp.len());
        assert_eq!(
            &tokens[i][a.prompt_len..a.prompt_len + resp.len()],
            &resp[..]
        );
        assert!(tokens[i][a.prompt_len + resp.len()..]
            .iter()
            .all(|&t| t == PAD));
    }
}

/// Rows that finish leave the sampling batch and the KV cache; the ones still running must keep
/// their own cached keys and values, so the sampler's log-probabilities equal a full forward
/// pass over the finished batch, and a greedy response does not depend on its batch.
#[test]
fn finished_rows_leave_the_batch_without_disturbing_the_others() {
    let m = model(7);
    let many: Vec<Vec<u32>> = prompts().into_iter().cycle().take(24).collect();
    let hot = SampleConfig {
        temperature: 3.0,
        top_k: 0,
        max_new_tokens: 24,
    };
    let r = generate(&m, &many, &hot, 5).unwrap();
    let lengths: Vec<usize> = r.responses.iter().map(Vec::len).collect();
    let longest = *lengths.iter().max().unwrap();
    let early = lengths.iter().filter(|&&l| l < longest).count();
    // Something moved: at least a quarter of the rows stopped before the last one did, so the
    // batch shrank while the last rows were still sampled.
    assert!(4 * early >= many.len(), "lengths {lengths:?}");
    let (full, _) = response_logp(&m, &r.tokens, r.prompt_len, &r.pads, false).unwrap();
    let full = full.to_vec2::<f32>().unwrap();
    let sampled = r.logp.to_vec2::<f32>().unwrap();
    for (i, len) in lengths.iter().enumerate() {
        for t in 0..*len {
            let d = (full[i][t] - sampled[i][t]).abs();
            assert!(
                d < 1e-4,
                "row {i}, token {t}: {} vs {}",
                sampled[i][t],
                full[i][t]
            );
        }
    }
    let greedy = SampleConfig::greedy(24);
    let together = generate(&m, &many[..3], &greedy, 0).unwrap();
    for (i, p) in many[..3].iter().enumerate() {
        let alone = generate(&m, std::slice::from_ref(p), &greedy, 0).unwrap();
        assert_eq!(alone.responses[0], together.responses[i]);
    }
}

#[test]
fn top_k_one_is_greedy() {
    let m = model(6);
    let greedy = generate(&m, &prompts(), &SampleConfig::greedy(10), 1).unwrap();
    let top1 = SampleConfig {
        temperature: 1.0,
        top_k: 1,
        max_new_tokens: 10,
    };
    let t = generate(&m, &prompts(), &top1, 99).unwrap();
    assert_eq!(greedy.responses, t.responses);
}

#[test]
fn parameter_count_and_bad_shapes() {
    let c = GptConfig::default();
    let m = Gpt::new(&c, 0, &device()).unwrap();
    assert_eq!(m.parameters(), c.parameters());
    assert!((700_000..1_200_000).contains(&m.parameters()));
    let bad = GptConfig { heads: 3, ..tiny() };
    let e = Gpt::new(&bad, 0, &device()).err().unwrap().to_string();
    assert!(e.contains("model.heads"), "{e}");
    // A prompt as long as the context leaves no room: an error, not a panic.
    let long = vec![Tokenizer.encode(&"1".repeat(32)).unwrap()];
    assert!(generate(&model(0), &long, &SampleConfig::default(), 0).is_err());
}

#[test]
fn same_seed_same_weights() {
    let a = flat_params(&model(8));
    assert_eq!(a, flat_params(&model(8)));
    assert_ne!(a, flat_params(&model(9)));
}
