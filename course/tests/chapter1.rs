//! Chapter 1: returns, sampling, and the random cat's Monte Carlo estimate against the exact J.

use course::experiments::ch01::{random_cat, success_probability};
use course::prelude::*;
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::SeedableRng;
use zero_to_r1::rollout::{derive_seed, sample_action};

#[test]
fn discounted_return_by_hand() {
    assert_eq!(discounted_return(&[], 0.9), 0.0);
    assert_eq!(discounted_return(&[0.0, -1.0, 100.0], 1.0), 99.0);
    // 0 + 0.5·(−1) + 0.25·100
    assert!((discounted_return(&[0.0, -1.0, 100.0], 0.5) - 24.5).abs() < 1e-12);
}

#[test]
fn sampled_actions_follow_the_probabilities() {
    let probs = [0.1, 0.2, 0.3, 0.4];
    let mut rng = StdRng::seed_from_u64(5);
    let n = 40_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[sample_action(&probs, &mut rng).index()] += 1;
    }
    for (a, &p) in probs.iter().enumerate() {
        let freq = counts[a] as f64 / n as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!((freq - p).abs() < 5.0 * sd, "action {a}: {freq} vs {p}");
    }
    // Zero-probability actions are never drawn, even at the rounding edge.
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..1000 {
        assert_eq!(sample_action(&[0.0, 1.0, 0.0, 0.0], &mut rng), Action::Down);
    }
}

#[test]
fn episodes_are_consistent_and_reproducible() {
    let mut env = Env::seed();
    let pi = env.mdp().uniform_policy();
    let a = sample_episode(&mut env, pi.view(), 3);
    let b = sample_episode(&mut env, pi.view(), 3);
    assert_eq!(a, b);
    assert_eq!(a.states.len(), a.len());
    assert_eq!(a.rewards.len(), a.len());
    assert!(a.terminated != a.truncated);
    assert!(a.len() <= env.config().max_steps);
    assert_eq!(a.states[0], env.house().starts()[0]);
    assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
    assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
}

#[test]
fn monte_carlo_agrees_with_the_exact_j() {
    // With n independent returns the estimate is within a few standard errors of J: the
    // probability of missing by more than 4 standard errors is about 6e-5 under the CLT.
    let mut env = Env::seed();
    let pi = env.mdp().uniform_policy();
    let (r, mc) = random_cat(&mut env, &pi, 4000, 11, |_| {}).unwrap();
    assert_eq!(mc.returns.len(), 4000);
    assert!(r.z.abs() < 4.0, "z = {}", r.z);
    // The test has teeth: the standard error is small compared with |J| ...
    assert!(r.mc_std_err < 0.05 * r.exact_j.abs(), "{r:?}");
    // ... and the success rate matches the exact probability of reaching the meat.
    let p = r.exact_success;
    let sd = (p * (1.0 - p) / 4000.0).sqrt();
    assert!(
        (r.mc_success - p).abs() < 4.0 * sd,
        "{} vs {p}",
        r.mc_success
    );
    // Same seed, same numbers.
    let (again, _) = random_cat(&mut env, &pi, 4000, 11, |_| {}).unwrap();
    assert_eq!(again.mc_mean, r.mc_mean);
}

#[test]
fn monte_carlo_notices_a_wrong_answer() {
    // The same tolerance rejects the J of a different house: the agreement is not automatic.
    let mut env = Env::seed();
    let pi = env.mdp().uniform_policy();
    let (r, _) = random_cat(&mut env, &pi, 4000, 11, |_| {}).unwrap();
    let slippery = Env::new(
        House::seed(),
        EnvConfig {
            max_steps: 50,
            ..EnvConfig::default()
        },
    )
    .unwrap();
    let other_j = slippery.mdp().expected_return(pi.view(), 1.0).unwrap();
    assert!(((r.mc_mean - other_j) / r.mc_std_err).abs() > 4.0);
}

#[test]
fn success_probability_in_a_corridor_by_hand() {
    let env = Env::new(
        House::parse("CM").unwrap(),
        EnvConfig {
            max_steps: 3,
            ..EnvConfig::default()
        },
    )
    .unwrap();
    let pi = env.mdp().uniform_policy();
    let p = success_probability(env.house(), env.config(), &pi).unwrap();
    assert!((p - (1.0 - 0.75f64.powi(3))).abs() < 1e-12);
}
