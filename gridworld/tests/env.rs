//! Dynamics: rewards, walls, slipping, terminated vs truncated, seeding, config errors.

use gridworld::rand::RngExt;
use gridworld::{Action, Env, EnvConfig, House, Rewards};

fn env(map: &str, config: EnvConfig) -> Env {
    Env::new(House::parse(map).unwrap(), config).unwrap()
}

#[test]
fn walls_and_borders_leave_the_cat_in_place() {
    let mut e = Env::seed();
    let s = e.reset(0);
    let step = e.step(Action::Up);
    assert_eq!(step.state, s);
    assert_eq!(step.reward, 0.0);
    let step = e.step(Action::Left);
    assert_eq!(step.state, s);
    let mut corridor = env("CM", EnvConfig::default());
    corridor.reset(0);
    assert_eq!(corridor.step(Action::Up).state, 0);
    assert_eq!(corridor.step(Action::Down).state, 0);
}

#[test]
fn each_cell_pays_its_reward_and_the_meat_ends_the_episode() {
    let mut e = env("CBTM", EnvConfig::default());
    e.reset(1);
    let b = e.step(Action::Right);
    assert_eq!((b.state, b.reward, b.terminated), (1, -1.0, false));
    let t = e.step(Action::Right);
    assert_eq!((t.state, t.reward, t.terminated), (2, -10.0, false));
    // Staying on the bathtub (bumping the border) is another bath.
    let stay = e.step(Action::Up);
    assert_eq!((stay.state, stay.reward), (2, -10.0));
    let m = e.step(Action::Right);
    assert_eq!(
        (m.state, m.reward, m.terminated, m.truncated),
        (3, 100.0, true, false)
    );
}

#[test]
fn step_cost_is_charged_on_every_step() {
    let config = EnvConfig {
        rewards: Rewards {
            step_cost: 0.5,
            ..Rewards::default()
        },
        ..EnvConfig::default()
    };
    let mut e = env("C.M", config);
    e.reset(0);
    assert_eq!(e.step(Action::Right).reward, -0.5);
    assert_eq!(e.step(Action::Right).reward, 99.5);
}

#[test]
fn the_step_limit_truncates_but_does_not_terminate() {
    let config = EnvConfig {
        max_steps: 3,
        ..EnvConfig::default()
    };
    let mut e = env("C.M", config);
    e.reset(0);
    for _ in 0..2 {
        let s = e.step(Action::Left);
        assert!(!s.terminated && !s.truncated);
    }
    let last = e.step(Action::Left);
    assert!(last.truncated && !last.terminated);
    // Reaching the meat on the very last allowed step is termination, not truncation.
    let config = EnvConfig {
        max_steps: 2,
        ..EnvConfig::default()
    };
    let mut e = env("C.M", config);
    e.reset(0);
    e.step(Action::Right);
    let last = e.step(Action::Right);
    assert!(last.terminated && !last.truncated);
}

#[test]
#[should_panic(expected = "call reset")]
fn stepping_after_the_end_is_a_usage_error() {
    let mut e = env("CM", EnvConfig::default());
    e.reset(0);
    e.step(Action::Right);
    e.step(Action::Right);
}

fn random_episode(e: &mut Env, seed: u64) -> Vec<(usize, f64)> {
    e.reset(seed);
    let mut out = Vec::new();
    loop {
        let a = Action::ALL[e.rng().random_range(0..4)];
        let s = e.step(a);
        out.push((s.state, s.reward));
        if s.terminated || s.truncated {
            return out;
        }
    }
}

#[test]
fn same_seed_same_episode() {
    let config = EnvConfig {
        slip: 0.3,
        ..EnvConfig::default()
    };
    let map = "C.B.\n.T..\nC..M\n";
    let mut a = env(map, config);
    let mut b = env(map, config);
    let ep1 = random_episode(&mut a, 42);
    assert_eq!(ep1, random_episode(&mut b, 42));
    assert_eq!(ep1, random_episode(&mut a, 42));
    assert_ne!(ep1, random_episode(&mut a, 43));
}

#[test]
fn both_starts_are_used() {
    let mut e = env("C.\n..\nCM\n", EnvConfig::default());
    let starts: std::collections::BTreeSet<usize> = (0..50).map(|s| e.reset(s)).collect();
    assert_eq!(starts.into_iter().collect::<Vec<_>>(), vec![0, 4]);
}

#[test]
fn slipping_goes_sideways_half_each_way() {
    let slip = 0.4;
    let config = EnvConfig {
        slip,
        max_steps: 1,
        ..EnvConfig::default()
    };
    // The cat starts in the middle of an open 3x3 room and always tries to go up.
    let mut e = env("...\n.C.\n..M\n", config);
    let n = 20_000;
    let mut counts = [0usize; 9];
    for seed in 0..n {
        e.reset(seed);
        counts[e.step(Action::Up).state] += 1;
    }
    let expect = [(1, 1.0 - slip), (3, slip / 2.0), (5, slip / 2.0)];
    for (cell, p) in expect {
        let freq = counts[cell] as f64 / n as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!((freq - p).abs() < 5.0 * sd, "cell {cell}: {freq} vs {p}");
    }
    assert_eq!(counts[1] + counts[3] + counts[5], n as usize);
}

#[test]
fn bad_config_values_name_the_field() {
    let house = House::seed();
    let cases = [
        (
            EnvConfig {
                slip: 1.5,
                ..EnvConfig::default()
            },
            "slip",
        ),
        (
            EnvConfig {
                slip: f64::NAN,
                ..EnvConfig::default()
            },
            "slip",
        ),
        (
            EnvConfig {
                max_steps: 0,
                ..EnvConfig::default()
            },
            "max_steps",
        ),
        (
            EnvConfig {
                rewards: Rewards {
                    bathtub: f64::INFINITY,
                    ..Rewards::default()
                },
                ..EnvConfig::default()
            },
            "rewards.bathtub",
        ),
    ];
    for (config, field) in cases {
        let e = Env::new(house.clone(), config).unwrap_err();
        assert_eq!(e.field, field);
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn a_bathtub_ends_the_episode_only_when_asked() {
    let config = EnvConfig {
        bathtub_ends: true,
        ..EnvConfig::default()
    };
    let mut e = env("CTM", config);
    e.reset(0);
    let t = e.step(Action::Right);
    assert_eq!(
        (t.state, t.reward, t.terminated, t.truncated),
        (1, -10.0, true, false)
    );
    // The exact MDP agrees: the bathtub is absorbing, the floor is not.
    let mdp = e.mdp();
    assert!(mdp.is_absorbing(1) && mdp.is_absorbing(2) && !mdp.is_absorbing(0));
    let plain = env("CTM", EnvConfig::default()).mdp();
    assert!(!plain.is_absorbing(1));
}

#[test]
fn reset_from_picks_the_start_and_reseeds() {
    let mut e = env("C.C\n..M\n", EnvConfig::default());
    assert_eq!(e.reset_from(2, 5).unwrap(), 2);
    let a = e.rng().random::<u64>();
    e.reset_from(0, 5).unwrap();
    assert_eq!(e.rng().random::<u64>(), a);
    let err = e.reset_from(1, 0).unwrap_err();
    assert_eq!(err.field, "start");
}
