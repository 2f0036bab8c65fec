//! Chapter 3 — variance and baselines, measured: at one fixed policy, many independent
//! batch estimates of the policy gradient for each weighting, compared with the exact
//! gradient from the exact MDP.

use candle_core::Device;
use gridworld::ndarray::Array2;
use gridworld::{Env, EnvConfig, House, Rewards};
use serde::Serialize;

use crate::plot::{self, Svg};
use zero_to_r1::advantage::{
    exact_state_values, mean_baseline, reward_to_go, state_values, std_scale, subtract_baseline,
    total_return,
};
use zero_to_r1::algo::reinforce::fit_value;
use zero_to_r1::algo::{new_model, ModelKind, Opt, OptimizerKind};
use zero_to_r1::error::Result;
use zero_to_r1::exact::{fixed_logits, gradient_estimate, softmax_gradient, softmax_policy};
use zero_to_r1::policy::{value_table, Tabular};
use zero_to_r1::rollout::{derive_seed, sample_batch, Batch};

/// Settings of the variance measurement.
#[derive(Clone, Debug)]
pub struct Ch03Config {
    /// Independent batch estimates per weighting.
    pub batches: usize,
    /// Episodes in each batch.
    pub episodes_per_batch: usize,
    /// How strongly the fixed policy prefers the optimal move: logits = `preference` on the
    /// move of π* (γ = 0.99), 0 on the others.
    pub preference: f64,
    /// Batches used to fit the learned value function beforehand.
    pub value_batches: usize,
    pub seed: u64,
}

impl Default for Ch03Config {
    fn default() -> Self {
        Ch03Config {
            batches: 2000,
            episodes_per_batch: 8,
            preference: 1.0,
            value_batches: 300,
            seed: 1,
        }
    }
}

/// The weightings whose gradient estimates are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    TotalReturn,
    RewardToGo,
    MeanBaseline,
    ExactValue,
    LearnedValue,
}

impl Estimator {
    pub const ALL: [Estimator; 5] = [
        Estimator::TotalReturn,
        Estimator::RewardToGo,
        Estimator::MeanBaseline,
        Estimator::ExactValue,
        Estimator::LearnedValue,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Estimator::TotalReturn => "total return G₀",
            Estimator::RewardToGo => "reward-to-go Gₜ",
            Estimator::MeanBaseline => "Gₜ − batch mean",
            Estimator::ExactValue => "Gₜ − exact V",
            Estimator::LearnedValue => "Gₜ − learned V",
        }
    }
}

/// Bias and variance of one estimator, over `batches` independent estimates ĝ.
#[derive(Clone, Debug, Serialize)]
pub struct EstimatorStats {
    pub estimator: &'static str,
    /// ‖mean ĝ − g‖: how far the average estimate is from the exact gradient.
    pub bias_norm: f64,
    /// The size of `bias_norm` expected from noise alone, √(variance / batches).
    pub bias_noise: f64,
    /// E‖ĝ − mean ĝ‖²: the total variance (summed over all parameters).
    pub variance: f64,
    /// Standard error of `variance`, from the spread of the variance over 10 equal chunks.
    pub variance_se: f64,
    /// E‖ĝ − g‖² / ‖g‖²: mean squared error relative to the gradient's own size.
    pub relative_mse: f64,
}

fn stats(label: &'static str, estimates: &[Array2<f64>], exact: &Array2<f64>) -> EstimatorStats {
    let m = estimates.len() as f64;
    let mut mean = Array2::zeros(exact.dim());
    for e in estimates {
        mean += e;
    }
    mean /= m;
    let sq = |a: &Array2<f64>| a.iter().map(|x| x * x).sum::<f64>();
    let variance = estimates.iter().map(|e| sq(&(e - &mean))).sum::<f64>() / (m - 1.0);
    let mse = estimates.iter().map(|e| sq(&(e - exact))).sum::<f64>() / m;
    let chunk = (estimates.len() / 10).max(2);
    let chunk_vars: Vec<f64> = estimates
        .chunks(chunk)
        .filter(|c| c.len() == chunk)
        .map(|c| {
            let mut cm = Array2::zeros(exact.dim());
            for e in c {
                cm += e;
            }
            cm /= c.len() as f64;
            c.iter().map(|e| sq(&(e - &cm))).sum::<f64>() / (c.len() as f64 - 1.0)
        })
        .collect();
    let k = chunk_vars.len() as f64;
    let cv_mean = chunk_vars.iter().sum::<f64>() / k;
    let variance_se = (chunk_vars
        .iter()
        .map(|v| (v - cv_mean).powi(2))
        .sum::<f64>()
        / (k - 1.0)
        / k)
        .sqrt();
    EstimatorStats {
        estimator: label,
        bias_norm: sq(&(&mean - exact)).sqrt(),
        bias_noise: (variance / m).sqrt(),
        variance,
        variance_se,
        relative_mse: mse / sq(exact),
    }
}

