//! Chapter 9 — R1-Zero on a laptop: GRPO and its variants on the fine-tuned language model.
//!
//! One SFT model, then one GRPO run per variant from copies of it (the same prompts and the
//! same seeds, so the variants differ only in the algorithm). The runs take minutes each, so
//! the book does not repeat them on every build: `zero-to-r1 lm measure-r1` runs them and writes
//! `book/src/generated/ch09/r1_zero.json`; the figures and the tables are drawn from that
//! committed record (cheaply, in [`super::book_assets`]).

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::plot::{learning_curves, Curves, Svg};
use zero_to_r1::error::Result;
use zero_to_r1::lm::config::{Algo, LmConfig};
use zero_to_r1::lm::eval::{evaluate, heldout};
use zero_to_r1::lm::grpo::{self, GrpoLmConfig, GrpoStep, GrpoTrainer};
use zero_to_r1::lm::run::{sft_and_eval, EvalSummary};
use zero_to_r1::progress::Silent;

/// A variant of the ablation: its name, and what it changes in the `[grpo]` section.
pub type Variant = (&'static str, fn(&mut GrpoLmConfig));

// ANCHOR: variants
/// The variants of the ablation.
pub fn variants() -> Vec<Variant> {
    vec![
        ("GRPO", |g| {
            g.set_algo(Algo::Grpo);
        }),
        ("Dr. GRPO", |g| {
            g.set_algo(Algo::DrGrpo);
        }),
        ("GRPO without ÷std", |g| {
            g.set_algo(Algo::Grpo);
            g.scale_by_std = false;
        }),
        ("GRPO with β = 0", |g| {
            g.set_algo(Algo::Grpo);
            g.beta = 0.0;
        }),
        ("GRPO with μ = 2", |g| {
            g.set_algo(Algo::Grpo);
            g.epochs = 2;
        }),
    ]
}
// ANCHOR_END: variants

/// One variant's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub name: String,
    pub grpo: GrpoLmConfig,
    /// Every step's metrics.
    pub steps: Vec<GrpoStep>,
    /// Held-out evaluation after the run.
    pub after: EvalSummary,
    pub seconds: f64,
    /// A few greedy held-out responses after the run: (prompt, response, correct).
    pub examples: Vec<(String, String, bool)>,
}

/// What the runs measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ch09Record {
    pub command: String,
    pub machine: String,
    pub config: LmConfig,
    pub seed: u64,
    pub parameters: usize,
    pub sft_seconds: f64,
    /// Held-out evaluation of the SFT model every variant starts from.
    pub before: EvalSummary,
    pub variants: Vec<VariantRecord>,
}

// ANCHOR: measure
/// Fine-tunes the model of `config`, then runs every variant of [`variants`] (or those whose
/// names are in `only`) from a copy of it, each into `dir/<index>`. `progress(variant, step)`
/// is called after every GRPO step.
pub fn run(
    config: &LmConfig,
    seed: u64,
    dir: &Path,
    only: &[String],
    mut progress: impl FnMut(&str, &GrpoStep),
) -> Result<Ch09Record> {
    config.validate()?;
    let device = Device::Cpu;
    let task = config.task()?;
    let sft = sft_and_eval(config, seed, &device, &mut Silent, Some(&dir.join("sft")))?;
    let problems = heldout(task.as_ref(), config.eval.problems, config.task.difficulty);
    let mut record = Ch09Record {
        command: "zero-to-r1 lm measure-r1".into(),
        machine: String::new(),
        config: config.clone(),
        seed,
        parameters: sft.model.parameters(),
        sft_seconds: sft.sft.seconds,
        before: EvalSummary::from(&sft.eval),
        variants: Vec::new(),
    };
    for (i, (name, change)) in variants().into_iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut c = config.clone();
        change(&mut c.grpo);
        c.validate()?;
        let mut trainer = GrpoTrainer::new(sft.model.copy()?, sft.model.copy()?, &c, seed)?;
        let out = dir.join(format!("variant-{i}"));
        let mut steps = Vec::new();
        grpo::train(&mut trainer, &out, c.grpo.steps, |m: &GrpoStep| {
            progress(name, m);
            steps.push(m.clone());
        })?;
        let eval = evaluate(&trainer.policy, task.as_ref(), &problems, &c.eval, seed)?;
        record.variants.push(VariantRecord {
            name: name.to_string(),
            grpo: c.grpo.clone(),
            steps,
            after: EvalSummary::from(&eval),
            seconds: trainer.seconds,
            examples: eval
                .greedy
                .iter()
                .take(6)
                .map(|s| (s.prompt.clone(), s.response.clone(), s.accuracy > 0.0))
                .collect(),
        });
    }
    Ok(record)
}
// ANCHOR_END: measure

