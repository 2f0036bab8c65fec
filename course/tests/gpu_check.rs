//! `zero-to-r1 gpu-check`: the device check (on the test device: the CPU unless
//! `ZERO_TO_R1_TEST_DEVICE` says otherwise), its comparison failing when it should, and the
//! command line with and without a GPU.

// The helpers shared with the library's tests (tests/common).
#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use zero_to_r1::candle::{Device, Tensor};
use zero_to_r1::lm::check::{check_model_config, compare, device_check, Tolerances};
use zero_to_r1::lm::model::Gpt;

const CHECKS: [&str; 9] = [
    "forward",
    "kv-cache",
    "greedy",
    "sft grads",
    "sft loss",
    "sft params",
    "grpo grads",
    "grpo loss",
    "grpo params",
];

#[test]
fn the_test_device_passes_and_the_cpu_against_itself_differs_by_nothing() {
    let device = common::device();
    let mut seen = Vec::new();
    let results = device_check(&device, &Tolerances::default(), |r| {
        seen.push(r.name.clone())
    })
    .unwrap();
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, CHECKS);
    assert_eq!(seen, CHECKS, "one call per result, in order");
    for r in &results {
        assert!(r.pass, "{r:?}");
        if !device.is_cpu() {
            continue;
        }
        if r.name == "kv-cache" {
            // Two computations on one device (cached and full): rounding apart, not 0.
            assert!(r.max_abs_diff < 1e-5, "{r:?}");
        } else {
            // The same computation on the CPU twice: the same bits.
            assert_eq!(r.max_abs_diff, 0.0, "{r:?}");
        }
    }
    // The seed keeps the greedy choices away from ties, as the docs say.
    assert!(results[2].compared.contains("no near tie"), "{results:?}");
}

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn a_difference_beyond_the_tolerance_fails() {
    let want = t(&[1.0, -2.0, 3.0]);
    let near = t(&[1.0 + 5e-5, -2.0, 3.0]);
    let far = t(&[1.0, -2.0 - 3e-4, 3.0]);
    let ok = compare("x", "", &near, &want, None, 1e-4).unwrap();
    assert!(ok.pass && (ok.max_abs_diff - 5e-5).abs() < 1e-6, "{ok:?}");
    let bad = compare("x", "", &far, &want, None, 1e-4).unwrap();
    assert!(!bad.pass, "{bad:?}");
    assert!((bad.max_abs_diff - 3e-4).abs() < 1e-6, "{bad:?}");
    let rel = bad.max_rel_diff.unwrap();
    assert!(
        (rel - 1e-4).abs() < 1e-6,
        "relative to the largest value, 3: {rel}"
    );
    // The mask leaves the differing element out.
    let masked = compare("x", "", &far, &want, Some(&t(&[1.0, 0.0, 1.0])), 1e-4).unwrap();
    assert!(masked.pass && masked.max_abs_diff == 0.0, "{masked:?}");
    // A NaN on either side fails, whatever the tolerance.
    let nan = t(&[1.0, f32::NAN, 3.0]);
    assert!(!compare("x", "", &nan, &want, None, 1e9).unwrap().pass);
    assert!(!compare("x", "", &want, &nan, None, 1e9).unwrap().pass);
    // Different shapes are an error naming the check.
    let e = compare("forward", "", &t(&[1.0, 2.0]), &want, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("forward") && e.contains("shapes"), "{e}");
}

#[test]
fn a_copy_to_a_device_has_the_same_weights_and_shares_none() {
    let m = Gpt::new(&check_model_config(), 3, &Device::Cpu).unwrap();
    let c = m.copy_to(&Device::Cpu).unwrap();
    let flat = common::flat_params;
    let before = flat(&m);
    assert_eq!(flat(&c), before);
    for v in c.vars() {
        v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
    }
    assert_eq!(flat(&m), before, "changing the copy changed the original");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zero-to-r1"))
}

#[test]
fn the_command_passes_on_the_cpu_and_writes_json() {
    let json = std::env::temp_dir().join(format!("z2r1-gpu-check-{}.json", std::process::id()));
    let out = bin()
        .args(["gpu-check", "--device", "cpu", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in CHECKS {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(
            line.contains("PASS") && line.contains("tolerance"),
            "{line}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["checks"].as_array().unwrap().len(), CHECKS.len());
    assert_eq!(report["tolerances"]["params"], 5e-4);
    let _ = std::fs::remove_file(&json);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn without_a_gpu_the_command_is_a_clear_error() {
    // This build has no CUDA support: `--device cuda`, also the default, must say so.
    for args in [&["gpu-check", "--device", "cuda"][..], &["gpu-check"]] {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("device cuda"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
