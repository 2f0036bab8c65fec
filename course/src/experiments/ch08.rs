//! Chapter 8 — supervised fine-tuning of the CPU default: the loss, and held-out accuracy and
//! format rate measured along the way, against the fraction of clean training traces.
//!
//! The run takes minutes, so the book does not repeat it on every build: `zero-to-r1 lm
//! measure` runs it and writes `book/src/generated/ch08/sft_run.json`, and the figures and the
//! table are drawn from that committed record (cheaply, in [`super::book_assets`]).

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::plot::{learning_curves, Curves, Svg};
use zero_to_r1::error::Result;
use zero_to_r1::lm::config::LmConfig;
use zero_to_r1::lm::eval::{evaluate, heldout, EvalConfig};
use zero_to_r1::lm::model::Gpt;
use zero_to_r1::lm::run::{SftRun, SftSummary};
use zero_to_r1::lm::sft;

/// How to measure.
#[derive(Clone, Debug)]
pub struct Ch08Config {
    pub lm: LmConfig,
    /// Evaluate on held-out problems every this many steps.
    pub eval_every: usize,
    /// Held-out problems at each intermediate evaluation (the final one uses `lm.eval`).
    pub eval_problems: usize,
    pub seed: u64,
}

impl Default for Ch08Config {
    fn default() -> Self {
        Ch08Config {
            lm: LmConfig::default(),
            eval_every: 50,
            eval_problems: 100,
            seed: 0,
        }
    }
}

/// Accuracy during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    pub step: usize,
    pub greedy_accuracy: f64,
    pub sampled_accuracy: f64,
    pub format_rate: f64,
    #[serde(default)]
    pub sampled_format_rate: f64,
}

/// What the run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ch08Record {
    pub command: String,
    pub machine: String,
    pub config: LmConfig,
    pub loss: Vec<f64>,
    pub evals: Vec<EvalPoint>,
    pub summary: SftSummary,
    /// A few greedy held-out responses: (prompt, response, correct).
    pub examples: Vec<(String, String, bool)>,
}

