//! The exact MDP against naive references and hand-worked values.

use gridworld::ndarray::{Array1, Array2};
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};
use gridworld::{move_from, Action, Cell, Env, EnvConfig, House, Mdp, MdpError};

fn mdp(map: &str, config: EnvConfig) -> (House, Mdp) {
    let house = House::parse(map).unwrap();
    let m = Mdp::new(&house, &config);
    (house, m)
}

fn random_policy(n: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = Array2::from_shape_fn((n, 4), |_| rng.random::<f64>() + 0.05);
    for mut row in p.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    p
}

/// Naive reference: the expected return with `k` steps left, by recursing over every action
/// and every slip outcome straight from the house (no tables, no memo).
fn naive_value(
    house: &House,
    config: &EnvConfig,
    pi: &Array2<f64>,
    gamma: f64,
    s: usize,
    k: usize,
) -> f64 {
    if k == 0 || matches!(house.cells()[s], Cell::Meat | Cell::Wall) {
        return 0.0;
    }
    let mut v = 0.0;
    for a in Action::ALL {
        let [l, r] = a.sideways();
        for (taken, p) in [
            (a, 1.0 - config.slip),
            (l, config.slip / 2.0),
            (r, config.slip / 2.0),
        ] {
            let to = move_from(house, s, taken);
            let reward = config.rewards.for_cell(house.cells()[to]);
            v += pi[[s, a.index()]]
                * p
                * (reward + gamma * naive_value(house, config, pi, gamma, to, k - 1));
        }
    }
    v
}

#[test]
fn transition_rows_are_distributions() {
    let config = EnvConfig {
        slip: 0.2,
        ..EnvConfig::default()
    };
    let house = House::seed();
    let m = Mdp::new(&house, &config);
    let p = m.transition_tensor();
    for s in 0..m.n_states() {
        for a in 0..4 {
            let sum: f64 = p.slice(gridworld::ndarray::s![s, a, ..]).sum();
            let want = if m.is_absorbing(s) { 0.0 } else { 1.0 };
            assert!((sum - want).abs() < 1e-12, "state {s} action {a}: {sum}");
        }
    }
}

#[test]
fn transitions_match_the_simulator() {
    // Sample the environment from one cell next to a wall and compare with P(s'|s,a).
    let config = EnvConfig {
        slip: 0.3,
        max_steps: 1,
        ..EnvConfig::default()
    };
    let (house, m) = mdp("#C.\n..M\n", config);
    let mut env = Env::new(house, config).unwrap();
    let n = 20_000u64;
    for a in Action::ALL {
        let mut counts = [0usize; 6];
        for seed in 0..n {
            env.reset(seed);
            counts[env.step(a).state] += 1;
        }
        for &(t, p) in m.successors(1, a) {
            let freq = counts[t] as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
            assert!((freq - p).abs() < 5.0 * sd, "{a:?} -> {t}: {freq} vs {p}");
        }
    }
}

#[test]
fn finite_horizon_evaluation_matches_naive_recursion() {
    let config = EnvConfig {
        slip: 0.2,
        ..EnvConfig::default()
    };
    let map = "C.B\n.T.\n#.M\n";
    let (house, m) = mdp(map, config);
    let pi = random_policy(m.n_states(), 3);
    let horizon = 6;
    let v = m.evaluate_finite(pi.view(), 0.9, horizon).unwrap();
    for k in 0..=horizon {
        for s in 0..m.n_states() {
            let naive = naive_value(&house, &config, &pi, 0.9, s, k);
            assert!(
                (v[[k, s]] - naive).abs() < 1e-9,
                "k={k} s={s}: {} vs {naive}",
                v[[k, s]]
            );
        }
    }
}

#[test]
fn random_cat_in_a_two_cell_corridor_by_hand() {
    // From C only "right" reaches the meat; the other three moves bump and pay 0.
    // P(reach within H steps) = 1 - 0.75^H, so J_H = 100 (1 - 0.75^H) with γ = 1.
    let config = EnvConfig {
        max_steps: 5,
        ..EnvConfig::default()
    };
    let (_, m) = mdp("CM", config);
    let j = m.expected_return(m.uniform_policy().view(), 1.0).unwrap();
    assert!((j - 100.0 * (1.0 - 0.75f64.powi(5))).abs() < 1e-12, "{j}");
    // Infinite horizon with γ = 0.9: V = 25 + 0.75·0.9·V.
    let v = m.evaluate(m.uniform_policy().view(), 0.9).unwrap();
    assert!((v[0] - 25.0 / (1.0 - 0.675)).abs() < 1e-9, "{}", v[0]);
}

