//! Chapter 2 — REINFORCE: learning curves of the four weightings of chapter 2 and 3 on the
//! seeds' house, several seeds each.

use gridworld::Env;
use serde::Serialize;

use crate::plot::{self, Curves, Svg};
use zero_to_r1::algo::reinforce::{train, Baseline, ReinforceConfig};
use zero_to_r1::algo::OptimizerKind;
use zero_to_r1::error::Result;
use zero_to_r1::rollout::derive_seed;

/// Settings of the learning-curve experiment.
#[derive(Clone, Debug)]
pub struct Ch02Config {
    /// Independent runs per weighting.
    pub seeds: usize,
    /// The REINFORCE settings shared by all runs (the baseline is varied).
    pub reinforce: ReinforceConfig,
    pub seed: u64,
}

impl Default for Ch02Config {
    fn default() -> Self {
        Ch02Config {
            seeds: 5,
            reinforce: ReinforceConfig {
                updates: 150,
                episodes_per_update: 16,
                optimizer: OptimizerKind::Sgd,
                lr: 0.01,
                ..ReinforceConfig::default()
            },
            seed: 1,
        }
    }
}

/// One weighting's summary over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct CurveSummary {
    pub baseline: &'static str,
    /// Exact J(π) after the last update, mean and standard deviation over seeds.
    pub final_j_mean: f64,
    pub final_j_std: f64,
    /// Episodes until the exact J first reached 90, averaged over the seeds that got there.
    pub episodes_to_90: Option<f64>,
    /// How many seeds reached J ≥ 90.
    pub seeds_reaching_90: usize,
}

/// Everything chapter 2 shows.
pub struct Ch02 {
    pub summaries: Vec<CurveSummary>,
    pub curves: Vec<Curves>,
    pub episodes: Vec<f64>,
    pub figures: Vec<(&'static str, Svg)>,
}

/// Runs every weighting with `config.seeds` seeds; `progress` is called after each update of
/// each run.
pub fn run(config: &Ch02Config, mut progress: impl FnMut()) -> Result<Ch02> {
    let mut curves = Vec::new();
    let mut summaries = Vec::new();
    let r = &config.reinforce;
    for (b, baseline) in Baseline::ALL.into_iter().enumerate() {
        let mut runs = Vec::new();
        for k in 0..config.seeds {
            let cfg = ReinforceConfig {
                baseline,
                seed: derive_seed(config.seed, (b * 1000 + k) as u64),
                ..r.clone()
            };
            let mut env = Env::seed();
            let trained = train(&mut env, &cfg, |_| progress())?;
            runs.push(trained.log.iter().map(|u| u.exact_j).collect::<Vec<f64>>());
        }
        let finals: Vec<f64> = runs
            .iter()
            .map(|r| *r.last().unwrap_or(&f64::NAN))
            .collect();
        let mean = finals.iter().sum::<f64>() / finals.len() as f64;
        let std = (finals.iter().map(|f| (f - mean).powi(2)).sum::<f64>()
            / (finals.len().max(2) - 1) as f64)
            .sqrt();
        let reach: Vec<f64> = runs
            .iter()
            .filter_map(|run| run.iter().position(|&j| j >= 90.0))
            .map(|u| ((u + 1) * r.episodes_per_update) as f64)
            .collect();
        summaries.push(CurveSummary {
            baseline: baseline.label(),
            final_j_mean: mean,
            final_j_std: std,
            episodes_to_90: (!reach.is_empty())
                .then(|| reach.iter().sum::<f64>() / reach.len() as f64),
            seeds_reaching_90: reach.len(),
        });
        curves.push(Curves {
            label: baseline.label().to_string(),
            runs,
        });
    }
    // The exact J logged at update u is that of the policy before it, after u·E episodes.
    let episodes: Vec<f64> = (0..r.updates)
        .map(|u| (u * r.episodes_per_update) as f64)
        .collect();
    let figures = vec![(
        "learning_curves",
        // Most of the learning is in the first sixth: a second panel shows it.
        plot::learning_curves_zoomed(
            &episodes,
            &curves,
            (
                &format!(
                    "REINFORCE on the cat's house: exact J(π) (SGD, lr {}, {} episodes per update)",
                    r.lr, r.episodes_per_update
                ),
                "episodes sampled",
                "exact J(π)",
            ),
            Some((100.0, "J(π*) = 100")),
            super::early(&episodes),
        )?,
    )];
    Ok(Ch02 {
        summaries,
        curves,
        episodes,
        figures,
    })
}

impl Ch02 {
    /// The summary as a markdown table.
    pub fn table(&self, config: &Ch02Config) -> String {
        let mut s = format!(
            "| weighting | exact J after {} episodes (mean ± sd over {} seeds) | episodes until J ≥ 90 (seeds that got there) |\n|---|---|---|\n",
            config.reinforce.updates * config.reinforce.episodes_per_update,
            config.seeds
        );
        for r in &self.summaries {
            let reach = match r.episodes_to_90 {
                Some(e) => format!("{e:.0} ({}/{})", r.seeds_reaching_90, config.seeds),
                None => format!("never (0/{})", config.seeds),
            };
            s.push_str(&format!(
                "| {} | {:.1} ± {:.1} | {reach} |\n",
                r.baseline, r.final_j_mean, r.final_j_std
            ));
        }
        s
    }
}
