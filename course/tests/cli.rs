//! The command line: bad maps give located errors and a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zero-to-r1"))
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("z2r1-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_bad_map_is_a_clear_error() {
    // Its own folder: the tests run in parallel and share `scratch()`.
    let dir = scratch().join("maps");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("empty.map", "\n\n", "empty.map: the map is empty"),
        (
            "ragged.map",
            "C..\n.M\n",
            "ragged.map:2:3: this row has 2 cells",
        ),
        (
            "unknown.map",
            "C.\n.x\nM.\n",
            "unknown.map:2:2: unknown cell 'x'",
        ),
        ("nostart.map", "..\n.M\n", "nostart.map: no start cell"),
        ("nomeat.map", "C.\n..\n", "nomeat.map: no meat"),
        (
            "walled.map",
            "C#M\n",
            "walled.map:1:1: the cat starting here cannot reach any meat",
        ),
        (
            "huge.map",
            &format!("C{}M\n", ".".repeat(70)),
            "huge.map:1:1: the house is 1x72 cells",
        ),
    ];
    for (name, map, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, map).unwrap();
        for sub in ["show", "solve"] {
            let out = bin()
                .args(["house", sub, "--map"])
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains(expected),
                "{name}: expected {expected:?} in {err:?}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let out = bin()
        .args(["house", "show", "--map", "/nonexistent/cat.map"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cat.map"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_name_the_field() {
    let out = bin()
        .args(["house", "solve", "--slip", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`slip`"));
    let out = bin()
        .args(["house", "solve", "--gamma", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gamma = 1.5"));
}

#[test]
fn show_and_solve_print_the_house_and_its_solution() {
    let out = bin().args(["house", "show"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(zero_to_r1::gridworld::SEED_MAP));
    let out = bin()
        .args(["house", "solve", "--gamma", "0.9"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("expects 37.73"), "{text}");
}

#[test]
fn the_tour_writes_figures_metrics_and_an_index() {
    // Its own folder: other tests remove theirs while the tour runs.
    let dir = std::env::temp_dir().join(format!("z2r1-tour-{}", std::process::id()));
    let tour = || {
        bin()
            .args(["tour", "--quiet", "--name", "t", "--sft-steps", "3"])
            .args(["--lm-eval-problems", "4", "--grpo-steps", "2"])
            .args(["--pretrain-steps", "3"])
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = tour();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.join("t");
    for f in [
        "index.html",
        "metrics.json",
        "ch01/house.svg",
        "ch01/optimal_values.svg",
        "ch01/random_returns.svg",
        "ch06/comparison.svg",
        "ch07/length_failed.svg",
        "ch08/sft_loss.svg",
        "ch08/sft/model.safetensors",
        "ch09/grpo_rollouts.svg",
        "ch09/run/grpo/metrics.jsonl",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let j = metrics["chapter1"]["random_cat"]["exact_j"]
        .as_f64()
        .unwrap();
    let mc = metrics["chapter1"]["random_cat"]["mc_mean"]
        .as_f64()
        .unwrap();
    let se = metrics["chapter1"]["random_cat"]["mc_std_err"]
        .as_f64()
        .unwrap();
    assert!((mc - j).abs() < 4.0 * se);
    assert_eq!(metrics["chapter9"]["steps"].as_array().unwrap().len(), 2);
    let index = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert!(index.contains("ch01/house.svg"));
    // A report, not a list of files: for every chapter its tables, a note on how the run
    // relates to the book and a link to the chapter; for every figure a caption that says what
    // it shows (not its file name).
    assert_eq!(index.matches("Against the book.").count(), 9);
    assert!(index.matches("<table>").count() >= 9);
    for stem in ["01-the-cats-house", "05-ppo", "09-r1-zero"] {
        assert!(index.contains(&format!("{stem}.")), "no link to {stem}");
    }
    let figures: Vec<&str> = index.split("<figure><img src=\"").skip(1).collect();
    assert!(figures.len() >= 25, "{} figures", figures.len());
    for f in figures {
        let path = &f[..f.find('"').unwrap()];
        let stem = path.rsplit('/').next().unwrap().trim_end_matches(".svg");
        let alt = f.split("alt=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(
            alt.len() > 20 && alt != stem.replace('_', " "),
            "{path}: caption {alt:?}"
        );
    }
    // The same tour again, into the same folder: it replaces the earlier run.
    let again = tour();
    assert!(
        again.status.success(),
        "a second tour under the same name failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let bad = bin()
        .args(["tour", "--quiet", "--name", "../x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn train_reports_the_learned_cat_and_writes_metrics() {
    let dir = scratch();
    let metrics = dir.join("m.jsonl");
    for algo in ["reinforce", "actor-critic", "ppo", "grpo", "dr-grpo"] {
        let out = bin()
            .args([
                "train",
                "--algo",
                algo,
                "--iterations",
                "40",
                "--seed",
                "2",
                "--metrics",
            ])
            .arg(&metrics)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{algo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Exact J(π) = "), "{text}");
        let lines = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(lines.lines().count(), 40);
        let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
        assert!(last["exact_j"].as_f64().unwrap().is_finite());
    }
    for (flag, value, field) in [
        ("--model", "cnn", "model"),
        ("--baseline", "magic", "baseline"),
        ("--lambda", "3", "lambda"),
    ] {
        let out = bin()
            .args(["train", "--iterations", "2", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(field));
    }
    for (flag, value, field) in [
        ("--group-size", "1", "group-size"),
        ("--group-size", "5", "group-size"),
        ("--aggregation", "mean", "aggregation"),
        ("--reward", "accuracy", "reward"),
        ("--clip", "0", "clip"),
    ] {
        let out = bin()
            .args(["train", "--algo", "grpo", "--iterations", "2", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{flag} {value}: {err}");
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::process::Stdio;
    // The reader goes away before the command writes, as `| head -1` does after one line.
    let mut child = bin()
        .args(["house", "solve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn train_applies_every_flag_it_is_given_or_refuses_it() {
    use zero_to_r1::algo::ppo::{self, PpoConfig};
    use zero_to_r1::gridworld::Env;
    // Chapter 5's clipping experiment from the command line: 20 unclipped epochs per batch.
    let dir = scratch().join("train-flags");
    std::fs::create_dir_all(&dir).unwrap();
    let metrics = dir.join("m.jsonl");
    let out = bin()
        .args(["train", "--algo", "ppo", "--clip", "none", "--epochs", "20"])
        .args([
            "--lr",
            "0.03",
            "--iterations",
            "2",
            "--seed",
            "7",
            "--metrics",
        ])
        .arg(&metrics)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Vec<serde_json::Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let c = PpoConfig {
        iterations: 2,
        epochs: 20,
        lr: 0.03,
        clip: None,
        seed: 7,
        ..PpoConfig::default()
    };
    let log = ppo::train(&mut Env::seed(), &c, |_| {}).unwrap().log;
    assert_eq!(cli.len(), 2);
    for (line, u) in cli.iter().zip(&log) {
        assert_eq!(line["epochs"], 20);
        assert_eq!(line["exact_j"].as_f64().unwrap(), u.exact_j);
        assert_eq!(line["approx_kl"].as_f64().unwrap(), u.approx_kl);
    }
    // The default run is another run: the flags changed something.
    let default = PpoConfig {
        iterations: 2,
        seed: 7,
        ..PpoConfig::default()
    };
    let plain = ppo::train(&mut Env::seed(), &default, |_| {}).unwrap().log;
    assert_ne!(plain[1].exact_j, log[1].exact_j);
    // A flag the algorithm does not use is an error that names it, never ignored.
    for (algo, flag, value) in [
        ("reinforce", "--clip", "0.3"),
        ("reinforce", "--epochs", "3"),
        ("reinforce", "--lambda", "0.5"),
        ("actor-critic", "--epochs", "3"),
        ("actor-critic", "--clip", "0.1"),
        ("ppo", "--group-size", "4"),
        ("ppo", "--baseline", "rtg"),
        ("ppo", "--beta", "0.1"),
        ("grpo", "--lambda", "0.5"),
        ("dr-grpo", "--baseline", "mean"),
        ("grpo", "--clip", "none"),
    ] {
        let out = bin()
            .args(["train", "--algo", algo, "--iterations", "1", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{algo} {flag}: {err}");
        assert!(err.contains(flag), "{algo} {flag}: {err}");
    }
}
