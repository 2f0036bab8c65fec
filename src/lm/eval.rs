//! Evaluation on held-out prompts (never seen in training): greedy accuracy, pass@k, format
//! rate and the mean response length of correct and of incorrect answers.

use std::collections::HashSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lm::generate::{generate, SampleConfig};
use crate::lm::model::Gpt;
use crate::lm::reward::{extract_answer, score, RewardWeights};
use crate::lm::task::{sample_problem, Problem, Split, Task};
use crate::lm::tokenizer::Tokenizer;
use crate::rollout::{derive_seed, mean_or_none};
use crate::validate;

/// The seed of the held-out set: every run of the book evaluates on the same problems.
pub const HELDOUT_SEED: u64 = 0x0E7A_1000;

/// How to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Number of held-out problems.
    pub problems: usize,
    /// Samples per problem for pass@k.
    pub k: usize,
    /// Temperature of the pass@k samples.
    pub temperature: f64,
    /// Longest response.
    pub max_new_tokens: usize,
    /// Prompts generated at once.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            problems: 200,
            k: 4,
            temperature: 1.0,
            max_new_tokens: 48,
            batch_size: 100,
        }
    }
}

impl EvalConfig {
    /// Checks the values; errors name the key (`eval.k`, …).
    pub fn validate(&self) -> Result<()> {
        validate::counts(
            [
                ("eval.problems", self.problems),
                ("eval.k", self.k),
                ("eval.max_new_tokens", self.max_new_tokens),
                ("eval.batch_size", self.batch_size),
            ],
            1,
        )?;
        SampleConfig {
            temperature: self.temperature,
            top_k: 0,
            max_new_tokens: self.max_new_tokens,
        }
        .validate("eval")
    }
}

/// The most held-out problems an evaluation may ask for.
pub const MAX_PROBLEMS: usize = 100_000;

/// `n` distinct held-out problems of `task` at `difficulty` (fewer if the task has fewer).
pub fn heldout(task: &dyn Task, n: usize, difficulty: usize) -> Vec<Problem> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n.min(MAX_PROBLEMS));
    for i in 0..(20 * n as u64) {
        let p = sample_problem(task, HELDOUT_SEED, i, difficulty, Split::Test);
        if seen.insert(p.prompt.clone()) {
            out.push(p);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// One scored response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    pub prompt: String,
    pub response: String,
    pub truth: String,
    pub format: f64,
    pub accuracy: f64,
    /// Length in tokens (end-of-sequence included).
    pub tokens: usize,
    /// The response as scored: what the template opened, then what the model wrote.
    #[serde(skip)]
    pub full: String,
    /// 1 if the response checks its result.
    #[serde(default)]
    pub checked: f64,
}

/// The numbers of an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    pub problems: usize,
    /// Fraction answered correctly with greedy decoding.
    pub greedy_accuracy: f64,
    /// Fraction of greedy responses in the exact format.
    pub format_rate: f64,
    /// k of pass@k.
    pub k: usize,
    /// Fraction of problems with at least one correct answer among k samples.
    pub pass_at_k: f64,
    /// Fraction of all k·problems samples that are correct (the accuracy at that temperature).
    pub sampled_accuracy: f64,
    /// Fraction of all k·problems samples in the exact format.
    pub sampled_format_rate: f64,
    /// Fraction of problems whose most common answer among the k samples is correct (ties
    /// go to the answer seen first): self-consistency, majority vote at k.
    pub majority_at_k: f64,
    /// Fraction of the greedy and of the sampled responses that check their result.
    pub check_rate: f64,
    pub sampled_check_rate: f64,
    /// Mean length (tokens) of correct greedy responses, if any.
    pub mean_len_correct: Option<f64>,
    /// Mean length (tokens) of incorrect greedy responses, if any.
    pub mean_len_incorrect: Option<f64>,
    /// Generated tokens per second while sampling.
    pub tokens_per_second: f64,
    /// The greedy responses.
    pub greedy: Vec<Scored>,
}

/// Generates and scores responses to `problems`, `config.batch_size` prompts at a time.
pub fn respond(
    model: &Gpt,
    task: &dyn Task,
    problems: &[Problem],
    sampling: &SampleConfig,
    batch_size: usize,
    seed: u64,
) -> Result<(Vec<Scored>, usize)> {
    let tok = Tokenizer;
    let mut out = Vec::with_capacity(problems.len());
    let mut generated = 0;
    for (c, chunk) in problems.chunks(batch_size.max(1)).enumerate() {
        let prompts = chunk
            .iter()
            .map(|p| tok.encode(&task.pose(p)))
            .collect::<Result<Vec<_>>>()?;
        let rollout = generate(model, &prompts, sampling, derive_seed(seed, c as u64))?;
        for (p, resp) in chunk.iter().zip(&rollout.responses) {
            let text = tok.decode_response(resp);
            let r = score(task, p, &text, &RewardWeights::default());
            generated += resp.len();
            out.push(Scored {
                full: task.completed(&text),
                prompt: p.prompt.clone(),
                response: text,
                truth: p.truth.clone(),
                format: r.format,
                accuracy: r.accuracy,
                tokens: resp.len(),
                checked: r.checked,
            });
        }
    }
    Ok((out, generated))
}

