//! Chapters 6–7: group advantages, the aggregation modes, the k3 penalty, the GRPO loss, and
//! GRPO / Dr. GRPO learning the seeds' house.

mod common;

use zero_to_r1::advantage::per_step;
use zero_to_r1::algo::grpo::{self, GrpoConfig, OutcomeReward};
use zero_to_r1::candle::{Device, Tensor, Var};
use zero_to_r1::exact::success_probabilities;
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::objective::{grpo_loss, Aggregation, LossInputs, LossSettings};
use zero_to_r1::prelude::*;

#[test]
fn per_step_broadcasts_under_the_mask() {
    let mask = Array2::from_shape_vec((2, 3), vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
    let out = per_step(&[2.0, -1.0], mask.view()).unwrap();
    assert_eq!(out.as_slice().unwrap(), &[2.0, 2.0, 0.0, -1.0, -1.0, -1.0]);
    assert!(per_step(&[1.0], mask.view()).is_err());
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

/// d loss / d logp of a one-step GRPO loss with the given ratio, advantage and β (ε = 0.2,
/// π_ref = π_old).
fn grpo_case(ratio: f64, adv: f64, beta: f64) -> f64 {
    let d = Device::Cpu;
    let logp = Var::new(&[[ratio.ln()]], &d).unwrap();
    let zero = Tensor::new(&[[0.0f64]], &d).unwrap();
    let a = Tensor::new(&[[adv]], &d).unwrap();
    let m = Tensor::new(&[[1.0f64]], &d).unwrap();
    let how = Aggregation::ResponseMean;
    let inputs = LossInputs {
        logp: logp.as_tensor(),
        old_logp: &zero,
        ref_logp: &zero,
        advantages: &a,
        mask: &m,
    };
    let settings = LossSettings {
        clip: 0.2,
        beta,
        aggregation: how,
        ..Default::default()
    };
    let loss = grpo_loss(&inputs, &settings).unwrap();
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

/// The GRPO loss of a (B, T) batch computed naively, number by number, for the variants:
/// ε_low/ε_high clip bounds, token or sequence ratios, per-response mean, no KL.
fn naive_variant_loss(
    logp: &[[f64; 3]; 2],
    old: &[[f64; 3]; 2],
    adv: &[f64; 2],
    mask: &[[f64; 3]; 2],
    low: f64,
    high: f64,
    sequence: bool,
) -> f64 {
    let mut total = 0.0;
    for i in 0..2 {
        let n: f64 = mask[i].iter().sum();
        let seq = (0..3)
            .map(|t| mask[i][t] * (logp[i][t] - old[i][t]))
            .sum::<f64>()
            / n;
        let mut row = 0.0;
        for t in 0..3 {
            let rho = if sequence {
                seq.exp()
            } else {
                (logp[i][t] - old[i][t]).exp()
            };
            let clipped = rho.clamp(1.0 - low, 1.0 + high);
            row += mask[i][t] * -(rho * adv[i]).min(clipped * adv[i]);
        }
        total += row / n;
    }
    total / 2.0
}

#[test]
fn clip_higher_and_sequence_ratios_match_a_naive_loss_and_gradient() {
    use zero_to_r1::objective::Ratio;
    let logp = [[-0.5, -1.2, -0.1], [-2.0, -0.3, -0.9]];
    let old = [[-0.8, -1.0, -0.1], [-1.7, -0.6, -0.9]];
    let adv = [1.5, -0.7];
    let mask = [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]];
    let t = |x: &[[f64; 3]; 2]| Tensor::new(&x.map(|r| r.map(|v| v as f32)), &Device::Cpu).unwrap();
    let adv_t = t(&[[adv[0]; 3], [adv[1]; 3]]);
    for (high, ratio) in [
        (None, Ratio::Token),
        (Some(0.28), Ratio::Token),
        (None, Ratio::Sequence),
        (Some(0.28), Ratio::Sequence),
    ] {
        let settings = LossSettings {
            clip: 0.2,
            clip_high: high,
            ratio,
            ..Default::default()
        };
        let logp_v = Var::from_tensor(&t(&logp)).unwrap();
        let (old_t, mask_t) = (t(&old), t(&mask));
        let inputs = LossInputs {
            logp: logp_v.as_tensor(),
            old_logp: &old_t,
            ref_logp: &old_t,
            advantages: &adv_t,
            mask: &mask_t,
        };
        let loss = grpo_loss(&inputs, &settings).unwrap();
        let seq = ratio == Ratio::Sequence;
        let want = naive_variant_loss(&logp, &old, &adv, &mask, 0.2, high.unwrap_or(0.2), seq);
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (got - want).abs() < 1e-5,
            "{high:?} {ratio:?}: {got} vs {want}"
        );
        // The gradient against central differences of the naive loss.
        let grads = loss.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(logp_v.as_tensor()).unwrap().to_vec2().unwrap();
        for i in 0..2 {
            for k in 0..3 {
                let h = 1e-4;
                let (mut up, mut down) = (logp, logp);
                up[i][k] += h;
                down[i][k] -= h;
                let fd =
                    (naive_variant_loss(&up, &old, &adv, &mask, 0.2, high.unwrap_or(0.2), seq)
                        - naive_variant_loss(
                            &down,
                            &old,
                            &adv,
                            &mask,
                            0.2,
                            high.unwrap_or(0.2),
                            seq,
                        ))
                        / (2.0 * h);
                assert!(
                    (g[i][k] as f64 - fd).abs() < 1e-3,
                    "{high:?} {ratio:?} [{i}][{k}]: {} vs {fd}",
                    g[i][k]
                );
            }
        }
    }
    // The example is chosen so that the variants differ: clip-higher lets row 0's first token
    // (ρ = e^0.3 ≈ 1.35) count up to 1.28 instead of 1.2, and the sequence ratio differs.
    let plain = naive_variant_loss(&logp, &old, &adv, &mask, 0.2, 0.2, false);
    assert!((plain - naive_variant_loss(&logp, &old, &adv, &mask, 0.2, 0.28, false)).abs() > 1e-3);
    assert!((plain - naive_variant_loss(&logp, &old, &adv, &mask, 0.2, 0.2, true)).abs() > 1e-3);
}
