//! Chapter 9 — the two routes to a reasoning model, over several seeds: R1-Zero's (GRPO
//! straight from a pretrained base model) and R1's (a short cold-start fine-tuning first).
//!
//! Each run is the library's whole `r1_zero` recipe from a fresh model, so a seed covers the
//! base model's pretraining too. `zero-to-r1 lm measure-zero` runs them and writes
//! `book/src/generated/ch09/routes.json`; the tables and figures are drawn from that record.

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::plot::{learning_curves, Curves, Svg};
use zero_to_r1::error::{Error, Result};
use zero_to_r1::lm::checkpoint;
use zero_to_r1::lm::config::{GrpoLmConfig, LmConfig};
use zero_to_r1::lm::eval::{heldout, respond};
use zero_to_r1::lm::generate::SampleConfig;
use zero_to_r1::lm::grpo::{read_metrics, GrpoStep};
use zero_to_r1::lm::run::{claim_folder, r1_zero, R1ZeroSummary, Start};
use zero_to_r1::objective::Ratio;
use zero_to_r1::progress::Progress;

/// One run of one route with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteRun {
    pub route: String,
    pub seed: u64,
    pub summary: R1ZeroSummary,
    /// Every GRPO step's metrics.
    pub steps: Vec<GrpoStep>,
    /// Wall-clock seconds of the run: fine-tuning, GRPO and both evaluations, and for the
    /// first route of a seed the base model's pretraining too.
    pub seconds: f64,
    /// Greedy responses to the first held-out problems, before and after GRPO:
    /// (prompt as posed, response, correct).
    pub before: Vec<(String, String, bool)>,
    pub after: Vec<(String, String, bool)>,
}

/// What `lm measure-zero` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZeroRecord {
    pub command: String,
    pub machine: String,
    /// Each route's name and config.
    pub routes: Vec<(String, LmConfig)>,
    /// The variants of the ablation (name and config): shorter GRPO runs from each seed's
    /// base model, compared with the Zero route at the same step.
    #[serde(default)]
    pub variants: Vec<(String, LmConfig)>,
    pub runs: Vec<RouteRun>,
}

/// Greedy responses of the model in `dir` to the first `n` held-out problems.
fn examples(config: &LmConfig, dir: &Path, n: usize) -> Result<Vec<(String, String, bool)>> {
    let task = config.task()?;
    let model = checkpoint::load(dir, &Device::Cpu)?;
    let problems = heldout(task.as_ref(), n, config.task.difficulty);
    let greedy = SampleConfig::greedy(config.eval.max_new_tokens);
    let (scored, _) = respond(&model, task.as_ref(), &problems, &greedy, n, 0)?;
    Ok(problems
        .iter()
        .zip(scored)
        .map(|(p, s)| (task.pose(p), s.response, s.accuracy > 0.0))
        .collect())
}

/// How many GRPO steps each variant of the ablation runs.
pub const ABLATION_STEPS: usize = 20;

// ANCHOR: variants
/// The variants of the ablation, each a change to the Zero route's `[grpo]` section:
/// GRPO straight from the base model for [`ABLATION_STEPS`] steps, one newer idea at a
/// time.
pub fn variants(zero: &LmConfig) -> Vec<(String, LmConfig)> {
    type Change = fn(&mut GrpoLmConfig);
    let changes: [(&str, Change); 5] = [
        ("clip-higher (ε_high = 0.28)", |g| g.clip_high = Some(0.28)),
        ("dynamic sampling", |g| g.dynamic_sampling = true),
        ("soft overlong penalty (last 60 of 100 tokens)", |g| {
            g.overlong_filter = true;
            g.overlong_buffer = 60;
        }),
        ("GSPO (sequence ratio, ε = 3e-4 / 4e-4)", |g| {
            g.ratio = Ratio::Sequence;
            g.clip = 3e-4;
            g.clip_high = Some(4e-4);
        }),
        ("β = 0 (no KL penalty)", |g| g.beta = 0.0),
    ];
    changes
        .into_iter()
        .map(|(name, change)| {
            let mut c = zero.clone();
            c.grpo.steps = ABLATION_STEPS;
            c.eval.k = 1; // the comparison is greedy, from the runs' own held-out evaluations
            change(&mut c.grpo);
            (name.to_string(), c)
        })
        .collect()
}
// ANCHOR_END: variants

