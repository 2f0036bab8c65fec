//! Per-step losses and how they are aggregated into one number to differentiate. The cat
//! and the language model use the same functions: a row of log-probabilities with a mask.

use std::fmt;
use std::str::FromStr;

use candle_core::{Result, Tensor};

use crate::error::Error;

// ANCHOR: aggregation
/// How a (B, T) grid of per-step losses becomes one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// `episode-sum`: sum over each episode's steps, then mean over episodes,
    /// L = (1/B) Σ_i Σ_t ℓ_{i,t}. The sample mean of the policy-gradient theorem: unbiased,
    /// and long episodes weigh more.
    EpisodeSum,
    /// `step-mean`: mean over all real steps of the batch, L = Σ_{i,t} ℓ_{i,t} / Σ_{i,t} m_{i,t}.
    /// Every step weighs the same; the gradient is the unbiased one divided by the number of
    /// steps in the batch, a scale that changes from batch to batch.
    StepMean,
}
// ANCHOR_END: aggregation

impl Aggregation {
    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::EpisodeSum => "episode-sum",
            Aggregation::StepMean => "step-mean",
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        match s {
            "episode-sum" => Ok(Aggregation::EpisodeSum),
            "step-mean" => Ok(Aggregation::StepMean),
            _ => Err(Error::invalid(
                "aggregation",
                format!("{s:?}; choose episode-sum or step-mean"),
            )),
        }
    }
}

// ANCHOR: aggregate
/// Aggregates per-step values `x` (B, T) over the real steps given by `mask` (B, T).
pub fn aggregate(x: &Tensor, mask: &Tensor, how: Aggregation) -> Result<Tensor> {
    let masked = (x * mask)?;
    match how {
        Aggregation::EpisodeSum => masked.sum_all()? / x.dim(0)? as f64,
        Aggregation::StepMean => masked
            .sum_all()?
            .broadcast_div(&mask.sum_all()?.maximum(1.0)?),
    }
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
    // ANCHOR: ex_5_1 (3 points) PPO's clipped surrogate −min(ρÂ, clip(ρ, 1−ε, 1+ε)Â) per step, ρ = exp(logp − old_logp), aggregated.
    let ratio = (logp - old_logp.detach())?.exp()?;
    let adv = advantages.detach();
    let unclipped = (&ratio * &adv)?;
    let clipped = (ratio.clamp(1.0 - clip, 1.0 + clip)? * &adv)?;
    aggregate(&unclipped.minimum(&clipped)?.neg()?, mask, how)
    // ANCHOR_END: ex_5_1
}
// ANCHOR_END: clipped_surrogate

// ANCHOR: value_loss
/// The critic's loss ½ (V(s_t) − R_t)² over the real steps, or, with `clip = Some(ε)`, PPO's
/// pessimistic clipped version ½ max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²).
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

// ANCHOR: diagnostics
/// The k3 estimate of KL(π_old ‖ π) from samples of π_old: the mean over real steps of
/// (ρ − 1) − log ρ with log ρ = logp − old_logp. Always ≥ 0, and 0 only when π = π_old.
pub fn approx_kl(logp: &Tensor, old_logp: &Tensor, mask: &Tensor) -> Result<f64> {
    // ANCHOR: ex_5_2 (1 point) The k3 estimate of KL(π_old ‖ π): the mean over real steps of (ρ − 1) − log ρ.
    let log_ratio = (logp - old_logp)?;
    let k3 = ((log_ratio.exp()? - 1.0)? - &log_ratio)?;
    aggregate(&k3, mask, Aggregation::StepMean)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar()
    // ANCHOR_END: ex_5_2
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
