//! Figures (plotters, SVG): written to files for the book and the tour, shown inline in
//! notebooks. The house and a policy on it are drawn in `house.rs`, charts of numbers in
//! `charts.rs`; this file holds what both share.

mod charts;
mod house;

pub use charts::{
    bin_counts, histogram, learning_curves, learning_curves_zoomed, log_dot_chart, running_mean,
    Curves, Marker, PALETTE,
};
pub use house::{house_figure, value_figure};

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use zero_to_r1::error::{Error, Result};

/// An SVG figure. In a notebook it displays itself inline (as `image/svg+xml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svg(pub String);

impl Svg {
    /// The SVG document.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the figure to `path`, creating parent folders.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        zero_to_r1::io::write_atomic(path.as_ref(), self.0.as_bytes())
    }

    /// Called by the evcxr Jupyter kernel to show the figure.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

/// Named figures, as experiments return them: (file stem, figure).
pub type Figures = Vec<(&'static str, Svg)>;

/// The figure called `name` among `figures` (a copy: a notebook cell that shows it can run
/// again).
pub fn named(figures: &[(&'static str, Svg)], name: &str) -> Result<Svg> {
    figures
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, svg)| svg.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = figures.iter().map(|(n, _)| *n).collect();
            Error::invalid(
                "figure",
                format!("no figure called {name:?}; there are {names:?}"),
            )
        })
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws into a fresh SVG of the given size.
fn figure(size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult) -> Result<Svg> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| Error::invalid("figure", e.to_string()))?;
        draw(&root).map_err(|e| Error::invalid("figure", e.to_string()))?;
        root.present()
            .map_err(|e| Error::invalid("figure", e.to_string()))?;
    }
    Ok(Svg(buf))
}

const PAD: i32 = 10;

fn centred(size: u32, colour: &RGBColor) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(colour)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

fn title(root: &Area, text: &str) -> DrawResult {
    root.draw(&Text::new(
        text.to_string(),
        (PAD, 10),
        ("sans-serif", 17).into_font().color(&BLACK),
    ))?;
    Ok(())
}
