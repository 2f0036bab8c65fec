//! Chapter 9 — the curves the tour draws of a GRPO run, and the moving average every
//! chapter 9 figure smooths its per-step metrics with. The chapter's measured runs are in
//! [`super::zero`].

use crate::plot::{learning_curves, Curves, Svg};
use zero_to_r1::error::Result;
use zero_to_r1::lm::grpo::GrpoStep;

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
        "GRPO: the rollouts on training prompts",
        "GRPO step",
        &format!("% (moving average over {w} steps)"),
        None,
    )
}
