//! Returns and advantages: how good was what the cat (or the language model) did.

use gridworld::ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

// ANCHOR: discounted_return
/// The return of an episode, G = r_1 + γ r_2 + γ² r_3 + … + γ^{T−1} r_T.
pub fn discounted_return(rewards: &[f64], gamma: f64) -> f64 {
    // ANCHOR: ex_2_1 (1 point) The discounted return G = r_1 + γ r_2 + γ² r_3 + … of one episode's rewards.
    rewards.iter().rev().fold(0.0, |g, &r| r + gamma * g)
    // ANCHOR_END: ex_2_1
}
// ANCHOR_END: discounted_return

// ANCHOR: reward_to_go
/// The reward-to-go of every step, G_t = r_{t+1} + γ r_{t+2} + … to the end of the
/// episode, computed backwards with G_t = r_{t+1} + γ G_{t+1}. Padding (mask 0) gets 0.
pub fn reward_to_go(rewards: ArrayView2<f64>, mask: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    // ANCHOR: ex_2_2 (2 points) The reward-to-go G_t of every real step, backwards: G_t = r_{t+1} + γ G_{t+1}; padding gets 0.
    let mut out = Array2::zeros(rewards.dim());
    for (i, row) in rewards.rows().into_iter().enumerate() {
        let mut g = 0.0;
        for t in (0..row.len()).rev() {
            g = if mask[[i, t]] > 0.0 {
                row[t] + gamma * g
            } else {
                0.0
            };
            out[[i, t]] = g;
        }
    }
    out
    // ANCHOR_END: ex_2_2
}
// ANCHOR_END: reward_to_go

// ANCHOR: total_return
/// The crudest weight: every step of an episode gets the return of the whole episode,
/// G_0 = r_1 + γ r_2 + …, including rewards that came *before* the step.
pub fn total_return(rewards: ArrayView2<f64>, mask: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    let rtg = reward_to_go(rewards, mask, gamma);
    let mut out = Array2::zeros(rewards.dim());
    for i in 0..rewards.nrows() {
        let g0 = if rewards.ncols() > 0 {
            rtg[[i, 0]]
        } else {
            0.0
        };
        for t in 0..rewards.ncols() {
            out[[i, t]] = g0 * mask[[i, t]];
        }
    }
    out
}
// ANCHOR_END: total_return

// ANCHOR: mean_baseline
/// A baseline from the batch itself: for episode i at step t, the mean reward-to-go G_t
/// of the *other* episodes that are still running at step t (leave-one-out, so the
/// baseline never depends on episode i's own actions and the gradient stays unbiased).
/// 0 if no other episode reached step t.
pub fn mean_baseline(returns: ArrayView2<f64>, mask: ArrayView2<f64>) -> Array2<f64> {
    // ANCHOR: ex_3_1 (2 points) The leave-one-out baseline: the mean G_t of the other episodes still running at step t.
    let (b, t) = returns.dim();
    let mut out = Array2::zeros((b, t));
    for k in 0..t {
        let (sum, count) = (0..b).fold((0.0, 0.0), |(s, c), i| {
            (s + returns[[i, k]] * mask[[i, k]], c + mask[[i, k]])
        });
        for i in 0..b {
            if mask[[i, k]] > 0.0 && count > 1.0 {
                out[[i, k]] = (sum - returns[[i, k]]) / (count - 1.0);
            }
        }
    }
    out
    // ANCHOR_END: ex_3_1
}
// ANCHOR_END: mean_baseline

/// The value of each step's state from a table of values per cell (padding gets 0).
pub fn state_values(values: &[f64], states: ArrayView2<u32>, mask: ArrayView2<f64>) -> Array2<f64> {
    Array2::from_shape_fn(states.dim(), |(i, t)| {
        values[states[[i, t]] as usize] * mask[[i, t]]
    })
}

/// The exact value of each step's state with the steps that were left at that moment:
/// `values[k, s]` is V_k(s) (see `Mdp::evaluate_finite`), and step t of an episode with step
/// limit H has k = H − t steps left.
pub fn exact_state_values(
    values: ArrayView2<f64>,
    states: ArrayView2<u32>,
    mask: ArrayView2<f64>,
) -> Array2<f64> {
    let horizon = values.nrows() - 1;
    Array2::from_shape_fn(states.dim(), |(i, t)| {
        if mask[[i, t]] > 0.0 && t < horizon {
            values[[horizon - t, states[[i, t]] as usize]]
        } else {
            0.0
        }
    })
}

