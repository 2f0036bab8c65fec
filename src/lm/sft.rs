//! Supervised fine-tuning: imitate worked solutions. The loss is the mean negative
//! log-probability of the response tokens (the prompt is given, not learned), minimised with
//! AdamW under a warm-up + cosine learning-rate schedule and gradient clipping.

use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Doing, Error, Result};
use crate::lm::data::{self, DataConfig};
use crate::lm::generate::{pack, response_logp};
use crate::lm::model::Gpt;
use crate::lm::task::Task;
use crate::objective::{aggregate, Aggregation};
use crate::optim::{AdamW, Opt};
use crate::validate;

/// How to fine-tune.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up from 0 to `lr`; then a cosine decay to `lr / 10`.
    pub warmup: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Gradients are rescaled to at most this global norm.
    pub max_grad_norm: f64,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            steps: 600,
            batch_size: 16,
            lr: 5e-3,
            warmup: 30,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
        }
    }
}

impl SftConfig {
    /// Checks the values; errors name the key (`sft.lr`, …).
    pub fn validate(&self) -> Result<()> {
        validate::counts(
            [
                ("sft.steps", self.steps),
                ("sft.batch_size", self.batch_size),
            ],
            1,
        )?;
        validate::positive_at_most("sft.lr", self.lr, 1.0)?;
        let why = format!("is more than sft.steps = {}", self.steps);
        validate::rule("sft.warmup", self.warmup, self.warmup <= self.steps, &why)?;
        validate::within("sft.weight_decay", self.weight_decay, 0.0, 1.0)?;
        validate::positive("sft.max_grad_norm", self.max_grad_norm)
    }
}

// ANCHOR: schedule
/// The learning rate at `step` (0-based) of `steps`: linear warm-up over `warmup` steps
/// to `peak`, then half a cosine down to `peak / 10` at the last step.
pub fn learning_rate(step: usize, steps: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = steps.saturating_sub(warmup + 1).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let floor = peak / 10.0;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}
// ANCHOR_END: schedule

// ANCHOR: sft_loss
/// The fine-tuning loss of a batch: −Σ mask · log π(token) / Σ mask over the response
/// tokens, i.e. the mean cross-entropy of the responses given their prompts: the
/// `step-mean` aggregation of chapter 2, applied to −log π.
pub fn sft_loss(model: &Gpt, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<Tensor> {
    let (tokens, p, pads, mask) = pack(prompts, responses, model.device())?;
    let (logp, _) = response_logp(model, &tokens, p, &pads, false)?;
    aggregate(&logp, &mask, Aggregation::StepMean)
        .and_then(|x| x.neg())
        .doing("the fine-tuning loss")
}
// ANCHOR_END: sft_loss

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SftStep {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// Tokens (prompt and response, padding excluded) read in this step.
    pub tokens: usize,
}

/// What a fine-tuning run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SftReport {
    pub steps: Vec<SftStep>,
    pub seconds: f64,
    /// Training throughput: tokens read per second (forward and backward).
    pub tokens_per_second: f64,
}

impl SftReport {
    /// Mean loss of the first and of the last `n` steps.
    pub fn first_last_loss(&self, n: usize) -> (f64, f64) {
        let n = n.clamp(1, self.steps.len().max(1));
        let mean = |s: &[SftStep]| s.iter().map(|x| x.loss).sum::<f64>() / s.len().max(1) as f64;
        (
            mean(&self.steps[..n.min(self.steps.len())]),
            mean(&self.steps[self.steps.len().saturating_sub(n)..]),
        )
    }
}

// ANCHOR: train
/// Fine-tunes `model` on `config.steps` fresh batches of synthetic examples of `task`
/// (training split only), calling `on_step` after each step. Same seed, same model.
pub fn train(
    model: &Gpt,
    task: &dyn Task,
    difficulty: usize,
    data_config: &DataConfig,
    config: &SftConfig,
    seed: u64,
    mut on_step: impl FnMut(&SftStep),
) -> Result<SftReport> {
    config.validate()?;
    data_config.validate()?;
    let mut opt = Opt::Adam(AdamW::new(
        model.named_vars(),
        config.lr,
        config.weight_decay,
    )?);
    let start = Instant::now();
    let mut report = SftReport::default();
    let mut tokens = 0;
    for step in 0..config.steps {
        let examples = data::batch(task, difficulty, data_config, seed, step, config.batch_size);
        let (prompts, responses) = data::encode(task, &examples)?;
        fits_context(model, &prompts, &responses)?;
        let lr = learning_rate(step, config.steps, config.warmup, config.lr);
        opt.set_lr(lr);
        let loss = sft_loss(model, &prompts, &responses)?;
        let loss_value = loss.to_scalar::<f32>().doing("train in lm::sft")? as f64;
        if !loss_value.is_finite() {
            return Err(Error::Diverged {
                step,
                why: format!("the fine-tuning loss became {loss_value}; lower sft.lr"),
            });
        }
        let grad_norm = opt.clipped_step(&loss, Some(config.max_grad_norm))?;
        let n: usize = prompts.iter().chain(&responses).map(Vec::len).sum();
        tokens += n;
        let s = SftStep {
            step,
            loss: loss_value,
            lr,
            grad_norm,
            tokens: n,
        };
        on_step(&s);
        report.steps.push(s);
    }
    report.seconds = start.elapsed().as_secs_f64();
    report.tokens_per_second = tokens as f64 / report.seconds.max(1e-9);
    Ok(report)
}
// ANCHOR_END: train

/// An error naming `model.context` if some prompt and response are longer than the context.
fn fits_context(model: &Gpt, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<()> {
    let context = model.config().context;
    let longest = prompts
        .iter()
        .zip(responses)
        .map(|(p, r)| p.len() + r.len());
    match longest.max().filter(|&n| n > context) {
        Some(n) => Err(crate::lm::model::context_too_short(context, n)),
        None => Ok(()),
    }
}
