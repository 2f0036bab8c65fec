//! REINFORCE on the cat's house: sample a batch of episodes with the current policy, weight
//! each step's log-probability by how well things went after it, and take a gradient step.

use candle_core::{Device, Tensor};
use gridworld::ndarray::Array2;
use gridworld::Env;
use serde::Serialize;

use crate::advantage::{
    mean_baseline, reward_to_go, state_values, subtract_baseline, total_return,
};
use crate::algo::{new_model, ModelKind, Opt, OptimizerKind};
use crate::error::{Doing, Error, Result};
use crate::exact::success_probability;
use crate::objective::{aggregate, reinforce_loss, value_loss, Aggregation};
use crate::policy::{log_probs, policy_table, value_table, Model};
use crate::rollout::{derive_seed, sample_batch, stream, Batch};
use crate::update::{check_finite, scalar};
use crate::validate;

/// What each step's log-probability is multiplied by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Baseline {
    /// `total`: the whole episode's return G_0, at every step.
    TotalReturn,
    /// `rtg`: the reward-to-go G_t (only what came after the step).
    RewardToGo,
    /// `mean`: G_t minus the mean G_t of the other episodes of the batch at that step.
    Mean,
    /// `learned`: G_t minus a learned value V(s_t).
    Learned,
}

impl Baseline {
    /// All kinds, in the order of the book.
    pub const ALL: [Baseline; 4] = [
        Baseline::TotalReturn,
        Baseline::RewardToGo,
        Baseline::Mean,
        Baseline::Learned,
    ];

    /// The short name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::TotalReturn => "total",
            Baseline::RewardToGo => "rtg",
            Baseline::Mean => "mean",
            Baseline::Learned => "learned",
        }
    }

    /// A description for legends.
    pub fn label(self) -> &'static str {
        match self {
            Baseline::TotalReturn => "total return",
            Baseline::RewardToGo => "reward-to-go",
            Baseline::Mean => "reward-to-go − mean",
            Baseline::Learned => "reward-to-go − learned V",
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Baseline::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "baseline",
                    format!("{s:?}; choose total, rtg, mean or learned"),
                )
            })
    }
}

/// Settings of a REINFORCE run.
#[derive(Clone, Debug)]
pub struct ReinforceConfig {
    /// Number of gradient steps.
    pub updates: usize,
    /// Episodes sampled for each gradient step.
    pub episodes_per_update: usize,
    /// How the policy's parameters are updated.
    pub optimizer: OptimizerKind,
    /// Learning rate of the policy.
    pub lr: f64,
    /// Discount γ of the returns that weight the steps.
    pub gamma: f64,
    pub baseline: Baseline,
    pub aggregation: Aggregation,
    pub policy: ModelKind,
    /// The learned value function (for `Baseline::Learned`).
    pub value: ModelKind,
    /// Adam learning rate of the value function.
    pub value_lr: f64,
    /// Regression steps on each batch for the value function.
    pub value_steps: usize,
    pub seed: u64,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        ReinforceConfig {
            updates: 200,
            episodes_per_update: 16,
            optimizer: OptimizerKind::Adam,
            lr: 0.1,
            gamma: 1.0,
            baseline: Baseline::Learned,
            aggregation: Aggregation::EpisodeSum,
            policy: ModelKind::Tabular,
            value: ModelKind::Tabular,
            value_lr: 0.5,
            value_steps: 5,
            seed: 0,
        }
    }
}

impl ReinforceConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate::count("updates", self.updates, 1, usize::MAX)?;
        validate::rule(
            "episodes_per_update",
            self.episodes_per_update,
            self.episodes_per_update >= 2,
            "is too small: the mean baseline compares at least 2 episodes with each other",
        )?;
        validate::within("gamma", self.gamma, 0.0, 1.0)?;
        validate::positive("lr", self.lr)?;
        validate::positive("value_lr", self.value_lr)
    }
}

/// What one update saw and did.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateLog {
    pub update: usize,
    /// Episodes sampled so far, this update's included.
    pub episodes: usize,
    /// Mean undiscounted return of this update's episodes.
    pub mean_return: f64,
    pub success_rate: f64,
    pub mean_length: f64,
    /// Mean entropy of π(·|s) over the steps of this update's episodes, in nats.
    pub entropy: f64,
    /// Exact J(π) of the policy *before* this update (the one that sampled the batch).
    pub exact_j: f64,
    /// Exact probability that that policy reaches the meat within the step limit.
    pub exact_success: f64,
    pub loss: f64,
}

/// A trained cat.
pub struct TrainedReinforce {
    pub policy: Box<dyn Model>,
    pub value: Option<Box<dyn Model>>,
    pub log: Vec<UpdateLog>,
}

impl TrainedReinforce {
    /// π(a|s) for every cell.
    pub fn table(&self) -> Result<Array2<f64>> {
        policy_table(self.policy.as_ref())
    }
}

/// Converts a (B, T) array into a tensor.
pub fn to_tensor<T: candle_core::WithDType + Copy>(
    a: &Array2<T>,
    device: &Device,
) -> Result<Tensor> {
    Tensor::from_iter(a.iter().copied(), device)
        .and_then(|t| t.reshape(a.dim()))
        .doing("to_tensor in algo::reinforce")
}

