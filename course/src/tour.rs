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

/// What one stage produced: figures (relative path, caption), the chapter's tables, metrics.
struct Stage {
    title: &'static str,
    /// The chapter's page in the book (its file stem).
    chapter: &'static str,
    figures: Vec<(String, String)>,
    /// The tables the book's chapter shows, as Markdown, from this run's numbers.
    tables: Vec<String>,
    /// How this run relates to the numbers printed in the book, and why.
    against_book: String,
    metrics: serde_json::Value,
    summary: String,
    seconds: f64,
}

/// What the cat chapters' stages say about the book: with the default seed they are the
/// runs the book's figures and tables come from.
fn same_as_book(config: &TourConfig) -> String {
    if config.seed == 1 {
        "Same settings and seed (1) as the book's figures and tables, so the numbers here are \
         the book's, digit for digit (on a CPU with the same matrix kernels)."
            .into()
    } else {
        format!(
            "Same settings as the book's figures and tables, but seed {} instead of 1: another \
             draw of the same experiment, so expect the numbers to differ within the spread the \
             chapter reports.",
            config.seed
        )
    }
}

/// A caption for each figure the tour draws: what it shows (the numbers are this run's).
fn caption(sub: &str, name: &str) -> String {
    let text = match (sub, name) {
        ("ch01", "house") => "The seeds' house: walls, two brooms (−1 per step on them), two bathtubs (−10), the meat (+100) and the cat's start.",
        ("ch01", "random_values") => "The random cat's exact values with 100 steps left, cell by cell.",
        ("ch01", "random_returns") => "Returns of the random cat's episodes, with the exact J and the Monte Carlo mean.",
        ("ch01", "running_mean") => "The Monte Carlo estimate of J as episodes accumulate (log scale), ± 2 standard errors, against the exact J.",
        ("ch01", "optimal_values") => "Optimal values and moves with γ = 0.99: the long way round, past both bathtubs.",
        ("ch01", "hasty_values") => "Optimal values and moves with γ = 0.9: the impatient cat takes the short way through a bathtub.",
        ("ch02", "learning_curves") => "REINFORCE: exact J against episodes sampled for four weightings (mean and range over seeds). The lower panel zooms into the first sixth of the episodes.",
        ("ch03", "variance") => "Variance of the gradient estimate for five weightings, ± 2 standard errors, on a log axis.",
        ("ch04", "lambda_variance") => "Variance of GAE(λ) against λ, with the exact and with a learned critic.",
        ("ch04", "lambda_bias") => "Squared bias of GAE(λ) against the exact advantage, against λ.",
        ("ch05", "efficiency") => "Success probability against episodes sampled on the seeds' house: REINFORCE with a baseline, actor-critic and PPO. The lower panel zooms into the first sixth of the episodes.",
        ("ch05", "efficiency_slippery") => "The same on the slippery house (slip 0.2). The lower panel zooms into the first sixth of the episodes.",
        ("ch05", "clip_return") => "PPO with many epochs per batch: exact J with clip 0.2, clip 10 and no clip.",
        ("ch05", "clip_kl") => "The same runs: how far each update moves the policy (approx_kl).",
        ("ch06", "comparison") => "Success probability against episodes sampled: REINFORCE with a learned baseline, PPO, GRPO and Dr. GRPO. The lower panel zooms into the first sixth of the episodes.",
        ("ch06", "beta_kl") => "GRPO: KL to the reference policy for three values of β.",
        ("ch06", "beta_return") => "The same runs: exact J.",
        ("ch07", "house") => "The bath house: eight bathtubs, the meat in a corner, four starts.",
        ("ch07", "length_failed") => "Expected length of a failed episode: GRPO's per-episode mean against Dr. GRPO's constant divisor.",
        ("ch07", "length_succeeded") => "Expected length of a successful episode, for the same runs.",
        ("ch07", "length_success_rate") => "Success probability, for the same runs.",
        ("ch07", "std_weight") => "Expected weight of a question against its success probability, with and without dividing by the standard deviation.",
        ("ch07", "std_learning") => "Success probability with and without dividing by the standard deviation.",
        ("ch08", "sft_loss") => "Fine-tuning: the training loss against the step.",
        ("ch08", "sft_accuracy") => "Held-out greedy and sampled accuracy against the step.",
        ("ch08", "sft_format") => "Held-out format rate of greedy and sampled responses against the step.",
        ("ch09", "grpo_rollouts") => "GRPO from the base model: format rate and accuracy of the sampled responses, and the groups whose rewards are all equal, against the step.",
        _ => return name.replace('_', " "),
    };
    text.to_string()
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
        out.push((rel, caption(sub, name)));
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
        chapter: "01-the-cats-house",
        figures,
        tables: vec![out.table()],
        against_book: same_as_book(config),
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
        chapter: "02-reinforce",
        figures,
        tables: vec![out.table(&ch)],
        against_book: same_as_book(config),
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
        chapter: "03-variance-and-baselines",
        figures,
        tables: vec![out.table(), out.scaling_table()],
        against_book: same_as_book(config),
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
        chapter: "04-actor-critic-and-gae",
        figures,
        tables: vec![ch04::lambda_table(&stats)],
        against_book: same_as_book(config),
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
        chapter: "05-ppo",
        figures,
        tables: vec![out.table(), out.clip_table()],
        against_book: same_as_book(config),
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
        chapter: "06-grpo",
        figures,
        tables: vec![out.table(), out.beta_table()],
        against_book: format!(
            "{} Only the seconds per run depend on the machine.",
            same_as_book(config)
        ),
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
        chapter: "07-dr-grpo",
        figures,
        tables: vec![out.length_table(), out.std_learning_table()],
        against_book: same_as_book(config),
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
    let book = Ch08Config::default();
    let p = s.greedy_accuracy;
    let n = ch.lm.eval.problems as f64;
    let against_book = format!(
        "The same fine-tuning as the book's record ({} steps of the CPU config) but with seed {} \
         (the book's: {}) and {} held-out problems at the end ({} along the way): another draw \
         of the same run, measured on fewer problems, so its numbers differ from the book's. On \
         {} problems one standard error of the greedy accuracy is about {:.1} points. The \
         book's numbers come from `zero-to-r1 lm measure`.",
        ch.lm.sft.steps,
        ch.seed,
        book.seed,
        ch.lm.eval.problems,
        ch.eval_problems,
        ch.lm.eval.problems,
        100.0 * (p * (1.0 - p) / n).sqrt(),
    );
    Ok(Stage {
        title: "Chapter 8 — from cats to language models",
        chapter: "08-from-cats-to-language-models",
        figures,
        tables: vec![ch08::table(&record)],
        against_book,
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
    // The run gets a folder of its own (the stage's figure goes beside it), so that the
    // tour can replace it when it runs again under the same name.
    let out = dir.join("ch09/run");
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
    let pct = |x: f64| format!("{:.0} %", 100.0 * x);
    let table = format!(
        "| on {heldout} held-out problems | base model | after GRPO |\n|---|---|---|\n\
         | greedy format rate | {} | {} |\n| greedy accuracy | {} | {} |\n\
         | sampled accuracy | {} | {} |\n| majority vote of {k} samples | {} | {} |\n\
         | pass@{k} | {} | {} |\n",
        pct(b.format_rate),
        pct(a.format_rate),
        pct(b.greedy_accuracy),
        pct(a.greedy_accuracy),
        pct(b.sampled_accuracy),
        pct(a.sampled_accuracy),
        pct(b.majority_at_k),
        pct(a.majority_at_k),
        pct(b.pass_at_k),
        pct(a.pass_at_k),
        k = lm.eval.k,
    );
    Ok(Stage {
        title: "Chapter 9 — R1-Zero on a laptop",
        chapter: "09-r1-zero",
        figures,
        tables: vec![table],
        against_book: format!(
            "A miniature of the book's Zero route, small enough for a tour: one-digit sums \
             instead of two, {} pretraining steps, {} GRPO steps of {} prompts, one seed and {} \
             held-out problems. The book's route (two-digit sums, 40 steps of 16 prompts, three \
             seeds, 500 held-out problems; `zero-to-r1 lm measure-zero`) has the same shape — \
             the format is learned first, and accuracy follows — but its numbers are not \
             comparable with these.",
            lm.pretrain.as_ref().map_or(0, |p| p.sft.steps),
            lm.grpo.steps,
            lm.grpo.prompts,
            heldout
        ),
        metrics: json!({ "before": b, "after": a, "steps": steps }),
        summary,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown of the tables and notes: `code` spans become `<code>`.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (k, part) in escape(text).split('`').enumerate() {
        if k % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A Markdown pipe table (as the book's generated tables are written) as an HTML table.
fn table_html(markdown: &str) -> String {
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim().trim_start_matches('|').trim_end_matches('|');
        line.split('|').map(|c| inline(c.trim())).collect()
    };
    let lines: Vec<&str> = markdown
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .collect();
    let Some((head, rest)) = lines.split_first() else {
        return String::new();
    };
    let mut html = String::from("<table>\n<thead><tr>");
    for c in cells(head) {
        html.push_str(&format!("<th>{c}</th>"));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for line in rest.iter().filter(|l| !l.contains("---")) {
        html.push_str("<tr>");
        for c in cells(line) {
            html.push_str(&format!("<td>{c}</td>"));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
    html
}

/// Where a chapter is read: the built book's page if the book has been built, else its source.
fn chapter_link(stem: &str) -> (String, &'static str) {
    let root = crate::experiments::repository();
    let built = root.join("book/book").join(format!("{stem}.html"));
    if built.exists() {
        (
            format!("file://{}", built.display()),
            "the chapter in the book",
        )
    } else {
        (
            format!(
                "file://{}",
                root.join("book/src").join(format!("{stem}.md")).display()
            ),
            "the chapter's source (build the book with `mdbook build book` to read it rendered)",
        )
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;font-size:16px;line-height:1.5;\
    max-width:980px;margin:2em auto;padding:0 1em;color:#222}\
    h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}\
    img{max-width:100%;border:1px solid #ddd}figure{margin:1.2em 0}\
    figcaption{font-size:.92em;color:#444;margin-top:.3em}\
    table{border-collapse:collapse;margin:1em 0;font-size:.92em}\
    th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
    th{background:#f3f3f3}.note{background:#f6f8fa;border-left:4px solid #9ab;padding:.5em .8em}\
    .time{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}";

fn index_html(stages: &[Stage]) -> String {
    let total: f64 = stages.iter().map(|s| s.seconds).sum();
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>zero-to-r1 — the tour</title>\n<style>{STYLE}</style>\n</head><body>\n\
         <h1>zero-to-r1 — the tour</h1>\n<p>Every chapter's experiment, run once on this \
         machine in {total:.0} s: for each chapter, its headline numbers in the tables the \
         book shows, its figures, how this run relates to the book's numbers, and a link to the \
         chapter. All numbers are also in <a href=\"metrics.json\">metrics.json</a>.</p>\n<ol>\n"
    );
    for (k, s) in stages.iter().enumerate() {
        html.push_str(&format!(
            "<li><a href=\"#stage{}\">{}</a></li>\n",
            k + 1,
            escape(s.title)
        ));
    }
    html.push_str("</ol>\n");
    for (k, s) in stages.iter().enumerate() {
        let (href, what) = chapter_link(s.chapter);
        html.push_str(&format!(
            "<h2 id=\"stage{}\">{}</h2>\n<p>{} <span class=\"time\">({:.1} s)</span></p>\n\
             <p>Read: <a href=\"{}\">{}</a>.</p>\n",
            k + 1,
            escape(s.title),
            inline(&s.summary),
            s.seconds,
            escape(&href),
            inline(what),
        ));
        for t in &s.tables {
            html.push_str(&table_html(t));
        }
        html.push_str(&format!(
            "<p class=\"note\"><strong>Against the book.</strong> {}</p>\n",
            inline(&s.against_book)
        ));
        for (f, (path, caption)) in s.figures.iter().enumerate() {
            html.push_str(&format!(
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption><strong>Figure {}.{}.</strong> \
                 {}</figcaption></figure>\n",
                escape(path),
                escape(caption),
                k + 1,
                f + 1,
                escape(caption)
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
