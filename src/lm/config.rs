//! The configuration of a language-model run, read from a TOML file. Every section and key is
//! optional (defaults are the CPU run of the book); an unknown key or an out-of-range value is
//! an error naming it.

use std::path::Path;

use gridworld::rand::rngs::StdRng;
use gridworld::rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::read_user_text;
use crate::lm::data::DataConfig;
use crate::lm::eval::{EvalConfig, MAX_PROBLEMS};
use crate::lm::model::{context_too_short, GptConfig};
use crate::lm::reward::RewardWeights;
use crate::lm::sft::SftConfig;
use crate::lm::task::{task_by_name, Style, Task, Template, Templated};
use crate::lm::tokenizer::Tokenizer;
use crate::objective::{Aggregation, LossSettings, Ratio};
use crate::validate;

/// Which task, how hard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// `addition` (the CPU default), `arithmetic` (addition and subtraction) or `countdown`.
    pub name: String,
    /// Arithmetic: the most digits per number; Countdown: how many numbers.
    pub difficulty: usize,
    /// `plain` (the bare prompt) or `think` (R1-Zero's: the prompt ends with `<think>`).
    pub template: Template,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            name: "addition".into(),
            difficulty: 2,
            template: Template::Plain,
        }
    }
}

/// The longest worked example (prompt, response and end-of-sequence, in tokens) among the
/// first problems of `task` at `difficulty` (among drafted documents too if `drafts`): what
/// the model's context must hold. Training
/// checks every example again, so a longer one later is still an error, not a crash.
pub fn longest_example(task: &dyn Task, difficulty: usize, drafts: bool) -> Result<usize> {
    let tok = Tokenizer;
    let mut longest = 0;
    for seed in 0..64 {
        let p = task.generate(seed, difficulty);
        let n = tok.encode(&p.prompt)?.len() + tok.encode(&task.solve(&p).response())?.len() + 1;
        longest = longest.max(n);
        // A drafted document is longest when a dropped carry fails its check and the columns
        // are worked again, with the answer given as `answer:…`.
        let mut rng = StdRng::seed_from_u64(seed);
        if let Some(d) = task
            .draft(
                &p,
                Style {
                    drop_rate: 1.0,
                    check: true,
                },
                &mut rng,
            )
            .filter(|_| drafts)
        {
            let text = format!("<think>{}</think>answer:{}", d.trace.think, d.trace.answer);
            longest = longest.max(tok.encode(&p.prompt)?.len() + tok.encode(&text)?.len() + 1);
        }
    }
    Ok(longest)
}

/// A whole language-model run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmConfig {
    pub task: TaskConfig,
    pub model: GptConfig,
    pub data: DataConfig,
    pub sft: SftConfig,
    pub eval: EvalConfig,
    pub reward: RewardWeights,
    pub grpo: GrpoLmConfig,
    /// A base model, pretrained before anything else on drafted documents (chapter 9's Zero
    /// route). `[sft]` then fine-tunes that base model (R1's cold start), or is skipped with
    /// `sft.steps = 0` (R1-Zero: GRPO straight from the base model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrain: Option<Pretrain>,
}

/// The pretraining of a base model: its documents and its optimizer settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pretrain {
    pub data: DataConfig,
    pub sft: SftConfig,
}

