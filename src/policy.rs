//! Policies and value functions for the cat, in candle: a table (one row of numbers per
//! cell) or a small MLP on an encoding of the cell. A policy is a model with 4 outputs (one
//! logit per action); a value function is a model with 1 output.

use candle_core::{DType, Device, Tensor, Var, D};
use gridworld::ndarray::Array2;
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};
use gridworld::{Cell, House};

use crate::error::{Doing, Error, Result};
use crate::update::{Inputs, Policy};

/// The dtype of the cat's models: f64, so that sampled gradients can be compared with exact
/// ones without float noise. (The language model uses f32/bf16.)
pub const CAT_DTYPE: DType = DType::F64;

/// A trainable function of the cell the cat is in.
pub trait Model {
    /// Outputs for a batch of cells (a u32 tensor of shape (B,)): shape (B, outputs).
    fn forward(&self, cells: &Tensor) -> candle_core::Result<Tensor>;
    /// The trainable parameters.
    fn vars(&self) -> Vec<Var>;
    /// The number of cells it is defined on.
    fn n_cells(&self) -> usize;
    /// The number of outputs per cell.
    fn outputs(&self) -> usize;
}

/// One learnable row of `outputs` numbers per cell: the tabular policy (with 4 outputs) or
/// the tabular value function (with 1).
pub struct Tabular {
    table: Var,
}

impl Tabular {
    /// A table of zeros: for a policy, the uniformly random cat.
    pub fn zeros(n_cells: usize, outputs: usize, device: &Device) -> Result<Tabular> {
        let table = Var::zeros((n_cells, outputs), CAT_DTYPE, device).doing("zeros in policy")?;
        Ok(Tabular { table })
    }

    /// A table with the given values (shape n_cells × outputs).
    pub fn from_array(values: &Array2<f64>, device: &Device) -> Result<Tabular> {
        let t = Tensor::from_iter(values.iter().copied(), device)
            .and_then(|t| t.reshape(values.dim()))
            .doing("from_array in policy")?;
        Ok(Tabular {
            table: Var::from_tensor(&t).doing("from_array in policy")?,
        })
    }
}

impl Model for Tabular {
    fn forward(&self, cells: &Tensor) -> candle_core::Result<Tensor> {
        self.table.as_tensor().index_select(cells, 0)
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.table.clone()]
    }

    fn n_cells(&self) -> usize {
        self.table.dims()[0]
    }

    fn outputs(&self) -> usize {
        self.table.dims()[1]
    }
}

/// The features the MLP sees for each cell: one-hot row, one-hot column, and for each of
/// the four neighbours whether it is a wall, broom, bathtub or meat.
pub fn cell_features(house: &House) -> Array2<f64> {
    let (rows, cols) = (house.rows(), house.cols());
    let width = rows + cols + 16;
    let mut f = Array2::zeros((rows * cols, width));
    for i in 0..rows * cols {
        let (r, c) = house.pos(i);
        f[[i, r]] = 1.0;
        f[[i, rows + c]] = 1.0;
        for (k, a) in gridworld::Action::ALL.iter().enumerate() {
            let j = gridworld::move_from(house, i, *a);
            let kind = if j == i {
                Some(0)
            } else {
                match house.cells()[j] {
                    Cell::Broom => Some(1),
                    Cell::Bathtub => Some(2),
                    Cell::Meat => Some(3),
                    _ => None,
                }
            };
            if let Some(kind) = kind {
                f[[i, rows + cols + 4 * k + kind]] = 1.0;
            }
        }
    }
    f
}

