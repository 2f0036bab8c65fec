//! Chapter 4 — actor-critic and GAE: the λ dial measured. At one fixed policy, GAE(γ, λ)
//! advantages of sampled steps are compared with the exact advantage
//! A^π_k(s, a) = Q^π_k(s, a) − V^π_k(s) from the exact MDP, with an exact and a learned critic.

use std::collections::HashMap;

use gridworld::ndarray::{Array2, Array3};
use gridworld::Env;
use serde::Serialize;

use crate::experiments::ch03::{learned_value, Ch03Config};
use crate::plot::{self, Curves, Svg};
use zero_to_r1::advantage::{exact_state_values, gae, state_values};
use zero_to_r1::error::Result;
use zero_to_r1::exact::{fixed_logits, softmax_policy};
use zero_to_r1::rollout::{derive_seed, sample_batch};

/// The λ values of the sweep.
pub const LAMBDAS: [f64; 5] = [0.0, 0.5, 0.9, 0.95, 1.0];

/// Settings of the λ sweep.
#[derive(Clone, Debug)]
pub struct Ch04Config {
    pub batches: usize,
    pub episodes_per_batch: usize,
    pub preference: f64,
    pub seed: u64,
}

impl Default for Ch04Config {
    fn default() -> Self {
        Ch04Config {
            batches: 300,
            episodes_per_batch: 8,
            preference: 1.0,
            seed: 1,
        }
    }
}

/// Error of GAE advantages against the exact advantage, for one critic and one λ.
#[derive(Clone, Debug, Serialize)]
pub struct LambdaStats {
    pub critic: &'static str,
    pub lambda: f64,
    /// Mean over sampled steps of the squared bias E[Â − A | t, s, a]².
    pub bias_sq: f64,
    /// Mean over sampled steps of the variance of Â given (t, s, a).
    pub variance: f64,
    /// Mean squared error E[(Â − A)²].
    pub mse: f64,
}

/// Exact advantages A_k(s, a) for k = 1 … H steps left, shape (H + 1, S, 4).
fn exact_advantages(env: &Env, policy: &Array2<f64>) -> Result<(Array2<f64>, Array3<f64>)> {
    let mdp = env.mdp();
    let h = mdp.max_steps();
    let values = mdp.evaluate_finite(policy.view(), 1.0, h)?;
    let mut adv = Array3::zeros((h + 1, mdp.n_states(), 4));
    for k in 1..=h {
        let q = mdp.q_table(1.0, &values.row(k - 1).to_owned());
        for s in 0..mdp.n_states() {
            for a in 0..4 {
                adv[[k, s, a]] = q[[s, a]] - values[[k, s]];
            }
        }
    }
    Ok((values, adv))
}

/// Per-group accumulators: count, sum and sum of squares of the error.
type Groups = HashMap<(usize, u32, u32), (f64, f64, f64)>;

fn summarise(critic: &'static str, lambda: f64, groups: &Groups) -> LambdaStats {
    let (mut n_all, mut b2, mut var, mut sq) = (0.0, 0.0, 0.0, 0.0);
    for &(n, sum, sumsq) in groups.values() {
        sq += sumsq;
        if n < 2.0 {
            continue;
        }
        let mean = sum / n;
        let s2 = (sumsq - n * mean * mean) / (n - 1.0);
        // Unbiased estimate of the squared conditional bias: mean² − s²/n.
        b2 += n * (mean * mean - s2 / n);
        var += n * s2;
        n_all += n;
    }
    let total: f64 = groups.values().map(|g| g.0).sum();
    LambdaStats {
        critic,
        lambda,
        // An unbiased estimate can dip below zero by noise; a squared bias cannot.
        bias_sq: (b2 / n_all).max(0.0),
        variance: var / n_all,
        mse: sq / total,
    }
}

