//! Grading tests of chapter 6 (GRPO). A test named `ex_6_N_…` grades exercise 6.N.

mod common;

use common::{assert_solved, random_masked};
use zero_to_r1::advantage::{frac_reward_zero_std, group_advantages, STD_EPS};
use zero_to_r1::algo::grpo::{self, GrpoConfig};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::gridworld::Env;
use zero_to_r1::objective::kl_to_ref;

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
}

#[test]
fn ex_6_1_group_advantages_by_hand() {
    // Two groups of 3. Group 1: rewards 1, 2, 3 → mean 2, unbiased std 1.
    // Group 2: rewards 0, 0, 6 → mean 2, std √((4 + 4 + 16) / 2) = √12.
    let r = [1.0, 2.0, 3.0, 0.0, 0.0, 6.0];
    let centred = group_advantages(&r, 3, false).unwrap();
    assert!(close(&centred, &[-1.0, 0.0, 1.0, -2.0, -2.0, 4.0], 1e-12));
    let z = group_advantages(&r, 3, true).unwrap();
    let s2 = 12f64.sqrt() + STD_EPS;
    let s1 = 1.0 + STD_EPS;
    assert!(close(
        &z,
        &[-1.0 / s1, 0.0, 1.0 / s1, -2.0 / s2, -2.0 / s2, 4.0 / s2],
        1e-12
    ));
    // Three groups of 2, with 0/1 rewards: (1, 0) → ±0.5, std 1/√2.
    let r = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let centred = group_advantages(&r, 2, false).unwrap();
    assert!(close(&centred, &[0.5, -0.5, -0.5, 0.5, 0.0, 0.0], 1e-12));
    let z = group_advantages(&r, 2, true).unwrap();
    let a = 0.5 / (0.5f64.sqrt() + STD_EPS);
    assert!(close(&z, &[a, -a, -a, a, 0.0, 0.0], 1e-12));
    assert!((frac_reward_zero_std(&r, 2).unwrap() - 1.0 / 3.0).abs() < 1e-15);
}

#[test]
fn ex_6_1_equal_rewards_give_exactly_zero_and_bad_layouts_are_errors() {
    // 0.1 three times: a naive mean is 0.10000000000000002, so r − mean would not be 0.
    for scale in [true, false] {
        let adv = group_advantages(&[0.1, 0.1, 0.1, 7.0, 7.0, 7.0], 3, scale).unwrap();
        assert!(adv.iter().all(|&a| a == 0.0), "{adv:?}");
    }
    assert_eq!(frac_reward_zero_std(&[0.1, 0.1, 1.0, 2.0], 2).unwrap(), 0.5);
    let err = group_advantages(&[1.0, 2.0], 1, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("group_size"), "{err}");
    let err = group_advantages(&[1.0, 2.0, 3.0], 2, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("groups of 2"), "{err}");
    assert!(group_advantages(&[1.0, f64::NAN], 2, true).is_err());
    assert!(frac_reward_zero_std(&[1.0], 1).is_err());
}

#[test]
fn ex_6_1_group_advantages_are_finite_and_centred_on_any_finite_input() {
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..200 {
        let g = rng.random_range(2..7);
        let n = g * rng.random_range(1..5);
        // Wildly different scales, including exact ties and tiny spreads.
        let r: Vec<f64> = (0..n)
            .map(|_| match rng.random_range(0..4) {
                0 => 1.0,
                1 => rng.random_range(-1e-9..1e-9),
                2 => rng.random_range(-1e6..1e6),
                _ => rng.random_range(-1.0..1.0),
            })
            .collect();
        for scale in [true, false] {
            let adv = group_advantages(&r, g, scale).unwrap();
            assert!(adv.iter().all(|a| a.is_finite()));
            for group in adv.chunks(g) {
                let scale_of = group.iter().map(|a| a.abs()).fold(1.0, f64::max);
                assert!(group.iter().sum::<f64>().abs() < 1e-9 * scale_of);
            }
        }
    }
}

#[test]
fn ex_6_1_grpo_solves_the_house() {
    // Budget: 60 iterations × 2 questions × 8 answers = 960 episodes, 4 steps per batch.
    let mut env = Env::seed();
    let config = GrpoConfig {
        seed: 3,
        ..GrpoConfig::grpo()
    };
    let trained = grpo::train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
    let log = &trained.log;
    assert!(log.iter().all(|l| l.kl_ref >= 0.0 && l.approx_kl >= 0.0));
    // The random cat's returns differ within a group, so no group is flat at first.
    assert_eq!(log[0].frac_reward_zero_std, 0.0);
    assert!(log[log.len() - 1].kl_ref > log[0].kl_ref);
}

#[test]
fn ex_6_2_k3_is_nonnegative_and_zero_exactly_where_the_policies_agree() {
    let (x, _) = random_masked(11, 4, 6);
    let d = Device::Cpu;
    let logp = Tensor::from_iter(x.iter().flatten().map(|v| v - 3.0), &d).unwrap();
    let ref_logp = Tensor::from_iter(x.iter().flatten().map(|v| v * 0.5 - 3.0), &d).unwrap();
    let k = kl_to_ref(&logp, &ref_logp)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(k.iter().all(|&v| v >= 0.0));
    assert!(k.iter().any(|&v| v > 0.0));
    let same = kl_to_ref(&logp, &logp).unwrap().to_vec1::<f64>().unwrap();
    assert!(same.iter().all(|&v| v == 0.0), "{same:?}");
    // By hand: π = 0.5, π_ref = 0.25 → r = 0.5, k3 = 0.5 − ln 0.5 − 1.
    let v = kl_to_ref(
        &Tensor::new(&[0.5f64.ln()], &d).unwrap(),
        &Tensor::new(&[0.25f64.ln()], &d).unwrap(),
    )
    .unwrap()
    .to_vec1::<f64>()
    .unwrap()[0];
    assert!((v - (0.5 - 0.5f64.ln() - 1.0)).abs() < 1e-15);
}

#[test]
fn ex_6_2_k3_averages_to_the_exact_kl() {
    // Samples a ~ π over four actions: the mean of k3 with r = π_ref/π estimates KL(π ‖ π_ref).
    let pi: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
    let pref = [0.25f64; 4];
    let exact: f64 = pi.iter().zip(&pref).map(|(p, q)| p * (p / q).ln()).sum();
    let mut rng = StdRng::seed_from_u64(2);
    let n = 40_000;
    let acts: Vec<usize> = (0..n)
        .map(|_| zero_to_r1::rollout::sample_action(&pi, &mut rng).index())
        .collect();
    let d = Device::Cpu;
    let logp = Tensor::from_iter(acts.iter().map(|&a| pi[a].ln()), &d).unwrap();
    let ref_logp = Tensor::from_iter(acts.iter().map(|&a| pref[a].ln()), &d).unwrap();
    let k3 = kl_to_ref(&logp, &ref_logp)
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((k3 - exact).abs() < 0.005, "k3 {k3} vs exact {exact}");
}
