//! Chapter 1 — the cat's house: a random cat, measured by Monte Carlo and computed exactly;
//! the optimal cat by value iteration.

use gridworld::ndarray::Array2;
use gridworld::{Env, Solution};
use plotters::style::RGBColor;
use serde::Serialize;

use crate::plot::{self, Marker, Svg};
use zero_to_r1::error::Result;
use zero_to_r1::rollout::{monte_carlo, MonteCarlo};

/// Settings of the chapter-1 experiment.
#[derive(Clone, Debug)]
pub struct Ch01Config {
    /// Random-cat episodes for the Monte Carlo estimate.
    pub episodes: usize,
    pub seed: u64,
    /// Discount for the optimal cat (value iteration); the random cat's J uses γ = 1.
    pub gamma: f64,
    /// A smaller discount: an impatient cat, to show how γ changes the optimal path.
    pub hasty_gamma: f64,
}

impl Default for Ch01Config {
    fn default() -> Self {
        Ch01Config {
            episodes: 10_000,
            seed: 1,
            gamma: 0.99,
            hasty_gamma: 0.9,
        }
    }
}

/// The random cat, measured and computed.
#[derive(Clone, Debug, Serialize)]
pub struct RandomCat {
    pub episodes: usize,
    pub seed: u64,
    pub max_steps: usize,
    /// Exact J(π) of the uniformly random policy (γ = 1, episodes cut at `max_steps`).
    pub exact_j: f64,
    /// Monte Carlo estimate of J: the mean return over `episodes` episodes.
    pub mc_mean: f64,
    /// Standard error of that mean.
    pub mc_std_err: f64,
    /// Standard deviation of a single episode's return.
    pub return_std: f64,
    /// (estimate − exact) / standard error: should look like a draw from N(0, 1).
    pub z: f64,
    /// Exact probability of reaching the meat before the step limit.
    pub exact_success: f64,
    /// Fraction of sampled episodes that reached the meat.
    pub mc_success: f64,
    pub mean_length: f64,
}

/// Exact J and success probability of `policy`, and a Monte Carlo check of both.
pub fn random_cat(
    env: &mut Env,
    policy: &Array2<f64>,
    episodes: usize,
    seed: u64,
    progress: impl FnMut(usize),
) -> Result<(RandomCat, MonteCarlo)> {
    let mdp = env.mdp();
    let exact_j = mdp.expected_return(policy.view(), 1.0)?;
    let exact_success = success_probability(env.house(), env.config(), policy)?;
    let mc = monte_carlo(env, policy.view(), 1.0, episodes, seed, progress);
    let report = RandomCat {
        episodes,
        seed,
        max_steps: env.config().max_steps,
        exact_j,
        mc_mean: mc.mean(),
        mc_std_err: mc.std_err(),
        return_std: mc.std(),
        z: (mc.mean() - exact_j) / mc.std_err(),
        exact_success,
        mc_success: mc.success_rate(),
        mean_length: mc.mean_length(),
    };
    Ok((report, mc))
}

pub use zero_to_r1::exact::{success_probabilities, success_probability};

/// Everything chapter 1 shows.
pub struct Ch01 {
    pub random: RandomCat,
    pub returns: MonteCarlo,
    pub optimal: Solution,
    pub hasty: Solution,
    pub figures: Vec<(&'static str, Svg)>,
}

/// Runs chapter 1 on `env`: the random cat (exact and Monte Carlo) and value iteration, with
/// every figure.
pub fn run(env: &mut Env, config: &Ch01Config, progress: impl FnMut(usize)) -> Result<Ch01> {
    let mdp = env.mdp();
    let uniform = mdp.uniform_policy();
    let (random, returns) = random_cat(env, &uniform, config.episodes, config.seed, progress)?;
    let horizon = env.config().max_steps;
    let random_values = mdp.evaluate_finite(uniform.view(), 1.0, horizon)?;
    let optimal = mdp.value_iteration(config.gamma, 1e-10)?;
    let hasty = mdp.value_iteration(config.hasty_gamma, 1e-10)?;
    let house = env.house();
    let exact_colour = RGBColor(192, 57, 43);
    let mc_colour = RGBColor(20, 20, 20);
    let figures = vec![
        ("house", plot::house_figure(house, None, "The cat's house")?),
        (
            "random_returns",
            plot::histogram(
                &returns.returns,
                40,
                &format!("Returns of {} random-cat episodes", config.episodes),
                "return G",
                &[
                    Marker::new(
                        random.exact_j,
                        format!("exact J = {:.2}", random.exact_j),
                        exact_colour,
                    ),
                    Marker::new(
                        random.mc_mean,
                        format!(
                            "Monte Carlo mean = {:.2} ± {:.2}",
                            random.mc_mean, random.mc_std_err
                        ),
                        mc_colour,
                    ),
                ],
            )?,
        ),
        (
            "running_mean",
            plot::running_mean(
                &returns.returns,
                random.exact_j,
                "Monte Carlo estimate of J as episodes accumulate",
            )?,
        ),
        (
            "random_values",
            plot::value_figure(
                house,
                random_values.row(horizon),
                None,
                &format!("Random cat: exact V(s) with {horizon} steps left"),
            )?,
        ),
        (
            "optimal_values",
            plot::value_figure(
                house,
                optimal.values.view(),
                Some(optimal.policy.view()),
                &format!("Optimal cat: V*(s) and π*(s), γ = {}", config.gamma),
            )?,
        ),
        (
            "hasty_values",
            plot::value_figure(
                house,
                hasty.values.view(),
                Some(hasty.policy.view()),
                &format!("Impatient cat: V*(s) and π*(s), γ = {}", config.hasty_gamma),
            )?,
        ),
    ];
    Ok(Ch01 {
        random,
        returns,
        optimal,
        hasty,
        figures,
    })
}

impl Ch01 {
    /// The chapter's numbers as a markdown table (included by the book).
    pub fn table(&self) -> String {
        let r = &self.random;
        format!(
            "| quantity | exact | Monte Carlo ({} episodes, seed {}) |\n\
             |---|---|---|\n\
             | expected return J(π) | {:.3} | {:.3} ± {:.3} (standard error) |\n\
             | P(reach the meat within {} steps) | {:.4} | {:.4} |\n\
             | mean episode length | | {:.1} steps |\n\
             | standard deviation of one return | | {:.2} |\n",
            r.episodes,
            r.seed,
            r.exact_j,
            r.mc_mean,
            r.mc_std_err,
            r.max_steps,
            r.exact_success,
            r.mc_success,
            r.mean_length,
            r.return_std,
        )
    }
}
