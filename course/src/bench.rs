//! Speed benchmarks: throughput of the language model's rollout and update, the time of a
//! whole GRPO step, and how fast the cat's house is solved. Numbers are measured and
//! reported (`zero-to-r1 bench`), never asserted in tests; the book's benchmarks page records
//! them with the command and the machine. `benches/torch_lm.py` and `benches/torch_cat.py`
//! measure the same quantities, defined the same way, for PyTorch.

use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use zero_to_r1::error::{Doing, Error, Result};
use zero_to_r1::lm::config::LmConfig;
use zero_to_r1::lm::generate::{generate, SampleConfig};
use zero_to_r1::lm::grpo::GrpoTrainer;
use zero_to_r1::lm::model::Gpt;
use zero_to_r1::lm::tokenizer::Tokenizer;

/// The median of some numbers (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Floating-point operations per token of a forward pass of a GPT of this shape that attends
/// to `attended` earlier positions on average: 2 per weight of every matrix the token passes
/// through (the embeddings are look-ups, not products), plus the attention scores and the
/// weighted sum, 2 · 2 · layers · attended · d_model. Training (forward and backward) costs
/// three times as much.
pub fn forward_flops_per_token(config: &zero_to_r1::lm::model::GptConfig, attended: f64) -> f64 {
    let d = config.d_model as f64;
    let embeddings = (config.vocab + config.context) as f64 * d;
    let matmul_weights = config.parameters() as f64 - embeddings;
    2.0 * matmul_weights + 4.0 * config.layers as f64 * attended * d
}

/// The language model's numbers, defined as in `benches/torch_lm.py`.
#[derive(Clone, Debug, Serialize)]
pub struct LmBench {
    pub implementation: String,
    pub device: String,
    pub dtype: String,
    pub parameters: usize,
    /// B · G rows of every measurement.
    pub batch: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    /// B·G·steps / seconds of KV-cache sampling at temperature 1 (rows that have ended still
    /// take part in every step of the batch, so this counts the work done).
    pub rollout_tokens_per_s: f64,
    /// B·G·(P + R) / seconds of one forward + backward + AdamW step of the GRPO loss on the
    /// whole batch.
    pub train_tokens_per_s: f64,
    /// Seconds of one whole GRPO step (rollout, reference, rewards, update).
    pub grpo_step_s: f64,
    pub train_flops_per_token: f64,
    pub train_tflops_achieved: f64,
    /// Achieved over peak floating-point throughput, if the peak was given.
    pub mfu: Option<f64>,
    pub repeats: usize,
}

/// Measures the language model of `config` on `device` (weights from `seed`; a fresh model,
/// so responses run to `max_new_tokens`): each number is the median of `repeats` runs after
/// one warm-up. `progress` is called after every measured run.
pub fn lm(
    config: &LmConfig,
    device: &Device,
    repeats: usize,
    seed: u64,
    peak_tflops: Option<f64>,
    mut progress: impl FnMut(&str),
) -> Result<LmBench> {
    config.validate()?;
    if repeats == 0 {
        return Err(Error::invalid("--repeats", "must be at least 1"));
    }
    let g = &config.grpo;
    let policy = Gpt::new(&config.model, seed, device)?;
    let reference = policy.copy()?;
    let mut one_step = config.clone();
    one_step.grpo.minibatches = 1;
    one_step.grpo.warmup = 0;
    let mut trainer = GrpoTrainer::new(policy, reference, &one_step, seed)?;
    let tok = Tokenizer;
    let mut prompts = Vec::with_capacity(g.responses());
    for p in trainer.problems(0) {
        let ids = tok.encode(&p.prompt)?;
        prompts.extend(std::iter::repeat_n(ids, g.group_size));
    }
    let sampling = SampleConfig {
        temperature: 1.0,
        top_k: 0,
        max_new_tokens: g.max_new_tokens,
    };
    // Rollout.
    let mut rollout_rates = Vec::new();
    let mut shape = (0, 0);
    for r in 0..=repeats {
        let start = Instant::now();
        let out = generate(&trainer.policy, &prompts, &sampling, seed + r as u64)?;
        let secs = start.elapsed().as_secs_f64();
        shape = (out.prompt_len, out.response_len());
        if r > 0 {
            rollout_rates.push((prompts.len() * out.response_len()) as f64 / secs);
            progress("rollout");
        }
    }
    // The update alone, on one scored batch, one optimizer step on all rows.
    let batch = trainer.rollout(0)?;
    let rows = batch.responses.len();
    let width = batch
        .rows
        .inputs
        .tokens
        .dim(1)
        .doing("reading the batch width")?;
    let mut train_rates = Vec::new();
    for r in 0..=repeats {
        let start = Instant::now();
        trainer.update(&batch)?;
        let secs = start.elapsed().as_secs_f64();
        if r > 0 {
            train_rates.push((rows * width) as f64 / secs);
            progress("update");
        }
    }
    // Whole steps with the config's own minibatches.
    let mut trainer = GrpoTrainer::new(
        trainer.policy.copy()?,
        trainer.reference.copy()?,
        config,
        seed,
    )?;
    let mut step_secs = Vec::new();
    for r in 0..=repeats {
        let start = Instant::now();
        trainer.step()?;
        if r > 0 {
            step_secs.push(start.elapsed().as_secs_f64());
            progress("step");
        }
    }
    let train_tokens_per_s = median(&train_rates);
    let attended = (shape.0 + shape.1) as f64 / 2.0;
    let flops = 3.0 * forward_flops_per_token(&config.model, attended);
    let achieved = flops * train_tokens_per_s / 1e12;
    Ok(LmBench {
        implementation: "candle".into(),
        device: if device.is_cuda() { "cuda" } else { "cpu" }.into(),
        dtype: "f32".into(),
        parameters: trainer.policy.parameters(),
        batch: prompts.len(),
        prompt_len: shape.0,
        new_tokens: shape.1,
        rollout_tokens_per_s: median(&rollout_rates),
        train_tokens_per_s,
        grpo_step_s: median(&step_secs),
        train_flops_per_token: flops,
        train_tflops_achieved: achieved,
        mfu: peak_tflops.map(|p| achieved / p),
        repeats,
    })
}

