//! PPO on the cat's house: actor-critic with GAE, plus reuse of each batch of episodes for
//! several epochs of minibatch steps, kept safe by clipping the probability ratio.
//!
//! The actor (policy) and the critic (value function) are separate models with separate Adam
//! optimizers. Returns here reach +100, so a squared value error is of order 10⁴ while the
//! policy loss is of order 1: in one shared loss the critic's gradient would swamp the
//! actor's unless its weight were tuned to the reward scale. Separate optimizers sidestep that.

use candle_core::{Device, Tensor};
use gridworld::ndarray::{Array2, Axis};
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};
use gridworld::Env;
use serde::Serialize;

use crate::advantage::{explained_variance, gae, normalize, state_values};
use crate::algo::reinforce::to_tensor;
use crate::algo::{new_model, ModelKind, Opt, OptimizerKind};
use crate::error::{Doing, Error, Result};
use crate::exact::success_probability;
use crate::objective::{
    aggregate, approx_kl, clip_frac, clipped_surrogate, value_loss, Aggregation,
};
use crate::policy::{entropy, log_probs, policy_table, value_table, Model};
use crate::rollout::{derive_seed, sample_batch, stream, Batch};
use crate::update::{check_finite, scalar};
use crate::validate;

/// Settings of a PPO (or actor-critic) run.
#[derive(Clone, Debug)]
pub struct PpoConfig {
    /// Rollout–optimise cycles.
    pub iterations: usize,
    /// Episodes collected per iteration.
    pub episodes_per_iteration: usize,
    /// Passes over each batch (μ). 1 = no reuse.
    pub epochs: usize,
    /// Minibatches per epoch (the batch's episodes are shuffled and split).
    pub minibatches: usize,
    /// ε of the ratio clip; `None` optimises the unclipped ratio ρ·Â.
    pub clip: Option<f64>,
    /// Adam learning rates of the actor and the critic.
    pub lr: f64,
    pub value_lr: f64,
    pub gamma: f64,
    /// GAE's λ: 0 = one-step TD, 1 = Monte Carlo.
    pub lambda: f64,
    /// Normalise advantages to mean 0, sd 1 in each minibatch.
    pub normalize_advantages: bool,
    /// Global gradient-norm limit for each step.
    pub max_grad_norm: Option<f64>,
    /// Stop an iteration's epochs early once an epoch's approx_kl (measured during it) exceeds
    /// this.
    pub target_kl: Option<f64>,
    /// Weight of the entropy bonus.
    pub entropy_coef: f64,
    /// ε of the value clip (`None` = plain squared error).
    pub value_clip: Option<f64>,
    pub policy: ModelKind,
    pub value: ModelKind,
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            iterations: 60,
            episodes_per_iteration: 16,
            epochs: 4,
            minibatches: 4,
            clip: Some(0.2),
            lr: 0.01,
            value_lr: 0.5,
            gamma: 1.0,
            lambda: 0.95,
            normalize_advantages: true,
            max_grad_norm: Some(1.0),
            target_kl: None,
            entropy_coef: 0.0,
            value_clip: None,
            policy: ModelKind::Tabular,
            value: ModelKind::Tabular,
            seed: 0,
        }
    }
}

impl PpoConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate::counts(
            [
                ("iterations", self.iterations),
                ("episodes_per_iteration", self.episodes_per_iteration),
                ("epochs", self.epochs),
                ("minibatches", self.minibatches),
            ],
            1,
        )?;
        if self.minibatches > self.episodes_per_iteration {
            return Err(Error::invalid(
                "minibatches",
                format!(
                    "{} minibatches cannot be cut from {} episodes",
                    self.minibatches, self.episodes_per_iteration
                ),
            ));
        }
        validate::within("gamma", self.gamma, 0.0, 1.0)?;
        validate::within("lambda", self.lambda, 0.0, 1.0)?;
        validate::positive("lr", self.lr)?;
        validate::positive("value_lr", self.value_lr)?;
        validate::positive_if_set("clip", self.clip)?;
        validate::positive_if_set("value_clip", self.value_clip)?;
        validate::positive_if_set("target_kl", self.target_kl)?;
        validate::positive_if_set("max_grad_norm", self.max_grad_norm)?;
        validate::non_negative("entropy_coef", self.entropy_coef)?;
        Ok(())
    }
}