// ANCHOR: advantages
/// The weights Â_t of every step of `batch` for the chosen baseline.
pub fn advantages(
    batch: &Batch,
    baseline: Baseline,
    gamma: f64,
    value: Option<&dyn Model>,
) -> Result<Array2<f64>> {
    let (r, m) = (batch.rewards.view(), batch.mask.view());
    Ok(match baseline {
        Baseline::TotalReturn => total_return(r, m, gamma),
        Baseline::RewardToGo => reward_to_go(r, m, gamma),
        Baseline::Mean => {
            let g = reward_to_go(r, m, gamma);
            subtract_baseline(g.view(), mean_baseline(g.view(), m).view(), m)
        }
        Baseline::Learned => {
            let value =
                value.ok_or_else(|| Error::invalid("baseline", "learned needs a value model"))?;
            let v = state_values(&value_table(value)?, batch.states.view(), m);
            subtract_baseline(reward_to_go(r, m, gamma).view(), v.view(), m)
        }
    })
}
// ANCHOR_END: advantages

// ANCHOR: fit_value
/// A few steps of regression of V(s_t) onto the reward-to-go G_t of the batch
/// (½ the mean squared error over the real steps: the critic loss of PPO, unclipped).
pub fn fit_value(
    value: &dyn Model,
    opt: &mut Opt,
    batch: &Batch,
    gamma: f64,
    steps: usize,
) -> Result<f64> {
    let device = Device::Cpu;
    let targets = to_tensor(
        &reward_to_go(batch.rewards.view(), batch.mask.view(), gamma),
        &device,
    )?;
    let mask = to_tensor(&batch.mask, &device)?;
    let states = to_tensor(&batch.states, &device)?;
    let mut last = f64::NAN;
    for _ in 0..steps {
        let loss = || -> candle_core::Result<candle_core::Tensor> {
            let v = value
                .forward(&states.flatten_all()?)?
                .reshape(states.dims())?;
            // The critic loss of PPO, unclipped (so the old values are not read).
            value_loss(&v, &targets, &v, &mask, None)
        };
        let loss = loss().doing("the value function's loss")?;
        opt.backward_step(&loss)?;
        last = loss.to_scalar::<f64>().doing("the value function's loss")?;
    }
    Ok(last)
}
// ANCHOR_END: fit_value

/// Mean entropy of the policy over the real steps of a batch, in nats.
pub(crate) fn batch_entropy(policy: &dyn Model, batch: &Batch) -> Result<f64> {
    let device = Device::Cpu;
    let cells = to_tensor(&batch.states, &device)?;
    let mask = to_tensor(&batch.mask, &device)?;
    crate::policy::entropy(policy, &cells)
        .and_then(|h| aggregate(&h, &mask, Aggregation::StepMean))
        .and_then(|h| h.to_scalar::<f64>())
        .doing("the policy's entropy")
}

// ANCHOR: reinforce_train
/// Trains a cat with REINFORCE. `on_update` sees every update's log (for progress
/// bars).
pub fn train(
    env: &mut Env,
    config: &ReinforceConfig,
    mut on_update: impl FnMut(&UpdateLog),
) -> Result<TrainedReinforce> {
    config.validate()?;
    let house = env.house().clone();
    let mdp = env.mdp();
    let device = Device::Cpu;
    let policy = new_model(
        config.policy,
        &house,
        4,
        derive_seed(config.seed, stream::POLICY),
    )?;
    let mut opt = Opt::new(config.optimizer, policy.vars(), config.lr)?;
    let value = match config.baseline {
        Baseline::Learned => Some(new_model(
            config.value,
            &house,
            1,
            derive_seed(config.seed, stream::VALUE),
        )?),
        _ => None,
    };
    let mut value_opt = value
        .as_deref()
        .map(|v| Opt::new(OptimizerKind::Adam, v.vars(), config.value_lr))
        .transpose()?;
    let mut log = Vec::with_capacity(config.updates);
    for update in 0..config.updates {
        // 1. Roll out the current policy.
        let table = policy_table(policy.as_ref())?;
        let batch = sample_batch(
            env,
            table.view(),
            config.episodes_per_update,
            derive_seed(config.seed, update as u64),
        );
        // 2. Weight every step.
        let adv = advantages(&batch, config.baseline, config.gamma, value.as_deref())?;
        let entropy = batch_entropy(policy.as_ref(), &batch)?;
        // 3. One gradient step on the REINFORCE loss.
        let loss = {
            let step = || -> candle_core::Result<Tensor> {
                let logp = log_probs(
                    policy.as_ref(),
                    &to_tensor(&batch.states, &device).map_err(to_candle)?,
                    &to_tensor(&batch.actions, &device).map_err(to_candle)?,
                )?;
                let adv = to_tensor(&adv, &device).map_err(to_candle)?;
                let mask = to_tensor(&batch.mask, &device).map_err(to_candle)?;
                reinforce_loss(&logp, &adv, &mask, config.aggregation)
            };
            let loss = step().doing("the REINFORCE loss")?;
            let value = scalar(&loss)?;
            check_finite(update, "loss", value)?;
            opt.backward_step(&loss)?;
            value
        };
        // 4. Fit the value function to this batch's returns (after using it).
        if let (Some(v), Some(o)) = (value.as_deref(), value_opt.as_mut()) {
            fit_value(v, o, &batch, config.gamma, config.value_steps)?;
        }
        let returns = batch.returns();
        let entry = UpdateLog {
            update,
            episodes: (update + 1) * config.episodes_per_update,
            mean_return: returns.iter().sum::<f64>() / returns.len() as f64,
            success_rate: batch.success_rate(),
            mean_length: batch.steps() as f64 / batch.episodes() as f64,
            entropy,
            exact_j: mdp.expected_return(table.view(), 1.0)?,
            exact_success: success_probability(&house, env.config(), &table)?,
            loss,
        };
        on_update(&entry);
        log.push(entry);
    }
    Ok(TrainedReinforce { policy, value, log })
}
// ANCHOR_END: reinforce_train

fn to_candle(e: Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}
