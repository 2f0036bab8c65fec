//! The `zero-to-r1` command line. Run it with no arguments for the tour.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zero_to_r1::gridworld::{Cell, Env, EnvConfig, House, Rewards};
use zero_to_r1::{experiments, handout, notebook, plot, tour, Error, Result};

/// zero-to-r1: reinforcement learning for language models, from a cat in a gridworld house
/// to R1-Zero-style GRPO.
///
/// With no command, runs the tour: every chapter's experiment, writing figures, a metrics
/// file and an index page under runs/tour/.
/// `println!` that returns an error instead of panicking when standard output cannot be
/// written (a full disk, `> /dev/full`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(|e| Error::io("standard output", e))?
    }};
}

/// `print!` with the same care as [`say!`].
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err(|e| Error::io("standard output", e))?
    }};
}

#[derive(Parser)]
#[command(name = "zero-to-r1", version, about, long_about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every chapter's experiment and write figures, metrics.json and index.html.
    ///
    /// Each stage shows a progress bar; the whole tour takes a few minutes on two cores.
    /// Same seed, same numbers.
    Tour(TourArgs),
    /// Look at a house, or solve it exactly.
    #[command(subcommand)]
    House(HouseCommand),
    /// Train a cat with REINFORCE, actor-critic, PPO, GRPO or Dr. GRPO and report how good it
    /// became.
    ///
    /// Shows a progress bar with the exact J(π) of the current policy, prints the learned
    /// policy's most likely move in every cell, and can write one JSON line of metrics per
    /// iteration. Same seed, same numbers.
    Train(TrainArgs),
    /// The language model (chapters 8–9): fine-tune, evaluate and sample a tiny GPT.
    #[command(subcommand)]
    Lm(LmCommand),
    /// Measure speed: the language model's rollout and update throughput and a whole GRPO
    /// step, or how fast the cat's house is solved. Prints a table and writes JSON with --json.
    ///
    /// The same quantities, defined the same way, are measured for PyTorch by
    /// benches/torch_lm.py and benches/torch_cat.py (see benches/README.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check that the language model computes on a GPU what it computes on the CPU.
    ///
    /// For a machine with an NVIDIA GPU and this binary (built with --features cuda) but no
    /// Rust toolchain to run the test suite. A small model (2 blocks of width 64) is built on
    /// the CPU from a fixed seed and copied to the device; each check runs the same inputs on
    /// both, in f32 with TF32 matrix products off. The checks, with the largest absolute
    /// difference that passes:
    ///
    /// forward — the logits of one forward pass over a padded batch, device vs CPU: 1e-4.
    ///
    /// kv-cache — on the device, the log-probabilities of greedy generation with the KV cache
    /// vs those of one full forward pass over the generated tokens: 1e-4.
    ///
    /// greedy — the greedy tokens, device vs CPU: no row may differ. The seed is chosen so
    /// that no greedy choice is a near tie; the line reports the smallest gap between the two
    /// best logits.
    ///
    /// sft grads, sft loss, sft params — one fine-tuning step (AdamW, lr 1e-3): every
    /// gradient of its loss, 2e-5; the loss, 1e-4; every parameter after the step, 5e-4 (half
    /// the learning rate: a lost or reversed gradient moves a parameter by lr or 2·lr).
    ///
    /// grpo grads, grpo loss, grpo params — the same for one GRPO update (two minibatches)
    /// on one batch sampled and scored on the CPU.
    ///
    /// Rounding alone moves these numbers by 1e-5 at most (gradients by 3e-7); a wrong kernel
    /// moves them by 1e-3 or more. Prints one line per check: its name, the largest absolute
    /// difference (and relative to the largest value), the tolerance, PASS or FAIL, and what
    /// was compared. Exit status 0 if every check passes; 1 if one fails or the device cannot
    /// be used. With --device cpu both sides are the CPU and every device-vs-CPU difference is
    /// exactly 0.
    GpuCheck(GpuCheckArgs),
    /// Regenerate the book's figures and tables (book/src/generated) from the experiments.
    Figures {
        /// Folder to write into.
        #[arg(long, default_value = "book/src/generated")]
        out: PathBuf,
    },
    /// Regenerate the Jupyter notebooks (notebooks/*.ipynb) from the book's chapters.
    ///
    /// The book is the single source of every chapter: prose becomes markdown cells and
    /// runnable `rust` blocks become code cells for the evcxr kernel.
    Notebooks {
        /// The book's source folder.
        #[arg(long, default_value = "book/src")]
        book: PathBuf,
        /// Where the notebooks go.
        #[arg(long, default_value = "notebooks")]
        out: PathBuf,
        /// Only compare: list notebooks that are out of date and fail if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Write a student handout: the library with the chapters' exercises left as todo!().
    ///
    /// Copies both crates, the tests, the book's chapters and the notebooks of the chosen
    /// chapters into a new folder. Each exercise is a function body marked in the library;
    /// in the handout it says `todo!("exercise C.N: the task")` and the grading tests
    /// `tests/grade_chCC.rs` check it. Everything else still compiles and runs. With
    /// --with-solutions, the same handout with every exercise solved (for the instructor).
    /// `--list` prints the exercises with their points instead.
    Handout(HandoutArgs),
    /// Grade a handout: run its grading tests and print a score table per exercise.
    ///
    /// Builds `tests/grade_chCC.rs` of each chapter in the handout's folder, runs each of
    /// its grading tests alone and awards each exercise its points in proportion to its tests
    /// that pass. A test passes only if its process succeeds and the log file the test
    /// harness writes for the grader says so; printed output is never read as a result. The
    /// table is markdown (paste it into a gradebook); --json writes a machine-readable report.
    Grade(GradeArgs),
}

#[derive(Args)]
struct GpuCheckArgs {
    /// The device to check against the CPU: cuda (needs a build with --features cuda and an
    /// NVIDIA GPU) or cpu.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Also write the results to this JSON file (written whether the checks pass or not).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct HandoutArgs {
    /// Chapters to hand out: e.g. 2-4, 2,5 or all.
    #[arg(long, default_value = "all")]
    chapters: String,
    /// A new (or empty) folder for the handout.
    #[arg(long, value_name = "DIR", required_unless_present = "list")]
    out: Option<PathBuf>,
    /// Leave the solutions in (the instructor's copy).
    #[arg(long)]
    with_solutions: bool,
    /// Only list the exercises of those chapters, with their points and places.
    #[arg(long)]
    list: bool,
    /// The zero-to-r1 workspace to copy from.
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
}

