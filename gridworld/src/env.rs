//! The cat's dynamics: actions, rewards, slipping, the step limit, `terminated` vs `truncated`.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::house::{Cell, House};

/// The four moves of the cat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Up = 0,
    Down = 1,
    Left = 2,
    Right = 3,
}

impl Action {
    /// All actions, in index order.
    pub const ALL: [Action; 4] = [Action::Up, Action::Down, Action::Left, Action::Right];

    /// The action's index, 0..4 (the column of a tabular policy).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The action with this index, if it is one.
    pub fn from_index(i: usize) -> Option<Action> {
        Action::ALL.get(i).copied()
    }

    /// An arrow for drawing a policy.
    pub fn arrow(self) -> char {
        match self {
            Action::Up => '↑',
            Action::Down => '↓',
            Action::Left => '←',
            Action::Right => '→',
        }
    }

    /// The two moves at right angles to this one: where a slipping cat ends up going.
    pub fn sideways(self) -> [Action; 2] {
        match self {
            Action::Up | Action::Down => [Action::Left, Action::Right],
            Action::Left | Action::Right => [Action::Up, Action::Down],
        }
    }

    /// (row, column) change of the move.
    pub fn delta(self) -> (isize, isize) {
        match self {
            Action::Up => (-1, 0),
            Action::Down => (1, 0),
            Action::Left => (0, -1),
            Action::Right => (0, 1),
        }
    }
}

// ANCHOR: rewards
/// The reward for each kind of cell the cat is in after a move, and a cost per step.
/// Defaults are the seeds' table: floor 0, broom −1, bathtub −10, meat +100.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rewards {
    pub floor: f64,
    pub broom: f64,
    pub bathtub: f64,
    pub meat: f64,
    /// Subtracted on every step (0 by default). A positive cost makes the cat hurry.
    pub step_cost: f64,
}

impl Default for Rewards {
    fn default() -> Self {
        Rewards {
            floor: 0.0,
            broom: -1.0,
            bathtub: -10.0,
            meat: 100.0,
            step_cost: 0.0,
        }
    }
}

impl Rewards {
    /// The reward for a step that leaves the cat on a cell of kind `cell`.
    pub fn for_cell(&self, cell: Cell) -> f64 {
        let r = match cell {
            Cell::Floor | Cell::Wall => self.floor,
            Cell::Broom => self.broom,
            Cell::Bathtub => self.bathtub,
            Cell::Meat => self.meat,
        };
        r - self.step_cost
    }
}
// ANCHOR_END: rewards

/// How the house behaves: rewards, slipping and the step limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnvConfig {
    pub rewards: Rewards,
    /// Probability that a move goes sideways instead (half to each side). 0 = no slipping.
    pub slip: f64,
    /// Episodes are cut off (`truncated`) after this many steps.
    pub max_steps: usize,
    /// Stepping into a bathtub ends the episode (off by default): the soaked cat gives up.
    /// Such an episode is `terminated` (nothing comes after it) but is not a success; only
    /// the meat is. Chapter 7 uses it to give failures different lengths.
    pub bathtub_ends: bool,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            rewards: Rewards::default(),
            slip: 0.0,
            max_steps: 100,
            bathtub_ends: false,
        }
    }
}

/// A configuration value that makes no sense, named by its field.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl EnvConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError { field, message });
        if !(0.0..=1.0).contains(&self.slip) {
            return bad(
                "slip",
                format!("{} is not a probability in [0, 1]", self.slip),
            );
        }
        if self.max_steps == 0 {
            return bad("max_steps", "must be at least 1".into());
        }
        let r = &self.rewards;
        for (field, v) in [
            ("rewards.floor", r.floor),
            ("rewards.broom", r.broom),
            ("rewards.bathtub", r.bathtub),
            ("rewards.meat", r.meat),
            ("rewards.step_cost", r.step_cost),
        ] {
            if !v.is_finite() {
                return bad(field, format!("{v} is not a finite number"));
            }
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The cell the cat is in now.
    pub state: usize,
    pub reward: f64,
    /// The episode is over and nothing comes after: the cat reached the meat (or, with
    /// [`EnvConfig::bathtub_ends`], fell into a bathtub).
    pub terminated: bool,
    /// The step limit cut the episode off: the future was not zero, we just stopped looking.
    pub truncated: bool,
}

/// The cat's house as an environment: one episode at a time.
#[derive(Debug)]
pub struct Env {
    house: House,
    config: EnvConfig,
    state: usize,
    t: usize,
    done: bool,
    rng: StdRng,
}

