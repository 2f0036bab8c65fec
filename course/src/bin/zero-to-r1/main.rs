//! The `zero-to-r1` command line. Run it with no arguments for the tour.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use course::bars::Bars;
use course::{experiments, handout, notebook, plot, tour};
use zero_to_r1::gridworld::{Cell, Env, EnvConfig, House, Rewards};
use zero_to_r1::{Error, Result};

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

mod cat;
mod house;
mod lm;
mod lm_args;
mod measure;
mod r1_zero;
mod tools;

use cat::TrainArgs;
use house::HouseCommand;
use lm::LmCommand;
use tools::{BenchCommand, GpuCheckArgs, GradeArgs, HandoutArgs};

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
    /// runnable `rust` blocks become code cells for the evcxr kernel. The outputs recorded in
    /// the notebooks (by `bash notebooks/record.sh`) are kept for every unchanged cell, and
    /// what each block prints is written to book/src/generated/outputs/, which the book shows
    /// under the block.
    Notebooks {
        /// The book's source folder.
        #[arg(long, default_value = "book/src")]
        book: PathBuf,
        /// Where the notebooks go.
        #[arg(long, default_value = "notebooks")]
        out: PathBuf,
        /// Only compare: list notebooks and printed outputs that are out of date, blocks
        /// without a recorded output and output blocks the book lacks, and fail if there are
        /// any.
        #[arg(long)]
        check: bool,
    },
    /// Write a student handout: the library with the chapters' exercises left as todo!().
    ///
    /// Copies the workspace (the library, gridworld and the course), the tests, the book's chapters and the notebooks of the chosen
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
    /// Pretraining steps of chapter 9's base model.
    #[arg(long, default_value_t = tour::TOUR_PRETRAIN_STEPS)]
    pretrain_steps: usize,
    /// GRPO steps of the language model in chapter 9's stage.
    #[arg(long, default_value_t = tour::TOUR_GRPO_STEPS)]
    grpo_steps: usize,
}

fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Tour(TourArgs {
        name: "tour".into(),
        out: "runs".into(),
        seed: 1,
        quiet: false,
        sft_steps: tour::TOUR_SFT_STEPS,
        lm_eval_problems: 100,
        pretrain_steps: tour::TOUR_PRETRAIN_STEPS,
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
                pretrain_steps: args.pretrain_steps,
                grpo_steps: args.grpo_steps,
            };
            let dir = tour::run(&config)?;
            say!(
                "\nThe tour is done. Open {} in a browser.",
                dir.join("index.html").display()
            );
            Ok(())
        }
        Command::Train(args) => cat::train(&args),
        Command::Lm(command) => lm::lm(command),
        Command::Bench(command) => tools::bench(command),
        Command::GpuCheck(args) => tools::gpu_check(&args),
        Command::House(HouseCommand::Show {
            house,
            max_steps,
            svg,
        }) => house::show(&house, max_steps, svg.as_ref()),
        Command::House(HouseCommand::Solve { house, gamma, svg }) => {
            house::solve(&house, gamma, svg.as_ref())
        }
        Command::Figures { out } => {
            let n = experiments::write_book_assets(&out)?;
            say!("wrote {n} files under {}", out.display());
            Ok(())
        }
        Command::Handout(args) => tools::handout_cmd(&args),
        Command::Grade(args) => tools::grade_cmd(&args),
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
                    "out of date with the book or its recorded outputs (listed above)",
                ));
            }
            let (written, problems) = notebook::write_all(&book, &out)?;
            say!(
                "wrote {} files: the notebooks in {} and the printed outputs under {}",
                written.len(),
                out.display(),
                book.join(notebook::OUTPUTS_DIR).display()
            );
            // Not errors yet (`--check` fails on them): a changed block waits for its output
            // to be recorded again.
            for p in &problems {
                eprintln!("warning: {p}");
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
