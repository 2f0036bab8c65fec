//! Chapters 6–7: group advantages, the aggregation modes, the k3 penalty, the GRPO loss, and
//! GRPO / Dr. GRPO learning the seeds' house.

mod common;

use common::assert_solved;
use zero_to_r1::advantage::{frac_reward_zero_std, group_advantages, per_step, GROUP_STD_EPS};
use zero_to_r1::algo::grpo::{self, GrpoConfig, OutcomeReward};
use zero_to_r1::candle::{Device, Tensor, Var};
use zero_to_r1::experiments::ch01::success_probabilities;
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::objective::{aggregate, grpo_loss, kl_to_ref, Aggregation};
use zero_to_r1::prelude::*;

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
}

#[test]
fn group_advantages_by_hand() {
    // Two groups of 3. Group 1: rewards 1, 2, 3 → mean 2, unbiased std 1.
    // Group 2: rewards 0, 0, 6 → mean 2, std √((4 + 4 + 16) / 2) = √12.
    let r = [1.0, 2.0, 3.0, 0.0, 0.0, 6.0];
    let centred = group_advantages(&r, 3, false).unwrap();
    assert!(close(&centred, &[-1.0, 0.0, 1.0, -2.0, -2.0, 4.0], 1e-12));
    let z = group_advantages(&r, 3, true).unwrap();
    let s2 = 12f64.sqrt() + GROUP_STD_EPS;
    let s1 = 1.0 + GROUP_STD_EPS;
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
    let a = 0.5 / (0.5f64.sqrt() + GROUP_STD_EPS);
    assert!(close(&z, &[a, -a, -a, a, 0.0, 0.0], 1e-12));
    assert!((frac_reward_zero_std(&r, 2).unwrap() - 1.0 / 3.0).abs() < 1e-15);
}

