//! Grading tests of chapter 4 (actor-critic and GAE). A test named `ex_4_N_…` grades
//! exercise 4.N.

mod common;

use common::{assert_solved, close, random_data, Data};
use zero_to_r1::advantage::td_errors;
use zero_to_r1::algo::actor_critic;
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::gridworld::Env;

#[test]
fn ex_4_1_truncation_bootstraps_and_termination_does_not() {
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
fn ex_4_1_td_errors_match_their_definition() {
    for seed in 0..4 {
        let d = random_data(seed);
        for gamma in [0.0, 0.5, 1.0] {
            let delta = d.td_errors(gamma);
            for i in 0..d.rewards.nrows() {
                let len = d.mask.row(i).sum() as usize;
                for t in 0..d.rewards.ncols() {
                    let want = if t >= len {
                        0.0
                    } else {
                        let next = if t + 1 < len {
                            d.values[[i, t + 1]]
                        } else if d.terminated[i] {
                            0.0
                        } else {
                            d.last[i]
                        };
                        d.rewards[[i, t]] + gamma * next - d.values[[i, t]]
                    };
                    assert!(
                        (delta[[i, t]] - want).abs() < 1e-12,
                        "γ={gamma} i={i} t={t}"
                    );
                }
            }
        }
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

#[test]
fn ex_4_2_gae_matches_the_naive_sum_with_both_endings() {
    for seed in 0..4 {
        let d = random_data(seed);
        for (gamma, lambda) in [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (1.0, 0.0), (0.5, 0.9)] {
            let (adv, targets) = d.gae(gamma, lambda);
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
fn ex_4_2_gae_special_cases() {
    let d = random_data(9);
    // λ = 0: the one-step TD error.
    let (adv0, _) = d.gae(0.9, 0.0);
    let delta = d.td_errors(0.9);
    assert!(close(adv0.view(), delta.view(), 1e-12));
    // λ = 1, γ = 1: return − V for terminated episodes; for truncated ones the bootstrap V(s_T)
    // is added to the return.
    let (adv1, _) = d.gae(1.0, 1.0);
    for i in 0..d.rewards.nrows() {
        let boot = if d.terminated[i] { 0.0 } else { d.last[i] };
        let len = d.mask.row(i).sum() as usize;
        for t in 0..len {
            let g: f64 = (t..len).map(|k| d.rewards[[i, k]]).sum();
            assert!((adv1[[i, t]] - (g + boot - d.values[[i, t]])).abs() < 1e-9);
        }
    }
}

#[test]
fn ex_4_2_one_step_actor_critic_solves_the_house() {
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
