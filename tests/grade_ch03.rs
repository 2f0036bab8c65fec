//! Grading tests of chapter 3 (variance and baselines). A test named `ex_3_N_…` grades
//! exercise 3.N.

mod common;

use common::random_batch;
use zero_to_r1::advantage::{mean_baseline, reward_to_go};
use zero_to_r1::gridworld::ndarray::Array2;

#[test]
fn ex_3_1_mean_baseline_leaves_each_episode_out() {
    // Three episodes; the third has ended after one step.
    let g = Array2::from_shape_vec((3, 2), vec![1.0, 4.0, 3.0, 8.0, 5.0, 0.0]).unwrap();
    let m = Array2::from_shape_vec((3, 2), vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0]).unwrap();
    let b = mean_baseline(g.view(), m.view());
    let want = Array2::from_shape_vec((3, 2), vec![4.0, 8.0, 3.0, 4.0, 2.0, 0.0]).unwrap();
    assert_eq!(b, want);
}

#[test]
fn ex_3_1_mean_baseline_matches_a_naive_loop() {
    for seed in 0..5 {
        let (r, m) = random_batch(seed);
        let g = reward_to_go(r.view(), m.view(), 1.0);
        let fast = mean_baseline(g.view(), m.view());
        let (b, t) = g.dim();
        for i in 0..b {
            for k in 0..t {
                let others: Vec<f64> = (0..b)
                    .filter(|&j| j != i && m[[j, k]] > 0.0)
                    .map(|j| g[[j, k]])
                    .collect();
                let want = if m[[i, k]] == 0.0 || others.is_empty() {
                    0.0
                } else {
                    others.iter().sum::<f64>() / others.len() as f64
                };
                assert!((fast[[i, k]] - want).abs() < 1e-9, "episode {i}, step {k}");
            }
        }
        // Leave-one-out: changing episode 0's returns never changes its own baseline.
        let mut g2 = g.clone();
        g2.row_mut(0).mapv_inplace(|x| x * 3.0 + 7.0);
        let b2: Array2<f64> = mean_baseline(g2.view(), m.view());
        for k in 0..t {
            assert!((b2[[0, k]] - fast[[0, k]]).abs() < 1e-9, "step {k}");
        }
    }
}
