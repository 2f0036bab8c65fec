//! Whole runs, shared by the command line, the tour and the book's experiments: fine-tune a
//! fresh model on a task, evaluate it on held-out prompts, save it.

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::io::write_atomic;
use crate::lm::checkpoint;
use crate::lm::config::LmConfig;
use crate::lm::eval::{evaluate, heldout, EvalReport};
use crate::lm::model::Gpt;
use crate::lm::sft::{self, SftReport};
use crate::tour::progress_bar;

/// The results of [`sft_and_eval`].
pub struct SftRun {
    pub model: Gpt,
    pub sft: SftReport,
    pub eval: EvalReport,
}

/// The numbers of an SFT run, for metrics files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftSummary {
    pub task: String,
    pub difficulty: usize,
    pub parameters: usize,
    pub steps: usize,
    pub seconds: f64,
    pub train_tokens_per_second: f64,
    pub first_loss: f64,
    pub final_loss: f64,
    /// Fraction of the training traces that are fully correct.
    pub data_clean_rate: f64,
    pub greedy_accuracy: f64,
    pub format_rate: f64,
    pub pass_at_k: f64,
    pub k: usize,
    pub sampled_accuracy: f64,
    #[serde(default)]
    pub sampled_format_rate: f64,
    pub mean_len_correct: Option<f64>,
    pub mean_len_incorrect: Option<f64>,
    pub sample_tokens_per_second: f64,
}

impl SftRun {
    /// The headline numbers.
    pub fn summary(&self, config: &LmConfig) -> SftSummary {
        let (first, last) = self.sft.first_last_loss(10);
        SftSummary {
            task: config.task.name.clone(),
            difficulty: config.task.difficulty,
            parameters: self.model.parameters(),
            steps: self.sft.steps.len(),
            seconds: self.sft.seconds,
            train_tokens_per_second: self.sft.tokens_per_second,
            first_loss: first,
            final_loss: last,
            data_clean_rate: config.data.clean_rate(),
            greedy_accuracy: self.eval.greedy_accuracy,
            format_rate: self.eval.format_rate,
            pass_at_k: self.eval.pass_at_k,
            k: self.eval.k,
            sampled_accuracy: self.eval.sampled_accuracy,
            sampled_format_rate: self.eval.sampled_format_rate,
            mean_len_correct: self.eval.mean_len_correct,
            mean_len_incorrect: self.eval.mean_len_incorrect,
            sample_tokens_per_second: self.eval.tokens_per_second,
        }
    }
}

// ANCHOR: sft_and_eval
/// Fine-tunes a fresh model (weights from `seed`) as `config` says, with a progress bar if
/// `progress`, then evaluates it on the held-out problems. With `out`, writes the checkpoint,
/// the config, one JSON line per step (`sft.jsonl`) and the evaluation (`eval.json`) there.
pub fn sft_and_eval(
    config: &LmConfig,
    seed: u64,
    device: &Device,
    progress: bool,
    out: Option<&Path>,
) -> Result<SftRun> {
    config.validate()?;
    let task = config.task()?;
    let model = Gpt::new(&config.model, seed, device)?;
    let bar = progress_bar(config.sft.steps as u64, "8 · SFT", progress);
    let report = sft::train(
        &model,
        task.as_ref(),
        config.task.difficulty,
        &config.data,
        &config.sft,
        seed,
        |s| {
            bar.inc(1);
            if s.step % 5 == 0 {
                bar.set_message(format!("loss {:.3}", s.loss));
            }
        },
    )?;
    bar.finish_with_message(format!(
        "loss {:.3}",
        report.steps.last().map_or(f64::NAN, |s| s.loss)
    ));
    let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
    let eval = evaluate(&model, task.as_ref(), &problems, &config.eval, seed)?;
    let run = SftRun {
        model,
        sft: report,
        eval,
    };
    if let Some(dir) = out {
        checkpoint::save(&run.model, dir)?;
        write_atomic(&dir.join("config.toml"), config.to_toml()?.as_bytes())?;
        let lines: String = run
            .sft
            .steps
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default() + "\n")
            .collect();
        write_atomic(&dir.join("sft.jsonl"), lines.as_bytes())?;
        let eval = serde_json::json!({ "summary": run.summary(config), "greedy": run.eval.greedy });
        let text = serde_json::to_string_pretty(&eval).unwrap_or_default();
        write_atomic(&dir.join("eval.json"), text.as_bytes())?;
    }
    Ok(run)
}
// ANCHOR_END: sft_and_eval
