//! The exact MDP of a house: transition probabilities and expected rewards as arrays, exact
//! policy evaluation, and value iteration. This is the ground truth every estimator in the
//! book is measured against.
//!
//! States are cell indices (row-major over the whole map). Walls are never entered and meat
//! cells are terminal; both are treated as absorbing with zero reward and value (and so are
//! bathtubs when `EnvConfig::bathtub_ends` is set).

use std::fmt;

use ndarray::{Array1, Array2, Array3, ArrayView2};

use crate::env::{move_from, Action, EnvConfig};
use crate::house::{Cell, House};

/// Why an exact computation could not be done.
#[derive(Clone, Debug, PartialEq)]
pub enum MdpError {
    /// `gamma` outside [0, 1].
    BadGamma(f64),
    /// The policy array has the wrong shape.
    PolicyShape {
        expected: (usize, usize),
        found: (usize, usize),
    },
    /// A row of the policy is not a probability distribution.
    PolicyRow {
        state: usize,
        row: usize,
        col: usize,
        sum: f64,
    },
    /// With γ = 1 some state never reaches the meat, so its value is unbounded.
    NeverTerminates,
    /// Value iteration did not settle within the allowed sweeps.
    NotConverged { sweeps: usize, change: f64 },
}

impl fmt::Display for MdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MdpError::BadGamma(g) => write!(f, "gamma = {g} must lie in [0, 1]"),
            MdpError::PolicyShape { expected, found } => write!(
                f,
                "the policy has shape {found:?}, expected {expected:?} (states × actions)"
            ),
            MdpError::PolicyRow {
                state,
                row,
                col,
                sum,
            } => write!(
                f,
                "the policy at state {state} (row {row}, column {col}) is not a distribution: \
                 probabilities must be ≥ 0 and sum to 1, they sum to {sum}"
            ),
            MdpError::NeverTerminates => write!(
                f,
                "with gamma = 1 this policy can wander forever without reaching the meat, so \
                 its value is not finite; use gamma < 1 or a finite horizon"
            ),
            MdpError::NotConverged { sweeps, change } => write!(
                f,
                "value iteration did not converge in {sweeps} sweeps (last change {change:e}); \
                 with gamma = 1 the optimal values may be unbounded"
            ),
        }
    }
}

impl std::error::Error for MdpError {}

/// The house as a Markov decision process.
#[derive(Clone, Debug)]
pub struct Mdp {
    rows: usize,
    cols: usize,
    /// For each (state, action), the successor states with their probabilities.
    successors: Vec<Vec<(usize, f64)>>,
    /// Expected reward r(s, a), shape (S, 4).
    rewards: Array2<f64>,
    /// Absorbing states: meat and walls.
    absorbing: Vec<bool>,
    /// The start distribution μ₀ (uniform over the `C` cells).
    start: Array1<f64>,
    max_steps: usize,
}

/// The optimal values and a greedy optimal policy.
#[derive(Clone, Debug)]
pub struct Solution {
    /// V*(s).
    pub values: Array1<f64>,
    /// Q*(s, a).
    pub q: Array2<f64>,
    /// A deterministic optimal policy (one-hot rows; ties go to the first best action).
    pub policy: Array2<f64>,
    /// Sweeps until the largest change fell below the tolerance.
    pub sweeps: usize,
}

impl Solution {
    /// The greedy action in each state.
    pub fn action(&self, state: usize) -> Action {
        let row = self.policy.row(state);
        let i = (0..4).find(|&a| row[a] > 0.5).unwrap_or(0);
        Action::from_index(i).unwrap_or(Action::Up)
    }
}

impl Mdp {
    // ANCHOR: mdp_new
    /// Builds P(s' | s, a) and r(s, a) by enumerating, for each cell and move, where
    /// the cat can end up: straight on with probability 1 − slip, each side with slip /
    /// 2.
    pub fn new(house: &House, config: &EnvConfig) -> Mdp {
        let n = house.rows() * house.cols();
        let mut successors = Vec::with_capacity(n * 4);
        let mut rewards = Array2::zeros((n, 4));
        let absorbing: Vec<bool> = house
            .cells()
            .iter()
            .map(|&c| {
                matches!(c, Cell::Wall | Cell::Meat) || (c == Cell::Bathtub && config.bathtub_ends)
            })
            .collect();
        for s in 0..n {
            for a in Action::ALL {
                let mut next: Vec<(usize, f64)> = Vec::new();
                if !absorbing[s] {
                    let [left, right] = a.sideways();
                    let outcomes = [
                        (a, 1.0 - config.slip),
                        (left, config.slip / 2.0),
                        (right, config.slip / 2.0),
                    ];
                    for (taken, p) in outcomes {
                        if p == 0.0 {
                            continue;
                        }
                        let to = move_from(house, s, taken);
                        rewards[[s, a.index()]] += p * config.rewards.for_cell(house.cells()[to]);
                        match next.iter_mut().find(|(t, _)| *t == to) {
                            Some((_, q)) => *q += p,
                            None => next.push((to, p)),
                        }
                    }
                }
                successors.push(next);
            }
        }
        let mut start = Array1::zeros(n);
        for &s in house.starts() {
            start[s] += 1.0 / house.starts().len() as f64;
        }
        Mdp {
            rows: house.rows(),
            cols: house.cols(),
            successors,
            rewards,
            absorbing,
            start,
            max_steps: config.max_steps,
        }
    }
    // ANCHOR_END: mdp_new

