//! Per-step losses and how they are aggregated into one number to differentiate. The cat
//! and the language model use the same functions: a row of log-probabilities with a mask.

use std::fmt;
use std::str::FromStr;

use candle_core::{Result, Tensor};

use crate::error::Error;

// ANCHOR: aggregation
/// How a (B, T) grid of per-step losses ℓ_{i,t} becomes one number. Row i is an episode
/// (a response), m_{i,t} its mask and |o_i| = Σ_t m_{i,t} its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// `episode-sum`: sum over each episode's steps, then mean over episodes,
    /// L = (1/B) Σ_i Σ_t ℓ_{i,t}. The sample mean of the policy-gradient theorem:
    /// unbiased, and long episodes weigh more.
    EpisodeSum,
    /// `step-mean` (also called `token-mean`, as in DAPO and BNPO): mean over all real
    /// steps of the batch, L = Σ_{i,t} ℓ_{i,t} / Σ_{i,t} m_{i,t}. Every step weighs the
    /// same; the gradient is the unbiased one divided by the number of steps in the
    /// batch, a scale that changes from batch to batch.
    StepMean,
    /// `response-mean`: mean over each response's own steps, then mean over responses,
    /// L = (1/B) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}. GRPO as published: every response weighs
    /// the same whatever its length, so a step of a long response weighs less than a
    /// step of a short one.
    ResponseMean,
    /// `constant:L` (Dr. GRPO): sum over all real steps divided by the number of
    /// responses times a constant length budget L (e.g. the step limit or the
    /// generation budget), L = Σ_{i,t} ℓ_{i,t} / (B · L). The unbiased `episode-sum`
    /// scaled by the fixed 1/L: every step of every response weighs the same, in every
    /// batch.
    Constant { budget: usize },
}
// ANCHOR_END: aggregation

impl Aggregation {
    /// The name used on the command line and in configs (`constant` takes its budget as
    /// `constant:L`).
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::EpisodeSum => "episode-sum",
            Aggregation::StepMean => "step-mean",
            Aggregation::ResponseMean => "response-mean",
            Aggregation::Constant { .. } => "constant",
        }
    }
}

impl Aggregation {
    // ANCHOR: share
    /// The weight of a part of a batch when the batch is processed in parts (gradient
    /// accumulation): a part with `rows` of the batch's `total_rows` responses and
    /// `steps` of its `total_steps` real steps. Summing `share · aggregate(part)` over
    /// the parts gives `aggregate(batch)` exactly, so the gradient does not depend on
    /// how the batch was cut.
    pub fn share(self, rows: usize, total_rows: usize, steps: f64, total_steps: f64) -> f64 {
        match self {
            // A mean over steps: each part's mean counts by its number of steps.
            Aggregation::StepMean => steps / total_steps.max(1.0),
            // A mean over responses of per-response numbers: each part by its
            // responses.
            _ => rows as f64 / total_rows.max(1) as f64,
        }
    }
    // ANCHOR_END: share
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Constant { budget } => write!(f, "constant:{budget}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Written by name, as in configs (`constant:L` with its budget).
impl serde::Serialize for Aggregation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from its name, as [`FromStr`] does.
impl<'de> serde::Deserialize<'de> for Aggregation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.to_string()))
    }
}

impl FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        let bad = |why: String| Err(Error::invalid("aggregation", why));
        match s {
            "episode-sum" => Ok(Aggregation::EpisodeSum),
            "step-mean" | "token-mean" => Ok(Aggregation::StepMean),
            "response-mean" => Ok(Aggregation::ResponseMean),
            _ => match s.strip_prefix("constant:").map(str::parse::<usize>) {
                Some(Ok(budget)) if budget > 0 => Ok(Aggregation::Constant { budget }),
                Some(_) => bad(format!(
                    "{s:?}; the budget of constant:L must be a whole number ≥ 1"
                )),
                None => bad(format!(
                    "{s:?}; choose episode-sum, step-mean (token-mean), response-mean or \
                     constant:L with a length budget L"
                )),
            },
        }
    }
}

// ANCHOR: aggregate
/// Aggregates per-step values `x` (B, T) over the real steps given by `mask` (B, T).
pub fn aggregate(x: &Tensor, mask: &Tensor, how: Aggregation) -> Result<Tensor> {
    let masked = (x * mask)?;
    let responses = x.dim(0)?.max(1) as f64;
    match how {
        Aggregation::EpisodeSum => masked.sum_all()? / responses,
        Aggregation::StepMean => masked
            .sum_all()?
            .broadcast_div(&mask.sum_all()?.maximum(1.0)?),
        Aggregation::ResponseMean => response_mean(&masked, mask),
        Aggregation::Constant { budget } => constant_normaliser(&masked, budget),
    }
}

