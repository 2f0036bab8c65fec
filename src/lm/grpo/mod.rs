//! GRPO and Dr. GRPO on the language model (chapter 9): the cat's algorithm with a GPT as the
//! policy and a prompt as the question.
//!
//! ```text
//! B prompts ──► G responses each (KV-cache sampling) ──► rule rewards ──► group_advantages
//!     ──► μ epochs × minibatches of grpo_loss (clip + β·k3 to the frozen SFT model) ──► AdamW
//! ```
//!
//! The advantages, the loss and its aggregation are the library's shared functions
//! ([`group_advantages`](crate::advantage::group_advantages),
//! [`per_step`](crate::advantage::per_step), [`grpo_loss`](crate::objective::grpo_loss),
//! [`Aggregation`](crate::objective::Aggregation)), the same ones that
//! trained the cat in chapters 6 and 7. Everything random in step s is drawn from seeds
//! derived from (seed, s), so the state of a run is its parameters, its optimizer's moments
//! and the step number: a run stopped and resumed from a checkpoint continues exactly.

use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::advantage::frac_reward_zero_std;
use crate::error::{Doing, Error, Result};
use crate::lm::config::LmConfig;
use crate::lm::eval::{greedy_summary, respond, GreedySummary};
use crate::lm::generate::{generate, pack, response_logp, Rollout, SampleConfig};
use crate::lm::model::Gpt;
use crate::lm::reward::{overlong_penalty, score, Reward};
use crate::lm::task::{sample_problem, Problem, Split, Task};
use crate::lm::tokenizer::{Tokenizer, EOS};
use crate::objective::approx_kl;
use crate::optim::AdamW;
use crate::rollout::{derive_seed, mean_or_none};
use crate::update::{grpo_update, Rows, UpdateSettings, UpdateStats};

mod batch;
mod folder;
pub use crate::lm::config::GrpoLmConfig;
pub use crate::update::part_loss;
pub use batch::{token_advantages, ScoredBatch, Tokens};
pub use folder::{read_metrics, train, CONFIG, LATEST, METRICS, OPTIMIZER, REFERENCE, STATE};

/// What one step saw and did: one JSON line of `metrics.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrpoStep {
    pub step: usize,
    /// Mean total reward of the step's responses, and its two components.
    pub reward: f64,
    pub reward_format: f64,
    pub reward_accuracy: f64,
    /// Fraction of responses with a correct answer (= `reward_accuracy`).
    pub accuracy: f64,
    /// Fraction of responses in exactly the right format.
    pub format_rate: f64,
    /// Fraction of groups whose rewards were all equal: they teach nothing.
    pub frac_reward_zero_std: f64,
    /// k3 estimate of KL(π_old ‖ π) at the moment of each optimizer step, averaged: how far
    /// the policy had moved from the one that sampled (0 for the first minibatch).
    pub approx_kl: f64,
    /// Fraction of tokens whose ratio was outside [1 − ε, 1 + ε] during the update.
    pub clip_frac: f64,
    /// k3 estimate of KL(π_old ‖ π_ref) per token: how far the sampling policy is from the
    /// reference.
    pub kl_ref: f64,
    /// Mean entropy of the policy per response token, in nats.
    pub entropy: f64,
    pub loss: f64,
    /// Gradient norm before clipping, mean over the step's optimizer steps.
    pub grad_norm: f64,
    pub lr: f64,
    /// Mean length in tokens of all responses, of the correct and of the incorrect ones.
    pub mean_len: f64,
    pub len_correct: Option<f64>,
    pub len_incorrect: Option<f64>,
    /// Fraction of responses cut off by `max_new_tokens` before end-of-sequence.
    pub truncated: f64,
    /// Fraction of responses that check their result, and the accuracy of the responses
    /// with and without a check.
    #[serde(default)]
    pub check_rate: f64,
    #[serde(default)]
    pub accuracy_checked: Option<f64>,
    #[serde(default)]
    pub accuracy_unchecked: Option<f64>,
    pub sample_tokens_per_second: f64,
    pub train_tokens_per_second: f64,
    /// Seconds since the run started (resumed runs continue the count).
    pub seconds: f64,
    /// Held-out greedy evaluation, on the steps where it ran (after the step's update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heldout: Option<GreedySummary>,
}

