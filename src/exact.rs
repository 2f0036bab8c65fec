//! Exact quantities of a tabular softmax policy on the cat's house: J(θ) and its gradient
//! ∇J(θ), computed from the exact MDP. They are the ground truth against which the sampled
//! policy-gradient estimators of chapters 2–7 are measured.
//!
//! Episodes are cut off after `max_steps` steps, so values depend on how many steps are left:
//! V_k(s) is the expected return with k steps to go (see [`gridworld::Mdp::evaluate_finite`]).

use candle_core::{Device, Tensor};
use gridworld::ndarray::{Array1, Array2};
use gridworld::{Action, Env, EnvConfig, House, Mdp, Rewards};

use crate::error::{Doing, Error, Result};
use crate::objective::{reinforce_loss, Aggregation};
use crate::policy::{log_probs, Model, Tabular};
use crate::rollout::Batch;

/// π(a|s) = exp θ_{s,a} / Σ_b exp θ_{s,b}, row by row (shifted by the row maximum for safety).
pub fn softmax_policy(logits: &Array2<f64>) -> Array2<f64> {
    let mut p = logits.clone();
    for mut row in p.rows_mut() {
        let m = row.fold(f64::NEG_INFINITY, |a, &x| a.max(x));
        row.mapv_inplace(|x| (x - m).exp());
        let z = row.sum();
        row /= z;
    }
    p
}

/// J(θ), ∇J(θ) and the state distribution over time, for one tabular softmax policy.
#[derive(Clone, Debug)]
pub struct ExactGradient {
    /// J(θ): expected return of an episode from μ₀.
    pub j: f64,
    /// ∂J/∂θ_{s,a}, shape (S, 4).
    pub grad: Array2<f64>,
    /// occupancy[t, s] = γ^t · P(s_t = s, episode still running): the discounted state
    /// occupancy, time step by time step.
    pub occupancy: Array2<f64>,
    /// values[k, s] = V_k(s), the value with k steps left.
    pub values: Array2<f64>,
}

// ANCHOR: exact_gradient
/// The exact policy gradient of a tabular softmax policy with logits θ (shape S × 4):
///
/// ∂J/∂θ_{s,b} = Σ_t γ^t P(s_t = s) · π(b|s) · (Q_{H−t}(s, b) − V_{H−t}(s)),
///
/// with H the step limit, Q and V the finite-horizon values of the policy, and the sum
/// over the time steps t = 0 … H−1 of an episode.
pub fn softmax_gradient(mdp: &Mdp, logits: &Array2<f64>, gamma: f64) -> Result<ExactGradient> {
    let n = mdp.n_states();
    if logits.dim() != (n, 4) {
        return Err(Error::invalid(
            "logits",
            format!("shape {:?}, expected ({n}, 4)", logits.dim()),
        ));
    }
    if logits.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid("logits", "a logit is not a finite number"));
    }
    let pi = softmax_policy(logits);
    let horizon = mdp.max_steps();
    let values = mdp.evaluate_finite(pi.view(), gamma, horizon)?;
    // Forward pass: where the cat is at each time step (discounted).
    let mut occupancy = Array2::zeros((horizon, n));
    let mut d: Array1<f64> = mdp.start().clone();
    for t in 0..horizon {
        occupancy.row_mut(t).assign(&d);
        let mut next = Array1::zeros(n);
        for s in (0..n).filter(|&s| d[s] != 0.0 && !mdp.is_absorbing(s)) {
            for a in Action::ALL {
                for &(to, p) in mdp.successors(s, a) {
                    next[to] += gamma * d[s] * pi[[s, a.index()]] * p;
                }
            }
        }
        d = next;
    }
    // Backward quantities: Q_k(s, a) from V_{k−1}, advantage weighted by occupancy.
    let mut grad = Array2::zeros((n, 4));
    for t in 0..horizon {
        let k = horizon - t;
        let q = mdp.q_table(gamma, &values.row(k - 1).to_owned());
        for s in (0..n).filter(|&s| occupancy[[t, s]] != 0.0 && !mdp.is_absorbing(s)) {
            for b in 0..4 {
                grad[[s, b]] += occupancy[[t, s]] * pi[[s, b]] * (q[[s, b]] - values[[k, s]]);
            }
        }
    }
    let j = values.row(horizon).dot(mdp.start());
    Ok(ExactGradient {
        j,
        grad,
        occupancy,
        values,
    })
}
// ANCHOR_END: exact_gradient

// ANCHOR: success_probability
/// The exact probability that `policy` reaches the meat within the step limit, from the
/// start distribution: the expected return when the meat pays 1 and nothing else pays.
pub fn success_probability(house: &House, config: &EnvConfig, policy: &Array2<f64>) -> Result<f64> {
    let per_cell = success_probabilities(house, config, policy)?;
    let mdp = Mdp::new(house, config);
    Ok(per_cell.dot(mdp.start()))
}

