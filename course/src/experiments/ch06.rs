//! Chapter 6 — GRPO: how many episodes GRPO and Dr. GRPO need on the seeds' house compared
//! with PPO and REINFORCE, and what β does to the distance from the reference policy.

use std::time::Instant;

use gridworld::Env;
use serde::Serialize;

use crate::experiments::ch05::{percent_curves, Efficiency};
use crate::experiments::series_of;
use crate::plot::{self, Figures, Svg};
use zero_to_r1::algo::grpo::{self, GrpoConfig};
use zero_to_r1::algo::ppo::{self, PpoConfig};
use zero_to_r1::algo::reinforce::{self, ReinforceConfig};
use zero_to_r1::error::Result;
use zero_to_r1::rollout::derive_seed;

/// The learners compared.
pub const ALGORITHMS: [&str; 4] = ["REINFORCE + learned baseline", "PPO", "GRPO", "Dr. GRPO"];

/// Settings of chapter 6's experiments.
#[derive(Clone, Debug)]
pub struct Ch06Config {
    pub seeds: usize,
    /// Episodes each run of the comparison may sample.
    pub episodes: usize,
    /// Episodes per iteration of every learner (GRPO: 2 questions × 8 answers).
    pub episodes_per_iteration: usize,
    /// Iterations of each run of the β sweep.
    pub beta_iterations: usize,
    pub seed: u64,
}

impl Default for Ch06Config {
    fn default() -> Self {
        Ch06Config {
            seeds: 5,
            episodes: 2400,
            episodes_per_iteration: 16,
            beta_iterations: 150,
            seed: 1,
        }
    }
}

/// Episodes until the exact success probability first reached 95 %, for one learner.
#[derive(Clone, Debug, Serialize)]
pub struct Solve {
    #[serde(flatten)]
    pub reach: Efficiency,
    /// Mean final exact J over the seeds.
    pub final_j: f64,
    /// Mean wall time of one run, in seconds (not part of the book's generated files: it
    /// changes from machine to machine and run to run).
    pub seconds: f64,
}

/// One run's exact success probabilities and J per iteration.
fn curve(algorithm: usize, iterations: usize, per: usize, seed: u64) -> Result<Vec<(f64, f64)>> {
    let mut env = Env::seed();
    Ok(match algorithm {
        0 => {
            let c = ReinforceConfig {
                updates: iterations,
                episodes_per_update: per,
                seed,
                ..ReinforceConfig::default()
            };
            let log = reinforce::train(&mut env, &c, |_| {})?.log;
            log.iter().map(|u| (u.exact_success, u.exact_j)).collect()
        }
        1 => {
            let c = PpoConfig {
                iterations,
                episodes_per_iteration: per,
                seed,
                ..PpoConfig::default()
            };
            let log = ppo::train(&mut env, &c, |_| {})?.log;
            log.iter().map(|u| (u.exact_success, u.exact_j)).collect()
        }
        _ => {
            let base = if algorithm == 2 {
                GrpoConfig::grpo()
            } else {
                GrpoConfig::dr_grpo()
            };
            let c = GrpoConfig {
                iterations,
                questions_per_iteration: per / base.group_size,
                seed,
                ..base
            };
            let log = grpo::train(&mut env, &c, |_| {})?.log;
            log.iter().map(|u| (u.exact_success, u.exact_j)).collect()
        }
    })
}

/// Trains every learner with every seed on the seeds' house; `progress` is called per run.
pub fn comparison(config: &Ch06Config, mut progress: impl FnMut()) -> Result<(Vec<Solve>, Svg)> {
    let per = config.episodes_per_iteration;
    let iterations = config.episodes / per;
    let x: Vec<f64> = (0..iterations).map(|k| (k * per) as f64).collect();
    let mut table = Vec::new();
    let mut series = Vec::new();
    for (a, name) in ALGORITHMS.into_iter().enumerate() {
        let mut runs = Vec::new();
        let start = Instant::now();
        for k in 0..config.seeds {
            let seed = derive_seed(config.seed, (600 + a * 10 + k) as u64);
            runs.push(curve(a, iterations, per, seed)?);
            progress();
        }
        let seconds = start.elapsed().as_secs_f64() / config.seeds as f64;
        let finals: Vec<f64> = runs.iter().filter_map(|r| r.last().map(|p| p.1)).collect();
        let success: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| r.iter().map(|p| p.0).collect())
            .collect();
        table.push(Solve {
            reach: Efficiency::from_runs("seeds' house", name, &success, per),
            final_j: finals.iter().sum::<f64>() / finals.len() as f64,
            seconds,
        });
        series.push(percent_curves(name, success));
    }
    let fig = plot::learning_curves_zoomed(
        &x,
        &series,
        (
            "Exact success probability on the seeds' house",
            "episodes sampled",
            "P(reach the meat) %",
        ),
        Some((95.0, "95 %")),
        super::early(&x),
    )?;
    Ok((table, fig))
}

