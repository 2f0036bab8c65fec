//! The whole GPT of the CPU default with the fused kernels against the same GPT in plain tensor
//! ops: log-probabilities and every parameter's gradient of a padded batch, and sampling with
//! the KV cache. One test in its own file, because it switches the kernels off for the process.

use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::lm::fused;
use zero_to_r1::lm::generate::{generate, pack, response_logp, SampleConfig};
use zero_to_r1::lm::model::{Gpt, GptConfig};

fn batch(seed: u64, vocab: u32) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = |lo: usize, hi: usize| -> Vec<u32> {
        let n = rng.random_range(lo..=hi);
        (0..n).map(|_| rng.random_range(3..vocab)).collect()
    };
    let prompts: Vec<_> = (0..24).map(|_| seq(3, 9)).collect();
    let responses: Vec<_> = (0..24).map(|_| seq(1, 40)).collect();
    (prompts, responses)
}

/// Log-probs of the batch and the gradient of Σ logp · mask for every parameter.
fn logp_and_grads(model: &Gpt, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let (tokens, p, pads, mask) = pack(prompts, responses, model.device()).unwrap();
    let (logp, _) = response_logp(model, &tokens, p, &pads, false).unwrap();
    let loss = (&logp * &mask).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut out = vec![flat(&(&logp * &mask).unwrap())];
    for (_, var) in model.named_vars() {
        out.push(flat(
            grads
                .get(var.as_tensor())
                .expect("every parameter gets a gradient"),
        ));
    }
    out
}

#[test]
fn the_fused_model_matches_the_composite_model() {
    let config = GptConfig::default();
    let model = Gpt::new(&config, 5, &Device::Cpu).unwrap();
    let (prompts, responses) = batch(6, config.vocab as u32);

    let fast = logp_and_grads(&model, &prompts, &responses);
    let sampling = SampleConfig {
        temperature: 1.0,
        top_k: 0,
        max_new_tokens: 30,
    };
    let sampled_fast = generate(&model, &prompts, &sampling, 7).unwrap();
    fused::set_enabled(false);
    let slow = logp_and_grads(&model, &prompts, &responses);
    let sampled_slow = generate(&model, &prompts, &sampling, 7).unwrap();
    fused::set_enabled(true);

    // Log-probs, then each parameter's gradient, relative to the gradient's largest entry.
    for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff / scale < 1e-4,
            "entry {i} (0 = log-probs, then parameters by name): differs by {diff} of {scale}"
        );
    }
    // Same seed, same samples; the log-probs of the sampled tokens agree.
    assert_eq!(sampled_fast.responses, sampled_slow.responses);
    let (a, b) = (
        sampled_fast
            .logp
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        sampled_slow
            .logp
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
    );
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff < 1e-4, "sampled log-probs differ by {diff}");
}
