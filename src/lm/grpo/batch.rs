//! One step's responses, scored, in the common layout, and the GRPO loss of a part of them.

use candle_core::{DType, Device, Tensor};
use gridworld::ndarray::Array2;

use crate::advantage::{group_advantages, per_step};
use crate::error::Result;
use crate::lm::generate::{response_logp, Rollout};
use crate::lm::model::Gpt;
use crate::objective::{grpo_loss, Aggregation};
use crate::policy::candle_err;

// ANCHOR: scored
/// One step's responses, scored, in the common layout: everything the loss needs.
pub struct ScoredBatch {
    /// The sampled responses (tokens, π_old log-probs, mask).
    pub rollout: Rollout,
    /// (B·G, R) `f32`: log π_ref of each response token under the frozen reference.
    pub ref_logp: Tensor,
    /// (B·G, R) `f32`: each response's group advantage on each of its tokens, 0 on padding.
    pub advantages: Tensor,
    /// Each response's total reward, with its components.
    pub rewards: Vec<crate::lm::reward::Reward>,
}
// ANCHOR_END: scored

// ANCHOR: token_advantages
/// The advantage of every response token (B·G, R) from one reward per response, grouped G
/// at a time, and the response mask (B·G, R): the group advantage of the response
/// (÷ the group's std if `scale_by_std`) on each of its real tokens, 0 on padding.
pub fn token_advantages(
    rewards: &[f64],
    group_size: usize,
    scale_by_std: bool,
    mask: &Tensor,
) -> Result<Tensor> {
    // ANCHOR: ex_9_1 (2 points) Token-level advantages: group_advantages of the rewards, then each response's advantage on its real tokens (per_step).
    let adv = group_advantages(rewards, group_size, scale_by_std)?;
    let device = mask.device().clone();
    let mask = mask
        .to_dtype(DType::F64)
        .and_then(|m| m.to_vec2::<f64>())
        .map_err(candle_err)?;
    let (b, r) = (mask.len(), mask.first().map_or(0, Vec::len));
    let mask = Array2::from_shape_fn((b, r), |(i, t)| mask[i][t]);
    let steps = per_step(&adv, mask.view())?;
    let flat: Vec<f32> = steps.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(flat, (b, r), &device).map_err(candle_err)
    // ANCHOR_END: ex_9_1
}
// ANCHOR_END: token_advantages

/// A slice of a scored batch: some of its rows, trimmed to their longest response.
pub struct Part {
    pub tokens: Tensor,
    pub prompt_len: usize,
    pub pads: Vec<usize>,
    pub old_logp: Tensor,
    pub ref_logp: Tensor,
    pub advantages: Tensor,
    pub mask: Tensor,
}

impl ScoredBatch {
    /// The length of each response in tokens.
    pub fn lengths(&self) -> Vec<f64> {
        self.rollout
            .responses
            .iter()
            .map(|r| r.len() as f64)
            .collect()
    }

    /// The same batch with its tensors on `device`: a batch sampled and scored on the CPU can
    /// update a copy of the policy on a GPU with exactly the same inputs.
    pub fn to_device(&self, device: &Device) -> Result<ScoredBatch> {
        let ro = &self.rollout;
        let to = |t: &Tensor| t.to_device(device).map_err(candle_err);
        Ok(ScoredBatch {
            rollout: Rollout {
                tokens: to(&ro.tokens)?,
                prompt_len: ro.prompt_len,
                pads: ro.pads.clone(),
                logp: to(&ro.logp)?,
                mask: to(&ro.mask)?,
                responses: ro.responses.clone(),
            },
            ref_logp: to(&self.ref_logp)?,
            advantages: to(&self.advantages)?,
            rewards: self.rewards.clone(),
        })
    }

    /// The rows `rows` of the batch, as tensors on the policy's device, without the padding
    /// columns that none of them uses.
    pub fn part(&self, rows: &[usize]) -> Result<Part> {
        let ro = &self.rollout;
        let device = ro.tokens.device();
        let r = rows
            .iter()
            .map(|&i| ro.responses[i].len())
            .max()
            .unwrap_or(0)
            .max(1);
        let p = ro.prompt_len;
        let idx = Tensor::from_vec(
            rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            rows.len(),
            device,
        )
        .map_err(candle_err)?;
        let pick = |t: &Tensor, cols: usize| -> Result<Tensor> {
            t.index_select(&idx, 0)
                .and_then(|x| x.narrow(1, 0, cols))
                .and_then(|x| x.contiguous())
                .map_err(candle_err)
        };
        Ok(Part {
            tokens: pick(&ro.tokens, p + r)?,
            prompt_len: p,
            pads: rows.iter().map(|&i| ro.pads[i]).collect(),
            old_logp: pick(&ro.logp, r)?,
            ref_logp: pick(&self.ref_logp, r)?,
            advantages: pick(&self.advantages, r)?,
            mask: pick(&ro.mask, r)?,
        })
    }
}

// ANCHOR: part_loss
/// The GRPO loss of a part of a scored batch under the current `policy`, aggregated over the
/// part alone, with the part's per-token log-probabilities (and entropies, if asked).
pub fn part_loss(
    policy: &Gpt,
    part: &Part,
    clip: f64,
    beta: f64,
    how: Aggregation,
    with_entropy: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    // ANCHOR: ex_9_2 (3 points) The GRPO loss of a part: log π_θ of its response tokens (response_logp), then grpo_loss with the part's old and reference log-probs, advantages and mask.
    let (logp, entropy) = response_logp(
        policy,
        &part.tokens,
        part.prompt_len,
        &part.pads,
        with_entropy,
    )?;
    let loss = grpo_loss(
        &logp,
        &part.old_logp,
        &part.ref_logp,
        &part.advantages,
        &part.mask,
        clip,
        beta,
        how,
    )
    .map_err(candle_err)?;
    Ok((loss, logp, entropy))
    // ANCHOR_END: ex_9_2
}
// ANCHOR_END: part_loss
