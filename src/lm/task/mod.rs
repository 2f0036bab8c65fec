//! Tasks whose answers a rule can check: a generator of (prompt, ground truth) pairs with a
//! difficulty knob, a verifier, and a worked solution for supervised fine-tuning.
//!
//! Two tasks: [`Arithmetic`] (multi-digit addition and subtraction with the columns written out
//! in the scratchpad; the CPU default) and [`Countdown`] (reach a target from given numbers
//! with + − × ÷; harder, for a GPU).

use gridworld::rand::Rng;

use crate::error::{Error, Result};
use crate::rollout::derive_seed;

mod arithmetic;
mod countdown;
pub use arithmetic::*;
pub use countdown::*;

/// One question of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What the model is shown, e.g. `347+85=`.
    pub prompt: String,
    /// The ground truth the verifier compares with (for arithmetic the result, for Countdown
    /// the target; the numbers are in the prompt).
    pub truth: String,
}

/// A worked solution: the scratchpad and the answer, without tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub think: String,
    pub answer: String,
}

impl Trace {
    /// The response in R1's format: `<think>…</think><answer>…</answer>`.
    pub fn response(&self) -> String {
        format!(
            "<think>{}</think><answer>{}</answer>",
            self.think, self.answer
        )
    }
}

/// Training prompts and held-out prompts never overlap: every prompt belongs to exactly one
/// split, decided by a hash of its text (one in ten is held out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The split `prompt` belongs to.
    pub fn of(prompt: &str) -> Split {
        // FNV-1a, then one SplitMix64 round: stable across platforms and Rust versions.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in prompt.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if derive_seed(h, 0) % 10 == 0 {
            Split::Test
        } else {
            Split::Train
        }
    }
}

// ANCHOR: task_trait
/// A task with verifiable answers.
pub trait Task: Send + Sync {
    /// The name used on the command line and in configs.
    fn name(&self) -> &'static str;
    /// A problem drawn from `seed` at `difficulty` (same seed, same problem).
    fn generate(&self, seed: u64, difficulty: usize) -> Problem;
    /// Is `answer` (the text between the answer tags) correct? Never panics, whatever the text.
    fn verify(&self, problem: &Problem, answer: &str) -> bool;
    /// A correct worked solution, for supervised fine-tuning.
    fn solve(&self, problem: &Problem) -> Trace;
    /// A worked solution with one slip in the scratchpad that makes the answer wrong.
    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace;
    /// The largest meaningful difficulty.
    fn max_difficulty(&self) -> usize;
    /// The problem a prompt typed by hand poses (`lm sample --prompt`), with its ground truth;
    /// an error if the prompt is not one of this task's: unreadable, or outside its limits
    /// (see each task). A prompt that passes is scored exactly like a generated one.
    fn check_prompt(&self, prompt: &str) -> Result<Problem> {
        Err(Error::invalid(
            "prompt",
            format!(
                "{prompt:?}: the {} task takes no prompts by hand",
                self.name()
            ),
        ))
    }
}
// ANCHOR_END: task_trait

/// Draws the `i`-th problem of a stream from `seed`, keeping only prompts of `split`: training
/// data and evaluation can never share a prompt.
pub fn sample_problem(
    task: &dyn Task,
    seed: u64,
    i: u64,
    difficulty: usize,
    split: Split,
) -> Problem {
    let mut j = 0u64;
    loop {
        let p = task.generate(derive_seed(derive_seed(seed, i), j), difficulty);
        if Split::of(&p.prompt) == split {
            return p;
        }
        j += 1;
    }
}

/// The task called `name` (`arithmetic` or `countdown`).
pub fn task_by_name(name: &str) -> Result<Box<dyn Task>> {
    match name {
        "arithmetic" => Ok(Box::new(Arithmetic)),
        "addition" => Ok(Box::new(Addition)),
        "countdown" => Ok(Box::new(Countdown)),
        _ => Err(Error::invalid(
            "task",
            format!("{name:?}; choose arithmetic, addition or countdown"),
        )),
    }
}

/// The names of all tasks.
pub const TASKS: [&str; 3] = ["arithmetic", "addition", "countdown"];
