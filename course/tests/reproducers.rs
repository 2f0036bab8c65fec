//! Every way a run could be lost, a result forged or a panic provoked that was once found,
//! replayed: exact resume however many optimizer steps a GRPO step takes and however the
//! process was stopped, run folders that are never silently reused, bad files and settings
//! that are clear errors, grades that printed lines cannot forge and timeouts that stop every
//! process (`reproducers/grader.rs`), and hostile model output and typed prompts
//! (`reproducers/verifiers.rs`).

// The helpers shared with the library's tests (tests/common).
#[path = "../../tests/common/mod.rs"]
mod common;
// The grader's reproducers (forged results, timeouts) and the verifiers' (model output that
// once panicked or hung, prompts scored against a wrong truth).
mod reproducers {
    mod grader;
    mod verifiers;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::device;
use zero_to_r1::lm::config::LmConfig;
use zero_to_r1::lm::grpo::{self, GrpoStep, GrpoTrainer};
use zero_to_r1::lm::model::Gpt;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zero-to-r1"))
}

/// A fresh folder of this test process.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("z2r1-repro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn params(m: &Gpt) -> Vec<Vec<f32>> {
    m.vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

fn largest_change(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The model and config of `tests/data/tiny-r1.toml` for `steps` GRPO steps in a trainer (no
/// checkpoints, a held-out evaluation every 2 steps): GRPO moves this policy.
fn moving_start(steps: usize) -> (LmConfig, Gpt) {
    let (mut c, m) = common::format_learner(4);
    c.grpo.steps = steps;
    c.grpo.minibatches = 1;
    c.grpo.eval_every = 2;
    c.grpo.checkpoint_every = 0;
    c.validate().unwrap();
    (c, m)
}

/// Metrics without the wall-clock fields.
fn without_timings(mut s: GrpoStep) -> GrpoStep {
    s.seconds = 0.0;
    s.sample_tokens_per_second = 0.0;
    s.train_tokens_per_second = 0.0;
    s
}

#[test]
fn resume_is_exact_for_every_number_of_optimizer_steps_per_grpo_step() {
    // AdamW's bias correction counts optimizer steps; a GRPO step takes μ × minibatches of
    // them. A resumed run that restored the count as the number of GRPO steps took
    // differently sized steps from then on.
    let (base, start) = moving_start(4);
    for (minibatches, epochs) in [(1, 1), (2, 1), (1, 2), (4, 2)] {
        let mut c = base.clone();
        c.grpo.minibatches = minibatches;
        c.grpo.epochs = epochs;
        let case = format!("minibatches {minibatches}, epochs {epochs}");
        let a = temp_dir(&format!("straight-{minibatches}-{epochs}"));
        let mut straight =
            GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 9).unwrap();
        grpo::train(&mut straight, &a, 4, |_: &GrpoStep| {}).unwrap();
        // The run taught something: otherwise every advantage is 0 and any resume looks exact.
        let moved = largest_change(&params(&start), &params(&straight.policy));
        assert!(moved > 1e-3, "{case}: the policy did not move ({moved})");
        let metrics = grpo::read_metrics(&a).unwrap();
        assert!(
            metrics.iter().any(|m| m.frac_reward_zero_std < 1.0),
            "{case}: every group had equal rewards"
        );
        // Two steps, then a fresh process's view of the folder, then two more.
        let b = temp_dir(&format!("resumed-{minibatches}-{epochs}"));
        let mut first =
            GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 9).unwrap();
        grpo::train(&mut first, &b, 2, |_: &GrpoStep| {}).unwrap();
        drop(first);
        let mut resumed = GrpoTrainer::resume(&b, &device()).unwrap();
        assert_eq!(resumed.step, 2, "{case}");
        grpo::train(&mut resumed, &b, 4, |_: &GrpoStep| {}).unwrap();
        let (x, y) = (params(&straight.policy), params(&resumed.policy));
        assert!(
            x == y,
            "{case}: the resumed weights differ by up to {}",
            largest_change(&x, &y)
        );
        let ma: Vec<_> = metrics.into_iter().map(without_timings).collect();
        let mb: Vec<_> = grpo::read_metrics(&b)
            .unwrap()
            .into_iter()
            .map(without_timings)
            .collect();
        assert_eq!(ma.len(), 4, "{case}");
        assert_eq!(ma, mb, "{case}: the metrics diverge");
        assert!(ma[1].heldout.is_some() && ma[3].heldout.is_some() && ma[2].heldout.is_none());
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}

#[test]
fn a_checkpoint_from_before_the_optimizer_step_count_was_saved_still_resumes_exactly() {
    let (mut c, start) = moving_start(4);
    c.grpo.minibatches = 2;
    let a = temp_dir("old-straight");
    let mut straight =
        GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 3).unwrap();
    grpo::train(&mut straight, &a, 4, |_: &GrpoStep| {}).unwrap();
    let b = temp_dir("old-resumed");
    let mut first = GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 3).unwrap();
    grpo::train(&mut first, &b, 2, |_: &GrpoStep| {}).unwrap();
    // The state file as older versions wrote it: no optimizer step count.
    let state = b.join("checkpoints/step-000002").join(grpo::STATE);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(json["optimizer_steps"], 4);
    json.as_object_mut().unwrap().remove("optimizer_steps");
    std::fs::write(&state, json.to_string()).unwrap();
    let mut resumed = GrpoTrainer::resume(&b, &device()).unwrap();
    grpo::train(&mut resumed, &b, 4, |_: &GrpoStep| {}).unwrap();
    assert!(largest_change(&params(&start), &params(&straight.policy)) > 1e-3);
    let (x, y) = (params(&straight.policy), params(&resumed.policy));
    assert!(x == y, "weights differ by up to {}", largest_change(&x, &y));
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

