//! Chapters 4–5: TD errors, GAE, the clipped surrogate and PPO's diagnostics.

mod common;

use common::assert_solved;
use zero_to_r1::advantage::{explained_variance, gae, normalize, reward_to_go, td_errors};
use zero_to_r1::candle::{Device, Tensor, Var};
use zero_to_r1::gridworld::ndarray::{Array2, ArrayView2};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::objective::{approx_kl, clip_frac, clipped_surrogate, value_loss, Aggregation};

struct Data {
    rewards: Array2<f64>,
    values: Array2<f64>,
    last: Vec<f64>,
    mask: Array2<f64>,
    terminated: Vec<bool>,
}

fn random_data(seed: u64) -> Data {
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

/// Naive O(T²) reference: Â_t = Σ_k (γλ)^k δ_{t+k}, with δ written out from its definition.
fn naive_gae(d: &Data, gamma: f64, lambda: f64) -> Array2<f64> {
    let (b, t) = d.rewards.dim();
    let mut out = Array2::zeros((b, t));
    for i in 0..b {
        let len = d.mask.row(i).sum() as usize;
        let v_next = |k: usize| {
            if k + 1 < len {
                d.values[[i, k + 1]]
            } else if d.terminated[i] {
                0.0
            } else {
                d.last[i]
            }
        };
        for s in 0..len {
            out[[i, s]] = (s..len)
                .map(|k| {
                    (gamma * lambda).powi((k - s) as i32)
                        * (d.rewards[[i, k]] + gamma * v_next(k) - d.values[[i, k]])
                })
                .sum();
        }
    }
    out
}

fn close(a: ArrayView2<f64>, b: ArrayView2<f64>, tol: f64) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < tol)
}

#[test]
fn gae_matches_the_naive_sum_with_both_endings() {
    for seed in 0..4 {
        let d = random_data(seed);
        for (gamma, lambda) in [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (1.0, 0.0), (0.5, 0.9)] {
            let (adv, targets) = gae(
                d.rewards.view(),
                d.values.view(),
                &d.last,
                d.mask.view(),
                &d.terminated,
                gamma,
                lambda,
            );
            assert!(
                close(adv.view(), naive_gae(&d, gamma, lambda).view(), 1e-9),
                "γ={gamma} λ={lambda}"
            );
            assert!(close(
                targets.view(),
                ((&adv + &d.values) * &d.mask).view(),
                1e-12
            ));
        }
    }
}

#[test]
fn gae_special_cases() {
    let d = random_data(9);
    // λ = 0: the one-step TD error.
    let (adv0, _) = gae(
        d.rewards.view(),
        d.values.view(),
        &d.last,
        d.mask.view(),
        &d.terminated,
        0.9,
        0.0,
    );
    let delta = td_errors(
        d.rewards.view(),
        d.values.view(),
        &d.last,
        d.mask.view(),
        &d.terminated,
        0.9,
    );
    assert!(close(adv0.view(), delta.view(), 1e-12));
    // λ = 1, γ = 1: return − V for terminated episodes; for truncated ones the bootstrap V(s_T)
    // is added to the return.
    let (adv1, _) = gae(
        d.rewards.view(),
        d.values.view(),
        &d.last,
        d.mask.view(),
        &d.terminated,
        1.0,
        1.0,
    );
    let g = reward_to_go(d.rewards.view(), d.mask.view(), 1.0);
    for i in 0..d.rewards.nrows() {
        let boot = if d.terminated[i] { 0.0 } else { d.last[i] };
        for t in 0..d.mask.row(i).sum() as usize {
            assert!((adv1[[i, t]] - (g[[i, t]] + boot - d.values[[i, t]])).abs() < 1e-9);
        }
    }
}

#[test]
fn truncation_bootstraps_and_termination_does_not() {
    // One step, reward 1, V(s_0) = 0, V(s_T) = 10, γ = 0.5.
    let r = Array2::from_elem((1, 1), 1.0);
    let v = Array2::zeros((1, 1));
    let m = Array2::ones((1, 1));
    let term = td_errors(r.view(), v.view(), &[10.0], m.view(), &[true], 0.5);
    let trunc = td_errors(r.view(), v.view(), &[10.0], m.view(), &[false], 0.5);
    assert_eq!(term[[0, 0]], 1.0);
    assert_eq!(trunc[[0, 0]], 6.0);
}