/// GRPO's aggregation of masked per-step values (B, T): each response's mean over its
/// own real steps, then the mean over responses.
fn response_mean(masked: &Tensor, mask: &Tensor) -> Result<Tensor> {
    // ANCHOR: ex_7_1 (2 points) GRPO's aggregation: (1/B) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}, with |o_i| the real steps of row i (at least 1).
    let responses = masked.dim(0)?.max(1) as f64;
    let lengths = mask.sum(1)?.maximum(1.0)?;
    masked.sum(1)?.div(&lengths)?.sum_all()? / responses
    // ANCHOR_END: ex_7_1
}

/// Dr. GRPO's aggregation of masked per-step values (B, T): the sum over all real steps
/// divided by B times a constant length budget.
fn constant_normaliser(masked: &Tensor, budget: usize) -> Result<Tensor> {
    // ANCHOR: ex_7_2 (1 point) Dr. GRPO's aggregation: Σ_{i,t} ℓ_{i,t} / (B · L) for the constant length budget L.
    let responses = masked.dim(0)?.max(1) as f64;
    masked.sum_all()? / (responses * budget as f64)
    // ANCHOR_END: ex_7_2
}
// ANCHOR_END: aggregate

// ANCHOR: reinforce_loss
/// The REINFORCE loss L = −aggregate(Â_t · log π(a_t|s_t)). Its gradient is the
/// policy-gradient estimate with the sign flipped, so that *minimising* L climbs J.
/// `advantages` are constants (no gradient flows into them).
pub fn reinforce_loss(
    logp: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    how: Aggregation,
) -> Result<Tensor> {
    // ANCHOR: ex_2_3 (2 points) The REINFORCE loss −aggregate(Â_t · log π(a_t|s_t)), with no gradient into the advantages.
    let per_step = (advantages.detach() * logp)?.neg()?;
    aggregate(&per_step, mask, how)
    // ANCHOR_END: ex_2_3
}
// ANCHOR_END: reinforce_loss

// ANCHOR: clipped_surrogate
/// PPO's clipped surrogate loss per step, −min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) with
/// ρ = exp(logp − old_logp), aggregated over the real steps. Where the clip binds, the
/// minimum picks the clipped (constant) branch and the step contributes no gradient.
pub fn clipped_surrogate(
    logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip: f64,
    how: Aggregation,
) -> Result<Tensor> {
    let per_step = clipped_surrogate_per_step(logp, old_logp, advantages, clip)?;
    aggregate(&per_step, mask, how)
}

/// The clipped surrogate of every step, −min(ρ Â, clip(ρ, 1 ± ε) Â), before
/// aggregation.
pub fn clipped_surrogate_per_step(
    logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    clip: f64,
) -> Result<Tensor> {
    // ANCHOR: ex_5_1 (3 points) PPO's clipped surrogate per step, −min(ρÂ, clip(ρ, 1−ε, 1+ε)Â) with ρ = exp(logp − old_logp).
    let ratio = (logp - old_logp.detach())?.exp()?;
    let adv = advantages.detach();
    let unclipped = (&ratio * &adv)?;
    let clipped = (ratio.clamp(1.0 - clip, 1.0 + clip)? * &adv)?;
    unclipped.minimum(&clipped)?.neg()
    // ANCHOR_END: ex_5_1
}
// ANCHOR_END: clipped_surrogate

// ANCHOR: k3
/// The k3 estimator of a KL divergence, elementwise: k3 = (e^x − 1) − x for the
/// log-ratio x = log q(a) − log p(a) of samples a ~ p. Its mean estimates KL(p ‖ q)
/// without bias (E_p[e^x] = 1), and every sample is ≥ 0, with 0 exactly where q(a) =
/// p(a).
pub fn k3(log_ratio: &Tensor) -> Result<Tensor> {
    // ANCHOR: ex_5_2 (1 point) The k3 estimator (eˣ − 1) − x of a KL divergence, elementwise, for log-ratios x.
    (log_ratio.exp()? - 1.0)? - log_ratio
    // ANCHOR_END: ex_5_2
}

