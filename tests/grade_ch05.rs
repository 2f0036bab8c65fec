//! Grading tests of chapter 5 (PPO). A test named `ex_5_N_…` grades exercise 5.N.

mod common;

use common::assert_solved;
use zero_to_r1::algo::ppo;
use zero_to_r1::candle::{DType, Device, Tensor, Var};
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::gridworld::Env;
use zero_to_r1::objective::{approx_kl, clipped_surrogate, Aggregation};

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
fn ex_5_1_clipped_surrogate_in_all_four_cases() {
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
fn ex_5_1_ppo_solves_the_house() {
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
fn ex_5_2_approx_kl_by_hand() {
    let d = Device::Cpu;
    let logp = Tensor::new(&[[0.5f64.ln(), 1.0f64.ln(), 2.0f64.ln()]], &d).unwrap();
    let old = Tensor::zeros((1, 3), DType::F64, &d).unwrap();
    let m = Tensor::new(&[[1.0f64, 1.0, 0.0]], &d).unwrap();
    // k3 = (ρ − 1) − log ρ on the two real steps: ρ = 0.5 and ρ = 1; the third is padding.
    let kl = approx_kl(&logp, &old, &m).unwrap();
    assert!(
        (kl - ((0.5 - 1.0 - 0.5f64.ln()) + 0.0) / 2.0).abs() < 1e-12,
        "{kl}"
    );
    // ρ = 2: (2 − 1) − ln 2.
    let one = Tensor::new(&[[1.0f64, 0.0, 0.0]], &d).unwrap();
    let kl2 = approx_kl(
        &logp.narrow(1, 2, 1).unwrap(),
        &old.narrow(1, 0, 1).unwrap(),
        &one.narrow(1, 0, 1).unwrap(),
    )
    .unwrap();
    assert!((kl2 - (1.0 - 2.0f64.ln())).abs() < 1e-12, "{kl2}");
}

#[test]
fn ex_5_2_approx_kl_is_never_negative_and_zero_only_at_equality() {
    let d = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(3);
    let v: Vec<f64> = (0..40).map(|_| rng.random_range(-3.0..0.0)).collect();
    let w: Vec<f64> = (0..40).map(|_| rng.random_range(-3.0..0.0)).collect();
    let logp = Tensor::from_vec(v, (4, 10), &d).unwrap();
    let old = Tensor::from_vec(w, (4, 10), &d).unwrap();
    let m = Tensor::ones((4, 10), DType::F64, &d).unwrap();
    assert!(approx_kl(&logp, &old, &m).unwrap() > 0.0);
    assert_eq!(approx_kl(&logp, &logp, &m).unwrap(), 0.0);
}