#[test]
fn normalize_and_explained_variance_by_hand() {
    let a = Array2::from_shape_vec((1, 4), vec![1.0, 2.0, 3.0, 100.0]).unwrap();
    let m = Array2::from_shape_vec((1, 4), vec![1.0, 1.0, 1.0, 0.0]).unwrap();
    let n = normalize(a.view(), m.view());
    assert!(close(
        n.view(),
        Array2::from_shape_vec((1, 4), vec![-1.0, 0.0, 1.0, 0.0])
            .unwrap()
            .view(),
        1e-12
    ));
    let targets = Array2::from_shape_vec((1, 3), vec![1.0, 2.0, 3.0]).unwrap();
    let ones = Array2::ones((1, 3));
    assert_eq!(
        explained_variance(targets.view(), targets.view(), ones.view()),
        1.0
    );
    let constant = Array2::from_elem((1, 3), 2.0);
    assert!(explained_variance(constant.view(), targets.view(), ones.view()).abs() < 1e-12);
}

/// Loss and d loss / d logp for one step with the given ratio and advantage (ε = 0.2).
fn surrogate_case(ratio: f64, adv: f64) -> (f64, f64) {
    let d = Device::Cpu;
    let logp = Var::new(&[[ratio.ln()]], &d).unwrap();
    let old = Tensor::new(&[[0.0f64]], &d).unwrap();
    let a = Tensor::new(&[[adv]], &d).unwrap();
    let m = Tensor::new(&[[1.0f64]], &d).unwrap();
    let loss =
        clipped_surrogate(logp.as_tensor(), &old, &a, &m, 0.2, Aggregation::StepMean).unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(logp.as_tensor())
        .map(|g| g.to_vec2::<f64>().unwrap()[0][0])
        .unwrap_or(0.0);
    (loss.to_scalar::<f64>().unwrap(), g)
}

#[test]
fn clipped_surrogate_in_all_four_cases() {
    // Â > 0, ρ inside: loss −ρÂ, gradient −ρÂ (d/d logp of ρ is ρ).
    let (l, g) = surrogate_case(1.1, 2.0);
    assert!(
        (l + 2.2).abs() < 1e-12 && (g + 2.2).abs() < 1e-12,
        "{l} {g}"
    );
    // Â > 0, ρ above 1 + ε: clipped at 1.2, no gradient.
    let (l, g) = surrogate_case(1.5, 2.0);
    assert!((l + 2.4).abs() < 1e-12 && g == 0.0, "{l} {g}");
    // Â < 0, ρ inside: loss −ρÂ.
    let (l, g) = surrogate_case(0.9, -1.0);
    assert!(
        (l - 0.9).abs() < 1e-12 && (g - 0.9).abs() < 1e-12,
        "{l} {g}"
    );
    // Â < 0, ρ below 1 − ε: clipped at 0.8, no gradient.
    let (l, g) = surrogate_case(0.5, -1.0);
    assert!((l - 0.8).abs() < 1e-12 && g == 0.0, "{l} {g}");
    // The pessimistic side is never clipped: Â > 0 with ρ low, Â < 0 with ρ high.
    let (l, g) = surrogate_case(0.5, 2.0);
    assert!(
        (l + 1.0).abs() < 1e-12 && (g + 1.0).abs() < 1e-12,
        "{l} {g}"
    );
    let (l, g) = surrogate_case(1.5, -1.0);
    assert!(
        (l - 1.5).abs() < 1e-12 && (g - 1.5).abs() < 1e-12,
        "{l} {g}"
    );
}