/// The same probability from each cell (with the whole step limit ahead).
pub fn success_probabilities(
    house: &House,
    config: &EnvConfig,
    policy: &Array2<f64>,
) -> Result<Array1<f64>> {
    let indicator = EnvConfig {
        rewards: Rewards {
            floor: 0.0,
            broom: 0.0,
            bathtub: 0.0,
            meat: 1.0,
            step_cost: 0.0,
        },
        ..*config
    };
    let values =
        Mdp::new(house, &indicator).evaluate_finite(policy.view(), 1.0, config.max_steps)?;
    Ok(values.row(config.max_steps).to_owned())
}
// ANCHOR_END: success_probability

/// How episodes end under a policy, exactly: the probability of reaching the meat and the
/// expected length of the episodes that succeed and of those that fail.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct OutcomeLengths {
    /// P(reach the meat within the step limit).
    pub success: f64,
    /// E[length | success]; `None` if no episode can succeed.
    pub success_length: Option<f64>,
    /// E[length | failure] (a bathtub that ends episodes, or the step limit); `None` if every
    /// episode succeeds.
    pub failure_length: Option<f64>,
    /// P(still walking at the step limit): the failures that were cut off rather than ended
    /// in a bathtub.
    pub truncated: f64,
}

// ANCHOR: outcome_lengths
/// The exact [`OutcomeLengths`] of `policy` from the start distribution, by pushing the
/// probability of where the cat is forward one step at a time: mass that lands on meat
/// has succeeded at that step, mass that lands on another absorbing cell (a bathtub
/// that ends episodes) has failed there, and mass still walking after `max_steps` steps
/// has failed at the step limit.
pub fn outcome_lengths(
    house: &House,
    config: &EnvConfig,
    policy: &Array2<f64>,
) -> Result<OutcomeLengths> {
    let mdp = Mdp::new(house, config);
    let n = mdp.n_states();
    if policy.dim() != (n, 4) {
        return Err(Error::invalid(
            "policy",
            format!("shape {:?}, expected ({n}, 4)", policy.dim()),
        ));
    }
    let meat = |s: usize| house.cells()[s] == gridworld::Cell::Meat;
    let (mut p_ok, mut len_ok, mut p_fail, mut len_fail) = (0.0, 0.0, 0.0, 0.0);
    let mut d: Array1<f64> = mdp.start().clone();
    for t in 1..=config.max_steps {
        let mut next = Array1::zeros(n);
        for s in (0..n).filter(|&s| d[s] != 0.0 && !mdp.is_absorbing(s)) {
            for a in Action::ALL {
                for &(to, p) in mdp.successors(s, a) {
                    let m = d[s] * policy[[s, a.index()]] * p;
                    if !mdp.is_absorbing(to) {
                        next[to] += m;
                    } else if meat(to) {
                        p_ok += m;
                        len_ok += m * t as f64;
                    } else {
                        p_fail += m;
                        len_fail += m * t as f64;
                    }
                }
            }
        }
        d = next;
    }
    let rest = d.sum();
    p_fail += rest;
    len_fail += rest * config.max_steps as f64;
    Ok(OutcomeLengths {
        success: p_ok,
        success_length: (p_ok > 0.0).then(|| len_ok / p_ok),
        failure_length: (p_fail > 0.0).then(|| len_fail / p_fail),
        truncated: rest,
    })
}
// ANCHOR_END: outcome_lengths

/// The gradient estimate ĝ = −∇L of the REINFORCE loss for a tabular policy, by autograd
/// through the library's own loss: exactly what training follows. Its mean over many batches
/// is what [`softmax_gradient`] computes exactly (chapters 2 and 3 compare the two).
pub fn gradient_estimate(
    policy: &Tabular,
    batch: &Batch,
    advantages: &Array2<f64>,
) -> Result<Array2<f64>> {
    let device = Device::Cpu;
    let tensor = |a: &Array2<f64>| Tensor::from_vec(a.iter().copied().collect(), a.dim(), &device);
    let index = |a: &Array2<u32>| Tensor::from_vec(a.iter().copied().collect(), a.dim(), &device);
    let (states, actions) = (index(&batch.states), index(&batch.actions));
    let (adv, mask) = (tensor(advantages), tensor(&batch.mask));
    // A fresh copy of the table is differentiated, so that the parameter and every tensor of
    // the computation are made by this call: a notebook keeps a policy from cell to cell, and
    // a tensor made in an earlier cell is not always told apart from one made in this one.
    let policy = Tabular::from_array(&table_of(policy)?, &device)?;
    let var = policy.vars().remove(0);
    let grads = (|| {
        let logp = log_probs(&policy, &states?, &actions?)?;
        reinforce_loss(&logp, &adv?, &mask?, Aggregation::EpisodeSum)?.backward()
    })()
    .doing("the sampled REINFORCE gradient")?;
    let g = grads
        .get(var.as_tensor())
        .ok_or_else(|| Error::invalid("gradient", "the policy received no gradient"))?;
    let rows = g
        .neg()
        .and_then(|g| g.to_vec2::<f64>())
        .doing("the sampled REINFORCE gradient")?;
    let n = rows.len();
    Array2::from_shape_vec((n, 4), rows.into_iter().flatten().collect())
        .map_err(|e| Error::invalid("gradient", e.to_string()))
}

