//! # course
//!
//! Everything around the [`zero_to_r1`] library that presents it: the experiments behind each
//! chapter's figures and numbers, the figures themselves, the tour that runs them all, the
//! notebooks generated from the book, classroom handouts and their grader, the benchmarks,
//! and the `zero-to-r1` command line. The library knows nothing of this crate.
//!
//! The crate re-exports the library and `plotters`, so a notebook that depends on `course`
//! gets exactly the versions the figures were drawn with.

pub mod bars;
pub mod bench;
pub mod experiments;
pub mod handout;
pub mod notebook;
pub mod plot;
pub mod tour;

pub use plotters;
pub use zero_to_r1;
pub use zero_to_r1::{Error, Result};

/// Everything a notebook cell usually needs, in one `use`: the library's prelude and the
/// figures.
pub mod prelude {
    pub use crate::plot::{histogram, house_figure, running_mean, value_figure, Marker, Svg};
    pub use plotters::style::RGBColor;
    pub use zero_to_r1::prelude::*;
}
