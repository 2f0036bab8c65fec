//! Chapters 2–3: returns, baselines, the REINFORCE loss and its gradient, and learning.

use zero_to_r1::advantage::{mean_baseline, reward_to_go, total_return};
use zero_to_r1::algo::reinforce::{train, Baseline, ReinforceConfig};
use zero_to_r1::algo::{ModelKind, OptimizerKind};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::exact::{softmax_gradient, softmax_policy};
use zero_to_r1::experiments::ch01::success_probabilities;
use zero_to_r1::experiments::ch03::{fixed_logits, gradient_estimate};
use zero_to_r1::gridworld::ndarray::{Array2, ArrayView2};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::objective::{aggregate, reinforce_loss, Aggregation};
use zero_to_r1::policy::{log_probs, policy_table, Mlp, Model, Tabular};
use zero_to_r1::prelude::*;
use zero_to_r1::rollout::{derive_seed, sample_batch};

fn random_batch(seed: u64) -> (Array2<f64>, Array2<f64>) {
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

/// Naive reference: G_t = Σ_{k ≥ t, real} γ^{k−t} r_k with explicit powers.
fn naive_rtg(r: ArrayView2<f64>, m: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    Array2::from_shape_fn(r.dim(), |(i, t)| {
        if m[[i, t]] == 0.0 {
            return 0.0;
        }
        (t..r.ncols())
            .filter(|&k| m[[i, k]] > 0.0)
            .map(|k| gamma.powi((k - t) as i32) * r[[i, k]])
            .sum()
    })
}

#[test]
fn reward_to_go_matches_naive_sums() {
    for seed in 0..5 {
        let (r, m) = random_batch(seed);
        for gamma in [0.0, 0.5, 0.9, 1.0] {
            let fast = reward_to_go(r.view(), m.view(), gamma);
            let slow = naive_rtg(r.view(), m.view(), gamma);
            assert!(
                (&fast - &slow).iter().all(|d| d.abs() < 1e-12),
                "γ = {gamma}"
            );
        }
        // γ = 0: each step is weighted by its own reward only.
        assert_eq!(reward_to_go(r.view(), m.view(), 0.0), &r * &m);
        // Total return: G_0 on every real step.
        let total = total_return(r.view(), m.view(), 1.0);
        for i in 0..r.nrows() {
            let g0: f64 = r.row(i).sum();
            for t in 0..r.ncols() {
                assert!((total[[i, t]] - g0 * m[[i, t]]).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn mean_baseline_leaves_each_episode_out() {
    // Three episodes; the third has ended after one step.
    let g = Array2::from_shape_vec((3, 2), vec![1.0, 4.0, 3.0, 8.0, 5.0, 0.0]).unwrap();
    let m = Array2::from_shape_vec((3, 2), vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0]).unwrap();
    let b = mean_baseline(g.view(), m.view());
    let want = Array2::from_shape_vec((3, 2), vec![4.0, 8.0, 3.0, 4.0, 2.0, 0.0]).unwrap();
    assert_eq!(b, want);
}

#[test]
fn aggregation_by_hand() {
    let d = Device::Cpu;
    let x = Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &d).unwrap();
    let m = Tensor::new(&[[1.0f64, 1.0, 0.0], [1.0, 0.0, 0.0]], &d).unwrap();
    let sum = aggregate(&x, &m, Aggregation::EpisodeSum)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(sum, (1.0 + 2.0 + 4.0) / 2.0);
    let mean = aggregate(&x, &m, Aggregation::StepMean)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(mean, (1.0 + 2.0 + 4.0) / 3.0);
    assert_eq!(
        "step-mean".parse::<Aggregation>().unwrap(),
        Aggregation::StepMean
    );
    assert!("mean"
        .parse::<Aggregation>()
        .unwrap_err()
        .to_string()
        .contains("episode-sum"));
}

#[test]
fn log_probs_and_tables_of_both_policies() {
    let house = House::seed();
    let mut rng = StdRng::seed_from_u64(1);
    let logits = Array2::from_shape_fn((63, 4), |_| rng.random_range(-2.0..2.0));
    let tab = Tabular::from_array(&logits, &Device::Cpu).unwrap();
    let table = policy_table(&tab).unwrap();
    assert!((&table - &softmax_policy(&logits))
        .iter()
        .all(|d| d.abs() < 1e-12));
    let cells = Tensor::new(&[[10u32, 11], [30, 10]], &Device::Cpu).unwrap();
    let acts = Tensor::new(&[[0u32, 3], [2, 1]], &Device::Cpu).unwrap();
    let lp = log_probs(&tab, &cells, &acts)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    assert!((lp[0][1] - table[[11, 3]].ln()).abs() < 1e-12);
    assert!((lp[1][0] - table[[30, 2]].ln()).abs() < 1e-12);
    // A new MLP policy is the uniformly random cat.
    let mlp = Mlp::new(&house, 16, 4, 7, &Device::Cpu).unwrap();
    assert!(policy_table(&mlp)
        .unwrap()
        .iter()
        .all(|p| (p - 0.25).abs() < 1e-12));
    assert_eq!(mlp.vars().len(), 4);
}

#[test]
fn autograd_gradient_equals_the_closed_form() {
    // For a tabular softmax policy, ∇_{θ_s} log π(a|s) = onehot(a) − π(·|s), so the estimate
    // is (1/B) Σ_i Σ_t Â_t (onehot(a_t) − π(·|s_t)) in row s_t.
    let mut env = Env::seed();
    let logits = fixed_logits(&env, 0.7).unwrap();
    let table = softmax_policy(&logits);
    let batch = sample_batch(&mut env, table.view(), 6, 9);
    let adv = reward_to_go(batch.rewards.view(), batch.mask.view(), 1.0);
    let policy = Tabular::from_array(&logits, &Device::Cpu).unwrap();
    let auto = gradient_estimate(&policy, &batch, &adv).unwrap();
    let mut naive = Array2::<f64>::zeros((63, 4));
    for i in 0..batch.episodes() {
        for t in 0..batch.lengths[i] {
            let (s, a) = (
                batch.states[[i, t]] as usize,
                batch.actions[[i, t]] as usize,
            );
            for b in 0..4 {
                let onehot = if a == b { 1.0 } else { 0.0 };
                naive[[s, b]] += adv[[i, t]] * (onehot - table[[s, b]]) / batch.episodes() as f64;
            }
        }
    }
    assert!((&auto - &naive).iter().all(|d| d.abs() < 1e-10));
}

#[test]
fn the_loss_carries_a_minus_sign() {
    let d = Device::Cpu;
    let logp = Tensor::new(&[[-1.0f64, -2.0]], &d).unwrap();
    let adv = Tensor::new(&[[3.0f64, -0.5]], &d).unwrap();
    let m = Tensor::new(&[[1.0f64, 1.0]], &d).unwrap();
    let l = reinforce_loss(&logp, &adv, &m, Aggregation::EpisodeSum)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    // L = −(Â₀ log π₀ + Â₁ log π₁) = −(3·(−1) + (−0.5)·(−2)) = 2.
    assert_eq!(l, 2.0);
}

#[test]
fn sample_mean_gradient_converges_to_the_exact_gradient() {
    // With N episodes per batch the estimate is unbiased and its mean squared error is
    // (variance of one episode's term) / N: quadrupling N must divide it by about 4.
    let mut env = Env::seed();
    let logits = fixed_logits(&env, 1.0).unwrap();
    let table = softmax_policy(&logits);
    let exact = softmax_gradient(&env.mdp(), &logits, 1.0).unwrap().grad;
    let policy = Tabular::from_array(&logits, &Device::Cpu).unwrap();
    let sq = |a: &Array2<f64>| a.iter().map(|x| x * x).sum::<f64>();
    let mut mses = Vec::new();
    for (k, n) in [4usize, 16, 64].into_iter().enumerate() {
        let m = 1600 / n;
        let mut mean = Array2::zeros(exact.dim());
        let mut mse = 0.0;
        for j in 0..m {
            let batch = sample_batch(
                &mut env,
                table.view(),
                n,
                derive_seed(100 + k as u64, j as u64),
            );
            let adv = reward_to_go(batch.rewards.view(), batch.mask.view(), 1.0);
            let g = gradient_estimate(&policy, &batch, &adv).unwrap();
            mse += sq(&(&g - &exact)) / m as f64;
            mean += &(g / m as f64);
        }
        // Unbiased: the average of the estimates is within 4 of its own standard errors.
        let bias = sq(&(&mean - &exact)).sqrt();
        let noise = (mse / m as f64).sqrt();
        assert!(bias < 4.0 * noise, "N = {n}: bias {bias} vs noise {noise}");
        mses.push(mse);
    }
    for w in mses.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (2.5..6.5).contains(&ratio),
            "MSE ratio {ratio} for 4× the episodes: {mses:?}"
        );
    }
}

fn check_learned(config: &ReinforceConfig) {
    let mut env = Env::seed();
    let trained = train(&mut env, config, |_| {}).unwrap();
    let table = trained.table().unwrap();
    let mdp = env.mdp();
    // Exact success probability from every start cell, and exact J against the optimum.
    let j = mdp.expected_return(table.view(), 1.0).unwrap();
    let optimal = mdp.value_iteration(0.99, 1e-10).unwrap();
    let j_star = mdp.expected_return(optimal.policy.view(), 1.0).unwrap();
    assert!(j >= 0.95 * j_star, "J = {j}, J* = {j_star}");
    let p = success_probabilities(env.house(), env.config(), &table).unwrap();
    for &start in env.house().starts() {
        assert!(
            p[start] >= 0.95,
            "success probability from {start}: {}",
            p[start]
        );
    }
    assert_eq!(trained.log.len(), config.updates);
}

#[test]
fn reinforce_with_a_learned_baseline_solves_the_house() {
    // Budget: 100 updates × 16 episodes = 1,600 episodes.
    check_learned(&ReinforceConfig {
        updates: 100,
        seed: 4,
        ..ReinforceConfig::default()
    });
}

#[test]
fn reinforce_with_an_mlp_policy_solves_the_house() {
    // Budget: 100 updates × 16 episodes = 1,600 episodes.
    check_learned(&ReinforceConfig {
        updates: 100,
        policy: ModelKind::Mlp { hidden: 32 },
        lr: 0.01,
        seed: 5,
        ..ReinforceConfig::default()
    });
}

#[test]
fn plain_sgd_without_a_baseline_learns_too_but_untrained_cats_do_not() {
    let config = ReinforceConfig {
        updates: 150,
        baseline: Baseline::TotalReturn,
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        seed: 6,
        ..ReinforceConfig::default()
    };
    let mut env = Env::seed();
    let trained = train(&mut env, &config, |_| {}).unwrap();
    let first = trained.log.first().unwrap().exact_j;
    let last = trained.log.last().unwrap().exact_j;
    assert!(first < 0.0 && last > 85.0, "J went from {first} to {last}");
}

#[test]
fn bad_settings_are_named() {
    let mut env = Env::seed();
    for (config, field) in [
        (
            ReinforceConfig {
                updates: 0,
                ..Default::default()
            },
            "updates",
        ),
        (
            ReinforceConfig {
                episodes_per_update: 1,
                ..Default::default()
            },
            "episodes_per_update",
        ),
        (
            ReinforceConfig {
                gamma: 1.5,
                ..Default::default()
            },
            "gamma",
        ),
        (
            ReinforceConfig {
                lr: -1.0,
                ..Default::default()
            },
            "lr",
        ),
        (
            ReinforceConfig {
                value_lr: f64::NAN,
                ..Default::default()
            },
            "value_lr",
        ),
    ] {
        let err = train(&mut env, &config, |_| {})
            .err()
            .expect("should fail")
            .to_string();
        assert!(err.contains(field), "{err}");
    }
    assert!("learnt".parse::<Baseline>().is_err());
    // A learning rate far too large is caught as a non-finite loss or simply does not learn.
    let wild = ReinforceConfig {
        optimizer: OptimizerKind::Sgd,
        lr: 1e6,
        updates: 30,
        ..Default::default()
    };
    if let Ok(t) = train(&mut env, &wild, |_| {}) {
        assert!(t.log.iter().all(|u| u.loss.is_finite()));
    }
}