// ANCHOR: measure_routes
/// Runs every route of `routes` (name, config) with every seed of `seeds` into
/// `dir/<route>-s<seed>`, then every variant of `variants` the same way. For each seed the
/// first route pretrains the base model from fresh weights; the others start from that same
/// base model (GRPO straight from it if their `sft.steps` is 0, else after their cold start),
/// so the routes of a seed differ only in what they do after pretraining. Their `[model]`
/// and `[pretrain]` must therefore agree. The variants run GRPO straight from the base model.
pub fn measure(
    routes: &[(String, LmConfig)],
    variants: &[(String, LmConfig)],
    seeds: &[u64],
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<ZeroRecord> {
    let Some((_, first)) = routes.first() else {
        return Err(Error::invalid("routes", "none to measure"));
    };
    for (name, c) in variants {
        if c.sft.steps != 0 {
            return Err(Error::invalid(
                format!("the config of variant {name:?}"),
                "a variant runs GRPO straight from the base model: sft.steps must be 0",
            ));
        }
    }
    for (name, c) in routes.iter().chain(variants) {
        if c.pretrain.is_none() || c.pretrain != first.pretrain || c.model != first.model {
            return Err(Error::invalid(
                format!("the config of route {name:?}"),
                "every route needs the first route's [model] and [pretrain] sections: they \
                 share its base model",
            ));
        }
    }
    let mut record = ZeroRecord {
        command: "zero-to-r1 lm measure-zero".into(),
        machine: String::new(),
        routes: routes.to_vec(),
        variants: variants.to_vec(),
        runs: Vec::new(),
    };
    for &seed in seeds {
        let folder = |route: &str| {
            let name: String = route.chars().filter(char::is_ascii_alphanumeric).collect();
            dir.join(format!("{name}-s{seed}"))
        };
        let base = folder(&routes[0].0).join("sft");
        for (i, (route, config)) in routes.iter().chain(variants).enumerate() {
            let out = folder(route);
            claim_folder(&out, true)?;
            let start = match (i, config.sft.steps) {
                (0, _) => Start::Sft,
                (_, 0) => Start::Checkpoint(&base),
                _ => Start::Base(&base),
            };
            let clock = std::time::Instant::now();
            let (summary, _) = r1_zero(config, seed, &Device::Cpu, progress, &out, start)?;
            let seconds = clock.elapsed().as_secs_f64();
            let grpo = out.join("grpo");
            let last = grpo
                .join("checkpoints")
                .join(format!("step-{:06}", config.grpo.steps));
            let started = if config.sft.steps == 0 {
                base.clone()
            } else {
                out.join("sft")
            };
            record.runs.push(RouteRun {
                route: route.clone(),
                seed,
                summary,
                steps: read_metrics(&grpo)?,
                seconds,
                before: examples(config, &started, 4)?,
                after: examples(config, &last, 4)?,
            });
        }
    }
    Ok(record)
}
// ANCHOR_END: measure_routes

/// The committed record, `book/src/generated/ch09/routes.json`.
pub fn recorded() -> Result<ZeroRecord> {
    super::read_record("ch09/routes.json", "lm measure-zero")
}

/// Mean and standard error of the mean.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n.max(1.0);
    if xs.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Mean ± standard error of `xs` times `scale`, with `digits` decimals; "–" if there are none.
fn mean_se_text(xs: &[f64], scale: f64, digits: usize) -> String {
    if xs.is_empty() {
        return "–".into();
    }
    let (m, se) = mean_se(xs);
    format!("{:.digits$} ± {:.digits$}", scale * m, scale * se)
}

fn pct(xs: &[f64]) -> String {
    mean_se_text(xs, 100.0, 1)
}

fn runs_of<'a>(r: &'a ZeroRecord, route: &str) -> Vec<&'a RouteRun> {
    r.runs.iter().filter(|x| x.route == route).collect()
}

