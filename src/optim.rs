//! The optimizer step, one module for the cat and the language model: plain gradient descent
//! and AdamW, gradient clipping by global norm, and gradients accumulated over the parts of a
//! batch. Every trainer of the library steps through [`Opt`] or [`AdamW`] from here.
//!
//! AdamW keeps a state that can be saved and restored, so that a training run that stops can
//! continue exactly where it was: the first and second moments of every parameter and the
//! step count (for the bias correction) are part of the checkpoint.
//!
//! The update is the usual decoupled one (Loshchilov and Hutter), operation for operation the
//! same as candle's `candle_nn::AdamW` (a test checks it), so that either gives the same
//! numbers:
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
//! m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
//! θ ← θ (1 − lr · λ) − lr · m̂ / (√v̂ + ε)
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::ParamsAdamW;

use crate::error::{Doing, Error, Result};

/// AdamW over named parameters.
pub struct AdamW {
    names: Vec<String>,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken so far (t of the bias correction).
    pub steps: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamW {
    /// A fresh optimizer (zero moments) over named `vars` with the default β₁ = 0.9,
    /// β₂ = 0.999, ε = 1e-8. The names key the moments in a saved state.
    pub fn new(vars: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<AdamW> {
        AdamW::with_params(
            vars,
            ParamsAdamW {
                lr,
                weight_decay,
                ..ParamsAdamW::default()
            },
        )
    }

    /// A fresh optimizer over `vars`, named by their position.
    pub fn over(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<AdamW> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        AdamW::new(named, lr, weight_decay)
    }

    /// A fresh optimizer over named `vars` with all of candle's settings.
    pub fn with_params(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<AdamW> {
        let mut names = Vec::with_capacity(vars.len());
        let mut vs = Vec::with_capacity(vars.len());
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (name, var) in vars {
            let zeros = var.zeros_like().doing("the optimizer's moments")?;
            m.push(zeros.clone());
            v.push(zeros);
            names.push(name);
            vs.push(var);
        }
        Ok(AdamW {
            names,
            vars: vs,
            m,
            v,
            steps: 0,
            lr: params.lr,
            weight_decay: params.weight_decay,
            beta1: params.beta1,
            beta2: params.beta2,
            eps: params.eps,
        })
    }

    /// The parameters, in the order [`AdamW::step_grads`] expects their gradients.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    // ANCHOR: adamw_step
    /// One step with `grads[i]` the gradient of parameter i (`None`: no gradient, the
    /// parameter and its moments stay as they are).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.vars.len() {
            return Err(Error::invalid(
                "gradients",
                format!("{} for {} parameters", grads.len(), self.vars.len()),
            ));
        }
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let (scale_m, scale_v) = (1.0 / (1.0 - b1.powi(t)), 1.0 / (1.0 - b2.powi(t)));
        let decay = 1.0 - self.lr * self.weight_decay;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let (m, v, theta) = (|| -> candle_core::Result<(Tensor, Tensor, Tensor)> {
                let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
                let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                let direction = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + self.eps)?)?;
                let theta = ((self.vars[i].as_tensor() * decay)? - (direction * self.lr)?)?;
                Ok((m, v, theta))
            })()
            .doing("the AdamW step")?;
            self.vars[i].set(&theta).doing("the AdamW step")?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
    // ANCHOR_END: adamw_step

    /// Writes the moments to a safetensors file (the step count is kept by the caller).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (i, name) in self.names.iter().enumerate() {
            tensors.insert(format!("m.{name}"), self.m[i].clone());
            tensors.insert(format!("v.{name}"), self.v[i].clone());
        }
        crate::io::write_safetensors(&tensors, path)
    }

    /// Reads the moments written by [`AdamW::save`] and sets the step count to `steps`. Every
    /// moment must be there with its parameter's shape.
    pub fn load(&mut self, path: &Path, steps: usize) -> Result<()> {
        let bad = |why: String| Error::invalid(format!("optimizer state {}", path.display()), why);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let device = match self.vars.first() {
            Some(v) => v.device().clone(),
            None => return Ok(()),
        };
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, &device)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        for (i, name) in self.names.iter().enumerate() {
            for (slot, key) in [(0, format!("m.{name}")), (1, format!("v.{name}"))] {
                let t = tensors
                    .remove(&key)
                    .ok_or_else(|| bad(format!("tensor {key} is missing")))?;
                if t.shape() != self.vars[i].shape() {
                    return Err(bad(format!(
                        "tensor {key} has shape {:?}, the parameter has {:?}",
                        t.dims(),
                        self.vars[i].dims()
                    )));
                }
                crate::io::check_finite_tensor(&t, path, &key)
                    .map_err(|_| bad(format!("tensor {key} holds a NaN or an infinity")))?;
                let t = t
                    .to_dtype(self.vars[i].dtype())
                    .doing("loading the optimizer state")?;
                if slot == 0 {
                    self.m[i] = t;
                } else {
                    self.v[i] = t;
                }
            }
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(bad(format!("tensor {extra} does not belong to this model")));
        }
        self.steps = steps;
        Ok(())
    }
}