/// What one iteration saw and did.
#[derive(Clone, Debug, Serialize)]
pub struct IterationLog {
    pub iteration: usize,
    /// Episodes sampled so far, this iteration's included.
    pub episodes: usize,
    pub mean_return: f64,
    pub success_rate: f64,
    pub mean_length: f64,
    /// Mean policy entropy over the batch's steps, before the update.
    pub entropy: f64,
    /// Exact J(π) of the policy that collected the batch.
    pub exact_j: f64,
    /// Exact probability that that policy reaches the meat within the step limit.
    pub exact_success: f64,
    /// k3 estimate of KL(π_old ‖ π) during the update: measured on each minibatch before its
    /// step, weighted by its steps, averaged over the epochs run (the definition of
    /// [`UpdateStats`](crate::update::UpdateStats), the same for every trainer).
    pub approx_kl: f64,
    /// Fraction of steps whose ratio was outside the clip range, measured like `approx_kl`.
    pub clip_frac: f64,
    /// How well the critic (before the update) explained the value targets.
    pub explained_variance: f64,
    /// Epochs actually run (fewer when target_kl stopped them).
    pub epochs: usize,
}

/// A trained actor and critic.
pub struct TrainedPpo {
    pub policy: Box<dyn Model>,
    pub value: Box<dyn Model>,
    pub log: Vec<IterationLog>,
}

impl TrainedPpo {
    /// π(a|s) for every cell.
    pub fn table(&self) -> Result<Array2<f64>> {
        policy_table(self.policy.as_ref())
    }
}

/// Tensors of a batch (or of some of its episodes).
struct Tensors {
    states: Tensor,
    actions: Tensor,
    old_logp: Tensor,
    mask: Tensor,
    adv: Tensor,
    targets: Tensor,
    old_values: Tensor,
}

fn tensors(
    batch: &Batch,
    rows: &[usize],
    adv: &Array2<f64>,
    targets: &Array2<f64>,
    values: &Array2<f64>,
    normalize_adv: bool,
) -> Result<Tensors> {
    let d = Device::Cpu;
    let pick_f = |a: &Array2<f64>| a.select(Axis(0), rows);
    let pick_u = |a: &Array2<u32>| a.select(Axis(0), rows);
    let mask = pick_f(&batch.mask);
    let adv = pick_f(adv);
    let adv = if normalize_adv {
        normalize(adv.view(), mask.view())
    } else {
        adv
    };
    Ok(Tensors {
        states: to_tensor(&pick_u(&batch.states), &d)?,
        actions: to_tensor(&pick_u(&batch.actions), &d)?,
        old_logp: to_tensor(&pick_f(&batch.logp), &d)?,
        mask: to_tensor(&mask, &d)?,
        adv: to_tensor(&adv, &d)?,
        targets: to_tensor(&pick_f(targets), &d)?,
        old_values: to_tensor(&pick_f(values), &d)?,
    })
}

/// Mean policy entropy over the real steps of `t` (a tensor computation, differentiable).
fn mean_entropy(policy: &dyn Model, t: &Tensors) -> candle_core::Result<Tensor> {
    aggregate(&entropy(policy, &t.states)?, &t.mask, Aggregation::StepMean)
}