/// The state saved with a checkpoint besides the weights and the optimizer's moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done; the next step is this one.
    pub step: usize,
    pub seed: u64,
    pub seconds: f64,
    /// Optimizer steps taken: t of AdamW's bias correction. A GRPO step takes
    /// μ × (minibatches) of them, so this is not `step`. Missing in checkpoints written before
    /// it was recorded; it is then recomputed from the config.
    #[serde(default)]
    pub optimizer_steps: Option<usize>,
}

/// The prompt stream of GRPO, separate from SFT's.
const PROMPTS: u64 = 0x6772_706F;
/// Mixed into the seeds of dynamic sampling's extra rounds (their prompts and samples).
const REFILL: u64 = 0xDA90;
/// The most extra rounds of B prompts dynamic sampling draws in one step.
pub const REFILL_ROUNDS: usize = 4;
/// Mixed into the seed for the order of the rows in an update's minibatches.
const SHUFFLE: u64 = 0x5A5A;

/// A GRPO run in memory: the policy, the frozen reference, the optimizer and the step.
pub struct GrpoTrainer {
    pub policy: Gpt,
    pub reference: Gpt,
    pub config: LmConfig,
    pub seed: u64,
    /// Steps done.
    pub step: usize,
    /// Seconds spent before this process (for resumed runs).
    pub seconds: f64,
    opt: AdamW,
    task: Box<dyn Task>,
}

impl GrpoTrainer {
    /// A run starting at step 0 from `policy`, held to `reference` (usually both the SFT
    /// model: two copies, one trained, one frozen).
    pub fn new(policy: Gpt, reference: Gpt, config: &LmConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        config.check_memory(policy.device())?;
        if policy.config() != reference.config() {
            return Err(Error::invalid(
                "reference",
                "the reference model must have the policy's shape",
            ));
        }
        let opt = AdamW::new(
            policy.named_vars(),
            config.grpo.lr,
            config.grpo.weight_decay,
        )?;
        Ok(GrpoTrainer {
            task: config.task()?,
            policy,
            reference,
            config: config.clone(),
            seed,
            step: 0,
            seconds: 0.0,
            opt,
        })
    }

    /// The B problems of step `step` (training split only), fixed by the seed.
    pub fn problems(&self, step: usize) -> Vec<Problem> {
        let b = self.config.grpo.prompts;
        (0..b)
            .map(|i| {
                sample_problem(
                    self.task.as_ref(),
                    derive_seed(self.seed, PROMPTS),
                    (step * b + i) as u64,
                    self.config.task.difficulty,
                    Split::Train,
                )
            })
            .collect()
    }