/// (returns − baseline) on real steps, 0 on padding.
pub fn subtract_baseline(
    returns: ArrayView2<f64>,
    baseline: ArrayView2<f64>,
    mask: ArrayView2<f64>,
) -> Array2<f64> {
    (&returns - &baseline) * mask
}

/// The value to bootstrap from after an episode's last step: 0 if it *terminated* (the
/// future really is zero), V(s_T) if it was *truncated* (the future was cut off, not zero).
fn bootstrap(terminated: bool, last_value: f64) -> f64 {
    if terminated {
        0.0
    } else {
        last_value
    }
}

// ANCHOR: td_errors
/// One-step TD errors δ_t = r_{t+1} + γ V(s_{t+1}) − V(s_t) on every real step, where
/// `values[i, t]` = V(s_t) and `last_values[i]` = V(s_T) of episode i. After the last
/// step the next value is 0 if the episode terminated and V(s_T) if it was truncated.
pub fn td_errors(
    rewards: ArrayView2<f64>,
    values: ArrayView2<f64>,
    last_values: &[f64],
    mask: ArrayView2<f64>,
    terminated: &[bool],
    gamma: f64,
) -> Array2<f64> {
    // ANCHOR: ex_4_1 (2 points) TD errors δ_t = r_{t+1} + γ V(s_{t+1}) − V(s_t); after the last step bootstrap only if truncated.
    let mut delta = Array2::zeros(rewards.dim());
    for i in 0..rewards.nrows() {
        let len = mask.row(i).iter().filter(|&&m| m > 0.0).count();
        for t in 0..len {
            let next = if t + 1 < len {
                values[[i, t + 1]]
            } else {
                bootstrap(terminated[i], last_values[i])
            };
            delta[[i, t]] = rewards[[i, t]] + gamma * next - values[[i, t]];
        }
    }
    delta
    // ANCHOR_END: ex_4_1
}
// ANCHOR_END: td_errors

// ANCHOR: gae
/// Generalised advantage estimation: Â_t = Σ_k (γλ)^k δ_{t+k}, computed backwards in
/// one pass as Â_t = δ_t + γλ Â_{t+1}. λ = 0 gives the one-step TD error, λ = 1 the
/// Monte Carlo return minus V(s_t) (plus the bootstrap of a truncated episode). Returns
/// the advantages and the value targets Â_t + V(s_t).
#[allow(clippy::too_many_arguments)]
pub fn gae(
    rewards: ArrayView2<f64>,
    values: ArrayView2<f64>,
    last_values: &[f64],
    mask: ArrayView2<f64>,
    terminated: &[bool],
    gamma: f64,
    lambda: f64,
) -> (Array2<f64>, Array2<f64>) {
    let delta = td_errors(rewards, values, last_values, mask, terminated, gamma);
    // ANCHOR: ex_4_2 (3 points) GAE: Â_t = δ_t + γλ Â_{t+1} backwards over each episode; return (advantages, Â + V).
    let mut adv = Array2::zeros(rewards.dim());
    for i in 0..rewards.nrows() {
        let mut running = 0.0;
        for t in (0..rewards.ncols()).rev() {
            running = if mask[[i, t]] > 0.0 {
                delta[[i, t]] + gamma * lambda * running
            } else {
                0.0
            };
            adv[[i, t]] = running;
        }
    }
    let targets = (&adv + &values) * mask;
    (adv, targets)
    // ANCHOR_END: ex_4_2
}
// ANCHOR_END: gae