/// A tabular value function fitted to the fixed policy's reward-to-go beforehand.
pub fn learned_value(env: &mut Env, table: &Array2<f64>, config: &Ch03Config) -> Result<Vec<f64>> {
    let value = new_model(ModelKind::Tabular, env.house(), 1, 0)?;
    let mut opt = Opt::new(OptimizerKind::Adam, value.vars(), 0.5)?;
    for k in 0..config.value_batches {
        let batch = sample_batch(
            env,
            table.view(),
            config.episodes_per_batch,
            derive_seed(config.seed ^ 0xBA5E, k as u64),
        );
        fit_value(value.as_ref(), &mut opt, &batch, 1.0, 5)?;
    }
    value_table(value.as_ref())
}

/// The weights of every step for one estimator.
fn weights(
    est: Estimator,
    batch: &Batch,
    exact_values: &Array2<f64>,
    learned: &[f64],
) -> Array2<f64> {
    let (r, m) = (batch.rewards.view(), batch.mask.view());
    let g = reward_to_go(r, m, 1.0);
    match est {
        Estimator::TotalReturn => total_return(r, m, 1.0),
        Estimator::RewardToGo => g,
        Estimator::MeanBaseline => {
            subtract_baseline(g.view(), mean_baseline(g.view(), m).view(), m)
        }
        Estimator::ExactValue => {
            let v = exact_state_values(exact_values.view(), batch.states.view(), m);
            subtract_baseline(g.view(), v.view(), m)
        }
        Estimator::LearnedValue => {
            let v = state_values(learned, batch.states.view(), m);
            subtract_baseline(g.view(), v.view(), m)
        }
    }
}

/// Measures every estimator on `env` at the fixed policy; `progress` is called per batch.
pub fn measure(
    env: &mut Env,
    config: &Ch03Config,
    mut progress: impl FnMut(),
) -> Result<Vec<EstimatorStats>> {
    let logits = fixed_logits(env, config.preference)?;
    let table = softmax_policy(&logits);
    let mdp = env.mdp();
    let exact = softmax_gradient(&mdp, &logits, 1.0)?;
    let learned = learned_value(env, &table, config)?;
    let policy = Tabular::from_array(&logits, &Device::Cpu)?;
    let mut estimates: Vec<Vec<Array2<f64>>> = vec![Vec::new(); Estimator::ALL.len()];
    for k in 0..config.batches {
        // Every estimator sees the same batches, so differences are not luck of the draw.
        let batch = sample_batch(
            env,
            table.view(),
            config.episodes_per_batch,
            derive_seed(config.seed, k as u64),
        );
        for (e, est) in Estimator::ALL.into_iter().enumerate() {
            let w = weights(est, &batch, &exact.values, &learned);
            estimates[e].push(gradient_estimate(&policy, &batch, &w)?);
        }
        progress();
    }
    Ok(Estimator::ALL
        .into_iter()
        .zip(&estimates)
        .map(|(est, e)| stats(est.label(), e, &exact.grad))
        .collect())
}

/// Dividing by the standard deviation is not a baseline: at reward scales 1 and 10, the
/// average normalised estimate against the exact gradient.
#[derive(Clone, Debug, Serialize)]
pub struct StdScaling {
    pub reward_scale: f64,
    /// ‖∇J‖ of the exact gradient.
    pub exact_norm: f64,
    /// ‖mean ĝ‖ of the estimate with (Gₜ − b)/σ̂ weights.
    pub normalised_norm: f64,
    /// Cosine between the two: direction kept?
    pub cosine: f64,
}

// ANCHOR: std_normalised
/// Weights (Gₜ − batch mean) / σ̂, with σ̂ the standard deviation of the batch's
/// episode returns: the "advantage normalisation" of many implementations.
pub fn std_normalised(batch: &Batch) -> Array2<f64> {
    let m = batch.mask.view();
    let g = reward_to_go(batch.rewards.view(), m, 1.0);
    let a = subtract_baseline(g.view(), mean_baseline(g.view(), m).view(), m);
    let returns = batch.returns();
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    a * std_scale(sd)
}
// ANCHOR_END: std_normalised

