//! Whole runs, shared by the command line, the tour and the book's experiments: fine-tune a
//! fresh model on a task, evaluate it on held-out prompts, save it.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_user_text, write_atomic};
use crate::lm::checkpoint;
use crate::lm::config::LmConfig;
use crate::lm::eval::{evaluate, heldout, EvalReport};
use crate::lm::grpo::{self, to_json, GrpoStep, GrpoTrainer};
use crate::lm::model::Gpt;
use crate::lm::sft::{self, SftReport};
use crate::progress::Progress;
use crate::rollout::derive_seed;

/// The results of [`sft_and_eval`].
pub struct SftRun {
    pub model: Gpt,
    /// The pretraining of the base model, if the config asks for one.
    pub pretrain: Option<SftReport>,
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
            data_clean_rate: config.clean_rate().unwrap_or(f64::NAN),
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

/// Mixed into the seed for the pretraining documents: a stream apart from the cold start's.
const PRETRAIN: u64 = 0x0BA5_E000;

/// One stage of next-token training of `model` on the documents `data` describes, reported
/// to `progress` as `label`.
#[allow(clippy::too_many_arguments)]
fn stage(
    model: &Gpt,
    task: &dyn crate::lm::task::Task,
    config: &LmConfig,
    data: &crate::lm::data::DataConfig,
    sft_config: &sft::SftConfig,
    seed: u64,
    label: &str,
    progress: &mut dyn Progress,
) -> Result<SftReport> {
    progress.start(label, sft_config.steps as u64);
    let report = sft::train(
        model,
        task,
        config.task.difficulty,
        data,
        sft_config,
        seed,
        |s| {
            progress.advance(1);
            if s.step % 5 == 0 {
                progress.message(&format!("loss {:.3}", s.loss));
            }
        },
    )?;
    progress.message(&format!(
        "loss {:.3}",
        report.steps.last().map_or(f64::NAN, |s| s.loss)
    ));
    progress.finish();
    Ok(report)
}

// ANCHOR: sft_and_eval
/// Fine-tunes a fresh model (weights from `seed`) as `config` says, reporting each step to
/// `progress`, then evaluates it on the held-out problems. With `out`, writes the checkpoint,
/// the config, one JSON line per step (`sft.jsonl`) and the evaluation (`eval.json`) there.
pub fn sft_and_eval(
    config: &LmConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn Progress,
    out: Option<&Path>,
) -> Result<SftRun> {
    train_and_eval(config, seed, device, progress, out, None)
}

/// [`sft_and_eval`], starting from `base` if given: the base model is then not pretrained
/// again (the config's `[pretrain]` is skipped), and only `[sft]` (the cold start) trains it.
pub fn train_and_eval(
    config: &LmConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn Progress,
    out: Option<&Path>,
    base: Option<Gpt>,
) -> Result<SftRun> {
    config.validate()?;
    config.check_memory(device)?;
    if let Some(dir) = out {
        // The config goes first: a folder that cannot be written is found before any work.
        write_atomic(&dir.join("config.toml"), config.to_toml()?.as_bytes())?;
    }
    let task = config.task()?;
    let pretrained = base.is_some();
    let model = match base {
        Some(m) => m,
        None => Gpt::new(&config.model, seed, device)?,
    };
    let mut pretrain = None;
    if let Some(p) = config.pretrain.as_ref().filter(|_| !pretrained) {
        let r = stage(
            &model,
            task.as_ref(),
            config,
            &p.data,
            &p.sft,
            derive_seed(seed, PRETRAIN),
            "9 · pretraining",
            progress,
        )?;
        pretrain = Some(r);
    }
    let report = if config.sft.steps > 0 {
        let label = if config.pretrain.is_some() {
            "9 · cold start"
        } else {
            "8 · SFT"
        };
        stage(
            &model,
            task.as_ref(),
            config,
            &config.data,
            &config.sft,
            seed,
            label,
            progress,
        )?
    } else {
        SftReport::default()
    };
    let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
    let eval = evaluate(&model, task.as_ref(), &problems, &config.eval, seed)?;
    let run = SftRun {
        model,
        pretrain,
        sft: report,
        eval,
    };
    if let Some(dir) = out {
        checkpoint::save(&run.model, dir)?;
        let path = dir.join("sft.jsonl");
        let mut lines = String::new();
        for s in &run.sft.steps {
            lines += &serde_json::to_string(s).map_err(|e| {
                Error::invalid(format!("{}", path.display()), format!("cannot write: {e}"))
            })?;
            lines.push('\n');
        }
        write_atomic(&path, lines.as_bytes())?;
        let eval = serde_json::json!({ "summary": run.summary(config), "greedy": run.eval.greedy });
        let path = dir.join("eval.json");
        write_atomic(&path, to_json(&eval, &path)?.as_bytes())?;
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
    /// The SFT checkpoint the run started from (`None`: fine-tuned by the run itself).
    #[serde(default)]
    pub sft_from: Option<PathBuf>,
    /// Steps of fine-tuning done by the run (0 when it started from a checkpoint).
    pub sft_steps: usize,
    pub grpo_steps: usize,
    pub sft_seconds: f64,
    /// Seconds of pretraining the base model (0 without `[pretrain]`).
    #[serde(default)]
    pub pretrain_seconds: f64,
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
    /// Majority vote over the k samples, and the fraction of greedy and sampled responses
    /// that check their result (absent from records written before they were measured).
    #[serde(default)]
    pub majority_at_k: f64,
    #[serde(default)]
    pub check_rate: f64,
    #[serde(default)]
    pub sampled_check_rate: f64,
    #[serde(default)]
    pub sampled_format_rate: f64,
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
            majority_at_k: e.majority_at_k,
            check_rate: e.check_rate,
            sampled_check_rate: e.sampled_check_rate,
            sampled_format_rate: e.sampled_format_rate,
            pass_at_k: e.pass_at_k,
            sampled_accuracy: e.sampled_accuracy,
            mean_len_correct: e.mean_len_correct,
            mean_len_incorrect: e.mean_len_incorrect,
        }
    }
}