#[test]
fn diagnostics_by_hand() {
    let d = Device::Cpu;
    let logp = Tensor::new(&[[0.5f64.ln(), 1.0f64.ln(), 2.0f64.ln()]], &d).unwrap();
    let old = Tensor::zeros((1, 3), zero_to_r1::candle::DType::F64, &d).unwrap();
    let m = Tensor::new(&[[1.0f64, 1.0, 0.0]], &d).unwrap();
    // k3 = (ρ − 1) − log ρ on the two real steps: ρ = 0.5 and ρ = 1.
    let kl = approx_kl(&logp, &old, &m).unwrap();
    assert!((kl - ((0.5 - 1.0 - 0.5f64.ln()) + 0.0) / 2.0).abs() < 1e-12);
    assert_eq!(clip_frac(&logp, &old, &m, 0.2).unwrap(), 0.5);
    // Value loss: ½ (V − R)², plain and clipped.
    let v = Tensor::new(&[[3.0f64]], &d).unwrap();
    let r = Tensor::new(&[[0.0f64]], &d).unwrap();
    let v_old = Tensor::new(&[[0.0f64]], &d).unwrap();
    let one = Tensor::new(&[[1.0f64]], &d).unwrap();
    assert_eq!(
        value_loss(&v, &r, &v_old, &one, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
    // Clipped: max((3 − 0)², (0 + 1 − 0)²) / 2 = 4.5 (the pessimistic one).
    assert_eq!(
        value_loss(&v, &r, &v_old, &one, Some(1.0))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
    let r2 = Tensor::new(&[[4.0f64]], &d).unwrap();
    // V = 3 moved from 0 by 3 > ε = 1: clipped prediction 1, so max(1², 3²)/2 = 4.5.
    assert_eq!(
        value_loss(&v, &r2, &v_old, &one, Some(1.0))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
}

use zero_to_r1::algo::{actor_critic, ppo};
use zero_to_r1::prelude::*;

#[test]
fn one_step_actor_critic_solves_the_house() {
    // Budget: 150 iterations × 16 episodes = 2,400 episodes, λ = 0 (pure one-step TD).
    let mut env = Env::seed();
    let config = actor_critic::ActorCriticConfig {
        seed: 3,
        ..Default::default()
    };
    let trained = actor_critic::train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
    // On-policy: one step per batch, so the policy moves little per iteration.
    assert!(trained
        .log
        .iter()
        .all(|u| u.epochs == 1 && u.approx_kl < 0.05));
}

#[test]
fn ppo_solves_the_house() {
    // Budget: 60 iterations × 16 episodes = 960 episodes, 4 epochs × 4 minibatches each.
    let mut env = Env::seed();
    let config = ppo::PpoConfig {
        seed: 3,
        ..Default::default()
    };
    let trained = ppo::train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
    let log = &trained.log;
    assert!(log
        .iter()
        .all(|u| u.approx_kl.is_finite() && u.approx_kl >= 0.0));
    assert!(
        log.iter().any(|u| u.clip_frac > 0.0),
        "the clip never engaged"
    );
}

#[test]
fn target_kl_stops_epochs_early_and_bad_settings_are_named() {
    let mut env = Env::seed();
    let config = ppo::PpoConfig {
        iterations: 5,
        epochs: 20,
        lr: 0.1,
        target_kl: Some(0.001),
        seed: 1,
        ..Default::default()
    };
    let trained = ppo::train(&mut env, &config, |_| {}).unwrap();
    assert!(trained.log.iter().any(|u| u.epochs < 20));
    for (bad, field) in [
        (
            ppo::PpoConfig {
                minibatches: 17,
                ..Default::default()
            },
            "minibatches",
        ),
        (
            ppo::PpoConfig {
                lambda: 2.0,
                ..Default::default()
            },
            "lambda",
        ),
        (
            ppo::PpoConfig {
                clip: Some(0.0),
                ..Default::default()
            },
            "clip",
        ),
        (
            ppo::PpoConfig {
                epochs: 0,
                ..Default::default()
            },
            "epochs",
        ),
    ] {
        let err = ppo::train(&mut env, &bad, |_| {})
            .err()
            .expect("should fail")
            .to_string();
        assert!(err.contains(field), "{err}");
    }
}