/// The routes before and after reinforcement learning, mean ± standard error over the seeds,
/// as a markdown table: the base model, then each route's starting model (if it fine-tuned
/// one) and its model after RL.
pub fn table(r: &ZeroRecord) -> String {
    let names: Vec<&str> = r.routes.iter().map(|(n, _)| n.as_str()).collect();
    let cold = |name: &str| r.routes.iter().any(|(n, c)| n == name && c.sft.steps > 0);
    let mut columns: Vec<(String, &str, bool)> = Vec::new();
    if let Some(first) = names.first() {
        columns.push(("base model".into(), first, false));
    }
    for name in &names {
        if cold(name) {
            columns.push((format!("{name}: after fine-tuning"), name, false));
        }
        columns.push((format!("{name}: after RL"), name, true));
    }
    let mut s = String::from("| held-out, % (mean ± s.e. over seeds) |");
    for (h, _, _) in &columns {
        s += &format!(" {h} |");
    }
    s += "\n|---|";
    s += &"---|".repeat(columns.len());
    s += "\n";
    type Get = fn(&zero_to_r1::lm::run::EvalSummary) -> f64;
    let rows: [(&str, Get); 7] = [
        ("greedy accuracy", |e| e.greedy_accuracy),
        ("greedy format rate", |e| e.format_rate),
        ("sampled accuracy (T = 1)", |e| e.sampled_accuracy),
        ("sampled format rate", |e| e.sampled_format_rate),
        ("majority vote of 8 samples", |e| e.majority_at_k),
        ("pass@8", |e| e.pass_at_k),
        ("sampled responses that check", |e| e.sampled_check_rate),
    ];
    for (row, f) in rows {
        s += &format!("| {row} |");
        for (_, name, after) in &columns {
            let xs: Vec<f64> = runs_of(r, name)
                .iter()
                .map(|x| {
                    f(if *after {
                        &x.summary.after
                    } else {
                        &x.summary.before
                    })
                })
                .collect();
            s += &format!(" {} |", pct(&xs));
        }
        s += "\n";
    }
    s += "| **greedy lift by RL, points** (each seed) |";
    for (_, name, after) in &columns {
        if *after {
            let runs = runs_of(r, name);
            let xs: Vec<f64> = runs.iter().map(|x| x.summary.lift_points / 100.0).collect();
            let each: Vec<String> = runs
                .iter()
                .map(|x| format!("{:+.1}", x.summary.lift_points))
                .collect();
            s += &format!(" **{}** ({}) |", pct(&xs), each.join(", "));
        } else {
            s += " |";
        }
    }
    s += "\n";
    let mean_of = |name: &str, f: fn(&RouteRun) -> f64| {
        mean_se(&runs_of(r, name).iter().map(|x| f(x)).collect::<Vec<_>>()).0
    };
    let problems = r.routes.first().map_or(0, |(_, c)| c.eval.problems);
    s += &format!(
        "\n{} seeds; {problems} held-out problems that no training step ever sees; the routes of a seed share its base model. ",
        runs_of(r, names.first().copied().unwrap_or("")).len()
    );
    if let Some(first) = names.first() {
        let pre = mean_of(first, |x| x.summary.pretrain_seconds);
        s += &format!(
            "Pretraining the base model took {pre:.0} s; the whole {first} route, end to end, {:.0} s",
            mean_of(first, |x| x.seconds)
        );
        for name in names.iter().skip(1) {
            s += &format!(
                "; the {name} route {:.0} s (with the pretraining)",
                pre + mean_of(name, |x| x.seconds)
            );
        }
        s += " (means over the seeds).";
    }
    s += &format!(" Measured with `{}` on {}.\n", r.command, r.machine);
    s
}

/// Held-out greedy accuracy of a run after `step` GRPO steps, if it was evaluated then.
fn heldout_at(run: &RouteRun, step: usize) -> Option<f64> {
    run.steps
        .iter()
        .find(|s| s.step + 1 == step)
        .and_then(|s| s.heldout.as_ref())
        .map(|h| h.accuracy)
}

