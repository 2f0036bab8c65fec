//! Helpers shared by the test files: random batches and the check that a cat solved the house.
#![allow(dead_code)]

use zero_to_r1::advantage::{gae, td_errors};
use zero_to_r1::candle::Device;
use zero_to_r1::exact::success_probabilities;
use zero_to_r1::gridworld::ndarray::{Array2, ArrayView2};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::gridworld::Env;
use zero_to_r1::lm::config::LmConfig;
use zero_to_r1::lm::model::{Gpt, GptConfig};
use zero_to_r1::lm::tokenizer::Tokenizer;

/// Random rewards and a mask for a batch of 5 episodes of random lengths up to 9.
pub fn random_batch(seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (b, t) = (5, 9);
    let lengths: Vec<usize> = (0..b).map(|_| rng.random_range(1..=t)).collect();
    let rewards = Array2::from_shape_fn((b, t), |(i, k)| {
        if k < lengths[i] {
            rng.random_range(-5.0..5.0)
        } else {
            0.0
        }
    });
    let mask = Array2::from_shape_fn((b, t), |(i, k)| if k < lengths[i] { 1.0 } else { 0.0 });
    (rewards, mask)
}

/// Random rewards, values and endings for a padded batch of episodes.
pub struct Data {
    pub rewards: Array2<f64>,
    pub values: Array2<f64>,
    pub last: Vec<f64>,
    pub mask: Array2<f64>,
    pub terminated: Vec<bool>,
}

impl Data {
    /// The library's TD errors of this data.
    pub fn td_errors(&self, gamma: f64) -> Array2<f64> {
        td_errors(
            self.rewards.view(),
            self.values.view(),
            &self.last,
            self.mask.view(),
            &self.terminated,
            gamma,
        )
    }

    /// The library's GAE advantages and value targets of this data.
    pub fn gae(&self, gamma: f64, lambda: f64) -> (Array2<f64>, Array2<f64>) {
        gae(
            self.rewards.view(),
            self.values.view(),
            &self.last,
            self.mask.view(),
            &self.terminated,
            gamma,
            lambda,
        )
    }
}

pub fn random_data(seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let (b, t) = (6, 10);
    let lengths: Vec<usize> = (0..b).map(|_| rng.random_range(1..=t)).collect();
    let mask = Array2::from_shape_fn((b, t), |(i, k)| if k < lengths[i] { 1.0 } else { 0.0 });
    let rewards = Array2::from_shape_fn((b, t), |_| rng.random_range(-3.0..3.0)) * &mask;
    let values = Array2::from_shape_fn((b, t), |_| rng.random_range(-5.0..5.0)) * &mask;
    let last = (0..b).map(|_| rng.random_range(-5.0..5.0)).collect();
    // Half the episodes terminated, half truncated.
    let terminated = (0..b).map(|i| i % 2 == 0).collect();
    Data {
        rewards,
        values,
        last,
        mask,
        terminated,
    }
}

pub fn close(a: ArrayView2<f64>, b: ArrayView2<f64>, tol: f64) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < tol)
}

pub fn assert_solved(env: &Env, table: &Array2<f64>) {
    let mdp = env.mdp();
    let j = mdp.expected_return(table.view(), 1.0).unwrap();
    let optimal = mdp.value_iteration(0.99, 1e-10).unwrap();
    let j_star = mdp.expected_return(optimal.policy.view(), 1.0).unwrap();
    assert!(j >= 0.95 * j_star, "J = {j}, J* = {j_star}");
    let p = success_probabilities(env.house(), env.config(), table).unwrap();
    for &s in env.house().starts() {
        assert!(p[s] >= 0.95, "success probability from {s}: {}", p[s]);
    }
}

/// Random per-step values and a mask with rows of random length (at least 1).
pub fn random_masked(seed: u64, b: usize, t: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let lengths: Vec<usize> = (0..b).map(|_| rng.random_range(1..=t)).collect();
    let x = (0..b)
        .map(|_| (0..t).map(|_| rng.random_range(-2.0..2.0)).collect())
        .collect();
    (x, lengths)
}

/// A tiny GPT configuration for tests.
pub fn tiny() -> GptConfig {
    GptConfig {
        context: 32,
        d_model: 16,
        layers: 2,
        heads: 2,
        mlp: 24,
        ..GptConfig::default()
    }
}

/// The device of the language-model tests that can run on a GPU: the CPU, or with
/// `ZERO_TO_R1_TEST_DEVICE=cuda` (and a build with `--features cuda`) the first NVIDIA GPU.
pub fn device() -> Device {
    match std::env::var("ZERO_TO_R1_TEST_DEVICE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "cpu") => Device::Cpu,
        Ok(name) => zero_to_r1::lm::device(name)
            .unwrap_or_else(|e| panic!("ZERO_TO_R1_TEST_DEVICE={name}: {e}")),
        Err(e) => panic!("ZERO_TO_R1_TEST_DEVICE: {e}"),
    }
}

/// A tiny GPT with seeded weights, on the test device.
pub fn model(seed: u64) -> Gpt {
    Gpt::new(&tiny(), seed, &device()).unwrap()
}

/// Every parameter of a model, in name order, as one vector.
pub fn flat_params(m: &Gpt) -> Vec<f32> {
    m.vars()
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

/// Three prompts of different lengths.
pub fn prompts() -> Vec<Vec<u32>> {
    let tok = Tokenizer;
    ["347+85=", "7-3=", "12+9="]
        .iter()
        .map(|p| tok.encode(p).unwrap())
        .collect()
}

/// A tiny R1-Zero run (`tests/data/tiny-r1.toml`), for the command-line tests.
pub const TINY_RUN: &str = include_str!("../data/tiny-r1.toml");

/// The config of [`TINY_RUN`] and its model fine-tuned from `seed`: traces that miss a tag
/// half the time, so that GRPO with a format reward has something to teach it.
pub fn format_learner(seed: u64) -> (LmConfig, Gpt) {
    let c = LmConfig::from_toml(TINY_RUN, "tests/data/tiny-r1.toml").unwrap();
    let task = c.task().unwrap();
    let m = Gpt::new(&c.model, seed, &device()).unwrap();
    zero_to_r1::lm::sft::train(&m, task.as_ref(), 1, &c.data, &c.sft, seed, |_| {}).unwrap();
    (c, m)
}
