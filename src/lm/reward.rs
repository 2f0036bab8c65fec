//! Rule-based rewards, as in R1-Zero: a format reward for exactly one
//! `<think>…</think><answer>…</answer>` and an accuracy reward for a correct answer, weighted
//! and summed, with both components kept for reporting.
//!
//! Model output is user input: whatever the text (junk, two answers, ten thousand tokens of
//! rambling), scoring returns a number and never panics.

use serde::Serialize;

use crate::error::Result;
use crate::lm::task::{has_check, Problem, Task};
use crate::validate;

const THINK: &str = "<think>";
const THINK_END: &str = "</think>";
const ANSWER: &str = "<answer>";
const ANSWER_END: &str = "</answer>";
const TAGS: [&str; 4] = [THINK, THINK_END, ANSWER, ANSWER_END];

// ANCHOR: format_ok
/// The strict format: the whole response is `<think>X</think><answer>Y</answer>`, each
/// tag exactly once, X and Y free of tags, Y not blank.
pub fn format_ok(response: &str) -> bool {
    let Some(rest) = response.strip_prefix(THINK) else {
        return false;
    };
    let Some((think, rest)) = rest.split_once(THINK_END) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(ANSWER) else {
        return false;
    };
    let Some(answer) = rest.strip_suffix(ANSWER_END) else {
        return false;
    };
    let no_tags = |s: &str| TAGS.iter().all(|t| !s.contains(t));
    no_tags(think) && no_tags(answer) && !answer.trim().is_empty()
}
// ANCHOR_END: format_ok

// ANCHOR: extract_answer
/// The text inside the answer tags, if there is exactly one `<answer>…</answer>`, it is
/// not blank, contains no other tag, and nothing but whitespace follows it. Otherwise
/// `None`: two answers, an answer inside the scratchpad, or a number outside the tags
/// earn nothing.
pub fn extract_answer(response: &str) -> Option<&str> {
    if response.matches(ANSWER).count() != 1 || response.matches(ANSWER_END).count() != 1 {
        return None;
    }
    let (_, rest) = response.split_once(ANSWER)?;
    let (answer, after) = rest.split_once(ANSWER_END)?;
    let clean = TAGS.iter().all(|t| !answer.contains(t));
    (clean && !answer.trim().is_empty() && after.trim().is_empty()).then_some(answer)
}
// ANCHOR_END: extract_answer

/// How much each component counts in the total.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardWeights {
    /// Weight of the format reward.
    pub format: f64,
    /// Weight of the accuracy reward.
    pub accuracy: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights {
            format: 0.2,
            accuracy: 1.0,
        }
    }
}

impl RewardWeights {
    /// Both weights in [0, 10⁶], not both zero.
    pub fn validate(&self) -> Result<()> {
        // Larger rewards overflow the losses.
        validate::within("reward.format", self.format, 0.0, 1e6)?;
        validate::within("reward.accuracy", self.accuracy, 0.0, 1e6)?;
        validate::rule(
            "reward",
            "0 and 0",
            self.format + self.accuracy > 0.0,
            "cannot be the weights: one must be positive",
        )
    }
}

/// The reward of one response, with its components.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Reward {
    /// 1 if the format is exactly right, else 0.
    pub format: f64,
    /// 1 if the answer is correct, else 0.
    pub accuracy: f64,
    /// `format · w_format + accuracy · w_accuracy`.
    pub total: f64,
    /// DAPO's soft overlong penalty, included in `total` (0 unless `grpo.overlong_buffer`
    /// is set): see [`overlong_penalty`].
    pub overlong: f64,
    /// 1 if the response checks its result (contains [`CHECK`](crate::lm::task::CHECK)), else 0. Not rewarded;
    /// measured, to see whether reinforcement learning makes checking more common.
    pub checked: f64,
}

// ANCHOR: score
/// Scores a decoded response to `problem` (with what the task's template opened in
/// front of it: [`Task::completed`]).
pub fn score(task: &dyn Task, problem: &Problem, response: &str, w: &RewardWeights) -> Reward {
    let response = &task.completed(response);
    let format = f64::from(u8::from(format_ok(response)));
    let accuracy = match extract_answer(response) {
        Some(answer) => f64::from(u8::from(task.verify(problem, answer))),
        None => 0.0,
    };
    Reward {
        format,
        accuracy,
        total: w.format * format + w.accuracy * accuracy,
        overlong: 0.0,
        checked: f64::from(u8::from(has_check(response))),
    }
}
// ANCHOR_END: score

// ANCHOR: overlong_penalty
/// DAPO's soft overlong penalty of a response of `len` tokens, for a budget of `max`
/// tokens whose last `buffer` tokens cost reward: 0 up to `max − buffer` tokens, then
/// falling linearly to −1 at `max`. With `buffer` = 0, never anything.
pub fn overlong_penalty(len: usize, max: usize, buffer: usize) -> f64 {
    let start = max.saturating_sub(buffer);
    if buffer == 0 || len <= start {
        0.0
    } else {
        -((len - start) as f64 / buffer as f64).min(1.0)
    }
}
// ANCHOR_END: overlong_penalty
