//! Charts of numbers: histograms, running means, learning curves and bar charts.

use plotters::prelude::*;

use super::{figure, Area, DrawResult, Svg, PAD};
use zero_to_r1::error::{Error, Result};

/// Text sizes, in pixels: the figures are shown at about their own width, beside 16 px text.
const CAPTION_FONT: u32 = 18;
const AXIS_FONT: u32 = 16;
const TICK_FONT: u32 = 15;

/// How a legend entry's key is drawn: a line, or a shaded band.
#[derive(Clone, Copy)]
enum Key {
    Line(RGBColor),
    Band(RGBColor),
}

/// A chart's legend: drawn in a strip under the chart, where it never hides the data.
type LegendEntries = Vec<(String, Key)>;

const LEGEND_ROW: i32 = 26;

/// The width of a legend entry: its key, its label (sans-serif text is about 0.55 em wide per
/// character) and the gap to the next entry.
fn legend_entry_width(label: &str) -> i32 {
    34 + (label.chars().count() as f64 * 0.55 * TICK_FONT as f64) as i32 + 22
}

/// The legend's entries, row by row, as many to a row as fit in `width` pixels.
fn legend_rows(entries: &LegendEntries, width: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = width;
    for (k, (label, _)) in entries.iter().enumerate() {
        let w = legend_entry_width(label);
        if used + w > width - 2 * PAD {
            rows.push(Vec::new());
            used = 0;
        }
        rows.last_mut().expect("a row was pushed").push(k);
        used += w;
    }
    rows
}

fn draw_legend(area: &Area, entries: &LegendEntries, rows: &[Vec<usize>]) -> DrawResult {
    let font = ("sans-serif", TICK_FONT).into_font().color(&BLACK);
    for (r, row) in rows.iter().enumerate() {
        let y = 8 + r as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        let mut x = PAD + 50;
        for &k in row {
            let (label, key) = &entries[k];
            match *key {
                Key::Line(c) => area.draw(&PathElement::new(
                    vec![(x, y), (x + 26, y)],
                    c.stroke_width(3),
                ))?,
                Key::Band(c) => area.draw(&Rectangle::new(
                    [(x, y - 6), (x + 26, y + 6)],
                    c.mix(0.35).filled(),
                ))?,
            }
            area.draw(&Text::new(
                label.clone(),
                (x + 34, y - TICK_FONT as i32 / 2 - 1),
                font.clone(),
            ))?;
            x += legend_entry_width(label);
        }
    }
    Ok(())
}

