//! Checkpoints: a folder with the weights (`model.safetensors`) and the model's shape
//! (`model.toml`), each written atomically (temporary file, then rename). Loading checks
//! everything: a missing, corrupt, truncated or mismatched file is an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Doing, Error, Result};
pub use crate::io::{check_finite_tensor, write_safetensors};
use crate::io::{read_text, write_atomic};
use crate::lm::model::{Gpt, GptConfig};

/// The weights file inside a checkpoint folder.
pub const WEIGHTS: &str = "model.safetensors";
/// The shape file inside a checkpoint folder.
pub const SHAPE: &str = "model.toml";

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::invalid(format!("checkpoint {}", path.display()), why)
}

/// Writes `model` into the folder `dir` (created if needed).
pub fn save(model: &Gpt, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors: HashMap<String, Tensor> = model
        .named_vars()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    write_safetensors(&tensors, &dir.join(WEIGHTS))?;
    let shape = toml::to_string(model.config()).map_err(|e| bad(dir, e.to_string()))?;
    write_atomic(&dir.join(SHAPE), shape.as_bytes())
}

/// Reads the model shape stored in a checkpoint folder.
pub fn load_config(dir: &Path) -> Result<GptConfig> {
    let path = dir.join(SHAPE);
    let text = read_text(&path)?;
    let config: GptConfig = toml::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
    config.validate().map_err(|e| bad(&path, e.to_string()))?;
    Ok(config)
}

/// Loads a checkpoint folder onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Gpt> {
    let config = load_config(dir)?;
    let model = Gpt::new(&config, 0, device)?;
    load_weights(&model, &dir.join(WEIGHTS))?;
    Ok(model)
}

/// Overwrites `model`'s parameters with those in the safetensors file `path`; every tensor
/// must be there with the right shape, and nothing else.
pub fn load_weights(model: &Gpt, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, model.device())
        .map_err(|e| bad(path, format!("not a readable safetensors file ({e})")))?;
    for (name, var) in model.named_vars() {
        let t = tensors
            .remove(&name)
            .ok_or_else(|| bad(path, format!("tensor {name} is missing")))?;
        if t.shape() != var.shape() {
            return Err(bad(
                path,
                format!(
                    "tensor {name} has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        check_finite_tensor(&t, path, &name)?;
        let t = t
            .to_dtype(var.dtype())
            .doing("load_weights in lm::checkpoint")?;
        var.set(&t).doing("load_weights in lm::checkpoint")?;
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(bad(
            path,
            format!("tensor {extra} does not belong to this model"),
        ));
    }
    Ok(())
}

/// The default checkpoint folder of a run.
pub fn default_dir(task: &str) -> PathBuf {
    PathBuf::from("runs").join("lm").join(task).join("sft")
}