/// Normalises advantages to mean 0 and standard deviation 1 over the real steps (PPO does
/// this per minibatch), with [`std_scale`]. With fewer than two steps only the mean is
/// removed.
pub fn normalize(adv: ArrayView2<f64>, mask: ArrayView2<f64>) -> Array2<f64> {
    let n: f64 = mask.sum();
    if n < 1.0 {
        return adv.to_owned();
    }
    let mean = (&adv * &mask).sum() / n;
    let var = if n > 1.0 {
        adv.iter()
            .zip(mask.iter())
            .map(|(a, m)| m * (a - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0)
    } else {
        0.0
    };
    let sd = var.sqrt();
    adv.mapv(|a| (a - mean) * std_scale(sd)) * mask
}

/// Explained variance 1 − Var[R − V] / Var[R] over the real steps: 1 for a perfect critic,
/// 0 for one no better than a constant, negative for one worse than that.
pub fn explained_variance(
    values: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    mask: ArrayView2<f64>,
) -> f64 {
    let n = mask.sum();
    let var = |x: &Array2<f64>| {
        let mean = (x * &mask).sum() / n;
        x.iter()
            .zip(mask.iter())
            .map(|(v, m)| m * (v - mean).powi(2))
            .sum::<f64>()
            / n
    };
    let t = targets.to_owned();
    let vt = var(&t);
    if vt <= 0.0 {
        return f64::NAN;
    }
    1.0 - var(&(&t - &values)) / vt
}

/// The ε added to a standard deviation before dividing by it (as in common GRPO
/// implementations), so that values with a tiny spread are not divided by almost zero. Every
/// normalisation of the library uses it: group advantages and PPO's per-minibatch one.
pub const STD_EPS: f64 = 1e-4;

/// The factor 1 / (sd + [`STD_EPS`]) that scales values of standard deviation `sd` to about 1.
pub fn std_scale(sd: f64) -> f64 {
    1.0 / (sd + STD_EPS)
}

/// Checks that `rewards` can be cut into groups of `group_size` and are all finite.
fn check_groups(rewards: &[f64], group_size: usize) -> Result<()> {
    if group_size < 2 {
        return Err(Error::invalid(
            "group_size",
            format!(
                "{group_size}: a group needs at least 2 answers to compare them with each other"
            ),
        ));
    }
    if rewards.len() % group_size != 0 {
        return Err(Error::invalid(
            "rewards",
            format!(
                "{} rewards cannot be cut into groups of {group_size}",
                rewards.len()
            ),
        ));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::invalid(
            "rewards",
            format!("reward {i} is {}, not a finite number", rewards[i]),
        ));
    }
    Ok(())
}

// ANCHOR: group_advantages
/// GRPO's group-relative advantages. `rewards` holds one outcome reward per answer,
/// laid out as consecutive groups of `group_size` answers to the same question. Each
/// answer i of a group g gets
///
/// Â_i = (r_i − mean_g) / (std_g + ε)   with `scale_by_std` (GRPO), or
/// Â_i =  r_i − mean_g                  without it (Dr. GRPO),
///
/// where std_g is the unbiased (n − 1) standard deviation of the group's rewards and
/// ε = [`STD_EPS`]. A group whose rewards are all equal carries no signal: its
/// advantages are exactly 0. Errors if `group_size` < 2, if the rewards do not split
/// into whole groups, or if a reward is not finite.
pub fn group_advantages(
    rewards: &[f64],
    group_size: usize,
    scale_by_std: bool,
) -> Result<Vec<f64>> {
    check_groups(rewards, group_size)?;
    // ANCHOR: ex_6_1 (3 points) Group-relative advantages: (r − mean) / (std + ε) per group (unbiased std), r − mean without std; equal rewards give 0.
    let mut out = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(group_size) {
        if group.iter().all(|&r| r == group[0]) {
            out.extend(std::iter::repeat_n(0.0, group_size));
            continue;
        }
        let n = group_size as f64;
        let mean = group.iter().sum::<f64>() / n;
        let std = (group.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let scale = if scale_by_std { std_scale(std) } else { 1.0 };
        out.extend(group.iter().map(|r| (r - mean) * scale));
    }
    Ok(out)
    // ANCHOR_END: ex_6_1
}
// ANCHOR_END: group_advantages

/// The fraction of groups whose rewards are all equal (zero spread): such groups give every
/// answer an advantage of 0 and teach nothing. Same layout and errors as
/// [`group_advantages`].
pub fn frac_reward_zero_std(rewards: &[f64], group_size: usize) -> Result<f64> {
    check_groups(rewards, group_size)?;
    let groups = rewards.len() / group_size;
    let flat = rewards
        .chunks(group_size)
        .filter(|g| g.iter().all(|&r| r == g[0]))
        .count();
    Ok(flat as f64 / groups.max(1) as f64)
}

// ANCHOR: per_step
/// Gives every real step of each response (row of `mask`) its response's value, e.g.
/// its advantage: `out[i, t] = values[i] · mask[i, t]`. Errors if there is not one
/// value per row.
pub fn per_step(values: &[f64], mask: ArrayView2<f64>) -> Result<Array2<f64>> {
    if values.len() != mask.nrows() {
        return Err(Error::invalid(
            "values",
            format!(
                "{} values for a batch of {} responses",
                values.len(),
                mask.nrows()
            ),
        ));
    }
    Ok(Array2::from_shape_fn(mask.dim(), |(i, t)| {
        values[i] * mask[[i, t]]
    }))
}
// ANCHOR_END: per_step
