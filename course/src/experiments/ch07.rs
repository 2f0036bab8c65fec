//! Chapter 7 — Dr. GRPO: GRPO's two biases measured on a house where failures are common.
//! The length bias: dividing each episode's loss by its own length, against a constant.
//! The standard-deviation bias: how much weight a question gets as a function of how often
//! it is answered right, with and without dividing by the group's standard deviation, and
//! what that does to learning.

use gridworld::{Env, EnvConfig, House};
use serde::Serialize;

use crate::experiments::series_of;
use crate::plot::{self, Curves, Figures, Svg};
use zero_to_r1::advantage::group_advantages;
use zero_to_r1::algo::grpo::{self, GrpoConfig, OutcomeReward};
use zero_to_r1::error::Result;
use zero_to_r1::exact::success_probabilities;
use zero_to_r1::objective::Aggregation;
use zero_to_r1::rollout::derive_seed;

// ANCHOR: bath_house
/// The house of chapter 7: four start cells (four questions), bathtubs everywhere, and
/// a bathtub ends the episode (a wrong answer that stops early).
pub const BATH_MAP: &str = "\
##########
#C...T...#
#.T..C..T#
#...T....#
#.T...TC.#
#C..T..TM#
##########
";

/// Its rules: a bathtub ends the episode, moves slip with probability 0.1, and an
/// episode is cut off after 20 steps. The answer is scored by success alone (1 at the
/// meat, else 0).
pub fn bath_env() -> Result<Env> {
    let config = EnvConfig {
        slip: 0.1,
        max_steps: 20,
        bathtub_ends: true,
        ..EnvConfig::default()
    };
    Ok(Env::new(House::parse(BATH_MAP)?, config)?)
}
// ANCHOR_END: bath_house

/// Settings of chapter 7's experiments.
#[derive(Clone, Debug)]
pub struct Ch07Config {
    pub seeds: usize,
    pub iterations: usize,
    pub questions_per_iteration: usize,
    pub group_size: usize,
    pub seed: u64,
}

impl Default for Ch07Config {
    fn default() -> Self {
        Ch07Config {
            seeds: 5,
            iterations: 200,
            questions_per_iteration: 4,
            group_size: 8,
            seed: 1,
        }
    }
}

impl Ch07Config {
    /// The GRPO settings shared by every run: success reward, the given aggregation and
    /// standard-deviation scaling, everything else GRPO's defaults.
    pub fn grpo(&self, aggregation: Aggregation, scale_by_std: bool, seed: u64) -> GrpoConfig {
        GrpoConfig {
            iterations: self.iterations,
            questions_per_iteration: self.questions_per_iteration,
            group_size: self.group_size,
            reward: OutcomeReward::Success,
            aggregation,
            scale_by_std,
            seed,
            ..GrpoConfig::grpo()
        }
    }
}

// ANCHOR: length_variants
/// The two aggregations compared, both without division by the standard deviation:
/// GRPO's mean over each episode's own steps, and Dr. GRPO's division by the constant
/// step limit.
pub fn length_variants() -> Vec<(String, Aggregation)> {
    vec![
        ("÷ own length (GRPO)".to_string(), Aggregation::ResponseMean),
        (
            "÷ constant 20 (Dr. GRPO)".to_string(),
            Aggregation::Constant { budget: 20 },
        ),
    ]
}
// ANCHOR_END: length_variants

/// One variant's runs: per seed, per iteration, the exact success probability, expected
/// length of successes and of failures, and probability of hitting the step limit.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    pub label: String,
    pub success: Vec<Vec<f64>>,
    pub success_length: Vec<Vec<f64>>,
    pub failure_length: Vec<Vec<f64>>,
    pub truncated: Vec<Vec<f64>>,
    /// Exact success probability from each start cell at the end, mean over seeds.
    pub final_per_start: Vec<f64>,
    /// Each start cell's share of the total |Â| of all groups of all iterations and seeds:
    /// which questions the gradient was made of.
    pub weight_share: Vec<f64>,
}

