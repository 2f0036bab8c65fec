//! Actor-critic: REINFORCE whose weights come from a learned critic instead of whole
//! returns. The advantage is GAE(γ, λ) — λ = 0 is the one-step TD error
//! δ_t = r_{t+1} + γ V(s_{t+1}) − V(s_t) — and every batch is used for exactly one gradient
//! step of the actor and one of the critic (on-policy). PPO is this loop plus reuse.

use gridworld::Env;

use crate::algo::ppo::{self, IterationLog, PpoConfig, TrainedPpo};
use crate::algo::ModelKind;
use crate::error::Result;

/// Settings of an actor-critic run.
#[derive(Clone, Debug)]
pub struct ActorCriticConfig {
    pub iterations: usize,
    pub episodes_per_iteration: usize,
    pub lr: f64,
    pub value_lr: f64,
    pub gamma: f64,
    /// 0: one-step TD errors; between 0 and 1: GAE; 1: Monte Carlo minus the critic.
    pub lambda: f64,
    pub policy: ModelKind,
    pub value: ModelKind,
    pub seed: u64,
}

impl Default for ActorCriticConfig {
    fn default() -> Self {
        ActorCriticConfig {
            iterations: 150,
            episodes_per_iteration: 16,
            lr: 0.03,
            value_lr: 0.5,
            gamma: 1.0,
            lambda: 0.0,
            policy: ModelKind::Tabular,
            value: ModelKind::Tabular,
            seed: 0,
        }
    }
}

impl ActorCriticConfig {
    /// The same run expressed as PPO with one epoch, one minibatch and no clipping: the
    /// ratio is exactly 1 at the only step, so the surrogate's gradient is the policy gradient.
    pub fn as_ppo(&self) -> PpoConfig {
        PpoConfig {
            iterations: self.iterations,
            episodes_per_iteration: self.episodes_per_iteration,
            epochs: 1,
            minibatches: 1,
            clip: None,
            lr: self.lr,
            value_lr: self.value_lr,
            gamma: self.gamma,
            lambda: self.lambda,
            normalize_advantages: false,
            max_grad_norm: None,
            target_kl: None,
            entropy_coef: 0.0,
            value_clip: None,
            policy: self.policy,
            value: self.value,
            seed: self.seed,
        }
    }
}

/// Trains a cat with actor-critic.
pub fn train(
    env: &mut Env,
    config: &ActorCriticConfig,
    on_iteration: impl FnMut(&IterationLog),
) -> Result<TrainedPpo> {
    ppo::train(env, &config.as_ppo(), on_iteration)
}
