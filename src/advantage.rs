//! Returns and advantages: how good was what the cat (or the language model) did.

// ANCHOR: discounted_return
/// The return of an episode, G = r_1 + γ r_2 + γ² r_3 + … + γ^{T−1} r_T.
pub fn discounted_return(rewards: &[f64], gamma: f64) -> f64 {
    rewards.iter().rev().fold(0.0, |g, &r| r + gamma * g)
}
// ANCHOR_END: discounted_return
