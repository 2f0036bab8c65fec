//! The run folder: checkpoints written atomically, resuming from the latest one, and the
//! training loop that writes them with one line of metrics per step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::io::{read_text, remove_path, remove_temporaries, write_atomic};
use crate::lm::checkpoint;
use crate::lm::config::LmConfig;
use crate::lm::eval::heldout;

use super::{to_json, GrpoStep, GrpoTrainer, TrainState};

impl GrpoTrainer {
    // ANCHOR: save
    /// Writes a checkpoint of the run into `dir/checkpoints/step-NNNNNN/` (policy,
    /// optimizer moments, state), then points `dir/LATEST` at it with an atomic rename,
    /// then removes older checkpoints. A crash at any moment leaves `LATEST` naming a
    /// complete checkpoint.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let name = format!("step-{:06}", self.step);
        let root = dir.join("checkpoints");
        let tmp = root.join(format!(".{name}.tmp{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        checkpoint::save(&self.policy, &tmp)?;
        self.opt.save(&tmp.join(OPTIMIZER))?;
        let state = TrainState {
            step: self.step,
            seed: self.seed,
            seconds: self.seconds,
            optimizer_steps: Some(self.opt.steps),
        };
        write_atomic(
            &tmp.join(STATE),
            to_json(&state, &tmp.join(STATE))?.as_bytes(),
        )?;
        let done = root.join(&name);
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(|e| Error::io(&done, e))?;
        }
        std::fs::rename(&tmp, &done).map_err(|e| Error::io(&done, e))?;
        write_atomic(&dir.join(LATEST), name.as_bytes())?;
        // Keep only the newest checkpoint.
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with("step-") && n != name {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(done)
    }
    // ANCHOR_END: save

    /// Continues the run saved in `dir` (its config, its reference and its latest
    /// checkpoint) on `device`.
    pub fn resume(dir: &Path, device: &candle_core::Device) -> Result<GrpoTrainer> {
        let config = LmConfig::from_file(&dir.join(CONFIG))?;
        let latest = dir.join(LATEST);
        let name = read_text(&latest)?.trim().to_string();
        if !name.starts_with("step-") || name.contains(['/', '\\']) {
            return Err(Error::invalid(
                format!("{}", latest.display()),
                format!("{name:?} does not name a checkpoint"),
            ));
        }
        let ck = dir.join("checkpoints").join(&name);
        let state_path = ck.join(STATE);
        let state: TrainState = serde_json::from_str(&read_text(&state_path)?)
            .map_err(|e| Error::invalid(format!("{}", state_path.display()), e.to_string()))?;
        let policy = checkpoint::load(&ck, device)?;
        let reference = checkpoint::load(&dir.join(REFERENCE), device)?;
        let mut trainer = GrpoTrainer::new(policy, reference, &config, state.seed)?;
        let optimizer_steps = state
            .optimizer_steps
            .unwrap_or(state.step * config.grpo.optimizer_steps_per_step());
        trainer.opt.load(&ck.join(OPTIMIZER), optimizer_steps)?;
        trainer.step = state.step;
        trainer.seconds = state.seconds;
        Ok(trainer)
    }
}

/// Files of a run folder.
pub const CONFIG: &str = "config.toml";
pub const LATEST: &str = "LATEST";
pub const REFERENCE: &str = "reference";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const STATE: &str = "state.json";
pub const METRICS: &str = "metrics.jsonl";

// ANCHOR: train
/// Runs `trainer` up to step `until` (at most `config.grpo.steps`), writing into the
/// folder `dir`: the config and the reference (once, when starting at step 0), one JSON
/// line per step (`metrics.jsonl`, with the held-out evaluation on the steps where it
/// runs), and checkpoints every `checkpoint_every` steps and when it stops. A resumed
/// trainer continues the same files: metric lines of steps after its checkpoint are
/// dropped first, so no step appears twice.
pub fn train(
    trainer: &mut GrpoTrainer,
    dir: &Path,
    until: usize,
    mut on_step: impl FnMut(&GrpoStep),
) -> Result<()> {
    let g = trainer.config.grpo.clone();
    let until = until.min(g.steps);
    let metrics_path = dir.join(METRICS);
    // What a killed process or a full disk left half-written is of no use: free its
    // space.
    remove_temporaries(dir)?;
    remove_temporaries(&dir.join("checkpoints"))?;
    if trainer.step == 0 {
        // A new run: whatever an earlier run left here must not be resumed by mistake.
        // LATEST goes first, so that a crash in between leaves nothing to adopt.
        remove_path(&dir.join(LATEST))?;
        remove_path(&dir.join("checkpoints"))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(&dir.join(CONFIG), trainer.config.to_toml()?.as_bytes())?;
        checkpoint::save(&trainer.reference, &dir.join(REFERENCE))?;
        write_atomic(&metrics_path, b"")?;
    } else {
        let kept: String = match read_text(&metrics_path) {
            Ok(text) => text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<GrpoStep>(l).is_ok_and(|m| m.step < trainer.step)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            Err(_) => String::new(),
        };
        write_atomic(&metrics_path, kept.as_bytes())?;
    }
    let task = trainer.config.task()?;
    let problems = heldout(
        task.as_ref(),
        g.eval_problems,
        trainer.config.task.difficulty,
    );
    let clock = Instant::now();
    let base = trainer.seconds;
    while trainer.step < until {
        let mut m = trainer.step().map_err(|e| match e {
            Error::Diverged { step, why } if dir.join(LATEST).exists() => Error::Diverged {
                step,
                why: format!("{why}; the last good checkpoint is in {}", dir.display()),
            },
            other => other,
        })?;
        let last = trainer.step == until;
        if trainer.step == g.steps || (g.eval_every > 0 && trainer.step % g.eval_every == 0) {
            m.heldout = Some(trainer.evaluate(&problems)?);
        }
        trainer.seconds = base + clock.elapsed().as_secs_f64();
        m.seconds = trainer.seconds;
        append_line(&metrics_path, &m)?;
        on_step(&m);
        if last || (g.checkpoint_every > 0 && trainer.step % g.checkpoint_every == 0) {
            trainer.save(dir)?;
        }
    }
    Ok(())
}
// ANCHOR_END: train

/// Reads the metrics of a run folder.
pub fn read_metrics(dir: &Path) -> Result<Vec<GrpoStep>> {
    let path = dir.join(METRICS);
    read_text(&path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(format!("{}:{}", path.display(), i + 1), e.to_string()))
        })
        .collect()
}

fn append_line(path: &Path, m: &GrpoStep) -> Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(m)
        .map_err(|e| Error::invalid(format!("{}", path.display()), format!("cannot write: {e}")))?
        + "\n";
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| Error::io(path, e))
}
