//! GRPO and Dr. GRPO on the cat's house: PPO without the critic. For each question (a start
//! cell) the cat walks a group of G episodes; each episode's outcome reward, given once at
//! the end, is compared with the rest of its group, and that advantage weights every step of
//! the episode. A β-weighted k3 penalty keeps the policy near a frozen reference.
//!
//! The advantages, the loss and the aggregation are the library's shared functions
//! ([`group_advantages`], [`grpo_loss`]); the language model's trainer calls the same ones.

use candle_core::Device;
use gridworld::ndarray::Array2;
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};
use gridworld::Env;
use serde::Serialize;

use crate::advantage::{frac_reward_zero_std, group_advantages, per_step};
use crate::algo::reinforce::to_tensor;
use crate::algo::{new_model, ModelKind};
use crate::error::{Doing, Error, Result};
use crate::exact::{outcome_lengths, success_probability};
use crate::objective::{approx_kl, Aggregation, LossSettings};
use crate::optim::AdamW;
use crate::policy::{policy_table, Model, Steps};
use crate::rollout::{derive_seed, mean_or_none, sample_groups, stream, Batch};
use crate::update::{grpo_update, Rows, UpdateSettings};
use crate::validate;

// ANCHOR: outcome_reward
/// The one number an episode is scored with, given at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OutcomeReward {
    /// `return`: the episode's undiscounted return (meat, brooms and baths all count).
    Return,
    /// `success`: 1 if the cat reached the meat, 0 otherwise, like a verifier that
    /// checks an answer and nothing else.
    Success,
}
// ANCHOR_END: outcome_reward

impl OutcomeReward {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeReward::Return => "return",
            OutcomeReward::Success => "success",
        }
    }

    /// The outcome reward of every episode of `batch`.
    pub fn of(self, batch: &Batch) -> Vec<f64> {
        match self {
            OutcomeReward::Return => batch.returns(),
            OutcomeReward::Success => batch.success.iter().map(|&s| f64::from(s)).collect(),
        }
    }
}

impl std::str::FromStr for OutcomeReward {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "return" => Ok(OutcomeReward::Return),
            "success" => Ok(OutcomeReward::Success),
            _ => Err(Error::invalid(
                "reward",
                format!("{s:?}; choose return or success"),
            )),
        }
    }
}

// ANCHOR: grpo_config
/// Settings of a GRPO (or Dr. GRPO) run.
#[derive(Clone, Debug)]
pub struct GrpoConfig {
    /// Rollout–optimise cycles.
    pub iterations: usize,
    /// Questions (start cells, drawn uniformly from the house's starts) per iteration.
    pub questions_per_iteration: usize,
    /// G: episodes per question. At least 2, since answers are scored against each
    /// other.
    pub group_size: usize,
    /// μ: gradient steps on each batch (each on the whole batch).
    pub epochs: usize,
    /// ε of the ratio clip.
    pub clip: f64,
    /// β: weight of the k3 KL penalty to the reference policy (0 = no penalty).
    pub beta: f64,
    /// Divide each group's centred rewards by the group's standard deviation (GRPO) or
    /// not (Dr. GRPO).
    pub scale_by_std: bool,
    /// How per-step losses are combined: `ResponseMean` (GRPO) or `Constant` (Dr.
    /// GRPO).
    pub aggregation: Aggregation,
    /// What an episode is scored with.
    pub reward: OutcomeReward,
    /// Adam learning rate of the policy.
    pub lr: f64,
    /// Global gradient-norm limit for each step.
    pub max_grad_norm: Option<f64>,
    pub policy: ModelKind,
    pub seed: u64,
}
// ANCHOR_END: grpo_config

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig::grpo()
    }
}

impl GrpoConfig {
    /// GRPO as published: advantages divided by the group's standard deviation, each
    /// response's loss averaged over its own length.
    pub fn grpo() -> GrpoConfig {
        GrpoConfig {
            iterations: 60,
            questions_per_iteration: 2,
            group_size: 8,
            epochs: 4,
            clip: 0.2,
            beta: 0.0,
            scale_by_std: true,
            aggregation: Aggregation::ResponseMean,
            reward: OutcomeReward::Return,
            lr: 0.03,
            max_grad_norm: Some(1.0),
            policy: ModelKind::Tabular,
            seed: 0,
        }
    }

    /// Dr. GRPO: no division by the standard deviation, and every step divided by the same
    /// constant (here the default step limit, 100) instead of its response's length.
    pub fn dr_grpo() -> GrpoConfig {
        GrpoConfig {
            scale_by_std: false,
            aggregation: Aggregation::Constant { budget: 100 },
            ..GrpoConfig::grpo()
        }
    }

