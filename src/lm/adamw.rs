//! AdamW with a state that can be saved and restored, so that a training run that stops can
//! continue exactly where it was: the first and second moments of every parameter and the
//! step count (for the bias correction) are part of the checkpoint.
//!
//! The update is the usual decoupled one (Loshchilov and Hutter), the same as candle's:
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
//! m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
//! θ ← θ (1 − lr · λ) − lr · m̂ / (√v̂ + ε)
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};

use crate::error::{Error, Result};
use crate::policy::candle_err;

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
    /// A fresh optimizer (zero moments) over `vars` with the default β₁ = 0.9, β₂ = 0.999,
    /// ε = 1e-8.
    pub fn new(vars: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<AdamW> {
        let mut names = Vec::with_capacity(vars.len());
        let mut vs = Vec::with_capacity(vars.len());
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (name, var) in vars {
            let zeros = var.zeros_like().map_err(candle_err)?;
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
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// The parameters, in the order [`AdamW::step`] expects their gradients.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    // ANCHOR: adamw_step
    /// One step with `grads[i]` the gradient of parameter i (`None`: no gradient, the
    /// parameter and its moments stay as they are).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
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
            .map_err(candle_err)?;
            self.vars[i].set(&theta).map_err(candle_err)?;
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
        crate::lm::checkpoint::write_safetensors(&tensors, path)
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
                crate::lm::checkpoint::check_finite_tensor(&t, path, &key)
                    .map_err(|_| bad(format!("tensor {key} holds a NaN or an infinity")))?;
                let t = t.to_dtype(self.vars[i].dtype()).map_err(candle_err)?;
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