/// A two-layer perceptron on [`cell_features`]: outputs = W₂ relu(W₁ x + b₁) + b₂.
pub struct Mlp {
    features: Tensor,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl Mlp {
    /// Weights drawn uniformly in ±1/√fan_in from a seeded generator; the output layer starts
    /// at zero, so a new policy is the uniformly random cat and a new value function is 0.
    pub fn new(
        house: &House,
        hidden: usize,
        outputs: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Mlp> {
        if hidden == 0 {
            return Err(Error::invalid(
                "hidden",
                "the MLP needs at least one hidden unit",
            ));
        }
        let feats = cell_features(house);
        let (n, width) = feats.dim();
        let mut rng = StdRng::seed_from_u64(seed);
        let bound = 1.0 / (width as f64).sqrt();
        let w1: Vec<f64> = (0..hidden * width)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let t = |v: Vec<f64>, shape: (usize, usize)| {
            Tensor::from_vec(v, shape, device).and_then(|t| Var::from_tensor(&t))
        };
        let build = || -> candle_core::Result<Mlp> {
            Ok(Mlp {
                features: Tensor::from_iter(feats.iter().copied(), device)?.reshape((n, width))?,
                w1: t(w1, (hidden, width))?,
                b1: t(vec![0.0; hidden], (1, hidden))?,
                w2: t(vec![0.0; outputs * hidden], (outputs, hidden))?,
                b2: t(vec![0.0; outputs], (1, outputs))?,
            })
        };
        build().doing("new in policy")
    }
}

impl Model for Mlp {
    fn forward(&self, cells: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.features.index_select(cells, 0)?;
        let h = x
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        h.matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    fn n_cells(&self) -> usize {
        self.features.dims()[0]
    }

    fn outputs(&self) -> usize {
        self.w2.dims()[0]
    }
}

/// All cells as a u32 tensor 0..n.
fn all_cells(n: usize, device: &Device) -> candle_core::Result<Tensor> {
    Tensor::arange(0u32, n as u32, device)
}

// ANCHOR: policy_table
/// π(a|s) for every cell, as an array (S × 4): what rollouts sample from and what exact
/// evaluation takes.
pub fn policy_table(policy: &dyn Model) -> Result<Array2<f64>> {
    let run = || -> candle_core::Result<Vec<Vec<f64>>> {
        let cells = all_cells(policy.n_cells(), &policy_device(policy))?;
        let logits = policy.forward(&cells)?;
        candle_nn::ops::softmax(&logits, D::Minus1)?
            .to_dtype(DType::F64)?
            .to_vec2()
    };
    let rows = run().doing("policy_table in policy")?;
    let n = rows.len();
    Array2::from_shape_vec((n, 4), rows.into_iter().flatten().collect())
        .map_err(|e| Error::invalid("policy", e.to_string()))
}
// ANCHOR_END: policy_table

/// V(s) for every cell of a value model (1 output).
pub fn value_table(value: &dyn Model) -> Result<Vec<f64>> {
    let run = || -> candle_core::Result<Vec<f64>> {
        let cells = all_cells(value.n_cells(), &policy_device(value))?;
        value
            .forward(&cells)?
            .squeeze(1)?
            .to_dtype(DType::F64)?
            .to_vec1()
    };
    run().doing("value_table in policy")
}

fn policy_device(model: &dyn Model) -> Device {
    model
        .vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu)
}

// ANCHOR: log_probs
/// log π(a|s) for a batch of (cell, action) pairs given as u32 tensors of equal shape
/// (any shape, e.g. (B, T) padded episodes): log-softmax of the logits, then the entry
/// of the action taken. Gradients flow back into the policy.
pub fn log_probs(
    policy: &dyn Model,
    cells: &Tensor,
    actions: &Tensor,
) -> candle_core::Result<Tensor> {
    let shape = cells.dims().to_vec();
    let flat_cells = cells.flatten_all()?;
    let flat_actions = actions.flatten_all()?;
    let logits = policy.forward(&flat_cells)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    logp.gather(&flat_actions.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .reshape(shape)
}
// ANCHOR_END: log_probs

/// The entropy −Σ_a π(a|s) log π(a|s) of the policy in each cell of a batch.
pub fn entropy(policy: &dyn Model, cells: &Tensor) -> candle_core::Result<Tensor> {
    let shape = cells.dims().to_vec();
    let logits = policy.forward(&cells.flatten_all()?)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    crate::objective::entropy(&logp)?.reshape(shape)
}

/// What the cat's policy reads of some episodes: the cell of each step and the move made there,
/// both (N, T) `u32` (0 on padding).
#[derive(Clone)]
pub struct Steps {
    pub cells: Tensor,
    pub actions: Tensor,
}

impl Inputs for Steps {
    fn select(&self, _rows: &[usize], index: &Tensor, width: usize) -> Result<Steps> {
        let pick = |t: &Tensor| {
            t.index_select(index, 0)
                .and_then(|x| x.narrow(1, 0, width))
                .and_then(|x| x.contiguous())
                .doing("cutting a part of the episodes")
        };
        Ok(Steps {
            cells: pick(&self.cells)?,
            actions: pick(&self.actions)?,
        })
    }
}

/// The cat's policies are policies in the sense of the GRPO update: a row is an episode, a step
/// a move.
impl Policy for dyn Model + '_ {
    type Inputs = Steps;
    fn log_probs(&self, x: &Steps, with_entropy: bool) -> Result<(Tensor, Option<Tensor>)> {
        let logp = log_probs(self, &x.cells, &x.actions).doing("the policy's log-probabilities")?;
        let entropy = if with_entropy {
            Some(entropy(self, &x.cells).doing("the policy's entropy")?)
        } else {
            None
        };
        Ok((logp, entropy))
    }
    fn vars(&self) -> Vec<Var> {
        Model::vars(self)
    }
}