#[test]
fn infinite_horizon_evaluation_matches_the_power_series() {
    let config = EnvConfig {
        slip: 0.1,
        ..EnvConfig::default()
    };
    let house = House::seed();
    let m = Mdp::new(&house, &config);
    let pi = random_policy(m.n_states(), 11);
    let gamma = 0.9;
    let v = m.evaluate(pi.view(), gamma).unwrap();
    // V = Σ_k (γ P_π)^k r_π with dense arrays built from the transition tensor.
    let p = m.transition_tensor();
    let n = m.n_states();
    let p_pi = Array2::from_shape_fn((n, n), |(s, t)| {
        (0..4).map(|a| pi[[s, a]] * p[[s, a, t]]).sum()
    });
    let r_pi = Array1::from_shape_fn(n, |s| {
        if m.is_absorbing(s) {
            0.0
        } else {
            (0..4).map(|a| pi[[s, a]] * m.rewards()[[s, a]]).sum()
        }
    });
    let mut term = r_pi.clone();
    let mut series = r_pi;
    for _ in 0..800 {
        term = p_pi.dot(&term) * gamma;
        series += &term;
    }
    for s in 0..n {
        assert!(
            (v[s] - series[s]).abs() < 1e-8,
            "state {s}: {} vs {}",
            v[s],
            series[s]
        );
    }
    // And a long finite horizon converges to it.
    let long = m.evaluate_finite(pi.view(), gamma, 600).unwrap();
    assert!((&long.row(600) - &v).fold(0.0f64, |a, x| a.max(x.abs())) < 1e-8);
}

#[test]
fn value_iteration_in_a_corridor_by_hand() {
    let (_, m) = mdp("C..M", EnvConfig::default());
    let sol = m.value_iteration(0.9, 1e-12).unwrap();
    // One step from the meat: 100; two: 90; three: 81.
    assert!((sol.values[2] - 100.0).abs() < 1e-9);
    assert!((sol.values[1] - 90.0).abs() < 1e-9);
    assert!((sol.values[0] - 81.0).abs() < 1e-9);
    for s in 0..3 {
        assert_eq!(sol.action(s), Action::Right);
    }
}

#[test]
fn optimal_values_beat_every_policy_and_the_greedy_policy_attains_them() {
    let config = EnvConfig {
        slip: 0.1,
        ..EnvConfig::default()
    };
    let m = Mdp::new(&House::seed(), &config);
    let gamma = 0.95;
    let sol = m.value_iteration(gamma, 1e-10).unwrap();
    let v_greedy = m.evaluate(sol.policy.view(), gamma).unwrap();
    for s in 0..m.n_states() {
        assert!((v_greedy[s] - sol.values[s]).abs() < 1e-6, "state {s}");
    }
    for seed in 0..5 {
        let v = m
            .evaluate(random_policy(m.n_states(), seed).view(), gamma)
            .unwrap();
        for s in 0..m.n_states() {
            assert!(v[s] <= sol.values[s] + 1e-9);
        }
    }
}

/// Follows a deterministic policy from the start without slipping; returns the cells visited.
fn greedy_path(house: &House, sol: &gridworld::Solution) -> Vec<Cell> {
    let mut s = house.starts()[0];
    let mut path = Vec::new();
    while house.cells()[s] != Cell::Meat && path.len() < 100 {
        s = move_from(house, s, sol.action(s));
        path.push(house.cells()[s]);
    }
    path
}

#[test]
fn in_the_seed_house_patience_depends_on_the_discount() {
    let house = House::seed();
    let m = Mdp::new(&house, &EnvConfig::default());
    // A patient cat (γ = 0.99) walks the long safe way: 11 steps, no bath.
    let patient = greedy_path(&house, &m.value_iteration(0.99, 1e-10).unwrap());
    assert_eq!(patient.len(), 11);
    assert!(!patient.contains(&Cell::Bathtub) && !patient.contains(&Cell::Broom));
    // An impatient cat (γ = 0.9) takes the bath to save two steps.
    let hasty = greedy_path(&house, &m.value_iteration(0.9, 1e-10).unwrap());
    assert_eq!(hasty.len(), 9);
    assert!(hasty.contains(&Cell::Bathtub));
}

#[test]
fn bad_inputs_are_errors() {
    let (_, m) = mdp("C.M", EnvConfig::default());
    let mut pi = m.uniform_policy();
    assert_eq!(
        m.evaluate(pi.view(), 1.5).unwrap_err(),
        MdpError::BadGamma(1.5)
    );
    pi[[1, 0]] = 0.5;
    match m.evaluate(pi.view(), 0.9).unwrap_err() {
        MdpError::PolicyRow {
            state, row, col, ..
        } => assert_eq!((state, row, col), (1, 0, 1)),
        e => panic!("unexpected {e}"),
    }
    let wrong = Array2::from_elem((2, 4), 0.25);
    assert!(matches!(
        m.evaluate(wrong.view(), 0.9),
        Err(MdpError::PolicyShape { .. })
    ));
    // Always "left": with γ = 1 the cat never arrives, so its value does not exist.
    let mut left = Array2::zeros((3, 4));
    left.column_mut(Action::Left.index()).fill(1.0);
    assert_eq!(
        m.evaluate(left.view(), 1.0).unwrap_err(),
        MdpError::NeverTerminates
    );
    assert!(m.evaluate(left.view(), 0.99).is_ok());
}