fn r1_zero(config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.args(["lm", "r1-zero", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn resume(out: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["lm", "r1-zero", "--resume", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(mut cmd: Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metric_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("grpo").join(grpo::METRICS)).map_or(0, |t| t.lines().count())
}

/// What a finished run left: the final weights, the metrics without timings, and the summary
/// without timings.
fn outcome(out: &Path) -> (Vec<u8>, Vec<GrpoStep>, serde_json::Value) {
    let weights =
        std::fs::read(out.join("grpo/checkpoints/step-000006/model.safetensors")).unwrap();
    let metrics = grpo::read_metrics(&out.join("grpo"))
        .unwrap()
        .into_iter()
        .map(without_timings)
        .collect();
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let s = summary.as_object_mut().unwrap();
    assert!(s["sft_seconds"].as_f64().unwrap() > 0.0, "{s:?}");
    s.remove("sft_seconds");
    s.remove("grpo_seconds");
    (weights, metrics, summary)
}

/// Starts `cmd`, waits until `ready` holds for the run folder (or the process ends), then
/// sends `signal` (`INT`, `TERM` or `KILL`) and waits for the process to end.
fn kill_when(mut cmd: Command, out: &Path, signal: &str, ready: impl Fn(&Path) -> bool) -> bool {
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false; // finished before the signal
        }
        if ready(out) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let end = child.wait().unwrap();
    !end.success()
}

#[test]
fn runs_killed_at_any_point_by_any_signal_resume_to_the_same_result() {
    let dir = temp_dir("kills");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::TINY_RUN).unwrap();
    let straight = dir.join("straight");
    run_ok(r1_zero(&config, &straight, &[]));
    let expected = outcome(&straight);
    assert_eq!(expected.1.len(), 6);
    // The policy moved: the format rate rose, and the final weights differ from the start.
    let (first, last) = (&expected.1[0], &expected.1[5]);
    assert!(
        last.format_rate > first.format_rate,
        "{} → {}",
        first.format_rate,
        last.format_rate
    );
    let start = std::fs::read(straight.join("grpo/reference/model.safetensors")).unwrap();
    assert_ne!(start, expected.0);

    type Ready = Box<dyn Fn(&Path) -> bool>;
    let at_lines = |n: usize| -> Ready { Box::new(move |out: &Path| metric_lines(out) >= n) };
    let after = |ms: u64| -> Ready {
        let t = Instant::now();
        Box::new(move |_: &Path| t.elapsed() >= Duration::from_millis(ms))
    };
    // Each scenario stops the same run again and again (the first stop is of the fresh run,
    // the later ones of resumed runs), then lets it finish.
    let scenarios: Vec<(&str, Vec<(&str, Ready)>)> = vec![
        (
            "in SFT, then between steps",
            vec![
                ("INT", Box::new(|out: &Path| out.join("run.json").exists())),
                ("TERM", at_lines(2)),
                ("KILL", at_lines(4)),
            ],
        ),
        (
            "SIGINT after each step",
            (1..6).map(|n| ("INT", at_lines(n))).collect(),
        ),
        ("SIGTERM mid-run", vec![("TERM", at_lines(3))]),
        (
            "SIGKILL at odd moments",
            vec![
                ("KILL", after(5)),
                ("KILL", after(60)),
                ("KILL", after(150)),
            ],
        ),
    ];
    let mut stopped = 0;
    for (name, kills) in scenarios {
        let out = dir.join(name.replace(' ', "-"));
        for (i, (signal, ready)) in kills.into_iter().enumerate() {
            // Stopped before it wrote its settings, a run has nothing to resume: start it.
            let cmd = if i == 0 || !out.join("run.json").exists() {
                r1_zero(&config, &out, &["--overwrite"])
            } else {
                resume(&out)
            };
            stopped += kill_when(cmd, &out, signal, ready) as usize;
        }
        run_ok(if out.join("run.json").exists() {
            resume(&out)
        } else {
            r1_zero(&config, &out, &["--overwrite"])
        });
        let got = outcome(&out);
        assert!(got.0 == expected.0, "{name}: the final weights differ");
        assert_eq!(got.1, expected.1, "{name}: the metrics differ");
        assert_eq!(got.2, expected.2, "{name}: the summaries differ");
    }
    assert!(
        stopped >= 5,
        "only {stopped} runs were stopped before they finished"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_run_keeps_its_own_settings_and_refuses_new_ones() {
    let dir = temp_dir("own-settings");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::TINY_RUN).unwrap();
    // An arithmetic run of 3 steps, continued to 6 with --steps: not evaluated on addition,
    // and its fine-tuning time kept.
    let out = dir.join("arith");
    run_ok(r1_zero(
        &config,
        &out,
        &["--task", "arithmetic", "--steps", "3", "--seed", "5"],
    ));
    let mut cmd = resume(&out);
    cmd.args(["--steps", "6"]);
    run_ok(cmd);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["task"], "arithmetic");
    assert_eq!(summary["grpo_steps"], 6);
    assert!(summary["sft_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(metric_lines(&out), 6);
    // Settings that would make it another run are refused, by name.
    for flag in [
        &["--beta", "0.1"][..],
        &["--epochs", "2"],
        &["--seed", "1"],
        &["--task", "addition"],
        &["--algo", "dr-grpo"],
        &["--sft-steps", "5"],
        &["--config", "x.toml"],
    ] {
        let mut cmd = resume(&out);
        cmd.args(flag);
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag:?}: {err}");
        assert!(err.contains(flag[0]) && err.contains("--resume"), "{err}");
    }
    // Fewer steps than done is an error, not a silent no-op.
    let mut cmd = resume(&out);
    cmd.args(["--steps", "2"]);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("grpo.steps"), "{err}");
    // Nothing to resume is a clear error.
    let o = resume(&dir.join("nothing")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no run.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_run_never_reuses_or_wipes_an_earlier_one() {
    let dir = temp_dir("no-wipe");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::TINY_RUN).unwrap();
    let out = dir.join("run");
    run_ok(r1_zero(&config, &out, &["--steps", "2"]));
    let before = std::fs::read(out.join("summary.json")).unwrap();
    // Again into the same folder: refused, and nothing is touched.
    let o = r1_zero(&config, &out, &["--steps", "2"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    // With --overwrite, a new run; stopped before its first checkpoint, it has nothing of
    // the old run's to adopt.
    let stopped = kill_when(
        r1_zero(&config, &out, &["--overwrite", "--seed", "3"]),
        &out,
        "KILL",
        |out: &Path| out.join("run.json").exists() && !out.join("summary.json").exists(),
    );
    assert!(stopped, "the run finished before it could be stopped");
    assert!(!out.join("grpo/LATEST").exists());
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["seed"], 3);
    // The same for the SFT command, and a folder with other files is never emptied.
    let sft = dir.join("sft");
    let mut cmd = bin();
    cmd.args(["lm", "sft", "--steps", "2", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&sft);
    assert!(cmd.output().unwrap().status.success());
    let o = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    assert!(cmd.arg("--overwrite").output().unwrap().status.success());
    std::fs::write(sft.join("notes.txt"), "mine").unwrap();
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("notes.txt"), "{err}");
    assert!(sft.join("notes.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_grpo_run_started_afresh_in_an_old_folder_forgets_its_checkpoints() {
    // The library's side of the rule: a run at step 0 removes the LATEST of an earlier run
    // before anything else, so no crash can make it look resumable.
    let (c, start) = moving_start(2);
    let dir = temp_dir("afresh");
    let mut old = GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 1).unwrap();
    grpo::train(&mut old, &dir, 2, |_: &GrpoStep| {}).unwrap();
    assert!(dir.join(grpo::LATEST).exists());
    // A leftover of a killed checkpoint write and of a killed file write.
    std::fs::create_dir_all(dir.join("checkpoints/.step-000003.tmp4242")).unwrap();
    std::fs::write(dir.join(".metrics.jsonl.tmp4242"), "half").unwrap();
    let mut new = GrpoTrainer::new(start.copy().unwrap(), start.copy().unwrap(), &c, 2).unwrap();
    let mut seen_latest = None;
    grpo::train(&mut new, &dir, 1, |_: &GrpoStep| {
        seen_latest = Some(dir.join(grpo::LATEST).exists());
    })
    .unwrap();
    assert_eq!(
        seen_latest,
        Some(false),
        "the old LATEST survived the new start"
    );
    assert!(!dir.join("checkpoints/.step-000003.tmp4242").exists());
    assert!(!dir.join(".metrics.jsonl.tmp4242").exists());
    assert!(!dir.join("checkpoints/step-000002").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoints_with_nan_or_infinite_weights_are_refused_by_name() {
    use std::collections::HashMap;
    use zero_to_r1::lm::checkpoint;
    let m = common::model(1);
    let dir = temp_dir("nan-checkpoint");
    checkpoint::save(&m, &dir).unwrap();
    assert!(checkpoint::load(&dir, &device()).is_ok());
    for bad in [f32::NAN, f32::INFINITY] {
        let mut tensors: HashMap<String, _> = m
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        let name = "blocks.1.mlp.fc1.weight".to_string();
        let t = &tensors[&name];
        let poisoned = t
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, x)| if i == 7 { bad } else { x })
            .collect::<Vec<_>>();
        let poisoned =
            zero_to_r1::candle::Tensor::from_vec(poisoned, t.shape(), t.device()).unwrap();
        tensors.insert(name.clone(), poisoned);
        checkpoint::write_safetensors(&tensors, &dir.join(checkpoint::WEIGHTS)).unwrap();
        let err = checkpoint::load(&dir, &device()).err().unwrap().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains(&name) && err.contains("index 7"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weights_are_written_with_the_default_permissions() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("permissions");
        zero_to_r1::lm::checkpoint::save(&common::model(2), &dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&dir.join(zero_to_r1::lm::checkpoint::WEIGHTS)),
            mode(&plain)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn bad_settings_and_files_are_clear_errors_before_any_work() {
    let dir = temp_dir("bad-settings");
    let run = |args: &[&str]| {
        let o = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        err
    };
    // A context too short for the task's worked examples.
    let short = dir.join("short.toml");
    std::fs::write(&short, "[task]\ndifficulty = 5\n").unwrap();
    let err = run(&[
        "lm",
        "sft",
        "--config",
        short.to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert!(
        err.contains("model.context") && err.contains("64") && err.contains("72"),
        "{err}"
    );
    // Sizes that would exhaust the memory.
    for (text, key) in [
        ("[model]\nd_model = 65536\nmlp = 65536\n", "model"),
        ("[sft]\nbatch_size = 60000\n", "sft.batch_size"),
        ("[eval]\nproblems = 1000000000000\n", "eval.problems"),
        ("[grpo]\nsteps = 1000000000000\n", "grpo.steps"),
    ] {
        let path = dir.join("huge.toml");
        std::fs::write(&path, text).unwrap();
        let err = run(&[
            "lm",
            "sft",
            "--config",
            path.to_str().unwrap(),
            "--out",
            "x",
        ]);
        assert!(err.contains(key), "{text}: {err}");
    }
    let err = run(&["lm", "sample", "-n", "100000000"]);
    assert!(err.contains("-n"), "{err}");
    // A checkpoint folder that holds none says which command makes one.
    let err = run(&["lm", "sample", "--checkpoint", dir.to_str().unwrap()]);
    assert!(
        err.contains("lm sft") && err.contains("--checkpoint"),
        "{err}"
    );
    // Endless files.
    let err = run(&["lm", "sft", "--config", "/dev/zero"]);
    assert!(err.contains("/dev/zero"), "{err}");
    let err = run(&["house", "show", "--map", "/dev/zero"]);
    assert!(err.contains("/dev/zero"), "{err}");
    // An output folder that cannot be written is found before the fine-tuning (of ten
    // million steps: checked after it, this test would not end).
    let err = run(&["lm", "sft", "--steps", "10000000", "--out", "/dev/null/sft"]);
    assert!(err.contains("/dev/null"), "{err}");
    let err = run(&[
        "lm",
        "r1-zero",
        "--sft-steps",
        "10000000",
        "--out",
        "/dev/null/run",
    ]);
    assert!(err.contains("/dev/null"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_standard_output_is_an_error_not_a_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not on this system
    };
    for args in [
        &["house", "show"][..],
        &["house", "solve"],
        &["train", "--iterations", "2"],
        &["--help"],
    ] {
        let o = bin()
            .args(args)
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("No space left") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
