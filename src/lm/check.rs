//! Does the language model compute the same numbers on a device as on the CPU? The checks of
//! `zero-to-r1 gpu-check`, for a machine with a GPU and the prebuilt binary but no Rust
//! toolchain to run the test suite.
//!
//! A small model is built on the CPU from a fixed seed and copied to the device; every check
//! then runs the same inputs on both:
//!
//! | check | compared |
//! |---|---|
//! | `forward` | the logits of one full forward pass on a padded batch, device vs CPU |
//! | `kv-cache` | on the device: the log-probs of greedy generation with the KV cache vs those of one full forward pass over the generated tokens |
//! | `greedy` | the greedy tokens, device vs CPU (rows that differ) |
//! | `sft grads`, `sft loss`, `sft params` | one fine-tuning step: the gradient of its loss, the loss, every parameter after it |
//! | `grpo grads`, `grpo loss`, `grpo params` | one GRPO update (two minibatches, two AdamW steps) on the same scored batch: the same three |
//!
//! The tolerances are [`Tolerances::default`]. With `Device::Cpu` both sides run on the CPU
//! and every difference between them is exactly 0, since the CPU path is deterministic
//! (`kv-cache`, two computations on one device, differs by rounding).

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::error::{Doing, Error, Result};
use crate::lm::config::LmConfig;
use crate::lm::data::{self, Sequences};
use crate::lm::generate::{
    attention_mask, generate, pack, positions, response_logp, Rollout, SampleConfig,
};
use crate::lm::grpo::{part_loss, token_advantages, GrpoLmConfig, GrpoTrainer, ScoredBatch};
use crate::lm::model::{Gpt, GptConfig};
use crate::lm::sft::{self, SftConfig};
use crate::lm::tokenizer::Tokenizer;

/// The largest absolute differences a correct device may show against the CPU.
///
/// Both sides compute in f32 and differ only in the order of additions (blocked matrix
/// products, parallel reductions), in the last bit of `exp` and `tanh`, and in the CPU's fused
/// kernels (the GPU runs their composite definitions). Measured on the CPU with the fused
/// kernels against the composite ops ([`fused::set_enabled`](crate::lm::fused::set_enabled)),
/// for this check's inputs and four seeds: logits (magnitude 5) differ by 4e-6 at most,
/// gradients (magnitude 0.6) by 2.4e-7, losses by 6e-8, parameters after a step by 1e-5. A
/// wrong kernel is off by far more: a missing mask or a wrong softmax changes logits by 1e-2
/// or more, TF32 matrix products (a 10-bit mantissa; they must be off) by about 1e-3, a
/// gradient of the wrong sign by twice its size. Each tolerance sits 25 to 1000 times above
/// the measured noise and below those errors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerances {
    /// Logits and per-token log-probabilities.
    pub logits: f64,
    /// Losses (of order 1 here).
    pub loss: f64,
    /// Gradients (of magnitude 0.6 at most here).
    pub grads: f64,
    /// Parameters after training steps of learning rate [`LR`]: half of it. AdamW's first
    /// step moves a parameter by about `lr · g / (|g| + ε)`, ε = 1e-8: by ±lr for every real
    /// gradient, whatever its size. So a lost gradient is off by lr and one of the wrong sign
    /// by 2·lr, while a gradient's size barely matters (the `grads` check sees that). Where a
    /// gradient is 0 in exact arithmetic (the key bias of attention cancels out of the
    /// softmax) it holds rounding noise instead, about 1e-11 from the initial weights, which
    /// the step turns into a move of up to lr·noise/ε ≈ 1e-6.
    pub params: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            logits: 1e-4,
            loss: 1e-4,
            grads: 2e-5,
            params: LR / 2.0,
        }
    }
}

/// The learning rate of the training checks.
pub const LR: f64 = 1e-3;

/// The seed of the check's models and sampling. With it no greedy choice on the CPU's path
/// is a near tie (the smallest gap between the two best logits is 1.2e-2, a hundred times the
/// logits' tolerance; the `greedy` check reports it), so the devices must pick the same
/// tokens; and some rows stop at end-of-sequence before the length limit.
pub const SEED: u64 = 7;

/// The outcome of one comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// Short name, e.g. `forward`.
    pub name: String,
    /// What was compared with what.
    pub compared: String,
    /// The largest absolute difference (for `greedy`: the number of rows that differ). NaN
    /// if either side had a NaN.
    pub max_abs_diff: f64,
    /// `max_abs_diff` divided by the largest magnitude on the reference side, where that
    /// means something.
    pub max_rel_diff: Option<f64>,
    /// The largest `max_abs_diff` that passes.
    pub tolerance: f64,
    pub pass: bool,
}

