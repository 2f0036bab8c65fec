//! Returns and advantages: how good was what the cat (or the language model) did.

use gridworld::ndarray::{Array2, ArrayView2};

// ANCHOR: discounted_return
/// The return of an episode, G = r_1 + γ r_2 + γ² r_3 + … + γ^{T−1} r_T.
pub fn discounted_return(rewards: &[f64], gamma: f64) -> f64 {
    rewards.iter().rev().fold(0.0, |g, &r| r + gamma * g)
}
// ANCHOR_END: discounted_return

// ANCHOR: reward_to_go
/// The reward-to-go of every step, G_t = r_{t+1} + γ r_{t+2} + … to the end of the episode,
/// computed backwards with G_t = r_{t+1} + γ G_{t+1}. Padding (mask 0) gets 0.
pub fn reward_to_go(rewards: ArrayView2<f64>, mask: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
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
/// A baseline from the batch itself: for episode i at step t, the mean reward-to-go G_t of
/// the *other* episodes that are still running at step t (leave-one-out, so the baseline
/// never depends on episode i's own actions and the gradient stays unbiased). 0 if no
/// other episode reached step t.
pub fn mean_baseline(returns: ArrayView2<f64>, mask: ArrayView2<f64>) -> Array2<f64> {
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