#[test]
fn equal_rewards_give_exactly_zero_and_bad_layouts_are_errors() {
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
fn group_advantages_are_finite_and_centred_on_any_finite_input() {
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
fn per_step_broadcasts_under_the_mask() {
    let mask = Array2::from_shape_vec((2, 3), vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
    let out = per_step(&[2.0, -1.0], mask.view()).unwrap();
    assert_eq!(out.as_slice().unwrap(), &[2.0, 2.0, 0.0, -1.0, -1.0, -1.0]);
    assert!(per_step(&[1.0], mask.view()).is_err());
}

/// Random per-step values and a mask with rows of random length (at least 1).
fn random_masked(seed: u64, b: usize, t: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let lengths: Vec<usize> = (0..b).map(|_| rng.random_range(1..=t)).collect();
    let x = (0..b)
        .map(|_| (0..t).map(|_| rng.random_range(-2.0..2.0)).collect())
        .collect();
    (x, lengths)
}

fn tensors(x: &[Vec<f64>], lengths: &[usize]) -> (Tensor, Tensor) {
    let (b, t) = (x.len(), x[0].len());
    let d = Device::Cpu;
    let xs = Tensor::from_iter(x.iter().flatten().copied(), &d)
        .unwrap()
        .reshape((b, t))
        .unwrap();
    let m = Tensor::from_iter(
        (0..b).flat_map(|i| (0..t).map(move |k| if k < lengths[i] { 1.0 } else { 0.0 })),
        &d,
    )
    .unwrap()
    .reshape((b, t))
    .unwrap();
    (xs, m)
}

#[test]
fn every_aggregation_matches_a_naive_loop() {
    for seed in 0..5 {
        let (x, lengths) = random_masked(seed, 7, 9);
        let (xs, m) = tensors(&x, &lengths);
        let b = x.len() as f64;
        let row_sum = |i: usize| x[i][..lengths[i]].iter().sum::<f64>();
        let total: f64 = (0..x.len()).map(row_sum).sum();
        let steps = lengths.iter().sum::<usize>() as f64;
        let expected = [
            (Aggregation::EpisodeSum, total / b),
            (Aggregation::StepMean, total / steps),
            (
                Aggregation::ResponseMean,
                (0..x.len())
                    .map(|i| row_sum(i) / lengths[i] as f64)
                    .sum::<f64>()
                    / b,
            ),
            (Aggregation::Constant { budget: 12 }, total / (b * 12.0)),
        ];
        for (how, want) in expected {
            let got = aggregate(&xs, &m, how).unwrap().to_scalar::<f64>().unwrap();
            assert!((got - want).abs() < 1e-12, "{how}: {got} vs {want}");
        }
    }
}

#[test]
fn aggregation_names_round_trip() {
    for how in [
        Aggregation::EpisodeSum,
        Aggregation::StepMean,
        Aggregation::ResponseMean,
        Aggregation::Constant { budget: 20 },
    ] {
        assert_eq!(how.to_string().parse::<Aggregation>().unwrap(), how);
    }
    assert_eq!(
        "token-mean".parse::<Aggregation>().unwrap(),
        Aggregation::StepMean
    );
    for bad in ["constant", "constant:0", "constant:x", "mean"] {
        let err = bad.parse::<Aggregation>().unwrap_err().to_string();
        assert!(err.contains("aggregation"), "{err}");
    }
}

#[test]
fn k3_is_nonnegative_and_zero_exactly_where_the_policies_agree() {
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
fn k3_averages_to_the_exact_kl() {
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

/// d loss / d logp of a one-step GRPO loss with the given ratio, advantage and β (ε = 0.2,
/// π_ref = π_old).
fn grpo_case(ratio: f64, adv: f64, beta: f64) -> f64 {
    let d = Device::Cpu;
    let logp = Var::new(&[[ratio.ln()]], &d).unwrap();
    let zero = Tensor::new(&[[0.0f64]], &d).unwrap();
    let a = Tensor::new(&[[adv]], &d).unwrap();
    let m = Tensor::new(&[[1.0f64]], &d).unwrap();
    let how = Aggregation::ResponseMean;
    let loss = grpo_loss(logp.as_tensor(), &zero, &zero, &a, &m, 0.2, beta, how).unwrap();
    let grads = loss.backward().unwrap();
    grads
        .get(logp.as_tensor())
        .map(|g| g.to_vec2::<f64>().unwrap()[0][0])
        .unwrap_or(0.0)
}

#[test]
fn the_clipped_loss_has_no_gradient_where_the_clip_binds() {
    // Where the clip binds (Â > 0, ρ > 1 + ε; Â < 0, ρ < 1 − ε) the surrogate is constant.
    assert_eq!(grpo_case(1.5, 2.0, 0.0), 0.0);
    assert_eq!(grpo_case(0.5, -1.0, 0.0), 0.0);
    // Inside, and on the pessimistic side, the gradient is −ρÂ.
    for (ratio, adv) in [(1.1, 2.0), (0.9, -1.0), (0.5, 2.0), (1.5, -1.0)] {
        assert!((grpo_case(ratio, adv, 0.0) + ratio * adv).abs() < 1e-12);
    }
    // With β > 0 the KL term still pulls where the clip binds: d k3 / d logp = 1 − π_ref/π
    // = 1 − 1/ρ when π_ref = π_old.
    let g = grpo_case(1.5, 2.0, 0.1);
    assert!((g - 0.1 * (1.0 - 1.0 / 1.5)).abs() < 1e-12, "{g}");
}

#[test]
fn grpo_config_errors_name_the_field() {
    let mut env = Env::seed();
    for (bad, field) in [
        (
            GrpoConfig {
                group_size: 1,
                ..GrpoConfig::grpo()
            },
            "group_size",
        ),
        (
            GrpoConfig {
                beta: -0.1,
                ..GrpoConfig::grpo()
            },
            "beta",
        ),
        (
            GrpoConfig {
                clip: 0.0,
                ..GrpoConfig::dr_grpo()
            },
            "clip",
        ),
        (
            GrpoConfig {
                epochs: 0,
                ..GrpoConfig::grpo()
            },
            "epochs",
        ),
    ] {
        let err = grpo::train(&mut env, &bad, |_| {})
            .err()
            .expect("should fail")
            .to_string();
        assert!(err.contains(field), "{err}");
    }
    assert_eq!(
        "success".parse::<OutcomeReward>().unwrap(),
        OutcomeReward::Success
    );
    assert!("accuracy".parse::<OutcomeReward>().is_err());
}

#[test]
fn grpo_solves_the_house() {
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
fn dr_grpo_solves_the_house() {
    let mut env = Env::seed();
    let config = GrpoConfig {
        seed: 3,
        ..GrpoConfig::dr_grpo()
    };
    let trained = grpo::train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
}

#[test]
fn grpo_with_success_rewards_on_a_house_with_several_questions() {
    // Two start cells (two questions), a bathtub that ends episodes, success as the reward.
    let house = House::parse("#######\n#C.T..#\n#.....#\n#...TM#\n#C....#\n#######\n").unwrap();
    let config = EnvConfig {
        max_steps: 30,
        bathtub_ends: true,
        ..EnvConfig::default()
    };
    let mut env = Env::new(house, config).unwrap();
    let c = GrpoConfig {
        iterations: 80,
        reward: OutcomeReward::Success,
        seed: 4,
        ..GrpoConfig::dr_grpo()
    };
    let trained = grpo::train(&mut env, &c, |_| {}).unwrap();
    let first = &trained.log[0];
    let last = &trained.log[trained.log.len() - 1];
    assert!(first.exact_success < 0.6, "{}", first.exact_success);
    assert!(last.exact_success > 0.95, "{}", last.exact_success);
    // A failure now ends in a bath or at the step limit; a success at the meat.
    assert!(first.exact_failure_length.unwrap() < 30.0);
    let reference = success_probabilities(env.house(), env.config(), &trained.reference).unwrap();
    assert!(reference.iter().all(|p| p.is_finite()));
}

#[test]
fn exact_outcome_lengths_agree_with_sampled_episodes() {
    let house = House::parse("#######\n#C.T..#\n#.....#\n#...TM#\n#######\n").unwrap();
    let config = EnvConfig {
        max_steps: 12,
        slip: 0.2,
        bathtub_ends: true,
        ..EnvConfig::default()
    };
    let mut env = Env::new(house, config).unwrap();
    let policy = env.mdp().uniform_policy();
    let exact = zero_to_r1::exact::outcome_lengths(env.house(), env.config(), &policy).unwrap();
    let n = 20_000;
    let (mut ok, mut ok_len, mut fail_len, mut cut) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let ep = sample_episode(&mut env, policy.view(), derive_seed(9, i));
        if ep.success {
            ok += 1.0;
            ok_len += ep.len() as f64;
        } else {
            fail_len += ep.len() as f64;
            cut += f64::from(u8::from(ep.truncated));
            // A failure either ended in the bath (terminated) or at the step limit.
            assert!(ep.terminated != ep.truncated);
        }
    }
    let n = n as f64;
    assert!((ok / n - exact.success).abs() < 0.01);
    assert!((ok_len / ok - exact.success_length.unwrap()).abs() < 0.1);
    assert!((fail_len / (n - ok) - exact.failure_length.unwrap()).abs() < 0.1);
    assert!((cut / n - exact.truncated).abs() < 0.01);
}

#[test]
fn reset_from_starts_where_asked_and_refuses_other_cells() {
    let house = House::parse("C.C\n.TM\n").unwrap();
    let mut env = Env::new(house, EnvConfig::default()).unwrap();
    assert_eq!(env.reset_from(2, 0).unwrap(), 2);
    let err = env.reset_from(1, 0).unwrap_err().to_string();
    assert!(err.contains("start"), "{err}");
}
