//! Grading tests of chapter 2 (REINFORCE). A test named `ex_2_N_…` grades exercise 2.N.

mod common;

use common::{assert_solved, random_batch};
use zero_to_r1::advantage::{discounted_return, reward_to_go, total_return};
use zero_to_r1::algo::reinforce::{train, ReinforceConfig};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::exact::softmax_policy;
use zero_to_r1::exact::{fixed_logits, gradient_estimate};
use zero_to_r1::gridworld::ndarray::{Array2, ArrayView2};
use zero_to_r1::gridworld::Env;
use zero_to_r1::objective::{reinforce_loss, Aggregation};
use zero_to_r1::policy::Tabular;
use zero_to_r1::rollout::sample_batch;

#[test]
fn ex_2_1_discounted_return_by_hand() {
    let r = [1.0, -2.0, 4.0];
    // 1 + 0.5·(−2) + 0.25·4 = 1.
    assert_eq!(discounted_return(&r, 0.5), 1.0);
    assert_eq!(discounted_return(&r, 1.0), 3.0);
    assert_eq!(discounted_return(&r, 0.0), 1.0);
    assert_eq!(discounted_return(&[], 0.9), 0.0);
    // The seeds' house: broom, floor, meat with γ = 0.9: −1 + 0 + 0.81·100.
    assert!((discounted_return(&[-1.0, 0.0, 100.0], 0.9) - 80.0).abs() < 1e-12);
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
fn ex_2_2_reward_to_go_matches_naive_sums() {
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
fn ex_2_3_the_loss_carries_a_minus_sign() {
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
fn ex_2_3_autograd_gradient_equals_the_closed_form() {
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
fn ex_2_3_reinforce_with_a_learned_baseline_solves_the_house() {
    // Budget: 100 updates × 16 episodes = 1,600 episodes. Needs exercises 2.2 and 2.3.
    let config = ReinforceConfig {
        updates: 100,
        seed: 4,
        ..ReinforceConfig::default()
    };
    let mut env = Env::seed();
    let trained = train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
    assert_eq!(trained.log.len(), config.updates);
}