impl Variant {
    fn mean_last(v: &[Vec<f64>]) -> f64 {
        v.iter().filter_map(|r| r.last()).sum::<f64>() / v.len() as f64
    }

    /// Episodes until the mean over seeds of the exact success probability first reaches
    /// `level`.
    pub fn episodes_to(&self, level: f64, per: usize) -> Option<usize> {
        let n = self.success[0].len();
        (0..n)
            .find(|&k| {
                self.success.iter().map(|r| r[k]).sum::<f64>() / self.success.len() as f64 >= level
            })
            .map(|k| (k + 1) * per)
    }
}

/// Trains every seed of one variant on the bath house.
fn train_variant(
    config: &Ch07Config,
    label: String,
    aggregation: Aggregation,
    scale_by_std: bool,
    salt: u64,
    progress: &mut impl FnMut(),
) -> Result<Variant> {
    let mut env = bath_env()?;
    let starts = env.house().starts().to_vec();
    let mut v = Variant {
        label,
        success: Vec::new(),
        success_length: Vec::new(),
        failure_length: Vec::new(),
        truncated: Vec::new(),
        final_per_start: vec![0.0; starts.len()],
        weight_share: vec![0.0; starts.len()],
    };
    for k in 0..config.seeds {
        let seed = derive_seed(config.seed, salt + k as u64);
        let trained = grpo::train(
            &mut env,
            &config.grpo(aggregation, scale_by_std, seed),
            |_| {},
        )?;
        let log = &trained.log;
        v.success
            .push(log.iter().map(|l| l.exact_success).collect());
        // A policy always succeeds or always fails only in the limit; report 0 if so.
        let len = |x: Option<f64>| x.unwrap_or(0.0);
        v.success_length
            .push(log.iter().map(|l| len(l.exact_success_length)).collect());
        v.failure_length
            .push(log.iter().map(|l| len(l.exact_failure_length)).collect());
        v.truncated
            .push(log.iter().map(|l| l.exact_truncated).collect());
        for group in log.iter().flat_map(|l| &l.groups) {
            if let Some(i) = starts.iter().position(|&s| s == group.question) {
                v.weight_share[i] += group.weight;
            }
        }
        let table = trained.table()?;
        let p = success_probabilities(env.house(), env.config(), &table)?;
        for (i, &s) in starts.iter().enumerate() {
            v.final_per_start[i] += p[s] / config.seeds as f64;
        }
        progress();
    }
    let total: f64 = v.weight_share.iter().sum();
    if total > 0.0 {
        v.weight_share.iter_mut().for_each(|w| *w /= total);
    }
    Ok(v)
}

/// A figure of one quantity of several variants against episodes sampled.
fn variant_figure(
    config: &Ch07Config,
    variants: &[Variant],
    pick: fn(&Variant) -> &Vec<Vec<f64>>,
    caption: &str,
    y_label: &str,
) -> Result<Svg> {
    let per = config.questions_per_iteration * config.group_size;
    let x: Vec<f64> = (0..config.iterations).map(|k| (k * per) as f64).collect();
    let series = series_of(variants, |v| v.label.clone(), pick);
    plot::learning_curves(&x, &series, caption, "episodes sampled", y_label, None)
}

/// The length-bias experiment; `progress` is called per training run.
pub fn length_bias(
    config: &Ch07Config,
    mut progress: impl FnMut(),
) -> Result<(Vec<Variant>, Figures)> {
    let mut variants = Vec::new();
    for (i, (label, agg)) in length_variants().into_iter().enumerate() {
        variants.push(train_variant(
            config,
            label,
            agg,
            false,
            800 + 10 * i as u64,
            &mut progress,
        )?);
    }
    let figures = vec![
        (
            "length_failed",
            variant_figure(
                config,
                &variants,
                |v| &v.failure_length,
                "Expected length of a failed episode (exact)",
                "steps",
            )?,
        ),
        (
            "length_succeeded",
            variant_figure(
                config,
                &variants,
                |v| &v.success_length,
                "Expected length of a successful episode (exact)",
                "steps",
            )?,
        ),
        (
            "length_success_rate",
            variant_figure(
                config,
                &variants,
                |v| &v.success,
                "Exact probability of reaching the meat",
                "P(success)",
            )?,
        ),
    ];
    Ok((variants, figures))
}