/// The ablation as a markdown table: the routes that run GRPO straight from the base model
/// and every variant, all after the variants' number of steps, mean ± standard error over
/// the seeds, with each variant's difference from the Zero route paired by seed.
pub fn ablation_table(r: &ZeroRecord) -> String {
    let Some(steps) = r.variants.first().map(|(_, c)| c.grpo.steps) else {
        return String::from("(no ablation in the record)\n");
    };
    let Some((zero, _)) = r.routes.first() else {
        return String::from("(no routes in the record)\n");
    };
    let last = 10.min(steps);
    let mut accuracy = format!(
        "| after {steps} GRPO steps | held-out greedy accuracy, % | against the Zero route, points | sampled accuracy, % |\n|---|---|---|---|\n"
    );
    let mut behaviour = String::from(
        "| | responses that check, % | mean length, tokens | KL to the base model, nats/token | groups with equal rewards, % | seconds per step |\n|---|---|---|---|---|---|\n",
    );
    let tail = |run: &RouteRun, f: &dyn Fn(&GrpoStep) -> f64| {
        let upto = &run.steps[..steps.min(run.steps.len())];
        let window = &upto[upto.len().saturating_sub(last)..];
        window.iter().map(f).sum::<f64>() / window.len().max(1) as f64
    };
    let baselines = r
        .routes
        .iter()
        .filter(|(_, c)| c.sft.steps == 0)
        .map(|(n, _)| n);
    for name in baselines.chain(r.variants.iter().map(|(n, _)| n)) {
        let runs = runs_of(r, name);
        let held: Vec<f64> = runs.iter().filter_map(|x| heldout_at(x, steps)).collect();
        let paired: Vec<f64> = runs
            .iter()
            .filter_map(|x| {
                let base = runs_of(r, zero).into_iter().find(|z| z.seed == x.seed)?;
                Some(heldout_at(x, steps)? - heldout_at(base, steps)?)
            })
            .collect();
        let of = |f: &dyn Fn(&GrpoStep) -> f64| -> Vec<f64> {
            runs.iter().map(|x| tail(x, f)).collect()
        };
        let num = |xs: &[f64], digits: usize| mean_se_text(xs, 1.0, digits);
        let versus = if name == zero || paired.is_empty() {
            "–".to_string()
        } else {
            let (m, se) = mean_se(&paired);
            format!("{:+.1} ± {:.1}", 100.0 * m, 100.0 * se)
        };
        let per_step: Vec<f64> = runs
            .iter()
            .filter_map(|x| x.steps.get(steps - 1).map(|st| st.seconds / steps as f64))
            .collect();
        // The variant's settings are in its config; its row gives the idea's name alone.
        let short = name.split(" (").next().unwrap_or(name);
        accuracy += &format!(
            "| {short} | {} | {versus} | {} |\n",
            pct(&held),
            pct(&of(&|st| st.accuracy)),
        );
        behaviour += &format!(
            "| {short} | {} | {} | {} | {} | {} |\n",
            pct(&of(&|st| st.check_rate)),
            num(&of(&|st| st.mean_len), 1),
            num(&of(&|st| st.kl_ref), 3),
            pct(&of(&|st| st.frac_reward_zero_std)),
            num(&per_step, 2),
        );
    }
    format!(
        "{accuracy}\n{behaviour}\nMeans ± standard errors over {} seeds. All runs start from the same base model of each seed and use the same prompts; the differences from the Zero route are paired by seed; the columns of the second table and the sampled accuracy are means over steps {}–{steps}. Held-out: {} problems, greedy. Measured with `{}` on {}.\n",
        runs_of(r, zero).len(),
        steps + 1 - last,
        r.routes[0].1.grpo.eval_problems,
        r.command,
        r.machine
    )
}

/// The first `n` pretraining documents of the Zero route's config, as posed to the model
/// (prompt, then the text it learns to continue with), with what happened in each draft, as a
/// markdown table.
pub fn documents_table(config: &LmConfig, n: usize) -> Result<String> {
    let task = config.task()?;
    let data = config.pretrain.as_ref().map_or(config.data, |p| p.data);
    let examples =
        zero_to_r1::lm::data::batch(task.as_ref(), config.task.difficulty, &data, 0, 0, n);
    let mut s = String::from("| prompt | the document goes on | carry dropped | checked | template |\n|---|---|---|---|---|\n");
    let yes = |b: bool| if b { "yes" } else { "" };
    for e in &examples {
        let posed = task.pose(&e.problem);
        let opening = posed.strip_prefix(&e.problem.prompt).unwrap_or("");
        let rest = e.response.strip_prefix(opening).unwrap_or(&e.response);
        if let zero_to_r1::lm::data::Flaw::Draft {
            dropped,
            checked,
            template,
            ..
        } = e.flaw
        {
            s += &format!(
                "| `{posed}` | `{rest}` | {} | {} | {} |\n",
                yes(dropped),
                yes(checked),
                yes(template)
            );
        }
    }
    Ok(s)
}

/// The first seed's greedy responses to the first held-out problems, before and after RL,
/// for the first and the last route, as a markdown table.
pub fn examples_table(r: &ZeroRecord) -> String {
    let mut s = String::from(
        "| route | prompt (as posed) | model | greedy response | |\n|---|---|---|---|---|\n",
    );
    let row = |route: &str, prompt: &str, when: &str, (_, resp, ok): &(String, String, bool)| {
        let mark = if *ok { "✓" } else { "✗" };
        let prompt = if prompt.is_empty() {
            String::new()
        } else {
            format!("`{prompt}`")
        };
        format!(
            "| {route} | {prompt} | {when} | `{}` | {mark} |\n",
            resp.replace('|', "\\|")
        )
    };
    let first_and_last = [r.routes.first(), r.routes.last()];
    for (name, _) in first_and_last.into_iter().flatten() {
        for run in r.runs.iter().filter(|x| x.seed == 0 && &x.route == name) {
            for (b, a) in run.before.iter().zip(&run.after) {
                s += &row(&run.route, &b.0, "before RL", b);
                s += &row("", "", "after RL", a);
            }
        }
    }
    s
}

