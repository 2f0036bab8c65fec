//! The settings every language-model command shares: the config, the task, the seed and the
//! device.

use super::*;

/// What every language-model command shares.
#[derive(Args)]
pub(crate) struct LmRunArgs {
    /// A TOML config file (see configs/); unset keys keep the CPU defaults.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The task: addition, arithmetic or countdown (overrides the config's task.name;
    /// countdown without --config takes the GPU config, configs/countdown-gpu.toml).
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// Seed of the weights, the data and the samples [default: 0].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// cpu, or cuda (needs a build with --features cuda and an NVIDIA GPU).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

impl LmRunArgs {
    pub(crate) fn config(&self) -> Result<zero_to_r1::lm::config::LmConfig> {
        self.config_or(zero_to_r1::lm::config::LmConfig::default())
    }

    /// The config, with `default` where no --config is given (and --task names the default's
    /// task, if given at all; another task starts from the CPU default).
    pub(crate) fn config_or(
        &self,
        default: zero_to_r1::lm::config::LmConfig,
    ) -> Result<zero_to_r1::lm::config::LmConfig> {
        use zero_to_r1::lm::config::LmConfig;
        let mut c = match &self.config {
            Some(path) => LmConfig::from_file(path)?,
            None if self.task.as_ref().is_none_or(|t| *t == default.task.name) => default,
            None => LmConfig::default(),
        };
        if let Some(t) = &self.task {
            zero_to_r1::lm::task::task_by_name(t)?;
            if *t != c.task.name {
                c.task.name = t.clone();
                if t == "countdown" && self.config.is_none() {
                    eprintln!(
                        "note: --task countdown without --config takes the GPU config \
                         (configs/countdown-gpu.toml): the CPU default model is too small for it"
                    );
                    c = LmConfig::gpu_default();
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    pub(crate) fn checkpoint(&self, given: &Option<PathBuf>, task: &str) -> PathBuf {
        given
            .clone()
            .unwrap_or_else(|| zero_to_r1::lm::checkpoint::default_dir(task))
    }
}
