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
    /// Is `answer` (the text between the answer tags) correct? Never panics, whatever
    /// the text.
    fn verify(&self, problem: &Problem, answer: &str) -> bool;
    /// A correct worked solution, for supervised fine-tuning.
    fn solve(&self, problem: &Problem) -> Trace;
    /// A worked solution with one slip in the scratchpad that makes the answer wrong.
    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace;
    /// The largest meaningful difficulty.
    fn max_difficulty(&self) -> usize;
    /// A solution as a fallible writer drafts it in `style` (see [`draft_columns`]).
    /// `None` for a task without drafts, or a prompt that is not the task's.
    fn draft(&self, _problem: &Problem, _style: Style, _rng: &mut dyn Rng) -> Option<Draft> {
        None
    }
    /// The text the model is shown for `problem`: its prompt, followed by the
    /// template's opening (see [`Template`]).
    fn pose(&self, problem: &Problem) -> String {
        problem.prompt.clone()
    }
    /// The whole response, as scored, of a model that generated `generated` after
    /// [`Task::pose`]: what the template opened, then what the model wrote.
    fn completed(&self, generated: &str) -> String {
        generated.to_string()
    }
    /// The problem a prompt typed by hand poses (`lm sample --prompt`), with its ground
    /// truth; an error if the prompt is not one of this task's: unreadable, or outside
    /// its limits (see each task). A prompt that passes is scored exactly like a
    /// generated one.
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

/// How a problem is put to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// The bare prompt, `47+85=`: the model writes the whole response, tags included.
    #[default]
    Plain,
    /// R1-Zero's template: the prompt ends with `<think>`, so that every response continues
    /// a think block, and the model must itself close it and give an answer.
    Think,
}

impl Template {
    /// What the template adds after the prompt (and so before the response).
    pub fn opening(self) -> &'static str {
        match self {
            Template::Plain => "",
            Template::Think => "<think>",
        }
    }
}

/// A task posed through a [`Template`]: the prompt gains the template's opening, and a
/// response is scored with that opening in front of it.
pub struct Templated {
    pub inner: Box<dyn Task>,
    pub template: Template,
}

impl Task for Templated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn generate(&self, seed: u64, difficulty: usize) -> Problem {
        self.inner.generate(seed, difficulty)
    }
    fn verify(&self, problem: &Problem, answer: &str) -> bool {
        self.inner.verify(problem, answer)
    }
    fn solve(&self, problem: &Problem) -> Trace {
        self.inner.solve(problem)
    }
    fn slip(&self, problem: &Problem, rng: &mut dyn Rng) -> Trace {
        self.inner.slip(problem, rng)
    }
    fn max_difficulty(&self) -> usize {
        self.inner.max_difficulty()
    }
    fn draft(&self, problem: &Problem, style: Style, rng: &mut dyn Rng) -> Option<Draft> {
        self.inner.draft(problem, style, rng)
    }
    fn pose(&self, problem: &Problem) -> String {
        format!("{}{}", self.inner.pose(problem), self.template.opening())
    }
    fn completed(&self, generated: &str) -> String {
        self.inner
            .completed(&format!("{}{generated}", self.template.opening()))
    }
    fn check_prompt(&self, prompt: &str) -> Result<Problem> {
        self.inner.check_prompt(prompt)
    }
}

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
