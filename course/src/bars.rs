//! Progress bars on standard error, for work longer than a few seconds (hidden on request).

use indicatif::{ProgressBar, ProgressStyle};
use zero_to_r1::progress::Progress;

/// A progress bar for `len` units of work, hidden when `show` is false.
pub fn progress_bar(len: u64, label: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:32}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// The library's [`Progress`] drawn as bars: one bar per stage, hidden when `show` is false.
pub struct Bars {
    show: bool,
    bar: ProgressBar,
}

impl Bars {
    pub fn new(show: bool) -> Bars {
        Bars {
            show,
            bar: ProgressBar::hidden(),
        }
    }
}

impl Progress for Bars {
    fn start(&mut self, label: &str, len: u64) {
        self.bar = progress_bar(len, label, self.show);
    }
    fn advance(&mut self, by: u64) {
        self.bar.inc(by);
    }
    fn message(&mut self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }
    fn finish(&mut self) {
        self.bar.finish();
    }
}