/// Runs the std-scaling comparison at reward scales 1 and 10.
pub fn std_scaling(config: &Ch03Config, mut progress: impl FnMut()) -> Result<Vec<StdScaling>> {
    let mut out = Vec::new();
    for scale in [1.0, 10.0] {
        let d = Rewards::default();
        let rewards = Rewards {
            floor: d.floor * scale,
            broom: d.broom * scale,
            bathtub: d.bathtub * scale,
            meat: d.meat * scale,
            step_cost: 0.0,
        };
        let mut env = Env::new(
            House::seed(),
            EnvConfig {
                rewards,
                ..EnvConfig::default()
            },
        )?;
        let logits = fixed_logits(&env, config.preference)?;
        let table = softmax_policy(&logits);
        let exact = softmax_gradient(&env.mdp(), &logits, 1.0)?.grad;
        let policy = Tabular::from_array(&logits, &Device::Cpu)?;
        let mut mean = Array2::zeros(exact.dim());
        for k in 0..config.batches {
            let batch = sample_batch(
                &mut env,
                table.view(),
                config.episodes_per_batch,
                derive_seed(config.seed, k as u64),
            );
            mean += &gradient_estimate(&policy, &batch, &std_normalised(&batch))?;
            progress();
        }
        mean /= config.batches as f64;
        let norm = |a: &Array2<f64>| a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let dot: f64 = mean.iter().zip(exact.iter()).map(|(a, b)| a * b).sum();
        out.push(StdScaling {
            reward_scale: scale,
            exact_norm: norm(&exact),
            normalised_norm: norm(&mean),
            cosine: dot / (norm(&mean) * norm(&exact)),
        });
    }
    Ok(out)
}

/// Everything chapter 3 shows.
pub struct Ch03 {
    pub stats: Vec<EstimatorStats>,
    pub scaling: Vec<StdScaling>,
    pub figures: Vec<(&'static str, Svg)>,
}

/// Runs chapter 3's measurements with their figure.
pub fn run(config: &Ch03Config, mut progress: impl FnMut()) -> Result<Ch03> {
    let mut env = Env::seed();
    let stats = measure(&mut env, config, &mut progress)?;
    let scaling = std_scaling(config, &mut progress)?;
    let labels: Vec<String> = stats.iter().map(|s| s.estimator.to_string()).collect();
    let values: Vec<f64> = stats.iter().map(|s| s.variance).collect();
    let errors: Vec<f64> = stats.iter().map(|s| s.variance_se).collect();
    let figures = vec![(
        "variance",
        plot::log_dot_chart(
            &labels,
            &values,
            &errors,
            &format!(
                "Variance of the gradient estimate ({} episodes per batch, {} batches)",
                config.episodes_per_batch, config.batches
            ),
            "total variance E‖ĝ − E ĝ‖² (log scale)",
        )?,
    )];
    Ok(Ch03 {
        stats,
        scaling,
        figures,
    })
}

impl Ch03 {
    /// The measurements as a markdown table.
    pub fn table(&self) -> String {
        let mut s = String::from(
            // Non-breaking spaces keep each formula on one line when a header wraps.
            "| weighting | bias ‖E\u{a0}ĝ\u{a0}−\u{a0}∇J‖ | bias expected from noise alone | variance E‖ĝ\u{a0}−\u{a0}E\u{a0}ĝ‖² | relative MSE E‖ĝ\u{a0}−\u{a0}∇J‖²\u{a0}/\u{a0}‖∇J‖² |\n|---|---|---|---|---|\n",
        );
        for e in &self.stats {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.0} ± {:.0} | {:.2} |\n",
                e.estimator, e.bias_norm, e.bias_noise, e.variance, e.variance_se, e.relative_mse
            ));
        }
        s
    }

    /// The std-scaling comparison as a markdown table.
    pub fn scaling_table(&self) -> String {
        let mut s = String::from(
            "| rewards × | ‖∇J‖ (exact) | ‖E\u{a0}ĝ‖ with (Gₜ\u{a0}−\u{a0}b)/σ̂ weights | cosine between them |\n|---|---|---|---|\n",
        );
        for r in &self.scaling {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.3} |\n",
                r.reward_scale, r.exact_norm, r.normalised_norm, r.cosine
            ));
        }
        s
    }
}
