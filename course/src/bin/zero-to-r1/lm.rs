//! The language-model commands: `lm sft`, `lm eval`, `lm sample`, `lm r1-zero` and the
//! book's measured runs.

use super::*;
use crate::lm_args::LmRunArgs;
use crate::measure::{self, MeasureArgs, MeasureZeroArgs};
use crate::r1_zero::{self, R1ZeroArgs};

#[derive(Subcommand)]
pub(crate) enum LmCommand {
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
    Measure(MeasureArgs),
    /// R1-Zero on a laptop: a starting model, then GRPO (or Dr. GRPO) on rule rewards.
    ///
    /// The starting model: by default (configs/zero-cpu.toml) a base model pretrained on
    /// drafted documents, then no fine-tuning: R1-Zero's route, about four and a half minutes
    /// on two cores. With --config configs/cold-start-cpu.toml, that base model fine-tuned
    /// briefly on the template (R1's cold start); with --config configs/addition-cpu.toml,
    /// chapter 8's fine-tuning; with --sft DIR, a checkpoint `lm sft` made (and chapter 8's
    /// config unless --config is given). Then it samples G responses to each of B training
    /// prompts per step, scores them with the format and accuracy rules, and updates the
    /// policy with the clipped GRPO loss and a β-weighted k3 penalty to the frozen starting
    /// model. Writes into --out: `sft/` (the starting checkpoint), `grpo/` (config,
    /// reference, one JSON line of metrics per step in metrics.jsonl, checkpoints) and
    /// summary.json (held-out accuracy before and after). Every setting is in the config's
    /// [grpo] section (see configs/zero-cpu.toml); the flags override a few.
    ///
    /// Interrupted (Ctrl-C, a kill, a full disk)? Run `r1-zero --resume [--out DIR]`: it
    /// continues from the latest checkpoint with the run's own settings (run.json,
    /// grpo/config.toml) and gives the same numbers as an uninterrupted run. With --resume
    /// only --steps (to extend the run) and --device may be given.
    R1Zero(R1ZeroArgs),
    /// Measure chapter 9 for the book, over several seeds: R1-Zero's route (GRPO straight
    /// from a pretrained base model, configs/zero-cpu.toml), the same with Dr. GRPO, R1's
    /// route (a short cold-start fine-tuning first, configs/cold-start-cpu.toml), and the
    /// ablation of the newer GRPO variants (clip-higher, dynamic sampling, the soft overlong
    /// penalty, GSPO, β = 0), each a 30-step run from the base model; about 45 minutes on two
    /// cores for three seeds.
    ///
    /// Each seed pretrains its own base model from fresh weights, and all its runs start
    /// from it. Writes the record the book's tables and figures are drawn from; then run
    /// `zero-to-r1 figures` to redraw them.
    MeasureZero(MeasureZeroArgs),
    /// Sample responses from a checkpoint and show their rewards.
    Sample {
        #[command(flatten)]
        run: LmRunArgs,
        /// Checkpoint folder [default: runs/lm/TASK/sft].
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
        /// A prompt of the task, e.g. `47+85=` for the two-digit addition model (default:
        /// held-out problems).
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

pub(crate) fn lm(command: LmCommand) -> Result<()> {
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
            let r = zero_to_r1::lm::run::sft_and_eval(
                &config,
                run.seed(),
                &dev,
                &mut Bars::new(true),
                Some(&out),
            )?;
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
            print_eval(&r.eval, config.clean_rate()?)?;
            say!("wrote the checkpoint and metrics to {}", out.display());
            Ok(())
        }
        LmCommand::Measure(args) => measure::measure(args),
        LmCommand::R1Zero(args) => r1_zero::r1_zero(args),
        LmCommand::MeasureZero(args) => measure::measure_zero(args),
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
            print_eval(&report, config.clean_rate()?)?;
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
                .map(|p| tok.encode(&t.pose(p)))
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

/// The config and model of a checkpoint folder (its own config.toml unless --config is given).
pub(crate) fn load(
    run: &LmRunArgs,
    ck: &Option<PathBuf>,
    dev: zero_to_r1::candle::Device,
) -> Result<(zero_to_r1::lm::config::LmConfig, zero_to_r1::lm::model::Gpt)> {
    use zero_to_r1::lm::config::LmConfig;
    let first = run.config()?;
    let dir = run.checkpoint(ck, &first.task.name);
    if !dir.join(zero_to_r1::lm::checkpoint::SHAPE).exists() {
        return Err(Error::invalid(
            format!("checkpoint {}", dir.display()),
            "there is no checkpoint here: `zero-to-r1 lm sft` writes one (by default to \
             runs/lm/TASK/sft), `lm r1-zero` writes them under its run folder (…/sft, \
             …/grpo/checkpoints/step-N); give one with --checkpoint DIR",
        ));
    }
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

pub(crate) fn print_eval(r: &zero_to_r1::lm::eval::EvalReport, clean: f64) -> Result<()> {
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
