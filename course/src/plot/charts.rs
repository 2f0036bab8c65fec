//! Charts of numbers: histograms, running means, learning curves and bar charts.

use plotters::prelude::*;

use super::{figure, DrawResult, Svg};
use zero_to_r1::error::{Error, Result};

/// A legend entry for a line of the given colour.
fn swatch(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
}

/// Draws the chart's legend in a framed box.
fn legend<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A vertical marker on a histogram: a value, its legend label and its colour.
#[derive(Clone, Debug)]
pub struct Marker {
    pub value: f64,
    pub label: String,
    pub colour: RGBColor,
}

impl Marker {
    pub fn new(value: f64, label: impl Into<String>, colour: RGBColor) -> Marker {
        Marker {
            value,
            label: label.into(),
            colour,
        }
    }
}

/// Counts of `samples` in `bins` equal-width bins over [lo, hi]; returns (left edges, width,
/// counts).
pub fn bin_counts(samples: &[f64], bins: usize, lo: f64, hi: f64) -> (Vec<f64>, f64, Vec<usize>) {
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0usize; bins];
    for &x in samples {
        let k = (((x - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[k] += 1;
    }
    let edges = (0..bins).map(|k| lo + k as f64 * width).collect();
    (edges, width, counts)
}

// ANCHOR: histogram
/// A histogram of `samples` with vertical markers (e.g. the exact value and an estimate).
pub fn histogram(
    samples: &[f64],
    bins: usize,
    caption: &str,
    x_label: &str,
    markers: &[Marker],
) -> Result<Svg> {
    if samples.is_empty() || bins == 0 {
        return Err(Error::invalid(
            "histogram",
            "needs at least one sample and one bin",
        ));
    }
    if samples.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "histogram",
            "a sample is not a finite number",
        ));
    }
    let lo = samples.iter().copied().fold(f64::MAX, f64::min);
    let hi = samples.iter().copied().fold(f64::MIN, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let (edges, width, counts) = bin_counts(samples, bins, lo, hi);
    let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.1;
    figure((640, 360), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(lo - width..hi + width, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("episodes")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        let fill = RGBColor(120, 150, 190);
        chart.draw_series(
            edges
                .iter()
                .zip(&counts)
                .map(|(&x, &c)| Rectangle::new([(x, 0.0), (x + width, c as f64)], fill.filled())),
        )?;
        // Earlier markers are drawn wider so that coinciding markers stay visible.
        for (i, m) in markers.iter().enumerate() {
            let colour = m.colour;
            let width = 2 + 3 * (markers.len() - 1 - i) as u32;
            chart
                .draw_series(LineSeries::new(
                    vec![(m.value, 0.0), (m.value, top)],
                    colour.stroke_width(width),
                ))?
                .label(m.label.clone())
                .legend(swatch(colour));
        }
        if !markers.is_empty() {
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    })
}
// ANCHOR_END: histogram

// ANCHOR: running_mean
/// The running mean of `samples` as they accumulate (log-scaled count), with a ±2 standard
/// error band, against the exact value it should converge to.
pub fn running_mean(samples: &[f64], exact: f64, caption: &str) -> Result<Svg> {
    if samples.len() < 2 {
        return Err(Error::invalid("running mean", "needs at least two samples"));
    }
    // Welford's running mean and variance, recorded at about 300 geometric steps.
    let n = samples.len();
    let mut keep: Vec<usize> = (0..300)
        .map(|k| ((n as f64).powf(k as f64 / 299.0)).round() as usize)
        .filter(|&k| k >= 2)
        .collect();
    keep.dedup();
    let (mut mean, mut m2) = (0.0, 0.0);
    let mut points = Vec::with_capacity(keep.len());
    let mut next = keep.iter().peekable();
    for (i, &x) in samples.iter().enumerate() {
        let k = (i + 1) as f64;
        let d = x - mean;
        mean += d / k;
        m2 += d * (x - mean);
        if next.peek() == Some(&&(i + 1)) {
            next.next();
            let se = (m2 / (k - 1.0) / k).sqrt();
            points.push((k, mean, se));
        }
    }
    let lo = points.iter().map(|p| p.1 - 2.0 * p.2).fold(exact, f64::min);
    let hi = points.iter().map(|p| p.1 + 2.0 * p.2).fold(exact, f64::max);
    let margin = 0.05 * (hi - lo).max(1e-9);
    figure((640, 360), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((2.0..n as f64).log_scale(), lo - margin..hi + margin)?;
        chart
            .configure_mesh()
            .x_desc("episodes")
            .y_desc("estimate of J")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        let band = RGBColor(120, 150, 190);
        let mut outline: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1 + 2.0 * p.2)).collect();
        outline.extend(points.iter().rev().map(|p| (p.0, p.1 - 2.0 * p.2)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                band.mix(0.35).filled(),
            )))?
            .label("± 2 standard errors")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 18, y + 5)], band.mix(0.35).filled())
            });
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                BLACK.stroke_width(2),
            ))?
            .label("running mean of returns")
            .legend(swatch(BLACK));
        let red = RGBColor(192, 57, 43);
        chart
            .draw_series(LineSeries::new(
                vec![(2.0, exact), (n as f64, exact)],
                red.stroke_width(2),
            ))?
            .label(format!("exact J = {exact:.2}"))
            .legend(swatch(red));
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}
// ANCHOR_END: running_mean