impl LmConfig {
    /// Parses a TOML text (`source` names it in errors) and validates it.
    pub fn from_toml(text: &str, source: &str) -> Result<LmConfig> {
        let config: LmConfig = toml::from_str(text).map_err(|e| {
            Error::invalid(
                format!("config {source}"),
                e.to_string().trim_end().to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<LmConfig> {
        LmConfig::from_toml(&read_user_text(path)?, &path.display().to_string())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::invalid("config", e.to_string()))
    }

    /// The fraction of the documents the model was trained on last (the cold start's, or the
    /// base model's when there is none) that are fully right: right answer, exact format.
    /// Worked out from the rates for slips and missing tags; counted on 2,000 documents for
    /// drafts, whose errors depend on how often the problems carry.
    pub fn clean_rate(&self) -> Result<f64> {
        let data = match &self.pretrain {
            Some(p) if self.sft.steps == 0 => &p.data,
            _ => &self.data,
        };
        if !data.drafts() {
            return Ok(data.clean_rate());
        }
        let task = self.bare_task()?;
        let n = 2000;
        let examples = crate::lm::data::batch(task.as_ref(), self.task.difficulty, data, 0, 0, n);
        let w = crate::lm::reward::RewardWeights::default();
        let clean = examples
            .iter()
            .filter(|e| {
                let r = crate::lm::reward::score(task.as_ref(), &e.problem, &e.response, &w);
                r.format == 1.0 && r.accuracy == 1.0
            })
            .count();
        Ok(clean as f64 / n as f64)
    }

    /// The task named in the config, posed through its template.
    pub fn task(&self) -> Result<Box<dyn Task>> {
        let inner = self.bare_task()?;
        Ok(match self.task.template {
            Template::Plain => inner,
            template => Box::new(Templated { inner, template }),
        })
    }

    fn bare_task(&self) -> Result<Box<dyn Task>> {
        task_by_name(&self.task.name).map_err(|_| {
            Error::invalid(
                "task.name",
                format!(
                    "{:?}; choose arithmetic, addition or countdown",
                    self.task.name
                ),
            )
        })
    }

    /// Checks every section; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let task = self.task()?;
        if self.task.difficulty == 0 || self.task.difficulty > task.max_difficulty() {
            return Err(Error::invalid(
                "task.difficulty",
                format!(
                    "{} must be in 1..={} for {}",
                    self.task.difficulty,
                    task.max_difficulty(),
                    task.name()
                ),
            ));
        }
        self.model.validate()?;
        let vocab = Tokenizer.vocab_size();
        if self.model.vocab != vocab {
            return Err(Error::invalid(
                "model.vocab",
                format!("{} must equal the tokenizer's {vocab}", self.model.vocab),
            ));
        }
        for (key, value, most) in [
            ("sft.steps", self.sft.steps, 100_000_000),
            ("grpo.steps", self.grpo.steps, 100_000_000),
            ("sft.batch_size", self.sft.batch_size, 1 << 16),
            ("eval.batch_size", self.eval.batch_size, 1 << 16),
            ("eval.problems", self.eval.problems, MAX_PROBLEMS),
            ("grpo.eval_problems", self.grpo.eval_problems, MAX_PROBLEMS),
            ("eval.k", self.eval.k, 1 << 10),
            ("grpo.prompts", self.grpo.prompts, 1 << 16),
            ("grpo.group_size", self.grpo.group_size, 1 << 12),
            ("eval.max_new_tokens", self.eval.max_new_tokens, 1 << 20),
            ("grpo.max_new_tokens", self.grpo.max_new_tokens, 1 << 20),
        ] {
            validate::count(key, value, 0, most)?;
        }
        self.data.validate()?;
        if let Some(p) = &self.pretrain {
            p.data.validate().map_err(|e| e.under("pretrain"))?;
            p.sft.validate().map_err(|e| e.under("pretrain"))?;
        }
        let drafts = self.data.drafts() || self.pretrain.as_ref().is_some_and(|p| p.data.drafts());
        if drafts {
            let probe = task.generate(0, self.task.difficulty);
            let mut rng = StdRng::seed_from_u64(0);
            if task
                .draft(
                    &probe,
                    Style {
                        drop_rate: 0.0,
                        check: false,
                    },
                    &mut rng,
                )
                .is_none()
            {
                return Err(Error::invalid(
                    "data",
                    format!(
                        "the {} task has no drafted documents: leave data.template_rate, \
                         data.check_rate and data.dropped_carry_rate at 1, 0 and 0",
                        task.name()
                    ),
                ));
            }
        }
        let needed = longest_example(task.as_ref(), self.task.difficulty, drafts)?;
        if needed > self.model.context {
            return Err(context_too_short(self.model.context, needed));
        }
        if self.sft.steps > 0 || self.pretrain.is_none() {
            self.sft.validate()?;
        }
        self.eval.validate()?;
        self.reward.validate()?;
        self.grpo.validate()
    }

    /// A rough upper estimate of the memory a run of this config takes on its device, in
    /// bytes: every parameter four times (weights, gradients, AdamW's two moments), and the
    /// activations the largest forward pass keeps for its backward pass. Returns the estimate
    /// and the config key that drives it.
    pub fn memory_estimate(&self) -> (f64, &'static str) {
        let m = &self.model;
        let (t, d) = (m.context as f64, m.d_model as f64);
        let parameters = 16.0 * GptConfig::parameters(m) as f64;
        let per_row = t
            * (m.layers as f64 * (16.0 * d + 2.0 * m.mlp as f64 + 2.0 * m.heads as f64 * t)
                + 3.0 * m.vocab as f64)
            * 4.0;
        let grpo_rows = match self.grpo.micro_batch {
            0 => self.grpo.minibatch_size(self.grpo.responses()),
            r => r,
        };
        let rows = [
            ("sft.batch_size", self.sft.batch_size),
            ("eval.batch_size", self.eval.batch_size),
            ("grpo.micro_batch", grpo_rows),
        ];
        let (key, most) = rows.iter().max_by_key(|r| r.1).copied().unwrap_or(("", 0));
        let activations = most as f64 * per_row;
        if parameters > activations {
            (parameters + activations, "model")
        } else {
            (parameters + activations, key)
        }
    }

    /// An error if a run of this config clearly cannot fit in the memory of this machine
    /// (checked on the CPU, where running out of memory ends the process without a word).
    pub fn check_memory(&self, device: &candle_core::Device) -> Result<()> {
        if !device.is_cpu() {
            return Ok(());
        }
        let Some(total) = memory_total() else {
            return Ok(());
        };
        let (need, key) = self.memory_estimate();
        if need > total {
            let gib = |x: f64| x / (1u64 << 30) as f64;
            return Err(Error::invalid(
                key,
                format!(
                    "this config needs about {:.1} GiB of memory and this machine has {:.1} GiB; \
                     lower it",
                    gib(need),
                    gib(total)
                ),
            ));
        }
        Ok(())
    }

    /// The Zero route on the CPU (`configs/zero-cpu.toml`, the default of `lm r1-zero`): a
    /// base model pretrained on drafted additions of which a quarter are in R1's template,
    /// then GRPO straight from it with the `<think>` template, no fine-tuning.
    pub fn zero_default() -> LmConfig {
        LmConfig {
            task: TaskConfig {
                template: Template::Think,
                ..TaskConfig::default()
            },
            model: GptConfig {
                context: 128,
                ..GptConfig::default()
            },
            pretrain: Some(Pretrain {
                data: DataConfig {
                    slip_rate: 0.0,
                    missing_tag_rate: 0.0,
                    template_rate: 0.25,
                    check_rate: 0.2,
                    dropped_carry_rate: 0.6,
                },
                sft: SftConfig {
                    steps: 600,
                    ..SftConfig::default()
                },
            }),
            sft: SftConfig {
                steps: 0,
                ..SftConfig::default()
            },
            eval: EvalConfig {
                problems: 500,
                k: 8,
                max_new_tokens: 100,
                batch_size: 250,
                ..EvalConfig::default()
            },
            grpo: GrpoLmConfig {
                steps: 40,
                max_new_tokens: 100,
                eval_every: 10,
                eval_problems: 500,
                ..GrpoLmConfig::default()
            },
            ..LmConfig::default()
        }
    }

    /// The config of the GPU run: Countdown with four numbers on a model of about 25 M
    /// parameters.
    pub fn gpu_default() -> LmConfig {
        LmConfig {
            task: TaskConfig {
                name: "countdown".into(),
                difficulty: 4,
                ..TaskConfig::default()
            },
            model: GptConfig {
                context: 128,
                d_model: 512,
                layers: 8,
                heads: 8,
                mlp: 2048,
                ..GptConfig::default()
            },
            sft: SftConfig {
                steps: 3000,
                batch_size: 128,
                lr: 1e-3,
                warmup: 200,
                ..SftConfig::default()
            },
            eval: EvalConfig {
                problems: 500,
                k: 8,
                max_new_tokens: 96,
                batch_size: 500,
                ..EvalConfig::default()
            },
            grpo: GrpoLmConfig {
                steps: 300,
                prompts: 64,
                group_size: 8,
                lr: 1e-4,
                max_new_tokens: 96,
                eval_problems: 500,
                ..GrpoLmConfig::default()
            },
            ..LmConfig::default()
        }
    }
}

/// The machine's memory in bytes (Linux: /proc/meminfo), if known.
fn memory_total() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

// ANCHOR: config
/// The `[grpo]` section of a config: how to train the language model with GRPO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoLmConfig {
    /// Rollout–update cycles.
    pub steps: usize,
    /// B: prompts (questions) per step.
    pub prompts: usize,
    /// G: responses sampled per prompt; at least 2, since they are scored against each other.
    pub group_size: usize,
    /// μ: passes over each step's responses.
    pub epochs: usize,
    /// Optimizer steps per pass: the B·G responses are shuffled and cut into this many
    /// minibatches. With μ = 1 and one minibatch the update is exactly on-policy.
    pub minibatches: usize,
    /// Responses per forward/backward pass (0: a whole minibatch at once). Only memory
    /// depends on it: the gradients of the parts are added up before the step, weighted so
    /// that the result equals the whole minibatch's gradient.
    pub micro_batch: usize,
    /// ε of the ratio clip (its lower side, ε_low, when `clip_high` is set).
    pub clip: f64,
    /// ε_high, the upper side of the clip, if it differs (DAPO's clip-higher, e.g. 0.28): a
    /// token whose probability was low can then grow further in one step, which keeps rare
    /// good behaviour from being clipped away. Unset: ε on both sides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_high: Option<f64>,
    /// Whose probability ratio is clipped: `token` (GRPO, PPO) or `sequence` (GSPO: the
    /// geometric mean of a response's token ratios, one ratio and one clip per response).
    pub ratio: Ratio,
    /// DAPO's dynamic sampling: groups whose rewards are all equal (which teach nothing) are
    /// dropped, and groups for more training prompts are sampled until the step has B groups
    /// that teach something (at most 4 more rounds of B prompts). Costs sampling time; every
    /// update then has B informative groups.
    pub dynamic_sampling: bool,
    /// DAPO's overlong filtering: responses cut off by `max_new_tokens` are left out of the
    /// loss (they still count in their group's mean and std), so that the model is not taught
    /// that a reasoning cut short was wrong.
    pub overlong_filter: bool,
    /// DAPO's soft overlong penalty: the last this many tokens of the budget cost reward,
    /// linearly from 0 to −1 at `max_new_tokens` (0: no penalty).
    pub overlong_buffer: usize,
    /// β: weight of the k3 penalty on the KL to the reference (the SFT model); 0 = none.
    pub beta: f64,
    /// Divide each group's centred rewards by its standard deviation (GRPO) or not (Dr. GRPO).
    pub scale_by_std: bool,
    /// How per-token losses are combined: `response-mean` (GRPO), `token-mean`, or
    /// `constant:L` (Dr. GRPO, L = the generation budget).
    #[serde(deserialize_with = "grpo_aggregation")]
    pub aggregation: Aggregation,
    /// Learning rate of AdamW (constant after the warm-up).
    pub lr: f64,
    /// Steps of linear learning-rate warm-up.
    pub warmup: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Gradients are rescaled to at most this global norm.
    pub max_grad_norm: f64,
    /// Sampling temperature of the rollouts. It must be 1: the sampler records the model's own
    /// log-probabilities as log π_old, and only at temperature 1 are they those of the
    /// distribution the responses were drawn from (at another temperature the update would be
    /// silently off-policy, so any other value is refused).
    pub temperature: f64,
    /// Longest response, end-of-sequence included.
    pub max_new_tokens: usize,
    /// Evaluate greedy accuracy on held-out problems every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Held-out problems of those evaluations.
    pub eval_problems: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}
// ANCHOR_END: config

impl Default for GrpoLmConfig {
    fn default() -> Self {
        GrpoLmConfig {
            steps: 250,
            prompts: 16,
            group_size: 8,
            epochs: 1,
            minibatches: 2,
            micro_batch: 0,
            clip: 0.2,
            clip_high: None,
            ratio: Ratio::Token,
            dynamic_sampling: false,
            overlong_filter: false,
            overlong_buffer: 0,
            beta: 0.04,
            scale_by_std: true,
            aggregation: Aggregation::ResponseMean,
            lr: 2e-4,
            warmup: 10,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            temperature: 1.0,
            max_new_tokens: 48,
            eval_every: 25,
            eval_problems: 200,
            checkpoint_every: 50,
        }
    }
}

impl GrpoLmConfig {
    /// The settings of the GRPO loss.
    pub fn loss_settings(&self) -> LossSettings {
        LossSettings {
            clip: self.clip,
            clip_high: self.clip_high,
            ratio: self.ratio,
            beta: self.beta,
            aggregation: self.aggregation,
        }
    }