    /// Rows and columns of the house the states are laid out on.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of states (cells, walls included).
    pub fn n_states(&self) -> usize {
        self.absorbing.len()
    }

    /// The expected rewards r(s, a), shape (S, 4).
    pub fn rewards(&self) -> &Array2<f64> {
        &self.rewards
    }

    /// The start distribution μ₀.
    pub fn start(&self) -> &Array1<f64> {
        &self.start
    }

    /// The environment's step limit: the horizon of an episode.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }

    /// Whether a state is absorbing (meat or wall, or a bathtub when bathtubs end episodes).
    pub fn is_absorbing(&self, s: usize) -> bool {
        self.absorbing[s]
    }

    /// The successors of (s, a) with their probabilities.
    pub fn successors(&self, s: usize, a: Action) -> &[(usize, f64)] {
        &self.successors[s * 4 + a.index()]
    }

    /// The full transition tensor P[s, a, s'] (dense: S × 4 × S).
    pub fn transition_tensor(&self) -> Array3<f64> {
        let n = self.n_states();
        let mut p = Array3::zeros((n, 4, n));
        for s in 0..n {
            for a in Action::ALL {
                for &(t, q) in self.successors(s, a) {
                    p[[s, a.index(), t]] += q;
                }
            }
        }
        p
    }

    /// The uniformly random policy: the random cat.
    pub fn uniform_policy(&self) -> Array2<f64> {
        Array2::from_elem((self.n_states(), 4), 0.25)
    }

    fn check(&self, policy: &ArrayView2<f64>, gamma: f64) -> Result<(), MdpError> {
        if !(0.0..=1.0).contains(&gamma) {
            return Err(MdpError::BadGamma(gamma));
        }
        let expected = (self.n_states(), 4);
        if policy.dim() != expected {
            return Err(MdpError::PolicyShape {
                expected,
                found: policy.dim(),
            });
        }
        for (s, row) in policy.rows().into_iter().enumerate() {
            if self.absorbing[s] {
                continue;
            }
            let sum: f64 = row.sum();
            if row.iter().any(|&p| !p.is_finite() || p < 0.0) || (sum - 1.0).abs() > 1e-9 {
                return Err(MdpError::PolicyRow {
                    state: s,
                    row: s / self.cols,
                    col: s % self.cols,
                    sum,
                });
            }
        }
        Ok(())
    }

    /// One Bellman backup of a policy: (T^π V)(s) = Σ_a π(a|s) [r(s,a) + γ Σ_s' P(s'|s,a) V(s')].
    fn backup(&self, policy: &ArrayView2<f64>, gamma: f64, v: &Array1<f64>) -> Array1<f64> {
        Array1::from_shape_fn(self.n_states(), |s| {
            if self.absorbing[s] {
                return 0.0;
            }
            Action::ALL
                .iter()
                .map(|&a| policy[[s, a.index()]] * self.q_backup(s, a, gamma, v))
                .sum()
        })
    }

    /// r(s,a) + γ Σ_s' P(s'|s,a) V(s').
    fn q_backup(&self, s: usize, a: Action, gamma: f64, v: &Array1<f64>) -> f64 {
        let future: f64 = self.successors(s, a).iter().map(|&(t, p)| p * v[t]).sum();
        self.rewards[[s, a.index()]] + gamma * future
    }

    // ANCHOR: evaluate_finite
    /// Exact finite-horizon evaluation. Row k of the result is V_k^π: the expected
    /// discounted return with k steps left before the episode is cut off, so row 0 is
    /// all zeros and row `horizon` is what an episode of at most `horizon` steps earns
    /// from each start.
    pub fn evaluate_finite(
        &self,
        policy: ArrayView2<f64>,
        gamma: f64,
        horizon: usize,
    ) -> Result<Array2<f64>, MdpError> {
        self.check(&policy, gamma)?;
        let mut values = Array2::zeros((horizon + 1, self.n_states()));
        for k in 1..=horizon {
            let prev = values.row(k - 1).to_owned();
            values
                .row_mut(k)
                .assign(&self.backup(&policy, gamma, &prev));
        }
        Ok(values)
    }
    // ANCHOR_END: evaluate_finite

