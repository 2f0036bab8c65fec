//! The tools around the book: `bench`, `gpu-check`, `handout` and `grade`.

use super::*;
use crate::lm_args::LmRunArgs;

#[derive(Args)]
pub(crate) struct GpuCheckArgs {
    /// The device to check against the CPU: cuda (needs a build with --features cuda and an
    /// NVIDIA GPU) or cpu.
    #[arg(long, default_value = "cuda")]
    pub(crate) device: String,
    /// Also write the results to this JSON file (written whether the checks pass or not).
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct HandoutArgs {
    /// Chapters to hand out: e.g. 2-4, 2,5 or all.
    #[arg(long, default_value = "all")]
    pub(crate) chapters: String,
    /// A new (or empty) folder for the handout.
    #[arg(long, value_name = "DIR", required_unless_present = "list")]
    pub(crate) out: Option<PathBuf>,
    /// Leave the solutions in (the instructor's copy).
    #[arg(long)]
    pub(crate) with_solutions: bool,
    /// Only list the exercises of those chapters, with their points and places.
    #[arg(long)]
    pub(crate) list: bool,
    /// The zero-to-r1 workspace to copy from.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) root: PathBuf,
}

#[derive(Args)]
pub(crate) struct GradeArgs {
    /// The handout (a zero-to-r1 workspace) to grade.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Chapters to grade: e.g. 2-4, 2,5 or all.
    #[arg(long, default_value = "all")]
    pub(crate) chapters: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Time limit per chapter, in seconds, for everything together: building its grading
    /// tests and running all of them. When it runs out, every process still running (with
    /// whatever it started) is killed, and its unfinished tests fail.
    #[arg(long, default_value_t = 900)]
    pub(crate) timeout: u64,
    /// Before grading, copy the grading tests of the chosen chapters (`tests/grade_chCC.rs`
    /// and `tests/common/`) from this folder (your own copy of the course) over the
    /// handout's, so that nobody is graded by tests they edited.
    #[arg(long, value_name = "DIR")]
    pub(crate) tests_from: Option<PathBuf>,
    /// Fail unless the result is as expected: `pass` (every test passes), `fail` (every
    /// test fails, as on a fresh handout) or `caught=C.N` (some test of exercise C.N fails).
    #[arg(long, value_name = "WHAT")]
    pub(crate) expect: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// The language model: KV-cache sampling of B·G responses, one forward + backward + AdamW
    /// step of the GRPO loss on them, and whole GRPO steps (medians of --repeats runs after a
    /// warm-up, with a freshly initialised model of the config's shape).
    Lm {
        #[command(flatten)]
        run: LmRunArgs,
        /// Measured runs of each quantity.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// The device's peak TFLOP/s for the dtype (e.g. 989 for an H100's dense bf16, 67 for
        /// its f32), to report the model FLOPs utilisation.
        #[arg(long)]
        peak_tflops: Option<f64>,
        /// Also write the numbers to this JSON file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The cat: environment steps per second of the random cat, and the time until PPO and GRPO
    /// (default settings) first reach an exact success probability of 0.95 on the seeds' house.
    Cat {
        /// Environment steps of the random cat.
        #[arg(long, default_value_t = 100_000)]
        env_steps: usize,
        /// The most iterations of PPO and of GRPO.
        #[arg(long, default_value_t = 60)]
        max_iterations: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write the numbers to this JSON file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

pub(crate) fn bench(command: BenchCommand) -> Result<()> {
    if let BenchCommand::Lm { json: Some(p), .. } | BenchCommand::Cat { json: Some(p), .. } =
        &command
    {
        zero_to_r1::io::check_writable(p)?;
    }
    let (json, text) = match command {
        BenchCommand::Lm {
            run,
            repeats,
            peak_tflops,
            json,
        } => {
            let config = run.config()?;
            let dev = zero_to_r1::lm::device(&run.device)?;
            let bar = tour::progress_bar(3 * repeats as u64, "bench lm", true);
            let b = course::bench::lm(&config, &dev, repeats, run.seed(), peak_tflops, |what| {
                bar.inc(1);
                bar.set_message(what.to_string());
            })?;
            bar.finish_and_clear();
            say!(
                "{} on {} ({}): {} parameters, {} rows × ({} prompt + {} new tokens)",
                b.implementation,
                b.device,
                b.dtype,
                b.parameters,
                b.batch,
                b.prompt_len,
                b.new_tokens
            );
            say!(
                "rollout (KV-cache sampling)     {:>12.0} tokens/s",
                b.rollout_tokens_per_s
            );
            say!(
                "update (fwd + bwd + AdamW)      {:>12.0} tokens/s",
                b.train_tokens_per_s
            );
            say!("whole GRPO step                 {:>12.3} s", b.grpo_step_s);
            say!(
                "training FLOPs                  {:>12.3} TFLOP/s achieved{}",
                b.train_tflops_achieved,
                b.mfu
                    .map_or(String::new(), |m| format!(", MFU {:.1} %", 100.0 * m))
            );
            (json, serde_json::to_string_pretty(&b))
        }
        BenchCommand::Cat {
            env_steps,
            max_iterations,
            seed,
            json,
        } => {
            let b = course::bench::cat(env_steps, max_iterations, seed)?;
            let solved = |t: Option<f64>, i: Option<usize>| match (t, i) {
                (Some(t), Some(i)) => format!("{t:.3} s ({i} iterations)"),
                _ => format!("not within {max_iterations} iterations"),
            };
            say!("random cat: {:.0} environment steps/s", b.env_steps_per_s);
            say!(
                "PPO solves the house in {}",
                solved(b.ppo_time_to_solve_s, b.ppo_iterations_to_solve)
            );
            say!(
                "GRPO solves the house in {}",
                solved(b.grpo_time_to_solve_s, b.grpo_iterations_to_solve)
            );
            (json, serde_json::to_string_pretty(&b))
        }
    };
    if let Some(path) = json {
        let text = text.map_err(|e| Error::invalid("bench", e.to_string()))?;
        zero_to_r1::io::write_atomic(&path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    Ok(())
}

pub(crate) fn gpu_check(args: &GpuCheckArgs) -> Result<()> {
    if let Some(path) = &args.json {
        zero_to_r1::io::check_writable(path)?;
    }
    use zero_to_r1::lm::check::{device_check, Tolerances};
    let dev = zero_to_r1::lm::device(&args.device)?;
    let tol = Tolerances::default();
    say!("checking {} against the CPU", args.device);
    let num = |x: f64| {
        if x == 0.0 {
            "0".to_string()
        } else {
            format!("{x:.1e}")
        }
    };
    let mut written = Ok(());
    let results = device_check(&dev, &tol, |r| {
        let rel = r
            .max_rel_diff
            .map_or(String::new(), |x| format!(" (rel {})", num(x)));
        let line = (|| -> Result<()> {
            say!(
                "{:<15} max |diff| {:<18} tolerance {:<6} {}  {}",
                r.name,
                format!("{}{rel}", num(r.max_abs_diff)),
                num(r.tolerance),
                if r.pass { "PASS" } else { "FAIL" },
                r.compared
            );
            Ok(())
        })();
        if written.is_ok() {
            written = line;
        }
    })?;
    written?;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.name.as_str())
        .collect();
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "device": args.device,
            "passed": failed.is_empty(),
            "tolerances": tol,
            "checks": results,
        });
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::invalid("gpu-check", e.to_string()))?;
        zero_to_r1::io::write_atomic(path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    if failed.is_empty() {
        say!("all {} checks passed", results.len());
        Ok(())
    } else {
        Err(Error::invalid(
            "--device",
            format!(
                "{}: {} of {} checks failed against the CPU ({}); see the FAIL lines above",
                args.device,
                failed.len(),
                results.len(),
                failed.join(", ")
            ),
        ))
    }
}

pub(crate) fn handout_cmd(args: &HandoutArgs) -> Result<()> {
    let chapters = handout::parse_chapters(&args.chapters)?;
    if args.list {
        let all = handout::exercises(&args.root)?;
        let chosen: Vec<_> = all
            .into_iter()
            .filter(|e| chapters.contains(&e.chapter))
            .collect();
        put!("{}", handout::exercise_table(&chosen));
        return Ok(());
    }
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| Error::invalid("--out", "is required"))?;
    let h = handout::write_handout(&args.root, &chapters, out, args.with_solutions)?;
    let points: u32 = h.exercises.iter().map(|e| e.points).sum();
    say!(
        "wrote {} with {} exercise(s) worth {points} points ({}); read {}",
        out.display(),
        h.exercises.len(),
        if args.with_solutions {
            "solved"
        } else {
            "left as todo!()"
        },
        out.join("HANDOUT.md").display()
    );
    Ok(())
}

pub(crate) fn grade_cmd(args: &GradeArgs) -> Result<()> {
    let chapters = handout::parse_chapters(&args.chapters)?;
    if let Some(from) = &args.tests_from {
        let files = handout::install_grading_tests(from, &args.dir, &chapters)?;
        say!(
            "grading with {} test file(s) from {}",
            files.len(),
            from.display()
        );
    }
    let report = handout::grade(
        &args.dir,
        &chapters,
        std::time::Duration::from_secs(args.timeout),
    )?;
    put!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::invalid("report", e.to_string()))?;
        zero_to_r1::io::write_atomic(path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    match &args.expect {
        None => Ok(()),
        Some(what) => handout::check_expectation(&report, what),
    }
}
