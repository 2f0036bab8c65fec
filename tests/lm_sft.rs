//! Checkpoints, configs, the learning-rate schedule, and fine-tuning that actually learns.

mod common;

use std::path::PathBuf;

use common::{device, flat_params as flat};
use zero_to_r1::lm::checkpoint::{self, SHAPE, WEIGHTS};
use zero_to_r1::lm::config::LmConfig;
use zero_to_r1::lm::data::DataConfig;
use zero_to_r1::lm::eval::{evaluate, heldout, EvalConfig};
use zero_to_r1::lm::model::{Gpt, GptConfig};
use zero_to_r1::lm::sft::{learning_rate, train, SftConfig};
use zero_to_r1::lm::task::Arithmetic;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("z2r1-lm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny() -> GptConfig {
    GptConfig {
        context: 32,
        d_model: 32,
        layers: 2,
        heads: 2,
        mlp: 64,
        ..GptConfig::default()
    }
}

#[test]
fn checkpoints_round_trip_and_bad_ones_are_named_errors() {
    let dir = scratch("ck");
    let m = Gpt::new(&tiny(), 3, &device()).unwrap();
    checkpoint::save(&m, &dir).unwrap();
    let back = checkpoint::load(&dir, &device()).unwrap();
    assert_eq!(back.config(), m.config());
    assert_eq!(flat(&back), flat(&m));
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    let bytes = std::fs::read(dir.join(WEIGHTS)).unwrap();
    let err = |dir: &PathBuf| checkpoint::load(dir, &device()).err().unwrap().to_string();
    // Truncated weights.
    std::fs::write(dir.join(WEIGHTS), &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&dir);
    assert!(e.contains(WEIGHTS) && e.contains("safetensors"), "{e}");
    // Garbage.
    std::fs::write(dir.join(WEIGHTS), b"not a checkpoint at all").unwrap();
    assert!(err(&dir).contains(WEIGHTS));
    // Weights of another shape.
    let other = Gpt::new(
        &GptConfig {
            d_model: 16,
            ..tiny()
        },
        0,
        &device(),
    )
    .unwrap();
    let dir2 = scratch("ck2");
    checkpoint::save(&other, &dir2).unwrap();
    std::fs::copy(dir2.join(WEIGHTS), dir.join(WEIGHTS)).unwrap();
    let e = err(&dir);
    assert!(e.contains(WEIGHTS) && e.contains("shape"), "{e}");
    // A model with more layers than the weights.
    std::fs::write(dir.join(WEIGHTS), &bytes).unwrap();
    let deeper = toml_with(&dir, "layers = 2", "layers = 3");
    let e = err(&dir);
    assert!(e.contains("missing") && e.contains("blocks.2"), "{e}");
    std::fs::write(dir.join(SHAPE), deeper.replace("layers = 3", "layers = 1")).unwrap();
    assert!(err(&dir).contains("does not belong"));
    // A broken shape file, and a missing one.
    std::fs::write(dir.join(SHAPE), "d_model = \"wide\"").unwrap();
    assert!(err(&dir).contains(SHAPE));
    std::fs::remove_file(dir.join(SHAPE)).unwrap();
    assert!(err(&dir).contains(SHAPE));
}

fn toml_with(dir: &std::path::Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(dir.join(SHAPE)).unwrap();
    assert!(text.contains(from), "{text}");
    let new = text.replace(from, to);
    std::fs::write(dir.join(SHAPE), &new).unwrap();
    new
}

