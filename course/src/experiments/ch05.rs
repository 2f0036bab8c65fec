//! Chapter 5 — PPO: sample efficiency of REINFORCE, actor-critic and PPO on the seeds'
//! house and on a slippery one, and what the clip buys when a batch is reused many times.

use gridworld::{Env, EnvConfig, House};
use serde::Serialize;

use crate::experiments::series_of;
use crate::plot::{self, Curves, Figures, Svg};
use zero_to_r1::algo::actor_critic::{self, ActorCriticConfig};
use zero_to_r1::algo::ppo::{self, PpoConfig};
use zero_to_r1::algo::reinforce::{self, ReinforceConfig};
use zero_to_r1::error::Result;
use zero_to_r1::rollout::derive_seed;

/// The three learners compared.
pub const ALGORITHMS: [&str; 3] = [
    "REINFORCE + learned baseline",
    "actor-critic (λ = 0)",
    "PPO",
];

/// Settings of the comparison.
#[derive(Clone, Debug)]
pub struct Ch05Config {
    pub seeds: usize,
    /// Episodes each run may sample.
    pub episodes: usize,
    pub episodes_per_iteration: usize,
    pub seed: u64,
}

impl Default for Ch05Config {
    fn default() -> Self {
        Ch05Config {
            seeds: 5,
            episodes: 2400,
            episodes_per_iteration: 16,
            seed: 1,
        }
    }
}

/// Episodes until the exact success probability first reached 95 %, per algorithm and house.
#[derive(Clone, Debug, Serialize)]
pub struct Efficiency {
    pub house: &'static str,
    pub algorithm: &'static str,
    /// Mean over the seeds that got there.
    pub episodes_to_95: Option<f64>,
    pub seeds_reaching: usize,
    pub seeds: usize,
}

impl Efficiency {
    /// The row of `algorithm` on `house` from each seed's exact success probabilities (one
    /// value per iteration of `per` episodes).
    pub fn from_runs(
        house: &'static str,
        algorithm: &'static str,
        runs: &[Vec<f64>],
        per: usize,
    ) -> Efficiency {
        let reach: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.iter().position(|&p| p >= 0.95))
            .map(|i| ((i + 1) * per) as f64)
            .collect();
        Efficiency {
            house,
            algorithm,
            episodes_to_95: (!reach.is_empty())
                .then(|| reach.iter().sum::<f64>() / reach.len() as f64),
            seeds_reaching: reach.len(),
            seeds: runs.len(),
        }
    }

    /// The episodes to 95 % as a table cell, with how many seeds got there.
    pub fn cell(&self) -> String {
        match self.episodes_to_95 {
            Some(x) => format!("{x:.0} ({}/{} seeds)", self.seeds_reaching, self.seeds),
            None => format!("not within the budget (0/{} seeds)", self.seeds),
        }
    }
}

/// Success probabilities (0–1) of several runs as learning curves in percent.
pub fn percent_curves(label: &str, runs: Vec<Vec<f64>>) -> Curves {
    Curves {
        label: label.to_string(),
        runs: runs
            .into_iter()
            .map(|r| r.into_iter().map(|p| 100.0 * p).collect())
            .collect(),
    }
}

/// One run's exact success probability after each iteration, for one algorithm.
fn curve(
    algorithm: usize,
    env: &mut Env,
    iterations: usize,
    per: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    Ok(match algorithm {
        0 => {
            let c = ReinforceConfig {
                updates: iterations,
                episodes_per_update: per,
                seed,
                ..ReinforceConfig::default()
            };
            reinforce::train(env, &c, |_| {})?
                .log
                .iter()
                .map(|u| u.exact_success)
                .collect()
        }
        1 => {
            let c = ActorCriticConfig {
                iterations,
                episodes_per_iteration: per,
                seed,
                ..ActorCriticConfig::default()
            };
            actor_critic::train(env, &c, |_| {})?
                .log
                .iter()
                .map(|u| u.exact_success)
                .collect()
        }
        _ => {
            let c = PpoConfig {
                iterations,
                episodes_per_iteration: per,
                seed,
                ..PpoConfig::default()
            };
            ppo::train(env, &c, |_| {})?
                .log
                .iter()
                .map(|u| u.exact_success)
                .collect()
        }
    })
}

