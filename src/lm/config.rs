//! The configuration of a language-model run, read from a TOML file. Every section and key is
//! optional (defaults are the CPU run of the book); an unknown key or an out-of-range value is
//! an error naming it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::read_text;
use crate::lm::data::DataConfig;
use crate::lm::eval::EvalConfig;
use crate::lm::grpo::GrpoLmConfig;
use crate::lm::model::GptConfig;
use crate::lm::reward::RewardWeights;
use crate::lm::sft::SftConfig;
use crate::lm::task::{task_by_name, Task};
use crate::lm::tokenizer::Tokenizer;

/// Which task, how hard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// `addition` (the CPU default), `arithmetic` (addition and subtraction) or `countdown`.
    pub name: String,
    /// Arithmetic: the most digits per number; Countdown: how many numbers.
    pub difficulty: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            name: "addition".into(),
            difficulty: 2,
        }
    }
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
        LmConfig::from_toml(&read_text(path)?, &path.display().to_string())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::invalid("config", e.to_string()))
    }

    /// The task named in the config.
    pub fn task(&self) -> Result<Box<dyn Task>> {
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
        self.data.validate()?;
        self.sft.validate()?;
        self.eval.validate()?;
        self.reward.validate()?;
        self.grpo.validate()
    }

    /// The config of the GPU run: Countdown with four numbers on a model of about 25 M
    /// parameters.
    pub fn gpu_default() -> LmConfig {
        LmConfig {
            task: TaskConfig {
                name: "countdown".into(),
                difficulty: 4,
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
