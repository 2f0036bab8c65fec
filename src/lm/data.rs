//! Synthetic supervised data: worked solutions in R1's format, a controlled fraction of them
//! flawed, so that the fine-tuned model is imperfect in ways RL can fix.

use gridworld::rand::rngs::StdRng;
use gridworld::rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lm::task::{sample_problem, Problem, Split, Style, Task};
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
    /// Drafted documents (see [`DataConfig::drafts`]): the fraction in R1's exact template;
    /// the others give the answer after `</think>` without tags, bare or as `answer:…`.
    #[serde(default = "one")]
    pub template_rate: f64,
    /// Drafted documents: the fraction whose scratchpad checks its result by the inverse
    /// operation, and works the columns again when the check fails.
    #[serde(default)]
    pub check_rate: f64,
    /// Drafted documents: the probability that each carry into a column is dropped.
    #[serde(default)]
    pub dropped_carry_rate: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            slip_rate: 0.2,
            missing_tag_rate: 0.05,
            template_rate: 1.0,
            check_rate: 0.0,
            dropped_carry_rate: 0.0,
        }
    }
}

impl DataConfig {
    /// Are the documents drafted ([`Task::draft`]: dropped carries, checks, other answer
    /// forms) rather than worked solutions with slips and missing tags? Drafted as soon as one
    /// of `template_rate`, `check_rate`, `dropped_carry_rate` leaves its default.
    pub fn drafts(&self) -> bool {
        self.template_rate != 1.0 || self.check_rate != 0.0 || self.dropped_carry_rate != 0.0
    }

    /// Every rate in [0, 1], slips and missing tags summing to at most 1, and not mixed with
    /// drafts; errors name the key.
    pub fn validate(&self) -> Result<()> {
        validate::within("data.slip_rate", self.slip_rate, 0.0, 1.0)?;
        validate::within("data.missing_tag_rate", self.missing_tag_rate, 0.0, 1.0)?;
        validate::within("data.template_rate", self.template_rate, 0.0, 1.0)?;
        validate::within("data.check_rate", self.check_rate, 0.0, 1.0)?;
        validate::within("data.dropped_carry_rate", self.dropped_carry_rate, 0.0, 1.0)?;
        if self.drafts() {
            validate::rule(
                "data.slip_rate",
                self.slip_rate + self.missing_tag_rate,
                self.slip_rate == 0.0 && self.missing_tag_rate == 0.0,
                "must be 0, with data.missing_tag_rate: drafted documents (template_rate, \
                 check_rate, dropped_carry_rate) go wrong by dropped carries instead",
            )?;
        }
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
    /// A drafted document: what happened in it.
    Draft {
        dropped: bool,
        checked: bool,
        redone: bool,
        template: bool,
    },
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
/// A worked example for `problem`: correct, or with probability `slip_rate` a slip, or
/// with probability `missing_tag_rate` a missing tag.
pub fn example(
    task: &dyn Task,
    problem: Problem,
    config: &DataConfig,
    rng: &mut dyn Rng,
) -> Example {
    if config.drafts() {
        if let Some(e) = drafted(task, &problem, config, rng) {
            return e;
        }
    }
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

// ANCHOR: drafted
/// A drafted document for `problem`: a check with probability `check_rate`, carries
/// dropped at `dropped_carry_rate`, and with probability `template_rate` R1's template;
/// otherwise the answer follows `</think>` without its tags, bare or after `answer:`,
/// half and half.
fn drafted(
    task: &dyn Task,
    problem: &Problem,
    config: &DataConfig,
    rng: &mut dyn Rng,
) -> Option<Example> {
    let check = rng.random::<f64>() < config.check_rate;
    let d = task.draft(
        problem,
        Style {
            drop_rate: config.dropped_carry_rate,
            check,
        },
        rng,
    )?;
    let template = rng.random::<f64>() < config.template_rate;
    let response = if template {
        d.trace.response()
    } else if rng.random_bool(0.5) {
        format!("<think>{}</think>{}", d.trace.think, d.trace.answer)
    } else {
        format!("<think>{}</think>answer:{}", d.trace.think, d.trace.answer)
    };
    Some(Example {
        problem: problem.clone(),
        response,
        flaw: Flaw::Draft {
            dropped: d.dropped,
            checked: d.checked,
            redone: d.redone,
            template,
        },
    })
}
// ANCHOR_END: drafted

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

/// Token ids of examples as `task` poses them: (prompts, responses with end-of-sequence).
/// What the task's template puts in the prompt ([`Task::pose`]) is cut from the front of the
/// response.
pub fn encode(task: &dyn Task, examples: &[Example]) -> Result<(Sequences, Sequences)> {
    let tok = Tokenizer;
    let mut prompts = Vec::with_capacity(examples.len());
    let mut responses = Vec::with_capacity(examples.len());
    for e in examples {
        let posed = task.pose(&e.problem);
        let opening = posed.strip_prefix(&e.problem.prompt).unwrap_or("");
        prompts.push(tok.encode(&posed)?);
        let mut r = tok.encode(e.response.strip_prefix(opening).unwrap_or(&e.response))?;
        r.push(EOS);
        responses.push(r);
    }
    Ok((prompts, responses))
}