    /// Episodes sampled per iteration.
    pub fn episodes_per_iteration(&self) -> usize {
        self.questions_per_iteration * self.group_size
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate::counts(
            [
                ("iterations", self.iterations),
                ("questions_per_iteration", self.questions_per_iteration),
                ("epochs", self.epochs),
            ],
            1,
        )?;
        validate::rule(
            "group_size",
            self.group_size,
            self.group_size >= 2,
            "is too small: a group needs at least 2 answers to compare them with each other",
        )?;
        validate::positive("clip", self.clip)?;
        validate::positive("lr", self.lr)?;
        validate::positive_if_set("max_grad_norm", self.max_grad_norm)?;
        validate::non_negative("beta", self.beta)
    }
}

/// One group of an iteration: which question, how it was answered, how much it weighed.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStat {
    /// The question (start cell).
    pub question: usize,
    /// Mean outcome reward of the group's answers.
    pub mean_reward: f64,
    /// Mean |Â| over the group's answers: how hard the group pulls on the policy.
    pub weight: f64,
}

/// What one iteration saw and did.
#[derive(Clone, Debug, Serialize)]
pub struct GrpoLog {
    pub iteration: usize,
    /// Episodes sampled so far, this iteration's included.
    pub episodes: usize,
    /// Mean undiscounted return of the batch.
    pub mean_return: f64,
    /// Mean outcome reward of the batch (the return, or the success rate).
    pub mean_reward: f64,
    pub success_rate: f64,
    pub mean_length: f64,
    /// Mean length of the batch's successful and of its failed episodes (`None` if none).
    pub success_length: Option<f64>,
    pub failure_length: Option<f64>,
    /// Mean policy entropy over the batch's steps, before the update (see
    /// [`UpdateStats`](crate::update::UpdateStats)).
    pub entropy: f64,
    /// Exact J(π) of the policy that collected the batch.
    pub exact_j: f64,
    /// Exact probability that that policy reaches the meat within the step limit.
    pub exact_success: f64,
    /// Exact expected length of its successful and of its failed episodes.
    pub exact_success_length: Option<f64>,
    pub exact_failure_length: Option<f64>,
    /// Exact probability that that policy is cut off by the step limit.
    pub exact_truncated: f64,
    /// k3 estimate of KL(π_old ‖ π) during the update, measured before each optimizer step
    /// and averaged (see [`UpdateStats`](crate::update::UpdateStats)).
    pub approx_kl: f64,
    /// Fraction of the batch's steps whose ratio was outside the clip range, measured like
    /// `approx_kl`.
    pub clip_frac: f64,
    /// k3 estimate of KL(π_old ‖ π_ref) per step: how far the policy that collected the
    /// batch is from the reference.
    pub kl_ref: f64,
    /// Fraction of groups whose rewards were all equal (they teach nothing).
    pub frac_reward_zero_std: f64,
    /// Every group of the batch.
    pub groups: Vec<GroupStat>,
}

/// A trained cat and the reference it was held to.
pub struct TrainedGrpo {
    pub policy: Box<dyn Model>,
    /// π_ref(a|s) for every cell.
    pub reference: Array2<f64>,
    pub log: Vec<GrpoLog>,
}

impl TrainedGrpo {
    /// π(a|s) for every cell.
    pub fn table(&self) -> Result<Array2<f64>> {
        policy_table(self.policy.as_ref())
    }
}

/// Trains a fresh policy (the random cat) with GRPO; the reference is a frozen copy of it.
pub fn train(
    env: &mut Env,
    config: &GrpoConfig,
    on_iteration: impl FnMut(&GrpoLog),
) -> Result<TrainedGrpo> {
    config.validate()?;
    let policy = new_model(
        config.policy,
        env.house(),
        4,
        derive_seed(config.seed, stream::POLICY),
    )?;
    train_from(env, config, policy, None, on_iteration)
}

/// log π_ref(a_t|s_t) of every real step of `batch` (0 on padding).
fn reference_logp(reference: &Array2<f64>, batch: &Batch) -> Array2<f64> {
    Array2::from_shape_fn(batch.mask.dim(), |(i, t)| {
        if batch.mask[[i, t]] > 0.0 {
            let (s, a) = (batch.states[[i, t]], batch.actions[[i, t]]);
            reference[[s as usize, a as usize]].ln()
        } else {
            0.0
        }
    })
}

fn group_stats(questions: &[usize], rewards: &[f64], adv: &[f64], g: usize) -> Vec<GroupStat> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    questions
        .iter()
        .zip(rewards.chunks(g).zip(adv.chunks(g)))
        .map(|(&question, (r, a))| GroupStat {
            question,
            mean_reward: mean(r),
            weight: a.iter().map(|x| x.abs()).sum::<f64>() / g as f64,
        })
        .collect()
}