    /// J(π): the expected return of an episode of the environment (at most `max_steps`
    /// steps, started from μ₀), exactly.
    pub fn expected_return(&self, policy: ArrayView2<f64>, gamma: f64) -> Result<f64, MdpError> {
        let v = self.evaluate_finite(policy, gamma, self.max_steps)?;
        Ok(v.row(self.max_steps).dot(&self.start))
    }

    /// Exact infinite-horizon evaluation: solves (I − γ P^π) V = r^π by Gaussian elimination
    /// over the non-absorbing states.
    pub fn evaluate(&self, policy: ArrayView2<f64>, gamma: f64) -> Result<Array1<f64>, MdpError> {
        self.check(&policy, gamma)?;
        let live: Vec<usize> = (0..self.n_states())
            .filter(|&s| !self.absorbing[s])
            .collect();
        let mut slot = vec![usize::MAX; self.n_states()];
        for (i, &s) in live.iter().enumerate() {
            slot[s] = i;
        }
        let m = live.len();
        let mut a = Array2::<f64>::eye(m);
        let mut b = Array1::<f64>::zeros(m);
        for (i, &s) in live.iter().enumerate() {
            for act in Action::ALL {
                let p = policy[[s, act.index()]];
                b[i] += p * self.rewards[[s, act.index()]];
                for &(t, q) in self.successors(s, act) {
                    if slot[t] != usize::MAX {
                        a[[i, slot[t]]] -= gamma * p * q;
                    }
                }
            }
        }
        let x = solve(a, b).ok_or(MdpError::NeverTerminates)?;
        let mut v = Array1::zeros(self.n_states());
        for (i, &s) in live.iter().enumerate() {
            v[s] = x[i];
        }
        Ok(v)
    }

    // ANCHOR: value_iteration
    /// Value iteration: V ← max_a [r(s,a) + γ Σ P V] until the largest change is below
    /// `tol`.
    pub fn value_iteration(&self, gamma: f64, tol: f64) -> Result<Solution, MdpError> {
        if !(0.0..=1.0).contains(&gamma) {
            return Err(MdpError::BadGamma(gamma));
        }
        let n = self.n_states();
        let max_sweeps = 100_000;
        let mut v = Array1::<f64>::zeros(n);
        for sweep in 1..=max_sweeps {
            let q = self.q_table(gamma, &v);
            let new_v = Array1::from_shape_fn(n, |s| {
                if self.absorbing[s] {
                    0.0
                } else {
                    q.row(s).fold(f64::NEG_INFINITY, |m, &x| m.max(x))
                }
            });
            let change = (&new_v - &v).fold(0.0f64, |m, x| m.max(x.abs()));
            v = new_v;
            if change < tol {
                let q = self.q_table(gamma, &v);
                let policy = greedy(&q);
                return Ok(Solution {
                    values: v,
                    q,
                    policy,
                    sweeps: sweep,
                });
            }
            if sweep == max_sweeps {
                return Err(MdpError::NotConverged {
                    sweeps: sweep,
                    change,
                });
            }
        }
        unreachable!("the loop returns on its last sweep")
    }
    // ANCHOR_END: value_iteration

    /// Q(s, a) = r(s,a) + γ Σ_s' P(s'|s,a) V(s') for every state and action.
    pub fn q_table(&self, gamma: f64, v: &Array1<f64>) -> Array2<f64> {
        Array2::from_shape_fn((self.n_states(), 4), |(s, a)| {
            if self.absorbing[s] {
                0.0
            } else {
                self.q_backup(s, Action::ALL[a], gamma, v)
            }
        })
    }
}

/// One-hot rows on the first action within 1e-9 of each row's maximum.
fn greedy(q: &Array2<f64>) -> Array2<f64> {
    let mut pi = Array2::zeros(q.dim());
    for (s, row) in q.rows().into_iter().enumerate() {
        let best = row.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let a = row.iter().position(|&x| x >= best - 1e-9).unwrap_or(0);
        pi[[s, a]] = 1.0;
    }
    pi
}

/// Solves A x = b by Gaussian elimination with partial pivoting; `None` if A is singular.
fn solve(mut a: Array2<f64>, mut b: Array1<f64>) -> Option<Array1<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[[i, col]].abs().total_cmp(&a[[j, col]].abs()))?;
        if a[[pivot, col]].abs() < 1e-12 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap([pivot, k], [col, k]);
            }
            b.swap(pivot, col);
        }
        for i in col + 1..n {
            let f = a[[i, col]] / a[[col, col]];
            if f != 0.0 {
                for k in col..n {
                    a[[i, k]] -= f * a[[col, k]];
                }
                b[i] -= f * b[col];
            }
        }
    }
    let mut x = Array1::zeros(n);
    for i in (0..n).rev() {
        let tail: f64 = (i + 1..n).map(|k| a[[i, k]] * x[k]).sum();
        x[i] = (b[i] - tail) / a[[i, i]];
    }
    Some(x)
}