// ANCHOR: question_weight
/// The weight GRPO gives a question, as a function of the probability p that an answer
/// to it is right: the expected mean |Â| over a group of G answers with 0/1 rewards,
/// averaged exactly over the binomial number k of right answers in the group, Σ_k C(G,
/// k) p^k (1 − p)^(G−k) · mean_i |Â_i(k)|, with Â from `group_advantages`.
pub fn question_weight(p: f64, group_size: usize, scale_by_std: bool) -> Result<f64> {
    let g = group_size;
    let mut total = 0.0;
    let mut choose = 1.0; // C(G, k), updated as k grows
    for k in 0..=g {
        if k > 0 {
            choose *= (g - k + 1) as f64 / k as f64;
        }
        let rewards: Vec<f64> = (0..g).map(|i| f64::from(u8::from(i < k))).collect();
        let adv = group_advantages(&rewards, g, scale_by_std)?;
        let mean_abs = adv.iter().map(|a| a.abs()).sum::<f64>() / g as f64;
        total += choose * p.powi(k as i32) * (1.0 - p).powi((g - k) as i32) * mean_abs;
    }
    Ok(total)
}
// ANCHOR_END: question_weight

/// The weight curves: for p = 0, 0.01, …, 1, the weight with and without ÷std, each
/// relative to its value at p = 0.5.
pub fn weight_curves(group_size: usize) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let ps: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
    let curve = |scale: bool| -> Result<Vec<f64>> {
        let mid = question_weight(0.5, group_size, scale)?;
        ps.iter()
            .map(|&p| Ok(question_weight(p, group_size, scale)? / mid))
            .collect()
    };
    Ok((ps.clone(), curve(true)?, curve(false)?))
}

/// The standard-deviation experiment: the weight curves and GRPO with and without ÷std
/// (both with the constant normaliser) on the bath house.
pub fn std_bias(
    config: &Ch07Config,
    mut progress: impl FnMut(),
) -> Result<(Vec<Variant>, Figures)> {
    let (ps, with, without) = weight_curves(config.group_size)?;
    let weight = plot::learning_curves(
        &ps,
        &[
            Curves {
                label: "÷ std (GRPO)".into(),
                runs: vec![with],
            },
            Curves {
                label: "no ÷ std (Dr. GRPO)".into(),
                runs: vec![without],
            },
        ],
        &format!(
            "Weight of a question vs its success rate (G = {}), relative to p = 0.5",
            config.group_size
        ),
        "p = P(an answer is right)",
        "expected mean |Â| (relative)",
        None,
    )?;
    let budget = Aggregation::Constant { budget: 20 };
    let variants = vec![
        train_variant(
            config,
            "÷ std (GRPO)".into(),
            budget,
            true,
            900,
            &mut progress,
        )?,
        train_variant(
            config,
            "no ÷ std (Dr. GRPO)".into(),
            budget,
            false,
            910,
            &mut progress,
        )?,
    ];
    let learning = variant_figure(
        config,
        &variants,
        |v| &v.success,
        "Exact probability of reaching the meat, with and without ÷ std",
        "P(success)",
    )?;
    Ok((
        variants,
        vec![("std_weight", weight), ("std_learning", learning)],
    ))
}

/// Everything chapter 7 shows.
pub struct Ch07 {
    pub length: Vec<Variant>,
    pub std: Vec<Variant>,
    pub starts: Vec<usize>,
    pub per_iteration: usize,
    pub group_size: usize,
    pub figures: Figures,
}

