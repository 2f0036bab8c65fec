//! The GRPO update, one function for the cat and the language model. A batch of rows (an
//! episode or a response each) with its mask, the log-probabilities of the policy that sampled
//! it, those of the frozen reference and the advantages goes in; μ epochs of minibatch steps on
//! the GRPO loss come out, with the same diagnostics for both.
//!
//! ```text
//! Rows { inputs, mask, old_logp, ref_logp, advantages }
//!     ──► μ epochs × minibatches × parts: Policy::log_probs ──► grpo_loss × share ──► Σ ∇
//!     ──► clip the global norm ──► AdamW step
//! ```
//!
//! The cat reads a row as the cells it stood in and the moves it made; the language model reads
//! it as a prompt and its response tokens. That difference is all that [`Policy`] and
//! [`Inputs`] hide.

use candle_core::{DType, Tensor, Var};
use gridworld::rand::rngs::StdRng;
use gridworld::rand::seq::SliceRandom;
use gridworld::rand::SeedableRng;

use crate::error::{Doing, Error, Result};
use crate::objective::{approx_kl, clip_frac, grpo_loss, LossInputs, LossSettings};
use crate::optim::{AdamW, Gradients};

/// What a policy reads to score some rows: the cat's cells and moves, the model's tokens.
pub trait Inputs: Sized {
    /// Rows `rows` (also given as the u32 tensor `index`), cut to their first `width` steps.
    fn select(&self, rows: &[usize], index: &Tensor, width: usize) -> Result<Self>;
}

// ANCHOR: policy_trait
/// A policy that the GRPO update can train: it scores a batch of rows and has
/// parameters.
pub trait Policy {
    type Inputs: Inputs;
    /// log π(a_t|s_t) of every step of every row (N, T), and the entropy of π at each
    /// step (N, T) if `with_entropy`. Gradients flow back into the parameters.
    fn log_probs(
        &self,
        inputs: &Self::Inputs,
        with_entropy: bool,
    ) -> Result<(Tensor, Option<Tensor>)>;
    /// The trainable parameters, in a fixed order.
    fn vars(&self) -> Vec<Var>;
}
// ANCHOR_END: policy_trait

// ANCHOR: rows
/// A batch of rows in the common layout: everything the loss needs. Row i is one
/// episode or one response; column t its step t; every tensor but `inputs` is (N, T)
/// and 0 on padding.
#[derive(Clone)]
pub struct Rows<I> {
    /// What the policy reads.
    pub inputs: I,
    /// 1 on the real steps of each row, 0 on padding.
    pub mask: Tensor,
    /// log π_old: the log-probabilities of the policy that sampled the rows.
    pub old_logp: Tensor,
    /// log π_ref: those of the frozen reference policy.
    pub ref_logp: Tensor,
    /// The advantage of each step (in GRPO, its row's group advantage on every real
    /// step).
    pub advantages: Tensor,
}
// ANCHOR_END: rows

impl<I: Inputs> Rows<I> {
    /// Number of rows.
    pub fn len(&self) -> Result<usize> {
        self.mask.dim(0).doing("reading the batch's size")
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The real steps of each row.
    pub fn lengths(&self) -> Result<Vec<usize>> {
        let sums = self
            .mask
            .sum(1)
            .and_then(|s| s.to_dtype(DType::F64))
            .and_then(|s| s.to_vec1::<f64>())
            .doing("counting the batch's steps")?;
        Ok(sums.into_iter().map(|s| s.round() as usize).collect())
    }

    /// The rows `rows`, without the padding columns that none of them uses.
    pub fn part(&self, rows: &[usize], lengths: &[usize]) -> Result<Rows<I>> {
        let width = rows.iter().map(|&i| lengths[i]).max().unwrap_or(0).max(1);
        let index = Tensor::from_vec(
            rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            rows.len(),
            self.mask.device(),
        )
        .doing("indexing a part of the batch")?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            t.index_select(&index, 0)
                .and_then(|x| x.narrow(1, 0, width))
                .and_then(|x| x.contiguous())
                .doing("cutting a part of the batch")
        };
        Ok(Rows {
            inputs: self.inputs.select(rows, &index, width)?,
            mask: pick(&self.mask)?,
            old_logp: pick(&self.old_logp)?,
            ref_logp: pick(&self.ref_logp)?,
            advantages: pick(&self.advantages)?,
        })
    }
}