#[derive(Args)]
struct GradeArgs {
    /// The handout (a zero-to-r1 workspace) to grade.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Chapters to grade: e.g. 2-4, 2,5 or all.
    #[arg(long, default_value = "all")]
    chapters: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Time limit per chapter, in seconds, for everything together: building its grading
    /// tests and running all of them. When it runs out, every process still running (with
    /// whatever it started) is killed, and its unfinished tests fail.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Before grading, copy the grading tests of the chosen chapters (`tests/grade_chCC.rs`
    /// and `tests/common/`) from this folder (your own copy of the course) over the
    /// handout's, so that nobody is graded by tests they edited.
    #[arg(long, value_name = "DIR")]
    tests_from: Option<PathBuf>,
    /// Fail unless the result is as expected: `pass` (every test passes), `fail` (every
    /// test fails, as on a fresh handout) or `caught=C.N` (some test of exercise C.N fails).
    #[arg(long, value_name = "WHAT")]
    expect: Option<String>,
}

/// The learning algorithms of chapters 2–7.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Algo {
    /// REINFORCE (chapters 2–3), with the baseline chosen by --baseline.
    Reinforce,
    /// Actor-critic with GAE(λ) (chapter 4), one gradient step per batch.
    ActorCritic,
    /// PPO (chapter 5): several clipped epochs per batch.
    Ppo,
    /// GRPO (chapter 6): no critic; groups of episodes per start cell scored against each
    /// other, advantages divided by the group's standard deviation, each episode's loss
    /// averaged over its own length.
    Grpo,
    /// Dr. GRPO (chapter 7): GRPO without the division by the standard deviation, with
    /// every step divided by one constant (the step limit).
    DrGrpo,
}

impl Algo {
    /// The name on the command line.
    fn name(self) -> &'static str {
        match self {
            Algo::Reinforce => "reinforce",
            Algo::ActorCritic => "actor-critic",
            Algo::Ppo => "ppo",
            Algo::Grpo => "grpo",
            Algo::DrGrpo => "dr-grpo",
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    #[arg(long, value_enum, default_value = "ppo")]
    algo: Algo,
    #[command(flatten)]
    house: HouseArgs,
    /// Episodes are cut off after this many steps.
    #[arg(long, default_value_t = 100)]
    max_steps: usize,
    /// Gradient updates (REINFORCE) or rollout–optimise iterations (the others).
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// Episodes sampled per update or iteration. For GRPO this is questions × group size,
    /// and must be a multiple of --group-size.
    #[arg(long, default_value_t = 16)]
    episodes: usize,
    /// Learning rate of the policy (default: 0.1 for REINFORCE, 0.03 for actor-critic,
    /// 0.01 for PPO, 0.03 for GRPO and Dr. GRPO, all with Adam).
    #[arg(long)]
    lr: Option<f64>,
    /// Policy and value model: tabular or mlp.
    #[arg(long, default_value = "tabular")]
    model: String,
    /// Seed of the initial weights and of every sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write one JSON line of metrics per iteration to this file.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    #[command(flatten)]
    reuse: ReuseArgs,
    #[command(flatten)]
    critic: CriticArgs,
    #[command(flatten)]
    grpo: GrpoArgs,
}

/// How a batch is reused (PPO, GRPO and Dr. GRPO; refused by the algorithms that take one
/// plain gradient step per batch). Unset ones take the algorithm's preset.
#[derive(Args)]
#[command(next_help_heading = "Reusing a batch (PPO, GRPO, Dr. GRPO)")]
struct ReuseArgs {
    /// ε of the ratio clip, or `none` for the unclipped ratio ρ·Â (PPO only)
    /// [default: 0.2].
    #[arg(long, value_name = "EPS|none")]
    clip: Option<String>,
    /// μ, gradient passes over each batch [default: 4].
    #[arg(long)]
    epochs: Option<usize>,
}

impl ReuseArgs {
    /// The clip: `Some(ε)`, or `None` for `none`; `default` when not given.
    fn clip(&self, default: Option<f64>) -> Result<Option<f64>> {
        match self.clip.as_deref() {
            None => Ok(default),
            Some("none") => Ok(None),
            Some(text) => match text.parse::<f64>() {
                Ok(e) if e > 0.0 && e.is_finite() => Ok(Some(e)),
                _ => Err(Error::invalid(
                    "--clip",
                    format!("{text:?} must be a positive number or none"),
                )),
            },
        }
    }
}

/// Settings of the algorithms with a baseline or a critic.
#[derive(Args)]
#[command(next_help_heading = "Baselines and critics (REINFORCE, actor-critic, PPO)")]
struct CriticArgs {
    /// REINFORCE's weighting: total, rtg, mean or learned [default: learned].
    #[arg(long)]
    baseline: Option<String>,
    /// GAE's λ for actor-critic and PPO (default 0 for actor-critic, 0.95 for PPO).
    #[arg(long)]
    lambda: Option<f64>,
}

/// Settings of GRPO and Dr. GRPO (refused by the other algorithms). Unset ones take the
/// algorithm's preset.
#[derive(Args)]
#[command(next_help_heading = "GRPO and Dr. GRPO")]
struct GrpoArgs {
    /// G, the episodes walked from each start cell (the answers to one question); at least 2
    /// [default: 8].
    #[arg(long)]
    group_size: Option<usize>,
    /// β, the weight of the k3 KL penalty to the reference policy (the cat as it started)
    /// [default: 0].
    #[arg(long)]
    beta: Option<f64>,
    /// How per-step losses are combined: response-mean (GRPO), constant (Dr. GRPO: divide by
    /// episodes × the step limit), token-mean or episode-sum. Default: the algorithm's.
    #[arg(long)]
    aggregation: Option<String>,
    /// Divide each group's centred rewards by its standard deviation: true for GRPO, false
    /// for Dr. GRPO by default.
    #[arg(long)]
    std_scaling: Option<bool>,
    /// The one number an episode is scored with: its return, or success (1 at the meat,
    /// else 0) [default: return].
    #[arg(long)]
    reward: Option<String>,
}

impl GrpoArgs {
    /// The flags that were given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--group-size", self.group_size.is_some()),
            ("--beta", self.beta.is_some()),
            ("--aggregation", self.aggregation.is_some()),
            ("--std-scaling", self.std_scaling.is_some()),
            ("--reward", self.reward.is_some()),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| name)
        .collect()
    }

    fn config(
        &self,
        dr: bool,
        max_steps: usize,
        episodes: usize,
        reuse: &ReuseArgs,
    ) -> Result<zero_to_r1::algo::grpo::GrpoConfig> {
        use zero_to_r1::algo::grpo::GrpoConfig;
        use zero_to_r1::objective::Aggregation;
        let mut c = if dr {
            GrpoConfig::dr_grpo()
        } else {
            GrpoConfig::grpo()
        };
        let group_size = self.group_size.unwrap_or(8);
        if group_size < 2 || episodes % group_size != 0 {
            return Err(Error::invalid(
                "--episodes",
                format!(
                    "{episodes} episodes cannot be cut into groups of --group-size {group_size}"
                ),
            ));
        }
        c.group_size = group_size;
        c.questions_per_iteration = episodes / group_size;
        c.aggregation = match self.aggregation.as_deref() {
            None if dr => Aggregation::Constant { budget: max_steps },
            None => c.aggregation,
            Some("constant") => Aggregation::Constant { budget: max_steps },
            Some(name) => name.parse()?,
        };
        if let Some(scale) = self.std_scaling {
            c.scale_by_std = scale;
        }
        c.beta = self.beta.unwrap_or(0.0);
        c.clip = reuse.clip(Some(0.2))?.ok_or_else(|| {
            Error::invalid("--clip", "GRPO always clips its ratio; give a number")
        })?;
        c.epochs = reuse.epochs.unwrap_or(4);
        c.reward = self.reward.as_deref().unwrap_or("return").parse()?;
        Ok(c)
    }
}

