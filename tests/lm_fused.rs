//! The fused CPU kernels against their definitions in plain tensor ops: values and gradients,
//! on small inputs (one thread) and large ones (split across threads).

use zero_to_r1::candle::{Device, Tensor, Var, D};
use zero_to_r1::lm::fused;

/// Uniform numbers in (−1.7·`scale`, 1.7·`scale`), seeded.
fn uniform(shape: &[usize], scale: f64, seed: u64) -> Tensor {
    use zero_to_r1::gridworld::rand::rngs::StdRng;
    use zero_to_r1::gridworld::rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (scale * (rng.random::<f64>() * 2.0 - 1.0) * 1.7) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// Values and the gradients of Σ out · r with respect to each var, for `f`.
fn value_and_grads(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    seed: u64,
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts);
    let r = uniform(out.dims(), 1.0, seed);
    let grads = (&out * r).unwrap().sum_all().unwrap().backward().unwrap();
    let g = vars
        .iter()
        .map(|v| grads.get(v.as_tensor()).unwrap().clone())
        .collect();
    (out, g)
}

fn assert_matches(
    fast: impl Fn(&[Tensor]) -> Tensor,
    slow: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    tol: f32,
) {
    let (y1, g1) = value_and_grads(fast, inputs, 99);
    let (y2, g2) = value_and_grads(slow, inputs, 99);
    let d = max_rel_diff(&y1, &y2);
    assert!(d < tol, "values differ by {d}");
    for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
        let d = max_rel_diff(a, b);
        assert!(d < tol, "gradient of input {i} differs by {d}");
    }
}

#[test]
fn gelu_matches_tensor_gelu() {
    for (shape, seed) in [(vec![3, 5], 1), (vec![4, 54, 512], 2)] {
        let x = uniform(&shape, 3.0, seed);
        assert_matches(
            |t| fused::gelu(&t[0]).unwrap(),
            |t| t[0].gelu().unwrap(),
            &[x],
            1e-5,
        );
    }
    // Far tails: exactly x for large x, 0 for very negative x, no NaN.
    let x = Tensor::new(&[-100f32, -30.0, -6.0, 0.0, 6.0, 30.0, 100.0], &Device::Cpu).unwrap();
    let y = fused::gelu(&x).unwrap().to_vec1::<f32>().unwrap();
    let want = x.gelu().unwrap().to_vec1::<f32>().unwrap();
    for (a, b) in y.iter().zip(&want) {
        assert!(a.is_finite() && (a - b).abs() < 1e-6, "{y:?} vs {want:?}");
    }
}

