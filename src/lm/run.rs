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
use crate::lm::grpo::{self, GrpoStep, GrpoTrainer};
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

/// The numbers of an R1-Zero run (SFT, then GRPO), written to `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct R1ZeroSummary {
    pub task: String,
    pub parameters: usize,
    /// `grpo`, `dr-grpo`, or the config's own choices.
    pub aggregation: String,
    pub scale_by_std: bool,
    pub sft_steps: usize,
    pub grpo_steps: usize,
    pub sft_seconds: f64,
    pub grpo_seconds: f64,
    /// Held-out evaluation of the SFT model (before RL) and of the RL model (after).
    pub before: EvalSummary,
    pub after: EvalSummary,
    /// Greedy accuracy after minus before, in points.
    pub lift_points: f64,
}

/// The held-out numbers of one model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub greedy_accuracy: f64,
    pub format_rate: f64,
    pub pass_at_k: f64,
    pub sampled_accuracy: f64,
    pub mean_len_correct: Option<f64>,
    pub mean_len_incorrect: Option<f64>,
}

impl From<&EvalReport> for EvalSummary {
    fn from(e: &EvalReport) -> Self {
        EvalSummary {
            greedy_accuracy: e.greedy_accuracy,
            format_rate: e.format_rate,
            pass_at_k: e.pass_at_k,
            sampled_accuracy: e.sampled_accuracy,
            mean_len_correct: e.mean_len_correct,
            mean_len_incorrect: e.mean_len_incorrect,
        }
    }
}

/// Where the SFT model of an R1-Zero run comes from.
pub enum Start<'a> {
    /// Fine-tune a fresh model first (into `OUT/sft`).
    Sft,
    /// Load this SFT checkpoint folder.
    Checkpoint(&'a Path),
    /// Continue the GRPO run saved in `OUT/grpo`.
    Resume,
}

/// A progress bar for a GRPO run, showing the headline numbers.
pub fn grpo_progress(steps: usize, done: usize, label: &str, show: bool) -> impl FnMut(&GrpoStep) {
    let bar = progress_bar(steps as u64, label, show);
    bar.set_position(done as u64);
    let mut heldout = String::new();
    move |m: &GrpoStep| {
        bar.inc(1);
        if let Some(h) = &m.heldout {
            heldout = format!(" · held-out {:.0}%", 100.0 * h.accuracy);
        }
        bar.set_message(format!(
            "reward {:.2} · acc {:.0}% · KL(ref) {:.3} · len {:.0}{}",
            m.reward,
            100.0 * m.accuracy,
            m.kl_ref,
            m.mean_len,
            heldout
        ));
        if m.step + 1 == steps {
            bar.finish();
        }
    }
}

// ANCHOR: r1_zero
/// The whole R1-Zero-style run into the folder `out`: the SFT model (fine-tuned into
/// `out/sft`, loaded, or taken from an interrupted run), then GRPO as `config.grpo` says into
/// `out/grpo` (metrics, checkpoints, `--resume`), then the held-out evaluation of both models
/// in `out/summary.json`.
pub fn r1_zero(
    config: &LmConfig,
    seed: u64,
    device: &Device,
    progress: bool,
    out: &Path,
    start: Start,
) -> Result<(R1ZeroSummary, Gpt)> {
    config.validate()?;
    let task = config.task()?;
    let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
    let sft_dir = out.join("sft");
    let grpo_dir = out.join("grpo");
    let (mut trainer, sft_seconds, before) = match start {
        Start::Sft => {
            let run = sft_and_eval(config, seed, device, progress, Some(&sft_dir))?;
            let before = EvalSummary::from(&run.eval);
            let reference = run.model.copy()?;
            let t = GrpoTrainer::new(run.model, reference, config, seed)?;
            (t, run.sft.seconds, before)
        }
        Start::Checkpoint(dir) => {
            let policy = checkpoint::load(dir, device)?;
            let report = evaluate(&policy, task.as_ref(), &problems, &config.eval, seed)?;
            let reference = policy.copy()?;
            let t = GrpoTrainer::new(policy, reference, config, seed)?;
            (t, 0.0, EvalSummary::from(&report))
        }
        Start::Resume => {
            let t = GrpoTrainer::resume(&grpo_dir, device)?;
            let report = evaluate(&t.reference, task.as_ref(), &problems, &t.config.eval, seed)?;
            (t, 0.0, EvalSummary::from(&report))
        }
    };
    let config = trainer.config.clone();
    let observer = grpo_progress(config.grpo.steps, trainer.step, "9 · GRPO", progress);
    grpo::train(&mut trainer, &grpo_dir, config.grpo.steps, observer)?;
    let report = evaluate(
        &trainer.policy,
        task.as_ref(),
        &problems,
        &config.eval,
        seed,
    )?;
    let after = EvalSummary::from(&report);
    let summary = R1ZeroSummary {
        task: config.task.name.clone(),
        parameters: trainer.policy.parameters(),
        aggregation: config.grpo.aggregation.clone(),
        scale_by_std: config.grpo.scale_by_std,
        sft_steps: config.sft.steps,
        grpo_steps: config.grpo.steps,
        sft_seconds,
        grpo_seconds: trainer.seconds,
        before,
        after,
        lift_points: 100.0 * (after.greedy_accuracy - before.greedy_accuracy),
    };
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write_atomic(&out.join("summary.json"), text.as_bytes())?;
    Ok((summary, trainer.policy))
}
// ANCHOR_END: r1_zero