/// The GRPO loss of some rows, with what was measured on the way.
pub struct PartLoss {
    pub loss: Tensor,
    /// log π_θ of every step (N, T).
    pub logp: Tensor,
    /// The entropy of π_θ at every step (N, T), if it was asked for.
    pub entropy: Option<Tensor>,
}

// ANCHOR: part_loss
/// The GRPO loss of some rows under the current `policy`, aggregated over those rows
/// alone, with their per-step log-probabilities (and entropies, if asked).
pub fn part_loss<P: Policy + ?Sized>(
    policy: &P,
    part: &Rows<P::Inputs>,
    settings: &LossSettings,
    with_entropy: bool,
) -> Result<PartLoss> {
    // ANCHOR: ex_9_2 (3 points) The GRPO loss of a part: the policy's log π_θ of its steps (Policy::log_probs), then grpo_loss with the part's old and reference log-probs, advantages and mask.
    let (logp, entropy) = policy.log_probs(&part.inputs, with_entropy)?;
    let inputs = LossInputs {
        logp: &logp,
        old_logp: &part.old_logp,
        ref_logp: &part.ref_logp,
        advantages: &part.advantages,
        mask: &part.mask,
    };
    let loss = grpo_loss(&inputs, settings).doing("the GRPO loss")?;
    Ok(PartLoss {
        loss,
        logp,
        entropy,
    })
    // ANCHOR_END: ex_9_2
}
// ANCHOR_END: part_loss

/// How an update goes through a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateSettings {
    pub loss: LossSettings,
    /// μ: passes over the batch.
    pub epochs: usize,
    /// Optimizer steps per pass: the batch is shuffled and cut into this many minibatches.
    pub minibatches: usize,
    /// Rows per forward/backward pass (gradient accumulation); 0 = a whole minibatch at once.
    pub micro_batch: usize,
    /// The global gradient-norm limit of each optimizer step.
    pub max_grad_norm: Option<f64>,
    /// Seeds the shuffling of the rows (used only with several minibatches).
    pub shuffle_seed: u64,
}

impl UpdateSettings {
    /// Rows per minibatch for a batch of `n` rows.
    pub fn minibatch_size(&self, n: usize) -> usize {
        minibatch_size(n, self.minibatches)
    }
}

/// Rows per minibatch when `n` rows are cut into `minibatches` pieces: ⌈n / minibatches⌉, so
/// there may be fewer pieces than asked.
pub fn minibatch_size(n: usize, minibatches: usize) -> usize {
    n.div_ceil(minibatches.max(1)).max(1)
}

// ANCHOR: update_stats
/// What an update measured. Every number is defined here once and means the same for
/// the cat (chapters 5–7) and the language model (chapter 9).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// k3 estimate of KL(π_old ‖ π_θ), measured on each part just before the optimizer
    /// step it contributes to, weighted by the part's steps and averaged over the whole
    /// update: how far the policy had moved from the one that sampled while it was
    /// being updated (0 for the first step).
    pub approx_kl: f64,
    /// Fraction of steps whose ratio π_θ/π_old was outside [1 − ε, 1 + ε], measured and
    /// averaged like `approx_kl`.
    pub clip_frac: f64,
    /// Mean entropy of the policy per real step, in nats, measured in the first pass.
    pub entropy: f64,
    /// Mean loss over the optimizer steps.
    pub loss: f64,
    /// Mean gradient norm before clipping over the optimizer steps.
    pub grad_norm: f64,
    /// Optimizer steps taken.
    pub optimizer_steps: usize,
}
// ANCHOR_END: update_stats

