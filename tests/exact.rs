//! The exact policy gradient against central finite differences of the exact J.

use zero_to_r1::exact::{softmax_gradient, softmax_policy};
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::gridworld::rand::rngs::StdRng;
use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
use zero_to_r1::prelude::*;

fn j(mdp: &Mdp, logits: &Array2<f64>, gamma: f64) -> f64 {
    mdp.expected_return(softmax_policy(logits).view(), gamma)
        .unwrap()
}

fn check(env: &Env, gamma: f64, seed: u64) {
    let mdp = env.mdp();
    let mut rng = StdRng::seed_from_u64(seed);
    let logits = Array2::from_shape_fn((mdp.n_states(), 4), |_| rng.random::<f64>() * 2.0 - 1.0);
    let exact = softmax_gradient(&mdp, &logits, gamma).unwrap();
    assert!((exact.j - j(&mdp, &logits, gamma)).abs() < 1e-9);
    let h = 1e-5;
    let scale = exact.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(
        scale > 1e-3,
        "a vanishing gradient would make this test toothless"
    );
    for s in 0..mdp.n_states() {
        for a in 0..4 {
            let mut plus = logits.clone();
            plus[[s, a]] += h;
            let mut minus = logits.clone();
            minus[[s, a]] -= h;
            let fd = (j(&mdp, &plus, gamma) - j(&mdp, &minus, gamma)) / (2.0 * h);
            let g = exact.grad[[s, a]];
            assert!(
                (g - fd).abs() <= 1e-4 * g.abs().max(1e-2 * scale),
                "state {s} action {a}: exact {g} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn exact_gradient_matches_finite_differences_on_the_seed_house() {
    let env = Env::new(
        House::seed(),
        EnvConfig {
            max_steps: 30,
            ..EnvConfig::default()
        },
    )
    .unwrap();
    check(&env, 1.0, 1);
}

#[test]
fn exact_gradient_matches_finite_differences_with_slip_and_discount() {
    let env = Env::new(
        House::parse("C.B.\n.T..\nC..M\n").unwrap(),
        EnvConfig {
            slip: 0.2,
            max_steps: 12,
            ..EnvConfig::default()
        },
    )
    .unwrap();
    check(&env, 0.9, 2);
}

#[test]
fn softmax_rows_are_distributions_even_for_huge_logits() {
    let logits = Array2::from_shape_vec(
        (2, 4),
        vec![1000.0, 0.0, -1000.0, 999.0, 0.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    let p = softmax_policy(&logits);
    assert!((p[[0, 0]] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    assert_eq!(p[[1, 2]], 0.25);
    let bad = Array2::from_elem((3, 4), f64::NAN);
    assert!(softmax_gradient(&Env::seed().mdp(), &bad, 1.0).is_err());
}

#[test]
fn the_k3_penalty_follows_the_gradient_of_the_other_kl() {
    use zero_to_r1::exact::{k3_penalty_gradient, kl_gradients};
    // Hand-worked: π = softmax(0, 0) = (½, ½), ρ = (¾, ¼). KL(ρ‖π) = ¾ ln(3/2) + ¼ ln(1/2),
    // and its gradient is π − ρ = (−¼, ¼).
    let k = kl_gradients(&[0.0, 0.0], &[0.75, 0.25]);
    let by_hand = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
    assert!((k.reverse - by_hand).abs() < 1e-15);
    assert!((k.reverse_grad[0] + 0.25).abs() < 1e-15 && (k.reverse_grad[1] - 0.25).abs() < 1e-15);
    // KL(π‖ρ) = ½ ln(2/3) + ½ ln 2, gradient π_b (ln(π_b/ρ_b) − KL).
    let forward = 0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2.0f64.ln();
    assert!((k.forward - forward).abs() < 1e-15);
    assert!((k.forward_grad[0] - 0.5 * ((2.0f64 / 3.0).ln() - forward)).abs() < 1e-15);
    // Both gradients against central finite differences, on a less symmetric case.
    let z = [0.4, -0.3, 1.1, 0.0];
    let rho = [0.1, 0.2, 0.3, 0.4];
    let k = kl_gradients(&z, &rho);
    let h = 1e-6;
    for b in 0..4 {
        let (mut up, mut down) = (z, z);
        up[b] += h;
        down[b] -= h;
        let (u, d) = (kl_gradients(&up, &rho), kl_gradients(&down, &rho));
        assert!(((u.forward - d.forward) / (2.0 * h) - k.forward_grad[b]).abs() < 1e-8);
        assert!(((u.reverse - d.reverse) / (2.0 * h) - k.reverse_grad[b]).abs() < 1e-8);
    }
    // The loss's k3 term, differentiated with the sampled action held fixed, follows the
    // gradient of KL(ρ‖π) in expectation, not that of KL(π‖ρ) whose value it estimates.
    let g = k3_penalty_gradient(&z, &rho).unwrap();
    let gap = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    assert!(
        gap(&g, &k.reverse_grad) < 1e-12,
        "{g:?} vs {:?}",
        k.reverse_grad
    );
    assert!(
        gap(&g, &k.forward_grad) > 0.05,
        "{g:?} vs {:?}",
        k.forward_grad
    );
}
