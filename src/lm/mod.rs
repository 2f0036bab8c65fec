//! The language-model half of the data path (chapters 8 and 9): a character tokenizer, a
//! small GPT, sampling with a KV cache, tasks with verifiable answers, rule-based rewards,
//! synthetic supervised data, fine-tuning, evaluation and checkpoints.
//!
//! ```text
//! task ──► prompt ──► generate (policy = GPT) ──► response ──► reward (format, accuracy)
//! ```

pub mod adamw;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod generate;
pub mod grpo;
pub mod model;
pub mod reward;
pub mod run;
pub mod sft;
pub mod task;
pub mod tokenizer;

use candle_core::Device;

use crate::error::{Error, Result};

/// The device called `name`: `cpu`, or `cuda` (the first NVIDIA GPU), which needs a build
/// with `--features cuda` and a GPU; otherwise a clear error.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(Error::invalid(
                    "--device",
                    "cuda: this build has no GPU support; rebuild with `cargo build --release --features cuda`",
                ));
            }
            Device::new_cuda(0).map_err(|e| {
                // The first line only: with RUST_BACKTRACE set, candle appends a backtrace.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_end();
                Error::invalid("--device", format!("cuda: no usable NVIDIA GPU ({first})"))
            })
        }
        _ => Err(Error::invalid(
            "--device",
            format!("{name:?}; choose cpu or cuda"),
        )),
    }
}