/// A chart of `size` with its legend in a strip under it (the figure grows by the strip).
fn chart_figure(
    size: (u32, u32),
    entries: &LegendEntries,
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<Svg> {
    let rows = legend_rows(entries, size.0 as i32);
    let strip = if entries.is_empty() {
        0
    } else {
        16 + rows.len() as u32 * LEGEND_ROW as u32
    };
    figure((size.0, size.1 + strip), |root| {
        let (chart, legend) = root.split_vertically(size.1);
        draw(&chart)?;
        draw_legend(&legend, entries, &rows)
    })
}

/// Decimals for tick labels over a span: as many as the tick spacing needs, so that whole
/// numbers print as whole numbers. The spacing is the one plotters picks for at most ten
/// labels: the smallest of 1, 2 or 5 times a power of ten that is at least a tenth of the span.
fn tick_decimals(span: f64) -> usize {
    let tenth = span.abs().max(1e-12) / 10.0;
    let power = 10f64.powf(tenth.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= tenth * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    (-step.log10() - 1e-9).ceil().clamp(0.0, 4.0) as usize
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
    let entries: LegendEntries = markers
        .iter()
        .map(|m| (m.label.clone(), Key::Line(m.colour)))
        .collect();
    chart_figure((640, 360), &entries, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", CAPTION_FONT))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(lo - width..hi + width, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .label_style(("sans-serif", TICK_FONT))
            .axis_desc_style(("sans-serif", AXIS_FONT))
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
            chart.draw_series(LineSeries::new(
                vec![(m.value, 0.0), (m.value, top)],
                colour.stroke_width(width),
            ))?;
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
    let (band, red) = (RGBColor(120, 150, 190), RGBColor(192, 57, 43));
    let entries: LegendEntries = vec![
        ("± 2 standard errors".to_string(), Key::Band(band)),
        ("running mean of returns".to_string(), Key::Line(BLACK)),
        (format!("exact J = {exact:.2}"), Key::Line(red)),
    ];
    chart_figure((640, 360), &entries, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", CAPTION_FONT))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((2.0..n as f64).log_scale(), lo - margin..hi + margin)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", TICK_FONT))
            .axis_desc_style(("sans-serif", AXIS_FONT))
            .x_desc("episodes")
            .y_desc("estimate of J")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        let mut outline: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1 + 2.0 * p.2)).collect();
        outline.extend(points.iter().rev().map(|p| (p.0, p.1 - 2.0 * p.2)));
        chart.draw_series(std::iter::once(Polygon::new(
            outline,
            band.mix(0.35).filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            BLACK.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(
            vec![(2.0, exact), (n as f64, exact)],
            red.stroke_width(2),
        ))?;
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
    curves_figure(x, series, (caption, x_label, y_label), reference, None)
}

/// [`learning_curves`] with a second panel under the first that shows only `x ≤ zoom_until`:
/// for runs that do most of their learning early, where the full range squeezes it against
/// the axis.
pub fn learning_curves_zoomed(
    x: &[f64],
    series: &[Curves],
    labels: (&str, &str, &str),
    reference: Option<(f64, &str)>,
    zoom_until: f64,
) -> Result<Svg> {
    curves_figure(x, series, labels, reference, Some(zoom_until))
}

/// Per x position of each series: (mean, lowest, highest) over its runs.
type Stats = Vec<Vec<(f64, f64, f64)>>;

fn curves_figure(
    x: &[f64],
    series: &[Curves],
    (caption, x_label, y_label): (&str, &str, &str),
    reference: Option<(f64, &str)>,
    zoom_until: Option<f64>,
) -> Result<Svg> {
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
    let stats: Stats = series
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
    let mut entries: LegendEntries = series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let label = if s.runs.len() > 1 {
                format!("{} ({} runs)", s.label, s.runs.len())
            } else {
                s.label.clone()
            };
            (label, Key::Line(PALETTE[k % PALETTE.len()]))
        })
        .collect();
    if let Some((_, label)) = reference {
        entries.push((label.to_string(), Key::Line(BLACK)));
    }
    let (x0, x1) = (x[0], x[x.len() - 1].max(x[0] + 1e-9));
    let zoom = zoom_until.filter(|&z| z > x0 && z < x1);
    let (full, zoomed) = (420, 320);
    let height = full + zoom.map_or(0, |_| zoomed);
    chart_figure((720, height), &entries, |root| {
        let (top, bottom) = root.split_vertically(full);
        let panel = Panel {
            x,
            stats: &stats,
            reference: reference.map(|r| r.0),
            y_label,
        };
        panel.draw(&top, x0..x1, caption, x_label)?;
        if let Some(z) = zoom {
            let zoom_caption = format!("The same, zoomed in: {x_label} up to {z}");
            panel.draw(&bottom, x0..z, &zoom_caption, x_label)?;
        }
        Ok(())
    })
}

/// The curves of one figure, drawn into a panel over an x range.
struct Panel<'a> {
    x: &'a [f64],
    stats: &'a Stats,
    reference: Option<f64>,
    y_label: &'a str,
}

impl Panel<'_> {
    fn draw(
        &self,
        area: &Area,
        xs: std::ops::Range<f64>,
        caption: &str,
        x_label: &str,
    ) -> DrawResult {
        // Only the points inside the range.
        let first = self.x.iter().position(|&v| v >= xs.start).unwrap_or(0);
        let last = self
            .x
            .iter()
            .rposition(|&v| v <= xs.end)
            .unwrap_or(first)
            .max(first);
        let (x, k) = (&self.x[first..=last], first..=last);
        let points = || self.stats.iter().flat_map(|st| st[k.clone()].iter());
        let mut y_lo = points().map(|p| p.1).fold(f64::MAX, f64::min);
        let mut y_hi = points().map(|p| p.2).fold(f64::MIN, f64::max);
        if let Some(r) = self.reference {
            y_lo = y_lo.min(r);
            y_hi = y_hi.max(r);
        }
        let pad = 0.04 * (y_hi - y_lo).max(1e-9);
        let (xd, yd) = (tick_decimals(xs.end - xs.start), tick_decimals(y_hi - y_lo));
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", CAPTION_FONT))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(xs.clone(), y_lo - pad..y_hi + pad)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", TICK_FONT))
            .axis_desc_style(("sans-serif", AXIS_FONT))
            .x_desc(x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&|v| format!("{v:.xd$}"))
            .y_label_formatter(&|v| format!("{v:.yd$}"))
            .draw()?;
        for (c, st) in self.stats.iter().enumerate() {
            let st = &st[k.clone()];
            let colour = PALETTE[c % PALETTE.len()];
            let mut band: Vec<(f64, f64)> = x.iter().zip(st).map(|(&xv, p)| (xv, p.2)).collect();
            band.extend(x.iter().zip(st).rev().map(|(&xv, p)| (xv, p.1)));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                colour.mix(0.18).filled(),
            )))?;
            chart.draw_series(LineSeries::new(
                x.iter().zip(st).map(|(&xv, p)| (xv, p.0)),
                colour.stroke_width(2),
            ))?;
            // Few x positions are separate measurements (values of λ, say): mark each one.
            if self.x.len() <= 25 {
                chart.draw_series(
                    x.iter()
                        .zip(st)
                        .map(|(&xv, p)| Circle::new((xv, p.0), 4, colour.filled())),
                )?;
            }
        }
        if let Some(r) = self.reference {
            chart.draw_series(LineSeries::new(
                vec![(xs.start, r), (xs.end, r)],
                BLACK.stroke_width(1),
            ))?;
        }
        Ok(())
    }
}
// ANCHOR_END: learning_curves

