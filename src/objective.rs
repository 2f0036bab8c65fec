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
    let per_step = (advantages.detach() * logp)?.neg()?;
    aggregate(&per_step, mask, how)
}
// ANCHOR_END: reinforce_loss