/// A value per step that may be missing (no response of that kind at that step): carried
/// forward from the last step that had one, and backward from the first.
fn filled(values: &[Option<f64>]) -> Vec<f64> {
    let first = values.iter().flatten().next().copied().unwrap_or(0.0);
    let mut last = first;
    values
        .iter()
        .map(|v| {
            if let Some(v) = v {
                last = *v;
            }
            last
        })
        .collect()
}

/// Held-out greedy accuracy at step 0 (the starting model) and at every evaluation.
fn heldout_points(run: &RouteRun) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0];
    let mut y = vec![100.0 * run.summary.before.greedy_accuracy];
    for s in &run.steps {
        if let Some(h) = &s.heldout {
            x.push((s.step + 1) as f64);
            y.push(100.0 * h.accuracy);
        }
    }
    (x, y)
}

/// The figures of the record: the routes' curves and the checks.
pub fn figures(r: &ZeroRecord) -> Result<Vec<(&'static str, Svg)>> {
    let w = 5;
    let mut out = Vec::new();
    let routes: Vec<&str> = r.routes.iter().map(|(n, _)| n.as_str()).collect();
    let Some(first) = r.runs.first() else {
        return Ok(out);
    };
    let x: Vec<f64> = first.steps.iter().map(|s| (s.step + 1) as f64).collect();
    let per_run = |runs: &[&RouteRun], f: &dyn Fn(&GrpoStep) -> Option<f64>| -> Vec<Vec<f64>> {
        runs.iter()
            .map(|run| {
                let v: Vec<Option<f64>> = run.steps.iter().map(f).collect();
                super::ch09::smooth(&filled(&v), w)
            })
            .collect()
    };
    let mut curves = Vec::new();
    for route in &routes {
        let runs = runs_of(r, route);
        curves.push(Curves {
            label: format!("{route}: format rate"),
            runs: per_run(&runs, &|s| Some(100.0 * s.format_rate)),
        });
        curves.push(Curves {
            label: format!("{route}: accuracy"),
            runs: per_run(&runs, &|s| Some(100.0 * s.accuracy)),
        });
    }
    out.push((
        "routes",
        learning_curves(
            &x,
            &curves,
            "The sampled responses on training prompts, by route",
            "GRPO step",
            &format!("% (moving average over {w} steps)"),
            None,
        )?,
    ));
    let (hx, _) = heldout_points(first);
    let held: Vec<Curves> = routes
        .iter()
        .map(|route| Curves {
            label: format!("{route}: held-out greedy accuracy"),
            runs: runs_of(r, route)
                .iter()
                .map(|run| heldout_points(run).1)
                .filter(|y| y.len() == hx.len())
                .collect(),
        })
        .filter(|c| !c.runs.is_empty())
        .collect();
    out.push((
        "routes_heldout",
        learning_curves(
            &hx,
            &held,
            "Held-out greedy accuracy, from the model each route starts from",
            "GRPO step",
            "% of held-out problems",
            None,
        )?,
    ));
    let mut checks = Vec::new();
    for route in &routes {
        checks.push(Curves {
            label: format!("{route}: responses that check"),
            runs: per_run(&runs_of(r, route), &|s| Some(100.0 * s.check_rate)),
        });
    }
    if let Some(route) = routes.first() {
        let runs = runs_of(r, route);
        checks.push(Curves {
            label: format!("{route}: accuracy of those that check"),
            runs: per_run(&runs, &|s| s.accuracy_checked.map(|a| 100.0 * a)),
        });
        checks.push(Curves {
            label: format!("{route}: accuracy of those that do not"),
            runs: per_run(&runs, &|s| s.accuracy_unchecked.map(|a| 100.0 * a)),
        });
    }
    out.push((
        "checks",
        learning_curves(
            &x,
            &checks,
            "Checks: how often the sampled responses check, and how often they are right",
            "GRPO step",
            &format!("% (moving average over {w} steps)"),
            None,
        )?,
    ));
    let mut lengths = Vec::new();
    for route in routes.iter().filter(|r| r.starts_with("zero")) {
        let runs = runs_of(r, route);
        lengths.push(Curves {
            label: format!("{route}: correct responses"),
            runs: per_run(&runs, &|s| s.len_correct),
        });
        lengths.push(Curves {
            label: format!("{route}: incorrect responses"),
            runs: per_run(&runs, &|s| s.len_incorrect),
        });
    }
    out.push((
        "routes_length",
        learning_curves(
            &x,
            &lengths,
            "Mean length of the sampled responses, GRPO against Dr. GRPO",
            "GRPO step",
            &format!("tokens (moving average over {w} steps)"),
            None,
        )?,
    ));
    Ok(out)
}