/// The per-step k3 estimate of KL(π_θ ‖ π_ref) on steps sampled from π_θ:
/// π_ref/π_θ − log(π_ref/π_θ) − 1, with x = ref_logp − logp. Differentiable in `logp`.
pub fn kl_to_ref(logp: &Tensor, ref_logp: &Tensor) -> Result<Tensor> {
    // ANCHOR: ex_6_2 (2 points) The per-step k3 estimate of KL(π_θ ‖ π_ref), π_ref/π − log(π_ref/π) − 1, differentiable in logp only.
    k3(&(ref_logp.detach() - logp)?)
    // ANCHOR_END: ex_6_2
}
// ANCHOR_END: k3

// ANCHOR: loss_inputs
/// The per-step tensors of the GRPO loss, all (B, T) and 0 on padding.
#[derive(Clone, Copy)]
pub struct LossInputs<'a> {
    /// log π_θ(a_t|s_t) under the policy being trained (gradients flow into it).
    pub logp: &'a Tensor,
    /// log π_old(a_t|s_t) under the policy that sampled the steps.
    pub old_logp: &'a Tensor,
    /// log π_ref(a_t|s_t) under the frozen reference.
    pub ref_logp: &'a Tensor,
    /// Â_t, the advantage of each step.
    pub advantages: &'a Tensor,
    /// 1 on real steps, 0 on padding.
    pub mask: &'a Tensor,
}

/// The settings of the GRPO loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSettings {
    /// ε of the ratio clip (ε_low, the lower side, when `clip_high` is set).
    pub clip: f64,
    /// ε_high: the upper side of the clip, if it differs from the lower (DAPO's clip-higher).
    pub clip_high: Option<f64>,
    /// Whose ratio is clipped: each token's (GRPO) or each response's (GSPO).
    pub ratio: Ratio,
    /// β: weight of the k3 penalty towards the reference (0 = none).
    pub beta: f64,
    /// How per-step losses become one number.
    pub aggregation: Aggregation,
}
// ANCHOR_END: loss_inputs

impl Default for LossSettings {
    /// ε = 0.2 on both sides, token ratios, no KL penalty, GRPO's per-response mean.
    fn default() -> Self {
        LossSettings {
            clip: 0.2,
            clip_high: None,
            ratio: Ratio::Token,
            beta: 0.0,
            aggregation: Aggregation::ResponseMean,
        }
    }
}

/// Which probability ratio the clipped surrogate uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ratio {
    /// Each token's, ρ_{i,t} = π_θ(o_{i,t} | …) / π_old(o_{i,t} | …) (PPO, GRPO).
    #[default]
    Token,
    /// Each response's (GSPO): s_i = exp((1/|o_i|) Σ_t log ρ_{i,t}), the geometric mean of its
    /// token ratios, on every token of the response.
    Sequence,
}

// ANCHOR: variants_loss
/// Each response's log-ratio for GSPO, (1/|o_i|) Σ_t mask_{i,t} (logp −
/// old_logp)_{i,t}, put on every step of the row: a (B, T) tensor whose rows are
/// constant.
pub fn sequence_log_ratio(logp: &Tensor, old_logp: &Tensor, mask: &Tensor) -> Result<Tensor> {
    // ANCHOR: ex_9_3 (2 points) GSPO's sequence log-ratio: each row's mean over its real steps of logp − old_logp (no gradient into old_logp), on every step of the row.
    let per_step = ((logp - old_logp.detach())? * mask)?;
    let lengths = mask.sum_keepdim(1)?.maximum(1.0)?;
    per_step
        .sum_keepdim(1)?
        .div(&lengths)?
        .broadcast_as(logp.shape())?
        .contiguous()
    // ANCHOR_END: ex_9_3
}

/// The clipped surrogate per step from log-ratios, with separate bounds (DAPO's
/// clip-higher): −min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â), ρ = exp(log_ratio).
pub fn clipped_surrogate_bounds(
    log_ratio: &Tensor,
    advantages: &Tensor,
    clip_low: f64,
    clip_high: f64,
) -> Result<Tensor> {
    let ratio = log_ratio.exp()?;
    let adv = advantages.detach();
    let kept = (&ratio * &adv)?;
    let bounded = (ratio.clamp(1.0 - clip_low, 1.0 + clip_high)? * &adv)?;
    kept.minimum(&bounded)?.neg()
}
// ANCHOR_END: variants_loss