// ANCHOR: bar_chart
/// One dot per label on a logarithmic axis, with a whisker of ± 2 standard errors, for positive
/// quantities that span orders of magnitude (like variances). Dots, not bars: on a log axis a
/// bar's length depends on where the axis happens to start.
pub fn log_dot_chart(
    labels: &[String],
    values: &[f64],
    standard_errors: &[f64],
    caption: &str,
    x_label: &str,
) -> Result<Svg> {
    if labels.len() != values.len() || labels.len() != standard_errors.len() || labels.is_empty() {
        return Err(Error::invalid(
            "dot chart",
            "needs one value and one standard error per label",
        ));
    }
    if values.iter().any(|v| !v.is_finite() || *v <= 0.0)
        || standard_errors.iter().any(|e| !e.is_finite() || *e < 0.0)
    {
        return Err(Error::invalid(
            "dot chart",
            "values must be positive finite numbers, standard errors finite and not negative",
        ));
    }
    // A whisker's lower end is kept above zero (the axis is logarithmic).
    let low = |k: usize| (values[k] - 2.0 * standard_errors[k]).max(values[k] / 10.0);
    let high = |k: usize| values[k] + 2.0 * standard_errors[k];
    let lo = (0..values.len()).map(low).fold(f64::MAX, f64::min);
    let hi = (0..values.len()).map(high).fold(f64::MIN, f64::max);
    let (x0, x1) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    let n = labels.len();
    let h = 90 + 46 * n as u32;
    let entries: LegendEntries = vec![(
        "measured value, ± 2 standard errors".to_string(),
        Key::Line(BLACK),
    )];
    chart_figure((720, h), &entries, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", CAPTION_FONT))
            .margin(12)
            .margin_right(44)
            .x_label_area_size(46)
            .y_label_area_size(200)
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .label_style(("sans-serif", TICK_FONT))
            .axis_desc_style(("sans-serif", AXIS_FONT))
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
        for (i, &v) in values.iter().enumerate() {
            let y = (n - 1 - i) as f64 + 0.5;
            let colour = PALETTE[i % PALETTE.len()];
            let whisker = colour.stroke_width(2);
            chart.draw_series(LineSeries::new(vec![(low(i), y), (high(i), y)], whisker))?;
            for end in [low(i), high(i)] {
                chart.draw_series(LineSeries::new(
                    vec![(end, y - 0.15), (end, y + 0.15)],
                    whisker,
                ))?;
            }
            chart.draw_series(std::iter::once(Circle::new((v, y), 6, colour.filled())))?;
        }
        Ok(())
    })
}
// ANCHOR_END: bar_chart

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_decimals_follow_the_tick_spacing() {
        // A span of 14 has ticks 2 apart: whole numbers, not "14.00".
        assert_eq!(tick_decimals(14.0), 0);
        assert_eq!(tick_decimals(7.5), 0); // ticks 1 apart: "13", not "13.0"
        assert_eq!(tick_decimals(2400.0), 0);
        assert_eq!(tick_decimals(10.0), 0); // exactly 1 apart
        assert_eq!(tick_decimals(3.0), 1); // 0.5 apart
        assert_eq!(tick_decimals(0.9), 1); // 0.1 apart
        assert_eq!(tick_decimals(0.06), 2); // 0.01 apart
        assert_eq!(tick_decimals(0.0), 4); // capped
    }

    #[test]
    fn legend_entries_wrap_into_rows_that_fit() {
        let entries: LegendEntries = ["a", "bb", "a much longer label than the others"]
            .iter()
            .map(|l| (l.to_string(), Key::Line(BLACK)))
            .collect();
        assert_eq!(legend_rows(&entries, 720), vec![vec![0, 1, 2]]);
        assert_eq!(legend_rows(&entries, 300), vec![vec![0, 1], vec![2]]);
        // An entry wider than the figure still gets a row of its own.
        assert_eq!(legend_rows(&entries, 100), vec![vec![0], vec![1], vec![2]]);
        assert!(legend_rows(&Vec::new(), 720).is_empty());
    }
}