impl CheckResult {
    /// The comparison of `got` with `want` (the reference), element by element.
    pub fn from_values(
        name: &str,
        compared: &str,
        got: &[f64],
        want: &[f64],
        tolerance: f64,
    ) -> CheckResult {
        // A NaN on either side makes the difference NaN, and NaN stays the maximum.
        let worst = |acc: f64, d: f64| if d.is_nan() || d > acc { d } else { acc };
        let mut max_abs = if got.len() == want.len() {
            0.0
        } else {
            f64::NAN
        };
        for (a, b) in got.iter().zip(want) {
            max_abs = worst(max_abs, (a - b).abs());
        }
        let scale = want.iter().fold(0.0, |acc, b| worst(acc, b.abs()));
        CheckResult {
            name: name.into(),
            compared: compared.into(),
            max_abs_diff: max_abs,
            max_rel_diff: (scale > 0.0).then(|| max_abs / scale),
            tolerance,
            pass: max_abs <= tolerance,
        }
    }
}

/// Compares two tensors of the same shape (on any devices), only where `mask` (broadcast to
/// their shape) is non-zero if given.
pub fn compare(
    name: &str,
    compared: &str,
    got: &Tensor,
    want: &Tensor,
    mask: Option<&Tensor>,
    tolerance: f64,
) -> Result<CheckResult> {
    if got.dims() != want.dims() {
        return Err(Error::invalid(
            name,
            format!("shapes differ: {:?} vs {:?}", got.dims(), want.dims()),
        ));
    }
    let flat = |t: &Tensor| -> Result<Vec<f64>> {
        t.broadcast_as(want.shape())
            .and_then(|t| t.to_device(&Device::Cpu))
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .doing("compare in lm::check")
    };
    let (mut a, mut b) = (flat(got)?, flat(want)?);
    if let Some(m) = mask {
        let keep: Vec<bool> = flat(m)?.iter().map(|&x| x != 0.0).collect();
        let select = |v: Vec<f64>| -> Vec<f64> {
            v.into_iter()
                .zip(&keep)
                .filter(|(_, &k)| k)
                .map(|(x, _)| x)
                .collect()
        };
        (a, b) = (select(a), select(b));
    }
    Ok(CheckResult::from_values(name, compared, &a, &b, tolerance))
}