/// candle's optimizer interface, so that [`AdamW`] can stand wherever `candle_nn::AdamW` does
/// (the parameters are then named by their position).
impl candle_nn::Optimizer for AdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> candle_core::Result<AdamW> {
        let mut opt =
            AdamW::over(vars, params.lr, params.weight_decay).map_err(candle_core::Error::wrap)?;
        (opt.beta1, opt.beta2, opt.eps) = (params.beta1, params.beta2, params.eps);
        Ok(opt)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let grads = gradients_of(grads, &self.vars);
        self.step_grads(&grads).map_err(candle_core::Error::wrap)
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// The gradient of each of `vars` in `store`, in order (`None` where a parameter got none).
fn gradients_of(store: &GradStore, vars: &[Var]) -> Vec<Option<Tensor>> {
    vars.iter()
        .map(|v| store.get(v.as_tensor()).cloned())
        .collect()
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

/// An optimizer over a model's parameters: gradient descent or AdamW.
pub enum Opt {
    /// θ ← θ − lr · g, parameter by parameter.
    Sgd {
        vars: Vec<Var>,
        lr: f64,
    },
    Adam(AdamW),
}

impl Opt {
    /// A new optimizer of the given kind over `vars` with learning rate `lr` (Adam: no
    /// weight decay).
    pub fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64) -> Result<Opt> {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Error::invalid(
                "learning rate",
                format!("{lr} must be a positive number"),
            ));
        }
        Ok(match kind {
            OptimizerKind::Sgd => Opt::Sgd { vars, lr },
            OptimizerKind::Adam => Opt::Adam(AdamW::over(vars, lr, 0.0)?),
        })
    }

    /// The parameters, in the order [`Opt::step_grads`] expects their gradients.
    pub fn vars(&self) -> &[Var] {
        match self {
            Opt::Sgd { vars, .. } => vars,
            Opt::Adam(o) => o.vars(),
        }
    }

    /// Sets the learning rate (a schedule changes it step by step).
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::Sgd { lr: l, .. } => *l = lr,
            Opt::Adam(o) => o.lr = lr,
        }
    }

    /// One step with `grads[i]` the gradient of parameter i (`None`: left as it is).
    pub fn step_grads(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        match self {
            Opt::Sgd { vars, lr } => {
                for (v, g) in vars.iter().zip(grads) {
                    if let Some(g) = g {
                        let next = (g * *lr).and_then(|step| v.sub(&step));
                        v.set(&next.doing("the gradient-descent step")?)
                            .doing("the gradient-descent step")?;
                    }
                }
                Ok(())
            }
            Opt::Adam(o) => o.step_grads(grads),
        }
    }

    /// Backpropagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.clipped_step(loss, None).map(|_| ())
    }

    // ANCHOR: clipped_step
    /// Backpropagates `loss`, rescales the gradient so that its global norm is at most
    /// `max_norm` (if given), takes one step, and returns the norm before rescaling.
    pub fn clipped_step(&mut self, loss: &Tensor, max_norm: Option<f64>) -> Result<f64> {
        let mut grads = Gradients::new(self.vars().len());
        grads.add(loss, self.vars())?;
        let norm = grads.clip(max_norm)?;
        self.step_grads(&grads.grads)?;
        Ok(norm)
    }
    // ANCHOR_END: clipped_step
}

/// Gradients summed over several losses: a batch processed in parts (gradient accumulation)
/// gets the gradient of the sum of the parts' losses, one part in memory at a time.
pub struct Gradients {
    /// One per parameter, in the optimizer's order; `None` until a loss reaches it.
    pub grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// No gradient yet, for `n` parameters.
    pub fn new(n: usize) -> Gradients {
        Gradients {
            grads: vec![None; n],
        }
    }

    /// Backpropagates `loss` and adds its gradient with respect to each of `vars`.
    pub fn add(&mut self, loss: &Tensor, vars: &[Var]) -> Result<()> {
        let mut store = loss.backward().doing("the backward pass")?;
        for (acc, var) in self.grads.iter_mut().zip(vars) {
            if let Some(g) = store.remove(var.as_tensor()) {
                *acc = Some(match acc.take() {
                    Some(a) => (a + g).doing("adding up gradients")?,
                    None => g,
                });
            }
        }
        Ok(())
    }

    /// Clips the sum to global norm `max_norm` (see [`clip_gradients`]) and returns the norm
    /// before clipping.
    pub fn clip(&mut self, max_norm: Option<f64>) -> Result<f64> {
        clip_gradients(&mut self.grads, max_norm).doing("clipping the gradient")
    }
}

// ANCHOR: clip_gradients
/// Rescales `grads` (one per parameter; `None` where a parameter got no gradient) in
/// place so that their global L2 norm ‖g‖ = √(Σ g²) is at most `max_norm`, if given,
/// and returns the norm before rescaling. The direction is kept; only a too-long step
/// is shortened.
pub fn clip_gradients(
    grads: &mut [Option<Tensor>],
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
