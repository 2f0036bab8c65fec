//! # gridworld — the cat's house
//!
//! A cat walks a house drawn as a text map, looking for meat. This crate parses maps
//! ([`House`]), runs episodes ([`Env`]) with rewards, slipping and a step limit, and builds the
//! exact Markov decision process ([`Mdp`]) for exact policy evaluation and value iteration.
//!
//! ```
//! use gridworld::{Action, Env};
//! let mut env = Env::seed();
//! let start = env.reset(7);
//! let step = env.step(Action::Right);
//! assert!(step.state == start + 1 || step.state == start);
//! ```

pub mod env;
pub mod house;
pub mod mdp;

pub use env::{move_from, Action, ConfigError, Env, EnvConfig, Rewards, Step};
pub use house::{Cell, House, MapError, MapErrorKind, MAX_SIDE, SEED_MAP};
pub use mdp::{Mdp, MdpError, Solution};
pub use ndarray;
pub use rand;

impl Env {
    /// The exact MDP of this environment.
    pub fn mdp(&self) -> Mdp {
        Mdp::new(self.house(), self.config())
    }
}
