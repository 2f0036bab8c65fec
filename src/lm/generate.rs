//! Sampling responses with a KV cache, and the log-probabilities of given responses.
//!
//! One batch layout serves sampling, training and evaluation. Row b of a batch is
//!
//! ```text
//! [pad … pad | prompt_b | response_b | pad … pad]
//!  ◄──── P = prompt_len ──►◄───── R = response_len ───►
//! ```
//!
//! prompts padded on the left to a common length P (so that every response starts at column
//! P), responses padded on the right. `mask` (B, R) is 1 on the response's real tokens (its
//! end-of-sequence token included: stopping is an action too) and 0 on padding, exactly like
//! the cat's padded [`Batch`](crate::rollout::Batch).

use candle_core::{DType, Device, Tensor, D};
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};

use crate::error::{Doing, Error, Result};
use crate::lm::model::Gpt;
use crate::lm::tokenizer::{EOS, PAD};
use crate::validate;

/// What is added to the attention score of a position a query may not see.
const MASKED: f32 = -1e9;

/// Left padding of each row: how many pad tokens precede the prompt.
fn left_pads(prompts: &[Vec<u32>]) -> (usize, Vec<usize>) {
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
    (p, prompts.iter().map(|x| p - x.len()).collect())
}

// ANCHOR: layout
/// Position ids (B, len) for columns `start..start + len` of rows with the given left
/// padding: the first prompt token of every row is position 0, whatever its padding.
pub fn positions(pads: &[usize], start: usize, len: usize, device: &Device) -> Result<Tensor> {
    let ids: Vec<u32> = pads
        .iter()
        .flat_map(|&pad| (start..start + len).map(move |i| i.saturating_sub(pad) as u32))
        .collect();
    Tensor::from_vec(ids, (pads.len(), len), device).doing("positions in lm::generate")
}

/// The additive attention mask (B, 1, len, start + len) for queries at columns
/// `start..start + len`: query i may see key j if j ≤ i and j is not left padding. (A
/// padding query sees itself, so that no row of the softmax is empty; its output is
/// never used.)
pub fn attention_mask(pads: &[usize], start: usize, len: usize, device: &Device) -> Result<Tensor> {
    let keys = start + len;
    let mut m = Vec::with_capacity(pads.len() * len * keys);
    for &pad in pads {
        for i in start..start + len {
            m.extend((0..keys).map(|j| {
                if (j <= i && j >= pad) || j == i {
                    0.0
                } else {
                    MASKED
                }
            }));
        }
    }
    Tensor::from_vec(m, (pads.len(), 1, len, keys), device).doing("attention_mask in lm::generate")
}
// ANCHOR_END: layout

/// How to sample.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// Divides the logits before sampling; 0 means greedy (always the most likely token).
    pub temperature: f64,
    /// Sample only among the k most likely tokens; 0 means all of them.
    pub top_k: usize,
    /// Longest response, end-of-sequence included.
    pub max_new_tokens: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            temperature: 1.0,
            top_k: 0,
            max_new_tokens: 48,
        }
    }
}

impl SampleConfig {
    /// Greedy decoding with the given length limit.
    pub fn greedy(max_new_tokens: usize) -> SampleConfig {
        SampleConfig {
            temperature: 0.0,
            top_k: 0,
            max_new_tokens,
        }
    }

    /// Checks the values; errors name the key under `section` (e.g. `eval.temperature`).
    pub fn validate(&self, section: &str) -> Result<()> {
        let temperature = format!("{section}.temperature");
        validate::within(&temperature, self.temperature, 0.0, 10.0)?;
        validate::count(
            &format!("{section}.max_new_tokens"),
            self.max_new_tokens,
            1,
            usize::MAX,
        )
    }
}

// ANCHOR: rollout
/// A batch of sampled responses in the common layout.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// (B, P + R) `u32`: left-padded prompts, then responses padded with [`PAD`].
    pub tokens: Tensor,
    /// P: the column where every response starts.
    pub prompt_len: usize,
    /// The left padding of each row.
    pub pads: Vec<usize>,
    /// (B, R) `f32`: log π(token | everything before it) of each sampled token under
    /// the model (temperature 1, no top-k: the policy's own probabilities, `old_logp`
    /// for PPO and GRPO), 0 on padding.
    pub logp: Tensor,
    /// (B, R) `f32`: 1 on response tokens, 0 on padding.
    pub mask: Tensor,
    /// Each response's tokens, without padding (with its end-of-sequence if it
    /// stopped).
    pub responses: Vec<Vec<u32>>,
}
// ANCHOR_END: rollout