#[test]
fn layer_norm_matches_composite() {
    for (shape, seed) in [(vec![2, 3, 8], 3), (vec![64, 54, 128], 4)] {
        let d = *shape.last().unwrap();
        let x = (uniform(&shape, 2.0, seed) + 0.5).unwrap();
        let w = (uniform(&[d], 0.5, seed + 10) + 1.0).unwrap();
        let b = uniform(&[d], 0.5, seed + 20);
        assert_matches(
            |t| fused::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            |t| fused::layer_norm_composite(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            &[x, w, b],
            2e-5,
        );
    }
}

#[test]
fn layer_norm_of_a_hand_worked_row() {
    // Row (1, 2, 3): mean 2, variance 2/3, so x̂ = (−1, 0, 1)/√(2/3 + ε).
    let x = Tensor::new(&[[1f32, 2.0, 3.0]], &Device::Cpu).unwrap();
    let w = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
    let b = Tensor::new(&[0f32, 1.0, 0.0], &Device::Cpu).unwrap();
    let y = fused::layer_norm(&x, &w, &b, 0.0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let s = (1.5f32).sqrt();
    let want = [-s, 1.0, 3.0 * s];
    for (a, b) in y[0].iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{y:?}");
    }
}

fn causal_mask(b: usize, t: usize, k: usize, pad: usize) -> Tensor {
    let mut m = Vec::new();
    for row in 0..b {
        for i in 0..t {
            let col = k - t + i;
            m.extend((0..k).map(|j| {
                if (j <= col && j >= pad * row) || j == col {
                    0f32
                } else {
                    -1e9
                }
            }));
        }
    }
    Tensor::from_vec(m, (b, 1, t, k), &Device::Cpu).unwrap()
}

#[test]
fn masked_softmax_matches_composite() {
    // Full attention (T = K) and one new query over a cache (T = 1), small and large.
    for (b, h, t, k, seed) in [(2, 3, 5, 5, 5), (3, 2, 1, 7, 6), (32, 4, 54, 54, 7)] {
        let scores = uniform(&[b, h, t, k], 4.0, seed);
        let mask = causal_mask(b, t, k, 1);
        let scale = 0.25;
        let (m1, m2) = (mask.clone(), mask.clone());
        assert_matches(
            move |x| fused::masked_softmax(&x[0], &m1, scale).unwrap(),
            move |x| {
                zero_to_r1::candle_nn::ops::softmax(
                    &(&x[0] * scale).unwrap().broadcast_add(&m2).unwrap(),
                    D::Minus1,
                )
                .unwrap()
            },
            &[scores],
            1e-5,
        );
    }
}

#[test]
fn masked_softmax_hides_masked_keys_and_rejects_a_bad_mask() {
    let scores = Tensor::new(&[[[[1f32, 2.0, 3.0]]]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[[[0f32, 0.0, -1e9]]]], &Device::Cpu).unwrap();
    let y = fused::masked_softmax(&scores, &mask, 1.0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let e = std::f32::consts::E;
    assert!(
        (y[0] - 1.0 / (1.0 + e)).abs() < 1e-6 && y[2] == 0.0,
        "{y:?}"
    );
    let wrong = Tensor::zeros((1, 1, 1, 2), zero_to_r1::candle::DType::F32, &Device::Cpu).unwrap();
    let err = fused::masked_softmax(&scores, &wrong, 1.0).unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
}

#[test]
fn linear_with_fused_bias_matches_candle_linear() {
    use zero_to_r1::candle::Module;
    for (shape, seed) in [(vec![2, 3, 4], 8), (vec![64, 54, 128], 9)] {
        let k = *shape.last().unwrap();
        let x = uniform(&shape, 1.0, seed);
        let w = uniform(&[5, k], 0.3, seed + 1);
        let b = uniform(&[5], 1.0, seed + 2);
        assert_matches(
            |t| {
                let layer = zero_to_r1::candle_nn::Linear::new(t[1].clone(), Some(t[2].clone()));
                fused::linear(&t[0], &layer).unwrap()
            },
            |t| {
                let layer = zero_to_r1::candle_nn::Linear::new(t[1].clone(), Some(t[2].clone()));
                layer.forward(&t[0]).unwrap()
            },
            &[x, w, b],
            1e-5,
        );
    }
}

#[test]
fn decode_attention_over_a_cache_view_matches_composite() {
    // One query per row over the first 6 of 9 cached positions, with left padding hidden.
    let (b, h, cap, l, dh) = (3, 2, 9, 6, 20);
    let q = uniform(&[b, h, 1, dh], 1.0, 10);
    let k = uniform(&[b, h, cap, dh], 1.0, 11).narrow(2, 0, l).unwrap();
    let v = uniform(&[b, h, cap, dh], 1.0, 12).narrow(2, 0, l).unwrap();
    assert!(!k.is_contiguous());
    let mask = causal_mask(b, 1, l, 2);
    let scale = 1.0 / (dh as f64).sqrt();
    let fast = fused::decode_attention(&q, &k, &v, &mask, scale).unwrap();
    let weights = zero_to_r1::candle_nn::ops::softmax(
        &(q.matmul(&k.t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask)
            .unwrap(),
        D::Minus1,
    )
    .unwrap();
    let slow = weights.matmul(&v.contiguous().unwrap()).unwrap();
    let d = max_rel_diff(&fast, &slow);
    assert!(d < 1e-5, "differs by {d}");
    let bad = Tensor::zeros(
        (b, 1, 1, l + 1),
        zero_to_r1::candle::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(fused::decode_attention(&q, &k, &v, &bad, scale).is_err());
}

#[test]
fn kernels_split_across_threads_give_the_same_bits_every_time() {
    // Large enough for every kernel to split its work; any order-dependent sum would show.
    let x = uniform(&[64, 54, 128], 2.0, 13);
    let w = uniform(&[128], 1.0, 14);
    let b = uniform(&[128], 1.0, 15);
    let run = || {
        let (y, g) = value_and_grads(
            |t| {
                let h = fused::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap();
                fused::gelu(&fused::add_bias(&h, &t[2]).unwrap()).unwrap()
            },
            &[x.clone(), w.clone(), b.clone()],
            16,
        );
        let mut all = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for t in g {
            all.extend(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        all.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    let first = run();
    for _ in 0..20 {
        assert!(run() == first, "a fused kernel is not deterministic");
    }
}