// ANCHOR: ppo_train
/// Trains a cat with PPO (or, with one epoch, one minibatch and no clip, plain
/// actor-critic).
pub fn train(
    env: &mut Env,
    config: &PpoConfig,
    mut on_iteration: impl FnMut(&IterationLog),
) -> Result<TrainedPpo> {
    config.validate()?;
    let house = env.house().clone();
    let mdp = env.mdp();
    let policy = new_model(
        config.policy,
        &house,
        4,
        derive_seed(config.seed, stream::POLICY),
    )?;
    let value = new_model(
        config.value,
        &house,
        1,
        derive_seed(config.seed, stream::VALUE),
    )?;
    let mut actor_opt = Opt::new(OptimizerKind::Adam, policy.vars(), config.lr)?;
    let mut critic_opt = Opt::new(OptimizerKind::Adam, value.vars(), config.value_lr)?;
    let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, stream::CHOICES));
    let mut log = Vec::with_capacity(config.iterations);
    for iteration in 0..config.iterations {
        // 1. Roll out π_old; keep its log-probabilities (batch.logp) and the critic's
        //    values.
        let table = policy_table(policy.as_ref())?;
        let batch = sample_batch(
            env,
            table.view(),
            config.episodes_per_iteration,
            derive_seed(config.seed, iteration as u64),
        );
        let v_table = value_table(value.as_ref())?;
        let values = state_values(&v_table, batch.states.view(), batch.mask.view());
        let last: Vec<f64> = batch
            .last_states
            .iter()
            .map(|&s| v_table[s as usize])
            .collect();
        // 2. Advantages and value targets by GAE(γ, λ).
        let (adv, targets) = gae(
            batch.rewards.view(),
            values.view(),
            &last,
            batch.mask.view(),
            &batch.terminated,
            config.gamma,
            config.lambda,
        );
        let ev = explained_variance(values.view(), targets.view(), batch.mask.view());
        let all: Vec<usize> = (0..batch.episodes()).collect();
        let whole = tensors(&batch, &all, &adv, &targets, &values, false)?;
        let entropy_before = mean_entropy(policy.as_ref(), &whole)
            .and_then(|t| t.to_scalar::<f64>())
            .doing("train in algo::ppo")?;
        // 3. μ epochs of shuffled minibatch steps on the same batch. approx_kl and
        //    clip_frac are measured on each minibatch just before its step, weighted by
        //    its steps, as in every trainer of the library (see `UpdateStats`).
        let mut epochs_run = 0;
        let (mut kl, mut frac) = (0.0, 0.0);
        let total_steps = batch.steps().max(1) as f64;
        let clip = config.clip.unwrap_or(0.2);
        for _ in 0..config.epochs {
            let mut order = all.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let size = order.len().div_ceil(config.minibatches);
            let (mut epoch_kl, mut epoch_frac) = (0.0, 0.0);
            for rows in order.chunks(size) {
                let t = tensors(
                    &batch,
                    rows,
                    &adv,
                    &targets,
                    &values,
                    config.normalize_advantages,
                )?;
                let step = || -> candle_core::Result<(Tensor, Tensor, Tensor)> {
                    let logp = log_probs(policy.as_ref(), &t.states, &t.actions)?;
                    let pg = match config.clip {
                        Some(eps) => clipped_surrogate(
                            &logp,
                            &t.old_logp,
                            &t.adv,
                            &t.mask,
                            eps,
                            Aggregation::StepMean,
                        )?,
                        None => {
                            let ratio = (&logp - &t.old_logp)?.exp()?;
                            aggregate(&(ratio * &t.adv)?.neg()?, &t.mask, Aggregation::StepMean)?
                        }
                    };
                    let actor_loss =
                        (pg - (mean_entropy(policy.as_ref(), &t)? * config.entropy_coef)?)?;
                    let v = value
                        .forward(&t.states.flatten_all()?)?
                        .reshape(t.states.dims())?;
                    let critic_loss =
                        value_loss(&v, &t.targets, &t.old_values, &t.mask, config.value_clip)?;
                    Ok((actor_loss, critic_loss, logp))
                };
                let (actor_loss, critic_loss, logp) = step().doing("the PPO losses")?;
                check_finite(iteration, "actor loss", scalar(&actor_loss)?)?;
                check_finite(iteration, "critic loss", scalar(&critic_loss)?)?;
                let w = rows.iter().map(|&i| batch.lengths[i]).sum::<usize>() as f64 / total_steps;
                epoch_kl += w * approx_kl(&logp, &t.old_logp, &t.mask).doing("approx_kl")?;
                epoch_frac +=
                    w * clip_frac(&logp, &t.old_logp, &t.mask, clip).doing("clip_frac")?;
                actor_opt.clipped_step(&actor_loss, config.max_grad_norm)?;
                critic_opt.clipped_step(&critic_loss, None)?;
            }
            epochs_run += 1;
            kl += epoch_kl;
            frac += epoch_frac;
            if config.target_kl.is_some_and(|target| epoch_kl > target) {
                break;
            }
        }
        let (kl, frac) = (kl / epochs_run as f64, frac / epochs_run as f64);
        let returns = batch.returns();
        let entry = IterationLog {
            iteration,
            episodes: (iteration + 1) * config.episodes_per_iteration,
            mean_return: returns.iter().sum::<f64>() / returns.len() as f64,
            success_rate: batch.success_rate(),
            mean_length: batch.steps() as f64 / batch.episodes() as f64,
            entropy: entropy_before,
            exact_j: mdp.expected_return(table.view(), 1.0)?,
            exact_success: success_probability(&house, env.config(), &table)?,
            approx_kl: kl,
            clip_frac: frac,
            explained_variance: ev,
            epochs: epochs_run,
        };
        check_finite(iteration, "approx_kl", kl)?;
        on_iteration(&entry);
        log.push(entry);
    }
    Ok(TrainedPpo { policy, value, log })
}
// ANCHOR_END: ppo_train