// ANCHOR: lambda_sweep
/// Measures GAE's error against the exact advantage for every λ in [`LAMBDAS`], with
/// the exact critic V^π_k (time-aware) and with a learned tabular V(s) (time-blind).
pub fn lambda_sweep(config: &Ch04Config, mut progress: impl FnMut()) -> Result<Vec<LambdaStats>> {
    let mut env = Env::seed();
    let logits = fixed_logits(&env, config.preference)?;
    let table = softmax_policy(&logits);
    let (values, exact_adv) = exact_advantages(&env, &table)?;
    let ch3 = Ch03Config {
        episodes_per_batch: config.episodes_per_batch,
        seed: config.seed,
        ..Ch03Config::default()
    };
    let learned = learned_value(&mut env, &table, &ch3)?;
    let h = env.config().max_steps;
    let mut groups: Vec<Groups> = vec![Groups::new(); 2 * LAMBDAS.len()];
    for k in 0..config.batches {
        let batch = sample_batch(
            &mut env,
            table.view(),
            config.episodes_per_batch,
            derive_seed(config.seed, k as u64),
        );
        let (r, m) = (batch.rewards.view(), batch.mask.view());
        let exact_v = exact_state_values(values.view(), batch.states.view(), m);
        // With the exact, time-aware critic the cat has 0 steps left after the last
        // step of a truncated episode, so its bootstrap is V_0 = 0.
        let exact_last: Vec<f64> = batch
            .lengths
            .iter()
            .zip(&batch.last_states)
            .map(|(&len, &s)| values[[h - len, s as usize]])
            .collect();
        let learned_v = state_values(&learned, batch.states.view(), m);
        let learned_last: Vec<f64> = batch
            .last_states
            .iter()
            .map(|&s| learned[s as usize])
            .collect();
        for (l, &lambda) in LAMBDAS.iter().enumerate() {
            for (c, (v, last)) in [(&exact_v, &exact_last), (&learned_v, &learned_last)]
                .into_iter()
                .enumerate()
            {
                let (adv, _) = gae(r, v.view(), last, m, &batch.terminated, 1.0, lambda);
                let g = &mut groups[c * LAMBDAS.len() + l];
                for i in 0..batch.episodes() {
                    for t in 0..batch.lengths[i] {
                        let (s, a) = (batch.states[[i, t]], batch.actions[[i, t]]);
                        let e = adv[[i, t]] - exact_adv[[h - t, s as usize, a as usize]];
                        let entry = g.entry((t, s, a)).or_insert((0.0, 0.0, 0.0));
                        *entry = (entry.0 + 1.0, entry.1 + e, entry.2 + e * e);
                    }
                }
            }
        }
        progress();
    }
    let mut out = Vec::new();
    for (c, critic) in ["exact V", "learned V"].into_iter().enumerate() {
        for (l, &lambda) in LAMBDAS.iter().enumerate() {
            out.push(summarise(critic, lambda, &groups[c * LAMBDAS.len() + l]));
        }
    }
    Ok(out)
}
// ANCHOR_END: lambda_sweep

/// A squared quantity estimated as a difference, which rounding can leave a hair below 0
/// (printed as −0.0).
fn non_negative(x: f64) -> f64 {
    x.max(0.0) + 0.0
}

/// The λ sweep as a markdown table.
pub fn lambda_table(stats: &[LambdaStats]) -> String {
    let mut s = String::from("| critic | λ | bias² | variance | MSE |\n|---|---|---|---|---|\n");
    for r in stats {
        s.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |\n",
            r.critic,
            r.lambda,
            non_negative(r.bias_sq),
            non_negative(r.variance),
            r.mse
        ));
    }
    s
}

/// Variance (`bias = false`) or squared bias (`bias = true`) against λ, for both critics.
pub fn lambda_figure(stats: &[LambdaStats], bias: bool) -> Result<Svg> {
    let series: Vec<Curves> = ["exact V", "learned V"]
        .into_iter()
        .map(|critic| Curves {
            label: format!("critic: {critic}"),
            runs: vec![stats
                .iter()
                .filter(|r| r.critic == critic)
                .map(|r| if bias { r.bias_sq } else { r.variance })
                .collect()],
        })
        .collect();
    let what = if bias { "squared bias" } else { "variance" };
    plot::learning_curves(
        &LAMBDAS,
        &series,
        &format!("GAE(λ) against the exact advantage: {what} per sampled step"),
        "λ",
        what,
        None,
    )
}