/// The committed record of the book's runs, read from the repository's
/// `book/src/generated/ch09/r1_zero.json`.
pub fn recorded() -> Result<Ch09Record> {
    super::read_record("ch09/r1_zero.json", "lm measure-r1")
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn len(x: Option<f64>) -> String {
    x.map_or("–".to_string(), |v| format!("{v:.1}"))
}

/// Mean of `f` over the last `n` steps of a run.
fn tail_mean(steps: &[GrpoStep], n: usize, f: impl Fn(&GrpoStep) -> f64) -> f64 {
    let tail = &steps[steps.len().saturating_sub(n)..];
    tail.iter().map(f).sum::<f64>() / tail.len().max(1) as f64
}

/// The GRPO run (the first variant) before and after, as a markdown table.
pub fn run_table(r: &Ch09Record) -> String {
    let Some(v) = by_name(r, "GRPO") else {
        return String::from("(no GRPO run in the record)\n");
    };
    let (b, a) = (&r.before, &v.after);
    let row =
        |what: &str, before: String, after: String| format!("| {what} | {before} | {after} |\n");
    let points = |x: f64, y: f64| format!(" ({:+.1} points)", 100.0 * (y - x));
    let rows = [
        row(
            "held-out greedy accuracy",
            pct(b.greedy_accuracy),
            pct(a.greedy_accuracy) + &points(b.greedy_accuracy, a.greedy_accuracy),
        ),
        row(
            "held-out sampled accuracy (T = 1)",
            pct(b.sampled_accuracy),
            pct(a.sampled_accuracy) + &points(b.sampled_accuracy, a.sampled_accuracy),
        ),
        row(
            &format!("held-out pass@{}", r.config.eval.k),
            pct(b.pass_at_k),
            pct(a.pass_at_k),
        ),
        row(
            "held-out format rate (greedy)",
            pct(b.format_rate),
            pct(a.format_rate),
        ),
        row(
            "mean length, correct / incorrect (tokens)",
            format!(
                "{} / {}",
                len(b.mean_len_correct),
                len(b.mean_len_incorrect)
            ),
            format!(
                "{} / {}",
                len(a.mean_len_correct),
                len(a.mean_len_incorrect)
            ),
        ),
    ]
    .concat();
    format!(
        "| | SFT model | after GRPO |\n|---|---|---|\n{rows}\n\
         {params} parameters; SFT {sft} steps, then GRPO {steps} steps of {b} prompts × {g} \
         responses; {n} held-out problems. Measured with `{cmd}` on {machine}.\n",
        params = r.parameters,
        sft = r.config.sft.steps,
        steps = v.grpo.steps,
        b = v.grpo.prompts,
        g = v.grpo.group_size,
        n = r.config.eval.problems,
        cmd = r.command,
        machine = r.machine,
    )
}

/// The ablation as a markdown table.
pub fn table(r: &Ch09Record) -> String {
    let mut rows = format!(
        "| SFT model (the start) | {} | {} | {} | {} | – |\n",
        pct(r.before.greedy_accuracy),
        pct(r.before.sampled_accuracy),
        pct(r.before.pass_at_k),
        len(r.before.mean_len_incorrect),
    );
    for v in &r.variants {
        rows.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} |\n",
            v.name,
            pct(v.after.greedy_accuracy),
            pct(v.after.sampled_accuracy),
            pct(v.after.pass_at_k),
            len(v.after.mean_len_incorrect),
            tail_mean(&v.steps, 20, |s| s.kl_ref),
        ));
    }
    format!(
        "| run | greedy accuracy | sampled accuracy (T = 1) | pass@{k} | mean length of incorrect answers (tokens) | KL to the reference, last 20 steps |\n\
         |---|---|---|---|---|---|\n{rows}\n\
         Held-out problems: {n}. {steps} GRPO steps of {b} prompts × {g} responses from the same SFT \
         model ({params} parameters, {sft} SFT steps). Measured with `{cmd}` on {machine}.\n",
        k = r.config.eval.k,
        n = r.config.eval.problems,
        steps = r.config.grpo.steps,
        b = r.config.grpo.prompts,
        g = r.config.grpo.group_size,
        params = r.parameters,
        sft = r.config.sft.steps,
        cmd = r.command,
        machine = r.machine,
    )
}

/// Held-out greedy accuracy where it was measured, with the SFT model's at step 0.
fn heldout_curve(r: &Ch09Record, v: &VariantRecord) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0];
    let mut y = vec![100.0 * r.before.greedy_accuracy];
    for s in &v.steps {
        if let Some(h) = &s.heldout {
            x.push((s.step + 1) as f64);
            y.push(100.0 * h.accuracy);
        }
    }
    (x, y)
}