/// Where the SFT model of a new R1-Zero run comes from.
pub enum Start<'a> {
    /// Fine-tune a fresh model first (into `OUT/sft`).
    Sft,
    /// Load this SFT checkpoint folder.
    Checkpoint(&'a Path),
    /// Load this base model, and fine-tune it as `[sft]` says (the cold start) into
    /// `out/sft`; `[pretrain]` is not repeated.
    Base(&'a Path),
}

/// The file of an R1-Zero run folder that holds its settings.
pub const RUN: &str = "run.json";

/// The settings of an R1-Zero run, written into its folder before any work (`run.json`), and
/// what it learned about its start once the SFT model is ready. `--resume` continues from
/// these, never from the command line, and `summary.json` is made from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct R1ZeroRun {
    pub seed: u64,
    pub config: LmConfig,
    /// The SFT checkpoint the run started from; `None`: fine-tuned into `OUT/sft`.
    pub sft_from: Option<PathBuf>,
    /// The base model the run's fine-tuning started from, instead of pretraining its own.
    #[serde(default)]
    pub base_from: Option<PathBuf>,
    /// Seconds of fine-tuning, once done (0 for a loaded checkpoint).
    pub sft_seconds: Option<f64>,
    /// Seconds of pretraining the base model, once done (configs with `[pretrain]`).
    #[serde(default)]
    pub pretrain_seconds: Option<f64>,
    /// The held-out evaluation of the SFT model, once done.
    pub before: Option<EvalSummary>,
}

impl R1ZeroRun {
    /// Writes `OUT/run.json`.
    pub fn save(&self, out: &Path) -> Result<()> {
        let path = out.join(RUN);
        write_atomic(&path, to_json(self, &path)?.as_bytes())
    }

    /// Reads `OUT/run.json`.
    pub fn load(out: &Path) -> Result<R1ZeroRun> {
        let path = out.join(RUN);
        if !path.exists() {
            return Err(Error::invalid(
                format!("--resume {}", out.display()),
                format!("there is no run to continue there (no {RUN}); start it without --resume"),
            ));
        }
        let run: R1ZeroRun = serde_json::from_str(&read_user_text(&path)?)
            .map_err(|e| Error::invalid(format!("{}", path.display()), e.to_string()))?;
        run.config.validate()?;
        Ok(run)
    }
}

