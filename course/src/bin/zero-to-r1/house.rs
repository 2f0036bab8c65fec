//! The house commands: `house show` and `house solve`.

use super::*;

#[derive(Subcommand)]
pub(crate) enum HouseCommand {
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
pub(crate) struct HouseArgs {
    /// A map file ('.' floor, '#' wall, 'B' broom, 'T' bathtub, 'M' meat, 'C' start).
    /// Without it, the built-in house of the book.
    #[arg(long, value_name = "FILE")]
    pub(crate) map: Option<PathBuf>,
    /// Probability that a move goes sideways instead.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) slip: f64,
    /// A cost subtracted on every step.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) step_cost: f64,
    /// A bathtub ends the episode (a failure that ends early, like a wrong answer).
    #[arg(long)]
    pub(crate) bathtub_ends: bool,
}

impl HouseArgs {
    pub(crate) fn env(&self, max_steps: usize) -> Result<Env> {
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

pub(crate) fn show(args: &HouseArgs, max_steps: usize, svg: Option<&PathBuf>) -> Result<()> {
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

pub(crate) fn solve(args: &HouseArgs, gamma: f64, svg: Option<&PathBuf>) -> Result<()> {
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
