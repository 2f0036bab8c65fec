//! Checks shared by the learning tests.

use zero_to_r1::experiments::ch01::success_probabilities;
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::gridworld::Env;

/// The learned policy is within 5 % of the optimal J and reaches the meat with probability
/// at least 0.95 from every start cell (all exact).
pub fn assert_solved(env: &Env, table: &Array2<f64>) {
    let mdp = env.mdp();
    let j = mdp.expected_return(table.view(), 1.0).unwrap();
    let optimal = mdp.value_iteration(0.99, 1e-10).unwrap();
    let j_star = mdp.expected_return(optimal.policy.view(), 1.0).unwrap();
    assert!(j >= 0.95 * j_star, "J = {j}, J* = {j_star}");
    let p = success_probabilities(env.house(), env.config(), table).unwrap();
    for &s in env.house().starts() {
        assert!(p[s] >= 0.95, "success probability from {s}: {}", p[s]);
    }
}