/// One vector of every parameter of `model`, or of `f` of every parameter.
fn flatten(model: &Gpt, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Result<Tensor> {
    let parts = model
        .vars()
        .iter()
        .map(|v| f(v.as_tensor())?.flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()
        .doing("flatten in lm::check")?;
    Tensor::cat(&parts, 0).doing("flatten in lm::check")
}

/// Every parameter of `model`, in one vector.
fn flat_params(model: &Gpt) -> Result<Tensor> {
    flatten(model, |v| Ok(v.clone()))
}

/// The gradient of `loss` with respect to every parameter of `model`, in one vector (0 where
/// a parameter gets none).
fn gradient(loss: &Tensor, model: &Gpt) -> Result<Tensor> {
    let grads = loss.backward().doing("gradient in lm::check")?;
    flatten(model, |v| match grads.get(v) {
        Some(g) => Ok(g.clone()),
        None => v.zeros_like(),
    })
}

/// The shape of the check's model: 2 blocks of width 64, about 0.1 M parameters. Small
/// enough for the CPU side to take seconds, big enough for every kernel to do real work.
pub fn check_model_config() -> GptConfig {
    GptConfig {
        context: 64,
        d_model: 64,
        layers: 2,
        heads: 4,
        mlp: 256,
        ..GptConfig::default()
    }
}

/// The weights of the forward and generation checks are the initial ones times this: a fresh
/// model's logits are all near 0, so greedy choices would be near ties and attention near
/// uniform, which hides mask errors. (The training checks start from the initial weights,
/// as training does: there AdamW's first step does not amplify rounding noise; see
/// [`Tolerances::params`].)
const WEIGHT_SCALE: f64 = 8.0;

/// The check's model on the CPU, from `seed`, its weights multiplied by `scale`.
fn check_model(seed: u64, scale: f64) -> Result<Gpt> {
    let m = Gpt::new(&check_model_config(), seed, &Device::Cpu)?;
    for (name, v) in m.named_vars() {
        // Layer-norm gains stay 1, so the scale does not compound from block to block.
        if scale != 1.0 && !name.contains("ln") {
            v.set(&(v.as_tensor() * scale).doing("check_model in lm::check")?)
                .doing("check_model in lm::check")?;
        }
    }
    Ok(m)
}

/// Prompts of different lengths (so the batch is padded) and worked responses to them.
fn batch() -> Result<(Sequences, Sequences)> {
    let tok = Tokenizer;
    let encode = |xs: &[&str]| xs.iter().map(|x| tok.encode(x)).collect::<Result<Vec<_>>>();
    Ok((
        encode(&["347+85=", "7-3=", "12+9=", "60+40="])?,
        encode(&[
            "<think>7+5=12c1 4+8+1=13c1 3+1=4</think><answer>432</answer><eos>",
            "<think>7-3=4</think><answer>4</answer><eos>",
            "<answer>21</answer><eos>",
            "<think>0+0=0 6+4=10c1</think><answer>100</answer><eos>",
        ])?,
    ))
}

/// The run settings of the training checks.
fn check_config() -> LmConfig {
    let base = LmConfig::default();
    LmConfig {
        model: check_model_config(),
        sft: SftConfig {
            steps: 1,
            warmup: 0,
            batch_size: 8,
            lr: LR,
            ..base.sft
        },
        grpo: GrpoLmConfig {
            prompts: 2,
            group_size: 4,
            minibatches: 2,
            max_new_tokens: 16,
            lr: LR,
            warmup: 0,
            beta: 0.04,
            ..base.grpo.clone()
        },
        ..base
    }
}

/// Logits of one full forward pass over `tokens` (B, L), rows left-padded by `pads`.
fn full_forward(model: &Gpt, tokens: &Tensor, pads: &[usize]) -> Result<Tensor> {
    let device = model.device();
    let l = tokens.dim(1).doing("full_forward in lm::check")?;
    let pos = positions(pads, 0, l, device)?;
    let mask = attention_mask(pads, 0, l, device)?;
    model
        .forward(tokens, &pos, &mask, None)
        .doing("full_forward in lm::check")
}

/// The smallest gap between the two largest logits where the greedy rollout `r` of `model`
/// picked a token: how close its choices came to a tie.
fn smallest_greedy_gap(model: &Gpt, r: &Rollout) -> Result<f64> {
    let logits = full_forward(model, &r.tokens, &r.pads)?
        .to_vec3::<f32>()
        .doing("smallest_greedy_gap in lm::check")?;
    let mut gap = f64::INFINITY;
    for (row, resp) in logits.iter().zip(&r.responses) {
        for t in 0..resp.len() {
            let mut v: Vec<f32> = row[r.prompt_len - 1 + t].clone();
            v.sort_by(|a, b| b.total_cmp(a));
            gap = gap.min(f64::from(v[0] - v[1]));
        }
    }
    Ok(gap)
}

/// Runs every check on `device` against the CPU, calling `on_result` after each. The checks
/// run with TF32 matrix products off (candle's default, restored afterwards if it was on).
/// An error means a check could not run at all (e.g. the device failed); a difference beyond
/// the tolerance is a result with `pass == false`.
pub fn device_check(
    device: &Device,
    tol: &Tolerances,
    mut on_result: impl FnMut(&CheckResult),
) -> Result<Vec<CheckResult>> {
    let tf32 = candle_core::cuda::gemm_reduced_precision_f32();
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    let mut results = Vec::new();
    let outcome = run_checks(device, tol, &mut |r: CheckResult| {
        on_result(&r);
        results.push(r);
    });
    candle_core::cuda::set_gemm_reduced_precision_f32(tf32);
    outcome.map(|()| results)
}

fn run_checks(device: &Device, tol: &Tolerances, emit: &mut dyn FnMut(CheckResult)) -> Result<()> {
    let cpu = &Device::Cpu;
    let config = check_config();
    let base = check_model(SEED, WEIGHT_SCALE)?;
    let on_device = base.copy_to(device)?;

    // a. One full forward pass.
    let (prompts, responses) = batch()?;
    let logits = |m: &Gpt| -> Result<Tensor> {
        let (tokens, _, pads, _) = pack(&prompts, &responses, m.device())?;
        full_forward(m, &tokens, &pads)
    };
    let (want, got) = (logits(&base)?, logits(&on_device)?);
    emit(compare(
        "forward",
        &format!(
            "logits {:?} of one forward pass over a padded batch, device vs CPU",
            want.dims()
        ),
        &got,
        &want,
        None,
        tol.logits,
    )?);

    // b. Generation with the KV cache equals a full forward pass, on the device itself; and
    // the device's greedy tokens are the CPU's.
    let greedy = SampleConfig::greedy(24);
    let r = generate(&on_device, &prompts, &greedy, SEED)?;
    let (full, _) = response_logp(&on_device, &r.tokens, r.prompt_len, &r.pads, false)?;
    emit(compare(
        "kv-cache",
        &format!(
            "on the device, log-probs of {} greedy tokens: KV-cache generation vs one full forward pass",
            r.responses.iter().map(Vec::len).sum::<usize>()
        ),
        &r.logp,
        &full,
        Some(&r.mask),
        tol.logits,
    )?);
    let r_cpu = generate(&base, &prompts, &greedy, SEED)?;
    let differ = r
        .responses
        .iter()
        .zip(&r_cpu.responses)
        .filter(|(a, b)| a != b)
        .count();
    let gap = smallest_greedy_gap(&base, &r_cpu)?;
    let note = if gap > 10.0 * tol.logits {
        "no near tie"
    } else {
        "a NEAR TIE: a difference here may be legitimate"
    };
    emit(CheckResult::from_values(
        "greedy",
        &format!(
            "greedy tokens, device vs CPU: rows that differ, of {} (smallest gap between the two best logits on the CPU's path {gap:.2e}: {note})",
            prompts.len()
        ),
        &[differ as f64],
        &[0.0],
        0.0,
    ));

    // c. One fine-tuning step on the same synthetic batch (the one `sft::train` draws for its
    // step 0): the gradient of its loss, then the step itself. Training starts from the
    // initial weights, as it does for real.
    let base = check_model(SEED, 1.0)?;
    let on_device = base.copy_to(device)?;
    let (policy, reference) = (base.copy_to(cpu)?, check_model(SEED + 1, 1.0)?);
    let (policy_dev, reference_dev) = (base.copy_to(device)?, reference.copy_to(device)?);
    let task = config.task()?;
    let (d, s) = (config.task.difficulty, &config.sft);
    let examples = data::batch(task.as_ref(), d, &config.data, SEED, 0, s.batch_size);
    let (prompts, responses) = data::encode(task.as_ref(), &examples)?;
    let what = format!(
        "one fine-tuning step (batch of {}, AdamW lr {LR:e})",
        s.batch_size
    );
    emit(compare(
        "sft grads",
        &format!("every parameter's gradient of the loss of {what}, device vs CPU"),
        &gradient(
            &sft::sft_loss(&on_device, &prompts, &responses)?,
            &on_device,
        )?,
        &gradient(&sft::sft_loss(&base, &prompts, &responses)?, &base)?,
        None,
        tol.grads,
    )?);
    let sft_step = |m: &Gpt| -> Result<f64> {
        let report = sft::train(m, task.as_ref(), d, &config.data, s, SEED, |_| {})?;
        Ok(report.steps[0].loss)
    };
    let (want, got) = (sft_step(&base)?, sft_step(&on_device)?);
    emit(CheckResult::from_values(
        "sft loss",
        &format!("the loss of {what}, device vs CPU"),
        &[got],
        &[want],
        tol.loss,
    ));
    emit(compare(
        "sft params",
        &format!("every parameter after {what}, device vs CPU"),
        &flat_params(&on_device)?,
        &flat_params(&base)?,
        None,
        tol.params,
    )?);

    // d. One GRPO update on the same scored batch, sampled and scored on the CPU and copied to
    // the device: the gradient of its loss at the start, then the update.
    let g = &config.grpo;
    let mut t_cpu = GrpoTrainer::new(policy, reference, &config, SEED)?;
    let mut t_dev = GrpoTrainer::new(policy_dev, reference_dev, &config, SEED)?;
    let mut batch = t_cpu.rollout(0)?;
    // The random model's responses all earn 0, so every advantage would be 0 and the
    // policy-gradient term would vanish: fixed made-up rewards instead, which vary within
    // every group.
    let n = batch.responses.len();
    let rewards: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % 5) as f64 / 4.0).collect();
    batch.rows.advantages = token_advantages(&rewards, g.group_size, true, &batch.rows.mask)?;
    let batch_dev = batch.to_device(device)?;
    let what = format!(
        "one GRPO update ({n} responses, {} minibatches, AdamW lr {LR:e}, β {})",
        g.minibatches, g.beta
    );
    let all: Vec<usize> = (0..n).collect();
    let grpo_grad = |t: &GrpoTrainer, b: &ScoredBatch| -> Result<Tensor> {
        let out = part_loss(&t.policy, &b.part(&all)?, &g.loss_settings(), false)?;
        gradient(&out.loss, &t.policy)
    };
    emit(compare(
        "grpo grads",
        &format!("every parameter's gradient of the loss of the whole batch of {what}, at its start, device vs CPU"),
        &grpo_grad(&t_dev, &batch_dev)?,
        &grpo_grad(&t_cpu, &batch)?,
        None,
        tol.grads,
    )?);
    let want = t_cpu.update(&batch)?;
    let got = t_dev.update(&batch_dev)?;
    emit(CheckResult::from_values(
        "grpo loss",
        &format!("the loss (summed over the minibatches) of {what}, device vs CPU"),
        &[got.loss],
        &[want.loss],
        tol.loss,
    ));
    emit(compare(
        "grpo params",
        &format!("every parameter after {what}, device vs CPU"),
        &flat_params(&t_dev.policy)?,
        &flat_params(&t_cpu.policy)?,
        None,
        tol.params,
    )?);
    Ok(())
}