impl Rollout {
    /// R: the number of response columns.
    pub fn response_len(&self) -> usize {
        self.responses.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Draws a token from `logits` with `config`'s temperature and top-k, using `u` in [0, 1).
fn pick(logits: &[f32], config: &SampleConfig, u: f64) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if config.temperature == 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    if config.top_k > 0 && config.top_k < logits.len() {
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(config.top_k);
    }
    let max = order
        .iter()
        .map(|&i| logits[i] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / config.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return argmax();
    }
    let mut acc = 0.0;
    for (k, w) in weights.iter().enumerate() {
        acc += w / total;
        if u < acc {
            return order[k] as u32;
        }
    }
    order[weights.len() - 1] as u32
}

// ANCHOR: generate
/// Samples one response per prompt, all rows in lockstep with a KV cache: the prompts
/// are read in one pass, then each step feeds only the B newest tokens. A row stops at
/// end-of-sequence (later columns are padding) or after `max_new_tokens`; finished rows
/// leave the batch as it goes. Same `seed`, same tokens.
pub fn generate(
    model: &Gpt,
    prompts: &[Vec<u32>],
    config: &SampleConfig,
    seed: u64,
) -> Result<Rollout> {
    config.validate("sampling")?;
    let device = model.device().clone();
    let (p, pads) = left_pads(prompts);
    let b = prompts.len();
    if b == 0 || p == 0 {
        return Err(Error::invalid(
            "prompts",
            "need at least one non-empty prompt",
        ));
    }
    let context = model.config().context;
    if p >= context {
        return Err(Error::invalid(
            "prompt",
            format!("{p} tokens leave no room in a context of {context}"),
        ));
    }
    let max_new = config.max_new_tokens.min(context - p);
    let mut rng = StdRng::seed_from_u64(seed);
    let padded: Vec<u32> = prompts
        .iter()
        .zip(&pads)
        .flat_map(|(x, &pad)| std::iter::repeat_n(PAD, pad).chain(x.iter().copied()))
        .collect();
    let mut cache = model.new_cache();
    let mut input =
        Tensor::from_vec(padded.clone(), (b, p), &device).doing("generate in lm::generate")?;
    let (mut start, mut len) = (0, p);
    let mut responses: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut logps: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    // The rows still in the batch (indices into `prompts`) and their left padding.
    // Finished rows leave the batch (and the cache) once a quarter of it has finished,
    // so the last long responses are not sampled alongside a batch of padding.
    let mut rows: Vec<usize> = (0..b).collect();
    let mut row_pads = pads.clone();
    let mut u = vec![0f64; b];
    for _ in 0..max_new {
        let pos = positions(&row_pads, start, len, &device)?;
        let mask = attention_mask(&row_pads, start, len, &device)?;
        let logits = model
            .forward(&input, &pos, &mask, Some(&mut cache))
            .and_then(|l| l.narrow(1, len - 1, 1)?.squeeze(1))
            .doing("the forward pass of a sampling step")?;
        let logprobs = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .and_then(|l| l.to_dtype(DType::F32)?.to_vec2::<f32>())
            .doing("generate in lm::generate")?;
        let raw = logits
            .to_dtype(DType::F32)
            .and_then(|l| l.to_vec2::<f32>())
            .doing("generate in lm::generate")?;
        // One draw per prompt and step, finished or not: a row's tokens do not depend
        // on when the others finish.
        u.iter_mut().for_each(|x| *x = rng.random());
        let mut next = vec![PAD; rows.len()];
        for (j, &i) in rows.iter().enumerate() {
            if done[i] {
                continue;
            }
            let tok = pick(&raw[j], config, u[i]);
            next[j] = tok;
            responses[i].push(tok);
            logps[i].push(logprobs[j][tok as usize]);
            done[i] = tok == EOS;
        }
        let active: Vec<usize> = (0..rows.len()).filter(|&j| !done[rows[j]]).collect();
        if active.is_empty() {
            break;
        }
        if 4 * active.len() <= 3 * rows.len() {
            let keep: Vec<u32> = active.iter().map(|&j| j as u32).collect();
            Tensor::from_vec(keep, active.len(), &device)
                .and_then(|keep| cache.retain_rows(&keep))
                .doing("dropping finished rows while sampling")?;
            next = active.iter().map(|&j| next[j]).collect();
            row_pads = active.iter().map(|&j| row_pads[j]).collect();
            rows = active.iter().map(|&j| rows[j]).collect();
        }
        input =
            Tensor::from_vec(next, (rows.len(), 1), &device).doing("generate in lm::generate")?;
        start += len;
        len = 1;
    }
    let r = responses.iter().map(Vec::len).max().unwrap_or(0);
    let mut tokens = padded
        .chunks(p)
        .zip(&responses)
        .flat_map(|(row, resp)| {
            row.iter()
                .chain(resp.iter())
                .copied()
                .chain(std::iter::repeat_n(PAD, r - resp.len()))
        })
        .collect::<Vec<u32>>();
    tokens.shrink_to_fit();
    let grid = |f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
        (0..b).flat_map(|i| (0..r).map(move |t| f(i, t))).collect()
    };
    let logp = grid(&|i, t| logps[i].get(t).copied().unwrap_or(0.0));
    let mask = grid(&|i, t| f32::from(u8::from(t < responses[i].len())));
    Ok(Rollout {
        tokens: Tensor::from_vec(tokens, (b, p + r), &device).doing("generate in lm::generate")?,
        prompt_len: p,
        pads,
        logp: Tensor::from_vec(logp, (b, r), &device).doing("generate in lm::generate")?,
        mask: Tensor::from_vec(mask, (b, r), &device).doing("generate in lm::generate")?,
        responses,
    })
}
// ANCHOR_END: generate