impl Env {
    /// An environment on `house`; fails if the configuration is invalid.
    pub fn new(house: House, config: EnvConfig) -> Result<Env, ConfigError> {
        config.validate()?;
        let state = house.starts()[0];
        Ok(Env {
            house,
            config,
            state,
            t: 0,
            done: false,
            rng: StdRng::seed_from_u64(0),
        })
    }

    /// The seeds' house with default settings.
    pub fn seed() -> Env {
        Env::new(House::seed(), EnvConfig::default()).expect("the default config is valid")
    }

    pub fn house(&self) -> &House {
        &self.house
    }

    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// The cell the cat is in.
    pub fn state(&self) -> usize {
        self.state
    }

    /// Steps taken in this episode.
    pub fn t(&self) -> usize {
        self.t
    }

    /// The environment's own random generator (seeded by [`Env::reset`]); a policy may draw
    /// its actions from it so that one seed fixes the whole episode.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Starts an episode from a start cell drawn uniformly, reseeding the environment's
    /// generator with `seed`. Same seed, same episode.
    pub fn reset(&mut self, seed: u64) -> usize {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = self.reset_with(&mut rng);
        self.rng = rng;
        s
    }

    /// Starts an episode, drawing the start cell from `rng`.
    pub fn reset_with<R: Rng + ?Sized>(&mut self, rng: &mut R) -> usize {
        let starts = self.house.starts();
        self.begin(starts[rng.random_range(0..starts.len())])
    }

    /// Starts an episode from the given start cell (one of [`House::starts`]), reseeding the
    /// environment's generator with `seed`. Episodes that must share a start (GRPO's group
    /// of answers to one question) begin here.
    pub fn reset_from(&mut self, start: usize, seed: u64) -> Result<usize, ConfigError> {
        if !self.house.starts().contains(&start) {
            return Err(ConfigError {
                field: "start",
                message: format!(
                    "cell {start} is not a start cell of this house (its start cells are {:?})",
                    self.house.starts()
                ),
            });
        }
        self.rng = StdRng::seed_from_u64(seed);
        Ok(self.begin(start))
    }

    fn begin(&mut self, start: usize) -> usize {
        self.state = start;
        self.t = 0;
        self.done = false;
        self.state
    }

    /// One move, with slipping drawn from the environment's own generator.
    pub fn step(&mut self, action: Action) -> Step {
        let taken = slip(self.done, self.config.slip, action, &mut self.rng);
        self.advance(taken)
    }

    /// One move, with slipping drawn from `rng`.
    ///
    /// # Panics
    /// If the episode is already over: call [`Env::reset`] first.
    pub fn step_with<R: Rng + ?Sized>(&mut self, action: Action, rng: &mut R) -> Step {
        let taken = slip(self.done, self.config.slip, action, rng);
        self.advance(taken)
    }

    // ANCHOR: step
    /// Makes the move `taken`: the cat lands, collects the reward of the cell it is in,
    /// and the episode ends at the meat (terminated) or at the step limit (truncated);
    /// with `bathtub_ends`, a bathtub ends it too (terminated).
    fn advance(&mut self, taken: Action) -> Step {
        self.state = move_from(&self.house, self.state, taken);
        self.t += 1;
        let cell = self.house.cells()[self.state];
        let terminated = cell == Cell::Meat || (cell == Cell::Bathtub && self.config.bathtub_ends);
        let truncated = !terminated && self.t >= self.config.max_steps;
        self.done = terminated || truncated;
        Step {
            state: self.state,
            reward: self.config.rewards.for_cell(cell),
            terminated,
            truncated,
        }
    }
    // ANCHOR_END: step
}

// ANCHOR: slip
/// The move actually made: the intended one, or with probability `slip` one of the two
/// sideways moves, each equally likely.
///
/// # Panics
/// If the episode is already over (`done`): call [`Env::reset`] first.
fn slip<R: Rng + ?Sized>(done: bool, slip: f64, action: Action, rng: &mut R) -> Action {
    assert!(!done, "the episode is over; call reset() first");
    if slip > 0.0 && rng.random::<f64>() < slip {
        action.sideways()[rng.random_range(0..2)]
    } else {
        action
    }
}
// ANCHOR_END: slip

/// Where a move from cell `from` leads: the neighbouring cell, or `from` itself if the move
/// would hit a wall or leave the house.
pub fn move_from(house: &House, from: usize, action: Action) -> usize {
    let (r, c) = house.pos(from);
    let (dr, dc) = action.delta();
    let (nr, nc) = (r as isize + dr, c as isize + dc);
    if nr < 0 || nc < 0 || nr >= house.rows() as isize || nc >= house.cols() as isize {
        return from;
    }
    let to = nr as usize * house.cols() + nc as usize;
    if house.cells()[to] == Cell::Wall {
        from
    } else {
        to
    }
}
