//! The cat's training command, `train`.

use super::*;
use crate::house::HouseArgs;

/// The learning algorithms of chapters 2–7.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Algo {
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
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct TrainArgs {
    #[arg(long, value_enum, default_value = "ppo")]
    pub(crate) algo: Algo,
    #[command(flatten)]
    pub(crate) house: HouseArgs,
    /// Episodes are cut off after this many steps.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_steps: usize,
    /// Gradient updates (REINFORCE) or rollout–optimise iterations (the others).
    #[arg(long, default_value_t = 100)]
    pub(crate) iterations: usize,
    /// Episodes sampled per update or iteration. For GRPO this is questions × group size,
    /// and must be a multiple of --group-size.
    #[arg(long, default_value_t = 16)]
    pub(crate) episodes: usize,
    /// Learning rate of the policy (default: 0.1 for REINFORCE, 0.03 for actor-critic,
    /// 0.01 for PPO, 0.03 for GRPO and Dr. GRPO, all with Adam).
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Policy and value model: tabular or mlp.
    #[arg(long, default_value = "tabular")]
    pub(crate) model: String,
    /// Seed of the initial weights and of every sample.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Write one JSON line of metrics per iteration to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) reuse: ReuseArgs,
    #[command(flatten)]
    pub(crate) critic: CriticArgs,
    #[command(flatten)]
    pub(crate) grpo: GrpoArgs,
}

/// How a batch is reused (PPO, GRPO and Dr. GRPO; refused by the algorithms that take one
/// plain gradient step per batch). Unset ones take the algorithm's preset.
#[derive(Args)]
#[command(next_help_heading = "Reusing a batch (PPO, GRPO, Dr. GRPO)")]
pub(crate) struct ReuseArgs {
    /// ε of the ratio clip, or `none` for the unclipped ratio ρ·Â (PPO only)
    /// [default: 0.2].
    #[arg(long, value_name = "EPS|none")]
    pub(crate) clip: Option<String>,
    /// μ, gradient passes over each batch [default: 4].
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
}

impl ReuseArgs {
    /// The clip: `Some(ε)`, or `None` for `none`; `default` when not given.
    pub(crate) fn clip(&self, default: Option<f64>) -> Result<Option<f64>> {
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
pub(crate) struct CriticArgs {
    /// REINFORCE's weighting: total, rtg, mean or learned [default: learned].
    #[arg(long)]
    pub(crate) baseline: Option<String>,
    /// GAE's λ for actor-critic and PPO (default 0 for actor-critic, 0.95 for PPO).
    #[arg(long)]
    pub(crate) lambda: Option<f64>,
}

/// Settings of GRPO and Dr. GRPO (refused by the other algorithms). Unset ones take the
/// algorithm's preset.
#[derive(Args)]
#[command(next_help_heading = "GRPO and Dr. GRPO")]
pub(crate) struct GrpoArgs {
    /// G, the episodes walked from each start cell (the answers to one question); at least 2
    /// [default: 8].
    #[arg(long)]
    pub(crate) group_size: Option<usize>,
    /// β, the weight of the k3 KL penalty to the reference policy (the cat as it started)
    /// [default: 0].
    #[arg(long)]
    pub(crate) beta: Option<f64>,
    /// How per-step losses are combined: response-mean (GRPO), constant (Dr. GRPO: divide by
    /// episodes × the step limit), token-mean or episode-sum. Default: the algorithm's.
    #[arg(long)]
    pub(crate) aggregation: Option<String>,
    /// Divide each group's centred rewards by its standard deviation: true for GRPO, false
    /// for Dr. GRPO by default.
    #[arg(long)]
    pub(crate) std_scaling: Option<bool>,
    /// The one number an episode is scored with: its return, or success (1 at the meat,
    /// else 0) [default: return].
    #[arg(long)]
    pub(crate) reward: Option<String>,
}

impl GrpoArgs {
    /// The flags that were given, by name.
    pub(crate) fn given(&self) -> Vec<&'static str> {
        given(&[
            ("--group-size", self.group_size.is_some()),
            ("--beta", self.beta.is_some()),
            ("--aggregation", self.aggregation.is_some()),
            ("--std-scaling", self.std_scaling.is_some()),
            ("--reward", self.reward.is_some()),
        ])
    }

    pub(crate) fn config(
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

/// The names of the flags that were given, from (name, given) pairs.
fn given(pairs: &[(&'static str, bool)]) -> Vec<&'static str> {
    pairs.iter().filter(|p| p.1).map(|p| p.0).collect()
}

/// An error for flags that the chosen algorithm does not use, so that none is ignored.
pub(crate) fn refuse(algo: &str, flags: &[&str]) -> Result<()> {
    match flags.first() {
        None => Ok(()),
        Some(flag) => Err(Error::invalid(
            flag.to_string(),
            format!("--algo {algo} does not use it (see `zero-to-r1 train --help`)"),
        )),
    }
}

/// Shows each iteration on the progress bar and keeps its metrics as a JSON line.
pub(crate) struct Recorder {
    pub(crate) bar: indicatif::ProgressBar,
    pub(crate) lines: Vec<String>,
    /// The first line that could not be written, reported after training.
    pub(crate) failed: Option<String>,
}

impl Recorder {
    pub(crate) fn log(&mut self, j: f64, success: f64, entry: &impl serde::Serialize) {
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

pub(crate) fn train(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.metrics {
        zero_to_r1::io::check_writable(path)?;
    }
    use zero_to_r1::algo::{actor_critic, grpo, ppo, reinforce, ModelKind};
    let mut env = args.house.env(args.max_steps)?;
    let model: ModelKind = args.model.parse()?;
    let (reuse, critic, grpo_args) = (&args.reuse, &args.critic, &args.grpo);
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