#[test]
fn config_errors_name_the_key() {
    let ok = LmConfig::from_toml("[sft]\nsteps = 10\nwarmup = 2\n", "t.toml").unwrap();
    assert_eq!(ok.sft.steps, 10);
    assert_eq!(ok.model, GptConfig::default());
    let cases = [
        ("[sft]\nstepz = 10\n", "stepz"),
        ("[trainer]\nsteps = 10\n", "trainer"),
        ("[sft]\nlr = -1.0\n", "sft.lr"),
        ("[sft]\nsteps = 10\nwarmup = 20\n", "sft.warmup"),
        ("[model]\nheads = 3\n", "model.heads"),
        ("[model]\nvocab = 10\n", "model.vocab"),
        ("[task]\nname = \"chess\"\n", "task.name"),
        ("[task]\ndifficulty = 0\n", "task.difficulty"),
        ("[data]\nslip_rate = 1.5\n", "data.slip_rate"),
        ("[eval]\nk = 0\n", "eval.k"),
        ("[eval]\ntemperature = -1.0\n", "eval.temperature"),
        ("[reward]\nformat = -1.0\n", "reward.format"),
        ("[sft]\nsteps = \"many\"\n", "steps"),
        ("[pretrain.data]\ncheck_rate = 2.0\n", "pretrain.data.check_rate"),
        ("[data]\ncheck_rate = 0.5\n", "data.slip_rate"),
        ("[task]\nname = \"countdown\"\ndifficulty = 3\n[model]\ncontext = 128\n[data]\nslip_rate = 0.0\nmissing_tag_rate = 0.0\ncheck_rate = 0.5\n", "data"),
        ("[task]\ntemplate = \"chat\"\n", "template"),
        ("[sft]\nsteps = 0\n", "sft.steps"),
    ];
    for (text, key) in cases {
        let e = LmConfig::from_toml(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(key), "{text:?}: {e}");
    }
    // The committed configs parse and round-trip.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "configs/addition-cpu.toml",
        "configs/countdown-gpu.toml",
        "configs/zero-cpu.toml",
        "configs/cold-start-cpu.toml",
    ] {
        let c = LmConfig::from_file(&root.join(f)).unwrap();
        assert_eq!(LmConfig::from_toml(&c.to_toml().unwrap(), f).unwrap(), c);
    }
    assert_eq!(
        LmConfig::from_file(&root.join("configs/addition-cpu.toml")).unwrap(),
        LmConfig::default()
    );
    assert_eq!(
        LmConfig::from_file(&root.join("configs/countdown-gpu.toml")).unwrap(),
        LmConfig::gpu_default()
    );
    assert_eq!(
        LmConfig::from_file(&root.join("configs/zero-cpu.toml")).unwrap(),
        LmConfig::zero_default()
    );
}

#[test]
fn learning_rate_schedule_by_hand() {
    let lr = |s| learning_rate(s, 110, 10, 1.0);
    assert!((lr(0) - 0.1).abs() < 1e-12);
    assert!((lr(9) - 1.0).abs() < 1e-12);
    assert!((lr(10) - 1.0).abs() < 1e-12);
    // Halfway through the cosine: (1 + 0.1) / 2.
    let mid = learning_rate(60, 111, 10, 1.0);
    assert!((mid - 0.55).abs() < 1e-12, "{mid}");
    assert!((lr(109) - 0.1).abs() < 1e-12);
    assert!((1..110).all(|s| s <= 10 || lr(s) <= lr(s - 1)));
}

#[test]
fn fine_tuning_learns_one_digit_arithmetic() {
    let model = Gpt::new(&tiny(), 0, &device()).unwrap();
    let sft = SftConfig {
        steps: 60,
        batch_size: 16,
        lr: 1e-2,
        warmup: 5,
        ..SftConfig::default()
    };
    let clean = DataConfig {
        slip_rate: 0.0,
        missing_tag_rate: 0.0,
        ..DataConfig::default()
    };
    let report = train(&model, &Arithmetic, 1, &clean, &sft, 0, |_| {}).unwrap();
    let (first, last) = report.first_last_loss(5);
    assert!(first > 2.5, "a fresh model is near ln V ≈ 4: {first}");
    assert!(last < 0.6 * first, "loss {first} → {last}");
    let problems = heldout(&Arithmetic, 20, 1);
    let config = EvalConfig {
        problems: 20,
        k: 2,
        max_new_tokens: 24,
        ..EvalConfig::default()
    };
    let eval = evaluate(&model, &Arithmetic, &problems, &config, 0).unwrap();
    assert!(eval.format_rate >= 0.5, "format rate {}", eval.format_rate);
    // Same seed, same numbers.
    let again = Gpt::new(&tiny(), 0, &device()).unwrap();
    let r2 = train(&again, &Arithmetic, 1, &clean, &sft, 0, |_| {}).unwrap();
    assert_eq!(report.steps, r2.steps);
    assert_eq!(flat(&model), flat(&again));
}