// ANCHOR: measure
/// Fine-tunes the model of `config.lm` from scratch, evaluating it on held-out problems every
/// `config.eval_every` steps; `progress` is called after every step with the step's loss.
pub fn run(
    config: &Ch08Config,
    mut progress: impl FnMut(usize, f64),
) -> Result<(Ch08Record, SftRun)> {
    let lm = &config.lm;
    lm.validate()?;
    let task = lm.task()?;
    let device = Device::Cpu;
    let model = Gpt::new(&lm.model, config.seed, &device)?;
    let problems = heldout(task.as_ref(), config.eval_problems, lm.task.difficulty);
    let quick = EvalConfig {
        problems: config.eval_problems,
        k: 1,
        ..lm.eval
    };
    let mut evals = Vec::new();
    let mut failure = None;
    let report = sft::train(
        &model,
        task.as_ref(),
        lm.task.difficulty,
        &lm.data,
        &lm.sft,
        config.seed,
        |s| {
            progress(s.step, s.loss);
            let n = s.step + 1;
            if config.eval_every > 0 && n % config.eval_every == 0 && n < lm.sft.steps {
                match evaluate(&model, task.as_ref(), &problems, &quick, config.seed) {
                    Ok(e) => evals.push(EvalPoint {
                        step: n,
                        greedy_accuracy: e.greedy_accuracy,
                        sampled_accuracy: e.sampled_accuracy,
                        format_rate: e.format_rate,
                        sampled_format_rate: e.sampled_format_rate,
                    }),
                    Err(e) => failure = Some(e),
                }
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    let final_set = heldout(task.as_ref(), lm.eval.problems, lm.task.difficulty);
    let eval = evaluate(&model, task.as_ref(), &final_set, &lm.eval, config.seed)?;
    evals.push(EvalPoint {
        step: lm.sft.steps,
        greedy_accuracy: eval.greedy_accuracy,
        sampled_accuracy: eval.sampled_accuracy,
        format_rate: eval.format_rate,
        sampled_format_rate: eval.sampled_format_rate,
    });
    let run = SftRun {
        pretrain: None,
        model,
        sft: report,
        eval,
    };
    let record = Ch08Record {
        command: "zero-to-r1 lm measure".into(),
        machine: String::new(),
        config: lm.clone(),
        loss: run.sft.steps.iter().map(|s| s.loss).collect(),
        evals,
        summary: run.summary(lm),
        examples: run
            .eval
            .greedy
            .iter()
            .take(6)
            .map(|s| (s.prompt.clone(), s.response.clone(), s.accuracy > 0.0))
            .collect(),
    };
    Ok((record, run))
}
// ANCHOR_END: measure

/// The committed record of the book's run, read from the repository's
/// `book/src/generated/ch08/sft_run.json`.
pub fn recorded() -> Result<Ch08Record> {
    super::read_record("ch08/sft_run.json", "lm measure")
}

/// The loss curve and the accuracy curves of a record.
pub fn figures(r: &Ch08Record) -> Result<Vec<(&'static str, Svg)>> {
    let steps: Vec<f64> = (1..=r.loss.len()).map(|s| s as f64).collect();
    let loss = learning_curves(
        &steps,
        &[Curves {
            label: "training loss (cross-entropy per response token)".into(),
            runs: vec![r.loss.clone()],
        }],
        "Supervised fine-tuning: the loss",
        "step",
        "loss",
        None,
    )?;
    let x: Vec<f64> = r.evals.iter().map(|e| e.step as f64).collect();
    let pct = |f: fn(&EvalPoint) -> f64| vec![r.evals.iter().map(|e| 100.0 * f(e)).collect()];
    let accuracy = learning_curves(
        &x,
        &[
            Curves {
                label: "greedy accuracy".into(),
                runs: pct(|e| e.greedy_accuracy),
            },
            Curves {
                label: "sampled accuracy (temperature 1)".into(),
                runs: pct(|e| e.sampled_accuracy),
            },
        ],
        "Held-out accuracy during supervised fine-tuning",
        "step",
        "% of held-out problems",
        Some((
            100.0 * r.config.data.accuracy_ceiling(),
            "the ceiling: correct answers in the training data",
        )),
    )?;
    let format = learning_curves(
        &x,
        &[
            Curves {
                label: "format rate, greedy".into(),
                runs: pct(|e| e.format_rate),
            },
            Curves {
                label: "format rate, sampled (temperature 1)".into(),
                runs: pct(|e| e.sampled_format_rate),
            },
        ],
        "Held-out format rate during supervised fine-tuning",
        "step",
        "% of held-out responses",
        Some((
            100.0 * r.config.data.format_ceiling(),
            "well-formed traces in the training data",
        )),
    )?;
    Ok(vec![
        ("sft_loss", loss),
        ("sft_accuracy", accuracy),
        ("sft_format", format),
    ])
}

/// The headline numbers as a markdown table.
pub fn table(r: &Ch08Record) -> String {
    let s = &r.summary;
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    let len = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.1}"));
    let rows = [
        ("parameters", format!("{}", s.parameters)),
        ("task", format!("{}, up to {} digits", s.task, s.difficulty)),
        ("fine-tuning steps", format!("{}", s.steps)),
        ("wall time of fine-tuning", format!("{:.0} s", s.seconds)),
        (
            "training throughput",
            format!("{:.0} tokens/s", s.train_tokens_per_second),
        ),
        (
            "loss, first → last 10 steps",
            format!("{:.3} → {:.3}", s.first_loss, s.final_loss),
        ),
        (
            "training traces with a correct answer (the ceiling)",
            pct(r.config.data.accuracy_ceiling()),
        ),
        (
            "training traces in the exact format",
            pct(r.config.data.format_ceiling()),
        ),
        ("held-out greedy accuracy", pct(s.greedy_accuracy)),
        ("held-out format rate (greedy)", pct(s.format_rate)),
        ("held-out sampled accuracy (T = 1)", pct(s.sampled_accuracy)),
        (
            "held-out sampled format rate (T = 1)",
            pct(s.sampled_format_rate),
        ),
        (&*format!("held-out pass@{}", s.k), pct(s.pass_at_k)),
        (
            "mean length, correct / incorrect",
            format!(
                "{} / {} tokens",
                len(s.mean_len_correct),
                len(s.mean_len_incorrect)
            ),
        ),
        (
            "sampling throughput",
            format!("{:.0} tokens/s", s.sample_tokens_per_second),
        ),
    ]
    .map(|(a, b)| format!("| {a} | {b} |\n"))
    .concat();
    format!(
        "| what | measured |\n|---|---|\n{rows}\nMeasured with `{}` on {}.\n",
        r.command, r.machine
    )
}
