//! Training loops on the cat's house. Each one is the previous one plus one idea.

pub mod actor_critic;
pub mod grpo;
pub mod ppo;
pub mod reinforce;

use gridworld::House;

use crate::error::{Error, Result};
pub use crate::optim::{Opt, OptimizerKind};
use crate::policy::{Mlp, Model, Tabular};

/// Which function approximator a policy or value function uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// One learnable row per cell.
    Tabular,
    /// A two-layer perceptron with this many hidden units on an encoding of the cell.
    Mlp { hidden: usize },
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tabular" => Ok(ModelKind::Tabular),
            "mlp" => Ok(ModelKind::Mlp { hidden: 64 }),
            _ => Err(Error::invalid(
                "model",
                format!("{s:?}; choose tabular or mlp"),
            )),
        }
    }
}

/// A fresh model of the given kind on `house` with `outputs` outputs (4 for a policy, 1 for
/// a value function); an MLP's weights are drawn from `seed`.
pub fn new_model(
    kind: ModelKind,
    house: &House,
    outputs: usize,
    seed: u64,
) -> Result<Box<dyn Model>> {
    let device = candle_core::Device::Cpu;
    Ok(match kind {
        ModelKind::Tabular => Box::new(Tabular::zeros(
            house.rows() * house.cols(),
            outputs,
            &device,
        )?),
        ModelKind::Mlp { hidden } => Box::new(Mlp::new(house, hidden, outputs, seed, &device)?),
    })
}
