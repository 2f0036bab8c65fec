//! Synthetic supervised data: worked solutions in R1's format, a controlled fraction of them
//! flawed, so that the fine-tuned model is imperfect in ways RL can fix.

use gridworld::rand::rngs::StdRng;
use gridworld::rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lm::task::{sample_problem, Problem, Split, Task};
use crate::lm::tokenizer::{Tokenizer, EOS};
use crate::rollout::derive_seed;
use crate::validate;

/// Mixed into the seed for the slips and missing tags of the worked traces, a stream apart
/// from the problems themselves.
const TRACE_NOISE: u64 = 0x5EED_DA7A;

/// How often the teacher errs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Fraction of traces with a slip in the scratchpad that makes the answer wrong.
    pub slip_rate: f64,
    /// Fraction of traces with one of the four tags left out.
    pub missing_tag_rate: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            slip_rate: 0.2,
            missing_tag_rate: 0.05,
        }
    }
}

impl DataConfig {
    /// Both rates in [0, 1] with a sum of at most 1; errors name the key.
    pub fn validate(&self) -> Result<()> {
        validate::within("data.slip_rate", self.slip_rate, 0.0, 1.0)?;
        validate::within("data.missing_tag_rate", self.missing_tag_rate, 0.0, 1.0)?;
        validate::rule(
            "data.missing_tag_rate",
            self.missing_tag_rate,
            self.slip_rate + self.missing_tag_rate <= 1.0,
            "is too large: data.slip_rate + data.missing_tag_rate must be at most 1",
        )
    }

    /// The fraction of traces that are fully correct (right answer, right format).
    pub fn clean_rate(&self) -> f64 {
        1.0 - self.slip_rate - self.missing_tag_rate
    }

    /// The fraction of traces that earn the accuracy reward: no slip, and both answer tags
    /// (a missing tag is one of the two answer tags half of the time).
    pub fn accuracy_ceiling(&self) -> f64 {
        1.0 - self.slip_rate - self.missing_tag_rate / 2.0
    }

    /// The fraction of traces in the exact format.
    pub fn format_ceiling(&self) -> f64 {
        1.0 - self.missing_tag_rate
    }
}

/// What is wrong with a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Flaw {
    None,
    /// A slip in the scratchpad; the answer follows it and is wrong.
    Slip,
    /// One tag is missing; the format reward is lost.
    MissingTag,
}

/// One training example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub problem: Problem,
    /// The response text in R1's format (possibly flawed), without end-of-sequence.
    pub response: String,
    pub flaw: Flaw,
}

// ANCHOR: example
/// A worked example for `problem`: correct, or with probability `slip_rate` a slip, or with
/// probability `missing_tag_rate` a missing tag.
pub fn example(
    task: &dyn Task,
    problem: Problem,
    config: &DataConfig,
    rng: &mut dyn Rng,
) -> Example {
    let u: f64 = rng.random();
    let (response, flaw) = if u < config.slip_rate {
        (task.slip(&problem, rng).response(), Flaw::Slip)
    } else if u < config.slip_rate + config.missing_tag_rate {
        let full = task.solve(&problem).response();
        let tag = ["<think>", "</think>", "<answer>", "</answer>"][rng.random_range(0..4)];
        (full.replacen(tag, "", 1), Flaw::MissingTag)
    } else {
        (task.solve(&problem).response(), Flaw::None)
    };
    Example {
        problem,
        response,
        flaw,
    }
}
// ANCHOR_END: example

/// The training examples of step `step` (a batch of `batch` examples, all from the training
/// split), fixed by `seed`: example i of step s is the same in every run with that seed.
pub fn batch(
    task: &dyn Task,
    difficulty: usize,
    config: &DataConfig,
    seed: u64,
    step: usize,
    batch: usize,
) -> Vec<Example> {
    (0..batch)
        .map(|i| {
            let n = (step * batch + i) as u64;
            let problem = sample_problem(task, seed, n, difficulty, Split::Train);
            let mut rng = StdRng::seed_from_u64(derive_seed(seed ^ TRACE_NOISE, n));
            example(task, problem, config, &mut rng)
        })
        .collect()
}

/// Rows of token ids.
pub type Sequences = Vec<Vec<u32>>;

/// Token ids of examples: (prompts, responses with end-of-sequence).
pub fn encode(examples: &[Example]) -> Result<(Sequences, Sequences)> {
    let tok = Tokenizer;
    let mut prompts = Vec::with_capacity(examples.len());
    let mut responses = Vec::with_capacity(examples.len());
    for e in examples {
        prompts.push(tok.encode(&e.problem.prompt)?);
        let mut r = tok.encode(&e.response)?;
        r.push(EOS);
        responses.push(r);
    }
    Ok((prompts, responses))
}