/// Files that show a folder holds a run of this crate (an SFT checkpoint or an R1-Zero run).
const RUN_FILES: [&str; 9] = [
    RUN,
    "config.toml",
    "summary.json",
    "sft",
    "grpo",
    checkpoint::WEIGHTS,
    checkpoint::SHAPE,
    "sft.jsonl",
    "eval.json",
];

/// Makes `dir` ready for a new run: a missing or empty folder is created; a folder that
/// holds an earlier run is an error unless `overwrite`, and then its run's files are
/// removed; a folder with anything else in it is never emptied. Then checks that the folder
/// can be written, before any work is done.
pub fn claim_folder(dir: &Path, overwrite: bool) -> Result<()> {
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| !RUN_FILES.contains(&n.as_str()) && !crate::io::is_temporary(n))
        .collect();
    if !names.is_empty() {
        if !foreign.is_empty() {
            return Err(Error::invalid(
                format!("output folder {}", dir.display()),
                format!(
                    "it holds files that are not a run's ({}); choose another folder",
                    foreign
                        .iter()
                        .take(3)
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !overwrite {
            return Err(Error::invalid(
                format!("output folder {}", dir.display()),
                "it holds an earlier run; continue it with --resume, choose another --out, \
                 or replace it with --overwrite",
            ));
        }
        for name in &names {
            crate::io::remove_path(&dir.join(name))?;
        }
    }
    crate::io::check_writable(&dir.join(RUN))
}

/// An observer of a GRPO run of `steps` steps, `done` of them done already, that reports each
/// step's headline numbers to `progress` as the stage `label`.
pub fn grpo_progress(
    steps: usize,
    done: usize,
    label: &str,
    mut progress: impl Progress,
) -> impl FnMut(&GrpoStep) {
    progress.start(label, steps as u64);
    progress.advance(done as u64);
    let mut heldout = String::new();
    move |m: &GrpoStep| {
        progress.advance(1);
        if let Some(h) = &m.heldout {
            heldout = format!(" · held-out {:.0}%", 100.0 * h.accuracy);
        }
        progress.message(&format!(
            "reward {:.2} · acc {:.0}% · KL(ref) {:.3} · len {:.0}{}",
            m.reward,
            100.0 * m.accuracy,
            m.kl_ref,
            m.mean_len,
            heldout
        ));
        if m.step + 1 == steps {
            progress.finish();
        }
    }
}

// ANCHOR: r1_zero
/// A new R1-Zero-style run into the folder `out` (which [`claim_folder`] should have made
/// ready): its settings first (`out/run.json`), then the SFT model (fine-tuned into
/// `out/sft`, or loaded), then GRPO as `config.grpo` says into `out/grpo` (metrics,
/// checkpoints), then the held-out evaluation of both models in `out/summary.json`.
pub fn r1_zero(
    config: &LmConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn Progress,
    out: &Path,
    start: Start,
) -> Result<(R1ZeroSummary, Gpt)> {
    config.validate()?;
    let run = R1ZeroRun {
        seed,
        config: config.clone(),
        sft_from: match start {
            Start::Checkpoint(dir) => Some(dir.to_path_buf()),
            _ => None,
        },
        base_from: match start {
            Start::Base(dir) => Some(dir.to_path_buf()),
            _ => None,
        },
        sft_seconds: None,
        pretrain_seconds: None,
        before: None,
    };
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    run.save(out)?;
    continue_r1_zero(run, device, progress, out)
}

/// Continues the R1-Zero run in `out` wherever it stopped, from its own settings: from the
/// latest GRPO checkpoint, or from the SFT model, or from the start if even that was not
/// finished. With `steps`, the run is extended (or shortened) to that many GRPO steps. The
/// result is the same as that of an uninterrupted run.
pub fn resume_r1_zero(
    out: &Path,
    device: &Device,
    progress: &mut dyn Progress,
    steps: Option<usize>,
) -> Result<(R1ZeroSummary, Gpt)> {
    let mut run = R1ZeroRun::load(out)?;
    if let Some(s) = steps {
        run.config.grpo.steps = s;
        run.config.grpo.warmup = run.config.grpo.warmup.min(s);
        run.config.validate()?;
        let saved = out.join("grpo").join(grpo::CONFIG);
        if saved.exists() {
            let mut c = LmConfig::from_file(&saved)?;
            c.grpo.steps = s;
            c.grpo.warmup = c.grpo.warmup.min(s);
            c.validate()?;
            write_atomic(&saved, c.to_toml()?.as_bytes())?;
        }
        run.save(out)?;
    }
    continue_r1_zero(run, device, progress, out)
}

fn continue_r1_zero(
    mut run: R1ZeroRun,
    device: &Device,
    progress: &mut dyn Progress,
    out: &Path,
) -> Result<(R1ZeroSummary, Gpt)> {
    let grpo_dir = out.join("grpo");
    let sft_dir = out.join("sft");
    let mut trainer = if grpo_dir.join(grpo::LATEST).exists() {
        GrpoTrainer::resume(&grpo_dir, device)?
    } else {
        let config = &run.config;
        let task = config.task()?;
        let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
        let policy = match (run.before.is_some(), run.sft_from.clone()) {
            (true, from) => checkpoint::load(from.as_deref().unwrap_or(&sft_dir), device)?,
            (false, None) => {
                let base = match &run.base_from {
                    Some(dir) => Some(checkpoint::load(dir, device)?),
                    None => None,
                };
                let r = train_and_eval(config, run.seed, device, progress, Some(&sft_dir), base)?;
                run.before = Some(EvalSummary::from(&r.eval));
                run.sft_seconds = Some(r.sft.seconds);
                run.pretrain_seconds = r.pretrain.as_ref().map(|p| p.seconds);
                r.model
            }
            (false, Some(from)) => {
                let policy = checkpoint::load(&from, device)?;
                let report = evaluate(&policy, task.as_ref(), &problems, &config.eval, run.seed)?;
                run.before = Some(EvalSummary::from(&report));
                run.sft_seconds = Some(0.0);
                policy
            }
        };
        run.save(out)?;
        let reference = policy.copy()?;
        GrpoTrainer::new(policy, reference, &run.config, run.seed)?
    };
    let config = trainer.config.clone();
    if trainer.step > config.grpo.steps {
        return Err(Error::invalid(
            "grpo.steps",
            format!(
                "{} is fewer than the {} steps this run has done already",
                config.grpo.steps, trainer.step
            ),
        ));
    }
    let before = run.before.ok_or_else(|| {
        Error::invalid(
            format!("{}", out.join(RUN).display()),
            "the run has GRPO checkpoints but no evaluation of its SFT model",
        )
    })?;
    let observer = grpo_progress(config.grpo.steps, trainer.step, "9 · GRPO", &mut *progress);
    grpo::train(&mut trainer, &grpo_dir, config.grpo.steps, observer)?;
    let task = config.task()?;
    let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
    let report = evaluate(
        &trainer.policy,
        task.as_ref(),
        &problems,
        &config.eval,
        run.seed,
    )?;
    let after = EvalSummary::from(&report);
    let summary = R1ZeroSummary {
        task: config.task.name.clone(),
        parameters: trainer.policy.parameters(),
        aggregation: config.grpo.aggregation.to_string(),
        scale_by_std: config.grpo.scale_by_std,
        sft_from: run.sft_from.clone(),
        sft_steps: match run.sft_from {
            None => config.sft.steps,
            Some(_) => 0,
        },
        grpo_steps: config.grpo.steps,
        sft_seconds: run.sft_seconds.unwrap_or(0.0),
        pretrain_seconds: run.pretrain_seconds.unwrap_or(0.0),
        grpo_seconds: trainer.seconds,
        before,
        after,
        lift_points: 100.0 * (after.greedy_accuracy - before.greedy_accuracy),
    };
    let path = out.join("summary.json");
    write_atomic(&path, to_json(&summary, &path)?.as_bytes())?;
    Ok((summary, trainer.policy))
}
// ANCHOR_END: r1_zero
