//! The language-model half of the data path (chapters 8 and 9): a character tokenizer, a
//! small GPT, sampling with a KV cache, tasks with verifiable answers, rule-based rewards,
//! synthetic supervised data, fine-tuning, evaluation and checkpoints.
//!
//! ```text
//! task ──► prompt ──► generate (policy = GPT) ──► response ──► reward (format, accuracy)
//! ```

pub mod check;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod fused;
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
                return Err(Error::Device {
                    device: "cuda".into(),
                    why: "this build has no GPU support; rebuild with `cargo build --release \
                          --features cuda`"
                        .into(),
                });
            }
            Device::new_cuda(0).map_err(|e| {
                // The first line only: with RUST_BACKTRACE set, candle appends a backtrace.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_end();
                Error::Device {
                    device: "cuda".into(),
                    why: format!("no usable NVIDIA GPU ({first})"),
                }
            })
        }
        _ => Err(Error::invalid(
            "--device",
            format!("{name:?}; choose cpu or cuda"),
        )),
    }
}

/// Asks the C allocator (glibc, on Linux) to keep freed memory for reuse instead of handing it
/// back to the kernel at once. The `zero-to-r1` binary calls it first thing, and
/// [`Gpt::new`](model::Gpt::new) for a model on the CPU (for notebooks and other programs).
///
/// Every tensor of a forward and backward pass is a fresh allocation of up to a few MB. By
/// default glibc returns blocks that large to the kernel when they are freed, so the next
/// tensor arrives as new pages that the kernel must fault in and zero, 4 KiB at a time: a
/// quarter of a training step's time on the CPU default. With these settings (blocks up to
/// 32 MiB from the heap, no trimming of the heap's top below 1 GiB) the same step takes about
/// a third less time, and the cat's GRPO solves its house in a third of the time. Other
/// platforms keep their allocator's defaults.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3.
            // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
            unsafe {
                mallopt(-3, 32 << 20);
                mallopt(-1, 1 << 30);
                mallopt(-2, 64 << 20);
            }
        });
    }
}