/// The cat's numbers, defined as in `benches/torch_cat.py`.
#[derive(Clone, Debug, Serialize)]
pub struct CatBench {
    pub implementation: String,
    /// Environment steps per second of the random cat (policy sampling included).
    pub env_steps_per_s: f64,
    /// Seconds and iterations until the exact success probability (from the start
    /// distribution, within the step limit) first reaches 0.95; `None` if never.
    pub ppo_time_to_solve_s: Option<f64>,
    pub ppo_iterations_to_solve: Option<usize>,
    pub grpo_time_to_solve_s: Option<f64>,
    pub grpo_iterations_to_solve: Option<usize>,
    pub seed: u64,
}

/// Measures the cat on the seeds' house: `env_steps` steps of the random cat, then PPO and
/// GRPO with their default settings (at most `max_iterations` each).
pub fn cat(env_steps: usize, max_iterations: usize, seed: u64) -> Result<CatBench> {
    use zero_to_r1::algo::{grpo, ppo};
    use zero_to_r1::rollout::{derive_seed, sample_episode};
    let mut env = gridworld::Env::seed();
    let random = env.mdp().uniform_policy();
    let start = Instant::now();
    let (mut steps, mut i) = (0, 0u64);
    while steps < env_steps {
        steps += sample_episode(&mut env, random.view(), derive_seed(seed, i)).len();
        i += 1;
    }
    let env_steps_per_s = steps as f64 / start.elapsed().as_secs_f64();
    // Seconds and iterations until the first iteration whose policy succeeds with
    // probability ≥ 0.95.
    fn solved(
        run: impl FnOnce(&mut dyn FnMut(usize, f64)) -> Result<()>,
    ) -> Result<Option<(f64, usize)>> {
        let mut hit = None;
        let start = Instant::now();
        run(&mut |iteration, p| {
            if hit.is_none() && p >= 0.95 {
                hit = Some((start.elapsed().as_secs_f64(), iteration + 1));
            }
        })?;
        Ok(hit)
    }
    let ppo_config = ppo::PpoConfig {
        iterations: max_iterations,
        seed,
        ..ppo::PpoConfig::default()
    };
    let grpo_config = grpo::GrpoConfig {
        iterations: max_iterations,
        seed,
        ..grpo::GrpoConfig::grpo()
    };
    let house = gridworld::Env::seed;
    let ppo_hit = solved(|f| {
        let log = |l: &ppo::IterationLog| f(l.iteration, l.exact_success);
        ppo::train(&mut house(), &ppo_config, log).map(|_| ())
    })?;
    let grpo_hit = solved(|f| {
        let log = |l: &grpo::GrpoLog| f(l.iteration, l.exact_success);
        grpo::train(&mut house(), &grpo_config, log).map(|_| ())
    })?;
    Ok(CatBench {
        implementation: "rust".into(),
        env_steps_per_s,
        ppo_time_to_solve_s: ppo_hit.map(|h| h.0),
        ppo_iterations_to_solve: ppo_hit.map(|h| h.1),
        grpo_time_to_solve_s: grpo_hit.map(|h| h.0),
        grpo_iterations_to_solve: grpo_hit.map(|h| h.1),
        seed,
    })
}
