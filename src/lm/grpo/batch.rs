//! One step's responses, scored, in the common layout of [`Rows`], and how the model reads
//! a part of them.

use candle_core::{DType, Device, Tensor, Var};
use gridworld::ndarray::Array2;

use crate::advantage::{group_advantages, per_step};
use crate::error::{Doing, Result};
use crate::lm::generate::response_logp;
use crate::lm::model::Gpt;
use crate::update::{Inputs, Policy, Rows};

// ANCHOR: scored
/// One step's responses, scored, in the common layout: everything the loss needs.
pub struct ScoredBatch {
    /// The rows: tokens, mask, π_old and π_ref log-probabilities (B·G, R) and each
    /// response's group advantage on each of its tokens.
    pub rows: Rows<Tokens>,
    /// Each response's tokens, without padding (with its end-of-sequence if it
    /// stopped).
    pub responses: Vec<Vec<u32>>,
    /// Each response's total reward, with its components.
    pub rewards: Vec<crate::lm::reward::Reward>,
}
// ANCHOR_END: scored

/// What the model reads of some rows: left-padded prompts followed by their responses.
#[derive(Clone)]
pub struct Tokens {
    /// (N, P + R) `u32`.
    pub tokens: Tensor,
    /// P: the column where every response starts.
    pub prompt_len: usize,
    /// The left padding of each row.
    pub pads: Vec<usize>,
}

impl Inputs for Tokens {
    fn select(&self, rows: &[usize], index: &Tensor, width: usize) -> Result<Tokens> {
        Ok(Tokens {
            tokens: self
                .tokens
                .index_select(index, 0)
                .and_then(|x| x.narrow(1, 0, self.prompt_len + width))
                .and_then(|x| x.contiguous())
                .doing("cutting a part of the batch")?,
            prompt_len: self.prompt_len,
            pads: rows.iter().map(|&i| self.pads[i]).collect(),
        })
    }
}

/// The language model is a policy like the cat: a row is a response, a step a token.
impl Policy for Gpt {
    type Inputs = Tokens;
    fn log_probs(&self, x: &Tokens, with_entropy: bool) -> Result<(Tensor, Option<Tensor>)> {
        response_logp(self, &x.tokens, x.prompt_len, &x.pads, with_entropy)
    }
    fn vars(&self) -> Vec<Var> {
        Gpt::vars(self)
    }
}

// ANCHOR: token_advantages
/// The advantage of every response token (B·G, R) from one reward per response, grouped
/// G at a time, and the response mask (B·G, R): the group advantage of the response (÷
/// the group's std if `scale_by_std`) on each of its real tokens, 0 on padding.
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
        .doing("reading the response mask")?;
    let (b, r) = (mask.len(), mask.first().map_or(0, Vec::len));
    let mask = Array2::from_shape_fn((b, r), |(i, t)| mask[i][t]);
    let steps = per_step(&adv, mask.view())?;
    let flat: Vec<f32> = steps.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(flat, (b, r), &device).doing("building the token advantages")
    // ANCHOR_END: ex_9_1
}
// ANCHOR_END: token_advantages

impl ScoredBatch {
    /// The length of each response in tokens.
    pub fn lengths(&self) -> Vec<f64> {
        self.responses.iter().map(|r| r.len() as f64).collect()
    }

    /// The same batch with its tensors on `device`: a batch sampled and scored on the CPU can
    /// update a copy of the policy on a GPU with exactly the same inputs.
    pub fn to_device(&self, device: &Device) -> Result<ScoredBatch> {
        let r = &self.rows;
        let to = |t: &Tensor| t.to_device(device).doing("moving the batch to the device");
        Ok(ScoredBatch {
            rows: Rows {
                inputs: Tokens {
                    tokens: to(&r.inputs.tokens)?,
                    prompt_len: r.inputs.prompt_len,
                    pads: r.inputs.pads.clone(),
                },
                mask: to(&r.mask)?,
                old_logp: to(&r.old_logp)?,
                ref_logp: to(&r.ref_logp)?,
                advantages: to(&r.advantages)?,
            },
            responses: self.responses.clone(),
            rewards: self.rewards.clone(),
        })
    }

    /// The rows `rows` of the batch, without the padding columns that none of them uses.
    pub fn part(&self, rows: &[usize]) -> Result<Rows<Tokens>> {
        let lengths: Vec<usize> = self.responses.iter().map(Vec::len).collect();
        self.rows.part(rows, &lengths)
    }
}
