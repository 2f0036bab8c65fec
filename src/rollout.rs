//! Sampling episodes from a policy. (Chapter 1: one episode at a time from a table of action
//! probabilities; later chapters batch them.)

use gridworld::ndarray::{Array2, ArrayView2};
use gridworld::rand::{Rng, RngExt};
use gridworld::{Action, Cell, Env};

use crate::advantage::discounted_return;
use crate::error::Result;

/// One episode: what the cat saw, did and got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Episode {
    /// s_0 … s_{T−1}: the cell before each action.
    pub states: Vec<usize>,
    /// a_0 … a_{T−1}.
    pub actions: Vec<Action>,
    /// r_1 … r_T: the reward after each action.
    pub rewards: Vec<f64>,
    /// The cell after the last action.
    pub last_state: usize,
    /// The episode ended for good: at the meat, or in a bathtub when bathtubs end episodes.
    pub terminated: bool,
    /// The episode ended at the meat.
    pub success: bool,
    /// The step limit cut the episode off.
    pub truncated: bool,
}

impl Episode {
    /// Number of steps T.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True for an episode with no steps.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

// ANCHOR: sample_action
/// Draws an action from one row of a tabular policy, π(·|s), by inverting the
/// cumulative distribution with one uniform number.
pub fn sample_action<R: Rng + ?Sized>(probs: &[f64], rng: &mut R) -> Action {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, &p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return Action::ALL[i];
        }
    }
    // Rounding can leave the total a hair under 1: take the last action with mass.
    let last = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
    Action::ALL[last]
}
// ANCHOR_END: sample_action

// ANCHOR: sample_episode
/// Runs one episode of `env` under the tabular policy `policy` (rows π(·|s), shape S ×
/// 4), drawing the start, the actions and any slips from the environment's generator
/// seeded with `seed`. Same seed, same episode.
pub fn sample_episode(env: &mut Env, policy: ArrayView2<f64>, seed: u64) -> Episode {
    let s = env.reset(seed);
    walk(env, policy, s)
}

/// Walks the episode that has just been reset to cell `s`: observe the state, draw an
/// action, step, until the episode ends.
fn walk(env: &mut Env, policy: ArrayView2<f64>, mut s: usize) -> Episode {
    let mut ep = Episode::default();
    loop {
        let row = policy.row(s);
        let a = match row.as_slice() {
            Some(probs) => sample_action(probs, env.rng()),
            None => sample_action(&row.to_vec(), env.rng()),
        };
        let step = env.step(a);
        ep.states.push(s);
        ep.actions.push(a);
        ep.rewards.push(step.reward);
        s = step.state;
        if step.terminated || step.truncated {
            ep.last_state = s;
            ep.terminated = step.terminated;
            ep.success = env.house().cells()[s] == Cell::Meat;
            ep.truncated = step.truncated;
            return ep;
        }
    }
}
// ANCHOR_END: sample_episode

/// Like [`sample_episode`], but from the given start cell (an error if it is not one of the
/// house's start cells).
pub fn sample_episode_from(
    env: &mut Env,
    policy: ArrayView2<f64>,
    start: usize,
    seed: u64,
) -> Result<Episode> {
    let s = env.reset_from(start, seed)?;
    Ok(walk(env, policy, s))
}