/// A trailing moving average over (up to) `w` values: the metrics of one step are noisy.
pub fn smooth(values: &[f64], w: usize) -> Vec<f64> {
    let w = w.max(1);
    (0..values.len())
        .map(|i| {
            let window = &values[(i + 1).saturating_sub(w)..=i];
            window.iter().sum::<f64>() / window.len() as f64
        })
        .collect()
}

fn by_name<'a>(r: &'a Ch09Record, name: &str) -> Option<&'a VariantRecord> {
    r.variants.iter().find(|v| v.name == name)
}

/// Accuracy and format rate of the sampled responses over the steps of a run, and the
/// fraction of groups that teach nothing, as a moving average over `w` steps.
pub fn rollout_figure(steps: &[GrpoStep], w: usize) -> Result<Svg> {
    let x: Vec<f64> = steps.iter().map(|s| (s.step + 1) as f64).collect();
    let series = |label: &str, f: fn(&GrpoStep) -> f64| Curves {
        label: label.into(),
        runs: vec![smooth(
            &steps.iter().map(|s| 100.0 * f(s)).collect::<Vec<_>>(),
            w,
        )],
    };
    learning_curves(
        &x,
        &[
            series(
                "accuracy of the sampled responses (training prompts)",
                |s| s.accuracy,
            ),
            series("format rate of the sampled responses", |s| s.format_rate),
            series("groups with all rewards equal", |s| s.frac_reward_zero_std),
        ],
        "GRPO on the fine-tuned model: the rollouts",
        "GRPO step",
        &format!("% (moving average over {w} steps)"),
        None,
    )
}

/// The figures of a record.
pub fn figures(r: &Ch09Record) -> Result<Vec<(&'static str, Svg)>> {
    let mut out = Vec::new();
    let w = 10;
    let steps_x =
        |v: &VariantRecord| -> Vec<f64> { v.steps.iter().map(|s| (s.step + 1) as f64).collect() };
    if let Some(v) = by_name(r, "GRPO") {
        out.push(("reward", rollout_figure(&v.steps, w)?));
    }
    let mut held = Vec::new();
    for v in &r.variants {
        let (x, y) = heldout_curve(r, v);
        held.push((v.name.clone(), x, y));
    }
    if let Some((_, x, _)) = held.first() {
        let curves: Vec<Curves> = held
            .iter()
            .filter(|(_, hx, _)| hx == x)
            .map(|(name, _, y)| Curves {
                label: name.clone(),
                runs: vec![y.clone()],
            })
            .collect();
        out.push((
            "heldout",
            learning_curves(
                x,
                &curves,
                "Held-out greedy accuracy during GRPO",
                "GRPO step",
                "% of held-out problems",
                None,
            )?,
        ));
    }
    let mut lengths = Vec::new();
    let mut x_len = Vec::new();
    for name in ["GRPO", "Dr. GRPO"] {
        if let Some(v) = by_name(r, name) {
            x_len = steps_x(v);
            for (what, f) in [
                (
                    "correct",
                    (|s: &GrpoStep| s.len_correct) as fn(&GrpoStep) -> Option<f64>,
                ),
                ("incorrect", |s: &GrpoStep| s.len_incorrect),
            ] {
                let mut last = f64::NAN;
                let ys: Vec<f64> = v
                    .steps
                    .iter()
                    .map(|s| {
                        if let Some(y) = f(s) {
                            last = y;
                        }
                        last
                    })
                    .collect();
                let first = ys.iter().copied().find(|y| y.is_finite()).unwrap_or(0.0);
                let ys: Vec<f64> = ys
                    .iter()
                    .map(|&y| if y.is_finite() { y } else { first })
                    .collect();
                lengths.push(Curves {
                    label: format!("{name}: {what} responses"),
                    runs: vec![smooth(&ys, w)],
                });
            }
        }
    }
    if !lengths.is_empty() {
        out.push((
            "length",
            learning_curves(
                &x_len,
                &lengths,
                "Length of correct and incorrect responses during training",
                "GRPO step",
                &format!("tokens (moving average over {w} steps)"),
                Some((
                    r.config.grpo.max_new_tokens as f64,
                    "the generation budget (max_new_tokens)",
                )),
            )?,
        ));
    }
    let kl: Vec<Curves> = r
        .variants
        .iter()
        .map(|v| Curves {
            label: v.name.clone(),
            runs: vec![smooth(
                &v.steps.iter().map(|s| s.kl_ref).collect::<Vec<_>>(),
                w,
            )],
        })
        .collect();
    if let Some(v) = r.variants.first() {
        out.push((
            "kl",
            learning_curves(
                &steps_x(v),
                &kl,
                "KL to the reference (the SFT model), per token",
                "GRPO step",
                &format!("k3 estimate, nats (moving average over {w} steps)"),
                None,
            )?,
        ));
    }
    Ok(out)
}
