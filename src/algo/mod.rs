//! Training loops on the cat's house. Each one is the previous one plus one idea.

pub mod actor_critic;
pub mod grpo;
pub mod ppo;
pub mod reinforce;

use candle_nn::{AdamW, Optimizer, ParamsAdamW, SGD};
use gridworld::House;

use crate::error::{Error, Result};
use crate::policy::{candle_err, Mlp, Model, Tabular};

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

/// Which gradient method updates the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain gradient descent: θ ← θ − lr · ∇L. The step is proportional to the gradient
    /// estimate, noise and scale included.
    Sgd,
    /// Adam (without weight decay): each parameter's step is its gradient divided by a running
    /// estimate of the gradient's size, so steps are about `lr` whatever the reward scale.
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(Error::invalid(
                "optimizer",
                format!("{s:?}; choose sgd or adam"),
            )),
        }
    }
}

/// An optimizer over a model's parameters.
pub enum Opt {
    Sgd(SGD),
    Adam(AdamW),
}

impl Opt {
    /// A new optimizer of the given kind with learning rate `lr`.
    pub fn new(kind: OptimizerKind, model: &dyn Model, lr: f64) -> Result<Opt> {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Error::invalid(
                "learning rate",
                format!("{lr} must be a positive number"),
            ));
        }
        Ok(match kind {
            OptimizerKind::Sgd => Opt::Sgd(SGD::new(model.vars(), lr).map_err(candle_err)?),
            OptimizerKind::Adam => {
                let params = ParamsAdamW {
                    lr,
                    weight_decay: 0.0,
                    ..ParamsAdamW::default()
                };
                Opt::Adam(AdamW::new(model.vars(), params).map_err(candle_err)?)
            }
        })
    }

    /// Backpropagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &candle_core::Tensor) -> candle_core::Result<()> {
        match self {
            Opt::Sgd(o) => o.backward_step(loss),
            Opt::Adam(o) => o.backward_step(loss),
        }
    }

    // ANCHOR: clipped_step
    /// Backpropagates `loss`, rescales the gradient of `vars` so that its global norm is at
    /// most `max_norm` (if given), takes one step, and returns the norm before rescaling.
    pub fn clipped_step(
        &mut self,
        loss: &candle_core::Tensor,
        vars: &[candle_core::Var],
        max_norm: Option<f64>,
    ) -> candle_core::Result<f64> {
        let mut store = loss.backward()?;
        let mut grads: Vec<Option<candle_core::Tensor>> =
            vars.iter().map(|v| store.remove(v.as_tensor())).collect();
        let norm = clip_gradients(&mut grads, max_norm)?;
        for (v, g) in vars.iter().zip(grads) {
            if let Some(g) = g {
                store.insert(v.as_tensor(), g);
            }
        }
        match self {
            Opt::Sgd(o) => o.step(&store)?,
            Opt::Adam(o) => o.step(&store)?,
        }
        Ok(norm)
    }
    // ANCHOR_END: clipped_step
}

// ANCHOR: clip_gradients
/// Rescales `grads` (one per parameter; `None` where a parameter got no gradient) in place so
/// that their global L2 norm ‖g‖ = √(Σ g²) is at most `max_norm`, if given, and returns the
/// norm before rescaling. The direction is kept; only a too-long step is shortened.
pub fn clip_gradients(
    grads: &mut [Option<candle_core::Tensor>],
    max_norm: Option<f64>,
) -> candle_core::Result<f64> {
    let mut total = 0.0;
    for g in grads.iter().flatten() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    if let Some(max) = max_norm.filter(|&m| norm > m) {
        let scale = max / (norm + 1e-12);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}
// ANCHOR_END: clip_gradients