/// The headline numbers of greedy responses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GreedySummary {
    /// Fraction of problems answered correctly.
    pub accuracy: f64,
    /// Fraction of responses in exactly the right format.
    pub format_rate: f64,
    /// Mean length in tokens of the correct and of the incorrect responses (`None` if none).
    pub len_correct: Option<f64>,
    pub len_incorrect: Option<f64>,
    /// Fraction of the responses that check their result.
    #[serde(default)]
    pub check_rate: f64,
}

/// Summarises scored responses.
pub fn greedy_summary(scored: &[Scored]) -> GreedySummary {
    let n = scored.len().max(1) as f64;
    let mean_len = |correct: bool| {
        mean_or_none(
            scored
                .iter()
                .filter(|s| (s.accuracy > 0.0) == correct)
                .map(|s| s.tokens as f64),
        )
    };
    GreedySummary {
        accuracy: scored.iter().map(|s| s.accuracy).sum::<f64>() / n,
        format_rate: scored.iter().map(|s| s.format).sum::<f64>() / n,
        len_correct: mean_len(true),
        len_incorrect: mean_len(false),
        check_rate: scored.iter().map(|s| s.checked).sum::<f64>() / n,
    }
}

// ANCHOR: majority
/// The most common answer among some responses to one problem, counting only answers given
/// in the answer tags (ties go to the answer seen first); `None` if no response gave one.
pub fn majority(responses: &[Scored]) -> Option<&str> {
    let answers: Vec<&str> = responses
        .iter()
        .filter_map(|s| extract_answer(&s.full).map(str::trim))
        .collect();
    let count = |a: &str| answers.iter().filter(|&&b| b == a).count();
    answers
        .iter()
        .copied()
        .fold(None, |best: Option<&str>, a| match best {
            Some(b) if count(b) >= count(a) => Some(b),
            _ => Some(a),
        })
}
// ANCHOR_END: majority

// ANCHOR: evaluate
/// Evaluates `model` on `problems`: one greedy response each, and `config.k` samples
/// each for pass@k.
pub fn evaluate(
    model: &Gpt,
    task: &dyn Task,
    problems: &[Problem],
    config: &EvalConfig,
    seed: u64,
) -> Result<EvalReport> {
    config.validate()?;
    if problems.is_empty() {
        return Err(Error::invalid("eval.problems", "no held-out problems"));
    }
    let start = Instant::now();
    let greedy_cfg = SampleConfig::greedy(config.max_new_tokens);
    let (greedy, mut generated) =
        respond(model, task, problems, &greedy_cfg, config.batch_size, seed)?;
    let sample_cfg = SampleConfig {
        temperature: config.temperature,
        top_k: 0,
        max_new_tokens: config.max_new_tokens,
    };
    // Each problem repeated k times, side by side.
    let repeated: Vec<Problem> = problems
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), config.k))
        .collect();
    let (samples, n) = respond(
        model,
        task,
        &repeated,
        &sample_cfg,
        config.batch_size,
        seed ^ 1,
    )?;
    generated += n;
    let solved = samples
        .chunks(config.k)
        .filter(|group| group.iter().any(|s| s.accuracy > 0.0))
        .count();
    let n = problems.len() as f64;
    let summary = greedy_summary(&greedy);
    Ok(EvalReport {
        problems: problems.len(),
        greedy_accuracy: summary.accuracy,
        format_rate: summary.format_rate,
        k: config.k,
        pass_at_k: solved as f64 / n,
        sampled_accuracy: samples.iter().map(|s| s.accuracy).sum::<f64>() / samples.len() as f64,
        sampled_format_rate: samples.iter().map(|s| s.format).sum::<f64>() / samples.len() as f64,
        majority_at_k: samples
            .chunks(config.k)
            .zip(problems)
            .filter(|(group, p)| majority(group).is_some_and(|a| task.verify(p, a)))
            .count() as f64
            / n,
        check_rate: summary.check_rate,
        sampled_check_rate: samples.iter().map(|s| s.checked).sum::<f64>() / samples.len() as f64,
        mean_len_correct: summary.len_correct,
        mean_len_incorrect: summary.len_incorrect,
        tokens_per_second: generated as f64 / start.elapsed().as_secs_f64().max(1e-9),
        greedy,
    })
}
// ANCHOR_END: evaluate