/// One line of a learning-curve figure: a label and one run per seed, each a list of
/// values at the same x positions.
#[derive(Clone, Debug)]
pub struct Curves {
    pub label: String,
    pub runs: Vec<Vec<f64>>,
}

/// Distinct, colour-blind-friendly line colours (Okabe–Ito).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

// ANCHOR: learning_curves
/// Learning curves: for each series, the mean over runs as a line and the range from the
/// lowest to the highest run as a shaded band. `x` gives the x position of every value.
pub fn learning_curves(
    x: &[f64],
    series: &[Curves],
    caption: &str,
    x_label: &str,
    y_label: &str,
    reference: Option<(f64, &str)>,
) -> Result<Svg> {
    let labels = (caption, x_label, y_label);
    learning_curves_at(x, series, labels, reference, Legend::LowerRight)
}

/// Where a figure's legend goes: into a corner its curves leave empty.
pub type Legend = SeriesLabelPosition;

/// [`learning_curves`] with the legend in the corner `legend`; `labels` are the caption and
/// the two axis labels.
pub fn learning_curves_at(
    x: &[f64],
    series: &[Curves],
    labels: (&str, &str, &str),
    reference: Option<(f64, &str)>,
    legend_at: Legend,
) -> Result<Svg> {
    let (caption, x_label, y_label) = labels;
    if x.is_empty() || series.is_empty() {
        return Err(Error::invalid("learning curves", "nothing to plot"));
    }
    for s in series {
        if s.runs.is_empty() || s.runs.iter().any(|r| r.len() != x.len()) {
            return Err(Error::invalid(
                "learning curves",
                format!("every run of {:?} needs one value per x position", s.label),
            ));
        }
        if s.runs.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "learning curves",
                format!("{:?} has a value that is not finite", s.label),
            ));
        }
    }
    let stats: Vec<Vec<(f64, f64, f64)>> = series
        .iter()
        .map(|s| {
            (0..x.len())
                .map(|k| {
                    let vals: Vec<f64> = s.runs.iter().map(|r| r[k]).collect();
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    let lo = vals.iter().copied().fold(f64::MAX, f64::min);
                    let hi = vals.iter().copied().fold(f64::MIN, f64::max);
                    (mean, lo, hi)
                })
                .collect()
        })
        .collect();
    let mut y_lo = stats.iter().flatten().map(|p| p.1).fold(f64::MAX, f64::min);
    let mut y_hi = stats.iter().flatten().map(|p| p.2).fold(f64::MIN, f64::max);
    if let Some((r, _)) = reference {
        y_lo = y_lo.min(r);
        y_hi = y_hi.max(r);
    }
    let pad = 0.04 * (y_hi - y_lo).max(1e-9);
    let (x0, x1) = (x[0], x[x.len() - 1].max(x[0] + 1e-9));
    // Whole numbers for wide ranges (episodes, returns), two decimals for narrow ones.
    let decimals = |span: f64| if span > 20.0 { 0 } else { 2 };
    let (xd, yd) = (decimals(x1 - x0), decimals(y_hi - y_lo));
    figure((720, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y_lo - pad..y_hi + pad)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| format!("{v:.xd$}"))
            .y_label_formatter(&|v| format!("{v:.yd$}"))
            .draw()?;
        for (k, (s, st)) in series.iter().zip(&stats).enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let mut band: Vec<(f64, f64)> = x.iter().zip(st).map(|(&xv, p)| (xv, p.2)).collect();
            band.extend(x.iter().zip(st).rev().map(|(&xv, p)| (xv, p.1)));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                colour.mix(0.18).filled(),
            )))?;
            chart
                .draw_series(LineSeries::new(
                    x.iter().zip(st).map(|(&xv, p)| (xv, p.0)),
                    colour.stroke_width(2),
                ))?
                .label(if s.runs.len() > 1 {
                    format!("{} ({} runs)", s.label, s.runs.len())
                } else {
                    s.label.clone()
                })
                .legend(swatch(colour));
        }
        if let Some((r, label)) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(x0, r), (x1, r)],
                    BLACK.stroke_width(1),
                ))?
                .label(label.to_string())
                .legend(swatch(BLACK));
        }
        legend(&mut chart, legend_at)?;
        Ok(())
    })
}
// ANCHOR_END: learning_curves

// ANCHOR: bar_chart
/// Horizontal bars on a logarithmic axis, one per label, for positive quantities that span
/// orders of magnitude (like variances).
pub fn log_bar_chart(
    labels: &[String],
    values: &[f64],
    caption: &str,
    x_label: &str,
) -> Result<Svg> {
    if labels.len() != values.len() || labels.is_empty() {
        return Err(Error::invalid("bar chart", "needs one value per label"));
    }
    if values.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(Error::invalid(
            "bar chart",
            "values must be positive finite numbers",
        ));
    }
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    let (x0, x1) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    let n = labels.len();
    let h = 80 + 46 * n as u32;
    figure((720, h), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 17))
            .margin(12)
            .margin_right(44)
            .x_label_area_size(40)
            .y_label_area_size(190)
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| {
                let k = y.floor() as usize;
                if (y - k as f64 - 0.5).abs() < 1e-6 && k < labels.len() {
                    labels[n - 1 - k].clone()
                } else {
                    String::new()
                }
            })
            .draw()?;
        chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
            let row = (n - 1 - i) as f64;
            let colour = PALETTE[i % PALETTE.len()];
            Rectangle::new([(x0, row + 0.2), (v, row + 0.8)], colour.filled())
        }))?;
        Ok(())
    })
}
// ANCHOR_END: bar_chart
