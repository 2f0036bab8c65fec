//! `lm r1-zero`: R1-Zero on a laptop, a new run or a resumed one.

use super::*;
use crate::lm_args::LmRunArgs;
use zero_to_r1::lm::device;

// The flags of `lm r1-zero`.
#[derive(Args)]
pub(crate) struct R1ZeroArgs {
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
}

/// `lm r1-zero`: a new run into --out, or the run there resumed; then the held-out accuracy
/// before and after.
pub(crate) fn r1_zero(args: R1ZeroArgs) -> Result<()> {
    let R1ZeroArgs {
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
    } = args;
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
        let (s, _) = resume_r1_zero(&out, &dev, &mut Bars::new(true), steps)?;
        let k = zero_to_r1::lm::run::R1ZeroRun::load(&out)?.config.eval.k;
        (s, out, k)
    } else {
        // Without --config: the Zero route, or chapter 8's config for a model `lm sft` made.
        let default = match &sft {
            Some(_) => LmConfig::default(),
            None => LmConfig::zero_default(),
        };
        let mut config = run.config_or(default)?;
        if let Some(a) = &algo {
            config.grpo.set_algo(a.parse()?);
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
        let (s, _) = r1_zero(&config, run.seed(), &dev, &mut Bars::new(true), &out, start)?;
        (s, out, config.eval.k)
    };
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let sft_part = match &s.sft_from {
        Some(dir) => format!("SFT model from {}", dir.display()),
        None if s.pretrain_seconds > 0.0 && s.sft_steps == 0 => format!(
            "base model pretrained in {:.0} s, no fine-tuning (the Zero route)",
            s.pretrain_seconds
        ),
        None if s.pretrain_seconds > 0.0 => format!(
            "base model pretrained in {:.0} s, cold start {} steps in {:.0} s",
            s.pretrain_seconds, s.sft_steps, s.sft_seconds
        ),
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