// ANCHOR: grpo_update
/// The GRPO update of `policy` on `batch`: `epochs` passes, each over the rows shuffled
/// (with several minibatches) and cut into minibatches; each minibatch is one optimizer
/// step on the gradient of its loss, accumulated over parts of `micro_batch` rows, each
/// part weighted by its share of the minibatch so that the sum is exactly the
/// minibatch's loss. A loss or a gradient that is not finite stops with
/// [`Error::Diverged`] naming `step`, before the optimizer uses it.
pub fn grpo_update<P: Policy + ?Sized>(
    policy: &P,
    opt: &mut AdamW,
    batch: &Rows<P::Inputs>,
    settings: &UpdateSettings,
    step: usize,
) -> Result<UpdateStats> {
    let n = batch.len()?;
    let lengths = batch.lengths()?;
    let steps = |rows: &[usize]| rows.iter().map(|&i| lengths[i] as f64).sum::<f64>();
    let total_steps = steps(&(0..n).collect::<Vec<_>>()).max(1.0);
    let how = settings.loss.aggregation;
    let mut rng = StdRng::seed_from_u64(settings.shuffle_seed);
    let mut stats = UpdateStats::default();
    let vars = opt.vars().to_vec();
    for epoch in 0..settings.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        if settings.minibatches > 1 {
            order.shuffle(&mut rng);
        }
        for minibatch in order.chunks(settings.minibatch_size(n)) {
            let minibatch_steps = steps(minibatch);
            let micro = match settings.micro_batch {
                0 => minibatch.len(),
                m => m,
            };
            let mut grads = Gradients::new(vars.len());
            let mut loss_value = 0.0;
            for rows in minibatch.chunks(micro) {
                let part = batch.part(rows, &lengths)?;
                let part_steps = steps(rows);
                let out = part_loss(policy, &part, &settings.loss, epoch == 0)?;
                let share = how.share(rows.len(), minibatch.len(), part_steps, minibatch_steps);
                let loss = (out.loss * share).doing("weighting a part's loss")?;
                let value = scalar(&loss)?;
                check_finite(step, "loss", value)?;
                loss_value += value;
                grads.add(&loss, &vars)?;
                // Diagnostics of this part, weighted by its steps.
                let w = part_steps / total_steps / settings.epochs as f64;
                let (logp, old, mask) = (&out.logp, &part.old_logp, &part.mask);
                stats.approx_kl += w * approx_kl(logp, old, mask).doing("measuring approx_kl")?;
                stats.clip_frac += w * clip_frac(logp, old, mask, settings.loss.clip)
                    .doing("measuring clip_frac")?;
                if let Some(e) = out.entropy {
                    let sum = (e * mask)
                        .and_then(|x| x.sum_all())
                        .doing("measuring the entropy")?;
                    stats.entropy += scalar(&sum)? / total_steps;
                }
            }
            let norm = grads.clip(settings.max_grad_norm)?;
            check_finite(step, "gradient norm", norm)?;
            opt.step_grads(&grads.grads)?;
            stats.loss += loss_value;
            stats.grad_norm += norm;
            stats.optimizer_steps += 1;
        }
    }
    let updates = stats.optimizer_steps.max(1) as f64;
    stats.loss /= updates;
    stats.grad_norm /= updates;
    Ok(stats)
}
// ANCHOR_END: grpo_update

/// A one-element tensor as an f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)
        .and_then(|x| x.to_scalar::<f64>())
        .doing("reading a scalar")
}

/// The NaN guard: an error naming the step and the metric if `value` is not finite.
pub fn check_finite(step: usize, metric: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::Diverged {
            step,
            why: format!(
                "the {metric} became {value}; stopped before updating the policy with it \
                 (lower the learning rate, or check the reference model)"
            ),
        })
    }
}