    // ANCHOR: rollout
    /// Samples G responses to each of the step's B prompts from the current policy and
    /// scores them: rewards, group advantages on every token, reference
    /// log-probabilities. With `dynamic_sampling` (DAPO), groups whose rewards are all
    /// equal are dropped and more prompts are sampled until B groups teach something
    /// ([`GrpoTrainer::refill`]).
    pub fn rollout(&self, step: usize) -> Result<ScoredBatch> {
        let g = &self.config.grpo;
        let problems = self.problems(step);
        let (rollout, rewards) = self.sample(&problems, derive_seed(self.seed, step as u64))?;
        let (rollout, rewards) = if g.dynamic_sampling {
            self.refill(step, rollout, rewards)?
        } else {
            (rollout, rewards)
        };
        let totals: Vec<f64> = rewards.iter().map(|r| r.total).collect();
        let advantages = token_advantages(&totals, g.group_size, g.scale_by_std, &rollout.mask)?;
        let mask = if g.overlong_filter {
            let keep: Vec<f32> = rollout
                .responses
                .iter()
                .map(|r| f32::from(u8::from(r.last() == Some(&EOS))))
                .collect();
            Tensor::from_vec(keep, (rollout.responses.len(), 1), rollout.mask.device())
                .and_then(|k| k.to_dtype(rollout.mask.dtype()))
                .and_then(|k| rollout.mask.broadcast_mul(&k))
                .doing("leaving the cut-off responses out of the loss")?
        } else {
            rollout.mask.clone()
        };
        let ref_logp = self.reference_logp(&rollout)?;
        Ok(ScoredBatch {
            rows: Rows {
                inputs: Tokens {
                    tokens: rollout.tokens,
                    prompt_len: rollout.prompt_len,
                    pads: rollout.pads,
                },
                mask,
                old_logp: rollout.logp,
                ref_logp,
                advantages,
            },
            responses: rollout.responses,
            rewards,
        })
    }
    // ANCHOR_END: rollout

    /// G responses to each of `problems` from the current policy, sampled from `seed`, and
    /// their rewards (with the soft overlong penalty, if set).
    fn sample(&self, problems: &[Problem], seed: u64) -> Result<(Rollout, Vec<Reward>)> {
        let g = &self.config.grpo;
        let tok = Tokenizer;
        let mut prompts = Vec::with_capacity(problems.len() * g.group_size);
        for p in problems {
            let ids = tok.encode(&self.task.pose(p))?;
            prompts.extend(std::iter::repeat_n(ids, g.group_size));
        }
        let sampling = SampleConfig {
            temperature: g.temperature,
            top_k: 0,
            max_new_tokens: g.max_new_tokens,
        };
        let rollout = generate(&self.policy, &prompts, &sampling, seed)?;
        let rewards = rollout
            .responses
            .iter()
            .enumerate()
            .map(|(i, resp)| {
                let text = tok.decode_response(resp);
                let mut r = score(
                    self.task.as_ref(),
                    &problems[i / g.group_size],
                    &text,
                    &self.config.reward,
                );
                r.overlong = overlong_penalty(resp.len(), g.max_new_tokens, g.overlong_buffer);
                r.total += r.overlong;
                r
            })
            .collect();
        Ok((rollout, rewards))
    }

    // ANCHOR: refill
    /// DAPO's dynamic sampling: keeps the groups of `first` (the step's own prompts)
    /// whose rewards differ, and samples groups for more training prompts, up to
    /// [`REFILL_ROUNDS`] more rounds of B, until B such groups are found. The kept
    /// responses are packed into one batch, and their `old_logp` computed by a forward
    /// pass of the policy that sampled them (the same numbers as the sampler's, up to
    /// rounding). If no round finds any, the step's own batch is returned (its gradient
    /// is zero).
    fn refill(
        &self,
        step: usize,
        first: Rollout,
        rewards: Vec<Reward>,
    ) -> Result<(Rollout, Vec<Reward>)> {
        let g = &self.config.grpo;
        let (b, size) = (g.prompts, g.group_size);
        let mut prompts: Vec<Vec<u32>> = Vec::new();
        let mut responses: Vec<Vec<u32>> = Vec::new();
        let mut kept: Vec<Reward> = Vec::new();
        let tok = Tokenizer;
        let mut round = 0;
        let mut batch = (first, rewards);
        loop {
            let problems = self.problems_of_round(step, round);
            for (k, group) in batch.1.chunks(size).enumerate() {
                if kept.len() == b * size {
                    break;
                }
                let first = group[0].total;
                if group.iter().all(|r| r.total == first) {
                    continue;
                }
                let ids = tok.encode(&self.task.pose(&problems[k]))?;
                prompts.extend(std::iter::repeat_n(ids, size));
                responses.extend(batch.0.responses[k * size..(k + 1) * size].iter().cloned());
                kept.extend_from_slice(group);
            }
            round += 1;
            if kept.len() == b * size || round > REFILL_ROUNDS {
                break;
            }
            let problems = self.problems_of_round(step, round);
            let seed = derive_seed(derive_seed(self.seed, step as u64), REFILL ^ round as u64);
            batch = self.sample(&problems, seed)?;
        }
        if kept.is_empty() {
            let problems = self.problems(step);
            return self.sample(&problems, derive_seed(self.seed, step as u64));
        }
        let (tokens, prompt_len, pads, mask) = pack(&prompts, &responses, self.policy.device())?;
        let (logp, _) = response_logp(&self.policy, &tokens, prompt_len, &pads, false)?;
        let logp = (logp.detach() * &mask).doing("the sampler's log-probabilities")?;
        Ok((
            Rollout {
                tokens,
                prompt_len,
                pads,
                logp,
                mask,
                responses,
            },
            kept,
        ))
    }
    // ANCHOR_END: refill