/// Prompts and responses (token ids) in the common layout: (tokens (B, P + R), P, pads,
/// mask (B, R)). Used for fine-tuning on given responses.
pub fn pack(
    prompts: &[Vec<u32>],
    responses: &[Vec<u32>],
    device: &Device,
) -> Result<(Tensor, usize, Vec<usize>, Tensor)> {
    let (p, pads) = left_pads(prompts);
    let r = responses.iter().map(Vec::len).max().unwrap_or(0);
    let b = prompts.len();
    if b == 0 || b != responses.len() || r == 0 || p == 0 {
        return Err(Error::invalid(
            "batch",
            "need as many non-empty prompts as non-empty responses",
        ));
    }
    let mut tokens = Vec::with_capacity(b * (p + r));
    let mut mask = Vec::with_capacity(b * r);
    for ((x, y), &pad) in prompts.iter().zip(responses).zip(&pads) {
        tokens.extend(std::iter::repeat_n(PAD, pad));
        tokens.extend(x);
        tokens.extend(y);
        tokens.extend(std::iter::repeat_n(PAD, r - y.len()));
        mask.extend((0..r).map(|t| f32::from(u8::from(t < y.len()))));
    }
    Ok((
        Tensor::from_vec(tokens, (b, p + r), device).doing("pack in lm::generate")?,
        p,
        pads,
        Tensor::from_vec(mask, (b, r), device).doing("pack in lm::generate")?,
    ))
}

// ANCHOR: response_logp
/// Per-token log-probabilities (B, R) of the response columns of `tokens` (B, P + R)
/// under `model`, from one full forward pass, and their entropies (B, R) if asked.
/// Differentiable: this is log π_θ(a_t | s_t) for the losses, and with a frozen model
/// π_old or π_ref. Padding columns hold meaningless values; multiply by the mask.
pub fn response_logp(
    model: &Gpt,
    tokens: &Tensor,
    prompt_len: usize,
    pads: &[usize],
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (_, l) = tokens.dims2().doing("response_logp in lm::generate")?;
    if prompt_len == 0 || prompt_len >= l {
        return Err(Error::invalid(
            "batch",
            format!("prompt length {prompt_len} must be in 1..{l}"),
        ));
    }
    let device = model.device();
    let pos = positions(pads, 0, l, device)?;
    let mask = attention_mask(pads, 0, l, device)?;
    // ANCHOR: ex_8_1 (3 points) Per-token log π(a_t|s_t) of the response tokens (and entropies if asked) from one forward pass: the logits at column t predict the token at t + 1.
    let r = l - prompt_len;
    let run = || -> candle_core::Result<(Tensor, Option<Tensor>)> {
        // The logits at column t predict the token at column t + 1.
        let logits = model
            .forward(tokens, &pos, &mask, None)?
            .narrow(1, prompt_len - 1, r)?;
        let logprobs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let targets = tokens
            .narrow(1, prompt_len, r)?
            .contiguous()?
            .unsqueeze(2)?;
        let logp = logprobs.gather(&targets, 2)?.squeeze(2)?;
        let entropy = if with_entropy {
            Some(crate::objective::entropy(&logprobs)?)
        } else {
            None
        };
        Ok((logp, entropy))
    };
    run().doing("response_logp in lm::generate")
    // ANCHOR_END: ex_8_1
}
// ANCHOR_END: response_logp
