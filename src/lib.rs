//! # zero_to_r1
//!
//! Reinforcement learning for language models, from a cat looking for meat in a gridworld
//! house to an R1-Zero-style GRPO run on a transformer. One data path serves both:
//!
//! ```text
//! env / task ──► rollout ──► reward ──► advantage ──► objective ──► optimizer step
//! ```
//!
//! The crate re-exports the versions of its dependencies it was built with, so notebooks and
//! users get exactly one `candle`, `ndarray` and `rand`.
//!
//! This crate is the library alone. The experiments, figures, tour, notebooks, handouts and
//! the command line that present it are the `course` crate (`course/`), which depends on
//! this one; long runs report to a [`progress::Progress`] their caller passes in.

pub mod advantage;
pub mod algo;
pub mod error;
pub mod exact;
pub mod io;
pub mod lm;
pub mod objective;
pub mod optim;
pub mod policy;
pub mod progress;
pub mod rollout;
pub mod update;
pub mod validate;

pub use candle_core as candle;
pub use candle_nn;
pub use error::{Error, Result};
pub use gridworld;
pub use gridworld::ndarray;
pub use gridworld::rand;

/// Everything a notebook cell usually needs, in one `use`.
pub mod prelude {
    pub use crate::advantage::discounted_return;
    pub use crate::error::{Error, Result};
    pub use crate::exact::success_probability;
    pub use crate::rollout::{derive_seed, monte_carlo, sample_episode, Episode, MonteCarlo};
    pub use gridworld::ndarray::{Array1, Array2};
    pub use gridworld::{Action, Cell, Env, EnvConfig, House, Mdp, Rewards};
}