/// Training runs [`run`] makes (for progress bars).
pub fn runs(config: &Ch07Config) -> usize {
    4 * config.seeds
}

/// Runs chapter 7's experiments; `progress` is called once per training run.
pub fn run(config: &Ch07Config, mut progress: impl FnMut()) -> Result<Ch07> {
    let env = bath_env()?;
    let house = plot::house_figure(
        env.house(),
        None,
        "The bath house: a bathtub ends the episode",
    )?;
    let (length, more) = length_bias(config, &mut progress)?;
    let mut figures = vec![("house", house)];
    figures.extend(more);
    let (std, more) = std_bias(config, &mut progress)?;
    figures.extend(more);
    Ok(Ch07 {
        length,
        std,
        starts: env.house().starts().to_vec(),
        per_iteration: config.questions_per_iteration * config.group_size,
        group_size: config.group_size,
        figures,
    })
}

impl Ch07 {
    /// The length experiment's end state, in markdown.
    pub fn length_table(&self) -> String {
        let mut s = String::from(
            "| aggregation | P(success) at the end | E[length \\| success] | E[length \\| failure] | P(cut off by the step limit) |\n|---|---|---|---|---|\n",
        );
        for v in &self.length {
            s.push_str(&format!(
                "| {} | {:.3} | {:.1} | {:.1} | {:.3} |\n",
                v.label,
                Variant::mean_last(&v.success),
                Variant::mean_last(&v.success_length),
                Variant::mean_last(&v.failure_length),
                Variant::mean_last(&v.truncated)
            ));
        }
        s
    }

    /// The std experiment: weights at a few success rates, and the learning runs.
    pub fn std_table(&self) -> Result<String> {
        let mut s = String::from(
            "| p = P(right) | weight with ÷ std | weight without | ratio |\n|---|---|---|---|\n",
        );
        for p in [0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98] {
            let w = question_weight(p, self.group_size, true)?
                / question_weight(0.5, self.group_size, true)?;
            let wo = question_weight(p, self.group_size, false)?
                / question_weight(0.5, self.group_size, false)?;
            s.push_str(&format!("| {p} | {w:.3} | {wo:.3} | {:.2} |\n", w / wo));
        }
        Ok(s)
    }

    /// Which questions the gradient was made of: each start cell's share of all |Â|, with
    /// and without ÷std, in markdown.
    pub fn weight_share_table(&self) -> String {
        let mut s = String::from("| variant |");
        for start in &self.starts {
            s.push_str(&format!(" share of all \\|Â\\| from cell {start} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(self.starts.len()));
        s.push('\n');
        for v in &self.std {
            s.push_str(&format!("| {} |", v.label));
            for w in &v.weight_share {
                s.push_str(&format!(" {:.1} % |", 100.0 * w));
            }
            s.push('\n');
        }
        s
    }

    /// Learning with and without ÷std: episodes to a mean success of 50 % and 75 %, and the
    /// final success from each start cell, in markdown.
    pub fn std_learning_table(&self) -> String {
        let mut s = String::from("| variant | episodes to mean P(success) ≥ 0.5 | to ≥ 0.75 |");
        for start in &self.starts {
            s.push_str(&format!(" final P(success) from cell {start} |"));
        }
        s.push_str("\n|---|---|---|");
        s.push_str(&"---|".repeat(self.starts.len()));
        s.push('\n');
        let show = |x: Option<usize>| x.map_or("not reached".to_string(), |e| e.to_string());
        for v in &self.std {
            s.push_str(&format!(
                "| {} | {} | {} |",
                v.label,
                show(v.episodes_to(0.5, self.per_iteration)),
                show(v.episodes_to(0.75, self.per_iteration))
            ));
            for p in &v.final_per_start {
                s.push_str(&format!(" {p:.3} |"));
            }
            s.push('\n');
        }
        s
    }
}
