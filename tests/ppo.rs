//! Chapters 4–5: TD errors, GAE, the clipped surrogate and PPO's diagnostics.

use zero_to_r1::advantage::{explained_variance, normalize, STD_EPS};
use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::gridworld::ndarray::Array2;
use zero_to_r1::objective::{clip_frac, value_loss};

mod common;

use common::close;

#[test]
fn normalize_and_explained_variance_by_hand() {
    let a = Array2::from_shape_vec((1, 4), vec![1.0, 2.0, 3.0, 100.0]).unwrap();
    let m = Array2::from_shape_vec((1, 4), vec![1.0, 1.0, 1.0, 0.0]).unwrap();
    let n = normalize(a.view(), m.view());
    // Mean 2, unbiased sd 1 over the three real steps: (a − 2) / (1 + ε).
    let one = 1.0 / (1.0 + STD_EPS);
    assert!(close(
        n.view(),
        Array2::from_shape_vec((1, 4), vec![-one, 0.0, one, 0.0])
            .unwrap()
            .view(),
        1e-12
    ));
    let targets = Array2::from_shape_vec((1, 3), vec![1.0, 2.0, 3.0]).unwrap();
    let ones = Array2::ones((1, 3));
    assert_eq!(
        explained_variance(targets.view(), targets.view(), ones.view()),
        1.0
    );
    let constant = Array2::from_elem((1, 3), 2.0);
    assert!(explained_variance(constant.view(), targets.view(), ones.view()).abs() < 1e-12);
}

#[test]
fn diagnostics_by_hand() {
    let d = Device::Cpu;
    let logp = Tensor::new(&[[0.5f64.ln(), 1.0f64.ln(), 2.0f64.ln()]], &d).unwrap();
    let old = Tensor::zeros((1, 3), zero_to_r1::candle::DType::F64, &d).unwrap();
    let m = Tensor::new(&[[1.0f64, 1.0, 0.0]], &d).unwrap();
    assert_eq!(clip_frac(&logp, &old, &m, 0.2).unwrap(), 0.5);
    // Value loss: ½ (V − R)², plain and clipped.
    let v = Tensor::new(&[[3.0f64]], &d).unwrap();
    let r = Tensor::new(&[[0.0f64]], &d).unwrap();
    let v_old = Tensor::new(&[[0.0f64]], &d).unwrap();
    let one = Tensor::new(&[[1.0f64]], &d).unwrap();
    assert_eq!(
        value_loss(&v, &r, &v_old, &one, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
    // Clipped: max((3 − 0)², (0 + 1 − 0)²) / 2 = 4.5 (the pessimistic one).
    assert_eq!(
        value_loss(&v, &r, &v_old, &one, Some(1.0))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
    let r2 = Tensor::new(&[[4.0f64]], &d).unwrap();
    // V = 3 moved from 0 by 3 > ε = 1: clipped prediction 1, so max(1², 3²)/2 = 4.5.
    assert_eq!(
        value_loss(&v, &r2, &v_old, &one, Some(1.0))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        4.5
    );
}

use zero_to_r1::algo::ppo;
use zero_to_r1::prelude::*;

#[test]
fn target_kl_stops_epochs_early_and_bad_settings_are_named() {
    let mut env = Env::seed();
    let config = ppo::PpoConfig {
        iterations: 5,
        epochs: 20,
        lr: 0.1,
        target_kl: Some(0.001),
        seed: 1,
        ..Default::default()
    };
    let trained = ppo::train(&mut env, &config, |_| {}).unwrap();
    assert!(trained.log.iter().any(|u| u.epochs < 20));
    for (bad, field) in [
        (
            ppo::PpoConfig {
                minibatches: 17,
                ..Default::default()
            },
            "minibatches",
        ),
        (
            ppo::PpoConfig {
                lambda: 2.0,
                ..Default::default()
            },
            "lambda",
        ),
        (
            ppo::PpoConfig {
                clip: Some(0.0),
                ..Default::default()
            },
            "clip",
        ),
        (
            ppo::PpoConfig {
                epochs: 0,
                ..Default::default()
            },
            "epochs",
        ),
    ] {
        let err = ppo::train(&mut env, &bad, |_| {})
            .err()
            .expect("should fail")
            .to_string();
        assert!(err.contains(field), "{err}");
    }
}
