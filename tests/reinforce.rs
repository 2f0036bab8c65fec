//! Chapters 2–3: aggregation, log-probabilities, the REINFORCE gradient and learning. The
//! exercises' own tests are in `grade_ch02.rs` and `grade_ch03.rs`.

mod common;

use common::assert_solved;

use zero_to_r1::advantage::reward_to_go;
use zero_to_r1::algo::reinforce::{train, Baseline, ReinforceConfig};
use zero_to_r1::algo::{ModelKind, OptimizerKind};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::exact::{fixed_logits, gradient_estimate};
use zero_to_r1::exact::{softmax_gradient, softmax_policy};
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::objective::{aggregate, Aggregation};
use zero_to_r1::policy::{log_probs, policy_table, Mlp, Model, Tabular};
use zero_to_r1::prelude::*;
use zero_to_r1::rollout::{derive_seed, sample_batch};

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

#[test]
fn reinforce_with_an_mlp_policy_solves_the_house() {
    // Budget: 100 updates × 16 episodes = 1,600 episodes.
    let config = ReinforceConfig {
        updates: 100,
        policy: ModelKind::Mlp { hidden: 32 },
        lr: 0.01,
        seed: 5,
        ..ReinforceConfig::default()
    };
    let mut env = Env::seed();
    let trained = train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
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