/// An error for flags that the chosen algorithm does not use, so that none is ignored.
fn refuse(algo: &str, flags: &[&str]) -> Result<()> {
    match flags.first() {
        None => Ok(()),
        Some(flag) => Err(Error::invalid(
            flag.to_string(),
            format!("--algo {algo} does not use it (see `zero-to-r1 train --help`)"),
        )),
    }
}

#[derive(Args)]
struct TourArgs {
    /// Name of the run: results go to OUT/NAME/.
    #[arg(long, default_value = "tour")]
    name: String,
    /// Parent folder of all runs.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Seed of every random choice in the tour.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
    /// Fine-tuning steps of the language model in chapter 8's stage.
    #[arg(long, default_value_t = tour::TOUR_SFT_STEPS)]
    sft_steps: usize,
    /// Held-out problems in chapter 8's final evaluation and chapter 9's evaluations.
    #[arg(long, default_value_t = 100)]
    lm_eval_problems: usize,
    /// GRPO steps of the language model in chapter 9's stage.
    #[arg(long, default_value_t = tour::TOUR_GRPO_STEPS)]
    grpo_steps: usize,
}

#[derive(Subcommand)]
enum BenchCommand {
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

#[derive(Subcommand)]
enum LmCommand {
    /// Supervised fine-tuning of a fresh model on synthetic worked solutions, then a held-out
    /// evaluation.
    ///
    /// The training traces are in R1's format, `<think>scratchpad</think><answer>…</answer>`,
    /// and a configurable fraction of them is flawed (a slip that makes the answer wrong, a
    /// missing tag). Writes the checkpoint (model.safetensors, model.toml), the whole config
    /// (config.toml), one JSON line per step (sft.jsonl) and the evaluation (eval.json) into
    /// --out. Same seed, same model on the CPU.
    Sft {
        #[command(flatten)]
        run: LmRunArgs,
        /// Override the number of optimizer steps of the config.
        #[arg(long)]
        steps: Option<usize>,
        /// Checkpoint folder [default: runs/lm/TASK/sft]. It must be empty or new, unless
        /// --overwrite is given.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace the checkpoint that --out holds already.
        #[arg(long)]
        overwrite: bool,
    },
    /// Evaluate a checkpoint on held-out prompts (never seen in training).
    ///
    /// Reports greedy accuracy, pass@k (k samples at the config's temperature), the format
    /// rate, and the mean response length of correct and of incorrect answers.
    Eval {
        #[command(flatten)]
        run: LmRunArgs,
        /// Checkpoint folder [default: runs/lm/TASK/sft].
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
        /// Override the number of held-out problems.
        #[arg(long)]
        problems: Option<usize>,
        /// Print this many greedy responses.
        #[arg(long, default_value_t = 5)]
        show: usize,
    },
    /// Measure chapter 8's fine-tuning run for the book (minutes on two cores).
    ///
    /// Fine-tunes the config's model from scratch, evaluating on held-out problems along the
    /// way, and writes the record the book's figures and table are drawn from. Then run
    /// `zero-to-r1 figures` to redraw them.
    Measure {
        #[command(flatten)]
        run: LmRunArgs,
        /// Where to write the record.
        #[arg(long, default_value = "book/src/generated/ch08/sft_run.json")]
        out: PathBuf,
        /// A description of the machine, stored in the record.
        #[arg(long, default_value = "a 2-core x86-64 virtual machine without GPU")]
        machine: String,
    },
    /// R1-Zero on a laptop: fine-tune, then train with GRPO (or Dr. GRPO) on rule rewards.
    ///
    /// Fine-tunes a fresh model (or loads --sft), then samples G responses to each of B
    /// training prompts per step, scores them with the format and accuracy rules, and
    /// updates the policy with the clipped GRPO loss and a β-weighted k3 penalty to the
    /// frozen SFT model. Writes into --out: `sft/` (the SFT checkpoint), `grpo/` (config,
    /// reference, one JSON line of metrics per step in metrics.jsonl, checkpoints) and
    /// summary.json (held-out accuracy before and after). Every setting is in the config's
    /// [grpo] section (see configs/addition-cpu.toml); the flags override a few.
    ///
    /// Interrupted (Ctrl-C, a kill, a full disk)? Run `r1-zero --resume [--out DIR]`: it
    /// continues from the latest checkpoint with the run's own settings (run.json,
    /// grpo/config.toml) and gives the same numbers as an uninterrupted run. With --resume
    /// only --steps (to extend the run) and --device may be given.
    R1Zero {
        #[command(flatten)]
        run: LmRunArgs,
        /// grpo (÷std, per-response mean) or dr-grpo (no ÷std, constant normaliser).
        #[arg(long)]
        algo: Option<String>,
        /// Override grpo.steps.
        #[arg(long)]
        steps: Option<usize>,
        /// Override sft.steps.
        #[arg(long)]
        sft_steps: Option<usize>,
        /// Override grpo.beta, the weight of the KL penalty to the SFT model.
        #[arg(long)]
        beta: Option<f64>,
        /// Override grpo.epochs (μ).
        #[arg(long)]
        epochs: Option<usize>,
        /// Start from this SFT checkpoint folder instead of fine-tuning.
        #[arg(long, value_name = "DIR", conflicts_with = "resume")]
        sft: Option<PathBuf>,
        /// Run folder [default: runs/lm/TASK/r1-zero]. A new run needs an empty or new
        /// folder, unless --overwrite is given.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Continue the run in --out from its latest checkpoint (its own settings are used).
        #[arg(long, conflicts_with = "overwrite")]
        resume: bool,
        /// Start a new run in --out even though it holds an earlier one (which is deleted).
        #[arg(long)]
        overwrite: bool,
    },
    /// Measure chapter 9's runs for the book: one SFT model, then GRPO, Dr. GRPO and the
    /// ablations (no ÷std, β = 0, μ = 2) from copies of it (about half an hour on two cores).
    ///
    /// Writes the record the book's figures and ablation table are drawn from; then run
    /// `zero-to-r1 figures` to redraw them. The runs' folders (checkpoints, metrics.jsonl)
    /// go to --runs.
    MeasureR1 {
        #[command(flatten)]
        run: LmRunArgs,
        /// Run only these variants (by name, e.g. --only GRPO --only "Dr. GRPO").
        #[arg(long)]
        only: Vec<String>,
        /// Where to write the record.
        #[arg(long, default_value = "book/src/generated/ch09/r1_zero.json")]
        out: PathBuf,
        /// Where to keep the runs' folders.
        #[arg(long, default_value = "runs/lm/measure-r1")]
        runs: PathBuf,
        /// A description of the machine, stored in the record.
        #[arg(long, default_value = "a 2-core x86-64 virtual machine without GPU")]
        machine: String,
    },
    /// Sample responses from a checkpoint and show their rewards.
    Sample {
        #[command(flatten)]
        run: LmRunArgs,
        /// Checkpoint folder [default: runs/lm/TASK/sft].
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
        /// A prompt of the task, e.g. `347+85=` (default: held-out problems).
        #[arg(long)]
        prompt: Option<String>,
        /// How many responses.
        #[arg(short, long, default_value_t = 4)]
        n: usize,
        /// Sampling temperature; 0 is greedy.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Sample among the k most likely tokens only (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Longest response in tokens.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
    },
}

/// What every language-model command shares.
#[derive(Args)]
struct LmRunArgs {
    /// A TOML config file (see configs/); unset keys keep the CPU defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The task: addition, arithmetic or countdown (overrides the config's task.name;
    /// countdown without --config takes the GPU config, configs/countdown-gpu.toml).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the weights, the data and the samples [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, or cuda (needs a build with --features cuda and an NVIDIA GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl LmRunArgs {
    fn config(&self) -> Result<zero_to_r1::lm::config::LmConfig> {
        use zero_to_r1::lm::config::LmConfig;
        let mut c = match &self.config {
            Some(path) => LmConfig::from_file(path)?,
            None => LmConfig::default(),
        };
        if let Some(t) = &self.task {
            zero_to_r1::lm::task::task_by_name(t)?;
            if *t != c.task.name {
                c.task.name = t.clone();
                if t == "countdown" && self.config.is_none() {
                    eprintln!(
                        "note: --task countdown without --config takes the GPU config \
                         (configs/countdown-gpu.toml): the CPU default model is too small for it"
                    );
                    c = LmConfig::gpu_default();
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    fn checkpoint(&self, given: &Option<PathBuf>, task: &str) -> PathBuf {
        given
            .clone()
            .unwrap_or_else(|| zero_to_r1::lm::checkpoint::default_dir(task))
    }
}

fn lm(command: LmCommand) -> Result<()> {
    use zero_to_r1::lm::{device, eval, generate, reward, tokenizer::Tokenizer};
    match command {
        LmCommand::Sft {
            run,
            steps,
            out,
            overwrite,
        } => {
            let mut config = run.config()?;
            if let Some(s) = steps {
                config.sft.steps = s;
                config.sft.warmup = config.sft.warmup.min(s);
            }
            config.validate()?;
            let dev = device(&run.device)?;
            let out = run.checkpoint(&out, &config.task.name);
            zero_to_r1::lm::run::claim_folder(&out, overwrite)?;
            let r = zero_to_r1::lm::run::sft_and_eval(&config, run.seed(), &dev, true, Some(&out))?;
            let s = r.summary(&config);
            say!(
                "{} parameters, {} steps in {:.1} s ({:.0} tokens/s); loss {:.3} → {:.3}",
                s.parameters,
                s.steps,
                s.seconds,
                s.train_tokens_per_second,
                s.first_loss,
                s.final_loss
            );
            print_eval(&r.eval, config.data.clean_rate())?;
            say!("wrote the checkpoint and metrics to {}", out.display());
            Ok(())
        }
        LmCommand::Measure { run, out, machine } => {
            zero_to_r1::io::check_writable(&out)?;
            if run.device != "cpu" {
                return Err(Error::invalid(
                    "--device",
                    "the book's record is measured on the cpu",
                ));
            }
            let config = zero_to_r1::experiments::ch08::Ch08Config {
                lm: run.config()?,
                seed: run.seed(),
                ..Default::default()
            };
            let bar = tour::progress_bar(config.lm.sft.steps as u64, "8 · SFT", true);
            let (mut record, _) = zero_to_r1::experiments::ch08::run(&config, |_, loss| {
                bar.inc(1);
                bar.set_message(format!("loss {loss:.3}"));
            })?;
            bar.finish();
            record.machine = machine;
            record.command = record_command(&record.command, &run);
            let table = zero_to_r1::experiments::ch08::table(&record);
            save_record(&out, &record, &table)
        }
        LmCommand::R1Zero {
            run,
            algo,
            steps,
            sft_steps,
            beta,
            epochs,
            sft,
            out,
            resume,
            overwrite,
        } => {
            use zero_to_r1::lm::config::LmConfig;
            use zero_to_r1::lm::run::{claim_folder, r1_zero, resume_r1_zero, Start};
            let clock = std::time::Instant::now();
            let (s, out, k) = if resume {
                let out = out.unwrap_or_else(|| {
                    PathBuf::from("runs/lm")
                        .join(LmConfig::default().task.name)
                        .join("r1-zero")
                });
                let fixed = [
                    ("--config", run.config.is_some()),
                    ("--task", run.task.is_some()),
                    ("--seed", run.seed.is_some()),
                    ("--algo", algo.is_some()),
                    ("--sft-steps", sft_steps.is_some()),
                    ("--beta", beta.is_some()),
                    ("--epochs", epochs.is_some()),
                ];
                if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
                    return Err(Error::invalid(
                        flag.to_string(),
                        format!(
                            "a resumed run keeps the settings it started with (in {}); \
                             only --steps and --device may be given with --resume",
                            out.display()
                        ),
                    ));
                }
                let dev = device(&run.device)?;
                let (s, _) = resume_r1_zero(&out, &dev, true, steps)?;
                let k = zero_to_r1::lm::run::R1ZeroRun::load(&out)?.config.eval.k;
                (s, out, k)
            } else {
                let mut config = run.config()?;
                if let Some(a) = &algo {
                    config.grpo.set_algo(a)?;
                }
                if let Some(s) = steps {
                    config.grpo.steps = s;
                    config.grpo.warmup = config.grpo.warmup.min(s);
                }
                if let Some(s) = sft_steps {
                    config.sft.steps = s;
                    config.sft.warmup = config.sft.warmup.min(s);
                }
                if let Some(b) = beta {
                    config.grpo.beta = b;
                }
                if let Some(e) = epochs {
                    config.grpo.epochs = e;
                }
                config.validate()?;
                let dev = device(&run.device)?;
                let out = out.unwrap_or_else(|| {
                    PathBuf::from("runs/lm")
                        .join(&config.task.name)
                        .join("r1-zero")
                });
                claim_folder(&out, overwrite)?;
                let start = match &sft {
                    Some(dir) => Start::Checkpoint(dir),
                    None => Start::Sft,
                };
                let (s, _) = r1_zero(&config, run.seed(), &dev, true, &out, start)?;
                (s, out, config.eval.k)
            };
            let pct = |x: f64| format!("{:.1}%", 100.0 * x);
            let sft_part = match &s.sft_from {
                Some(dir) => format!("SFT model from {}", dir.display()),
                None => format!("SFT {} steps in {:.0} s", s.sft_steps, s.sft_seconds),
            };
            say!(
                "{} parameters; {sft_part}, GRPO {} steps in {:.0} s ({:.0} s in this process)",
                s.parameters,
                s.grpo_steps,
                s.grpo_seconds,
                clock.elapsed().as_secs_f64()
            );
            say!(
                "held-out greedy accuracy {} → {} ({:+.1} points); format {} → {}; pass@{k} {} → {}",
                pct(s.before.greedy_accuracy),
                pct(s.after.greedy_accuracy),
                s.lift_points,
                pct(s.before.format_rate),
                pct(s.after.format_rate),
                pct(s.before.pass_at_k),
                pct(s.after.pass_at_k)
            );
            say!("wrote the run to {}", out.display());
            Ok(())
        }
        LmCommand::MeasureR1 {
            run,
            only,
            out,
            runs,
            machine,
        } => {
            if run.device != "cpu" {
                return Err(Error::invalid(
                    "--device",
                    "the book's record is measured on the cpu",
                ));
            }
            zero_to_r1::io::check_writable(&out)?;
            let config = run.config()?;
            let names: Vec<&str> = zero_to_r1::experiments::ch09::variants()
                .iter()
                .map(|(n, _)| *n)
                .collect();
            if let Some(bad) = only.iter().find(|o| !names.contains(&o.as_str())) {
                return Err(Error::invalid(
                    "--only",
                    format!("{bad:?}; the variants are {}", names.join(", ")),
                ));
            }
            let count = if only.is_empty() {
                names.len()
            } else {
                only.len()
            };
            say!("fine-tuning the SFT model ({} steps)…", config.sft.steps);
            let mut current = None;
            let mut started = 0;
            let mut record = zero_to_r1::experiments::ch09::run(
                &config,
                run.seed(),
                &runs,
                &only,
                |name, m| {
                    if current.as_ref().is_none_or(|(n, _)| n != name) {
                        started += 1;
                        let label = format!("9 · {name} ({started}/{count})");
                        let bar =
                            zero_to_r1::lm::run::grpo_progress(config.grpo.steps, 0, &label, true);
                        current = Some((name.to_string(), bar));
                    }
                    if let Some((_, bar)) = current.as_mut() {
                        bar(m);
                    }
                },
            )?;
            record.machine = machine;
            record.command = record_command(&record.command, &run);
            let table = zero_to_r1::experiments::ch09::table(&record);
            save_record(&out, &record, &table)
        }
        LmCommand::Eval {
            run,
            checkpoint: ck,
            problems,
            show,
        } => {
            let (config, model) = load(&run, &ck, device(&run.device)?)?;
            let mut ec = config.eval;
            if let Some(n) = problems {
                ec.problems = n;
            }
            let most = zero_to_r1::lm::eval::MAX_PROBLEMS;
            if ec.problems == 0 || ec.problems > most {
                return Err(Error::invalid(
                    "--problems",
                    format!("{} must be in 1..={most}", ec.problems),
                ));
            }
            let task = config.task()?;
            let set = eval::heldout(task.as_ref(), ec.problems, config.task.difficulty);
            let report = eval::evaluate(&model, task.as_ref(), &set, &ec, run.seed())?;
            for s in report.greedy.iter().take(show) {
                say!(
                    "{}  {}  [accuracy {}, format {}]",
                    s.prompt,
                    s.response,
                    s.accuracy,
                    s.format
                );
            }
            print_eval(&report, config.data.clean_rate())?;
            Ok(())
        }
        LmCommand::Sample {
            run,
            checkpoint: ck,
            prompt,
            n,
            temperature,
            top_k,
            max_new_tokens,
        } => {
            if n == 0 || n > 10_000 {
                return Err(Error::invalid("-n", format!("{n} must be in 1..=10000")));
            }
            let (config, model) = load(&run, &ck, device(&run.device)?)?;
            let t = config.task()?;
            let problems = match prompt {
                Some(p) => vec![t.check_prompt(&p)?; n],
                None => eval::heldout(t.as_ref(), n, config.task.difficulty),
            };
            let sc = generate::SampleConfig {
                temperature,
                top_k,
                max_new_tokens,
            };
            let tok = Tokenizer;
            let prompts = problems
                .iter()
                .map(|p| tok.encode(&p.prompt))
                .collect::<Result<Vec<_>>>()?;
            let start = std::time::Instant::now();
            let rollout = generate::generate(&model, &prompts, &sc, run.seed())?;
            let secs = start.elapsed().as_secs_f64();
            let mut total = 0;
            for (p, resp) in problems.iter().zip(&rollout.responses) {
                let text = tok.decode_response(resp);
                let r = reward::score(t.as_ref(), p, &text, &config.reward);
                total += resp.len();
                say!(
                    "{}{}
    reward {:.2} (format {}, accuracy {}), {} tokens",
                    p.prompt,
                    text,
                    r.total,
                    r.format,
                    r.accuracy,
                    resp.len()
                );
            }
            say!(
                "{total} tokens in {secs:.2} s ({:.0} tokens/s)",
                total as f64 / secs.max(1e-9)
            );
            Ok(())
        }
    }
}

fn bench(command: BenchCommand) -> Result<()> {
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
            let b =
                zero_to_r1::bench::lm(&config, &dev, repeats, run.seed(), peak_tflops, |what| {
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
            let b = zero_to_r1::bench::cat(env_steps, max_iterations, seed)?;
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

fn gpu_check(args: &GpuCheckArgs) -> Result<()> {
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

/// The command of a measured record, marked if a config or seed other than the defaults was
/// used.
fn record_command(base: &str, run: &LmRunArgs) -> String {
    if run.config.is_some() || run.seed.is_some_and(|s| s != 0) {
        format!("{base} (with --config/--seed)")
    } else {
        base.to_string()
    }
}

/// Writes a chapter's measured record to `out` and prints its table.
fn save_record(out: &std::path::Path, record: &impl serde::Serialize, table: &str) -> Result<()> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| Error::invalid("record", e.to_string()))?;
    zero_to_r1::io::write_atomic(out, text.as_bytes())?;
    put!("{table}");
    say!("wrote {}; now run `zero-to-r1 figures`", out.display());
    Ok(())
}

/// The config and model of a checkpoint folder (its own config.toml unless --config is given).
fn load(
    run: &LmRunArgs,
    ck: &Option<PathBuf>,
    dev: zero_to_r1::candle::Device,
) -> Result<(zero_to_r1::lm::config::LmConfig, zero_to_r1::lm::model::Gpt)> {
    use zero_to_r1::lm::config::LmConfig;
    let first = run.config()?;
    let dir = run.checkpoint(ck, &first.task.name);
    let saved = dir.join("config.toml");
    let mut config = if run.config.is_none() && saved.exists() {
        LmConfig::from_file(&saved)?
    } else {
        first
    };
    config.model = zero_to_r1::lm::checkpoint::load_config(&dir)?;
    if let Some(t) = &run.task {
        config.task.name = t.clone();
    }
    config.validate()?;
    config.check_memory(&dev)?;
    let model = zero_to_r1::lm::checkpoint::load(&dir, &dev)?;
    Ok((config, model))
}

fn print_eval(r: &zero_to_r1::lm::eval::EvalReport, clean: f64) -> Result<()> {
    let len = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.1}"));
    say!(
        "held-out ({} problems): greedy accuracy {:.1}%, format {:.1}%; pass@{} {:.1}%, sampled accuracy {:.1}%, sampled format {:.1}% (the training traces: {:.0}% clean); mean length correct {} / incorrect {} tokens; sampling {:.0} tokens/s",
        r.problems,
        100.0 * r.greedy_accuracy,
        100.0 * r.format_rate,
        r.k,
        100.0 * r.pass_at_k,
        100.0 * r.sampled_accuracy,
        100.0 * r.sampled_format_rate,
        100.0 * clean,
        len(r.mean_len_correct),
        len(r.mean_len_incorrect),
        r.tokens_per_second
    );
    Ok(())
}

#[derive(Subcommand)]
enum HouseCommand {
    /// Print a house as text (and optionally draw it as an SVG picture).
    Show {
        #[command(flatten)]
        house: HouseArgs,
        /// Episodes are cut off after this many steps.
        #[arg(long, default_value_t = 100)]
        max_steps: usize,
        /// Also draw the house into this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Solve a house by value iteration: print V*(s) and an optimal action per cell.
    ///
    /// This is the optimum without a step limit (infinite horizon), discounted by γ. With
    /// γ = 1 and no step cost every path that eventually reaches the meat is optimal, so
    /// the arrows only break ties (in the order up, down, left, right).
    Solve {
        #[command(flatten)]
        house: HouseArgs,
        /// Discount factor γ in [0, 1]: how much the cat cares about later rewards.
        #[arg(long, default_value_t = 0.99)]
        gamma: f64,
        /// Also draw V* and π* into this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

/// Which house and how it behaves.
#[derive(Args)]
struct HouseArgs {
    /// A map file ('.' floor, '#' wall, 'B' broom, 'T' bathtub, 'M' meat, 'C' start).
    /// Without it, the built-in house of the book.
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Probability that a move goes sideways instead.
    #[arg(long, default_value_t = 0.0)]
    slip: f64,
    /// A cost subtracted on every step.
    #[arg(long, default_value_t = 0.0)]
    step_cost: f64,
    /// A bathtub ends the episode (a failure that ends early, like a wrong answer).
    #[arg(long)]
    bathtub_ends: bool,
}

impl HouseArgs {
    fn env(&self, max_steps: usize) -> Result<Env> {
        let house = match &self.map {
            Some(path) => House::from_file(path)?,
            None => House::seed(),
        };
        let config = EnvConfig {
            rewards: Rewards {
                step_cost: self.step_cost,
                ..Rewards::default()
            },
            slip: self.slip,
            max_steps,
            bathtub_ends: self.bathtub_ends,
        };
        Ok(Env::new(house, config)?)
    }
}

fn show(args: &HouseArgs, max_steps: usize, svg: Option<&PathBuf>) -> Result<()> {
    let env = args.env(max_steps)?;
    let house = env.house();
    put!("{}", house.render(None));
    let r = env.config().rewards;
    say!(
        "\n{} x {} cells, {} start cell(s). Rewards for the cell the cat lands on: floor {}, broom {}, \
         bathtub {}, meat {} (ends the episode); step cost {}. Slip {}, step limit {}.",
        house.rows(),
        house.cols(),
        house.starts().len(),
        r.floor,
        r.broom,
        r.bathtub,
        r.meat,
        r.step_cost,
        env.config().slip,
        env.config().max_steps
    );
    if let Some(path) = svg {
        plot::house_figure(house, None, "The cat's house")?.save(path)?;
        say!("wrote {}", path.display());
    }
    Ok(())
}

fn solve(args: &HouseArgs, gamma: f64, svg: Option<&PathBuf>) -> Result<()> {
    let env = args.env(EnvConfig::default().max_steps)?;
    let house = env.house();
    let sol = env.mdp().value_iteration(gamma, 1e-10)?;
    say!(
        "V*(s) with γ = {gamma} ({} sweeps of value iteration):",
        sol.sweeps
    );
    for r in 0..house.rows() {
        let row: Vec<String> = (0..house.cols())
            .map(|c| match house.cell(r, c) {
                Cell::Wall => "    #  ".to_string(),
                Cell::Meat => "  meat ".to_string(),
                _ => format!("{:7.2}", sol.values[r * house.cols() + c]),
            })
            .collect();
        say!("{}", row.join(""));
    }
    say!("\nπ*(s), an optimal move in every cell:");
    for r in 0..house.rows() {
        let row: String = (0..house.cols())
            .map(|c| match house.cell(r, c) {
                Cell::Wall => '#',
                Cell::Meat => 'M',
                _ => sol.action(r * house.cols() + c).arrow(),
            })
            .collect();
        say!("{row}");
    }
    if gamma == 1.0 && env.config().rewards.step_cost == 0.0 {
        say!(
            "\nNote: with γ = 1 and no step cost, reaching the meat sooner or later is worth the \
             same, so many moves tie and the arrows only break ties (up, down, left, right)."
        );
    }
    let start = house.starts()[0];
    say!(
        "\nFrom the first start cell the optimal cat expects {:.2}; its first move is {:?}.",
        sol.values[start],
        sol.action(start)
    );
    if let Some(path) = svg {
        let caption = format!("V*(s) and π*(s), γ = {gamma}");
        plot::value_figure(house, sol.values.view(), Some(sol.policy.view()), &caption)?
            .save(path)?;
        say!("wrote {}", path.display());
    }
    Ok(())
}

/// Shows each iteration on the progress bar and keeps its metrics as a JSON line.
struct Recorder {
    bar: indicatif::ProgressBar,
    lines: Vec<String>,
    /// The first line that could not be written, reported after training.
    failed: Option<String>,
}

impl Recorder {
    fn log(&mut self, j: f64, success: f64, entry: &impl serde::Serialize) {
        self.bar.inc(1);
        self.bar
            .set_message(format!("J {j:.1}, success {:.0}%", 100.0 * success));
        match serde_json::to_string(entry) {
            Ok(line) => self.lines.push(line),
            Err(e) => {
                let why = format!("iteration {}: {e}", self.lines.len());
                self.failed.get_or_insert(why);
            }
        }
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.metrics {
        zero_to_r1::io::check_writable(path)?;
    }
    use zero_to_r1::algo::{actor_critic, grpo, ppo, reinforce, ModelKind};
    let mut env = args.house.env(args.max_steps)?;
    let model: ModelKind = args.model.parse()?;
    let (reuse, critic, grpo_args) = (&args.reuse, &args.critic, &args.grpo);
    let given = |pairs: &[(&'static str, bool)]| -> Vec<&'static str> {
        pairs.iter().filter(|p| p.1).map(|p| p.0).collect()
    };
    let reuse_given = given(&[
        ("--clip", reuse.clip.is_some()),
        ("--epochs", reuse.epochs.is_some()),
    ]);
    let name = args.algo.name();
    match args.algo {
        Algo::Reinforce => {
            refuse(name, &reuse_given)?;
            refuse(name, &given(&[("--lambda", critic.lambda.is_some())]))?;
            refuse(name, &grpo_args.given())?;
        }
        Algo::ActorCritic | Algo::Ppo => {
            if matches!(args.algo, Algo::ActorCritic) {
                refuse(name, &reuse_given)?;
            }
            refuse(name, &given(&[("--baseline", critic.baseline.is_some())]))?;
            refuse(name, &grpo_args.given())?;
        }
        Algo::Grpo | Algo::DrGrpo => refuse(
            name,
            &given(&[
                ("--baseline", critic.baseline.is_some()),
                ("--lambda", critic.lambda.is_some()),
            ]),
        )?,
    }
    let bar = tour::progress_bar(args.iterations as u64, "training", true);
    let mut rec = Recorder {
        bar,
        lines: Vec::new(),
        failed: None,
    };
    let table = match args.algo {
        Algo::Reinforce => {
            let mut c = reinforce::ReinforceConfig {
                updates: args.iterations,
                episodes_per_update: args.episodes,
                baseline: critic.baseline.as_deref().unwrap_or("learned").parse()?,
                policy: model,
                value: model,
                seed: args.seed,
                ..Default::default()
            };
            if let Some(lr) = args.lr {
                c.lr = lr;
            }
            reinforce::train(&mut env, &c, |u| rec.log(u.exact_j, u.exact_success, u))?.table()?
        }
        Algo::ActorCritic | Algo::Ppo => {
            let mut c = match args.algo {
                Algo::ActorCritic => actor_critic::ActorCriticConfig::default().as_ppo(),
                _ => ppo::PpoConfig::default(),
            };
            c.iterations = args.iterations;
            c.episodes_per_iteration = args.episodes;
            c.policy = model;
            c.value = model;
            c.seed = args.seed;
            c.clip = reuse.clip(c.clip)?;
            if let Some(e) = reuse.epochs {
                c.epochs = e;
            }
            if let Some(lr) = args.lr {
                c.lr = lr;
            }
            if let Some(l) = critic.lambda {
                c.lambda = l;
            }
            ppo::train(&mut env, &c, |u| rec.log(u.exact_j, u.exact_success, u))?.table()?
        }
        Algo::Grpo | Algo::DrGrpo => {
            let mut c = grpo_args.config(
                matches!(args.algo, Algo::DrGrpo),
                args.max_steps,
                args.episodes,
                reuse,
            )?;
            c.iterations = args.iterations;
            c.policy = model;
            c.seed = args.seed;
            if let Some(lr) = args.lr {
                c.lr = lr;
            }
            grpo::train(&mut env, &c, |u| rec.log(u.exact_j, u.exact_success, u))?.table()?
        }
    };
    rec.bar.finish();
    if let Some(why) = rec.failed {
        return Err(Error::invalid("metrics", format!("cannot write {why}")));
    }
    let lines = rec.lines;
    let mdp = env.mdp();
    let j = mdp.expected_return(table.view(), 1.0)?;
    let best = mdp.value_iteration(0.99, 1e-10)?;
    let j_star = mdp.expected_return(best.policy.view(), 1.0)?;
    let p = zero_to_r1::exact::success_probability(env.house(), env.config(), &table)?;
    let house = env.house();
    say!("The learned policy's most likely move in every cell:");
    for r in 0..house.rows() {
        let row: String = (0..house.cols())
            .map(|c| {
                let i = r * house.cols() + c;
                match house.cell(r, c) {
                    Cell::Wall => '#',
                    Cell::Meat => 'M',
                    _ => {
                        let a = (0..4)
                            .fold(0, |b, a| if table[[i, a]] > table[[i, b]] { a } else { b });
                        zero_to_r1::gridworld::Action::ALL[a].arrow()
                    }
                }
            })
            .collect();
        say!("{row}");
    }
    say!(
        "\nExact J(π) = {j:.2} (the optimal cat's: {j_star:.2}); it reaches the meat with probability {:.3}.",
        p
    );
    if let Some(path) = &args.metrics {
        let mut text = lines.join("\n");
        text.push('\n');
        zero_to_r1::io::write_atomic(path, text.as_bytes())?;
        say!(
            "wrote {} lines of metrics to {}",
            lines.len(),
            path.display()
        );
    }
    Ok(())
}

fn handout_cmd(args: &HandoutArgs) -> Result<()> {
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

fn grade_cmd(args: &GradeArgs) -> Result<()> {
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

fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Tour(TourArgs {
        name: "tour".into(),
        out: "runs".into(),
        seed: 1,
        quiet: false,
        sft_steps: tour::TOUR_SFT_STEPS,
        lm_eval_problems: 100,
        grpo_steps: tour::TOUR_GRPO_STEPS,
    })) {
        Command::Tour(args) => {
            let config = tour::TourConfig {
                out: args.out,
                name: args.name,
                seed: args.seed,
                progress: !args.quiet,
                sft_steps: args.sft_steps,
                lm_eval_problems: args.lm_eval_problems,
                grpo_steps: args.grpo_steps,
            };
            let dir = tour::run(&config)?;
            say!(
                "\nThe tour is done. Open {} in a browser.",
                dir.join("index.html").display()
            );
            Ok(())
        }
        Command::Train(args) => train(&args),
        Command::Lm(command) => lm(command),
        Command::Bench(command) => bench(command),
        Command::GpuCheck(args) => gpu_check(&args),
        Command::House(HouseCommand::Show {
            house,
            max_steps,
            svg,
        }) => show(&house, max_steps, svg.as_ref()),
        Command::House(HouseCommand::Solve { house, gamma, svg }) => {
            solve(&house, gamma, svg.as_ref())
        }
        Command::Figures { out } => {
            let n = experiments::write_book_assets(&out)?;
            say!("wrote {n} files under {}", out.display());
            Ok(())
        }
        Command::Handout(args) => handout_cmd(&args),
        Command::Grade(args) => grade_cmd(&args),
        Command::Notebooks { book, out, check } => {
            if check {
                let stale = notebook::stale(&book, &out)?;
                if stale.is_empty() {
                    say!("notebooks are up to date");
                    return Ok(());
                }
                for s in &stale {
                    eprintln!("{s}");
                }
                return Err(Error::invalid(
                    "notebooks",
                    "out of date with the book; run `zero-to-r1 notebooks`",
                ));
            }
            for name in notebook::write_all(&book, &out)? {
                say!("wrote {}", out.join(name).display());
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Every command allocates and frees tensors in a loop; keep the freed memory for reuse.
    zero_to_r1::lm::keep_freed_memory();
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version and usage errors: clap's own message, but a failed write (a full
        // disk) is reported and fails, like every other write.
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            return match e.print() {
                Ok(()) => ExitCode::from(code),
                Err(w) => {
                    eprintln!("error: standard output: {w}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ends the process quietly, like other command-line tools, when whatever reads its output
/// stops reading (`zero-to-r1 house show | head -3`). Rust ignores the broken-pipe signal, so
/// the next `println!` would panic instead; this restores the signal's default action.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: sets the default action of one signal; no handler code runs in this process.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