fn mean_of(lengths: &[usize], keep: impl Fn(usize) -> bool) -> Option<f64> {
    mean_or_none(
        (0..lengths.len())
            .filter(|&i| keep(i))
            .map(|i| lengths[i] as f64),
    )
}

// ANCHOR: grpo_train
/// Trains `policy` with GRPO, holding it near `reference` (π_ref(a|s) per cell; `None`
/// = a frozen copy of `policy` as it is now).
pub fn train_from(
    env: &mut Env,
    config: &GrpoConfig,
    policy: Box<dyn Model>,
    reference: Option<Array2<f64>>,
    mut on_iteration: impl FnMut(&GrpoLog),
) -> Result<TrainedGrpo> {
    config.validate()?;
    let house = env.house().clone();
    let mdp = env.mdp();
    let reference = match reference {
        Some(r) => r,
        None => policy_table(policy.as_ref())?,
    };
    if reference.dim() != (mdp.n_states(), 4) || reference.iter().any(|&p| p.is_nan() || p <= 0.0) {
        return Err(Error::invalid(
            "reference",
            format!(
                "must be a ({}, 4) table of positive probabilities",
                mdp.n_states()
            ),
        ));
    }
    let device = Device::Cpu;
    let mut opt = AdamW::over(policy.vars(), config.lr, 0.0)?;
    let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, stream::CHOICES));
    let g = config.group_size;
    let settings = UpdateSettings {
        loss: LossSettings {
            clip: config.clip,
            beta: config.beta,
            aggregation: config.aggregation,
            ..Default::default()
        },
        epochs: config.epochs,
        minibatches: 1,
        micro_batch: 0,
        max_grad_norm: config.max_grad_norm,
        shuffle_seed: 0,
    };
    let mut log = Vec::with_capacity(config.iterations);
    for iteration in 0..config.iterations {
        // 1. Questions, and a group of G answers to each from π_old.
        let table = policy_table(policy.as_ref())?;
        let questions: Vec<usize> = (0..config.questions_per_iteration)
            .map(|_| house.starts()[rng.random_range(0..house.starts().len())])
            .collect();
        let seed = derive_seed(config.seed, iteration as u64);
        let batch = sample_groups(env, table.view(), &questions, g, seed)?;
        // 2. One outcome reward per answer, scored against its group, on every step.
        let rewards = config.reward.of(&batch);
        let adv = group_advantages(&rewards, g, config.scale_by_std)?;
        let groups = group_stats(&questions, &rewards, &adv, g);
        let adv = per_step(&adv, batch.mask.view())?;
        // 3. μ steps on the GRPO loss, all on this batch: the update that trains the
        //    language model in chapter 9.
        let t = |a: &Array2<f64>| to_tensor(a, &device);
        let rows = Rows {
            inputs: Steps {
                cells: to_tensor(&batch.states, &device)?,
                actions: to_tensor(&batch.actions, &device)?,
            },
            mask: t(&batch.mask)?,
            old_logp: t(&batch.logp)?,
            ref_logp: t(&reference_logp(&reference, &batch))?,
            advantages: t(&adv)?,
        };
        let stats = grpo_update(policy.as_ref(), &mut opt, &rows, &settings, iteration)?;
        // 4. Diagnostics.
        let lengths = outcome_lengths(&house, env.config(), &table)?;
        let returns = batch.returns();
        let entry = GrpoLog {
            iteration,
            episodes: (iteration + 1) * config.episodes_per_iteration(),
            mean_return: returns.iter().sum::<f64>() / returns.len() as f64,
            mean_reward: rewards.iter().sum::<f64>() / rewards.len() as f64,
            success_rate: batch.success_rate(),
            mean_length: batch.steps() as f64 / batch.episodes() as f64,
            success_length: mean_of(&batch.lengths, |i| batch.success[i]),
            failure_length: mean_of(&batch.lengths, |i| !batch.success[i]),
            entropy: stats.entropy,
            exact_j: mdp.expected_return(table.view(), 1.0)?,
            exact_success: success_probability(&house, env.config(), &table)?,
            exact_success_length: lengths.success_length,
            exact_failure_length: lengths.failure_length,
            exact_truncated: lengths.truncated,
            approx_kl: stats.approx_kl,
            clip_frac: stats.clip_frac,
            kl_ref: approx_kl(&rows.ref_logp, &rows.old_logp, &rows.mask)
                .doing("measuring the KL to the reference")?,
            frac_reward_zero_std: frac_reward_zero_std(&rewards, g)?,
            groups,
        };
        on_iteration(&entry);
        log.push(entry);
    }
    Ok(TrainedGrpo {
        policy,
        reference,
        log,
    })
}
// ANCHOR_END: grpo_train