/// The mean of the values, or `None` if there are none (e.g. the mean length of the failed
/// episodes of a batch in which nothing failed).
pub fn mean_or_none(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Streams of [`derive_seed`] that a trainer draws from besides its per-iteration rollouts
/// (streams 0, 1, 2, … are the iterations), so that no two uses of a run's seed collide.
pub mod stream {
    /// The initial weights of the policy.
    pub const POLICY: u64 = u64::MAX;
    /// The initial weights of the value function.
    pub const VALUE: u64 = u64::MAX - 1;
    /// The trainer's own choices: the questions of GRPO, the minibatch order of PPO.
    pub const CHOICES: u64 = u64::MAX - 2;
}

/// A seed for the `i`-th of many runs derived from one base seed (SplitMix64), so that runs
/// are independent of each other yet all fixed by the base seed.
pub fn derive_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Many independent episodes of one policy, summarised.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MonteCarlo {
    /// The (discounted) return of each episode.
    pub returns: Vec<f64>,
    /// The length of each episode.
    pub lengths: Vec<usize>,
    /// How many episodes reached the meat.
    pub successes: usize,
}

impl MonteCarlo {
    /// The sample mean of the returns: the Monte Carlo estimate of J(π).
    pub fn mean(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len() as f64
    }

    /// The sample standard deviation of the returns (n − 1 in the denominator).
    pub fn std(&self) -> f64 {
        let n = self.returns.len() as f64;
        let m = self.mean();
        (self.returns.iter().map(|g| (g - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    /// The standard error of the mean, std / √n: how far the estimate typically is from J.
    pub fn std_err(&self) -> f64 {
        self.std() / (self.returns.len() as f64).sqrt()
    }

    /// Fraction of episodes that reached the meat.
    pub fn success_rate(&self) -> f64 {
        self.successes as f64 / self.returns.len() as f64
    }

    /// Mean episode length.
    pub fn mean_length(&self) -> f64 {
        self.lengths.iter().sum::<usize>() as f64 / self.lengths.len() as f64
    }
}

// ANCHOR: monte_carlo
/// Estimates J(π) by running `episodes` independent episodes and recording their
/// returns. `on_episode` is called after each one (for a progress bar); pass `|_| {}`
/// otherwise.
pub fn monte_carlo(
    env: &mut Env,
    policy: ArrayView2<f64>,
    gamma: f64,
    episodes: usize,
    seed: u64,
    mut on_episode: impl FnMut(usize),
) -> MonteCarlo {
    let mut mc = MonteCarlo::default();
    for i in 0..episodes {
        let ep = sample_episode(env, policy, derive_seed(seed, i as u64));
        mc.returns.push(discounted_return(&ep.rewards, gamma));
        mc.lengths.push(ep.len());
        mc.successes += usize::from(ep.success);
        on_episode(i + 1);
    }
    mc
}
// ANCHOR_END: monte_carlo

/// A batch of episodes padded to a common length T: row i is episode i, column t its step t.
/// Entries past an episode's end are padding, marked 0 in `mask`. A batch of language-model
/// responses has exactly this shape (tokens instead of moves).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// s_t: the cell before each action (0 in padding).
    pub states: Array2<u32>,
    /// a_t: the action index (0 in padding).
    pub actions: Array2<u32>,
    /// log π(a_t|s_t) under the policy that sampled the batch (π_old later on).
    pub logp: Array2<f64>,
    /// r_{t+1}: the reward after each action (0 in padding).
    pub rewards: Array2<f64>,
    /// 1 for real steps, 0 for padding.
    pub mask: Array2<f64>,
    /// s_T: the cell after each episode's last action (for bootstrapping).
    pub last_states: Vec<u32>,
    /// Which episodes ended for good (meat, or a bathtub when bathtubs end episodes).
    pub terminated: Vec<bool>,
    /// Which episodes reached the meat.
    pub success: Vec<bool>,
    /// Which episodes were cut off by the step limit.
    pub truncated: Vec<bool>,
    /// Each episode's number of steps.
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Pads `episodes` into one batch; `policy` (S × 4) supplies the log-probabilities.
    pub fn from_episodes(episodes: &[Episode], policy: ArrayView2<f64>) -> Batch {
        let b = episodes.len();
        let t = episodes.iter().map(Episode::len).max().unwrap_or(0);
        let mut batch = Batch {
            states: Array2::zeros((b, t)),
            actions: Array2::zeros((b, t)),
            logp: Array2::zeros((b, t)),
            rewards: Array2::zeros((b, t)),
            mask: Array2::zeros((b, t)),
            last_states: Vec::with_capacity(b),
            terminated: Vec::with_capacity(b),
            success: Vec::with_capacity(b),
            truncated: Vec::with_capacity(b),
            lengths: Vec::with_capacity(b),
        };
        for (i, ep) in episodes.iter().enumerate() {
            for (k, ((&s, &a), &r)) in ep
                .states
                .iter()
                .zip(&ep.actions)
                .zip(&ep.rewards)
                .enumerate()
            {
                batch.states[[i, k]] = s as u32;
                batch.actions[[i, k]] = a.index() as u32;
                batch.logp[[i, k]] = policy[[s, a.index()]].ln();
                batch.rewards[[i, k]] = r;
                batch.mask[[i, k]] = 1.0;
            }
            batch.last_states.push(ep.last_state as u32);
            batch.terminated.push(ep.terminated);
            batch.success.push(ep.success);
            batch.truncated.push(ep.truncated);
            batch.lengths.push(ep.len());
        }
        batch
    }

    /// Number of episodes B.
    pub fn episodes(&self) -> usize {
        self.mask.nrows()
    }

    /// Total number of real steps.
    pub fn steps(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// Each episode's undiscounted return.
    pub fn returns(&self) -> Vec<f64> {
        self.rewards.rows().into_iter().map(|r| r.sum()).collect()
    }

    /// Fraction of episodes that reached the meat.
    pub fn success_rate(&self) -> f64 {
        self.success.iter().filter(|&&t| t).count() as f64 / self.episodes().max(1) as f64
    }
}

// ANCHOR: sample_batch
/// Samples `episodes` independent episodes of `policy` into one padded batch; episode i
/// uses the seed `derive_seed(seed, i)`.
pub fn sample_batch(env: &mut Env, policy: ArrayView2<f64>, episodes: usize, seed: u64) -> Batch {
    let eps: Vec<Episode> = (0..episodes)
        .map(|i| sample_episode(env, policy, derive_seed(seed, i as u64)))
        .collect();
    Batch::from_episodes(&eps, policy)
}
// ANCHOR_END: sample_batch

// ANCHOR: sample_groups
/// GRPO's rollout: for each question (a start cell) in `questions`, a group of
/// `group_size` episodes from that start, laid out as consecutive rows of one padded
/// batch: rows `q·G … q·G + G − 1` answer question `q`. Episode k uses the seed
/// `derive_seed(seed, k)`.
pub fn sample_groups(
    env: &mut Env,
    policy: ArrayView2<f64>,
    questions: &[usize],
    group_size: usize,
    seed: u64,
) -> Result<Batch> {
    let mut eps = Vec::with_capacity(questions.len() * group_size);
    for &start in questions {
        for _ in 0..group_size {
            let k = eps.len() as u64;
            eps.push(sample_episode_from(
                env,
                policy,
                start,
                derive_seed(seed, k),
            )?);
        }
    }
    Ok(Batch::from_episodes(&eps, policy))
}
// ANCHOR_END: sample_groups
