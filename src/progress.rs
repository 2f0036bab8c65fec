//! Progress of work that takes longer than a few seconds. The library draws nothing itself: a
//! long run reports to the [`Progress`] its caller hands it, and the caller decides what to
//! show (the command line draws bars on standard error; tests and notebooks pass [`Silent`]).

/// Someone watching long work, stage by stage. A run may go through several stages in turn
/// (fine-tuning, then GRPO): each is `start`ed, `advance`d and `finish`ed.
pub trait Progress {
    /// A stage called `label`, of `len` units of work (steps, runs), begins.
    fn start(&mut self, label: &str, len: u64);
    /// `by` more units of the current stage are done.
    fn advance(&mut self, by: u64);
    /// The latest headline of the current stage (a loss, a reward), replacing the last one.
    fn message(&mut self, msg: &str);
    /// The current stage is over.
    fn finish(&mut self);
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _label: &str, _len: u64) {}
    fn advance(&mut self, _by: u64) {}
    fn message(&mut self, _msg: &str) {}
    fn finish(&mut self) {}
}

/// A borrowed watcher watches too, so that work which keeps its [`Progress`] (an observer
/// closure) can be lent one that outlives it.
impl<P: Progress + ?Sized> Progress for &mut P {
    fn start(&mut self, label: &str, len: u64) {
        (**self).start(label, len);
    }
    fn advance(&mut self, by: u64) {
        (**self).advance(by);
    }
    fn message(&mut self, msg: &str) {
        (**self).message(msg);
    }
    fn finish(&mut self) {
        (**self).finish();
    }
}