/// Everything chapter 5 shows.
pub struct Ch05 {
    pub efficiency: Vec<Efficiency>,
    pub clipping: Vec<ClipRun>,
    pub figures: Vec<(&'static str, Svg)>,
}

/// The houses of the comparison.
fn houses() -> Result<Vec<(&'static str, &'static str, Env)>> {
    let slippery = EnvConfig {
        slip: 0.2,
        ..EnvConfig::default()
    };
    Ok(vec![
        ("seeds' house", "efficiency", Env::seed()),
        (
            "slippery house (slip 0.2)",
            "efficiency_slippery",
            Env::new(House::seed(), slippery)?,
        ),
    ])
}

/// Runs every algorithm with every seed on both houses; `progress` is called per run.
pub fn efficiency(
    config: &Ch05Config,
    mut progress: impl FnMut(),
) -> Result<(Vec<Efficiency>, Figures)> {
    let per = config.episodes_per_iteration;
    let iterations = config.episodes / per;
    let x: Vec<f64> = (0..iterations).map(|k| (k * per) as f64).collect();
    let mut table = Vec::new();
    let mut figures = Vec::new();
    for (h, (house, fig, mut env)) in houses()?.into_iter().enumerate() {
        let mut series = Vec::new();
        for (a, name) in ALGORITHMS.into_iter().enumerate() {
            let mut runs = Vec::new();
            for k in 0..config.seeds {
                let seed = derive_seed(config.seed, (h * 100 + a * 10 + k) as u64);
                runs.push(curve(a, &mut env, iterations, per, seed)?);
                progress();
            }
            table.push(Efficiency::from_runs(house, name, &runs, per));
            series.push(percent_curves(name, runs));
        }
        figures.push((
            fig,
            plot::learning_curves_zoomed(
                &x,
                &series,
                (
                    &format!("Exact success probability on the {house}"),
                    "episodes sampled",
                    "P(reach the meat) %",
                ),
                Some((95.0, "95 %")),
                super::early(&x),
            )?,
        ));
    }
    Ok((table, figures))
}

/// One PPO variant of the clipping experiment.
#[derive(Clone, Debug, Serialize)]
pub struct ClipRun {
    pub label: String,
    /// Exact J and approx_kl per iteration, one list per seed.
    pub exact_j: Vec<Vec<f64>>,
    pub approx_kl: Vec<Vec<f64>>,
}

// ANCHOR: clip_variants
/// PPO with heavy reuse (many epochs per batch): with the clip ε = 0.2, with a clip so
/// wide it never binds (ε = 10), and with no clip at all.
pub fn clip_variants() -> Vec<(String, Option<f64>)> {
    vec![
        ("clip ε = 0.2".to_string(), Some(0.2)),
        ("clip ε = 10 (rarely binds)".to_string(), Some(10.0)),
        ("no clip".to_string(), None),
    ]
}
// ANCHOR_END: clip_variants

/// Runs the clipping experiment: 20 epochs per batch, lr 0.03, 3 seeds.
pub fn clipping(seed: u64, mut progress: impl FnMut()) -> Result<(Vec<ClipRun>, Figures)> {
    let iterations = 40;
    let mut runs = Vec::new();
    for (label, clip) in clip_variants() {
        let mut js = Vec::new();
        let mut kls = Vec::new();
        for k in 0..3 {
            let mut env = Env::seed();
            let c = PpoConfig {
                iterations,
                epochs: 20,
                lr: 0.03,
                clip,
                seed: derive_seed(seed, 500 + k),
                ..PpoConfig::default()
            };
            let log = ppo::train(&mut env, &c, |_| {})?.log;
            js.push(log.iter().map(|u| u.exact_j).collect());
            kls.push(log.iter().map(|u| u.approx_kl).collect());
            progress();
        }
        runs.push(ClipRun {
            label,
            exact_j: js,
            approx_kl: kls,
        });
    }
    let x: Vec<f64> = (0..iterations).map(|k| (k * 16) as f64).collect();
    let series = |f: fn(&ClipRun) -> &Vec<Vec<f64>>| series_of(&runs, |r| r.label.clone(), f);
    let figures = vec![
        (
            "clip_return",
            plot::learning_curves(
                &x,
                &series(|r| &r.exact_j),
                "PPO with 20 epochs per batch: exact J(π)",
                "episodes sampled",
                "exact J(π)",
                Some((100.0, "J(π*)")),
            )?,
        ),
        (
            "clip_kl",
            plot::learning_curves(
                &x,
                &series(|r| &r.approx_kl),
                "PPO with 20 epochs per batch: approx_kl to π_old during each update",
                "episodes sampled",
                "approx_kl (k3)",
                None,
            )?,
        ),
    ];
    Ok((runs, figures))
}

/// Runs chapter 5's experiments.
pub fn run(config: &Ch05Config, mut progress: impl FnMut()) -> Result<Ch05> {
    let (efficiency, mut figures) = efficiency(config, &mut progress)?;
    let (clipping, more) = clipping(config.seed, &mut progress)?;
    figures.extend(more);
    Ok(Ch05 {
        efficiency,
        clipping,
        figures,
    })
}

impl Ch05 {
    /// The sample-efficiency table in markdown.
    pub fn table(&self) -> String {
        let mut s = String::from("| house | algorithm | episodes until P(success) ≥ 95 % (mean over seeds that got there) |\n|---|---|---|\n");
        for e in &self.efficiency {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                e.house,
                e.algorithm,
                e.cell()
            ));
        }
        s
    }

    /// Final exact J and largest approx_kl of the clipping runs, in markdown.
    pub fn clip_table(&self) -> String {
        let mut s = String::from("| variant | final exact J (mean over 3 seeds) | largest approx_kl seen |\n|---|---|---|\n");
        for r in &self.clipping {
            let finals: Vec<f64> = r.exact_j.iter().filter_map(|j| j.last().copied()).collect();
            let mean = finals.iter().sum::<f64>() / finals.len() as f64;
            let max_kl = r.approx_kl.iter().flatten().copied().fold(0.0, f64::max);
            s.push_str(&format!("| {} | {mean:.1} | {max_kl:.3} |\n", r.label));
        }
        s
    }
}
