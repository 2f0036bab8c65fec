//! The tour: every chapter's experiment in one run, with a progress bar per stage, writing
//! figures, a metrics file and an index page under `runs/<name>/`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gridworld::Env;
use serde_json::json;

use crate::experiments::ch01::{self, Ch01Config};
use crate::experiments::ch02::{self, Ch02Config};
use crate::experiments::ch03::{self, Ch03Config};
use crate::experiments::ch04::{self, Ch04Config};
use crate::experiments::ch05::{self, Ch05Config};
use crate::experiments::ch06::{self, Ch06Config};
use crate::experiments::ch07::{self, Ch07Config};
use crate::experiments::ch08::{self, Ch08Config};
use crate::experiments::ch09;
use crate::plot::Svg;
use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::write_atomic;

/// Where and how to run the tour.
#[derive(Clone, Debug)]
pub struct TourConfig {
    /// The run's folder is `<out>/<name>`.
    pub out: PathBuf,
    pub name: String,
    pub seed: u64,
    /// Show progress bars (off in tests and when output is not a terminal).
    pub progress: bool,
    /// Fine-tuning steps of the chapter 8 stage.
    pub sft_steps: usize,
    /// Held-out problems of the chapter 8 stage's final evaluation.
    pub lm_eval_problems: usize,
    /// Pretraining steps of the chapter 9 stage's base model.
    pub pretrain_steps: usize,
    /// GRPO steps of the chapter 9 stage.
    pub grpo_steps: usize,
}

impl Default for TourConfig {
    fn default() -> Self {
        TourConfig {
            out: PathBuf::from("runs"),
            name: "tour".into(),
            seed: 1,
            progress: true,
            sft_steps: TOUR_SFT_STEPS,
            lm_eval_problems: 100,
            pretrain_steps: TOUR_PRETRAIN_STEPS,
            grpo_steps: TOUR_GRPO_STEPS,
        }
    }
}

pub use crate::bars::progress_bar;
use crate::bars::Bars;

/// What one stage produced: figures (relative path, title) and metrics.
struct Stage {
    title: &'static str,
    figures: Vec<(String, String)>,
    metrics: serde_json::Value,
    summary: String,
    seconds: f64,
}