// ANCHOR: grpo_loss
/// The GRPO loss: per step, the clipped surrogate plus β times the k3 estimate of the
/// KL to the frozen reference policy,
///
/// ℓ_{i,t} = −min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1 − ε, 1 + ε) Â_i) + β · k3_{i,t},
///
/// with ρ = exp(logp − old_logp), every step of response i carrying that response's
/// advantage Â_i (see [`crate::advantage::per_step`]), and k3 from [`kl_to_ref`]; then
/// aggregated over the real steps as `settings.aggregation` says (GRPO:
/// `response-mean`; Dr. GRPO: `constant:L`). The tensors come by name in
/// [`LossInputs`], so that `old_logp` and `ref_logp` cannot be swapped without it
/// showing. Two variants change the surrogate: `clip_high` clips the ratio to
/// [1 − ε, 1 + ε_high] (DAPO), and `Ratio::Sequence` clips each response's ratio
/// [`sequence_log_ratio`] instead of each token's (GSPO).
pub fn grpo_loss(x: &LossInputs, settings: &LossSettings) -> Result<Tensor> {
    let (low, high) = (settings.clip, settings.clip_high.unwrap_or(settings.clip));
    let surrogate = match (settings.ratio, settings.clip_high) {
        (Ratio::Token, None) => {
            clipped_surrogate_per_step(x.logp, x.old_logp, x.advantages, settings.clip)?
        }
        (Ratio::Token, Some(_)) => {
            let log_ratio = (x.logp - x.old_logp.detach())?;
            clipped_surrogate_bounds(&log_ratio, x.advantages, low, high)?
        }
        (Ratio::Sequence, _) => {
            let log_ratio = sequence_log_ratio(x.logp, x.old_logp, x.mask)?;
            clipped_surrogate_bounds(&log_ratio, x.advantages, low, high)?
        }
    };
    let per_step = if settings.beta == 0.0 {
        surrogate
    } else {
        (surrogate + (kl_to_ref(x.logp, x.ref_logp)? * settings.beta)?)?
    };
    aggregate(&per_step, x.mask, settings.aggregation)
}
// ANCHOR_END: grpo_loss

// ANCHOR: value_loss
/// The critic's loss ½ (V(s_t) − R_t)² over the real steps, or, with `clip = Some(ε)`,
/// PPO's pessimistic clipped version ½ max((V − R)², (V_old + clip(V − V_old, ±ε) −
/// R)²).
pub fn value_loss(
    values: &Tensor,
    targets: &Tensor,
    old_values: &Tensor,
    mask: &Tensor,
    clip: Option<f64>,
) -> Result<Tensor> {
    let plain = (values - targets)?.sqr()?;
    let per_step = match clip {
        None => plain,
        Some(eps) => {
            let moved = (values - old_values)?.clamp(-eps, eps)?;
            let clipped = ((old_values + moved)? - targets)?.sqr()?;
            plain.maximum(&clipped)?
        }
    };
    aggregate(&(per_step * 0.5)?, mask, Aggregation::StepMean)
}
// ANCHOR_END: value_loss

// ANCHOR: entropy
/// The entropy H = −Σ_a π(a) log π(a) of each categorical distribution given by its
/// log-probabilities along the last dimension: a (…, A) tensor gives a (…) tensor, in nats.
/// The cat's four moves and the language model's vocabulary both go through it.
pub fn entropy(logp: &Tensor) -> Result<Tensor> {
    (logp.exp()? * logp)?.sum(candle_core::D::Minus1)?.neg()
}
// ANCHOR_END: entropy

// ANCHOR: diagnostics
/// The k3 estimate of KL(π_old ‖ π) from samples of π_old: the mean over real steps of
/// (ρ − 1) − log ρ with log ρ = logp − old_logp. Always ≥ 0, and 0 only when π = π_old.
pub fn approx_kl(logp: &Tensor, old_logp: &Tensor, mask: &Tensor) -> Result<f64> {
    aggregate(&k3(&(logp - old_logp)?)?, mask, Aggregation::StepMean)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar()
}

/// Fraction of real steps where the ratio ρ lies outside [1 − ε, 1 + ε].
pub fn clip_frac(logp: &Tensor, old_logp: &Tensor, mask: &Tensor, clip: f64) -> Result<f64> {
    let ratio = (logp - old_logp)?.exp()?;
    let outside = (ratio - 1.0)?.abs()?.gt(clip)?.to_dtype(mask.dtype())?;
    aggregate(&outside, mask, Aggregation::StepMean)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar()
}
// ANCHOR_END: diagnostics