/// The numbers of a table, as an array.
fn table_of(policy: &Tabular) -> Result<Array2<f64>> {
    let rows = policy.vars()[0]
        .as_tensor()
        .to_vec2::<f64>()
        .doing("reading the policy's table")?;
    let (n, k) = (rows.len(), rows.first().map_or(0, Vec::len));
    Ok(Array2::from_shape_fn((n, k), |(i, j)| rows[i][j]))
}

/// The fixed policy at which chapter 3 measures the gradient estimators: logits
/// `preference` on the optimal move (value iteration, γ = 0.99), 0 on the others.
pub fn fixed_logits(env: &Env, preference: f64) -> Result<Array2<f64>> {
    let sol = env.mdp().value_iteration(0.99, 1e-10)?;
    Ok(sol.policy.mapv(|p| p * preference))
}

// ANCHOR: kl_gradients
/// The two KL divergences between a softmax policy π = softmax(z) over the actions of
/// one state and a reference ρ, and their exact gradients with respect to the logits z:
///
/// ```text
/// ∂ KL(π ‖ ρ) / ∂z_b = π_b (log(π_b / ρ_b) − KL(π ‖ ρ))   (k3 estimates this one)
/// ∂ KL(ρ ‖ π) / ∂z_b = π_b − ρ_b                         (the other direction)
/// ```
pub struct KlGradients {
    /// KL(π ‖ ρ) and its gradient.
    pub forward: f64,
    pub forward_grad: Vec<f64>,
    /// KL(ρ ‖ π) and its gradient.
    pub reverse: f64,
    pub reverse_grad: Vec<f64>,
}

/// [`KlGradients`] of the policy with logits `logits` against the reference
/// probabilities `reference` (positive, summing to 1).
pub fn kl_gradients(logits: &[f64], reference: &[f64]) -> KlGradients {
    let pi = softmax(logits);
    let forward: f64 = pi
        .iter()
        .zip(reference)
        .map(|(p, r)| p * (p / r).ln())
        .sum();
    let reverse: f64 = pi
        .iter()
        .zip(reference)
        .map(|(p, r)| r * (r / p).ln())
        .sum();
    KlGradients {
        forward,
        forward_grad: pi
            .iter()
            .zip(reference)
            .map(|(p, r)| p * ((p / r).ln() - forward))
            .collect(),
        reverse,
        reverse_grad: pi.iter().zip(reference).map(|(p, r)| p - r).collect(),
    }
}
// ANCHOR_END: kl_gradients

// ANCHOR: k3_penalty_gradient
/// The gradient, with respect to the logits, of the β = 1 penalty of the GRPO loss as the loss
/// computes it ([`kl_to_ref`](crate::objective::kl_to_ref) of a sampled action, differentiated
/// with the action held fixed), in expectation over the action drawn from π = softmax(z): each
/// action's gradient by automatic differentiation, weighted by its probability.
pub fn k3_penalty_gradient(logits: &[f64], reference: &[f64]) -> Result<Vec<f64>> {
    let pi = softmax(logits);
    let device = Device::Cpu;
    let mut expected = vec![0.0; logits.len()];
    for (a, p) in pi.iter().enumerate() {
        let z = candle_core::Var::new(logits, &device).doing("k3_penalty_gradient")?;
        let run = || -> candle_core::Result<Vec<f64>> {
            let logp = candle_nn::ops::log_softmax(z.as_tensor(), 0)?.narrow(0, a, 1)?;
            let ref_logp = Tensor::new(&[reference[a].ln()], &device)?;
            let k3 = crate::objective::kl_to_ref(&logp, &ref_logp)?.sum_all()?;
            let grads = k3.backward()?;
            match grads.get(z.as_tensor()) {
                Some(g) => g.to_vec1::<f64>(),
                None => Ok(vec![0.0; logits.len()]),
            }
        };
        let g = run().doing("k3_penalty_gradient")?;
        for (e, x) in expected.iter_mut().zip(g) {
            *e += p * x;
        }
    }
    Ok(expected)
}
// ANCHOR_END: k3_penalty_gradient

/// [`softmax_policy`] of one row of logits.
fn softmax(logits: &[f64]) -> Vec<f64> {
    let row = Array2::from_shape_fn((1, logits.len()), |(_, j)| logits[j]);
    softmax_policy(&row).row(0).to_vec()
}