    /// The B training problems of `round` of a step: the step's own in round 0, then fresh
    /// ones from a stream of their own.
    fn problems_of_round(&self, step: usize, round: usize) -> Vec<Problem> {
        if round == 0 {
            return self.problems(step);
        }
        let b = self.config.grpo.prompts;
        let stream = derive_seed(derive_seed(self.seed, PROMPTS), REFILL ^ round as u64);
        (0..b)
            .map(|i| {
                sample_problem(
                    self.task.as_ref(),
                    stream,
                    (step * b + i) as u64,
                    self.config.task.difficulty,
                    Split::Train,
                )
            })
            .collect()
    }

    /// log π_ref of every response token, in micro-batches, without a gradient.
    fn reference_logp(&self, rollout: &Rollout) -> Result<Tensor> {
        let n = rollout.responses.len();
        let chunk = match self.config.grpo.micro_batch {
            0 => n,
            m => m,
        };
        let r = rollout.response_len();
        let mut parts = Vec::new();
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let tokens = rollout
                .tokens
                .narrow(0, start, len)
                .doing("cutting the batch for the reference")?;
            let (logp, _) = response_logp(
                &self.reference,
                &tokens,
                rollout.prompt_len,
                &rollout.pads[start..start + len],
                false,
            )?;
            parts.push(
                logp.detach()
                    .narrow(1, 0, r)
                    .doing("the reference's log-probabilities")?,
            );
        }
        Tensor::cat(&parts, 0).doing("the reference's log-probabilities")
    }

    // ANCHOR: step
    /// One GRPO step: a rollout from the current policy, then [`GrpoTrainer::update`].
    pub fn step(&mut self) -> Result<GrpoStep> {
        let started = Instant::now();
        let batch = self.rollout(self.step)?;
        let sample_secs = started.elapsed().as_secs_f64();
        let train_started = Instant::now();
        let stats = self.update(&batch)?;
        let train_secs = train_started.elapsed().as_secs_f64();
        self.metrics(&batch, &stats, sample_secs, train_secs)
    }

    /// The update of one step: the library's [`grpo_update`], the very function that
    /// trains the cat, with this run's settings and learning rate. A loss or gradient
    /// that is not finite stops with an error naming the step; the policy is then not
    /// updated by that minibatch. Counts the step as done.
    pub fn update(&mut self, batch: &ScoredBatch) -> Result<UpdateStats> {
        let g = &self.config.grpo;
        self.opt.lr = g.learning_rate(self.step);
        let settings = UpdateSettings {
            loss: g.loss_settings(),
            epochs: g.epochs,
            minibatches: g.minibatches,
            micro_batch: g.micro_batch,
            max_grad_norm: Some(g.max_grad_norm),
            shuffle_seed: derive_seed(self.seed ^ SHUFFLE, self.step as u64),
        };
        let stats = grpo_update(
            &self.policy,
            &mut self.opt,
            &batch.rows,
            &settings,
            self.step,
        )?;
        self.step += 1;
        Ok(stats)
    }
    // ANCHOR_END: step

    fn metrics(
        &self,
        batch: &ScoredBatch,
        stats: &UpdateStats,
        sample_secs: f64,
        train_secs: f64,
    ) -> Result<GrpoStep> {
        let g = &self.config.grpo;
        let lengths = batch.lengths();
        let n = lengths.len() as f64;
        let mean = |f: &dyn Fn(&crate::lm::reward::Reward) -> f64| {
            batch.rewards.iter().map(f).sum::<f64>() / n
        };
        let mean_len_where = |correct: bool| {
            mean_or_none(
                lengths
                    .iter()
                    .zip(&batch.rewards)
                    .filter(|(_, r)| (r.accuracy > 0.0) == correct)
                    .map(|(&l, _)| l),
            )
        };
        let accuracy_where = |checked: bool| {
            mean_or_none(
                batch
                    .rewards
                    .iter()
                    .filter(|r| (r.checked > 0.0) == checked)
                    .map(|r| r.accuracy),
            )
        };
        let totals: Vec<f64> = batch.rewards.iter().map(|r| r.total).collect();
        let rows = &batch.rows;
        let kl_ref = approx_kl(&rows.ref_logp, &rows.old_logp, &rows.mask)
            .doing("measuring the KL to the reference")?;
        let truncated = batch
            .responses
            .iter()
            .filter(|r| r.last() != Some(&crate::lm::tokenizer::EOS))
            .count() as f64
            / n;
        // Tokens read by the forward and backward passes: prompt and response, no padding.
        let prompts: usize = rows
            .inputs
            .pads
            .iter()
            .map(|&p| rows.inputs.prompt_len - p)
            .sum();
        let train_tokens = g.epochs as f64 * (prompts as f64 + lengths.iter().sum::<f64>());
        Ok(GrpoStep {
            step: self.step - 1,
            reward: mean(&|r| r.total),
            reward_format: mean(&|r| r.format),
            reward_accuracy: mean(&|r| r.accuracy),
            accuracy: mean(&|r| r.accuracy),
            format_rate: mean(&|r| r.format),
            frac_reward_zero_std: frac_reward_zero_std(&totals, g.group_size)?,
            approx_kl: stats.approx_kl,
            clip_frac: stats.clip_frac,
            kl_ref,
            entropy: stats.entropy,
            loss: stats.loss,
            grad_norm: stats.grad_norm,
            lr: self.opt.lr,
            mean_len: lengths.iter().sum::<f64>() / n,
            len_correct: mean_len_where(true),
            len_incorrect: mean_len_where(false),
            truncated,
            check_rate: mean(&|r| r.checked),
            accuracy_checked: accuracy_where(true),
            accuracy_unchecked: accuracy_where(false),
            sample_tokens_per_second: lengths.iter().sum::<f64>() / sample_secs.max(1e-9),
            train_tokens_per_second: train_tokens / train_secs.max(1e-9),
            seconds: 0.0,
            heldout: None,
        })
    }

    /// Greedy accuracy of the current policy on `problems` held-out problems.
    pub fn evaluate(&self, problems: &[Problem]) -> Result<GreedySummary> {
        let g = &self.config.grpo;
        let (scored, _) = respond(
            &self.policy,
            self.task.as_ref(),
            problems,
            &SampleConfig::greedy(g.max_new_tokens),
            self.config.eval.batch_size,
            self.seed,
        )?;
        Ok(greedy_summary(&scored))
    }
}

/// `value` as pretty JSON; an error naming `path` if it cannot be (a non-finite number).
pub fn to_json(value: &impl Serialize, path: &Path) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(format!("{}", path.display()), format!("cannot write: {e}")))
}