fn save_figures(
    dir: &Path,
    sub: &str,
    figures: &[(&'static str, Svg)],
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (name, svg) in figures {
        let rel = format!("{sub}/{name}.svg");
        svg.save(dir.join(&rel))?;
        out.push((rel, name.replace('_', " ")));
    }
    Ok(out)
}

fn chapter1(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch01Config {
        seed: config.seed,
        ..Ch01Config::default()
    };
    let bar = progress_bar(ch.episodes as u64, "1 · the cat's house", config.progress);
    let mut env = Env::seed();
    let out = ch01::run(&mut env, &ch, |i| {
        if i % 100 == 0 {
            bar.set_position(i as u64)
        }
    })?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch01", &out.figures)?;
    let r = &out.random;
    let summary = format!(
        "random cat: exact J = {:.2}, Monte Carlo {:.2} ± {:.2} over {} episodes (z = {:+.2}); \
         reaches the meat {:.1}% of the time",
        r.exact_j,
        r.mc_mean,
        r.mc_std_err,
        r.episodes,
        r.z,
        100.0 * r.mc_success
    );
    Ok(Stage {
        title: "Chapter 1 — the cat's house",
        figures,
        metrics: json!({
            "random_cat": r,
            "optimal_value_at_start": out.optimal.values[env.house().starts()[0]],
            "value_iteration_sweeps": out.optimal.sweeps,
        }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter2(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch02Config {
        seed: config.seed,
        ..Ch02Config::default()
    };
    let total = 4 * ch.seeds * ch.reinforce.updates;
    let bar = progress_bar(total as u64, "2 · REINFORCE", config.progress);
    let out = ch02::run(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch02", &out.figures)?;
    let summary = out
        .summaries
        .iter()
        .map(|s| {
            format!(
                "{}: final exact J {:.1} ± {:.1}",
                s.baseline, s.final_j_mean, s.final_j_std
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 2 — REINFORCE",
        figures,
        metrics: json!({ "learning_curves": out.summaries }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter3(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch03Config {
        seed: config.seed,
        ..Ch03Config::default()
    };
    let bar = progress_bar(3 * ch.batches as u64, "3 · variance", config.progress);
    let out = ch03::run(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch03", &out.figures)?;
    let summary = out
        .stats
        .iter()
        .map(|s| format!("{}: variance {:.0}", s.estimator, s.variance))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 3 — variance and baselines",
        figures,
        metrics: json!({ "estimators": out.stats, "std_scaling": out.scaling }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter4(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch04Config {
        seed: config.seed,
        ..Ch04Config::default()
    };
    let bar = progress_bar(ch.batches as u64, "4 · GAE(λ)", config.progress);
    let stats = ch04::lambda_sweep(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figs = vec![
        ("lambda_variance", ch04::lambda_figure(&stats, false)?),
        ("lambda_bias", ch04::lambda_figure(&stats, true)?),
    ];
    let figures = save_figures(dir, "ch04", &figs)?;
    let summary = stats
        .iter()
        .filter(|s| s.critic == "learned V")
        .map(|s| format!("λ = {}: MSE {:.1}", s.lambda, s.mse))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 4 — actor-critic and GAE",
        figures,
        metrics: json!({ "lambda_sweep": stats }),
        summary: format!("GAE with a learned critic against the exact advantage: {summary}"),
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter5(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch05Config {
        seed: config.seed,
        ..Ch05Config::default()
    };
    let runs = 2 * 3 * ch.seeds + 9;
    let bar = progress_bar(runs as u64, "5 · PPO", config.progress);
    let out = ch05::run(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch05", &out.figures)?;
    let summary = out
        .efficiency
        .iter()
        .map(|e| match e.episodes_to_95 {
            Some(x) => format!(
                "{} on the {}: {x:.0} episodes to 95 % success",
                e.algorithm, e.house
            ),
            None => format!("{} on the {}: not within budget", e.algorithm, e.house),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 5 — PPO",
        figures,
        metrics: json!({ "sample_efficiency": out.efficiency, "clipping": out.clipping }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter6(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch06Config {
        seed: config.seed,
        ..Ch06Config::default()
    };
    let bar = progress_bar(ch06::runs(&ch) as u64, "6 · GRPO", config.progress);
    let out = ch06::run(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch06", &out.figures)?;
    let summary = out
        .comparison
        .iter()
        .map(|e| {
            format!(
                "{}: episodes to 95 % success {} ({:.2} s per run)",
                e.reach.algorithm,
                e.reach.cell(),
                e.seconds
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 6 — GRPO",
        figures,
        metrics: json!({ "comparison": out.comparison, "beta_sweep": out.betas }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn chapter7(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let ch = Ch07Config {
        seed: config.seed,
        ..Ch07Config::default()
    };
    let bar = progress_bar(ch07::runs(&ch) as u64, "7 · Dr. GRPO", config.progress);
    let out = ch07::run(&ch, || bar.inc(1))?;
    bar.finish_with_message("done");
    let figures = save_figures(dir, "ch07", &out.figures)?;
    let last = |v: &[Vec<f64>]| v.iter().filter_map(|r| r.last()).sum::<f64>() / v.len() as f64;
    let summary = out
        .length
        .iter()
        .map(|v| {
            format!(
                "{}: failed episodes last {:.1} steps, successful ones {:.1}, P(success) {:.3}",
                v.label,
                last(&v.failure_length),
                last(&v.success_length),
                last(&v.success)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Stage {
        title: "Chapter 7 — Dr. GRPO",
        figures,
        metrics: json!({ "length_bias": out.length, "std_bias": out.std }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The SFT budget of the tour's chapter 8 stage: the CPU default's, so that chapter 9's stage starts
/// from a model that is right often enough for its groups to teach something.
pub const TOUR_SFT_STEPS: usize = 600;

fn chapter8(dir: &Path, config: &TourConfig) -> Result<Stage> {
    let start = Instant::now();
    let mut ch = Ch08Config {
        seed: config.seed,
        eval_every: 50,
        eval_problems: config.lm_eval_problems.div_ceil(2),
        ..Ch08Config::default()
    };
    ch.lm.sft.steps = config.sft_steps.max(1);
    ch.lm.sft.warmup = ch.lm.sft.warmup.min(ch.lm.sft.steps / 5);
    ch.lm.eval.problems = config.lm_eval_problems.max(1);
    let bar = progress_bar(ch.lm.sft.steps as u64, "8 · SFT", config.progress);
    let (record, run) = ch08::run(&ch, |step, loss| {
        bar.inc(1);
        if step % 5 == 0 {
            bar.set_message(format!("loss {loss:.3}"));
        }
    })?;
    bar.finish_with_message("done");
    zero_to_r1::lm::checkpoint::save(&run.model, &dir.join("ch08/sft"))?;
    let figures = save_figures(dir, "ch08", &ch08::figures(&record)?)?;
    let s = &record.summary;
    let summary = format!(
        "{} parameters, {} SFT steps: loss {:.2} → {:.2}; held-out greedy accuracy {:.0}%, \
         format {:.0}%, sampled accuracy {:.0}% (the data is {:.0}% clean), pass@{} {:.0}%",
        s.parameters,
        s.steps,
        s.first_loss,
        s.final_loss,
        100.0 * s.greedy_accuracy,
        100.0 * s.format_rate,
        100.0 * s.sampled_accuracy,
        100.0 * s.data_clean_rate,
        s.k,
        100.0 * s.pass_at_k
    );
    Ok(Stage {
        title: "Chapter 8 — from cats to language models",
        figures,
        metrics: json!({ "sft": record.summary, "evals": record.evals }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The pretraining budget of the tour's chapter 9 stage: enough for a base model of one-digit
/// sums that writes the template in some of its samples and is sometimes right, so that GRPO
/// has something to reinforce.
pub const TOUR_PRETRAIN_STEPS: usize = 400;

/// The GRPO budget of the tour's chapter 9 stage.
pub const TOUR_GRPO_STEPS: usize = 30;

/// Chapter 9's Zero route, scaled down to one-digit sums: a base model pretrained on drafted
/// documents (a quarter of them in R1's template), then GRPO straight from it.
fn chapter9(dir: &Path, config: &TourConfig) -> Result<Stage> {
    use zero_to_r1::lm::config::LmConfig;
    use zero_to_r1::lm::grpo::{read_metrics, GrpoStep};
    use zero_to_r1::lm::run::{claim_folder, r1_zero, Start};
    let start = Instant::now();
    let mut lm = LmConfig::zero_default();
    lm.task.difficulty = 1;
    if let Some(p) = lm.pretrain.as_mut() {
        p.sft.steps = config.pretrain_steps.max(1);
        p.sft.warmup = p.sft.warmup.min(p.sft.steps / 5);
    }
    lm.grpo.steps = config.grpo_steps.max(1);
    lm.grpo.prompts = 8;
    lm.grpo.warmup = lm.grpo.warmup.min(lm.grpo.steps);
    lm.grpo.eval_every = lm.grpo.steps;
    lm.grpo.eval_problems = config.lm_eval_problems.max(1);
    lm.grpo.checkpoint_every = 0;
    lm.eval.problems = config.lm_eval_problems.max(1);
    lm.eval.batch_size = lm.eval.batch_size.min(lm.eval.problems);
    lm.eval.k = 4;
    lm.validate()?;
    let task = lm.task()?;
    let heldout = zero_to_r1::lm::eval::heldout(task.as_ref(), lm.eval.problems, 1).len();
    let out = dir.join("ch09");
    claim_folder(&out, true)?;
    let mut bars = Bars::new(config.progress);
    let (run, _) = r1_zero(
        &lm,
        config.seed,
        &candle_core::Device::Cpu,
        &mut bars,
        &out,
        Start::Sft,
    )?;
    let steps: Vec<GrpoStep> = read_metrics(&out.join("grpo"))?;
    let w = 5.min(steps.len()).max(1);
    let mean = |s: &[GrpoStep], f: fn(&GrpoStep) -> f64| {
        s.iter().map(f).sum::<f64>() / s.len().max(1) as f64
    };
    let (first, last) = (
        &steps[..w.min(steps.len())],
        &steps[steps.len().saturating_sub(w)..],
    );
    let figures = save_figures(
        dir,
        "ch09",
        &[("grpo_rollouts", ch09::rollout_figure(&steps, w)?)],
    )?;
    let (b, a) = (&run.before, &run.after);
    let summary = format!(
        "The Zero route in miniature, on one-digit sums: a base model pretrained for {} steps \
         on drafted additions (a quarter in R1's template), then {} GRPO steps of {} prompts × \
         {} responses straight from it, no fine-tuning. Sampled format {:.0}% → {:.0}% and \
         accuracy {:.0}% → {:.0}% (first → last {w} steps); on the {heldout} held-out \
         problems, greedy format {:.0}% → {:.0}% and accuracy {:.0}% → {:.0}%",
        lm.pretrain.as_ref().map_or(0, |p| p.sft.steps),
        lm.grpo.steps,
        lm.grpo.prompts,
        lm.grpo.group_size,
        100.0 * mean(first, |s| s.format_rate),
        100.0 * mean(last, |s| s.format_rate),
        100.0 * mean(first, |s| s.accuracy),
        100.0 * mean(last, |s| s.accuracy),
        100.0 * b.format_rate,
        100.0 * a.format_rate,
        100.0 * b.greedy_accuracy,
        100.0 * a.greedy_accuracy,
    );
    Ok(Stage {
        title: "Chapter 9 — R1-Zero on a laptop",
        figures,
        metrics: json!({ "before": b, "after": a, "steps": steps }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn index_html(stages: &[Stage]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>zero-to-r1 tour</title>\n\
         <style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}\
         img{max-width:100%;border:1px solid #ddd;margin:.5em 0}figure{margin:1em 0}</style>\n\
         </head><body>\n<h1>zero-to-r1 — the tour</h1>\n<p>Metrics: <a href=\"metrics.json\">metrics.json</a></p>\n",
    );
    for s in stages {
        html.push_str(&format!(
            "<h2>{}</h2>\n<p>{} <em>({:.1} s)</em></p>\n",
            s.title, s.summary, s.seconds
        ));
        for (path, caption) in &s.figures {
            html.push_str(&format!(
                "<figure><img src=\"{path}\" alt=\"{caption}\"><figcaption>{caption}</figcaption></figure>\n"
            ));
        }
    }
    html.push_str("</body></html>\n");
    html
}

/// `chapter8` for a stage titled "Chapter 8 — …".
fn chapter_key(title: &str) -> String {
    let n: String = title
        .trim_start_matches("Chapter ")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    format!("chapter{n}")
}

/// Runs the tour and returns the folder it wrote.
pub fn run(config: &TourConfig) -> Result<PathBuf> {
    if config.name.is_empty() || config.name.contains(['/', '\\']) || config.name == ".." {
        return Err(Error::invalid(
            "--name",
            format!("{:?} must be a plain folder name", config.name),
        ));
    }
    let dir = config.out.join(&config.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let stages = vec![
        chapter1(&dir, config)?,
        chapter2(&dir, config)?,
        chapter3(&dir, config)?,
        chapter4(&dir, config)?,
        chapter5(&dir, config)?,
        chapter6(&dir, config)?,
        chapter7(&dir, config)?,
        chapter8(&dir, config)?,
        chapter9(&dir, config)?,
    ];
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for s in &stages {
            writeln!(stdout, "{}: {}", s.title, s.summary)
                .map_err(|e| Error::io("standard output", e))?;
        }
    }
    let metrics: serde_json::Map<String, serde_json::Value> = stages
        .iter()
        .map(|s| (chapter_key(s.title), s.metrics.clone()))
        .collect();
    let metrics = serde_json::to_string_pretty(&metrics)
        .map_err(|e| Error::invalid("metrics", e.to_string()))?;
    write_atomic(&dir.join("metrics.json"), metrics.as_bytes())?;
    write_atomic(&dir.join("index.html"), index_html(&stages).as_bytes())?;
    Ok(dir)
}