// ANCHOR: betas
/// The β values of the sweep: no penalty, a small one, a large one.
pub const BETAS: [f64; 3] = [0.0, 0.04, 0.4];
// ANCHOR_END: betas

/// One β of the sweep: KL to the reference and exact J per iteration, one list per seed.
#[derive(Clone, Debug, Serialize)]
pub struct BetaRun {
    pub beta: f64,
    pub kl_ref: Vec<Vec<f64>>,
    pub exact_j: Vec<Vec<f64>>,
}

/// GRPO on the seeds' house for each β of [`BETAS`], 3 seeds each, with the random cat as
/// both the starting policy and the reference.
pub fn beta_sweep(
    config: &Ch06Config,
    mut progress: impl FnMut(),
) -> Result<(Vec<BetaRun>, Figures)> {
    let mut runs = Vec::new();
    for (b, &beta) in BETAS.iter().enumerate() {
        let (mut kls, mut js) = (Vec::new(), Vec::new());
        for k in 0..3 {
            let mut env = Env::seed();
            let c = GrpoConfig {
                iterations: config.beta_iterations,
                beta,
                seed: derive_seed(config.seed, (700 + b * 10 + k) as u64),
                ..GrpoConfig::grpo()
            };
            let log = grpo::train(&mut env, &c, |_| {})?.log;
            kls.push(log.iter().map(|l| l.kl_ref).collect());
            js.push(log.iter().map(|l| l.exact_j).collect());
            progress();
        }
        runs.push(BetaRun {
            beta,
            kl_ref: kls,
            exact_j: js,
        });
    }
    let per = GrpoConfig::grpo().episodes_per_iteration();
    let x: Vec<f64> = (0..config.beta_iterations)
        .map(|k| (k * per) as f64)
        .collect();
    let series =
        |f: fn(&BetaRun) -> &Vec<Vec<f64>>| series_of(&runs, |r| format!("β = {}", r.beta), f);
    let figures = vec![
        (
            "beta_kl",
            plot::learning_curves(
                &x,
                &series(|r| &r.kl_ref),
                "GRPO: KL(π ‖ π_ref) per step (k3 estimate on each batch)",
                "episodes sampled",
                "KL to the reference (nats per step)",
                None,
            )?,
        ),
        (
            "beta_return",
            plot::learning_curves(
                &x,
                &series(|r| &r.exact_j),
                "GRPO: exact J(π) for three values of β",
                "episodes sampled",
                "exact J(π)",
                Some((100.0, "J(π*)")),
            )?,
        ),
    ];
    Ok((runs, figures))
}

/// Everything chapter 6 shows.
pub struct Ch06 {
    pub comparison: Vec<Solve>,
    pub betas: Vec<BetaRun>,
    pub figures: Figures,
}

/// Runs chapter 6's experiments; `progress` is called once per training run.
pub fn run(config: &Ch06Config, mut progress: impl FnMut()) -> Result<Ch06> {
    let (comparison, fig) = comparison(config, &mut progress)?;
    let (betas, more) = beta_sweep(config, &mut progress)?;
    let mut figures = vec![("comparison", fig)];
    figures.extend(more);
    Ok(Ch06 {
        comparison,
        betas,
        figures,
    })
}

/// Training runs [`run`] makes (for progress bars).
pub fn runs(config: &Ch06Config) -> usize {
    ALGORITHMS.len() * config.seeds + 3 * BETAS.len()
}

impl Ch06 {
    /// Episodes to 95 % success and final J of each learner, in markdown.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| algorithm | episodes until P(success) ≥ 95 % (mean over seeds that got there) | final exact J (mean) |\n|---|---|---|\n",
        );
        for e in &self.comparison {
            s.push_str(&format!(
                "| {} | {} | {:.1} |\n",
                e.reach.algorithm,
                e.reach.cell(),
                e.final_j
            ));
        }
        s
    }

    /// Final KL to the reference and final J for each β, in markdown.
    pub fn beta_table(&self) -> String {
        let mut s = String::from(
            "| β | KL to π_ref at the end (mean of 3 seeds) | largest KL seen | final exact J (mean) |\n|---|---|---|---|\n",
        );
        for r in &self.betas {
            let last =
                |v: &Vec<Vec<f64>>| v.iter().filter_map(|x| x.last()).sum::<f64>() / v.len() as f64;
            let max_kl = r.kl_ref.iter().flatten().copied().fold(0.0, f64::max);
            s.push_str(&format!(
                "| {} | {:.3} | {max_kl:.3} | {:.1} |\n",
                r.beta,
                last(&r.kl_ref),
                last(&r.exact_j)
            ));
        }
        s
    }
}