    /// Switches to an algorithm's choices: GRPO (÷std, `response-mean`) or Dr. GRPO (no ÷std,
    /// `constant:max_new_tokens`).
    pub fn set_algo(&mut self, algo: Algo) {
        match algo {
            Algo::Grpo => {
                self.scale_by_std = true;
                self.aggregation = Aggregation::ResponseMean;
            }
            Algo::DrGrpo => {
                self.scale_by_std = false;
                self.aggregation = Aggregation::Constant {
                    budget: self.max_new_tokens,
                };
            }
        }
    }

    /// Responses per step, B · G.
    pub fn responses(&self) -> usize {
        self.prompts * self.group_size
    }

    /// Optimizer steps of one GRPO step: μ passes, each over the minibatches that the B·G
    /// responses are cut into (chunks of ⌈B·G / minibatches⌉, so possibly fewer than asked).
    pub fn optimizer_steps_per_step(&self) -> usize {
        let n = self.responses();
        self.epochs * n.div_ceil(self.minibatch_size(n))
    }

    /// Responses per minibatch when `n` responses are cut into `minibatches` pieces.
    pub fn minibatch_size(&self, n: usize) -> usize {
        crate::update::minibatch_size(n, self.minibatches)
    }

    /// Checks the values; errors name the key (`grpo.clip`, …).
    pub fn validate(&self) -> Result<()> {
        let key = |k: &str| format!("grpo.{k}");
        validate::counts(
            [
                ("steps", self.steps),
                ("prompts", self.prompts),
                ("epochs", self.epochs),
                ("minibatches", self.minibatches),
                ("max_new_tokens", self.max_new_tokens),
                ("eval_problems", self.eval_problems),
            ]
            .map(|(k, v)| (key(k), v)),
            1,
        )?;
        let why = "is more than 1000 passes over one step's responses";
        validate::rule(&key("epochs"), self.epochs, self.epochs <= 1000, why)?;
        let why = format!("is more than grpo.steps = {}", self.steps);
        validate::rule(&key("warmup"), self.warmup, self.warmup <= self.steps, &why)?;
        let why =
            "is too small: a group needs at least 2 responses to compare them with each other";
        validate::rule(
            &key("group_size"),
            self.group_size,
            self.group_size >= 2,
            why,
        )?;
        let why = format!("is more than the {} responses of a step", self.responses());
        let fits = self.minibatches <= self.responses();
        validate::rule(&key("minibatches"), self.minibatches, fits, &why)?;
        validate::positive(&key("clip"), self.clip)?;
        if let Some(high) = self.clip_high {
            validate::positive(&key("clip_high"), high)?;
        }
        let why = format!(
            "must be less than grpo.max_new_tokens = {}: the penalty needs tokens before it",
            self.max_new_tokens
        );
        let fits = self.overlong_buffer < self.max_new_tokens;
        validate::rule(&key("overlong_buffer"), self.overlong_buffer, fits, &why)?;
        validate::positive(&key("max_grad_norm"), self.max_grad_norm)?;
        validate::positive_at_most(&key("lr"), self.lr, 1.0)?;
        validate::non_negative(&key("beta"), self.beta)?;
        validate::within(&key("weight_decay"), self.weight_decay, 0.0, 1.0)?;
        let why = "must be 1: the responses must come from π_old itself, whose log-probabilities \
                   the sampler records (at another temperature the ratio π_θ/π_old would \
                   compare the model with a distribution it did not sample from)";
        validate::rule(
            &key("temperature"),
            self.temperature,
            self.temperature == 1.0,
            why,
        )
    }

    /// The learning rate at `step`: linear warm-up, then constant.
    pub fn learning_rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            self.lr * (step + 1) as f64 / self.warmup as f64
        } else {
            self.lr
        }
    }
}

/// Reads `grpo.aggregation` from its name (`response-mean`, `token-mean`, `constant:L`, …),
/// with an error that names the key.
fn grpo_aggregation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Aggregation, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|e: Error| serde::de::Error::custom(format!("grpo.aggregation: {e}")))
}

/// The two algorithms of chapters 6, 7 and 9, as a choice of advantage scaling and
/// aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// GRPO as published: advantages ÷ the group's std, `response-mean`.
    Grpo,
    /// Dr. GRPO: no ÷std, a constant normaliser.
    DrGrpo,
}

impl std::str::FromStr for Algo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Algo> {
        match s {
            "grpo" => Ok(Algo::Grpo),
            "dr-grpo" => Ok(Algo::DrGrpo),
            _ => Err(Error::invalid(
                "--algo",
                format!("{s:?}; choose grpo or dr-grpo"),
            )),
        }
    }
}
