//! Grading tests of chapter 7 (Dr. GRPO). A test named `ex_7_N_…` grades exercise 7.N.

mod common;

use common::{assert_solved, random_masked};
use zero_to_r1::algo::grpo::{self, GrpoConfig};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::gridworld::Env;
use zero_to_r1::objective::{aggregate, Aggregation};

fn tensors(x: &[Vec<f64>], lengths: &[usize]) -> (Tensor, Tensor) {
    let (b, t) = (x.len(), x[0].len());
    let d = Device::Cpu;
    let xs = Tensor::from_iter(x.iter().flatten().copied(), &d)
        .unwrap()
        .reshape((b, t))
        .unwrap();
    let m = Tensor::from_iter(
        (0..b).flat_map(|i| (0..t).map(move |k| if k < lengths[i] { 1.0 } else { 0.0 })),
        &d,
    )
    .unwrap()
    .reshape((b, t))
    .unwrap();
    (xs, m)
}

/// Checks the aggregations that `pick` selects against naive loops over responses and steps.
fn check_aggregations(pick: impl Fn(Aggregation) -> bool) {
    for seed in 0..5 {
        let (x, lengths) = random_masked(seed, 7, 9);
        let (xs, m) = tensors(&x, &lengths);
        let b = x.len() as f64;
        let row_sum = |i: usize| x[i][..lengths[i]].iter().sum::<f64>();
        let total: f64 = (0..x.len()).map(row_sum).sum();
        let steps = lengths.iter().sum::<usize>() as f64;
        let expected = [
            (Aggregation::EpisodeSum, total / b),
            (Aggregation::StepMean, total / steps),
            (
                Aggregation::ResponseMean,
                (0..x.len())
                    .map(|i| row_sum(i) / lengths[i] as f64)
                    .sum::<f64>()
                    / b,
            ),
            (Aggregation::Constant { budget: 12 }, total / (b * 12.0)),
        ];
        for (how, want) in expected.into_iter().filter(|(how, _)| pick(*how)) {
            let got = aggregate(&xs, &m, how).unwrap().to_scalar::<f64>().unwrap();
            assert!((got - want).abs() < 1e-12, "{how}: {got} vs {want}");
        }
    }
}

#[test]
fn ex_7_1_response_mean_matches_a_naive_loop() {
    check_aggregations(|how| how == Aggregation::ResponseMean);
}

#[test]
fn ex_7_2_constant_normaliser_matches_a_naive_loop() {
    check_aggregations(|how| matches!(how, Aggregation::Constant { .. }));
}

#[test]
fn episode_sum_and_step_mean_match_a_naive_loop() {
    check_aggregations(|how| matches!(how, Aggregation::EpisodeSum | Aggregation::StepMean));
}

#[test]
fn ex_7_2_dr_grpo_solves_the_house() {
    let mut env = Env::seed();
    let config = GrpoConfig {
        seed: 3,
        ..GrpoConfig::dr_grpo()
    };
    let trained = grpo::train(&mut env, &config, |_| {}).unwrap();
    assert_solved(&env, &trained.table().unwrap());
}
